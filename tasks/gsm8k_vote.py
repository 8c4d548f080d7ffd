"""
GSM8K majority voting (the paper's experiment 4): sample K reasoning chains per problem and vote on
the final answer. Training uses the per-chain correctness reward of gsm8k; evaluation is maj@K.
"""
from tasks import gsm8k

NAME = "gsm8k_vote"
CHAT = True
K = 8  # chains per problem
EVAL_SAMPLES = K  # evaluation samples K chains per prompt and method
REWARD = gsm8k.REWARD + ", per chain"


format_prompt = gsm8k.format_prompt


def prompts(split="train", n=None, seed=0):
    return [dict(ex, task=NAME) for ex in gsm8k.prompts(split, n, seed)]


reward = gsm8k.reward  # per chain: 1 if correct else 0


def vote(responses):
    """The majority answer of a list of responses (None if no response has a number)."""
    return gsm8k.majority_vote([gsm8k.extract_answer(r) for r in responses])


def vote_reward(example, responses):
    """1 if the majority answer of the K responses is correct, else 0."""
    v = vote(responses)
    return 1.0 if v is not None and gsm8k.is_correct(v, example["gold"]) else 0.0


def group_metrics(example, responses, rewards, judge=None):
    """Evaluation: maj@K (the majority answer's correctness) and single-chain accuracy."""
    return {f"maj@{len(responses)}": vote_reward(example, responses), "single": sum(rewards) / len(rewards)}
