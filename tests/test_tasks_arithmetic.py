# The synthetic arithmetic generator: answers checked by an independent solver that reads the question text.
import re

from tasks import arithmetic

def solve(q):
    """Solve a generated question from its words alone (written from the templates' English, not
    their code)."""
    n = [int(x) for x in re.findall(r"\d+", q)]
    if "buys" in q and "more and then gives" in q:
        return n[0] + n[1] - n[2]                  # has a, buys b more, gives c away
    if "buys" in q and "packs" in q:
        return n[0] * n[1] + n[2]                  # a packs of b, already had c
    if "buys" in q and "cost $" in q:
        return n[0] - n[1] * n[2]                  # has $a, buys b things at $c each
    if "buys" in q:
        return n[0] + n[1]                         # has a, buys b more
    if "gave" in q:
        return n[0] - n[1]
    if "boxes" in q:
        return n[0] * n[1]
    if "shares" in q:
        return n[0] // n[1]
    if "How many more" in q:
        return n[0] - n[1]
    if "costs $" in q:
        return n[0] * n[1]
    if "years older" in q:
        return n[0] + n[1]
    if "Monday" in q:
        return n[0] + n[1] + n[2]
    if "rows of" in q:
        return n[0] * n[1] - n[2]
    raise AssertionError(f"unknown question: {q}")

def test_answers_independently_verified():
    exs = arithmetic.prompts("train", n=1000) + arithmetic.prompts("test", n=300)
    assert {e["template"] for e in exs} == {t[0] for t in arithmetic.TEMPLATES}  # every template appears
    for e in exs:
        assert int(e["gold"]) == solve(e["question"]), e["question"]
        assert int(e["gold"]) >= 0 and e["gold"] == str(int(e["gold"]))
        assert all(int(x) <= 200 for x in re.findall(r"\d+", e["question"]))    # small numbers
        assert e["prompt"] == e["question"] + "\nAnswer with the final number only."
        if e["template"] == "div":
            n = [int(x) for x in re.findall(r"\d+", e["question"])]
            assert n[0] % n[1] == 0                                             # exact division

def test_hand_examples():
    assert solve("Tom has 7 apples and buys 5 more. How many apples does Tom have now?") == 12
    ex = {"gold": "12"}
    assert arithmetic.reward(ex, "7 + 5 = 12. The answer is 12.") == 1.0
    assert arithmetic.reward(ex, "The answer is 13.") == 0.0

def test_deterministic_and_seeded():
    a, b = arithmetic.prompts("train", n=50, seed=0), arithmetic.prompts("train", n=50, seed=0)
    assert a == b
    c = arithmetic.prompts("train", n=50, seed=1)
    assert [e["question"] for e in a] != [e["question"] for e in c]
    assert len(arithmetic.prompts("test")) == arithmetic.DEFAULT_N["test"]

def test_splits_disjoint_and_unique():
    train = {e["question"] for seed in (0, 1) for e in arithmetic.prompts("train", n=2000, seed=seed)}
    test = {e["question"] for seed in (0, 1) for e in arithmetic.prompts("test", n=500, seed=seed)}
    assert not train & test
    one = arithmetic.prompts("train", n=2000)
    assert len({e["question"] for e in one}) == len(one) == 2000
    assert len({e["id"] for e in one}) == 2000


def test_easy_problems():
    # the default mixture's math: sums and products of two one-digit numbers, the same checks
    from tasks import easy_arithmetic
    exs = easy_arithmetic.prompts("train", n=300) + easy_arithmetic.prompts("test", n=100)
    assert {e["template"] for e in exs} == {"add", "mul"}
    for e in exs:
        assert int(e["gold"]) == solve(e["question"]), e["question"]
        assert all(2 <= int(x) <= 9 for x in re.findall(r"\d+", e["question"]))
        assert e["task"] == "easy_arithmetic" and e["id"].startswith("easy_arithmetic/")
    train = {e["question"] for e in easy_arithmetic.prompts("train", n=300)}
    assert not train & {e["question"] for e in easy_arithmetic.prompts("test", n=100)}
