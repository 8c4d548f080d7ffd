import torch

from report import ci, html_page, number, pooled_table, temperature_html


def test_temperature_html():
    class Tok:
        def decode(self, ids):
            return "".join(chr(97 + i) for i in ids) + "<"
    page = html_page([temperature_html(Tok(), [0, 1], [0, 5], torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
                                       "t")])
    assert page.startswith("<!doctype html>") and "a&lt;" in page and 'title="temperature 1"' in page


def test_intervals_as_text():
    assert ci((0.5, 0.25, 0.755)) == "50.0% [25.0%, 75.5%]"
    assert ci(None) == ""
    assert number(0.123) == "0.12" and number((0.1, 0.05, 0.2)) == "0.10 [0.05, 0.20]"
    pooled = {"prompts": 3, "oracle": {"a": "tau=0"},
              "methods": {"tau=0": {"ad_win_rate": (0.5, 0.0, 1.0), "oracle_win_rate": (0.5, 0.5, 0.5)}}}
    assert pooled_table(pooled) == [["method", "AD win rate [95% CI]", "oracle win rate [95% CI]"],
                                    ["tau=0", "50.0% [0.0%, 100.0%]", "50.0% [50.0%, 50.0%]"]]
