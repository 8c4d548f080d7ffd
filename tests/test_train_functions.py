"""train.py's pieces called alone, as a lecture or a new method would call them: import train does
nothing; collect, validation_fixed, learning_metric, train_head and the resume helpers of runs.py
take what they need as arguments (a tiny real-format checkpoint, a character tokenizer, the
synthetic task)."""
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import runs
import train
from adaptive_head import AdaptiveDecoder
from checkpoints import load_model
from evaluate import batches_by_length, exact_ad_seq, samples_per_prompt
from lpo import preference_pairs
from tasks import synthetic

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


class CharTokenizer:
    """Token i is the character chr(32 + i % 90): enough for prompts in and text out."""
    stop_ids = []

    def encode_prompt(self, text):
        return [(ord(c) - 32) % 90 for c in text[-40:]]

    encode = encode_prompt

    def decode(self, ids):
        return "".join(chr(32 + i % 90) for i in ids)


@pytest.fixture(scope="module")
def model():
    return load_model(FIXTURES / "llama_gqa_tied")


def args_for(tmp_path, *extra):
    return train.parse_args(["--task", "synthetic", "--n_samples", "2", "--batch_size", "4", "--max_new_tokens", "5",
                             "--out_dir", str(tmp_path), *extra])


def test_import_train_does_nothing(tmp_path):
    r = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); import train"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr
    assert list(tmp_path.iterdir()) == []  # no out/ made, nothing written


def test_batches_by_length_keep_a_prompts_responses_together():
    lengths = [5, 1, 9, 3, 3, 7, 2]
    n = [2, 2, 4, 2, 2, 2, 2]
    batches = batches_by_length(lengths, n, 5)
    assert [i for b in batches for i in b] == sorted(range(7), key=lambda i: lengths[i])  # by length, all once
    assert all(sum(n[i] for i in b) <= 5 for b in batches)
    # a prompt with more responses than a batch holds goes alone
    assert batches_by_length([4, 2], [8, 1], 5) == [[1], [0]]


def test_collect_saves_each_batch_and_reads_it_back(model, tmp_path):
    args = args_for(tmp_path, "--level", "token", "--explore", "0.5")
    (tmp_path / "samples").mkdir()
    head = AdaptiveDecoder(model.config.d_model, level="token")
    examples = synthetic.prompts("train", n=6)
    tok = CharTokenizer()
    samples = train.collect(model, tok, None, head, examples, "round1", tmp_path, args)
    files = sorted((tmp_path / "samples").glob("round1_batch*.pt"))
    assert len(files) == 3 and len(samples) == 12  # 2 prompts x 2 responses a batch of 4 rows
    assert all(len(s["choices"]) == len(s["hidden"]) for s in samples)
    # a batch lost (a kill), the others kept: collected again to the same samples, the others read back
    kept = files[0].stat().st_mtime_ns
    files[1].unlink()
    again = train.collect(model, tok, None, head, examples, "round1", tmp_path, args)
    assert files[0].stat().st_mtime_ns == kept and files[1].exists()
    assert [(s["id"], s["tokens"], s["choices"], s["reward"]) for s in again] == \
           [(s["id"], s["tokens"], s["choices"], s["reward"]) for s in samples]
    # each batch is collect_batch with its own seed: another seed, other samples
    (tmp_path / "x" / "samples").mkdir(parents=True)
    other = train.collect(model, tok, None, head, examples, "round1", tmp_path / "x",
                          args_for(tmp_path / "x", "--seed", "1", "--level", "token"))
    assert [s["tokens"] for s in other] != [s["tokens"] for s in samples]


def test_validation_then_learning_metric_of_a_head_fixed_at_one_temperature(model, tmp_path):
    # AD_seq's learning metric is a lookup in the fixed temperatures' validation results: a head that
    # always chooses tau = 0.6 ties with tau = 0.6 on every prompt (win rate 0.5)
    args = args_for(tmp_path)
    (tmp_path / "samples").mkdir()
    examples = synthetic.prompts("train", n=4)
    n = samples_per_prompt(examples, 2)
    temperatures = [(0.0, None, None), (0.6, None, None), (1.0, None, None), (1.0, 0.5, 0.1)]
    fixed, rate = train.validation_fixed(model, CharTokenizer(), None, temperatures, examples, n, tmp_path, args)
    assert set(fixed) == {"tau=0", "tau=0.6", "tau=1", "tau=1/top_p=0.5/min_p=0.1"} and rate > 0
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [  # a file each, in samples/
        "val_tau=0.6.pt", "val_tau=0.pt", "val_tau=1.pt", "val_tau=1_top_p=0.5_min_p=0.1.pt"]
    again, rate = train.validation_fixed(model, CharTokenizer(), None, temperatures, examples, n, tmp_path, args)
    assert rate is None and again["tau=1"]["reward"] == fixed["tau=1"]["reward"]  # read back, not decoded
    head = AdaptiveDecoder(model.config.d_model, temperatures, level="sequence")
    with torch.no_grad():
        head.mlp[-1].bias[1] = 100.0
    wins, mean_tau = train.learning_metric(head, fixed, model, CharTokenizer(), None, examples, n, args)
    assert wins["tau=0.6"] == (0.5, 0.5, 0.5)
    assert mean_tau == {sub: pytest.approx(0.6) for sub in mean_tau} and len(mean_tau) == 2
    assert exact_ad_seq(head, fixed)["reward"] == fixed["tau=0.6"]["reward"]


def test_train_head_learns_planted_pairs_and_stops_on_a_diverging_fit(model, tmp_path):
    # responses whose every token was drawn at temperature index 0 beat those drawn at index 5: after
    # train_head the head puts more probability on index 0 at those states
    args = args_for(tmp_path, "--level", "token", "--epochs", "20", "--n_samples", "4")
    g = torch.Generator().manual_seed(0)
    d, samples = model.config.d_model, []
    for i in range(8):
        for j, k in enumerate((0, 5, 0, 5)):
            samples.append({"id": f"p{i}", "kind": "copy", "reward": float(k == 0), "tokens": [1, 2, 3],
                            "choices": [k] * 4, "hidden": torch.randn(4, d, generator=g)})
    pairs = preference_pairs(samples, "all", "token")
    assert len(pairs) == 8 * 4
    torch.manual_seed(0)
    head, ref = AdaptiveDecoder(d, level="token"), AdaptiveDecoder(d, level="token")
    ref.load_state_dict(head.state_dict())
    states = torch.cat([s["hidden"] for s in samples])
    before = head.log_probs(states).exp()[:, 0].mean()
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
    train.train_head(head, opt, pairs, ref, model.lm_head, random.Random(0), 1, args)
    after = head.log_probs(states).exp()
    assert after[:, 0].mean() > 0.5 > before and after[:, 0].mean() > 5 * after[:, 5].mean()
    with pytest.raises(SystemExit, match="--beta"):
        train.train_head(head, opt, pairs, ref, model.lm_head, random.Random(0), 1,
                         args_for(tmp_path, "--level", "token", "--beta", "1e300"))


def test_the_last_round_and_the_best_one(tmp_path):
    assert runs.last_round(tmp_path) is None  # a fresh run
    head = AdaptiveDecoder(8, level="sequence")
    runs.save_atomic(head.save, runs.head_path(tmp_path, 0))
    assert runs.last_round(tmp_path) == 0
    opt = torch.optim.AdamW(head.parameters())
    for r in (1, 2):
        runs.save_round(tmp_path, r, head, opt)
    assert runs.last_round(tmp_path) == 2 and (tmp_path / "opt_round2.pt").exists()
    # the best round: the highest lowest win rate; a tie goes to the later round (more pairs)
    metric = {1: ({"a": (0.6, 0, 1), "b": (0.4, 0, 1)}, {}), 2: ({"a": (0.5, 0, 1), "b": (0.55, 0, 1)}, {}),
              3: ({"a": (0.5, 0, 1), "b": (0.7, 0, 1)}, {})}
    assert train.best_round(metric.get, 2)[0] == 2
    assert train.best_round(metric.get, 3)[0] == 3


def test_the_lecture_files_have_no_function_over_50_lines():
    # the promise to lecturers: every function of the files a lecture reads fits a screen
    import ast
    for name in ("sample.py", "train.py", "lpo.py", "adaptive_head.py", "grpo.py", "continuous_head.py", "losses.py",
                 "compare.py"):
        tree = ast.parse((ROOT / name).read_text())
        long = [(f.name, f.end_lineno - f.lineno + 1) for f in ast.walk(tree)
                if isinstance(f, ast.FunctionDef) and f.end_lineno - f.lineno + 1 > 50]
        assert not long, (name, long)


def test_the_losses_are_one_registry_that_argparse_reads(tmp_path):
    from losses import LOSSES
    action = next(a for a in train.parser()._actions if a.dest == "loss")
    assert list(action.choices) == list(LOSSES) == ["lpo", "lpo_marginal", "nll", "grpo", "ce"]
    assert args_for(tmp_path).loss == "lpo" and args_for(tmp_path, "--head", "continuous").loss == "ce"
    assert {n for n, f in LOSSES.items() if f.head == "continuous"} == {"ce"}
    with pytest.raises(SystemExit, match="--loss grpo trains a discrete head"):
        args_for(tmp_path, "--loss", "grpo", "--head", "continuous")
    with pytest.raises(SystemExit, match="--loss ce trains a continuous head"):
        args_for(tmp_path, "--loss", "ce")
    with pytest.raises(SystemExit, match="temperature alone"):
        args_for(tmp_path, "--head", "continuous", "--configs", "0,1.0/top_p=0.9")
    with pytest.raises(SystemExit, match="--clip"):
        args_for(tmp_path, "--clip", "-0.1")


def test_a_setting_missing_from_an_older_run_counts_as_its_default(tmp_path):
    import json
    config = runs.settings(args_for(tmp_path))
    older = {k: v for k, v in config.items() if k not in ("head", "clip")}  # saved before those settings existed
    (tmp_path / "config.json").write_text(json.dumps(older))
    runs.check_same_run(tmp_path, config, train.defaults())  # the same run: resumed, not refused
    with pytest.raises(SystemExit, match="other settings .*clip"):
        runs.check_same_run(tmp_path, dict(config, clip=0.0), train.defaults())
    # another run reusing its samples: it may differ in how the head is fitted, not in what was collected
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "samples").mkdir()
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "round1_batch0000.pt").write_bytes(b"x")
    runs.reuse_samples(tmp_path, tmp_path / "new", dict(config, loss="grpo", clip=0.0), False, train.defaults())
    assert (tmp_path / "new" / "samples" / "round1_batch0000.pt").exists()
    with pytest.raises(SystemExit, match="other settings .*n_samples"):
        runs.reuse_samples(tmp_path, tmp_path / "new", dict(config, n_samples=9), False, train.defaults())


@pytest.mark.parametrize("loss", ["grpo", "ce"])
def test_train_head_fits_with_the_rivals_and_says_how(model, tmp_path, loss):
    """train_head with --loss grpo (responses and their advantages) and ce (a continuous head on each
    prompt's best response): planted responses drawn at index 0 (temperature 0) beat those at index 5."""
    from continuous_head import ContinuousDecoder
    from losses import LOSSES
    args = args_for(tmp_path, "--level", "token", "--epochs", "20", "--n_samples", "4", "--loss", loss,
                    *(["--head", "continuous"] if loss == "ce" else []))
    g = torch.Generator().manual_seed(0)
    d, samples = model.config.d_model, []
    for i in range(8):
        for k in (0, 5, 0, 5):
            hidden = torch.randn(4, d, generator=g)
            samples.append({"id": f"p{i}", "kind": "copy", "reward": float(k == 0), "choices": [k] * 4,
                            "tokens": model.lm_head(hidden[:3]).argmax(-1).tolist(),  # what tau = 0 draws
                            "stop": None, "hidden": hidden, "behaviour_logps": [-1.79] * 4})
    items = LOSSES[loss].items(samples, args)
    torch.manual_seed(0)
    head = (ContinuousDecoder if loss == "ce" else AdaptiveDecoder)(d, level="token")
    states = torch.cat([s["hidden"] for s in samples])
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
    seconds = train.train_head(head, opt, items, None, model.lm_head, random.Random(0), 1, args)
    assert seconds > 0
    if loss == "grpo":
        assert len(items) == 32  # every response has an advantage of +-1
        assert head.log_probs(states).exp()[:, 0].mean() > 0.5
        assert "better than their prompt's mean" in train.fit_line(head, items, args)
    else:
        assert len(items) == 8  # one best response a prompt
        assert head.temperature(states).mean() < 0.3  # the argmax tokens: a cold temperature
        assert "mean temperature on the 8 targets" in train.fit_line(head, items, args)
