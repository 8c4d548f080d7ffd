"""
Majority voting on easy arithmetic: the gsm8k_vote experiment (the paper's experiment 4) for models
too small for GSM8K, such as the embedded default (SmolLM2-135M solves so few GSM8K problems that
its maj@K there is near zero at every temperature). The problems, prompt and reward are
tasks/easy_arithmetic.py's (one-step sums and products of one-digit numbers, which SmolLM2-135M
answers right often enough for a majority of K answers to differ between methods); evaluation
samples K answers per problem and votes, as gsm8k_vote does.
"""
from tasks import easy_arithmetic, gsm8k_vote

NAME = "arithmetic_vote"
LABEL = "majority voting on easy arithmetic (stand-in for GSM8K on models too small for it)"
CHAT = True
K = gsm8k_vote.K
EVAL_SAMPLES = K
REWARD = easy_arithmetic.REWARD + ", per answer"


format_prompt = easy_arithmetic.format_prompt


def prompts(split="train", n=None, seed=0):
    return [dict(ex, task=NAME) for ex in easy_arithmetic.prompts(split, n, seed)]


reward = easy_arithmetic.reward             # per answer: 1 if correct else 0
group_metrics = gsm8k_vote.group_metrics    # maj@K and single-answer accuracy
