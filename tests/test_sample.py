"""sample.py: fixed-temperature and adaptive generation on a tiny real-format checkpoint."""
import math
from pathlib import Path

import pytest
import torch

from adaptive_head import AdaptiveDecoder
from checkpoints import load_model
from model import left_pad
from sample import choose_config, cut_at_stop, edt_temperature, generate, generate_batch, sample_next

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def model():
    return load_model(FIXTURES / "llama3_untied")


def prompts(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (int(k),), generator=g).tolist()
            for k in torch.randint(1, 12, (n,), generator=g)]


def random_head(d, level, seed=0):
    """A head whose choice depends on the hidden state (the zero-initialised last layer of a fresh
    head would make it uniform)."""
    torch.manual_seed(seed)
    head = AdaptiveDecoder(d, level=level)
    torch.nn.init.normal_(head.mlp[-1].weight, std=1.0)
    return head.eval()


@torch.no_grad()
def reference_generate(model, prompts, max_new_tokens, temperature=1.0, head=None, seed=0, stop_ids=()):
    """generate() without a KV cache: the whole sequence through the model at every step, the same
    random draws in the same order. What the cache, the prefill of repeated prompts and the batched
    decode step must agree with."""
    gen = torch.Generator().manual_seed(seed)
    uniform = lambda: torch.rand(len(prompts), 1, generator=gen)  # noqa: E731
    idx, pad = left_pad(prompts, 0, "cpu")
    decoding, ks, toks, hidden = dict(temperature=temperature), [], [], []
    for step in range(max_new_tokens):
        logits, h = model(idx, pad=pad, last_only=True, return_hidden=True)
        logits, h = logits[:, -1], h[:, -1]
        if head is not None and (head.level == "token" or step == 0):
            k, decoding = choose_config(head, h, "sample", 0.0, uniform)
        tok = sample_next(logits, uniform=uniform, **decoding)
        toks.append(tok)
        ks.append(k if head is not None else tok)
        hidden.append(h)
        idx = torch.cat([idx, tok[:, None]], dim=1)
    tokens, choices = cut_at_stop(torch.stack(toks, 1).tolist(), torch.stack(ks, 1).tolist(), stop_ids)
    return tokens, (choices if head is not None else None), torch.stack(hidden, 1)


def test_temperature_zero_rows_are_greedy(model):
    ps = prompts(6)
    greedy = generate_batch(model, ps, 10, temperature=0.0).tokens
    temps = torch.tensor([0.0, 1.0, 0.0, 0.7, 0.0, 1.0])
    mixed = generate_batch(model, ps, 10, temperature=temps, seed=0).tokens
    for i in (0, 2, 4):
        assert mixed[i] == greedy[i]
    assert any(mixed[i] != greedy[i] for i in (1, 3, 5))  # the hot rows really sample


def freqs(draws, V):
    return torch.bincount(draws, minlength=V).float() / len(draws)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_sampling_follows_softmax_at_temperature(tau):
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, 0.3])
    n = 200_000
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits.expand(n, -1), torch.full((n,), tau), lambda: torch.rand(n, 1, generator=g))
    f = freqs(draws, 8)
    assert (f - torch.softmax(logits / tau, -1)).abs().max() < 0.005
    # a sampler at the wrong temperature would fail the same check
    for wrong in (tau * 0.85, tau * 1.15):
        assert (f - torch.softmax(logits / wrong, -1)).abs().max() > 0.01


def test_model_next_token_distribution(model):
    # one new token for many copies of a prompt: its frequencies follow softmax(logits)
    p = prompts(1, seed=3)[0]
    logits = model(torch.tensor([p]))[0, -1]
    n = 20_000
    out = generate_batch(model, [p] * n, 1, temperature=1.0, seed=1).tokens
    f = freqs(torch.tensor([t[0] for t in out]), 256)
    probs = torch.softmax(logits, -1)
    top = probs.topk(5).indices  # the likely tokens, where the counts are precise
    assert (f[top] - probs[top]).abs().max() < 0.015
    assert (f[top] - torch.softmax(logits / 0.7, -1)[top]).abs().max() > 0.03


def test_top_p_and_min_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    n = 50_000
    g = torch.Generator().manual_seed(0)
    uniform = lambda: torch.rand(n, 1, generator=g)  # noqa: E731
    f = freqs(sample_next(logits.expand(n, -1), torch.ones(n), uniform, top_p=0.7), 4)
    assert f[2:].sum() == 0 and abs(f[0] - 0.5 / 0.8) < 0.01       # keeps {0.5, 0.3}
    f = freqs(sample_next(logits.expand(n, -1), torch.ones(n), uniform, min_p=0.25), 4)
    assert f[3] == 0 and abs(f[2] - 0.15 / 0.95) < 0.01             # drops p < 0.125


def test_edt_temperature_by_hand():
    # tau = T0 * N^(theta / H), H the entropy in nats: uniform over 4 tokens, H = ln 4; two tokens at
    # 0.9 / 0.1, H = 0.325; one sure token, H = 0 -> tau = 0 (greedy)
    import math
    logits = torch.log(torch.tensor([[0.25] * 4, [0.9, 0.1, 1e-30, 1e-30], [1.0, 0.0, 0.0, 0.0]]))
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    tau = edt_temperature(logits, T0=1.0, N=0.8, theta=1.0)
    assert tau.tolist() == pytest.approx([0.8 ** (1 / math.log(4)), 0.8 ** (1 / h), 0.0], abs=1e-6)
    assert 0 < tau[1] < tau[0] < 1                                  # less sure, warmer; never above T0
    assert edt_temperature(logits[:1], T0=0.7, N=0.8, theta=2.0).item() == pytest.approx(
        0.7 * 0.8 ** (2 / math.log(4)))


def test_sequence_level_one_temperature_per_row(model):
    head = random_head(model.config.d_model, "sequence")
    g = generate_batch(model, prompts(8), 12, head=head, seed=0, keep_hidden=True)
    for row, ks in zip(g.tokens, g.choices):
        assert len(set(ks)) == 1 and len(ks) == len(row)
    assert len({ks[0] for ks in g.choices}) > 1  # different rows, different temperatures
    # the choice is the head's on the last prompt token's hidden state (greedy selection)
    g = generate_batch(model, prompts(8), 12, head=head, selection="greedy", keep_hidden=True)
    assert [ks[0] for ks in g.choices] == head.log_probs(g.hidden[:, 0]).argmax(-1).tolist()


def test_token_level_one_temperature_per_token(model):
    head = random_head(model.config.d_model, "token")
    g = generate_batch(model, prompts(8), 16, head=head, selection="greedy", keep_hidden=True)
    assert any(len(set(ks)) > 1 for ks in g.choices)  # the temperature changes within a response
    want = head.log_probs(g.hidden).argmax(-1)          # (B, steps): one choice per generated token
    for i, ks in enumerate(g.choices):
        assert ks == want[i, :len(ks)].tolist()
    # temperature-0 steps took the argmax of the LM's logits
    logits = model.lm_head(g.hidden)
    for i, (row, ks) in enumerate(zip(g.tokens, g.choices)):
        for t, (tok, k) in enumerate(zip(row, ks)):
            if head.temperatures[k] == 0:
                assert tok == logits[i, t].argmax().item()


def test_explore_mixes_in_uniform_choices(model):
    # a head sure of temperature index 2: explore=e draws from (1 - e) * P(tau | h) + e / K
    head = AdaptiveDecoder(model.config.d_model, level="sequence").eval()
    with torch.no_grad():
        head.mlp[-1].bias[2] = 30.0
    K, n = len(head.temperatures), 1200
    for explore in (0.0, 0.5, 1.0):
        g = generate_batch(model, prompts(n, seed=1), 1, head=head, seed=3, explore=explore)
        freq = torch.bincount(torch.tensor([ks[0] for ks in g.choices]), minlength=K).float() / n
        want = torch.full((K,), explore / K)
        want[2] += 1 - explore
        assert (freq - want).abs().max() < 0.05, (explore, freq)


@pytest.mark.parametrize("level", [None, "sequence", "token"])
def test_same_with_and_without_kv_cache(model, level):
    head = random_head(model.config.d_model, level) if level else None
    temps = torch.tensor([0.0, 1.0, 0.6, 1.0, 0.3])
    a = generate_batch(model, prompts(5, seed=7), 14, temperature=temps, head=head, seed=11)
    tokens, choices, _ = reference_generate(model, prompts(5, seed=7), 14, temperature=temps, head=head,
                                            seed=11)
    assert a.tokens == tokens and a.choices == choices


@pytest.mark.parametrize("level", [None, "token"])
def test_repeated_prompts_prefilled_once(model, level):
    # N samples of a prompt (rows 0, 2, 5 and 1, 4 share one): the prompt runs through the model
    # once and its cache rows are copied; the result is what the model gives without a cache
    head = random_head(model.config.d_model, level) if level else None
    p = prompts(3, seed=5)
    ps = [p[0], p[1], p[0], p[2], p[1], p[0]]
    a = generate_batch(model, ps, 10, temperature=0.8, head=head, seed=2, keep_hidden=True)
    tokens, choices, hidden = reference_generate(model, ps, 10, temperature=0.8, head=head, seed=2)
    assert a.tokens == tokens and a.choices == choices
    torch.testing.assert_close(a.hidden, hidden, atol=1e-4, rtol=1e-4)
    assert a.hidden[0, 0].equal(a.hidden[2, 0]) and a.hidden[1, 0].equal(a.hidden[4, 0])  # copies
    assert len(set(map(tuple, (a.tokens[0], a.tokens[2], a.tokens[5])))) > 1  # yet sampled apart


@pytest.mark.parametrize("level", [None, "sequence", "token"])
def test_compiled_decode_gives_the_eager_tokens(model, level):
    # left-padded prompts of different lengths, greedy (temperature 0, or the head's greedy choice of
    # temperature, then the same random draws)
    head = random_head(model.config.d_model, level) if level else None
    ps = prompts(6, seed=4)
    kw = dict(temperature=0.0, head=head, selection="greedy", keep_hidden=True, seed=3)
    eager = generate_batch(model, ps, 12, **kw)
    compiled = generate_batch(model, ps, 12, compile=True, **kw)
    assert compiled.tokens == eager.tokens and compiled.choices == eager.choices
    torch.testing.assert_close(compiled.hidden, eager.hidden, atol=1e-4, rtol=1e-4)
    # sampling, min-p, EDT and stop tokens run outside the compiled step: the same draws
    stop = eager.tokens[0][3:4]
    for extra in (dict(temperature=0.8, min_p=0.1), dict(edt=(1.0, 0.8, 1.0))):
        a = generate_batch(model, ps, 12, seed=5, stop_ids=stop, **extra)
        b = generate_batch(model, ps, 12, seed=5, stop_ids=stop, compile=True, **extra)
        assert a.tokens == b.tokens


def test_one_shape_compiles_once(model):
    import torch._dynamo
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    ps = prompts(4, seed=8)
    for n_new, cut in ((5, 0), (9, 2), (7, 1)):  # other prompt lengths and lengths of answer
        generate_batch(model, [p[cut:] or p for p in ps], n_new, temperature=0.0, compile=True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    generate_batch(model, ps[:3], 5, temperature=0.0, compile=True)  # another batch size: another shape
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2


def test_decode_mask_hides_unfilled_and_pad_positions(model):
    # Transformer.decode attends to the whole cache: garbage at its unfilled positions and at the
    # left padding must not change a thing; the step must equal the eager forward's
    from model import KVCache
    ps = [[5, 6, 7, 8, 9], [11, 12]]  # the second row has 3 pad positions
    idx, pad = left_pad(ps, 0, "cpu")
    S = 20

    def step(garbage):
        cache = KVCache(model.config, 2, S)
        model(idx, cache=cache, pad=pad, last_only=True)
        if garbage:
            for t in cache.k + cache.v:
                t[:, :, 6:] = 1e4          # unfilled (the new token goes to position 5)
                t[1, :, :3] = -1e4         # row 1's pad positions
        model.rope_tables(S, "cpu")
        return model.decode(torch.tensor([3, 4]), cache, torch.tensor(5), pad)
    clean, dirty = step(False), step(True)
    torch.testing.assert_close(dirty, clean, atol=0, rtol=0)
    cache = KVCache(model.config, 2, S)
    model(idx, cache=cache, pad=pad, last_only=True)
    logits, h = model(torch.tensor([[3], [4]]), cache=cache, pad=pad, last_only=True, return_hidden=True)
    torch.testing.assert_close(clean[0], logits[:, -1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(clean[1], h[:, -1], atol=1e-5, rtol=1e-5)


def test_stops_at_stop_token(model):
    ps = prompts(4)
    full = generate_batch(model, ps, 12, temperature=0.0).tokens
    stop = full[0][3]
    cut = generate_batch(model, ps, 12, temperature=0.0, stop_ids=[stop]).tokens
    for f, c in zip(full, cut):
        n = f.index(stop) if stop in f else len(f)
        assert c == f[:n]


def test_logprobs_are_the_models_at_temperature_one(model):
    # what the story reward reads as the surprisal: log softmax(logits)[token] of every token drawn,
    # whatever temperature drew it, against the whole sequence run through the model at once
    ps = prompts(3, seed=4)
    g = generate_batch(model, ps, 6, temperature=0.7, seed=1, stop_ids=[5])
    for p, toks, lp in zip(ps, g.tokens, g.logprobs):
        assert len(lp) == len(toks)
        if not toks:
            continue
        full = torch.log_softmax(model(torch.tensor([p + toks]))[0].double(), -1)
        want = [full[len(p) - 1 + t, toks[t]].item() for t in range(len(toks))]
        assert lp == pytest.approx(want, abs=1e-4)


def test_a_batch_too_big_for_memory_is_refused_before_allocating(model):
    from sample import check_memory
    check_memory(model, 64, 512)  # fits
    with pytest.raises(ValueError, match=r"a batch of 1000000000 rows x 4096 positions needs .* GB, more than"):
        check_memory(model, 10 ** 9, 4096)


def test_a_shared_prefill_gives_what_a_fresh_one_gives(model):
    # evaluation runs several methods on one batch: the second copies the first's prefill (generate's
    # `shared`) instead of running the prompts again, and must decode exactly as without it
    ps = prompts(4, seed=3) + prompts(1, seed=3)[:1]  # a repeated prompt too
    shared = {}
    first = generate_batch(model, ps, 6, temperature=0.0, seed=0, reuse_prefill=shared)
    assert shared["key"] is not None and shared["cache"].pos == max(len(p) for p in ps)
    for t in (0.0, 0.8):
        again = generate_batch(model, ps, 6, temperature=t, seed=5, reuse_prefill=shared)
        fresh = generate_batch(model, ps, 6, temperature=t, seed=5)
        assert again.tokens == fresh.tokens and again.logprobs == fresh.logprobs
        assert torch.equal(again.prompt_hidden, fresh.prompt_hidden)
    assert first.tokens == generate_batch(model, ps, 6, temperature=0.0, seed=0).tokens


@pytest.mark.parametrize("level", [None, "token"])
def test_rows_that_stop_leave_the_batch_and_change_nothing(model, level):
    # rows stop at different steps; once a quarter of them have, they leave the batch (their cache
    # rows dropped). Every row must still get exactly what the cache-free reference gives it (the same
    # random number per row and step), its hidden states included, and fewer rows are decoded
    head = random_head(model.config.d_model, level) if level else None
    ps = prompts(8, seed=6)
    free = generate_batch(model, ps, 16, temperature=0.8, head=head, seed=4)
    counts = {}
    for row in free.tokens:
        for t in set(row[:8]):
            counts[t] = counts.get(t, 0) + 1
    stop = max(counts, key=counts.get)  # a token most rows draw early: they stop at different steps
    g = generate_batch(model, ps, 16, temperature=0.8, head=head, seed=4, stop_ids=[stop], keep_hidden=True)
    tokens, choices, hidden = reference_generate(model, ps, 16, temperature=0.8, head=head, seed=4,
                                                 stop_ids=[stop])
    assert g.tokens == tokens and g.choices == choices
    assert sum(s == stop for s in g.stops) >= 3 and len({len(t) for t in g.tokens}) >= 3
    for i, t in enumerate(g.tokens):  # the states up to the stop token's step
        n = len(t) + (g.stops[i] is not None)
        torch.testing.assert_close(g.hidden[i, :n], hidden[i, :n], atol=1e-4, rtol=1e-4)
    steps = max(len(t) + (s is not None) for t, s in zip(g.tokens, g.stops))
    assert g.rows_decoded < len(ps) * (steps - 1)


def test_rows_that_share_random_numbers_draw_what_they_would_alone(model):
    # evaluation decodes several temperatures of a batch's prompts in one call, the rows of each
    # prompt on one stream of random numbers: each temperature's rows must come out as in a call of
    # their own (and rows that stop leave the batch without changing the others)
    ps = prompts(5, seed=9)
    temps = [0.0, 0.5, 1.0]
    alone = [generate_batch(model, ps, 12, temperature=t, seed=7, stop_ids=[3, 9]) for t in temps]
    together = generate_batch(model, ps * 3, 12, temperature=torch.tensor([t for t in temps for _ in ps]), seed=7,
                        stop_ids=[3, 9], random_rows=list(range(5)) * 3)
    for m, g in enumerate(alone):
        assert together.tokens[5 * m:5 * m + 5] == g.tokens
        for a, b in zip(together.logprobs[5 * m:5 * m + 5], g.logprobs):
            assert a == pytest.approx(b, abs=1e-5)
    assert alone[1].tokens != alone[2].tokens  # the temperatures really differ


# -----------------------------------------------------------------------------
# the lesson: generate, the loop a slide holds, is generate_batch without its speed-ups and records

@pytest.mark.parametrize("level", [None, "sequence", "token"])
@pytest.mark.parametrize("selection", ["sample", "greedy"])
def test_the_lesson_generates_what_generate_batch_generates(model, level, selection):
    # the same seed, the same random numbers in the same order: the same tokens and choices, with
    # rows that stop at different steps (generate_batch drops them; the lesson decodes them on)
    head = random_head(model.config.d_model, level, seed=2) if level else None
    ps = prompts(8, seed=12)
    free = generate_batch(model, ps, 14, temperature=0.9, head=head, selection=selection, seed=6)
    counts = {}
    for row in free.tokens:
        for t in set(row[:6]):
            counts[t] = counts.get(t, 0) + 1
    stop = [max(counts, key=counts.get)]  # a token most rows draw early
    fast = generate_batch(model, ps, 14, temperature=0.9, head=head, selection=selection, seed=6, stop_ids=stop)
    tokens, choices = generate(model, ps, 14, temperature=0.9, head=head, selection=selection, seed=6,
                               stop_ids=stop)
    assert tokens == fast.tokens and choices == fast.choices
    assert len({len(t) for t in tokens}) >= 2 and sum(len(t) < 14 for t in tokens) >= 2  # rows stop apart
    # and the cache-free reference agrees (sampled selection: the reference samples its choices)
    if selection == "sample":
        assert (tokens, choices) == reference_generate(model, ps, 14, temperature=0.9, head=head, seed=6,
                                                       stop_ids=stop)[:2]


def test_the_lesson_fits_on_a_slide():
    # the promise to lecturers: the lesson is at most 40 lines, AD_seq/AD_tok in one line
    import inspect

    import sample
    lines = inspect.getsource(sample.generate).splitlines()
    assert len(lines) <= 40
    assert sum('head.level == "token" or step == 0' in line for line in lines) == 1


@pytest.mark.parametrize("level", ["sequence", "token"])
@pytest.mark.parametrize("explore", [0.0, 0.5, 1.0])
def test_behaviour_logps_are_the_probability_of_each_drawn_choice(model, level, explore):
    """What grpo.py's importance weights divide by: log q(choice) under (1 - explore) P + explore / K,
    recomputed here from the recorded hidden states; and each step's temperature as drawn."""
    head = random_head(model.config.d_model, level)
    g = generate_batch(model, prompts(5), 8, head=head, selection="sample", explore=explore, seed=3,
                       keep_hidden=True, stop_ids=[7, 11])
    plain = generate_batch(model, prompts(5), 8, head=head, selection="sample", explore=explore, seed=3,
                           stop_ids=[7, 11])
    assert g.tokens == plain.tokens and g.choices == plain.choices  # recording draws nothing more
    for j in range(5):
        ks = torch.tensor(g.choices[j])
        states = g.hidden[j, :len(ks)] if level == "token" else g.hidden[j, :1].expand(len(ks), -1)
        p = head.log_probs(states).exp()
        q = ((1 - explore) * p + explore / 6).gather(-1, ks[:, None])[:, 0].log()
        torch.testing.assert_close(torch.tensor(g.behaviour_logps[j]), q, atol=1e-5, rtol=0)
        if explore == 1.0:
            torch.testing.assert_close(q, torch.full_like(q, -math.log(6)))
        assert g.temperatures[j] == pytest.approx([float(head.temperatures[k]) for k in ks])
