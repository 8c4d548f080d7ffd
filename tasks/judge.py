"""
The reward hook for tasks that need a judge (stories, instructions, constrained_stories).
The tasks only define prompts; a reward model plugs in here, e.g. in train.py:

    from tasks import judge
    judge.set_judge(lambda prompts, responses: my_reward_model.score(prompts, responses))

A judge takes a list of prompts and a list of responses and returns one float per pair (batched,
since a reward model is much faster on batches). score_batch() calls it; score() does one pair.
"""
_judge = None

def set_judge(fn):
    global _judge
    _judge = fn

def has_judge():
    return _judge is not None

def score_batch(prompts, responses):
    if _judge is None:
        raise RuntimeError("this task is scored by a judge (reward model) and none is set: "
                           "call tasks.judge.set_judge(fn) with fn(prompts, responses) -> list of floats")
    scores = [float(s) for s in _judge(list(prompts), list(responses))]
    assert len(scores) == len(responses), "the judge must return one score per response"
    return scores

def score(prompt, response):
    return score_batch([prompt], [response])[0]
