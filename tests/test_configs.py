"""Decoding configurations as the head's choices (a temperature with top-p or min-p): per-row
truncation in one batched step against each row alone, loss (c) on truncated distributions against a
brute-force enumeration, planted preferences learned by each loss, and the head's checkpoint."""
import math
from pathlib import Path

import pytest
import torch

from adaptive_head import AdaptiveDecoder, config_name
from checkpoints import load_model
from evaluate import config_settings, exact_ad_seq, methods, run_methods
from lpo import (mixture_sequence_logps, mixture_token_logps, pair_loss, preference_accuracy, preference_pairs,
                 temperature_token_logps)
from sample import config_rows, generate, generate_batch, sample_next

FIXTURES = Path(__file__).parent / "fixtures"
CONFIGS = [(0.0, None, None), (0.7, None, None), (1.0, 0.6, None), (1.3, None, 0.2), (1.2, 0.8, 0.1)]


@pytest.fixture(scope="module")
def model():
    return load_model(FIXTURES / "llama3_untied")


def prompts(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (int(k),), generator=g).tolist() for k in torch.randint(1, 12, (n,), generator=g)]


def random_head(d, level, configs=CONFIGS, seed=0):
    torch.manual_seed(seed)
    head = AdaptiveDecoder(d, configs, level=level)
    torch.nn.init.normal_(head.mlp[-1].weight, std=1.0)
    return head.eval()


# ---------------------------------------------------------------- the truncation, by hand

def kept_by_hand(p, top_p, min_p):
    """The tokens a configuration keeps, from its definition: min-p, p >= min_p * max p; top-p, the
    most likely tokens, in order, until their mass reaches top_p."""
    keep = set(range(len(p)))
    if min_p is not None:
        keep = {i for i in keep if p[i] >= min_p * max(p)}
    if top_p is not None:
        mass, top = 0.0, set()
        for i in sorted(keep, key=lambda i: -p[i]):
            if mass >= top_p:
                break
            top.add(i)
            mass += p[i]
        keep = top
    return keep


def truncated_by_hand(logits, config):
    """P(y | config) for every token y, by enumeration (plain Python floats)."""
    t, top_p, min_p = config
    if t == 0:
        best = max(range(len(logits)), key=lambda i: logits[i])
        return [float(i == best) for i in range(len(logits))]
    e = [math.exp(v / t) for v in logits]
    p = [x / sum(e) for x in e]
    keep = kept_by_hand(p, top_p, min_p)
    z = sum(p[i] for i in keep)
    return [p[i] / z if i in keep else 0.0 for i in range(len(p))]


def test_per_row_configurations_draw_what_each_row_draws_alone():
    # one batched step with a configuration per row (tensors, no loop over rows) against each row with
    # its own configuration as floats, given the same uniform number: the same token
    g = torch.Generator().manual_seed(0)
    B, V = 60, 50
    logits = 3 * torch.randn(B, V, generator=g)
    configs = [CONFIGS[i % len(CONFIGS)] for i in range(B)]
    u = torch.rand(B, 1, generator=g)
    kw = config_rows(configs, 1)
    together = sample_next(logits, kw["temperature"], lambda: u, kw["top_p"], kw["min_p"])
    for i, (t, top_p, min_p) in enumerate(configs):
        alone = sample_next(logits[i:i + 1], t, lambda: u[i:i + 1], top_p, min_p)
        assert together[i] == alone[0]
    # and the frequencies are those of the truncated distribution, by enumeration
    n = 100_000
    for config in CONFIGS[2:]:
        draws = sample_next(logits[:1].expand(n, -1), config[0], lambda: torch.rand(n, 1, generator=g),
                            config[1], config[2])
        freq = torch.bincount(draws, minlength=V).float() / n
        want = torch.tensor(truncated_by_hand(logits[0].tolist(), config))
        assert (freq - want).abs().max() < 0.01 and (freq[want == 0] == 0).all(), config_name(config)


def test_generate_batch_with_fixed_configurations_per_row_equals_each_alone(model):
    ps = prompts(5, seed=9)
    together = generate_batch(model, ps * len(CONFIGS), 10, seed=7, stop_ids=[3], **config_rows(CONFIGS, len(ps)))
    for m, c in enumerate(CONFIGS):
        alone = generate_batch(model, ps, 10, seed=7, stop_ids=[3], **config_settings(c))
        assert together.tokens[5 * m:5 * m + 5] == alone.tokens, config_name(c)
        for a, b in zip(together.logprobs[5 * m:5 * m + 5], alone.logprobs):
            assert a == pytest.approx(b, abs=1e-5)
    assert len({tuple(map(tuple, together.tokens[5 * m:5 * m + 5])) for m in range(len(CONFIGS))}) > 2


def test_ad_seq_with_configurations_samples_as_each_fixed_configuration(model):
    # AD_seq chooses one configuration per row, then samples as that fixed configuration does, row for
    # row (what the exact AD_seq evaluator relies on), truncation included
    head = random_head(model.config.d_model, "sequence")
    ps = prompts(12, seed=3)
    ad = generate_batch(model, ps, 10, head=head, selection="greedy", seed=5)
    ks = [c[0] for c in ad.choices]
    assert len(set(ks)) >= 3  # several configurations chosen
    for k in set(ks):
        fixed = generate_batch(model, ps, 10, seed=5, **config_settings(head.configs[k]))
        assert all(ad.tokens[i] == fixed.tokens[i] for i in range(len(ps)) if ks[i] == k)
    # the lesson's loop chooses and samples alike
    assert generate(model, ps, 10, head=head, selection="greedy", seed=5) == (ad.tokens, ad.choices)


def test_ad_tok_with_configurations_applies_each_rows_choice(model):
    # at token level every row follows its own configuration at every step: against a loop over the
    # rows, one row at a time through the model, each step's token drawn with the row's choice as floats
    head = random_head(model.config.d_model, "token")
    ps = prompts(6, seed=4)
    g = generate_batch(model, ps, 8, head=head, seed=2, keep_hidden=True)
    assert any(len(set(ks)) > 1 for ks in g.choices)
    gen = torch.Generator().manual_seed(2)
    us = [torch.rand(len(ps), 1, generator=gen) for _ in range(2 * 8)]  # choice, token, choice, token...
    for i, p in enumerate(ps):
        idx = torch.tensor([p])
        for step, (tok, k) in enumerate(zip(g.tokens[i], g.choices[i])):
            logits, h = model(idx, last_only=True, return_hidden=True)
            assert int(head.log_probs(h[:, -1]).exp().cumsum(-1).ge(us[2 * step][i] * 1.0).nonzero()[0, 1]) == k
            t, top_p, min_p = head.configs[k]
            assert int(sample_next(logits[:, -1], t, lambda: us[2 * step + 1][i:i + 1], top_p, min_p)) == tok
            idx = torch.cat([idx, torch.tensor([[tok]])], 1)


def test_exact_ad_seq_and_methods_name_every_configuration(model):
    from tasks import synthetic
    from test_evaluate import CharTokenizer
    head = random_head(model.config.d_model, "sequence", configs=[0.0, 1.0, (1.0, 0.5, None), (1.0, None, 0.3)])
    names = list(methods(head, "fixed"))
    assert names == ["AD", "tau=0", "tau=1", "tau=1/top_p=0.5", "tau=1/min_p=0.3"]  # one temperature, 3 names
    examples = synthetic.prompts("test", n=4)
    n = [2] * len(examples)
    fixed = {k: v for k, v in methods(head, "fixed").items() if k != "AD"}
    results = run_methods(model, CharTokenizer(), fixed, examples, n, 6, 16, 0, None, progress=lambda d, nm: None)
    ad = exact_ad_seq(head, results)
    ks = head.log_probs(results["tau=0"]["states"]).argmax(-1).tolist()
    assert ad["reward"] == [results[head.names()[k]]["reward"][i] for i, k in enumerate(ks)]
    assert results["tau=1/top_p=0.5"]["samples"] != results["tau=1"]["samples"]


# ---------------------------------------------------------------- loss (c) on configurations

@pytest.mark.parametrize("level", ["token", "sequence"])
def test_marginal_likelihood_with_truncation_equals_brute_force(level):
    g = torch.Generator().manual_seed(1)
    B, T, V, K = 3, 4, 6, len(CONFIGS)
    lm = 2 * torch.randn(B, T, V, generator=g)
    head = torch.log_softmax(torch.randn(B, T, K, generator=g), -1)
    y = lm.argmax(-1)  # the argmax: every configuration can produce it ...
    y[:, 1] = lm[:, 1].argsort(-1, descending=True)[:, 1]  # ... the second: some truncations drop it
    comps = temperature_token_logps(lm, CONFIGS, y)
    for b in range(B):
        for t in range(T):
            for k, c in enumerate(CONFIGS):
                p = truncated_by_hand(lm[b, t].tolist(), c)[int(y[b, t])]
                assert (comps[b, t, k].item() == -math.inf) if p == 0 else comps[b, t, k].item() == pytest.approx(
                    math.log(p), abs=1e-5)
    assert torch.isinf(comps).any() and torch.isfinite(comps[:, :, 1]).all()  # some -inf, none at 0.7
    if level == "token":
        got = mixture_token_logps(lm, head, CONFIGS, y)
        for b in range(B):
            for t in range(T):
                want = sum(math.exp(head[b, t, k]) * truncated_by_hand(lm[b, t].tolist(), c)[int(y[b, t])]
                           for k, c in enumerate(CONFIGS))
                assert got[b, t].item() == pytest.approx(math.log(want), abs=1e-5)
    else:
        mask = torch.ones(B, T, dtype=torch.bool)
        got = mixture_sequence_logps(lm, head[:, 0], CONFIGS, y, mask)
        for b in range(B):
            want = sum(math.exp(head[b, 0, k]) * math.prod(truncated_by_hand(lm[b, t].tolist(), c)[int(y[b, t])]
                                                           for t in range(T)) for k, c in enumerate(CONFIGS))
            assert got[b].item() == pytest.approx(math.log(want), abs=1e-5)
    # without truncation the configurations are the temperatures: the same numbers as before them
    plain = temperature_token_logps(lm, [0.0, 0.7], y)
    assert torch.equal(plain, temperature_token_logps(lm, torch.tensor([0.0, 0.7]), y))


# ---------------------------------------------------------------- planted preferences

PLANT = [0.0, 0.6, 1.0, (1.5, 0.9, None), 1.5, (1.5, None, 0.1)]


def planted(reverse, n_prompts=24, N=4, T=6, d=16, V=40, seed=0):
    """Kind A prompts: the hot-but-truncated configuration 1.5/top_p=0.9 wins; kind B: greedy wins
    (reverse swaps them). Tokens drawn from each configuration's truncated distribution, so that
    loss (c), which reads the tokens, sees the same signal as the losses that read the choices."""
    g = torch.Generator().manual_seed(seed)
    lm_head = torch.nn.Linear(d, V, bias=False)
    with torch.no_grad():
        lm_head.weight.copy_(0.5 * torch.randn(V, d, generator=g))
    kinds = {"A": torch.randn(d, generator=g), "B": torch.randn(d, generator=g)}
    win = {"A": 3, "B": 0} if not reverse else {"A": 0, "B": 3}
    configs = [AdaptiveDecoder(1, PLANT).configs[k] for k in range(len(PLANT))]
    samples = []
    for p in range(n_prompts):
        kind = "AB"[p % 2]
        for j in range(N):
            k = int(torch.randint(len(PLANT), (1,), generator=g))
            hidden = torch.randn(T + 1, d, generator=g)
            hidden[0] = kinds[kind] + 0.3 * torch.randn(d, generator=g)
            logits = lm_head(hidden).detach()
            t, top_p, min_p = configs[k]
            u = torch.rand(T + 1, 1, generator=g)
            tokens = sample_next(logits, t, lambda: u, top_p, min_p)
            reward = float(k == win[kind]) + 0.05 * float(torch.randn(1, generator=g))
            samples.append({"id": f"{kind}{p}", "kind": kind, "reward": reward, "choices": [k] * (T + 1),
                            "tokens": tokens[:T].tolist(), "stop": int(tokens[T]), "hidden": hidden})
    return samples, kinds, lm_head, win


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("loss", ["lpo", "lpo_marginal", "nll"])
def test_each_loss_learns_the_planted_configuration_per_kind(loss, reverse):
    torch.manual_seed(0)
    samples, kinds, lm_head, win = planted(reverse)
    # (d) raises every chosen side: with every better/worse pair, the pairs that noise decides outnumber
    # the planted winner's; with the paper's best against worst, the chosen side is the best response
    pairs = preference_pairs(samples, "best_worst" if loss == "nll" else "all")
    head = AdaptiveDecoder(16, PLANT, "sequence", hidden=32)
    ref = AdaptiveDecoder(16, PLANT, "sequence", hidden=32)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    for step in range(150):
        value = pair_loss(head, pairs, loss, "sequence", beta=1.0, ref_head=ref, lm_head=lm_head)
        opt.zero_grad()
        value.backward()
        opt.step()
    with torch.no_grad():
        chosen = {kind: int(head(h).argmax()) for kind, h in kinds.items()}
    assert chosen == win, (chosen, win)
    if loss != "nll":  # the preference losses order the pairs the plant decides; (d) only raises the chosen
        planted_pairs = [(c, r) for c, r in pairs if c["choices"][0] == win[c["kind"]]]
        acc, n = preference_accuracy(head, planted_pairs)
        assert n == len(planted_pairs) > 20 and acc > 0.9


# ---------------------------------------------------------------- the head's checkpoint

def test_a_head_saves_its_configurations_and_refuses_others(tmp_path):
    head = AdaptiveDecoder(16, CONFIGS, "token")
    head.save(tmp_path / "h.pt")
    back = AdaptiveDecoder.load(tmp_path / "h.pt", temperatures=CONFIGS)
    assert back.configs == head.configs and back.names() == head.names() and back.truncates
    assert torch.equal(back.top_p, head.top_p) and torch.equal(back.min_p, head.min_p)
    for other in ([c[0] for c in CONFIGS], CONFIGS[:-1], CONFIGS[:-1] + [(1.2, 0.8, None)]):
        with pytest.raises(ValueError, match="trained with the configurations") as e:
            AdaptiveDecoder.load(tmp_path / "h.pt", temperatures=other)
        assert "\n" not in str(e.value)
    # a head of temperatures alone is saved as before configurations existed: no "configs" entry
    AdaptiveDecoder(16, [0.0, 1.0], "token").save(tmp_path / "t.pt")
    assert "configs" not in torch.load(tmp_path / "t.pt", weights_only=True)
    assert AdaptiveDecoder.load(tmp_path / "t.pt", temperatures=[0, 1]).truncates is False
    with pytest.raises(ValueError, match="duplicate"):
        AdaptiveDecoder(16, [1.0, (1.0, None, None)])
