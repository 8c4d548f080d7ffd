# GSM8K answer extraction, correctness and majority voting, on real GSM8K data and hand-made outputs.
import json
import os

import pytest

import tasks
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

# -----------------------------------------------------------------------------
# a malformed file: one error naming the file, the line and what was expected

GOOD = b'{"question": "Tom has 3 apples and eats 1. How many are left?", "answer": "3 - 1 = 2\\n#### 2"}\n'
EXPECTED = 'expected one JSON object per line with fields "question" and "answer"'

@pytest.mark.parametrize("content, error", [
    (GOOD + b"\n" + b'{"question": "Q" "answer": "#### 1"}\n' + GOOD,
     "line 3: not valid JSON (Expecting ',' delimiter)"),
    (GOOD * 300 + b'{"question": "Caf\xe9 prices?", "answer": "#### 4"}\n' + GOOD,  # past the first 8 KB
     "line 301: not valid UTF-8 (byte 0xe9: invalid continuation byte)"),
    (GOOD + GOOD + b'{"question": "Q", "solution": "#### 1"}\n', 'line 3: no text field "answer"'),
    (GOOD + b'{"question": null, "answer": "#### 1"}\n', 'line 2: no text field "question"'),
    (b'["Q", "#### 1"]\n' + GOOD, "line 1: not a JSON object"),
], ids=["json", "utf8", "no_answer", "null_question", "not_object"])
def test_malformed_file_names_the_line(tmp_path, monkeypatch, content, error):
    path = tmp_path / "gsm8k" / "test.jsonl"
    path.parent.mkdir()
    path.write_bytes(content)
    monkeypatch.setenv("LPO_DATA_DIR", str(tmp_path))
    for read in (lambda: gsm8k.prompts("test"), lambda: tasks.prompts("gsm8k_vote", "test")):
        with pytest.raises(ValueError) as e:
            read()
        assert str(e.value) == f"{path}, {error}; {EXPECTED}"

def test_valid_file_reads_as_before(tmp_path, monkeypatch):
    path = tmp_path / "gsm8k" / "test.jsonl"
    path.parent.mkdir()
    five = GOOD.replace(b"3 apples", b"5 apples").replace(b"\n", b"\r\n", 1)  # the line ends in CRLF
    path.write_bytes(b"\n" + GOOD + b"  \n" + five)
    monkeypatch.setenv("LPO_DATA_DIR", str(tmp_path))
    exs = gsm8k.prompts("test")
    assert [e["id"] for e in exs] == ["gsm8k/test/0", "gsm8k/test/1"]  # blank lines are no examples
    assert [e["question"][:12] for e in exs] == ["Tom has 3 ap", "Tom has 5 ap"] and exs[1]["gold"] == "2"

@needs_data
def test_real_file_reads_as_json_lines():
    rows = [json.loads(l) for l in open(TEST, encoding="utf-8") if l.strip()]
    exs = gsm8k.prompts("test")
    assert [(e["id"], e["question"], e["solution"]) for e in exs] == [
        (f"gsm8k/test/{i}", r["question"], r["answer"]) for i, r in enumerate(rows)]
