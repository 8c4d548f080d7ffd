# GSM8K answer extraction, correctness and majority voting, on real GSM8K data and hand-made outputs.
import json
import os

import pytest

from tasks import gsm8k, gsm8k_vote

DATA = os.environ.get("LPO_DATA_DIR", "")
TEST = os.path.join(DATA, "gsm8k", "test.jsonl")
needs_data = pytest.mark.skipif(not os.path.isfile(TEST),
                                reason="set LPO_DATA_DIR to a copy of the data (gsm8k/test.jsonl)")

@needs_data
def test_real_gold_answers():
    rows = [json.loads(l) for l in open(TEST, encoding="utf-8")]
    assert len(rows) == 1319
    n_comma = n_neg = 0
    for r in rows:
        tail = r["answer"].split("####")[-1].strip()  # e.g. "18", "1,600", "-10"
        n_comma += "," in tail
        n_neg += tail.startswith("-")
        number = int(tail.replace(",", ""))        # every GSM8K test answer is an integer
        assert gsm8k.extract_answer("#### " + tail) == str(number)
        # the full solution text (with <<a*b=c>> calculator notes and the #### line) -> the final answer
        assert gsm8k.extract_answer(r["answer"]) == str(number), r["answer"]
        assert gsm8k.is_correct(r["answer"], number)
        # and the same solution written the way we ask the model to end it
        body = r["answer"].rsplit("####", 1)[0]
        assert gsm8k.extract_answer(body + f"The answer is {tail}.") == str(number)
    assert n_comma == 14 and n_neg == 2  # the test set really exercises commas and signs

@needs_data
def test_prompts_real():
    exs = gsm8k.prompts("test")
    assert len(exs) == 1319 and exs[0]["gold"] == "18" and "Janet" in exs[0]["prompt"]
    assert "The answer is N" in exs[0]["prompt"]
    assert all(e["gold"] is not None and e["task"] == "gsm8k" for e in exs)
    sub = gsm8k.prompts("test", n=5, seed=1)
    assert [e["id"] for e in sub] == [e["id"] for e in gsm8k.prompts("test", n=5, seed=1)]
    assert len(sub) == 5 and sub != gsm8k.prompts("test", n=5, seed=2)
    assert gsm8k.reward(exs[0], "She makes 9 * 2 = $18. The answer is 18.") == 1.0
    assert gsm8k_vote.prompts("test", n=2)[0]["task"] == "gsm8k_vote"

@pytest.mark.parametrize("text, expected", [
    ("The answer is 42.", "42"),
    ("She has 3 apples, then 5. The answer is 1,234", "1234"),
    ("The total is $1,000.50.", "1000.5"),
    ("The answer is $1,000.50", "1000.5"),
    ("The temperature dropped to -7 degrees.", "-7"),
    ("The answer is −3", "-3"),                         # unicode minus
    ("The answer is 18.00 dollars.", "18"),
    ("The answer is 0.50", "0.5"),
    ("Answer: 7 cookies", "7"),
    ("answer = 12", "12"),
    ("The final answer is: **25**", "25"),
    ("So the final answer is $\\boxed{64}$.", "64"),
    ("\\boxed{3.5}", "3.5"),
    ("#### 1,600", "1600"),
    ("First 3 + 4 = 7, then 7 * 2 = 14.", "14"),        # fallback: the last number
    ("The answer is 9, since 3 + 6 = 9 and not 10.", "9"),  # an explicit answer beats later numbers
    ("I think 12 is wrong; the answer is 15 and 20 was a typo", "15"),
    ("The answer is 8. Wait, no. The answer is 6.", "6"),  # the last explicit answer wins
    ("He had to answer 5 questions; 3 were right.", "3"),  # 'answer' as a verb is no marker
    ("5-3=2", "2"),                                       # '-' between digits is not a sign
    ("There were 40 COVID-19 cases.", "19"),              # nor a hyphen in a word
    ("Numbers 1,2,3", "3"),                              # '1,2,3' is a list, not 123
    ("It weighs 2,500 kg.", "2500"),
    ("He paid 25%.", "25"),
    ("I don't know.", None),
    ("", None),
    (None, None),
])
def test_extract_answer(text, expected):
    assert gsm8k.extract_answer(text) == expected

def test_is_correct():
    assert gsm8k.is_correct("The answer is 18.00", "18")
    assert gsm8k.is_correct("The answer is 18", 18)
    assert gsm8k.is_correct("The answer is $1,000", "1000")
    assert gsm8k.is_correct("The answer is 0.5", "0.50")
    assert not gsm8k.is_correct("The answer is 18.5", "18")
    assert not gsm8k.is_correct("The answer is -18", "18")
    assert not gsm8k.is_correct("no idea", "18")

def test_majority_vote():
    assert gsm8k.majority_vote(["3", "5", "5", None, "3", "5"]) == "5"
    assert gsm8k.majority_vote(["3", "5", "5", "3"]) == "3"     # tie: first seen
    assert gsm8k.majority_vote(["5", "3", "3", "5"]) == "5"
    assert gsm8k.majority_vote([None, None, "7"]) == "7"        # None never wins
    assert gsm8k.majority_vote([None, None]) is None
    assert gsm8k.majority_vote([]) is None

def test_single_and_majority_rewards():
    golds = ["18", "3"]
    single = ["The answer is 18", "The answer is 4"]  # one response per problem: right, wrong
    assert [gsm8k.reward({"gold": g}, r) for r, g in zip(single, golds)] == [1.0, 0.0]
    samples = [["The answer is 18", "The answer is 17", "The answer is 18.0"],  # majority 18: right
               ["The answer is 4", "The answer is 3", "The answer is 4"]]       # majority 4: wrong
    assert [gsm8k_vote.vote_reward({"gold": g}, rs) for rs, g in zip(samples, golds)] == [1.0, 0.0]
    metrics = gsm8k_vote.group_metrics({"gold": "3"}, samples[1], [0.0, 1.0, 0.0])
    assert metrics == {"maj@3": 0.0, "single": 1 / 3}
    assert gsm8k_vote.vote(["The answer is 2", "The answer is 1,000", "the answer is 1000"]) == "1000"
    responses = ["The answer is 2", "The answer is 1,000", "1000."]
    assert gsm8k_vote.vote_reward({"gold": "1000"}, responses) == 1.0
    assert gsm8k_vote.vote_reward({"gold": "2"}, responses) == 0.0
