"""
GSM8K: grade-school math word problems (Cobbe et al. 2021), 7,473 train / 1,319 test.
Each gold solution ends with "#### N". The model is asked to reason step by step and finish with
"The answer is N"; reward = 1 if the extracted number equals the gold number, else 0.
Also: majority voting over k sampled chains (maj@k), used by the gsm8k_vote experiment.
"""
import re
from collections import Counter
from decimal import Decimal, InvalidOperation

from tasks.data import data_path, read_jsonl, subsample

NAME = "gsm8k"
CHAT = True  # the prompt is a user message (apply the chat template)
REWARD = "accuracy (the final answer is right)"
PROMPT = ('Solve the following math problem. Reason step by step, and end your response with '
          '"The answer is N", where N is the final number.\n\n{question}')


def format_prompt(question):
    return PROMPT.format(question=question)


def prompts(split="train", n=None, seed=0):
    assert split in ("train", "test"), split
    rows = [r for _, r in read_jsonl(data_path(f"gsm8k/{split}.jsonl"), ("question", "answer"))]
    examples = [dict(id=f"gsm8k/{split}/{i}", task=NAME, prompt=format_prompt(r["question"]),
                     question=r["question"], solution=r["answer"], gold=extract_answer(r["answer"]))
                for i, r in enumerate(rows)]
    return subsample(examples, n, seed)


# -----------------------------------------------------------------------------
# answer extraction

# a number: optional sign (only when not glued to a word, so "COVID-19" or "5-3" give no negative),
# optional "$", digits with proper thousands commas ("1,234" but not "1,2,3"), optional decimals.
NUM = r"(?:(?<![\w)\]])[-−])?(?:\$\s?)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?"
HASH_RE = re.compile(r"####\s*(" + NUM + ")")
ANSWER_RE = re.compile(r"answer(?:\s+is|\s+was|\s*[:=])\s*[:=]?\s*"
                       r"(?:\\boxed\{|\*\*|\\\(|\$(?!\s?\d))*\s*(" + NUM + ")", re.I)
BOXED_RE = re.compile(r"\\boxed\{\s*(" + NUM + ")")
NUM_RE = re.compile(NUM)


def normalize_number(s):
    """'$1,000.50' -> '1000.5', '18.00' -> '18', '−3' -> '-3'; None if s is not a number."""
    s = str(s).replace("$", "").replace(",", "").replace("−", "-").replace(" ", "").strip()
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def extract_answer(text):
    """The final numeric answer in text, normalised (see normalize_number), or None.
    Priority: the last '#### N', else the last 'answer is N' / 'answer: N', else the last \\boxed{N},
    else the last number anywhere in the text."""
    if text is None:
        return None
    for pattern in (HASH_RE, ANSWER_RE, BOXED_RE, NUM_RE):
        found = pattern.findall(text)
        if found:
            return normalize_number(found[-1])
    return None


def is_correct(response, gold):
    """Numeric comparison of the answer extracted from response with gold (str or number)."""
    pred, gold = extract_answer(response), normalize_number(gold)
    return pred is not None and gold is not None and Decimal(pred) == Decimal(gold)


def reward(example, response):
    return 1.0 if is_correct(response, example["gold"]) else 0.0


# -----------------------------------------------------------------------------
# majority voting

def majority_vote(answers):
    """Most common non-None answer; ties go to the one seen first. None if there is none."""
    answers = [a for a in answers if a is not None]
    if not answers:
        return None
    counts = Counter(answers)
    best = max(counts.values())
    return next(a for a in answers if counts[a] == best)
