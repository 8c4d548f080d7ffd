"""
Synthetic arithmetic (stand-in for GSM8K on models too small for it): seeded one- and two-step word
problems with small numbers and exact non-negative integer answers, e.g.
"Tom has 7 apples and buys 5 more. How many apples does Tom have now?" -> 12.
The prompt asks for the final number only: asked to reason step by step (gsm8k's prompt), SmolLM2-135M
writes long, wrong chains that the token limit often cuts; asked for the number, it answers in a short
reply, so correctness depends on the temperature. Answer extraction and reward are gsm8k's (the last
number counts).
Train and test never share a question: a hash of the question text decides its split, and the
generator keeps only questions of the asked split.
"""
import random

from tasks import gsm8k
from tasks.data import is_test

NAME = "arithmetic"
LABEL = "synthetic arithmetic (stand-in for GSM8K on models too small for it)"
CHAT = True
REWARD = "accuracy (the last number of the answer is right)"
PROMPT = "{question}\nAnswer with the final number only."
DEFAULT_N = {"train": 2000, "test": 500}

NAMES = ["Tom", "Anna", "Ravi", "Mia", "Leo", "Sara", "Omar", "Lena", "Kofi", "Yuki", "Ben", "Zoe",
         "Ivan", "Nora", "Sam", "Priya"]
ITEMS = ["apples", "pencils", "marbles", "stickers", "cookies", "books", "shells", "cards",
         "balloons", "stamps", "coins", "flowers"]
THINGS = [("notebook", "notebooks"), ("toy car", "toy cars"), ("sandwich", "sandwiches"),
          ("ticket", "tickets"), ("plant", "plants"), ("ball", "balls")]

# each template: (key, text, answer function). Numbers a, b, c are drawn by make() below.
TEMPLATES = [
    ("add", "{x} has {a} {items} and buys {b} more. How many {items} does {x} have now?",
     lambda a, b, c: a + b),
    ("sub", "{x} had {a} {items} and gave {b} of them to {y}. How many {items} does {x} have left?",
     lambda a, b, c: a - b),
    ("mul", "There are {a} boxes with {b} {items} in each box. How many {items} are there in total?",
     lambda a, b, c: a * b),
    ("div", "{x} shares {ab} {items} equally among {a} friends. How many {items} does each friend get?",
     lambda a, b, c: b),
    ("compare", "{x} has {a} {items} and {y} has {b} {items}. How many more {items} does {x} have than {y}?",
     lambda a, b, c: a - b),
    ("price", "One {thing} costs ${a}. How many dollars do {b} {things} cost?",
     lambda a, b, c: a * b),
    ("age", "{x} is {a} years old. {y} is {b} years older than {x}. How old is {y}?",
     lambda a, b, c: a + b),
    ("add3", "{x} picked {a} {items} on Monday, {b} on Tuesday and {c} on Wednesday. "
             "How many {items} did {x} pick in total?",
     lambda a, b, c: a + b + c),
    ("add_sub", "{x} has {a} {items}, buys {b} more and then gives {c} to {y}. "
                "How many {items} does {x} have now?",
     lambda a, b, c: a + b - c),
    ("mul_add", "{x} buys {a} packs of {items} with {b} {items} in each pack. {x} already had {c} {items}. "
                "How many {items} does {x} have now?",
     lambda a, b, c: a * b + c),
    ("change", "{x} has ${c} and buys {a} {things} that cost ${b} each. How many dollars does {x} have left?",
     lambda a, b, c: c - a * b),
    ("mul_sub", "A hall has {a} rows of {b} chairs. {c} of the chairs are empty. How many chairs are taken?",
     lambda a, b, c: a * b - c),
]


def format_prompt(question):
    return PROMPT.format(question=question)


def make(rng, templates=TEMPLATES, one_digit=False):
    """One random problem of the templates: dict(question, gold, template, numbers); one_digit: every
    number from 2 to 9."""
    key, text, answer = rng.choice(templates)
    top = 9 if one_digit else 20
    a, b, c = rng.randint(2, top), rng.randint(2, top), rng.randint(2, top)
    if key in ("sub", "compare") and a <= b:
        a, b = b + 1, a  # keep the answer positive
    if key in ("mul", "div", "price", "mul_add", "change", "mul_sub"):
        a, b = rng.randint(2, 9), rng.randint(2, 9)  # keep products small
    if key == "add_sub":
        c = rng.randint(1, a + b)
    if key == "change":
        c = a * b + rng.randint(0, 20)
    if key == "mul_sub":
        c = rng.randint(1, a * b - 1)
    x, y = rng.sample(NAMES, 2)
    thing, things = rng.choice(THINGS)
    q = text.format(x=x, y=y, a=a, b=b, c=c, ab=a * b, items=rng.choice(ITEMS), thing=thing, things=things)
    return dict(question=q, gold=str(answer(a, b, c)), template=key, numbers=(a, b, c))


def prompts(split="train", n=None, seed=0, templates=TEMPLATES, one_digit=False, name=NAME):
    """n distinct problems of the split (DEFAULT_N[split] if n is None), deterministic given seed;
    templates and one_digit: see make (tasks/easy_arithmetic.py); name: the task's."""
    assert split in ("train", "test"), split
    n = DEFAULT_N[split] if n is None else n
    rng, seen, out = random.Random(f"{seed}-{split}"), set(), []
    for _ in range(100 * n):  # the problem space is large; this bound is never reached in practice
        if len(out) == n:
            break
        p = make(rng, templates, one_digit)
        if p["question"] in seen or is_test(p["question"]) != (split == "test"):
            continue
        seen.add(p["question"])
        out.append(dict(p, id=f"{name}/{split}/{seed}/{len(out)}", task=name,
                        prompt=format_prompt(p["question"])))
    return out


reward = gsm8k.reward  # 1 if the extracted answer equals gold, else 0
