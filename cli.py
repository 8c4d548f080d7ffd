"""
What the scripts (train.py, evaluate.py, sample.py, bench.py) share and the lesson does not need:
settings checked before any work, one 'error: ...' line instead of a traceback for a user's mistake,
the model's device and dtype, and progress lines for long jobs.
"""
import sys
import tempfile
import time
from pathlib import Path

import torch


def check_settings(args, at_least=None, between=None):
    """Command-line numbers in their ranges, before anything is loaded or written, else one
    'error: ...' line that names the setting. at_least: {name: low or (low, why)};
    between: {name: (low, high)}. A setting left at None is not checked."""
    for name, low in (at_least or {}).items():
        low, why = low if isinstance(low, tuple) else (low, "")
        value = getattr(args, name)
        if value is not None and not value >= low:  # "not >=": NaN is refused too
            sys.exit(f"error: --{name} {value}: must be at least {low}{why}")
    for name, (low, high) in (between or {}).items():
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            sys.exit(f"error: --{name} {value}: must be between {low} and {high}")


def parse_temperatures(text):
    """--temperatures "0,0.4,0.8,1.0" as a list of floats >= 0, else one 'error: ...' line."""
    try:
        temperatures = [float(t) for t in text.split(",")]
    except ValueError:
        temperatures = []
    if not temperatures or not all(0 <= t < float("inf") for t in temperatures):
        sys.exit(f"error: --temperatures {text!r}: must be numbers >= 0 separated by commas, "
                 "e.g. 0,0.4,0.8,1.0")
    return temperatures


def default_device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def model_dtype(name, device):
    """The LM's dtype: --dtype if given, else bfloat16 on a GPU (half the memory traffic) and float32
    on the CPU (where bfloat16 matrix products are slow without AMX)."""
    return getattr(torch, name or ("bfloat16" if str(device).startswith("cuda") else "float32"))


def check_writable(path, what):
    """Fail at the start, not after the work, when an output cannot be written (path: a file to
    create, or a directory that will hold files)."""
    folder = Path(path) if what == "directory" else Path(path).resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        sys.exit(f"error: cannot write the {what} {path}: {e.strerror or e}; choose another path")


def duration(seconds):
    """A time for people: "40 s", "1 minute", "12 minutes"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} minute{'s' * (minutes != 1)}"


class Progress:
    """For long jobs (collecting samples, evaluating): a line every few seconds with the phase,
    done/total, the rate and the time left, estimated from the last half minute's rate."""
    def __init__(self, phase, total, unit):
        self.phase, self.total, self.unit = phase, total, unit
        self.t0 = self.last = time.time()
        self.recent = [(self.t0, 0)]  # (time, done), the last ~30 s

    def update(self, done, extra=""):
        now = time.time()
        self.recent = [(t, d) for t, d in self.recent if now - t < 30] + [(now, done)]
        if now - self.last > 5 or done == self.total:
            t, d = self.recent[0] if len(self.recent) > 1 and self.recent[0][1] < done else (self.t0, 0)
            rate = (done - d) / max(now - t, 1e-9)
            left = f"{(self.total - done) / rate:.0f}s left" if rate > 0 else "time left unknown"
            print(f"  {self.phase}: {done}/{self.total} {self.unit}, {rate:.1f} {self.unit}/s, {left} "
                  f"{extra}", flush=True)
            self.last = now
