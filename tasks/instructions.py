"""
General instructions (the "UltraFeedback" part of UltraMathStories), scored by a judge (tasks.judge).
The paper uses UltraFeedback prompts; when a local copy exists we use it:
  $LPO_ULTRAFEEDBACK=/path/to/file.jsonl, or <data dir>/ultrafeedback/instructions.jsonl,
  one JSON object per line with an "instruction" or "prompt" field.
Otherwise the 805 AlpacaEval instructions (alpaca_eval/instructions.jsonl, fields dataset, instruction)
stand in. A hash of the instruction text puts ~20% of them in the test split.
Reward = the judge's score of the response (group_reward scores a prompt's responses in one batch).
"""
import os

from tasks.judge import score_batch
from tasks.data import data_path, find_local, is_test, read_jsonl, subsample

NAME = "instructions"
CHAT = True
JUDGED = True  # scored by the judge: tasks.rewards batches its calls
REWARD = "the judge's score"


def source_path(source=None):
    """(source name, path) of the instruction file: ultrafeedback if a local copy exists, else alpaca_eval."""
    if source in (None, "ultrafeedback"):
        path = os.environ.get("LPO_ULTRAFEEDBACK") or find_local("ultrafeedback/instructions.jsonl")
        if path or source == "ultrafeedback":
            # no local copy: data_path (the latter) raises a clear error
            return "ultrafeedback", path or data_path("ultrafeedback/instructions.jsonl")
    assert source in (None, "alpaca_eval"), f"unknown source {source!r}"
    return "alpaca_eval", data_path("alpaca_eval/instructions.jsonl")


def prompts(split="train", n=None, seed=0, source=None):
    assert split in ("train", "test"), split
    source, path = source_path(source)
    examples, seen = [], set()
    for line, row in read_jsonl(path, (("instruction", "prompt"),)):
        text = (row.get("instruction") or row.get("prompt") or "").strip()
        if not text or text in seen or is_test(text) != (split == "test"):
            continue
        seen.add(text)
        examples.append(dict(id=f"{source}/{line - 1}", task=NAME, prompt=text, source=source,
                             dataset=row.get("dataset") or row.get("source")))
    return subsample(examples, n, seed)


def group_reward(example, responses, judge):
    """The N responses to one prompt, scored by the judge in one batch."""
    return score_batch(judge, [example["prompt"]] * len(responses), responses)
