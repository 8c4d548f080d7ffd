"""grpo.py: group-relative advantages, the importance-weighted clipped surrogate, its gradient by hand,
its convergence to the on-policy gradient on a bandit, and the planted choice it learns."""
import math

import numpy as np
import pytest
import torch

import grpo
from adaptive_head import AdaptiveDecoder
from test_lpo import TEMPS, planted_samples


def test_advantages_are_group_relative_and_zero_when_all_tie():
    s = math.sqrt(2 / 3)  # the population std of 1, 2, 3
    assert grpo.advantages([1.0, 2.0, 3.0]) == pytest.approx([-1 / s, 0.0, 1 / s])
    assert grpo.advantages([0.5, 0.5, 0.5, 0.5]) == [0.0] * 4
    assert grpo.advantages([7.0]) == [0.0]


class LinearHead(torch.nn.Module):
    """log P(k | h) = log_softmax(W h): a head whose gradient is (e_k - pi) h^T, by hand."""
    continuous = False

    def __init__(self, W):
        super().__init__()
        self.W = torch.nn.Parameter(torch.tensor(W, dtype=torch.float32))

    def log_probs(self, h):
        return torch.log_softmax(h @ self.W.T, dim=-1)


def sample(pid, k, reward, h, q):
    return {"id": pid, "reward": reward, "choices": [k], "tokens": [3], "stop": None,
            "hidden": torch.tensor(np.array([h]), dtype=torch.float32), "behaviour_logps": [math.log(q)]}


@pytest.mark.parametrize("clip", [0.0, 0.2])
def test_the_gradient_of_a_hand_worked_case(clip):
    """3 prompts with 2, 3 and 4 responses, a linear head over K = 3 choices, behaviour probabilities
    that differ from the head's: the loss's gradient against numpy's, term by term."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3, 2))
    groups = {"a": [(0, 1.0), (2, 0.0)], "b": [(1, 0.2), (1, 0.9), (0, 0.2)], "c": [(2, 1.0), (0, 1.0), (1, 0.0), (2, 0.5)]}
    samples = [sample(pid, k, r, rng.normal(size=2), q)
               for pid, g in groups.items() for (k, r), q in zip(g, rng.uniform(0.15, 0.6, size=len(g)))]
    items = grpo.responses(samples)
    assert len(items) == 9  # no response ties with its group's mean here
    head = LinearHead(W)
    grpo.batch_loss(head, items, "sequence", clip).backward()

    expected = np.zeros_like(W)
    for s, a in items:  # by hand: each response's term of -mean(min(r A, clip(r) A))
        h, k = s["hidden"][0].numpy().astype(np.float64), s["choices"][0]
        z = W @ h
        pi = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        r = pi[k] / math.exp(s["behaviour_logps"][0])
        clipped = clip and (r > 1 + clip if a > 0 else r < 1 - clip)  # min() takes the constant clipped term
        if not clipped:
            expected += -a * r * np.outer(np.eye(3)[k] - pi, h) / len(items)
    np.testing.assert_allclose(head.W.grad.numpy(), expected, rtol=1e-4, atol=1e-6)
    # the advantages of group b by hand: rewards 0.2, 0.9, 0.2 -> mean 0.4333, std 0.3300
    b = [a for s, a in items if s["id"] == "b"]
    assert b == pytest.approx([(0.2 - 1.3 / 3) / np.std([0.2, 0.9, 0.2]), (0.9 - 1.3 / 3) / np.std([0.2, 0.9, 0.2]),
                               (0.2 - 1.3 / 3) / np.std([0.2, 0.9, 0.2])])


def test_samples_collected_before_behaviour_was_stored_are_refused():
    old = [{"id": "a", "reward": 1.0, "choices": [0]}, {"id": "a", "reward": 0.0, "choices": [1]}]
    with pytest.raises(SystemExit, match="collected before"):
        grpo.responses(old, "out/run's samples")


class Bandit(torch.nn.Module):
    """A policy over K arms that ignores the state: log_softmax(theta)."""
    continuous = False

    def __init__(self, theta):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(theta))

    def log_probs(self, h):
        return torch.log_softmax(self.theta, -1).expand(*h.shape[:-1], -1)


def estimate(policy, draws_from, groups, N, means, seed):
    """The mean gradient of the unclipped grpo loss over many groups of N draws from draws_from (K,)
    probabilities; rewards: each arm's mean plus noise."""
    g = torch.Generator().manual_seed(seed)
    k = torch.multinomial(draws_from.expand(groups, -1), N, replacement=True, generator=g)  # (groups, N)
    rewards = means[k] + 0.3 * torch.randn(k.shape, generator=g)
    adv = torch.tensor([grpo.advantages(r.tolist()) for r in rewards], dtype=torch.float32).flatten()
    logp = policy.log_probs(torch.zeros(k.numel(), 1, 1)).gather(-1, k.reshape(-1, 1, 1)).squeeze(-1)  # (B, 1)
    logq = draws_from.log()[k.reshape(-1, 1)]
    policy.theta.grad = None
    grpo.grpo_loss(logp, logq, adv, torch.ones_like(logp, dtype=torch.bool), clip=0).backward()
    return -policy.theta.grad.clone()  # the ascent direction


def test_importance_weights_recover_the_on_policy_gradient_from_uniform_draws():
    """A bandit: uniform behaviour draws, importance-weighted, give the direction of the policy gradient
    of the policy's own expected reward (sum_k pi_k mu_k (e_k - pi), exactly); the same draws without
    the weights (as if they were on-policy) point elsewhere."""
    means = torch.tensor([0.1, 0.5, 0.9, 0.3])
    policy = Bandit([2.0, 0.0, -1.0, 1.0])
    pi = torch.softmax(policy.theta.detach(), -1)
    exact = pi * means - pi * (pi * means).sum()  # grad of E_pi[R] wrt theta
    cos = lambda a, b: float(a @ b / (a.norm() * b.norm()))  # noqa: E731
    weighted = estimate(policy, torch.full((4,), 0.25), 20000, 8, means, seed=1)
    on_policy = estimate(policy, pi, 20000, 8, means, seed=2)
    assert cos(weighted, exact) > 0.99 and cos(on_policy, exact) > 0.99
    # the weights' worth: uniform draws taken as on-policy ones estimate the uniform policy's gradient
    uniform_taken_as_pi = estimate(Bandit([0.0] * 4), torch.full((4,), 0.25), 20000, 8, means, seed=1)
    assert cos(uniform_taken_as_pi, exact) < 0.8


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("clip", [0.0, 0.2])
def test_grpo_learns_the_planted_temperature_per_kind(reverse, clip):
    """The planted samples of test_lpo (kind A: the hotter response wins; kind B: the cooler), drawn
    uniformly: grpo's head chooses a hot temperature for one kind and a cool one for the other, and the
    other way round when the plant is reversed. Not always the extreme one, as LPO does: the surrogate
    is linear in pi, sum_i A_i pi(k_i) / q, so unclipped it puts all the mass on the choice with the
    largest *total* advantage (0 and 0.2 differ by 0.2 in reward, and the one drawn more often can win);
    clipped, each response's ratio stops at 1 +- clip (the trust region), the head stays far from one
    choice, and its argmax goes to the choices the advantages favour."""
    torch.manual_seed(0)
    samples, kinds, _ = planted_samples(reverse, n_prompts=96, T=1)
    for s in samples:
        s["behaviour_logps"] = [-math.log(len(TEMPS))] * len(s["choices"])
    items = grpo.responses(samples)
    head = AdaptiveDecoder(16, TEMPS, "sequence", hidden=32)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
    for step in range(50):
        loss = grpo.batch_loss(head, items, "sequence", clip)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        chosen = {kind: TEMPS[int(head(h).argmax())] for kind, h in kinds.items()}
        probs = torch.stack([head.log_probs(h).exp() for h in kinds.values()])
    hot, cool = ("B", "A") if reverse else ("A", "B")
    assert chosen[hot] >= 0.8 and chosen[cool] <= 0.2, chosen
    p = dict(zip(kinds, probs))
    if clip:  # the trust region: far from one choice
        assert probs.max() < 0.4, probs
    else:  # nearly all the mass on the two hottest choices for one kind, on the two coolest for the other
        assert p[hot][4:].sum() > 0.9 and p[cool][:2].sum() > 0.9, probs


def test_a_continuous_head_is_refused():
    from continuous_head import ContinuousDecoder
    s = sample("a", 0, 1.0, [0.0, 0.0], 0.5)
    with pytest.raises(ValueError, match="discrete"):
        grpo.batch_loss(ContinuousDecoder(2), [(s, 1.0)])
