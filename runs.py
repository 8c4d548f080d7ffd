"""
A training run is its directory (train.py's --out_dir): its settings (config.json), the head and the
optimizer's state after each round, the validation results and the samples, one file per batch, each
written whole or not at all. What keeps a directory one run, so that a killed run started again with
the same command resumes where it stopped: the settings frozen in config.json, samples reused from
another run only where they cannot depend on the difference, and an interrupt that leaves only whole
files.
"""
import fcntl
import json
import math
import os
import shutil
import signal
import sys
from pathlib import Path

import torch

import parallel
from adaptive_head import AdaptiveDecoder
from cli import plural
from continuous_head import ContinuousDecoder
from continuous_head import load_head as load_any_head

# not settings (they may change when a run resumes): where and how fast it runs, how many rounds, and
# out_dir itself, so that a run is the same under any spelling of its path
NOT_SETTINGS = ("rounds", "device", "dtype", "compare", "data_dir", "out_dir", "compile", "samples_from")
# settings of the fit alone: samples collected before the head was trained do not depend on them
FIT_SETTINGS = ("loss", "beta", "lr", "epochs", "train_batch_size", "pairs", "head", "clip")


def settings(args):
    """What makes a run this run: the command line without NOT_SETTINGS."""
    return {k: v for k, v in vars(args).items() if k not in NOT_SETTINGS}


def read_settings(path):
    """A run's config.json as a dict, or one error line saying it is damaged."""
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"error: {path} is unreadable ({type(e).__name__}); if it is this run's, restore it, "
                 "else use another --out_dir")
    if not isinstance(config, dict):
        sys.exit(f"error: {path} is not a run's settings (a JSON object); use another --out_dir")
    return config


def differences(old, config, defaults, ignore=()):
    """The settings of config that old (a run's config.json) does not share, {key: (old's, config's)}; a
    key missing from old, saved before that setting existed, counts as its default (defaults)."""
    return {k: (old.get(k, defaults.get(k)), v) for k, v in config.items()
            if k not in ignore and old.get(k, defaults.get(k)) != v}


def check_same_run(out, config, defaults):
    """A directory holds one run: the same settings resume it, other settings are refused, and a
    directory with a run's files but no settings is not adopted (whose samples are they?)."""
    if (out / "config.json").exists() or (out / "config.json").is_symlink():
        old = read_settings(out / "config.json")
        changed = differences(old, config, defaults)
        if changed:
            sys.exit(f"error: {out} holds a run with other settings {changed}; use another --out_dir "
                     "or the same settings to resume it")
    elif any(out.glob("head*.pt")) or any(out.glob("samples/*.pt")):
        sys.exit(f"error: {out} holds a run's files but no config.json, so its settings are unknown; "
                 "use another --out_dir (or delete that directory to start again there)")


_lock = None  # the open lock file, held until the process ends


def lock(out):
    """One run per directory at a time: an exclusive lock on out/.lock, released by the OS when the
    process ends (however it ends). A second run on the same directory is refused, naming the first."""
    global _lock
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        other = f.read().strip() or "another process"
        sys.exit(f"error: {out} is in use by a run still going ({other}); wait for it to finish, stop it, "
                 "or use another --out_dir")
    f.seek(0)
    f.truncate()
    f.write(f"train.py, process {os.getpid()}")
    f.flush()
    _lock = f


def save_settings(out, config):
    save_atomic(lambda tmp: Path(tmp).write_text(json.dumps(config, indent=1)), out / "config.json")


def reuse_samples(source, out, config, all_rounds, defaults):
    """--samples_from: copy another run's samples that do not depend on how the head is fitted (the
    validation split and round 1, drawn by the untrained head; all rounds when every draw ignores the
    head, all_rounds), after checking that it was collected with the same settings but FIT_SETTINGS."""
    source = Path(source)
    if not (source / "config.json").is_file():
        sys.exit(f"error: --samples_from {source}: no run there (no config.json)")
    theirs = read_settings(source / "config.json")
    differ = differences(theirs, config, defaults, ignore=FIT_SETTINGS)
    if differ:
        sys.exit(f"error: --samples_from {source} was collected with other settings {differ}")
    for pattern in ("val_*.pt", "round*_*.pt" if all_rounds else "round1_*.pt"):
        for f in sorted((source / "samples").glob(pattern)):
            if not (out / "samples" / f.name).exists():
                shutil.copy(f, out / "samples" / f.name)


def save_atomic(save, path):
    """save(tmp) then rename: a file is whole or absent. A full disk stops the run with a message;
    the files saved before it stay intact."""
    try:
        save(str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as a RuntimeError
        Path(str(path) + ".tmp").unlink(missing_ok=True)
        why = e.strerror if isinstance(e, OSError) and e.strerror else "the write failed"
        sys.exit(f"error: could not write {path}: {why} (is the disk full?); what was saved before is "
                 "intact: make room and run the same command again")


# what each kind of file of a run holds: a batch of samples (train.collect), one method's results on
# the validation split (evaluate.run_method), the optimizer's state
HOLDS = {
    "samples": lambda x: isinstance(x, list) and all(
        isinstance(s, dict) and {"id", "kind", "reward", "tokens", "choices", "hidden"} <= s.keys()
        and torch.is_tensor(s["hidden"]) for s in x),
    "results": lambda x: isinstance(x, dict) and {"reward", "metrics", "states", "samples"} <= x.keys(),
    "optimizer": lambda x: isinstance(x, dict) and {"state", "param_groups"} <= x.keys(),
}


def load_or_exit(path, kind):
    """A file this run saved (torch.save of tensors, lists, dicts: never pickled code), checked to
    hold what a file of its kind holds (HOLDS)."""
    try:
        x = torch.load(path, weights_only=True)
        ok = HOLDS[kind](x)
    except Exception as e:
        x, ok = type(e).__name__, False
    if not ok:
        sys.exit(f"error: {path} is damaged ({x if isinstance(x, str) else 'not ' + kind}); delete it and run "
                 "the same command again: that part is made again")
    return x


def exit_on_interrupt():
    """Ctrl-C or a kill: what is saved is whole (files are written atomically), so just stop."""
    def interrupted(signum, frame):
        sys.stdout.flush()
        print("\ninterrupted; run the same command again to resume", file=sys.stderr, flush=True)
        os._exit(130)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)


# -----------------------------------------------------------------------------
# resume: the head and the optimizer's state after each round (head_init.pt, head_round1.pt,
# opt_round1.pt, ...) and the learning metric of each round's head (validation_round1.json, ...)

def head_path(out, r):
    return out / ("head_init.pt" if r == 0 else f"head_round{r}.pt")


def last_round(out):
    """The last round whose head is saved (0: the initialisation alone), None for a fresh run."""
    done = [int(p.stem.removeprefix("head_round")) for p in out.glob("head_round*.pt")
            if p.stem.removeprefix("head_round").isdigit()]
    return max(done) if done else (0 if head_path(out, 0).exists() else None)


def load_head(out, r, d_model, temperatures, level, device):
    """The head saved after round r (either kind: continuous_head.load_head), checked against the command line."""
    try:
        return load_any_head(head_path(out, r), d_model=d_model, temperatures=temperatures, level=level,
                             map_location=device)
    except ValueError as e:
        sys.exit(f"error: {e}")


def save_round(out, r, head, opt, seconds=None):
    """Round r's optimizer state and the seconds its fit took (fit_round<r>.json), then its head (the head
    last: a round with a head is a round done); under torchrun rank 0 writes, the others wait for it."""
    if parallel.main_rank():
        save_atomic(lambda tmp: torch.save(opt.state_dict(), tmp), out / f"opt_round{r}.pt")
        if seconds is not None:
            save_atomic(lambda tmp: Path(tmp).write_text(json.dumps({"seconds": seconds})), out / f"fit_round{r}.json")
        save_atomic(head.save, head_path(out, r))
    parallel.wait()


def resume(out, args, d_model, temperatures, n_round):
    """Where a run starts: (the first round to do, its head, the AdamW optimizer with the state it had).
    A fresh run saves its head's initialisation first, so that a resume reuses it; a run with more
    rounds done than args.rounds is refused (head.pt would become an earlier round's). A resumed run
    says what it finds done (n_round: the prompts of a round)."""
    parallel.wait()  # every rank sees the same files
    start = last_round(out)
    if start is not None and start > args.rounds:
        sys.exit(f"error: {out} has {plural(start, 'round')} done; give --rounds {start} or more (or another "
                 "--out_dir)")
    if parallel.main_rank():
        save_settings(out, settings(args))
        if start is None:
            kind = ContinuousDecoder if args.head == "continuous" else AdaptiveDecoder
            save_atomic(kind(d_model, temperatures, args.level, base_model=str(args.model)).save, head_path(out, 0))
    parallel.wait()
    start = start or 0
    head = load_head(out, start, d_model, temperatures, args.level, args.device)
    # one AdamW for the whole run, its state (moment estimates) carried from round to round, so that a
    # round continues the fit instead of restarting it
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=0.01)
    if start > 0 and (out / f"opt_round{start}.pt").exists():
        opt.load_state_dict(load_or_exit(out / f"opt_round{start}.pt", "optimizer"))
    n_batches = math.ceil(n_round / max(1, args.batch_size // args.n_samples))  # as train.collect makes them
    said = resume_line(out, start, args.rounds, n_batches, len(temperatures))
    if said:
        print(said)
    return start, head, opt


def resume_line(out, start, rounds, n_batches, n_temperatures):
    """What a resumed run finds done, or None for a fresh one."""
    n_val = len(list((out / "samples").glob("val_*.pt")))
    if start == 0 and not n_val:
        return None
    found = "all rounds done"
    if start < rounds:
        saved = len(list((out / "samples").glob(f"round{start + 1}_batch*.pt")))
        found = f"round {start + 1}, {saved} of {plural(n_batches, 'batch', 'batches')} collected"
    if n_val < n_temperatures:
        found = f"validation, {n_val} of {plural(n_temperatures, 'temperature')} decoded"
    return f"resuming {out}: {found}"


def validation_of(out, r, compute):
    """Round r's learning metric (wins, mean_tau), computed once by compute() (on every rank under
    torchrun) and kept in validation_round<r>.json."""
    path = out / f"validation_round{r}.json"
    parallel.wait()  # every rank sees the same files
    if not path.exists():
        wins, mean_tau = compute()
        if parallel.main_rank():
            save_atomic(lambda tmp: Path(tmp).write_text(json.dumps({"wins": wins, "mean_tau": mean_tau})), path)
        parallel.wait()
    try:
        m = json.loads(path.read_text())
        return m["wins"], m["mean_tau"]
    except (ValueError, KeyError, TypeError):
        sys.exit(f"error: {path} is damaged; delete it and run the same command again: it is computed again")


def open_run(out, config, samples_from, all_rounds, defaults):
    """This process's run from here on: out_dir locked (no other process may write it), its settings
    checked again now that none can, its samples folder, and --samples_from's samples copied in."""
    if parallel.main_rank():  # under torchrun: rank 0's, the others wait
        lock(out)
        check_same_run(out, config, defaults)
        (out / "samples").mkdir(exist_ok=True)
        if samples_from:  # samples that do not depend on how the head is fitted: reused, not generated again
            reuse_samples(samples_from, out, config, all_rounds, defaults)
    parallel.wait()
