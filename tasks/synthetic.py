"""
A synthetic task whose right temperature is known, to check that LPO learns.

Two kinds of prompt, mixed:
- "copy":   repeat a sentence exactly. Reward 1 for an exact copy, else 0. Sampling can only
            add mistakes: the greedy temperature (0) is best, low temperatures are good.
- "varied": name a random thing of a category ("a random animal"). The reward prefers answers
            that differ from the other answers to the same prompt: 1 - (share of the other
            samples that begin with the same three words). Greedy decoding gives the same answer every time:
            high temperatures are best.

A head that has learned the task picks a temperature <= 0.4 for copy prompts and >= 0.6 for
varied prompts (better_temperature), from the hidden state of the prompt alone.
"""
import random

from tasks.data import is_test, subsample

NAME = "synthetic"
CHAT = True
RELATIVE = True
EVAL_SAMPLES = 6  # the varied kind is scored within a group of samples of the same prompt
REWARD = "an exact copy (copy); 1 - the share of the other answers that begin alike (varied)"

ADJ = ["quiet", "golden", "tiny", "ancient", "bright", "heavy", "gentle", "wild", "frozen", "hidden",
       "busy", "silver", "lonely", "happy", "broken", "curious"]
NOUN = ["fox", "river", "teacher", "garden", "lamp", "train", "sailor", "cloud", "village", "robot",
        "violin", "castle", "kitten", "farmer", "mirror", "bridge"]
VERB = ["watches", "follows", "paints", "finds", "carries", "visits", "builds", "remembers", "hears",
        "opens", "cleans", "draws"]
CATEGORIES = ["animal", "color", "fruit", "city", "country", "sport", "musical instrument", "flower",
              "vegetable", "tree", "bird", "fish", "job", "planet", "gemstone", "board game", "dessert",
              "car brand", "language", "dance", "tool", "insect", "river", "mountain", "spice", "drink",
              "cheese", "dog breed", "fabric", "metal"]
VARIED_FORMS = ["Name a random {c}. Reply with one or two words only.",
                "Give me any {c} you like, just the name.",
                "Pick a {c} at random and say only its name.",
                "Say the name of a {c}, nothing else."]


def _sentence(rng):
    return (f"The {rng.choice(ADJ)} {rng.choice(NOUN)} {rng.choice(VERB)} "
            f"the {rng.choice(ADJ)} {rng.choice(NOUN)}.")


def _all_examples():
    rng = random.Random(1234)
    examples = []
    for i in range(400):
        s = _sentence(rng)
        examples.append({"kind": "copy", "sentence": s,
                         "prompt": f"Repeat the following sentence exactly, and write nothing else: {s}"})
    for c in CATEGORIES:
        for form in VARIED_FORMS:
            examples.append({"kind": "varied", "prompt": form.format(c=c)})
    seen, out = set(), []
    for ex in examples:  # the copy sentences may repeat: keep each prompt once
        if ex["prompt"] not in seen:
            seen.add(ex["prompt"])
            out.append(ex)
    return out


def prompts(split="train", n=None, seed=0):
    """An equal number of each kind (n in total), split by a hash of the prompt."""
    exs = [ex for ex in _all_examples() if is_test(ex["prompt"]) == (split == "test")]
    for i, ex in enumerate(exs):
        ex.update(id=f"{NAME}-{split}-{i}", task=NAME)
    by_kind = [[ex for ex in exs if ex["kind"] == k] for k in ("copy", "varied")]
    if n is None:
        n_each = min(len(b) for b in by_kind)
    else:
        n_each = n // 2
    return [ex for b in by_kind for ex in subsample(b, n_each, seed)]


def _norm(text):
    return " ".join(text.strip().strip(".!\"'").lower().split())


def reward(example, response):
    """The copy kind alone can be scored without the other samples."""
    if example["kind"] != "copy":
        raise ValueError("the varied kind is scored per group of samples: use group_reward")
    return float(_norm(response) == _norm(example["sentence"]))


def group_reward(example, responses, judge=None):
    """Rewards for the N samples of one prompt."""
    if example["kind"] == "copy":
        return [reward(example, r) for r in responses]
    answers = [" ".join(_norm(r).split()[:3]) for r in responses]  # the answer: its first words
    n = len(answers)
    return [1.0 - (answers.count(a) - 1) / max(n - 1, 1) for a in answers]


def better_temperature(example, tau):
    return tau <= 0.4 + 1e-6 if example["kind"] == "copy" else tau >= 0.6 - 1e-6


def temperature_metrics(examples, samples, tok, level):
    """The share of prompts for which AD's mean temperature (over its samples' steps) is on the
    right side: <= 0.4 to copy, >= 0.6 to vary."""
    good = []
    for ex in examples:
        taus = [t for s in samples if s["id"] == ex["id"] for t in s["temperatures"]]
        good.append(better_temperature(ex, sum(taus) / len(taus)))
    return {"share of prompts where AD picks the better temperature": sum(good) / len(good)}
