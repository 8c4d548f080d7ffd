import argparse

import pytest

from cli import check_settings, duration, parse_temperatures


def test_duration_reads_like_a_person_wrote_it():
    assert [duration(s) for s in (40, 89, 90, 100, 3600)] == ["40 s", "89 s", "2 minutes", "2 minutes",
                                                               "60 minutes"]


def test_settings_out_of_range_are_one_line(capsys):
    args = argparse.Namespace(n=0, p=float("nan"), q=None)
    with pytest.raises(SystemExit, match=r"error: --n 0: must be at least 1"):
        check_settings(args, at_least={"n": 1})
    with pytest.raises(SystemExit, match=r"error: --p nan: must be between 0 and 1"):
        check_settings(args, between={"p": (0, 1)})
    check_settings(args, at_least={"q": 1})  # None: not given, not checked
    assert parse_temperatures("0,0.5") == [0.0, 0.5]
    with pytest.raises(SystemExit, match="numbers >= 0"):
        parse_temperatures("0,hot")
