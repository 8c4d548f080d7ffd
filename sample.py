"""
Generation with a KV cache, at a fixed temperature or with the adaptive decoder of *Adaptive
Decoding via Latent Preference Optimization* (Dhuliawala et al., arXiv 2411.09661).

The lesson is `generate`, one loop (as in gpt-fast: prefill, then one decode step per token):

    1. prefill: the left-padded prompts through the model once, filling the KV cache;
    2. choose tau: the AdaptiveDecoder (adaptive_head.py) reads the LM's final hidden state h and
       gives P(tau | h); `choose_config` takes its argmax ("greedy") or a draw ("sample"; the
       paper's Table 5 compares the two). AD_tok chooses before every token, AD_seq once per row.
       A choice is a temperature, or a decoding configuration (a temperature with top-p or min-p);
    3. sample: one token per row at its temperature (`sample_next`; tau = 0 is greedy);
    4. decode step: the new tokens through the model, attending to the cache.

    generate(model, prompts, 64, temperature=0.7)    # fixed temperature
    generate(model, prompts, 64, head=head)          # adaptive decoding (the paper's Fig. 1)

`generate_batch` is the same loop as train.py and evaluate.py run it: the same tokens for the same
seed, plus what makes runs fast (a prefill shared by repeated prompts and across calls, stopped rows
leaving the batch, a compiled decode step, rows that share random numbers) and what training records
(the hidden state of every choice, the LM's log-probabilities); and two adaptive baselines the paper
does not compare with, min-p and top-p (`sample_next`) and EDT (`edt_temperature`).

CLI:
    python sample.py --model smollm2 --prompt "Write a haiku about the sea."
    python sample.py --model smollm2 --adaptive head.pt --level token --prompt "..." --html out.html
    python sample.py --adaptive head.pt --task stories --prompt "The Lighthouse Cat"   # as the task asks
"""
import argparse
import os
import sys
import time
from dataclasses import dataclass

import torch

from cli import (SEED_RANGE, check_device, check_settings, check_writable, default_device, model_dtype, one_line_errors,
                 parse_configs)
from model import KVCache, left_pad
from report import html_page, temperature_html


# -----------------------------------------------------------------------------
# the pieces: the head's choice, the token drawn, the model's two passes

def choose_config(head, h, selection, explore, uniform):
    """The adaptive decoder's choice: P(tau | h) from the head, then its argmax (selection
    "greedy") or a draw from it ("sample"; the paper's Table 5 compares the two). With explore > 0 the
    draw is from the mixture (1 - explore) P(tau | h) + explore / K, so that training data keeps trying
    every temperature. h: (B, d); uniform(): (B, 1) random numbers in [0, 1), see draw. Returns the
    index chosen (B,) and what it means for sampling, sample_next's settings per row: {"temperature":
    (B,)}, with "top_p" and "min_p" (B,) where the head's choices are configurations that truncate.
    A continuous head (continuous_head.py, not the paper's) has no choices: its temperature T(h) (B,)
    is both."""
    if head.continuous:
        t = head.temperature(h)                                          # (B,)
        return t, dict(temperature=t)
    logp = head.log_probs(h)                                             # (B, K)
    if selection == "greedy":
        k = logp.argmax(dim=-1)
    else:
        k = draw(drawn_from(logp, explore), uniform())
    decoding = dict(temperature=head.temperatures[k])
    if any(p is not None for _, p, _ in head.configs):
        decoding["top_p"] = head.top_p[k]
    if any(m is not None for _, _, m in head.configs):
        decoding["min_p"] = head.min_p[k]
    return k, decoding


def drawn_from(logp, explore):
    """The distribution choose_config draws from (B, K): (1 - explore) P(tau | h) + explore / K."""
    return (1 - explore) * logp.exp() + explore / logp.shape[-1]


def behaviour_logp(head, h, k, selection, explore):
    """log q(k | h) (B,): the probability with which choose_config chose k (the behaviour policy of the
    samples, which train.py keeps for the importance weights of grpo.py); 0 for an argmax or a
    continuous head's temperature, which are not drawn."""
    if selection == "greedy" or head.continuous:
        return torch.zeros(h.shape[0], device=h.device)
    return drawn_from(head.log_probs(h), explore).gather(-1, k[:, None])[:, 0].log()


def draw(probs, u):
    """One index per row of probs (B, n) by inverse CDF: row i takes the first index whose cumulative
    probability reaches u[i] (B, 1), a uniform number. One number per row and draw: which row gets
    which number is the caller's (generate_batch's rows that share random numbers)."""
    cdf = probs.cumsum(dim=-1)
    return torch.searchsorted(cdf, u * cdf[:, -1:])[:, 0].clamp(max=probs.shape[-1] - 1)


def sample_next(logits, temperature, uniform, top_p=None, min_p=None):
    """One token per row from logits (B, V) at temperature (a float, or (B,) per row; 0 = greedy).
    top_p keeps the smallest set of tokens whose probability reaches p; min_p keeps the tokens
    whose probability is at least min_p times the most likely one's; each a float or (B,) per row
    (top_p 1 and min_p 0 keep every token); with both, the tokens both keep. uniform(): see draw."""
    greedy = logits.argmax(dim=-1)
    if not torch.is_tensor(temperature):
        if temperature == 0:
            return greedy                                   # no softmax needed, no random number
        temperature = torch.full(greedy.shape, temperature, dtype=torch.float32, device=logits.device)
    # greedy rows (temperature 0) take the argmax below; their softmax is taken at 1, since logits / 0
    # is not a number and logits / 1e-5 sends exp below its range (very slow on CPUs)
    probs = torch.softmax(logits / torch.where(temperature == 0, 1.0, temperature).clamp(min=1e-5)[:, None], dim=-1)
    if min_p is not None:
        min_p = min_p[:, None] if torch.is_tensor(min_p) else min_p                     # (B, 1) or a float
        probs = probs.masked_fill(probs < min_p * probs.amax(dim=-1, keepdim=True), 0.0)
    if top_p is not None:
        top_p = top_p[:, None] if torch.is_tensor(top_p) else top_p                     # (B, 1) or a float
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # the mass before this token already reaches p (never at p = 1: rounding must not drop a token)
        drop = (sorted_p.cumsum(dim=-1) - sorted_p >= top_p) & (top_p < 1)
        probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
    return torch.where(temperature == 0, greedy, draw(probs, uniform()))


def edt_temperature(logits, T0=1.0, N=0.8, theta=1.0):
    """EDT, entropy-based dynamic temperature (Zhang et al. 2024), a baseline: tau = T0 * N^(theta/H),
    H the entropy of the next-token distribution, so confident steps get a low temperature."""
    entropy = torch.special.entr(torch.softmax(logits.float(), dim=-1)).sum(dim=-1)  # (B,) -sum p ln p, nats
    return T0 * N ** (theta / entropy.clamp(min=1e-6))


def prefill(model, idx, pad, cache):
    """The prompts idx (B, L), left-padded (pad: (B,) or None), through the model in one forward
    pass, filling the cache. Returns logits (B, V) and the final hidden state h (B, d) at the last
    prompt token."""
    logits, h = model(idx, cache=cache, pad=pad, last_only=True, return_hidden=True)
    return logits[:, -1], h[:, -1]


def decode_step(model, tok, cache, pad):
    """One new token per row (B,) through the model, attending to the cache: logits (B, V), h (B, d)."""
    logits, h = model(tok[:, None], cache=cache, pad=pad, last_only=True, return_hidden=True)
    return logits[:, -1], h[:, -1]


def cut_at_stop(rows, choices, stop_ids):
    """Each row up to its first stop token (excluded); its choices keep the one that produced the
    stop token, a decision of the head like any other."""
    tokens, chosen, stop_ids = [], [], set(stop_ids)
    for row, ks in zip(rows, choices):
        n = next((i for i, t in enumerate(row) if t in stop_ids), len(row))
        tokens.append(row[:n])
        chosen.append(ks[:n + 1 if n < len(row) else n])
    return tokens, chosen


# -----------------------------------------------------------------------------
# the lesson

@torch.no_grad()
def generate(model, prompts, max_new_tokens, temperature=1.0, head=None, selection="sample", explore=0.0,
             stop_ids=(), seed=0, pad_id=0):
    """prompts: B lists of token ids -> per row, its new token ids (up to its stop token) and, with a
    head, the index of the temperature chosen at each step: (tokens, choices)."""
    B, device = len(prompts), model.lm_head.weight.device
    gen = torch.Generator(device).manual_seed(seed)
    uniform = lambda: torch.rand(B, 1, device=device, generator=gen)  # noqa: E731  (a number per row)
    idx, pad = left_pad(prompts, pad_id, device)                        # (B, L), (B,) or None
    cache = KVCache(model.config, B, idx.shape[1] + max_new_tokens, device, model.lm_head.weight.dtype)
    logits, h = prefill(model, idx, pad, cache)                         # 1. prefill: (B, V), (B, d)
    stop = torch.tensor(list(stop_ids) or [-1], device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    k, tokens, choices = torch.zeros(B, dtype=torch.long, device=device), [], []
    decoding = dict(temperature=temperature)  # how to sample: a fixed temperature, or the head's choice
    for step in range(max_new_tokens):
        if head is not None and (head.level == "token" or step == 0):  # AD_tok: every token; AD_seq: once
            k, decoding = choose_config(head, h, selection, explore, uniform)      # 2. choose tau
        tok = sample_next(logits, uniform=uniform, **decoding).masked_fill(done, pad_id)  # 3. sample (B,)
        tokens.append(tok)
        choices.append(k)
        done |= torch.isin(tok, stop)
        if done.all():
            break
        logits, h = decode_step(model, tok, cache, pad)                # 4. decode step
    tokens, choices = cut_at_stop(torch.stack(tokens, 1).tolist(), torch.stack(choices, 1).tolist(), stop_ids)
    return tokens, (choices if head is not None else None)


# -----------------------------------------------------------------------------
# the same loop as train.py and evaluate.py run it: faster, and recording what training needs

@dataclass
class Generation:
    tokens: list            # per row, the new token ids (the end-of-turn token not included)
    choices: list | None    # adaptive: per row, the index of the temperature chosen at each step
    hidden: torch.Tensor | None  # keep_hidden: (B, steps, d) the final hidden state before each new
                                 # token: what the head chose from (step 0 alone at sequence level),
                                 # and what the LM head reads (logits = model.lm_head(hidden))
    stops: list                  # per row, the stop token that ended it, or None (max_new_tokens reached)
    prompt_hidden: torch.Tensor | None = None  # (B, d) the final hidden state at the last prompt token:
                                               # what AD_seq chooses its one temperature from
    logprobs: list | None = None  # per row, log p(token) of each new token under the LM at temperature 1
    temperatures: list | None = None  # per row, the temperature of each step (as choices: the stop token's too)
    behaviour_logps: list | None = None  # adaptive: per row, log q(choice) of each step (behaviour_logp; at
                                         # sequence level every step holds the one choice's)
    rows_decoded: int = 0         # rows run through the decode steps, summed over steps (profile_train.py)


@torch.no_grad()  # not inference_mode: the hidden states it returns may feed a trained head
def generate_batch(model, prompts, max_new_tokens, temperature=1.0, head=None, selection="sample", explore=0.0,
                   top_p=None, min_p=None, edt=None, stop_ids=(), seed=None, keep_hidden=False, pad_id=0,
                   compile=False, reuse_prefill=None, random_rows=None):
    """`generate`'s loop with the same tokens for the same seed, and a Generation as the result.
    head: see choose_config for selection and explore; temperature, top_p, min_p: see sample_next;
    edt=(T0, N, theta): the EDT baseline. keep_hidden: also record the hidden state of every step.
    compile: the decode step through torch.compile (compiled_decode_step; the first call of a shape
    pays the compile time). reuse_prefill: a dict kept between calls on the same prompts (evaluation
    runs several methods on one batch): the first call's prefill is kept there and copied by the next.
    random_rows: per row, the row whose random numbers it draws (default: its own); the rows of several
    configurations decoded in one call then draw what each would draw in a call of its own. Rows that
    have stopped leave the batch (their cache rows dropped) once they are a quarter of it, except with
    compile, whose step has a fixed batch size."""
    check_prompts(model, prompts, max_new_tokens)
    device, B, L = model.lm_head.weight.device, len(prompts), max(len(p) for p in prompts)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed if seed is not None else torch.seed())
    per_row = lambda x: x.to(device, torch.float32) if torch.is_tensor(x) else x  # noqa: E731
    decoding = dict(temperature=per_row(temperature), top_p=per_row(top_p), min_p=per_row(min_p))
    random_row = torch.arange(B, device=device) if random_rows is None else torch.as_tensor(random_rows, device=device)
    n_random = int(random_row.max()) + 1
    idx, pad = left_pad(prompts, pad_id, device)
    cache, decode = make_decoder(model, B, L, max_new_tokens, pad, compile)
    logits, h = prefill_or_copy(model, prompts, idx, pad, cache, reuse_prefill)
    record = Record(B, max_new_tokens, h, keep_hidden, stop_ids, pad_id, head is not None and head.continuous)
    live, q = torch.arange(B, device=device), None  # the rows still decoding (their indices in the batch); log q
    for step in range(max_new_tokens):
        uniform = lambda: torch.rand(n_random, 1, device=device, generator=gen)[random_row[live]]  # noqa: E731
        if head is not None and (head.level == "token" or step == 0):   # AD_tok: every step; AD_seq: once
            k, decoding = choose_config(head, h, selection, explore, uniform)
            q = behaviour_logp(head, h, k, selection, explore) if keep_hidden else None
        elif edt is not None:
            decoding["temperature"] = edt_temperature(logits, *edt)
        tok = sample_next(logits, uniform=uniform, **decoding).masked_fill(record.done[live], pad_id)
        record.add(step, live, tok, logits, h, k if head is not None else None, decoding["temperature"], q)
        # reading a value back from a GPU waits for it: there, look at the stopped rows every 8 steps
        look = step % (1 if device.type == "cpu" else 8) == 0
        if step + 1 == max_new_tokens or (look and record.done.all()):
            break
        if look and not compile and 4 * int(record.done[live].sum()) >= len(live):
            keep = ~record.done[live]  # a quarter of the rows have stopped: drop them
            live, tok, pad = live[keep], tok[keep], (pad[keep] if pad is not None else None)
            cache.keep_rows(keep)
            k, q = (k[keep] if head is not None else None), (q[keep] if q is not None else None)
            decoding = {key: v[keep] if torch.is_tensor(v) else v for key, v in decoding.items()}
            decode = lambda t: decode_step(model, t, cache, pad)  # noqa: E731  (with the rows' new padding)
        record.rows_decoded += len(live)
        logits, h = decode(tok)
    return record.result(step, head is not None)


def config_rows(configs, n):
    """generate_batch's settings for n rows of each configuration ((temperature, top_p, min_p) tuples),
    configuration after configuration, in one call: per-row temperatures (and top-p, min-p where one
    truncates), and each configuration's rows drawing the random numbers rows 0..n-1 would draw in a
    call of their own."""
    kw = dict(temperature=torch.tensor([float(t) for t, _, _ in configs for _ in range(n)]),
              random_rows=list(range(n)) * len(configs))
    if any(p is not None for _, p, _ in configs):
        kw["top_p"] = torch.tensor([1.0 if p is None else p for _, p, _ in configs for _ in range(n)])
    if any(m is not None for _, _, m in configs):
        kw["min_p"] = torch.tensor([0.0 if m is None else m for _, _, m in configs for _ in range(n)])
    return kw


def check_prompts(model, prompts, max_new_tokens):
    """Prompts that fit: a token each, and room for max_new_tokens in the context and in memory."""
    if min(len(p) for p in prompts) == 0:
        raise ValueError("every prompt needs at least one token")
    L = max(len(p) for p in prompts)
    if L + max_new_tokens > model.config.max_seq_len:
        raise ValueError(f"a prompt of {L} tokens plus max_new_tokens={max_new_tokens} is longer than "
                         f"the model's context of {model.config.max_seq_len} tokens; shorten the prompt "
                         "or ask for fewer new tokens")
    check_memory(model, len(prompts), L + max_new_tokens)


class Record:
    """What generate_batch keeps of every step, for every row of the batch: the token, the LM's
    log p of it at temperature 1, the temperature it was drawn at, the choice of the head (a
    continuous head's: its temperature) and log q of that choice (behaviour_logp), the hidden state
    (keep_hidden)."""
    def __init__(self, B, max_new_tokens, h, keep_hidden, stop_ids, pad_id, continuous=False):
        device = h.device
        self.prompt_hidden, self.stop_ids, self.rows_decoded = h, stop_ids, 0
        self.stop = torch.tensor(sorted(set(stop_ids)) or [-1], device=device)
        self.tokens = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
        self.choices = torch.zeros((B, max_new_tokens), dtype=torch.float32 if continuous else torch.long,
                                   device=device)
        self.behaviour = torch.zeros((B, max_new_tokens), device=device)
        self.temperatures = torch.zeros((B, max_new_tokens), device=device)
        self.logprobs = torch.zeros((B, max_new_tokens), device=device)
        self.hidden = torch.zeros((B, max_new_tokens, h.shape[-1]), dtype=h.dtype, device=device) if keep_hidden else None
        self.done = torch.zeros(B, dtype=torch.bool, device=device)

    def add(self, step, live, tok, logits, h, k, temperature, behaviour=None):
        """Step `step` of the rows live (their batch indices): tokens tok, from logits and state h, drawn
        at temperature (a float or per row), at choice k with log q behaviour (B,)."""
        self.tokens[live, step] = tok
        z = logits.float()
        self.logprobs[live, step] = z.gather(-1, tok[:, None])[:, 0] - torch.logsumexp(z, -1)
        self.temperatures[live, step] = temperature
        if k is not None:
            self.choices[live, step] = k
        if behaviour is not None:
            self.behaviour[live, step] = behaviour
        if self.hidden is not None:
            self.hidden[live, step] = h
        self.done[live] |= torch.isin(tok, self.stop)

    def result(self, step, adaptive):
        """The Generation of the steps 0..step."""
        rows = self.tokens[:, :step + 1].tolist()
        tokens, chosen = cut_at_stop(rows, self.choices[:, :step + 1].tolist(), self.stop_ids)
        per_step = lambda x: [v[:len(c)] for v, c in zip(x[:, :step + 1].tolist(), chosen)]  # noqa: E731
        return Generation(tokens=tokens, choices=chosen if adaptive else None,
                          hidden=self.hidden[:, :step + 1] if self.hidden is not None else None,
                          stops=[row[len(t)] if len(t) < len(row) else None for row, t in zip(rows, tokens)],
                          prompt_hidden=self.prompt_hidden,
                          logprobs=[lp[:len(t)] for lp, t in zip(self.logprobs[:, :step + 1].tolist(), tokens)],
                          temperatures=per_step(self.temperatures),
                          behaviour_logps=per_step(self.behaviour) if adaptive else None,
                          rows_decoded=self.rows_decoded)


def prefill_distinct(model, idx, pad, cache):
    """prefill, with a prompt given several times (N samples of one prompt) through the model once:
    its rows of the cache are copies."""
    pads = pad.tolist() if pad is not None else [0] * len(idx)
    first = {}  # distinct prompt -> its index among the distinct ones, in order of appearance
    of_row = [first.setdefault((n, *row), len(first)) for row, n in zip(idx.tolist(), pads)]
    if len(first) == len(of_row):
        return prefill(model, idx, pad, cache)
    rows = torch.tensor([of_row.index(u) for u in range(len(first))], device=idx.device)  # one row each
    once = KVCache(model.config, len(rows), idx.shape[1], idx.device, cache.k[0].dtype)
    logits, h = prefill(model, idx[rows], None if pad is None else pad[rows], once)
    expand = torch.tensor(of_row, device=idx.device)
    cache.copy_rows(once, expand)
    return logits[expand], h[expand]


def prefill_or_copy(model, prompts, idx, pad, cache, saved):
    """prefill_distinct; with saved (a dict kept between calls), a copy of the prefill saved there by a
    call on the same prompts, else the prefill, saved there (the prompts' positions only)."""
    B, device = len(prompts), idx.device
    key = (tuple(map(tuple, prompts)), cache.k[0].shape) if saved is not None else None
    if key is not None and saved.get("key") == key:
        cache.copy_rows(saved["cache"], torch.arange(B, device=device))
        return saved["logits"], saved["h"]
    logits, h = prefill_distinct(model, idx, pad, cache)
    if saved is not None:
        saved.update(key=key, cache=KVCache(model.config, B, idx.shape[1], device, cache.k[0].dtype),
                     logits=logits, h=h)
        saved["cache"].copy_rows(cache, torch.arange(B, device=device))
    return logits, h


BUCKET = 256  # compiled decode: cache lengths round up to a multiple (a new prompt length rarely recompiles)
_compiled = {}  # model -> its compiled Transformer.decode, reused by every call in this process


def compiled_decode_step(model):
    """model.decode (fixed shapes: the whole cache, a mask, the position as a tensor) through
    torch.compile, compiled once per (batch size, cache length) and reused. On a GPU with CUDA
    graphs (mode "reduce-overhead"), which replay the step without launching its kernels one by one;
    on the CPU with the weights frozen in (inductor's "freezing": the LM never changes), which lets
    it pre-pack them for its matrix multiplications."""
    if model not in _compiled:
        if model.lm_head.weight.device.type == "cuda":
            options = dict(mode="reduce-overhead")
        else:
            options = dict(options={"freezing": True})
        _compiled[model] = torch.compile(model.decode, fullgraph=True, dynamic=False, **options)
    return _compiled[model]


def check_memory(model, B, S):
    """A batch of B rows and S positions must fit in memory (the KV cache, and the float32 logits a
    step makes): a clear error before allocating, not an out-of-memory crash minutes later."""
    cfg, w = model.config, model.lm_head.weight
    need = 2 * cfg.n_layer * B * cfg.n_kv_head * S * cfg.head_dim * w.element_size() + 4 * B * cfg.vocab_size * 4
    if w.device.type == "cuda":
        have, where = torch.cuda.mem_get_info(w.device)[0], "free on the GPU"
    else:
        have, where = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "of memory on this machine"
    if need > have:
        raise ValueError(f"a batch of {B} rows x {S} positions needs {need / 1e9:.1f} GB, more than the "
                         f"{have / 1e9:.1f} GB {where}; use a smaller batch size or fewer responses per prompt")


def make_decoder(model, B, L, max_new_tokens, pad, compile=False):
    """A KV cache for B rows of L + max_new_tokens positions, and decode(tok) -> (logits, h): the
    eager decode_step, or the compiled fixed-shape one (the cache length rounded up to BUCKET, the
    position and the padding as tensors)."""
    device, dtype = model.lm_head.weight.device, model.lm_head.weight.dtype
    if not compile:
        cache = KVCache(model.config, B, L + max_new_tokens, device, dtype)
        return cache, lambda tok: decode_step(model, tok, cache, pad)
    S = min(-(-(L + max_new_tokens) // BUCKET) * BUCKET, model.config.max_seq_len)
    cache = KVCache(model.config, B, S, device, dtype)
    if model.config.arch == "llama":
        model.rope_tables(S, device)
    step, slot = compiled_decode_step(model), torch.tensor(L, device=device)
    pads = pad if pad is not None else torch.zeros(B, dtype=torch.long, device=device)

    def decode(tok):
        logits, h = step(tok, cache, slot, pads)
        slot.add_(1)
        if device.type == "cuda":  # a CUDA graph's outputs are overwritten by its next replay
            return logits.clone(), h.clone()
        return logits, h
    return cache, decode


# -----------------------------------------------------------------------------
# the command line

def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2", help="smollm2, a .gguf file, a model directory or a hub id")
    p.add_argument("--prompt", action="append", required=True, help="repeat for a batch of prompts")
    p.add_argument("--max_new_tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (a 135M model loops at low "
                   "temperatures: 0.3 repeats a line until the end)")
    p.add_argument("--top_p", type=float, default=None)
    p.add_argument("--min_p", type=float, default=None)
    p.add_argument("--configs", default=None, help="instead of --temperature/--top_p/--min_p: one response "
                   "to each prompt with each decoding configuration, all in one batch, e.g. "
                   "0.7,1.0/top_p=0.9,1.2/min_p=0.1 (items T, T/top_p=P, T/min_p=M, T/top_p=P/min_p=M)")
    p.add_argument("--adaptive", default=None, help="a trained head (head.pt): the paper's AdaptiveDecoder or a "
                   "continuous one (continuous_head.py)")
    p.add_argument("--level", default=None, choices=["token", "sequence"], help="must match the head's level")
    p.add_argument("--selection", default="greedy", choices=["greedy", "sample"])
    p.add_argument("--html", default=None, help="write the response shaded by temperature to this file")
    p.add_argument("--raw", action="store_true", help="no chat template: continue the text as it is")
    p.add_argument("--task", default=None, help="make each --prompt into the prompt this task would write "
                   "(e.g. arithmetic: a question; stories: a title), as a head trained on it saw them")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=default_device())
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    p.add_argument("--compile", action="store_true", help="generate with a compiled decode step")
    args = p.parse_args()
    check_settings(args, at_least={"max_new_tokens": 1, "temperature": 0},
                   between={"top_p": (0, 1), "min_p": (0, 1), "seed": SEED_RANGE})
    if args.top_p == 0:
        sys.exit("error: --top_p 0 keeps no token; give a value above 0 (1 keeps them all)")
    check_device(args.device)
    args.configs = parse_configs(args.configs) if args.configs else None
    if args.configs and args.adaptive:
        sys.exit("error: --configs decodes with fixed configurations, --adaptive with a head's choices: give one")
    if args.html:
        if not args.adaptive:
            sys.exit("error: --html shows the adaptive decoder's temperatures; give --adaptive head.pt")
        check_writable(args.html, "file")
    return args


def task_prompts(texts, task_name, raw):
    """--task: the prompts that task writes from each text, and whether they are raw text. The CLI's
    one use of tasks/ (imported here only): generation above never knows a task."""
    if task_name is None:
        return texts, raw
    import tasks
    task = tasks.get_task(task_name)
    return [task.format_prompt(t) for t in texts], raw or not task.CHAT


def main():
    args = parse_args()
    one_line_errors()  # a user's mistake (a missing file, a bad weight file...) is one line, not a traceback
    texts, raw = task_prompts(args.prompt, args.task, args.raw)  # a bad --task: before the model loads
    from adaptive_head import config_name
    from checkpoints import load_model
    from continuous_head import load_head
    from tokenizer import Tokenizer
    t0 = time.time()
    tok = Tokenizer.from_pretrained(args.model)
    prompts = [tok.encode(t) if raw else tok.encode_prompt(t) for t in texts]
    if not all(prompts):
        sys.exit("error: an empty --prompt with --raw has no token to continue from; give some text")
    model = load_model(args.model, device=args.device, dtype=model_dtype(args.dtype, args.device))
    head = None
    if args.adaptive:
        head = load_head(args.adaptive, d_model=model.config.d_model, map_location=args.device)
        if args.level and args.level != head.level:
            sys.exit(f"error: {args.adaptive} is a {head.level}-level head, not {args.level}-level")
    print(f"loaded {args.model} in {time.time() - t0:.1f}s", file=sys.stderr)
    if args.task:
        for t in texts:
            print(f"prompt ({args.task}): {t!r}", file=sys.stderr)
    t0 = time.time()
    titles, settings = list(args.prompt), dict(temperature=args.temperature, top_p=args.top_p, min_p=args.min_p)
    if args.configs:  # every prompt with every configuration, in one batch
        settings = config_rows(args.configs, len(prompts))
        titles = [f"{p} [{config_name(c)}]" for c in args.configs for p in args.prompt]
        prompts = prompts * len(args.configs)
    g = generate_batch(model, prompts, args.max_new_tokens, head=head, selection=args.selection,
                       stop_ids=tok.stop_ids, seed=args.seed, compile=args.compile, **settings)
    n = sum(len(t) for t in g.tokens)
    print(f"{n} tokens in {time.time() - t0:.1f}s ({n / (time.time() - t0):.1f} tok/s)", file=sys.stderr)
    pages = []
    for i, (title, ids) in enumerate(zip(titles, g.tokens)):
        if len(titles) > 1:
            print(f"--- {title}")
        print(tok.decode(ids))
        if head is not None:
            ts = g.temperatures[i][:max(len(ids), 1)]  # each token's (AD_seq: the one choice's)
            print(f"(mean temperature {sum(ts) / len(ts):.2f})", file=sys.stderr)
            pages.append(temperature_html(tok, ids, ts, head.temperatures.cpu(), title))
    if args.html:
        with open(args.html, "w") as f:
            f.write(html_page(pages))
        print(f"wrote {args.html}", file=sys.stderr)


if __name__ == "__main__":
    main()
