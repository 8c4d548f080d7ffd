"""
What the scripts (train.py, evaluate.py, sample.py, bench.py) share and the lesson does not need:
settings checked before any work, one 'error: ...' line instead of a traceback for a user's mistake,
the model's device and dtype, and progress lines for long jobs.
"""
import os
import sys
import time
from pathlib import Path

import torch

SEED_RANGE = (0, 2 ** 63 - 1)  # what torch.manual_seed takes


def one_line_errors():
    """A user's mistake or the machine's refusal ends the script with one 'error: ...' line and a
    non-zero exit, not a traceback: the project's own errors (ValueError, WeightFileError, raised by
    its checks with a message that says what to do) and the OS's (OSError: a missing file, a full
    disk). Ctrl-C says 'interrupted'. Anything else is a bug and keeps its traceback."""
    default = sys.excepthook

    def hook(kind, error, tb):
        sys.stdout.flush()
        if issubclass(kind, KeyboardInterrupt):
            print("\ninterrupted", file=sys.stderr, flush=True)
            os._exit(130)
        if issubclass(kind, (ValueError, OSError)):
            print(f"error: {error}", file=sys.stderr, flush=True)
            os._exit(1)
        default(kind, error, tb)
    sys.excepthook = hook


def check_settings(args, at_least=None, between=None):
    """Command-line numbers in their ranges, before anything is loaded or written, else one
    'error: ...' line that names the setting. at_least: {name: low or (low, why)};
    between: {name: (low, high)}. A setting left at None is not checked; a list is checked element
    by element; infinity is never a setting."""
    def check(name, value, low, high, why=""):
        for v in value if isinstance(value, list) else [value]:
            if not (v is None or v >= low and (high is None or v <= high) and v != float("inf")):  # and NaN
                sys.exit(f"error: --{name} {v}: must be "
                         + (f"at least {low}{why}" if high is None else f"between {low} and {high}"))
    for name, low in (at_least or {}).items():
        low, why = low if isinstance(low, tuple) else (low, "")
        check(name, getattr(args, name), low, None, why)
    for name, (low, high) in (between or {}).items():
        check(name, getattr(args, name), low, high)


def check_device(device):
    """--device: one torch knows and this machine has."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        sys.exit(f"error: --device {device!r}: not a device; use cpu, cuda or cuda:N")
    if kind == "cuda" and not torch.cuda.is_available():
        sys.exit(f"error: --device {device}: no CUDA GPU is available here; use --device cpu")
    if kind == "cuda" and torch.device(device).index is not None \
            and torch.device(device).index >= torch.cuda.device_count():
        sys.exit(f"error: --device {device}: this machine has {torch.cuda.device_count()} GPU(s)")
    if kind not in ("cpu", "cuda"):
        sys.exit(f"error: --device {device}: only cpu and cuda are supported")


def typed(argv, *flags):
    """Which of flags (aliases of one option) the command line argv used, for its error messages."""
    return next((f for f in flags if any(a == f or a.startswith(f + "=") for a in argv)), flags[0])


def parse_configs(text, flag="--configs"):
    """--configs "0,0.8,1.0/top_p=0.9,1.2/min_p=0.1": decoding configurations, each a temperature
    >= 0 with an optional top_p in (0, 1] and min_p in [0, 1], as (temperature, top_p, min_p) tuples
    (None: no truncation); else one 'error: ...' line naming the item. A plain temperature list
    (--temperatures 0,0.4,1.0) is configurations without truncation."""
    def bad(item, why):
        sys.exit(f"error: {flag} {text!r}: {item!r} {why}; items are T, T/top_p=P, T/min_p=M or "
                 "T/top_p=P/min_p=M, e.g. 0,0.8,1.0/top_p=0.9,1.2/min_p=0.1")
    configs = []
    for item in text.split(","):
        t, *options = item.strip().split("/")
        kept = {"top_p": None, "min_p": None}
        try:
            t = float(t)
        except ValueError:
            bad(item, "does not start with a temperature")
        if not 0 <= t < float("inf"):
            bad(item, "has a temperature that is not a number >= 0")
        for option in options:
            key, _, value = option.partition("=")
            if key not in kept:
                bad(item, f"has an unknown setting {key!r} (top_p and min_p are known)")
            if kept[key] is not None:
                bad(item, f"sets {key} twice")
            try:
                kept[key] = float(value)
            except ValueError:
                bad(item, f"has {key}={value!r}, not a number")
        if kept["top_p"] is not None and not 0 < kept["top_p"] <= 1:
            bad(item, "has a top_p outside (0, 1]")
        if kept["min_p"] is not None and not 0 <= kept["min_p"] <= 1:
            bad(item, "has a min_p outside [0, 1]")
        config = (t, kept["top_p"], kept["min_p"])
        if config in configs:
            bad(item, "is given twice")
        configs.append(config)
    return configs


def default_device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def model_dtype(name, device):
    """The LM's dtype: --dtype if given, else bfloat16 on a GPU (half the memory traffic) and on a CPU
    with AMX (Intel Xeon since Sapphire Rapids), whose bfloat16 matrix products run about 4x faster than
    float32's (the README's Speed section); float32 on other CPUs, where bfloat16 products are slower."""
    if name:
        return getattr(torch, name)
    return torch.bfloat16 if str(device).startswith("cuda") or (device == "cpu" and cpu_has_amx()) else torch.float32


def cpu_has_amx():
    """Whether this CPU has Intel AMX with bfloat16 (the amx_bf16 flag of /proc/cpuinfo; False where
    there is no such file)."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def check_writable(path, what):
    """Fail at the start, not after the work, when an output cannot be written (path: a file to
    create, or a directory that will hold files), without creating anything yet: the path must not
    be something else, and its nearest existing folder must be a writable folder."""
    path = Path(path)
    if str(path) in ("", "."):
        sys.exit(f"error: the {what} path is empty; give one")
    if path.exists() and path.is_dir() != (what == "directory"):
        sys.exit(f"error: cannot write the {what} {path}: it exists and is "
                 f"{'a directory' if path.is_dir() else 'a file'}; choose another path")
    folder = path.resolve() if what == "directory" else path.resolve().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        why = "not a directory" if not folder.is_dir() else "permission denied"
        sys.exit(f"error: cannot write the {what} {path}: {folder} is {why}; choose another path")


def plural(n, word, words=None):
    """ "1 round", "2 rounds" (words: an irregular plural, e.g. "batches")."""
    return f"{n} {word if n == 1 else words or word + 's'}"


def duration(seconds):
    """A time for people: "40 s", "1 minute", "12 minutes"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} minute{'s' * (minutes != 1)}"


class Progress:
    """For long jobs (collecting samples, evaluating): a line every few seconds with the phase,
    done/total, the rate and the time left, estimated from the last half minute's rate once there is
    enough to measure (10 s and two updates; before that, "time left: measuring")."""
    def __init__(self, phase, total, unit):
        self.phase, self.total, self.unit = phase, total, unit
        self.t0 = self.last = time.time()
        self.recent = [(self.t0, 0)]  # (time, done), the last ~30 s
        self.updates = 0

    def update(self, done, extra=""):
        now = time.time()
        self.updates += 1
        self.recent = [(t, d) for t, d in self.recent if now - t < 30] + [(now, done)]
        if now - self.last > 5 or done == self.total:
            t, d = self.recent[0] if len(self.recent) > 1 and self.recent[0][1] < done else (self.t0, 0)
            rate = (done - d) / max(now - t, 1e-9)
            if done == self.total:
                left = "done"
            elif now - self.t0 < 10 or self.updates < 2:  # a first batch's rate says little
                left = "time left: measuring"
            else:
                left = f"{duration((self.total - done) / rate)} left" if rate > 0 else "time left unknown"
            print(f"  {self.phase}: {done}/{self.total} {self.unit}, {rate:.1f} {self.unit}/s, {left} "
                  f"{extra}", flush=True)
            self.last = now
