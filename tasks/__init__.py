"""
Tasks: the prompts and rewards of the paper's four experiments (and a small synthetic stand-in).

Every task module has the same small interface:
    NAME                                  the task's name (the key in TASKS)
    CHAT                                  True: 'prompt' is a user message (apply the chat template);
                                          False: raw text for the LM to continue (repetition)
    prompts(split, n=None, seed=0)        split in {"train", "test"}; a list of dicts, each with at least
                                          'id', 'task' (= NAME) and 'prompt', plus task fields
                                          ('gold', 'title', 'prefix', ...). n=None: all, in a fixed order;
                                          else a seeded sample of n.
    group_reward(example, responses)     optional: rewards for the N samples of one prompt, when a
                                          response is scored relative to the others (synthetic)
    group_metrics(example, responses, rewards)  optional: evaluation metrics (dict name -> float) for a
                                          prompt's responses and their rewards, e.g. maj@8, the
                                          constraint alone, repeated 3-grams
    LOWER_IS_BETTER                       optional: names of group_metrics where less is better (win rates)
    EVAL_SAMPLES                          optional: responses per prompt and method in evaluation (default 1)
    reward(example, response) -> float    higher is better. gsm8k/arithmetic: 1/0 correctness;
                                          repetition: -repeated 3-gram fraction; constrained_stories:
                                          constraint fraction (+ judge); stories/instructions: the
                                          judge, a reward model plugged in via tasks.judge.set_judge().
Data files are found (or downloaded) by tasks.data.data_path; set LPO_DATA_DIR to a local copy.
Helpers: tasks.stats (bootstrap win rates), tasks.gsm8k (answer extraction, majority voting).
"""
import math

from tasks import (arithmetic, arithmetic_vote, constrained_stories, gsm8k, gsm8k_vote, instructions, repetition,
                   stories, synthetic)

TASKS = {m.NAME: m for m in (synthetic, arithmetic, gsm8k, gsm8k_vote, arithmetic_vote, stories, instructions,
                               repetition, constrained_stories)}
# mixes of tasks trained together: task -> its share of a round's training prompts
MIXES = {"ultramathstories": {"instructions": 1, "gsm8k": 1, "stories": 1},  # the paper's experiment 2
         # the same with arithmetic word problems in place of GSM8K, for models too small for GSM8K.
         # Arithmetic gets half the prompts: a prompt gives a pair only when its N answers hold a right
         # and a wrong one (~1 prompt in 4 on SmolLM2-135M), and its answers are short and judge-free
         "ultramathstories_arithmetic": {"instructions": 1, "arithmetic": 2, "stories": 1}}

def get_task(name):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]

def mix(name):
    """{task: share of the training prompts}: a mix's, or {name: 1} for a single task."""
    return dict(MIXES[name]) if name in MIXES else {get_task(name).NAME: 1}

def prompts(names, split="train", n=None, seed=0):
    """Prompts of several tasks (or a mix name) concatenated; n is per task."""
    names = list(MIXES.get(names, [names])) if isinstance(names, str) else names
    return [ex for name in names for ex in get_task(name).prompts(split, n, seed)]

def reward(example, response):
    """Dispatch on example['task'], so a mixed batch can be scored in one loop."""
    return get_task(example["task"]).reward(example, response)

def group_rewards(example, responses):
    """Rewards for the N responses to one prompt (a judge scores them in one batch); a reward
    that is not a finite number is an error, not something to train on."""
    task = get_task(example["task"])
    if hasattr(task, "group_reward"):
        scores = task.group_reward(example, responses)
    else:
        scores = [task.reward(example, r) for r in responses]
    for s in scores:
        if not math.isfinite(s):
            raise ValueError(f"task {example['task']} gave the reward {s} for prompt {example['id']}; "
                             "rewards must be finite numbers (check the reward model or judge)")
    return [float(s) for s in scores]
