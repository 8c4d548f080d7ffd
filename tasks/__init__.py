"""
Tasks: the prompts and rewards of the four experiments of *Adaptive Decoding via Latent Preference
Optimization* (arXiv 2411.09661), stand-ins for models too small for them, and a
synthetic task whose right temperatures are known.

Every task is a module with this interface. get_task(name) gives a view of the module: its own
public names over DEFAULTS below (the module itself is not changed), so that train.py and
evaluate.py use every hook plainly.

Required:
    NAME                      the task's name (the key in TASKS)
    CHAT                      True: 'prompt' is a user message (the chat template is applied);
                              False: raw text for the LM to continue (repetition)
    prompts(split, n=None, seed=0)
                              split "train" or "test": a list of dicts, each with at least 'id',
                              'task' (= NAME) and 'prompt', plus the task's own fields ('gold',
                              'title', 'kind', ...); n=None: all, in a fixed order, else a seeded
                              sample of n
    reward(example, response) -> float
                              higher is better, for tasks that score a response on its own
                              (correctness, constraint, repeated 3-grams)
Optional (default):
    group_reward(example, responses, judge) -> [float]
                              the rewards of the N responses to one prompt, all at once: for tasks
                              scored by a judge (run on the N in one batch) or relative to the other
                              responses (the synthetic varied kind). judge: a tasks.judge.Judge
                              (called with (prompts, responses) -> scores; .surprisal), or a plain
                              function (prompts, responses) -> scores, or None.
                              (default: reward() of each response)
    group_metrics(example, responses, rewards, judge) -> {name: float}
                              evaluation metrics of a prompt's responses, e.g. maj@8, the
                              constraint alone, repeated 3-grams (default: none)
    temperature_metrics(examples, samples, tok, level) -> {name: float}
                              what AD's temperature choices on a subtask's held-out prompts show,
                              e.g. the right temperature picked, or sentence starts against other
                              tokens (the paper's Fig. 5); samples: AD's, with 'id', 'tokens' and
                              'temperatures' (one per step) (default: none)
    format_prompt(text) -> str
                              the prompt the task makes of a question or title, as its prompts()
                              do: what `sample.py --task NAME` applies (the text as it is)
    LOWER_IS_BETTER           names of group_metrics where less is better, for win rates (())
    REWARD                    what the reward is, in words, said wherever win rates are reported
                              ("the task's reward")
    RELATIVE                  True: a response's reward depends on the other responses to its prompt
                              (the synthetic varied kind): evaluation draws as many per prompt as
                              training did and scores them together, the reward that was trained
                              (False)
    EVAL_SAMPLES              responses per prompt and method in evaluation (1); for a RELATIVE
                              task, what evaluate.py draws unless told (train.py: its --n_samples)
    LABEL                     a line that says what the task stands in for, printed wherever its
                              results are ("": none)
    JUDGED                    True: group_reward asks the judge for (example's prompt, response)
                              scores; tasks.rewards then scores a whole batch in one call (False)
Data files are found (or downloaded) by tasks.data.data_path; set LPO_DATA_DIR to a local copy.
"""
import math
from types import SimpleNamespace

from tasks.judge import Judge
from tasks import (arithmetic, arithmetic_vote, constrained_stories, easy_arithmetic, gsm8k, gsm8k_vote,
                   instructions, repetition, stories, synthetic)

TASKS = {m.NAME: m for m in (synthetic, arithmetic, easy_arithmetic, gsm8k, gsm8k_vote, arithmetic_vote,
                             stories, instructions, repetition, constrained_stories)}
# mixes of tasks trained together: task -> its share of a round's training prompts
MIXES = {"ultramathstories": {"instructions": 1, "gsm8k": 1, "stories": 1},  # the paper's experiment 2
         # the same for models too small for GSM8K: the math is one-step arithmetic the model solves
         # often greedily and rarely at high temperature, chosen by a temperature sweep on training
         # prompts (the README), so that the subtasks want clearly different temperatures
         "ultramathstories_arithmetic": {"instructions": 1, "easy_arithmetic": 1, "stories": 1}}


# the optional hooks a task need not define, and what get_task() gives it then
DEFAULTS = {
    # "group_reward": the task's own reward() of each response (made per task in get_task)
    "group_metrics": lambda example, responses, rewards, judge=None: {},
    "temperature_metrics": lambda examples, samples, tok, level: {},
    "format_prompt": lambda text: text,
    "LOWER_IS_BETTER": (),
    "REWARD": "the task's reward",
    "RELATIVE": False,
    "EVAL_SAMPLES": 1,
    "LABEL": "",
    "JUDGED": False,
}


def get_task(name):
    """The task `name` with the whole interface: a namespace of DEFAULTS, overridden by the module's
    own public names. Made anew at each call: the module is never changed, and a name patched on it
    (a test's monkeypatch) shows."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    module = TASKS[name]
    own = {k: v for k, v in vars(module).items() if not k.startswith("_")}
    each = lambda example, responses, judge=None: [module.reward(example, r) for r in responses]
    return SimpleNamespace(**{**DEFAULTS, "group_reward": each, **own})


def mix(name):
    """{task: share of the training prompts}: a mix's, or {name: 1} for a single task."""
    return dict(MIXES[name]) if name in MIXES else {get_task(name).NAME: 1}


def prompts(names, split="train", n=None, seed=0):
    """Prompts of several tasks (or a mix name) concatenated; n is per task."""
    names = list(MIXES.get(names, [names])) if isinstance(names, str) else names
    return [ex for name in names for ex in get_task(name).prompts(split, n, seed)]


def subtask(example):
    """What results are reported by: the task, or its kind (the synthetic task's copy and varied)."""
    return example.get("kind", example["task"])


def prompt_ids(tok, example):
    """The token ids the LM reads: the prompt as a user message in the chat format, or raw text."""
    task = get_task(example["task"])
    return tok.encode_prompt(example["prompt"]) if task.CHAT else tok.encode(example["prompt"])


def rewards(examples, responses, judge=None, counts=None):
    """The task's reward of every response: responses holds N responses to each example in turn
    (row i * N + j is the j-th to examples[i]; or counts[i] responses to example i), scored a
    prompt at a time. A judge that remembers its scores (a tasks.judge.Judge) first scores the
    judged tasks' responses in one batched call: the tasks' own calls then read them. A reward that
    is not a finite number is an error, not something to train on."""
    counts = counts or [len(responses) // len(examples)] * len(examples)
    starts = [sum(counts[:i]) for i in range(len(examples))]
    if isinstance(judge, Judge):  # it remembers scores: one batched call, then the tasks read them
        rows = [(ex["prompt"], responses[s + j]) for ex, s, n in zip(examples, starts, counts)
                if get_task(ex["task"]).JUDGED for j in range(n)]
        if rows:
            judge([p for p, _ in rows], [r for _, r in rows])
    out = []
    for example, s, n in zip(examples, starts, counts):
        scores = get_task(example["task"]).group_reward(example, responses[s:s + n], judge)
        for s in scores:
            if not math.isfinite(s):
                raise ValueError(f"task {example['task']} gave the reward {s} for prompt {example['id']}; "
                                 "rewards must be finite numbers (check the reward model or judge)")
        out += [float(s) for s in scores]
    return out
