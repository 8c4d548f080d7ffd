import torch

from report import ci, html_page, number, pooled_table, temperature_html


def test_temperature_html():
    class Tok:
        def decode(self, ids):
            return "".join(chr(97 + i) for i in ids) + "<"
    page = html_page([temperature_html(Tok(), [0, 1], [0.0, 1.0], torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
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


# -----------------------------------------------------------------------------
# report.html in a real browser (headless Chromium): the pictures are there and drawn

import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                None)


def browser(*args):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: apt-get install chromium (./run.sh test does)")
@pytest.mark.parametrize("configs", [None, [1.0, 0.0, (1.0, 0.9, None), (1.2, None, 0.1)], "continuous"])
def test_report_page_draws_in_a_browser(tmp_path, configs):
    from adaptive_head import DEFAULT_TEMPERATURES, AdaptiveDecoder
    from continuous_head import ContinuousDecoder
    from evaluate import evaluate
    from checkpoints import load_model
    from tasks import synthetic
    from test_evaluate import CharTokenizer

    model = load_model(FIXTURES / "llama_gqa_tied")
    if configs == "continuous":  # its temperatures, counted at the nearest of the grid, drawn alike
        head = ContinuousDecoder(model.config.d_model, DEFAULT_TEMPERATURES, level="sequence")
    else:
        head = AdaptiveDecoder(model.config.d_model, configs or DEFAULT_TEMPERATURES, level="sequence")
    temps = head.names()
    rounds = [{"round": r, "wins": {name: (0.4 + 0.05 * r, 0.3, 0.6) for name in temps},
               "mean_tau": {"copy": 0.1 * r, "varied": 0.3 * r}} for r in range(3)]
    report = evaluate(model, CharTokenizer(), head, synthetic.prompts("test", n=4), n_samples=2, max_new_tokens=4,
                      out_dir=tmp_path, rounds=rounds)
    page = tmp_path / "report.html"
    dom = browser("--dump-dom", page.as_uri()).stdout.decode()
    count = lambda cls: len(re.findall(rf'<g class="{cls}"', dom))  # noqa: E731
    K, subs = len(temps), len(report["subtasks"])
    assert len(re.findall(r'<svg class="figure"', dom)) == 2 + subs  # win rates, rounds, one per subtask
    assert count("fixed") == K * subs and count("choice") == K * subs and count("ad") == subs  # (a)
    assert count("adwin") == K and count("oraclewin") == K                                     # (b)
    assert count("metric") == len(rounds) and count("tau") == len(rounds) * 2                  # (c)
    assert report["pooled"] and "AD_seq beat" in dom and "oracle" in dom                       # the sentence
    # drawn: the screenshot is not blank, and the pictures are what differs from the page without them
    blank, bare = tmp_path / "blank.html", tmp_path / "bare.html"
    blank.write_text("<!doctype html><body></body>")
    bare.write_text(re.sub(r"<svg.*?</svg>", "", page.read_text(), flags=re.S))
    shots = {}
    for p in (page, bare, blank):
        png = tmp_path / f"{p.stem}.png"
        browser(f"--screenshot={png}", "--window-size=1000,4000", p.as_uri())
        shots[p.stem] = png.read_bytes()
    assert all(s.startswith(b"\x89PNG") for s in shots.values())
    assert len(shots["report"]) > 5 * len(shots["blank"]) and shots["report"] != shots["bare"]


def test_reward_figure_places_every_choice_in_order_of_temperature():
    # one temperature with three configurations, and an unsorted list: every choice gets its own
    # place, left to right by temperature, none dropped, each labelled by its name
    from report import reward_figure
    names = ["tau=1", "tau=0.7", "tau=0", "tau=1/top_p=0.9", "tau=1/min_p=0.1"]
    report = {"temperatures": [1.0, 0.7, 0.0, 1.0, 1.0], "configs": names, "level": "sequence",
              "subtasks": {"s": {"mean_reward_ci": {**{n: (0.1 * i, 0.0, 0.5) for i, n in enumerate(names)},
                                                    "AD": (0.3, 0.2, 0.4)},
                                 "ad_temperature_counts": [1, 2, 3, 4, 5]}}}
    svg = reward_figure(report, "s")
    points = re.findall(r"<g class='fixed'><title>(.*?): mean reward.*?<circle cx='([\d.]+)'", svg)
    assert sorted(n for n, _ in points) == sorted(names) and len({x for _, x in points}) == len(names)
    by_x = [n for n, x in sorted(points, key=lambda p: float(p[1]))]
    assert by_x == ["tau=0", "tau=0.7", "tau=1", "tau=1/min_p=0.1", "tau=1/top_p=0.9"]
    assert all(f">{n.removeprefix('tau=')}</text>" in svg for n in names)  # the axis labels
    assert len(re.findall("<g class='choice'>", svg)) == len(names)
    # a report of temperatures alone (no "configs") is named as before: tau=t
    del report["configs"]
    report["temperatures"] = [0.0, 0.5]
    report["subtasks"]["s"].update(mean_reward_ci={"tau=0": (0, 0, 0), "tau=0.5": (1, 1, 1), "AD": (1, 1, 1)},
                                   ad_temperature_counts=[0, 2])
    assert len(re.findall("<g class='fixed'>", reward_figure(report, "s"))) == 2


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: apt-get install chromium (./run.sh test does)")
def test_comparison_page_draws_in_a_browser(tmp_path):
    """compare.py's page: one mark with its interval per method, the oracle among them, the table."""
    import random
    import compare
    from tasks import synthetic
    examples = synthetic.prompts("test", n=8)
    rng = random.Random(0)
    fixed = ["tau=0", "tau=0.5", "tau=1"]
    result = lambda t: {"reward": [rng.random() for _ in examples],  # noqa: E731
                        "samples": [{"id": ex["id"], "temperatures": [t, t]} for ex in examples]}
    results = {"lpo": result(0.5), "continuous": result(0.7), **{n: result(float(n[4:])) for n in fixed}}
    summary = compare.summary(results, examples, {"lpo": ("x", 1.5), "continuous": ("y", 2.0)}, "sequence", fixed)
    assert summary["best_fixed"] in fixed and list(summary["methods"])[:2] == ["lpo", "continuous"]
    assert summary["methods"]["lpo"]["mean_tau"] == {"copy": 0.5, "varied": 0.5}
    assert summary["methods"][summary["best_fixed"]]["win_rate_vs_best"][0] == 0.5
    compare.write(summary, tmp_path, "report")
    dom = browser("--dump-dom", (tmp_path / "report.html").as_uri()).stdout.decode()
    assert len(re.findall(r'<g class="method"', dom)) == len(fixed) + 3  # two heads, the fixed ones, the oracle
    assert "oracle" in dom and "training s" in dom
