"""
Easy arithmetic: one-step word problems, a sum or a product of two one-digit numbers, e.g.
"Tom has 7 apples and buys 5 more. How many apples does Tom have now?" -> 12, asked for the final
number only. The math of the default mixture (ultramathstories_arithmetic) and of the voting
experiment: among tasks/arithmetic.py's templates, the two that SmolLM2-135M solves most often
greedily and that it solves less and less often as the temperature rises (the README's sweep on
training problems), so that math, as in the paper, wants a low temperature. Problems, split, prompt
and reward are tasks/arithmetic.py's.
"""
from tasks import arithmetic

NAME = "easy_arithmetic"
LABEL = "one-step sums and products of one-digit numbers (stand-in for GSM8K on models too small for it)"
CHAT = True
REWARD = arithmetic.REWARD
TEMPLATES = [t for t in arithmetic.TEMPLATES if t[0] in ("add", "mul")]


format_prompt = arithmetic.format_prompt


def prompts(split="train", n=None, seed=0):
    return arithmetic.prompts(split, n, seed, templates=TEMPLATES, one_digit=True, name=NAME)


reward = arithmetic.reward  # 1 if the last number of the answer is right, else 0
