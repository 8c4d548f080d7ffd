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
def test_report_page_draws_in_a_browser(tmp_path):
    from adaptive_head import AdaptiveDecoder
    from evaluate import evaluate
    from checkpoints import load_model
    from tasks import synthetic
    from test_evaluate import CharTokenizer

    model = load_model(FIXTURES / "llama_gqa_tied")
    head = AdaptiveDecoder(model.config.d_model, level="sequence")
    temps = head.temperatures.tolist()
    rounds = [{"round": r, "wins": {f"tau={t:g}": (0.4 + 0.05 * r, 0.3, 0.6) for t in temps},
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
