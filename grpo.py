"""
A rival of LPO, not the paper's method: policy gradient on the head's choices with group-relative
advantages (as GRPO, Shao et al. 2024, does for an LM's tokens; here the actions are the head's
temperatures, the LM stays frozen). LPO learns from which of two responses is better; this learns
from how much better each response is than its prompt's other responses.

    advantages      a prompt's N rewards -> (r - mean) / std, 0 for all when they tie
    responses       a round's samples -> (sample, advantage) for every response with a non-zero one
    grpo_loss       the clipped importance-weighted surrogate, from per-step log-probabilities
    batch_loss      the loss of a batch of (sample, advantage), from the stored hidden states

The estimator. For a response with choices k_1..k_T drawn from a behaviour distribution q (train.py's
collection: the head mixed with uniform draws, --explore; log q stored with each sample), and
r_t = pi(k_t | h_t) / q(k_t | h_t), the loss is

    L = - mean over responses of  sum_t min(r_t A, clip(r_t, 1 - eps, 1 + eps) A)

(summed over steps at token level, as loss (a) sums log P(tau); one step at sequence level). Without
the clip (eps = 0: --clip 0) its gradient at sequence level, A r grad log pi(k | h), is an unbiased
estimate of the on-policy gradient E_pi[A grad log pi] for a fixed A, whatever q is (importance
sampling: E_q[r f] = E_pi[f]), and a baseline that does not depend on the response keeps it so. Two
things bias it, as they do GRPO's: the group mean includes the response itself (an (N - 1) / N
shrink of the advantage), and the division by the group's standard deviation. At token level the
per-step ratio leaves out the ratios of the steps before (PPO's surrogate, not the full product of
ratios, which is unbiased but whose variance grows with T). The clip, PPO's, is a trust region: once
r_t leaves [1 - eps, 1 + eps] in the direction A pushes, the step gives no gradient, so off-policy
data (uniform draws: r = K pi) moves pi only within eps of q per choice, biased but stable; the
argmax, which evaluation uses, can still move to the right choice.
"""
import sys

import torch
from torch.nn.utils.rnn import pad_sequence

from lpo import stack_side


def advantages(rewards):
    """Group-relative advantages of one prompt's rewards: (r - mean) / std with the population std
    (over the N responses); all zero when the rewards tie (no response better than another)."""
    r = torch.tensor(rewards, dtype=torch.float64)
    std = r.std(unbiased=False)
    if len(r) < 2 or std == 0:
        return [0.0] * len(r)
    return ((r - r.mean()) / std).tolist()


def responses(samples, where="these samples"):
    """A round's training items: (sample, advantage) for every response whose advantage is not 0, prompt
    by prompt in the order the prompts first appear. Samples collected before the behaviour probability
    was stored (no "behaviour_logps") are refused: the importance weights need it."""
    if any("behaviour_logps" not in s for s in samples):
        sys.exit(f"error: {where} were collected before train.py kept the probability each choice was drawn "
                 "with, which --loss grpo's importance weights divide by; collect them again (another --out_dir, "
                 "without --samples_from this run)")
    groups = {}
    for s in samples:
        groups.setdefault(s["id"], []).append(s)
    return [(s, a) for group in groups.values() for s, a in zip(group, advantages([s["reward"] for s in group]))
            if a != 0]


def grpo_loss(logp, logq, advantage, mask, clip=0.2):
    """logp (B, T): log pi(k_t | h_t) of each step's choice under the head being trained; logq (B, T): under
    the behaviour distribution it was drawn from; advantage (B,); mask (B, T) the steps that count; clip:
    PPO's eps (0: no clip). Returns the loss (the module docstring's L)."""
    ratio = torch.exp(logp - logq)                                    # r_t (B, T)
    a = advantage[:, None]
    surrogate = ratio * a
    if clip:
        surrogate = torch.minimum(surrogate, ratio.clamp(1 - clip, 1 + clip) * a)
    per_response = torch.where(mask.bool(), surrogate, torch.zeros_like(surrogate)).sum(-1)
    return -per_response.mean()


def batch_loss(head, items, level="sequence", clip=0.2, device="cpu"):
    """grpo_loss of a batch of (sample, advantage) (train.py's samples: "hidden", "choices",
    "behaviour_logps"), the head's log-probabilities computed from the stored hidden states."""
    if head.continuous:
        raise ValueError("grpo reinforces the choices of a discrete head (adaptive_head.py), not a continuous one")
    side = stack_side([(s,) for s, _ in items], 0, device)
    logq = pad_sequence([torch.tensor(s["behaviour_logps"], dtype=torch.float32) for s, _ in items],
                        batch_first=True).to(device)
    hidden, choices, mask = side.hidden, side.choices, side.has_choice
    if level == "sequence":  # one choice, from the last prompt token's state
        hidden, choices, mask, logq = hidden[:, :1], choices[:, :1], mask[:, :1], logq[:, :1]
    logp = head.log_probs(hidden).gather(-1, torch.where(mask, choices, 0).unsqueeze(-1)).squeeze(-1)
    advantage = torch.tensor([a for _, a in items], dtype=logp.dtype, device=logp.device)
    return grpo_loss(logp, logq.to(logp.dtype), advantage, mask, clip)
