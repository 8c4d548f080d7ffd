"""
Where the time of a train.py run goes: runs train.py with the same arguments under cProfile and
prints, by phase (validation, rounds, evaluation) and by cause (prefill, decode steps, rows decoded
after they stopped, sampling, the judge, training, loading...), the seconds spent and their share.

    python profile_train.py                       # the default run, profiled (cProfile costs a few %)
    python profile_train.py --task synthetic ...  # any train.py arguments

Each cause is the cumulative time of the functions that do it (a function called inside another
counts in the inner one's row only where the table says so); "rows already stopped" is the share of
decode-step rows spent on responses that had ended, times the decode time.
"""
import cProfile
import pstats
import runpy
import sys
import time

import sample

# count the decode-step rows spent on responses that already ended: generate_batch drops the rows that
# stopped once they are a quarter of its batch, and runs the others until the last one stops
rows = {"all": 0, "stopped": 0}
generate = sample.generate_batch


def counting_generate(*args, **kwargs):
    g = generate(*args, **kwargs)
    useful = sum(max(len(t) + (s is not None) - 1, 0) for t, s in zip(g.tokens, g.stops))  # steps that ran the model
    rows["all"] += g.rows_decoded
    rows["stopped"] += g.rows_decoded - useful
    return g


sample.generate_batch = counting_generate  # before train.py imports it (from sample import generate_batch)

profile = cProfile.Profile()
sys.argv = ["train.py", *sys.argv[1:]]
t0 = time.time()
try:
    profile.runcall(runpy.run_path, "train.py", run_name="__main__")
except SystemExit as e:
    if e.code not in (None, 0):
        raise
total = time.time() - t0

stats = pstats.Stats(profile).stats  # (file, line, function) -> (calls, ..., tottime, cumtime, callers)


def cum(file_part, function):
    """The cumulative seconds of the functions named function in files whose path holds file_part."""
    return sum(v[3] for (f, _, name), v in stats.items() if file_part in f and name == function)


decode = cum("sample.py", "decode_step") + cum("sample.py", "decode")
phases = [
    ("loading the model, tokenizer, judge", cum("checkpoints.py", "load_model") + cum("tokenizer.py", "from_pretrained")),
    ("validation (fixed temperatures, once)", cum("train.py", "validation_fixed")),
    ("rounds: collecting samples", cum("train.py", "collect")),
    ("rounds: training (loss, backward, step)", cum("lpo.py", "pair_loss") + cum("_tensor.py", "backward")
     + cum("optimizer.py", "wrapper")),
    ("rounds: learning metric", cum("train.py", "learning_metric")),
    ("evaluation (held-out)", cum("evaluate.py", "evaluate")),
]
causes = [
    ("generation: prefill", cum("sample.py", "prefill")),
    ("generation: decode steps", decode),
    ("  of which rows already stopped", decode * rows["stopped"] / max(rows["all"], 1)),
    ("generation: sampling (softmax, top-p, the draw, the head)", cum("sample.py", "sample_next")
     + cum("sample.py", "choose_config")),
    ("generation: the rest of the loop", cum("sample.py", "generate_batch") - cum("sample.py", "prefill") - decode
     - cum("sample.py", "sample_next") - cum("sample.py", "choose_config")),
    ("tokens to text", cum("tokenizer.py", "decode")),
    ("judge: scoring responses", cum("judge.py", "__call__")),
    ("rewards besides the judge", cum("tasks/__init__.py", "rewards") - cum("judge.py", "__call__")),
    ("saving files", cum("runs.py", "save_atomic")),
]
print(f"\nprofile of `python {' '.join(sys.argv)}`: {total:.0f} s in all\n")
for title, rows_ in (("phase", phases), ("cause", causes)):
    print(f"| {title} | seconds | share |\n|---|---|---|")
    for name, seconds in rows_:
        print(f"| {name} | {seconds:.0f} | {seconds / total:.0%} |")
    print()
print(f"decode-step rows: {rows['all']}, of responses that had already stopped: {rows['stopped']} "
      f"({rows['stopped'] / max(rows['all'], 1):.0%})")
