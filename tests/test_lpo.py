"""Tests for lpo.py: hand-computed values, gradchecks, padding, tau = 0, and (b) == (a)."""
import math

import pytest
import torch
import torch.nn.functional as F

from adaptive_head import AdaptiveDecoder
from lpo import (choice_logps, lpo_loss, lpo_marginal_loss, mixture_sequence_logps, mixture_token_logps,
                 nll_loss, pair_loss, preference_accuracy, preference_pairs, same_temperatures, sequence_logp)

D = torch.float64


def uniform_logprobs(shape, K):
    """A uniform reference head: log P_ref(tau | h) = -log K everywhere, (*shape, K)."""
    return torch.full((*shape, K), -math.log(K), dtype=D)


# ---------------------------------------------------------------- the pairs

def test_preference_pairs_best_against_worst_ties_give_none():
    s = lambda i, r, n: {"id": i, "reward": r, "n": n}  # noqa: E731
    samples = [s("a", 0.2, 0), s("b", 1.0, 1), s("a", 0.9, 2), s("b", 1.0, 3), s("a", 0.1, 4), s("a", 0.9, 5),
               s("c", 0.0, 6), s("c", 3.0, 7)]
    pairs = preference_pairs(samples)
    # a: best 0.9 (the first of two), worst 0.1; b: all tied, no pair; c: 3.0 against 0.0
    assert [(c["n"], r["n"]) for c, r in pairs] == [(2, 4), (7, 6)]
    assert preference_pairs([s("x", 1.0, 0)]) == []  # one response: nothing to compare


def test_preference_pairs_all_better_worse_with_different_temperatures():
    s = lambda i, r, k, n: {"id": i, "reward": r, "choices": [k, k], "n": n}  # noqa: E731
    samples = [s("a", 0.5, 0, 0), s("a", 0.9, 1, 1), s("a", 0.1, 1, 2), s("a", 0.5, 2, 3),
               s("b", 1.0, 3, 4), s("b", 0.0, 3, 5)]
    pairs = preference_pairs(samples, "all")
    # a: 0 vs 1 (0.9 wins), 0 vs 2 (0.1 loses), 0 vs 3 tie: none; 1 vs 2 same temperature: none;
    # 1 vs 3, 2 vs 3; b: the same temperature on both sides, no pair (best_worst would pair them)
    assert [(c["n"], r["n"]) for c, r in pairs] == [(1, 0), (0, 2), (1, 3), (3, 2)]
    assert [(c["n"], r["n"]) for c, r in preference_pairs(samples)] == [(1, 2), (4, 5)]
    assert same_temperatures(samples[4], samples[5])
    # at token level the whole sequence of choices counts
    a, b = {"choices": [1, 2]}, {"choices": [1, 3]}
    assert same_temperatures(a, b, "sequence") and not same_temperatures(a, b, "token")
    with pytest.raises(ValueError, match="pair rule"):
        preference_pairs(samples, "random")


def log_sigmoid(x):
    return -math.log(1 + math.exp(-x))


def softmax_list(xs, tau=1.0):
    e = [math.exp(x / tau) for x in xs]
    return [v / sum(e) for v in e]


# ---------------------------------------------------------------- (a) and the AD terms

def test_sequence_logp_masks_garbage():
    x = torch.tensor([[-1.0, -2.0, 1e30], [-0.5, float("nan"), float("-inf")]])
    m = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.float32)
    assert sequence_logp(x, m).tolist() == [-3.0, -0.5]
    assert sequence_logp(x, m.bool()).tolist() == [-3.0, -0.5]
    assert sequence_logp(torch.tensor([[-0.25], [-4.0]])).tolist() == [-0.25, -4.0]  # AD_seq, T = 1


def test_choice_logps_by_hand():
    logits = [[[0.0, 1.0, 2.0], [3.0, 0.0, -1.0]]]  # (B=1, T=2, K=3)
    lp = F.log_softmax(torch.tensor(logits, dtype=D), -1)
    got = choice_logps(lp, torch.tensor([[2, 0]]))
    want = math.log(softmax_list(logits[0][0])[2]) + math.log(softmax_list(logits[0][1])[0])
    assert got.item() == pytest.approx(want, abs=1e-12)
    # a padded position may hold an out-of-range index and must not count
    got = choice_logps(lp, torch.tensor([[2, 999]]), mask=torch.tensor([[True, False]]))
    assert got.item() == pytest.approx(math.log(softmax_list(logits[0][0])[2]), abs=1e-12)
    # AD_seq shape: (B, K) and (B,)
    got = choice_logps(lp[:, 0], torch.tensor([1]))
    assert got.item() == pytest.approx(math.log(softmax_list(logits[0][0])[1]))


def test_lpo_loss_by_hand():
    c, r, beta = [-1.0, -2.0], [-3.0, -1.5], 0.5
    loss = lpo_loss(torch.tensor(c, dtype=D), torch.tensor(r, dtype=D), beta=beta)
    want = -(log_sigmoid(beta * (c[0] - r[0])) + log_sigmoid(beta * (c[1] - r[1]))) / 2
    assert loss.item() == pytest.approx(want, abs=1e-12)


def test_lpo_loss_gradient_by_hand_and_stable():
    c = torch.tensor([-1.0], dtype=D, requires_grad=True)
    r = torch.tensor([-3.0], dtype=D, requires_grad=True)
    lpo_loss(c, r, beta=0.5).backward()
    g = -0.5 / (1 + math.exp(0.5 * 2.0))  # d/dc -log sigma(beta (c - r)) = -beta sigma(-beta (c - r))
    assert c.grad.item() == pytest.approx(g) and r.grad.item() == pytest.approx(-g)
    loss = lpo_loss(torch.tensor([-1e4]), torch.tensor([0.0]), beta=1.0)  # naive log(sigmoid) = inf
    assert loss.item() == pytest.approx(1e4)


def test_gradcheck_lpo_loss_and_through_head():
    torch.manual_seed(0)
    c, r = torch.randn(4, dtype=D, requires_grad=True), torch.randn(4, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: lpo_loss(a, b, beta=0.7), (c, r))
    # end to end: head logits -> log P(tau|h) -> choice sums -> Eq. 10
    head_logits = torch.randn(3, 5, 6, dtype=D, requires_grad=True)
    ch_c, ch_r = torch.randint(0, 6, (3, 5)), torch.randint(0, 6, (3, 5))
    m = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]).bool()

    def f(z):
        lp = F.log_softmax(z, -1)
        return lpo_loss(choice_logps(lp, ch_c, m), choice_logps(lp, ch_r, m), beta=0.3)
    assert torch.autograd.gradcheck(f, (head_logits,))


def test_nll_baseline():
    c = torch.tensor([-2.0, -6.0], dtype=D)
    assert nll_loss(c).item() == pytest.approx(4.0)


def test_loss_b_equals_loss_a_with_frozen_lm():
    """(b) written from its formula; with a frozen LM P(y) = P_ref(y) so the ratio is 1."""
    torch.manual_seed(1)
    B, T, V, K, beta = 3, 4, 11, 6, 0.4
    lm_c, lm_r = torch.randn(B, T, V, dtype=D), torch.randn(B, T, V, dtype=D)  # frozen LM logits
    y_c, y_r = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
    head_logits = torch.randn(B, T, K, dtype=D, requires_grad=True)
    ch_c, ch_r = torch.randint(0, K, (B, T)), torch.randint(0, K, (B, T))

    def logp_y(lm, y):
        return F.log_softmax(lm, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1).sum(-1)
    lp = F.log_softmax(head_logits, -1)
    tau_c, tau_r = choice_logps(lp, ch_c), choice_logps(lp, ch_r)
    logits_b = (beta * (logp_y(lm_c, y_c) - logp_y(lm_c, y_c))
                - beta * (logp_y(lm_r, y_r) - logp_y(lm_r, y_r))
                + beta * tau_c - beta * tau_r)
    loss_b = -F.logsigmoid(logits_b).mean()
    loss_a = lpo_loss(tau_c, tau_r, beta=beta)
    assert torch.allclose(loss_a, loss_b, atol=1e-12)
    ga, = torch.autograd.grad(loss_a, head_logits, retain_graph=True)
    gb, = torch.autograd.grad(loss_b, head_logits)
    assert torch.allclose(ga, gb, atol=1e-12)


# ---------------------------------------------------------------- the mixture and loss (c)

def test_mixture_single_temperature_one_is_log_softmax():
    torch.manual_seed(2)
    lm, y = torch.randn(2, 3, 7, dtype=D), torch.randint(0, 7, (2, 3))
    got = mixture_token_logps(lm, torch.zeros(2, 3, 1, dtype=D), torch.tensor([1.0]), y)
    want = F.log_softmax(lm, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(got, want, atol=1e-12)


def test_mixture_by_hand():
    logits, p, temps = [2.0, 1.0, 0.0], [0.3, 0.7], [0.5, 1.0]
    got = mixture_token_logps(torch.tensor([[logits]], dtype=D),
                              torch.tensor([[[math.log(p[0]), math.log(p[1])]]], dtype=D),
                              torch.tensor(temps, dtype=D), torch.tensor([[1]]))
    want = math.log(p[0] * softmax_list(logits, 0.5)[1] + p[1] * softmax_list(logits, 1.0)[1])
    assert got.item() == pytest.approx(want, abs=1e-12)


def test_mixture_temperature_zero():
    logits, p = [2.0, 1.0, 0.0], [0.25, 0.75]  # argmax is token 0
    lm = torch.tensor([[logits, logits]], dtype=D)  # (1, 2, 3)
    z = torch.tensor([[[math.log(p[0]), math.log(p[1])]] * 2], dtype=D, requires_grad=True)
    y = torch.tensor([[0, 2]])  # argmax, then not
    got = mixture_token_logps(lm, F.log_softmax(z, -1), torch.tensor([0.0, 1.0]), y)
    sm = softmax_list(logits)
    assert got[0, 0].item() == pytest.approx(math.log(p[0] + p[1] * sm[0]), abs=1e-12)
    assert got[0, 1].item() == pytest.approx(math.log(p[1] * sm[2]), abs=1e-12)  # greedy part drops out
    got.sum().backward()
    assert torch.isfinite(z.grad).all()
    # only component tau = 0: log 0 = -inf off the argmax (documented), log 1 = 0 on it; no NaN grads
    z1 = torch.zeros(1, 2, 1, dtype=D, requires_grad=True)
    only0 = mixture_token_logps(lm, F.log_softmax(z1, -1), torch.tensor([0.0]), y)
    assert only0[0, 0].item() == 0.0 and only0[0, 1].item() == float("-inf")
    only0[0, 0].backward()
    assert torch.isfinite(z1.grad).all()


def test_mixture_chunks_over_T():
    torch.manual_seed(3)
    lm, y = torch.randn(2, 6, 9), torch.randint(0, 9, (2, 6))
    lp, temps = torch.randn(2, 6, 6).log_softmax(-1), torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    full = mixture_token_logps(lm, lp, temps, y)
    parts = [mixture_token_logps(lm[:, i:i + 4], lp[:, i:i + 4], temps, y[:, i:i + 4]) for i in (0, 4)]
    assert torch.allclose(full, torch.cat(parts, 1))


def test_gradcheck_mixture_wrt_head():
    torch.manual_seed(4)
    lm = torch.randn(2, 4, 5, dtype=D)
    y = torch.randint(0, 5, (2, 4))
    y[0, 0] = lm[0, 0].argmax()  # make sure both argmax and non-argmax tokens appear
    y[0, 1] = (lm[0, 1].argmax() + 1) % 5
    temps = torch.tensor([0.0, 0.4, 1.0], dtype=D)
    z = torch.randn(2, 4, 3, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: mixture_token_logps(lm, F.log_softmax(z, -1), temps, y), (z,))


def test_lpo_marginal_loss_by_hand():
    pc, rc = [[-1.0, -1.0]], [[-1.5, -1.5]]  # chosen: sum (pc - rc) = 1.0
    pr, rr = [[-3.0, 0.0]], [[-2.0, 0.0]]    # rejected, second token padded: sum = -1.0
    t = lambda x: torch.tensor(x, dtype=D)  # noqa: E731
    loss = lpo_marginal_loss(t(pc), t(pr), t(rc), t(rr), torch.tensor([[1, 1]]), torch.tensor([[1, 0]]),
                             beta=0.5)
    assert loss.item() == pytest.approx(-log_sigmoid(0.5 * (1.0 - (-1.0))), abs=1e-12)


def test_gradcheck_lpo_marginal_loss_end_to_end():
    torch.manual_seed(5)
    B, T, V, temps = 2, 3, 6, torch.tensor([0.0, 0.5, 1.0], dtype=D)
    lm_c, lm_r = torch.randn(B, T, V, dtype=D), torch.randn(B, T, V, dtype=D)
    y_c, y_r = lm_c.argmax(-1), torch.randint(0, V, (B, T))  # chosen hits the greedy token
    m_c, m_r = torch.tensor([[1, 1, 1], [1, 1, 0]]).bool(), torch.tensor([[1, 0, 0], [1, 1, 1]]).bool()
    ref = uniform_logprobs((B, T), 3)
    zc, zr = (torch.randn(B, T, 3, dtype=D, requires_grad=True),
              torch.randn(B, T, 3, dtype=D, requires_grad=True))

    def f(zc, zr):
        pol_c = mixture_token_logps(lm_c, F.log_softmax(zc, -1), temps, y_c)
        pol_r = mixture_token_logps(lm_r, F.log_softmax(zr, -1), temps, y_r)
        ref_c, ref_r = mixture_token_logps(lm_c, ref, temps, y_c), mixture_token_logps(lm_r, ref, temps, y_r)
        return lpo_marginal_loss(pol_c, pol_r, ref_c, ref_r, m_c, m_r, beta=0.8)
    assert torch.autograd.gradcheck(f, (zc, zr))
    pc, pr = torch.randn(B, T, dtype=D, requires_grad=True), torch.randn(B, T, dtype=D, requires_grad=True)
    rc, rr = torch.randn(B, T, dtype=D), torch.randn(B, T, dtype=D)
    assert torch.autograd.gradcheck(lambda a, b: lpo_marginal_loss(a, b, rc, rr, m_c, m_r, 0.3), (pc, pr))


def test_padding_does_not_change_marginal_loss_or_grads():
    """Garbage at padded positions (huge logits, -inf, a greedy-only head on a non-argmax token)
    gives the same loss and gradients as the unpadded sequences."""
    torch.manual_seed(6)
    V, temps = 8, torch.tensor([0.0, 0.5, 1.0])
    lm = torch.randn(1, 5, V, dtype=D)
    y = torch.randint(0, V, (1, 5))
    lm[0, 3:] = 1e30 * torch.randn(2, V, dtype=D)  # positions 3, 4 are padding
    y[0, 3] = (lm[0, 3].argmax() + 1) % V
    z = torch.randn(1, 5, 3, dtype=D)
    z[0, 3] = torch.tensor([0.0, float("-inf"), float("-inf")])  # all mass on tau = 0 -> mixture -inf
    z[0, 4] = 1e30
    mask = torch.tensor([[1, 1, 1, 0, 0]]).bool()
    ref = uniform_logprobs((1, 5), 3)

    def run(n, zz):
        zz = zz.clone().requires_grad_(True)
        pol = mixture_token_logps(lm[:, :n], F.log_softmax(zz, -1), temps, y[:, :n])
        refm = mixture_token_logps(lm[:, :n], ref[:, :n], temps, y[:, :n])
        pr, rr = torch.full((1, 1), -1.0, dtype=D), torch.zeros(1, 1, dtype=D)
        loss = lpo_marginal_loss(pol, pr, refm, rr, mask[:, :n], torch.ones(1, 1), beta=0.5)
        loss.backward()
        return loss, zz.grad, pol
    loss_p, g_p, pol = run(5, z)
    loss_u, g_u, _ = run(3, z[:, :3])
    assert pol[0, 3].item() == float("-inf")  # the padded garbage really is -inf
    assert torch.allclose(loss_p, loss_u, atol=1e-12)
    assert torch.allclose(g_p[:, :3], g_u, atol=1e-12) and (g_p[:, 3:] == 0).all()


# ---------------------------------------------------------------- (c) against brute force

def brute_force_logp(lm, head_logprobs, temps, y, level):
    """log P(y) by enumerating every temperature path of a short response: at token level any tau_t
    at each step (K^T paths), at sequence level one tau for all steps (K paths); each path weighs
    prod_t P(tau_t) * p_tau_t(y_t), p_tau the softmax at tau (tau = 0: one-hot on the argmax)."""
    import itertools
    B, T, V = lm.shape
    K = len(temps)
    out = []
    for b in range(B):
        total = torch.zeros((), dtype=D)
        paths = itertools.product(range(K), repeat=T) if level == "token" else ((k,) * T for k in range(K))
        for path in paths:
            w = torch.ones((), dtype=D)
            for t, k in enumerate(path):
                p_tau = head_logprobs[b, t if level == "token" else 0, k].exp()
                if level == "sequence" and t > 0:
                    p_tau = torch.ones((), dtype=D)  # the one choice is counted once
                tok = torch.zeros(V, dtype=D)
                if temps[k] == 0:
                    tok[lm[b, t].argmax()] = 1.0
                else:
                    tok = torch.softmax(lm[b, t] / temps[k], -1)
                w = w * p_tau * tok[y[b, t]]
            total = total + w
        out.append(total.log())
    return torch.stack(out)


@pytest.mark.parametrize("level", ["token", "sequence"])
def test_marginal_likelihood_equals_brute_force(level):
    # a 3-token response, vocabulary of 5, K = 3 temperatures with greedy among them: values and
    # gradients of log P(y) against the sum over every temperature path
    torch.manual_seed(11)
    B, T, V, temps = 2, 3, 5, [0.0, 0.5, 1.0]
    lm = torch.randn(B, T, V, dtype=D)
    y = lm.argmax(-1)
    y[1, 2] = (y[1, 2] + 1) % V  # one non-greedy token: the tau = 0 paths through it are impossible
    z = torch.randn(B, T, 3, dtype=D, requires_grad=True)
    want = brute_force_logp(lm, F.log_softmax(z, -1), temps, y, level)
    if level == "token":
        got = mixture_token_logps(lm, F.log_softmax(z, -1), torch.tensor(temps), y).sum(-1)
    else:
        got = mixture_sequence_logps(lm, F.log_softmax(z[:, 0], -1), torch.tensor(temps), y,
                                     torch.ones(B, T, dtype=torch.bool))
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    g_want, = torch.autograd.grad(want.sum(), z)
    g_got, = torch.autograd.grad(got.sum(), z)
    torch.testing.assert_close(g_got, g_want, atol=1e-10, rtol=1e-10)
    if level == "sequence":  # one tau for the response is not tau redrawn at every token
        head_copied = F.log_softmax(z[:, :1], -1).expand(B, T, 3)  # P(tau | h_T) copied to every token
        per_token = mixture_token_logps(lm, head_copied, torch.tensor(temps), y)
        assert (per_token.sum(-1) - got).abs().max() > 1e-3


def test_sequence_mixture_on_argmax_tokens_by_hand():
    # 30 argmax tokens, P(tau = 0) = 0.5 and the rest on a hot temperature that makes each argmax token
    # 1/V likely: log P(y) = log(0.5 * 1 + 0.5 * V^-30) ~ log 0.5, where tau redrawn at every token
    # gives 30 * log(0.5 + 0.5 / V)
    T, V = 30, 8
    lm = torch.zeros(1, T, V, dtype=D)
    lm[..., 0] = 1e-9  # token 0 is the argmax, by a hair: softmax at tau = 1 is ~uniform
    y = torch.zeros(1, T, dtype=torch.long)
    head = torch.log(torch.tensor([[0.5, 0.5]], dtype=D))
    seq = mixture_sequence_logps(lm, head, torch.tensor([0.0, 1.0]), y, torch.ones(1, T, dtype=torch.bool))
    assert seq.item() == pytest.approx(math.log(0.5 + 0.5 * V ** -T), abs=1e-6)
    tok = mixture_token_logps(lm, head[:, None].expand(1, T, 2), torch.tensor([0.0, 1.0]), y).sum()
    assert tok.item() == pytest.approx(T * math.log(0.5 + 0.5 / V), abs=1e-6)


def test_sequence_mixture_drops_masked_positions():
    torch.manual_seed(12)
    lm, temps = torch.randn(1, 4, 6, dtype=D), torch.tensor([0.0, 0.7])
    y = torch.randint(0, 6, (1, 4))
    head = F.log_softmax(torch.randn(1, 2, dtype=D), -1)
    mask = torch.tensor([[True, True, False, False]])
    garbage = lm.clone()
    garbage[0, 2:] = 1e30
    a = mixture_sequence_logps(lm[:, :2], head, temps, y[:, :2], mask[:, :2])
    b = mixture_sequence_logps(garbage, head, temps, y, mask)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


# ---------------------------------------------------------------- training on planted preferences

TEMPS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def planted_samples(reverse, n_prompts=24, N=4, T=6, d=16, V=40, seed=0):
    """Samples as train.py collects them, on a random "LM" (an lm_head on random hidden states), for
    two kinds of prompt told apart by their last prompt token's state: kind A, where the hotter
    response wins (reward tau + noise), and kind B, where the cooler one wins (reward -tau + noise);
    reverse swaps the two. Tokens are drawn from softmax(lm_head(h_t) / tau) (tau = 0: argmax), so
    loss (c), which reads the tokens and not the choices, sees the same signal."""
    g = torch.Generator().manual_seed(seed)
    lm_head = torch.nn.Linear(d, V, bias=False)
    with torch.no_grad():
        lm_head.weight.copy_(torch.randn(V, d, generator=g))
    kinds = {"A": torch.randn(d, generator=g), "B": torch.randn(d, generator=g)}
    samples = []
    for p in range(n_prompts):
        kind = "AB"[p % 2]
        for j in range(N):
            k = int(torch.randint(len(TEMPS), (1,), generator=g))
            hidden = torch.randn(T + 1, d, generator=g)
            hidden[0] = kinds[kind] + 0.3 * torch.randn(d, generator=g)
            logits = lm_head(hidden).detach()
            if TEMPS[k] == 0:
                tokens = logits.argmax(-1)
            else:
                tokens = torch.multinomial(torch.softmax(logits / TEMPS[k], -1), 1, generator=g)[:, 0]
            sign = 1.0 if (kind == "A") != reverse else -1.0
            reward = sign * TEMPS[k] + 0.05 * float(torch.randn(1, generator=g))
            samples.append({"id": f"{kind}{p}", "kind": kind, "reward": reward, "choices": [k] * (T + 1),
                            "tokens": tokens[:T].tolist(), "stop": int(tokens[T]), "hidden": hidden})
    return samples, kinds, lm_head


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("loss", [pytest.param("lpo", marks=pytest.mark.slow),
                                  pytest.param("lpo_marginal", marks=pytest.mark.slow), "nll"])
def test_each_loss_learns_the_planted_temperature_per_kind(loss, reverse):
    torch.manual_seed(0)
    samples, kinds, lm_head = planted_samples(reverse)
    pairs = preference_pairs(samples, "all")
    head = AdaptiveDecoder(16, TEMPS, "sequence", hidden=32)
    ref = AdaptiveDecoder(16, TEMPS, "sequence", hidden=32)  # P_ref of loss (c): uniform
    assert preference_accuracy(head, pairs)[0] == 0.0         # uniform: no pair is preferred strictly
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    for step in range(150):
        loss_value = pair_loss(head, pairs, loss, "sequence", beta=1.0, ref_head=ref, lm_head=lm_head)
        opt.zero_grad()
        loss_value.backward()
        opt.step()
    with torch.no_grad():
        chosen = {kind: TEMPS[int(head(h).argmax())] for kind, h in kinds.items()}
    hot, cool = ("B", "A") if reverse else ("A", "B")
    if loss == "lpo":
        assert chosen == {hot: 1.0, cool: 0.0}
    elif loss == "lpo_marginal":  # (c) sees the tokens only, and tokens at 0.8 and 1.0 look much alike
        assert chosen[hot] >= 0.8 and chosen[cool] == 0.0, chosen
    else:  # (d) raises every chosen temperature, and 0.8 wins a pair nearly as often as 1.0
        assert chosen[hot] >= 0.8 and chosen[cool] <= 0.2, chosen
    if loss != "nll":  # the preference losses order the pairs; (d) only raises the chosen side
        acc, n = preference_accuracy(head, pairs)  # (c) orders the tokens' likelihoods, the choices follow
        assert n == len(pairs) and acc > (0.9 if loss == "lpo" else 0.8)


@pytest.mark.parametrize("level", ["sequence", "token"])
def test_marginal_pair_loss_reads_the_lm_once_and_follows_a_new_lm_head(level):
    """pair_loss (c) keeps each sample's per-temperature token log-probs (config_logps): the first and
    the cached call equal loss (c) built here from the LM's logits with the mixture functions, and a
    different lm_head (or configurations) is not served the old values."""
    samples, _, lm_head = planted_samples(False, n_prompts=4)
    pairs = preference_pairs(samples, "all")[:5]
    torch.manual_seed(1)
    head, ref = AdaptiveDecoder(16, TEMPS, level, hidden=8), AdaptiveDecoder(16, TEMPS, level, hidden=8)
    with torch.no_grad():  # a head away from the (uniform) reference, or every loss is log 2
        for p in head.parameters():
            p.add_(torch.randn_like(p))

    def by_hand(lm):
        terms = []
        for side in (0, 1):
            for hd in (head, ref):
                out = []
                for pair in pairs:
                    s = pair[side]
                    y = torch.tensor(s["tokens"] + [s["stop"]])[None]
                    logits = lm(s["hidden"]).detach()[None].double()
                    lp = hd.log_probs(s["hidden"]).double()
                    if level == "token":
                        out.append(mixture_token_logps(logits, lp[None], torch.tensor(TEMPS), y).sum())
                    else:
                        out.append(mixture_sequence_logps(logits, lp[:1], torch.tensor(TEMPS), y,
                                                          torch.ones_like(y, dtype=torch.bool))[0])
                terms.append(torch.stack(out))
        (pc, rc), (pr, rr) = terms[:2], terms[2:]
        return -F.logsigmoid((pc - rc) - (pr - rr)).mean()

    with torch.no_grad():
        first = pair_loss(head, pairs, "lpo_marginal", level, beta=1.0, ref_head=ref, lm_head=lm_head)
        second = pair_loss(head, pairs, "lpo_marginal", level, beta=1.0, ref_head=ref, lm_head=lm_head)
        assert all("config_logps" in s for pair in pairs for s in pair)
        torch.testing.assert_close(first.double(), by_hand(lm_head), atol=1e-5, rtol=1e-5)
        assert first.item() == second.item()
        other = torch.nn.Linear(16, 40, bias=False)
        moved = pair_loss(head, pairs, "lpo_marginal", level, beta=1.0, ref_head=ref, lm_head=other)
        torch.testing.assert_close(moved.double(), by_hand(other), atol=1e-5, rtol=1e-5)
        assert abs(moved.item() - first.item()) > 1e-3
