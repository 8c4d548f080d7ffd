"""evaluate.py on the tiny checkpoint with a character-level stand-in tokenizer and the synthetic task."""
import json
from pathlib import Path

import pytest
import torch

from adaptive_head import DEFAULT_TEMPERATURES, AdaptiveDecoder, config_name
from evaluate import evaluate, exact_ad_seq, methods, run_method
from checkpoints import load_model
from tasks import synthetic

FIXTURES = Path(__file__).parent / "fixtures"


class CharTokenizer:
    """Token i is the character chr(32 + i % 90): enough for prompts in and text out."""
    stop_ids = []

    def encode_prompt(self, text):
        return [(ord(c) - 32) % 90 for c in text[-40:]]

    encode = encode_prompt  # raw text (tasks with CHAT = False)

    def decode(self, ids):
        return "".join(chr(32 + i % 90) for i in ids)


def test_head_fixed_at_greedy_ties_with_greedy(tmp_path):
    model = load_model(FIXTURES / "llama_gqa_tied")
    head = AdaptiveDecoder(model.config.d_model, level="token")
    with torch.no_grad():
        head.mlp[-1].bias[0] = 100.0  # always temperature 0
    examples = synthetic.prompts("test", n=6)
    report = evaluate(model, CharTokenizer(), head, examples, n_samples=2, max_new_tokens=5, out_dir=tmp_path)
    assert set(report["subtasks"]) == {"copy", "varied"}
    for sub in report["subtasks"].values():
        methods = sub["methods"]
        assert list(methods) == ["AD", *(config_name(t) for t in DEFAULT_TEMPERATURES),
                                 "min-p 0.1", "EDT"]
        # AD at temperature 0 is greedy decoding: the same responses, so every prompt ties
        assert methods["AD"]["mean_reward"] == methods["tau=0"]["mean_reward"]
        assert methods["tau=0"]["ad_win_rate"] == (0.5, 0.5, 0.5)
        assert sub["ad_temperature_counts"] == [3 * 2 * 5] + [0] * (len(DEFAULT_TEMPERATURES) - 1)  # 3 x 2 x 5 tokens
        assert sub["ad_mean_temperature"] == 0.0
    assert report["subtasks"]["varied"]["methods"]["AD"]["mean_reward"] == 0.0  # identical samples
    assert json.loads((tmp_path / "report.json").read_text())["level"] == "token"
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")


def test_report_page_holds_the_tables_and_settings(tmp_path):
    # report.html is where a user looks for the results: every number of report.json's tables, in
    # the precision the printed tables use, and the run's settings and time
    import re
    import time
    model = load_model(FIXTURES / "llama_gqa_tied")
    head = AdaptiveDecoder(model.config.d_model, level="sequence")
    settings = {"task": "synthetic", "model": "llama_gqa_tied", "n_samples": 2, "started": time.time() - 61}
    evaluate(model, CharTokenizer(), head, synthetic.prompts("test", n=4), n_samples=2, max_new_tokens=4,
             out_dir=tmp_path, settings=settings)
    report = json.loads((tmp_path / "report.json").read_text())
    page = (tmp_path / "report.html").read_text()
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", page)
    assert report["settings"]["seconds"] >= 61 and "started" not in report["settings"]
    for key, value in report["settings"].items():
        assert key in cells and str(value) in cells
    n = 0
    for sub in report["subtasks"].values():
        for name, m in sub["methods"].items():
            assert name in cells and f"{m['mean_reward']:.3f}" in cells
            for key, value in m.items():
                if isinstance(value, list):  # a win rate: (rate, lo, hi)
                    assert "{:.1%} [{:.1%}, {:.1%}]".format(*value) in cells, (name, key)
                    n += 1
                elif key != "mean_reward":
                    assert f"{value:.3f}" in cells
    assert n == 2 * 8  # two subtasks, a win rate against each of the 8 other methods
    for m in report["pooled"]["methods"].values():  # a mix: AD and the oracle on all prompts pooled
        for w in (m["ad_win_rate"], m["oracle_win_rate"]):
            assert "{:.1%} [{:.1%}, {:.1%}]".format(*w) in cells
    assert "<script" not in page and "http" not in page  # one self-contained file


def test_sentence_start_temperatures():
    # the paper's Fig. 5 on constrained stories: temperature on a sentence's first token and elsewhere
    from tasks import constrained_stories
    tok = CharTokenizer()
    text = 'Abby ran. "Absolutely," she said.'
    ids = tok.encode_prompt(text)
    taus = [1.0 if i in (0, 11) else 0.2 for i in range(len(ids))]  # 'A' of Abby, 'A' of "Absolutely
    m = constrained_stories.temperature_metrics([], [{"tokens": ids, "temperatures": taus + [0.6]}], tok,
                                                "token")
    assert list(m.values())[:2] == [1.0, pytest.approx(0.2)]   # the stop token's step (0.6) is not a token
    assert list(m.values())[2] == pytest.approx((0.8, 0.8, 0.8))  # one response: a difference of 0.8
    two = [{"tokens": ids, "temperatures": taus}, {"tokens": ids, "temperatures": [0.2 if t == 1.0 else 0.6
                                                                                   for t in taus]}]
    m = constrained_stories.temperature_metrics([], two, tok, "token")
    assert list(m)[2] == "temperature on sentence starts minus the rest, per response (2) [95% CI]"
    assert list(m.values())[2] == pytest.approx((0.2, -0.4, 0.8))
    # one temperature a response
    assert constrained_stories.temperature_metrics([], [], tok, "sequence") == {}


def test_metric_win_rate_where_less_is_better(tmp_path, monkeypatch):
    # a task whose metric is "less is better" (like repetition's % repeated 3-grams): AD wins a
    # prompt by having less of it, so its win rates there equal those on the reward, not their mirror
    import types
    import tasks
    task = types.SimpleNamespace(
        NAME="fewer_repeats", CHAT=False, LOWER_IS_BETTER={"repeats %"}, LABEL="a stand-in",
        reward=lambda ex, r: len(set(r)) / max(len(r), 1),  # distinct characters: more is better
        group_metrics=lambda ex, rs, rewards, judge: {"repeats %": 100 * (1 - sum(rewards) / len(rewards))})
    monkeypatch.setitem(tasks.TASKS, "fewer_repeats", task)
    model = load_model(FIXTURES / "llama_gqa_tied")
    head = AdaptiveDecoder(model.config.d_model, level="token")
    with torch.no_grad():
        head.mlp[-1].bias[-1] = 100.0  # always the hottest temperature
    examples = [{"id": f"r{i}", "task": "fewer_repeats", "prompt": "ab" * (i + 3)} for i in range(8)]
    report = evaluate(model, CharTokenizer(), head, examples, n_samples=1, max_new_tokens=20,
                      out_dir=tmp_path)
    methods = report["subtasks"]["fewer_repeats"]["methods"]
    for name, m in methods.items():
        if name != "AD":
            assert m["repeats % AD win rate"] == m["ad_win_rate"]
    assert methods["tau=0"]["ad_win_rate"][0] != 0.5  # greedy and hot decoding differ here
    assert report["subtasks"]["fewer_repeats"]["label"] == "a stand-in"  # labelled where reported
    assert "fewer_repeats: a stand-in" in (tmp_path / "report.html").read_text()


def test_pooled_win_rates_by_hand():
    # a mix of two subtasks on different scales: each prompt is won, tied or lost on its own reward
    from evaluate import pooled_win_rates
    from tasks.stats import bootstrap_ci
    subtask_of = ["math"] * 4 + ["story"] * 4
    rewards = {"AD": [1, 1, 0, 0, 3, 2, 3, 3],
               "tau=0": [1, 1, 1, 0, 1, 2, 1, 2],     # best for math (0.75 against 0.25)
               "tau=1": [0, 0, 1, 0, 3, 3, 3, 3]}     # best for stories (3 against 1.5)
    pooled = pooled_win_rates(rewards, subtask_of, ["tau=0", "tau=1"])
    assert pooled["oracle"] == {"math": "tau=0", "story": "tau=1"} and pooled["prompts"] == 8
    ad_vs_0 = [.5, .5, 0, .5, 1, .5, 1, 1]                 # by hand: 5 of 8
    oracle_vs_1 = [1, 1, .5, .5, .5, .5, .5, .5]           # the oracle plays tau=1 on stories: ties
    assert pooled["methods"]["tau=0"]["ad_win_rate"] == bootstrap_ci(ad_vs_0)
    assert pooled["methods"]["tau=1"]["oracle_win_rate"] == bootstrap_ci(oracle_vs_1)
    rate, lo, hi = pooled["methods"]["tau=0"]["ad_win_rate"]
    assert rate == 0.625 and lo < rate < hi


def test_relative_reward_is_scored_on_the_group(tmp_path, monkeypatch):
    # a reward relative to the other responses (stories' novelty): evaluation draws N responses per
    # prompt and scores them together, the reward training used. Scored one by one, every response
    # would be "distinct" and the mean reward 1 for every method, greedy included.
    import types
    import tasks
    calls = []

    def group_reward(example, responses, judge):  # 1 for a response no other response equals
        calls.append(len(responses))
        return [float(responses.count(r) == 1) for r in responses]
    task = types.SimpleNamespace(NAME="distinct", CHAT=False, RELATIVE=True, EVAL_SAMPLES=2,
                                 group_reward=group_reward)
    monkeypatch.setitem(tasks.TASKS, "distinct", task)
    model = load_model(FIXTURES / "llama_gqa_tied")
    head = AdaptiveDecoder(model.config.d_model, level="sequence")
    examples = [{"id": f"d{i}", "task": "distinct", "prompt": "xyz" * (i + 2)} for i in range(5)]
    # per task: 3 responses per prompt, as a training run with --n_samples 3 would ask
    report = evaluate(model, CharTokenizer(), head, examples, n_samples={"distinct": 3}, max_new_tokens=8,
                      compare="fixed")
    assert calls == [3] * 5 * len(DEFAULT_TEMPERATURES)  # 5 prompts, every fixed temperature (AD_seq: a lookup)
    r = report["subtasks"]["distinct"]
    assert r["samples"] == 3 and r["reward"] == "the task's reward"
    assert list(r["methods"]) == ["AD", *(config_name(t) for t in DEFAULT_TEMPERATURES)]
    assert r["methods"]["tau=0"]["mean_reward"] == 0.0    # greedy: three identical responses
    assert r["methods"]["tau=1"]["mean_reward"] > 0.5     # random characters differ
    calls.clear()  # evaluate.py's default: the task's EVAL_SAMPLES
    evaluate(model, CharTokenizer(), head, examples, max_new_tokens=8, compare="none")
    assert calls == [2] * 5


def test_sweep_of_fixed_temperatures(tmp_path):
    # how a mixture is chosen: every fixed temperature on (training) prompts, no head; the oracle's
    # headroom on all prompts pooled
    from evaluate import sweep
    model = load_model(FIXTURES / "llama_gqa_tied")
    examples = synthetic.prompts("train", n=6)
    out = sweep(model, CharTokenizer(), examples, [0.0, 1.0], n_samples=3, max_new_tokens=5, out_dir=tmp_path)
    assert set(out["subtasks"]) == {"copy", "varied"}
    varied = out["subtasks"]["varied"]["methods"]
    assert list(varied) == ["tau=0", "tau=1"] and varied["tau=0"]["mean_reward"] == (0.0, 0.0, 0.0)
    assert out["pooled"]["oracle"]["varied"] == "tau=1"
    assert set(out["pooled"]["methods"]["tau=0"]) == {"oracle_win_rate"}   # no AD in a sweep
    assert json.loads((tmp_path / "sweep.json").read_text())["temperatures"] == [0.0, 1.0]


@pytest.mark.slow
def test_cli_asks_for_a_head_or_a_sweep():
    import subprocess
    import sys
    root = Path(__file__).parent.parent
    for args, says in [([], "give either --head"), (["--sweep", "--head", "h.pt"], "give either --head"),
                       (["--sweep", "--temperatures=-1,0"], "not a number >= 0"),
                       (["--sweep", "--configs", "1/top_q=1"], "unknown setting 'top_q'")]:
        r = subprocess.run([sys.executable, str(root / "evaluate.py"), *args], cwd=root, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 1 and says in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_exact_ad_seq_is_the_generated_evaluation():
    # AD_seq's response to a prompt is the fixed-tau response with the same rows and seeds: the
    # lookup (exact_ad_seq) and AD_seq generated for real agree sample for sample
    model = load_model(FIXTURES / "llama_gqa_tied")
    torch.manual_seed(3)
    head = AdaptiveDecoder(model.config.d_model, level="sequence")
    with torch.no_grad():
        head.mlp[-1].weight.normal_(0, 5.0)  # prompts get different temperatures
    examples = synthetic.prompts("test", n=8)
    n = [3] * len(examples)
    run = lambda kw: run_method(model, CharTokenizer(), kw, examples, n, 6, 12, 0, None, False,  # noqa: E731
                                lambda k: None)
    fixed = {name: run(kw) for name, kw in methods(None, "fixed", head.temperatures.tolist()).items()}
    generated, exact = run(dict(head=head, selection="greedy")), exact_ad_seq(head, fixed)
    assert len({s["temperatures"][0] for s in exact["samples"]}) >= 3  # several temperatures in play
    assert exact["reward"] == generated["reward"] and exact["metrics"] == generated["metrics"]
    strip = lambda ss: [(s["id"], s["tokens"], s["reward"], s["temperatures"][0]) for s in ss]  # noqa: E731
    assert strip(exact["samples"]) == strip(generated["samples"])
    # and the reports, generated or looked up, are the same
    a = evaluate(model, CharTokenizer(), head, examples, n_samples=3, max_new_tokens=6, batch_size=12,
                 compare="fixed", exact=True)
    b = evaluate(model, CharTokenizer(), head, examples, n_samples=3, max_new_tokens=6, batch_size=12,
                 compare="fixed", exact=False)
    assert a == b
