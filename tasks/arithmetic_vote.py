"""
Majority voting on the synthetic arithmetic problems: the gsm8k_vote experiment (the paper's
experiment 4) for models too small for GSM8K, such as the embedded default (SmolLM2-135M solves
so few GSM8K problems that its maj@K there is near zero at every temperature). Same problems, prompt
and reward as tasks/arithmetic.py; evaluation samples K answers per problem and votes, as gsm8k_vote
does.
"""
from tasks import arithmetic, gsm8k_vote

NAME = "arithmetic_vote"
LABEL = "majority voting on synthetic arithmetic (stand-in for GSM8K on models too small for it)"
CHAT = True
K = gsm8k_vote.K
EVAL_SAMPLES = K

def prompts(split="train", n=None, seed=0):
    return [dict(ex, task=NAME) for ex in arithmetic.prompts(split, n, seed)]

format_prompt = arithmetic.format_prompt
reward = arithmetic.reward                  # per answer: 1 if correct else 0
group_metrics = gsm8k_vote.group_metrics    # maj@K and single-answer accuracy
