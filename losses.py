"""
The ways train.py can fit a head, one registry (its --loss reads the names): from a round's samples,
what a method trains on (its items), and the loss of a batch of them. The paper's losses are lpo.py's;
the rivals, each in a file of its own, are policy gradient (grpo.py) and a continuous temperature
trained by likelihood (continuous_head.py).

    name          head         items                                  loss
    lpo           discrete     better/worse pairs (--pairs)           (a), the paper's Eq. 10
    lpo_marginal  discrete     the same pairs                         (c), Section 3.3
    nll           discrete     the same pairs (their chosen side)     (d), -log P(tau^c)
    grpo          discrete     responses with their advantage         group policy gradient (grpo.py)
    ce            continuous   each prompt's best response            cross-entropy through T(h)
"""
from typing import Callable, NamedTuple

import continuous_head
import grpo
import lpo


class Loss(NamedTuple):
    head: str           # the head it trains: "discrete" (adaptive_head.py) or "continuous" (continuous_head.py)
    items: Callable     # (a round's samples, args) -> what it trains on
    loss: Callable      # (head, a batch of items, ref_head, lm_head, args) -> the loss
    item: str           # what an item is, for the progress lines


def pairs(samples, args):
    return lpo.preference_pairs(samples, args.pairs, args.level)


def pair_loss(name):
    return lambda head, batch, ref_head, lm_head, args: lpo.pair_loss(
        head, batch, name, args.level, args.beta, ref_head=ref_head, lm_head=lm_head, device=args.device)


LOSSES = {
    **{name: Loss("discrete", pairs, pair_loss(name), "pair") for name in lpo.PAIR_LOSSES},
    "grpo": Loss("discrete", lambda samples, args: grpo.responses(samples),
                 lambda head, batch, ref_head, lm_head, args: grpo.batch_loss(head, batch, args.level, args.clip,
                                                                              args.device), "response"),
    "ce": Loss("continuous", lambda samples, args: continuous_head.targets(samples),
               lambda head, batch, ref_head, lm_head, args: continuous_head.ce_loss(head, batch, lm_head,
                                                                                    args.device), "target"),
}
