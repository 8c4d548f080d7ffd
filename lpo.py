"""
Latent Preference Optimization, the training method of *Adaptive Decoding via Latent Preference
Optimization* (Dhuliawala et al., arXiv 2411.09661, Section 3): the pairs and the losses that train
the AdaptiveDecoder. Plain functions on tensors; B = pairs, T = response positions,
K = temperatures (or decoding configurations, a temperature with top-p or min-p: (a) and (d) read
only the index of the choice; (c) the truncated distribution of each, temperature_token_logps),
V = vocabulary.

    preference_pairs        a prompt's best response (chosen) against its worst (rejected), the
                            paper's rule, or every better/worse pair with different temperatures
    Side, stack_side        one side (chosen or rejected) of a batch of pairs, as padded tensors
    (a) lpo_loss            temperatures as tokens, AD terms only (the paper's Eq. 10)
    (b) -                   joint with the response tokens; with a frozen LM it *is* (a)
    (c) lpo_marginal_loss   temperature as a latent variable, marginalised (Section 3.3): per token
                            for AD_tok (mixture_token_logps), once per response for AD_seq
                            (mixture_sequence_logps); in training the LM's part is computed
                            once per sample (config_logps), only the head's at every step
    (d) nll_loss            baseline: -log P(tau^c) (the paper's Table 4 compares it with (a), (c))
    pair_loss               the loss of a batch of pairs, by name ("lpo", "lpo_marginal", "nll")
    preference_accuracy     how often the head prefers the chosen side's temperatures

Padding: every (B, T) tensor comes with a mask (True/nonzero = real response position). Masked
positions are dropped with torch.where, never multiplied by 0, so garbage there (huge, inf, nan)
reaches neither the loss nor the gradients.
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

PAIR_RULES = ("best_worst", "all")
PAIR_LOSSES = ("lpo", "lpo_marginal", "nll")  # pair_loss's names (losses.py: train.py's registry)


def same_temperatures(a, b, level="sequence"):
    """Whether two samples were generated with the same temperatures: the one choice at sequence
    level, every step's at token level. Loss (a) gives such a pair no gradient at all."""
    return a["choices"][:1] == b["choices"][:1] if level == "sequence" else a["choices"] == b["choices"]


def preference_pairs(samples, rule="best_worst", level="sequence"):
    """The training pairs of each prompt (samples with the same "id"); samples: dicts with "id" and
    "reward" (and "choices" for rule "all"). Returns [(chosen, rejected)], prompt by prompt in the
    order the prompts first appear.
    best_worst: the paper's rule (Section 3.1), the highest-reward response chosen, the lowest
        rejected (the first of tied bests, the first of tied worsts); all tied: no pair.
    all: every pair of a prompt's responses whose rewards differ and whose temperatures differ
        (same_temperatures), the better one chosen: N = 4 responses give up to 6 pairs, and no
        pair that loss (a) cannot learn from."""
    if rule not in PAIR_RULES:
        raise ValueError(f"unknown pair rule {rule!r}; valid: {', '.join(PAIR_RULES)}")
    groups = {}
    for s in samples:
        groups.setdefault(s["id"], []).append(s)
    pairs = []
    for group in groups.values():
        if rule == "best_worst":
            best = max(group, key=lambda s: s["reward"])
            worst = min(group, key=lambda s: s["reward"])
            if best["reward"] > worst["reward"]:
                pairs.append((best, worst))
            continue
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if a["reward"] != b["reward"] and not same_temperatures(a, b, level):
                    pairs.append((a, b) if a["reward"] > b["reward"] else (b, a))
    return pairs


class Side(NamedTuple):
    """One side (chosen or rejected) of a batch of B pairs, padded to the longest response (T steps)."""
    hidden: torch.Tensor       # (B, T, d) the LM's final hidden state each temperature was chosen from
    choices: torch.Tensor      # (B, T) index of the temperature chosen at each step
    tokens: torch.Tensor       # (B, T) the response's tokens, then its stop token if it stopped
    has_choice: torch.Tensor   # (B, T) bool: a step of the response (its tokens and its stop token)
    counts: torch.Tensor       # (B, T) bool: a token whose probability counts in loss (c): the response's
                               # and its stop token (unknown in samples saved before it was stored)


def stack_side(pairs, i, device="cpu"):
    """Side i (0 chosen, 1 rejected) of some pairs, on the device. A sample is a dict with "hidden"
    (steps, d), "choices", "tokens" and "stop" (the stop token id, or None), as train.py collects."""
    samples = [pair[i] for pair in pairs]
    pad = lambda xs: pad_sequence(xs, batch_first=True).to(device)  # noqa: E731
    stop = [[] if s.get("stop") is None else [s["stop"]] for s in samples]
    return Side(hidden=pad([s["hidden"] for s in samples]),
                choices=pad([torch.tensor(s["choices"]) for s in samples]),
                tokens=pad([torch.tensor((s["tokens"] + st + [0])[:len(s["choices"])])
                            for s, st in zip(samples, stop)]),
                has_choice=pad([torch.ones(len(s["choices"]), dtype=torch.bool) for s in samples]),
                counts=pad([torch.arange(len(s["choices"])) < len(s["tokens"]) + len(st)
                            for s, st in zip(samples, stop)]))


def sequence_logp(step_logps, mask=None):
    """log P(tau) = sum_t log P(tau_t | h_t) over response positions (the AD term of Eq. 10).
    step_logps (B, T), mask (B, T) bool/float or None -> (B,). For AD_seq T = 1."""
    if mask is not None:
        step_logps = torch.where(mask.bool(), step_logps, torch.zeros_like(step_logps))
    return step_logps.sum(-1)


def choice_logps(head_logprobs, choices, mask=None):
    """log P(tau) of the temperatures a response was sampled with: sum_t log P(tau_t | h_t).
    head_logprobs (B, T, K) = log P(. | h_t); choices (B, T) long indices into the temperatures.
    AD_seq may pass head_logprobs (B, K) and choices (B,). Returns (B,)."""
    if head_logprobs.dim() == 2:
        head_logprobs, choices = head_logprobs.unsqueeze(1), choices.unsqueeze(1)
        mask = None if mask is None else mask.reshape(-1, 1)
    if mask is not None:  # padded choices may hold any value (-100, 999...): point them at 0
        choices = torch.where(mask.bool(), choices, torch.zeros_like(choices))
    step = head_logprobs.gather(-1, choices.long().unsqueeze(-1)).squeeze(-1)  # (B, T)
    return sequence_logp(step, mask)


def lpo_loss(chosen_logps, rejected_logps, beta=0.1):
    """Loss (a), the paper's Eq. 10:
        L = -log sigma( beta * log P(tau^c) - beta * log P(tau^r) ),  mean over pairs.
    chosen_logps, rejected_logps: (B,) from choice_logps. F.logsigmoid is stable for large margins."""
    return -F.logsigmoid(beta * (chosen_logps - rejected_logps)).mean()


def nll_loss(chosen_logps):
    """Baseline (d): L = -log P(tau^c), mean over pairs (the paper's Fig. 7: without the rejected
    side, it picks worse temperatures)."""
    return (-chosen_logps).mean()


def temperature_token_logps(lm_logits, configs, tokens, dtype=torch.float32):
    """log P(y_t | h_t, choice k) for every choice k: (B, T, K). A temperature tau: log softmax(
    lm_logits_t / tau)[y_t]; tau = 0 is greedy, a one-hot on argmax(lm_logits_t): 0 if y_t is the
    argmax, else -inf. A configuration (tau, top_p, min_p) samples from the tokens its truncation keeps
    (sample.sample_next's rule), renormalised: log p(y_t) - logsumexp of log p over the kept tokens,
    and -inf for a token outside them.
    lm_logits (B, T, V); configs: K temperatures, or (tau, top_p, min_p) tuples; tokens (B, T) valid ids."""
    logits, y = lm_logits.to(dtype), tokens.long().unsqueeze(-1)
    configs = configs.tolist() if torch.is_tensor(configs) else list(configs)
    comps = []
    for c in configs:
        tau, top_p, min_p = (c, None, None) if isinstance(c, (int, float)) else c
        if tau == 0:  # greedy: log 1 on the argmax token, log 0 elsewhere (a truncation keeps the argmax)
            hit = logits.argmax(-1) == tokens
            comps.append(torch.where(hit, 0.0, float("-inf")).to(dtype))
        elif top_p is None and min_p is None:  # log softmax(logits / tau)[y]
            z = logits / tau
            comps.append(z.gather(-1, y).squeeze(-1) - torch.logsumexp(z, dim=-1))
        else:
            logp = torch.log_softmax(logits / tau, dim=-1).masked_fill(~kept_tokens(logits, tau, top_p, min_p),
                                                                       float("-inf"))
            comps.append(logp.gather(-1, y).squeeze(-1) - torch.logsumexp(logp, dim=-1))
    return torch.stack(comps, dim=-1)


def kept_tokens(logits, tau, top_p, min_p):
    """The tokens a configuration's truncation keeps, as sample.sample_next keeps them, (..., V) bool:
    min-p, probability at least min_p times the top one's; top-p, the smallest set of most likely
    tokens whose probability reaches top_p (of what min-p kept); both: the tokens both keep."""
    probs = torch.softmax(logits.float() / tau, dim=-1)
    if min_p is not None:
        probs = probs.masked_fill(probs < min_p * probs.amax(dim=-1, keepdim=True), 0.0)
    keep = probs > 0
    if top_p is not None and top_p < 1:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(dim=-1) - sorted_p >= top_p
        keep = keep & ~torch.zeros_like(drop).scatter(-1, order, drop)
    return keep


def _logsumexp_k(joint):
    """logsumexp over the last dim; where every term is -inf, -inf with a zero (not NaN) gradient."""
    dead = torch.isneginf(joint).all(-1, keepdim=True)
    mix = torch.logsumexp(torch.where(dead, torch.zeros_like(joint), joint), dim=-1)
    return torch.where(dead.squeeze(-1), float("-inf"), mix)


def mixture_token_logps(lm_logits, head_logprobs, temperatures, tokens):
    """Per-token log-likelihood of AD_tok viewed as a mixture over temperatures (the paper's
    Section 3.3), tau drawn anew at every token:
        log P(y_t | h_t) = log sum_k P(tau_k | h_t) * softmax(lm_logits_t / tau_k)[y_t]
    computed as logsumexp_k( log P(tau_k | h_t) + log softmax(lm_logits_t / tau_k)[y_t] ) in log
    space, so that the greedy component's 0 or -inf stays finite in the mixture. A position whose
    only possible component is tau = 0 on a non-argmax token gives -inf (with zero gradient).
    lm_logits (B, T, V); head_logprobs (B, T, K); temperatures (K,); tokens (B, T) valid ids.
    Returns (B, T). Memory is O(B*T*V) per temperature: callers may chunk over T."""
    dtype = torch.promote_types(torch.promote_types(lm_logits.dtype, head_logprobs.dtype), torch.float32)
    comps = temperature_token_logps(lm_logits, temperatures, tokens, dtype)    # (B, T, K)
    return token_mixture(comps, head_logprobs.to(dtype))


def token_mixture(comps, head_logprobs):
    """logsumexp_k( log P(tau_k | h_t) + log P(y_t | h_t, tau_k) ): comps, head_logprobs (B, T, K) -> (B, T)."""
    return _logsumexp_k(head_logprobs + comps)


def mixture_sequence_logps(lm_logits, head_logprobs, temperatures, tokens, mask):
    """Log-likelihood of a whole response under AD_seq viewed as a mixture (Section 3.3): ONE
    temperature, chosen from the last prompt token's state h_T, holds for every token, so the
    latent is marginalised once per sequence, not per token:
        log P(y | x) = log sum_k P(tau_k | h_T) prod_t softmax(lm_logits_t / tau_k)[y_t]
    lm_logits (B, T, V); head_logprobs (B, K) = log P(. | h_T); tokens (B, T); mask (B, T) marks
    the positions that count (masked ones are dropped, garbage there included). Returns (B,)."""
    dtype = torch.promote_types(torch.promote_types(lm_logits.dtype, head_logprobs.dtype), torch.float32)
    comps = temperature_token_logps(lm_logits, temperatures, tokens, dtype)    # (B, T, K)
    return sequence_mixture(comps, head_logprobs.to(dtype), mask)


def sequence_mixture(comps, head_logprobs, mask):
    """logsumexp_k( log P(tau_k | h_T) + sum_t log P(y_t | h_t, tau_k) ) over the positions mask keeps:
    comps (B, T, K), head_logprobs (B, K), mask (B, T) -> (B,)."""
    per_tau = torch.where(mask.bool()[..., None], comps, torch.zeros_like(comps)).sum(1)  # (B, K)
    return _logsumexp_k(head_logprobs + per_tau)


def lpo_marginal_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, mask_c, mask_r, beta=0.1):
    """Loss (c), temperature as a latent variable (the paper's Section 3.3):
        L = -log sigma( beta * sum_t [log mix(y^c_t) - log mix_ref(y^c_t)]
                      - beta * sum_t [log mix(y^r_t) - log mix_ref(y^r_t)] )
    where mix = sum_tau P(y_t | h_t, tau) P(tau | h_t) with the current head and mix_ref the same
    with a frozen copy of the head (or a uniform one). Inputs are (B, T) per-token values from
    mixture_token_logps (AD_tok), or (B, 1) per-response ones from mixture_sequence_logps (AD_seq);
    masks mark the positions that count (the two sides may differ in T)."""
    reward_c = sequence_logp(policy_chosen - ref_chosen, mask_c)     # the implicit rewards (B,)
    reward_r = sequence_logp(policy_rejected - ref_rejected, mask_r)
    return -F.logsigmoid(beta * (reward_c - reward_r)).mean()


# -----------------------------------------------------------------------------
# a batch of pairs: the head's terms, the loss, the accuracy

def temperature_logp(head, side, level):
    """log P(tau) of the temperatures each response was generated with (B,), the terms of Eq. 10:
    the one choice at sequence level; the sum of log P(tau_t | h_t) over the steps at token level."""
    if level == "sequence":
        return choice_logps(head.log_probs(side.hidden[:, :1]), side.choices[:, :1], side.has_choice[:, :1])
    return choice_logps(head.log_probs(side.hidden), side.choices, side.has_choice)


def config_logps(samples, lm_head, configs, device="cpu", batch=16):
    """log P(y_t | h_t, choice k) of each sample's own tokens, (steps, K) per sample: all that loss (c)
    needs from the frozen LM (its logits, from the stored hidden states through lm_head, one matmul:
    the LM is not run again). They do not depend on the head, so each sample's are computed once and
    kept in the sample ("config_logps", with the lm_head weight and configurations they belong to),
    not again at every step of every epoch. Returns them padded: (B, T, K) on the device."""
    configs = [tuple(c) if isinstance(c, (list, tuple)) else c for c in configs]
    key = lambda s: s.get("config_logps", (None, None))[:2]  # noqa: E731  (lm_head weight, configurations)
    todo = [s for s in samples if key(s)[0] is not lm_head.weight or key(s)[1] != configs]
    for i in range(0, len(todo), batch):
        part = todo[i:i + batch]
        side = stack_side([(s, s) for s in part], 0, device)
        with torch.no_grad():
            logits = lm_head(side.hidden.to(lm_head.weight.dtype)).float()
            comps = temperature_token_logps(logits, configs, side.tokens).cpu()       # (b, T, K)
        for s, c in zip(part, comps):
            s["config_logps"] = (lm_head.weight, configs, c[:len(s["choices"])].clone())
    return pad_sequence([s["config_logps"][2] for s in samples], batch_first=True).to(device)


def mixture_logps(head, ref_head, side, comps, level):
    """log P(y) of AD as a mixture over temperatures (loss (c), Section 3.3), with the trained head
    and with the reference head P_ref, and the mask of what counts: per token at token level, (B, T)
    (tau is chosen anew at each token); per response at sequence level, (B, 1) (one tau, chosen from
    the last prompt token's state, for the whole response). comps (B, T, K): config_logps."""
    def mixture(hd):
        if level == "token":
            return token_mixture(comps, hd.log_probs(side.hidden).float())
        return sequence_mixture(comps, hd.log_probs(side.hidden[:, 0]).float(), side.counts)[:, None]
    with torch.no_grad():
        ref = mixture(ref_head)
    return mixture(head), ref, side.counts if level == "token" else side.counts[:, :1]


def pair_loss(head, pairs, loss="lpo", level="sequence", beta=1.0, ref_head=None, lm_head=None, device="cpu"):
    """The loss of a batch of pairs [(chosen, rejected)] (samples as stack_side reads them):
    "lpo" loss (a), Eq. 10; "nll" baseline (d); "lpo_marginal" loss (c), Section 3.3, which also
    needs ref_head (P_ref) and the LM's lm_head."""
    if head.continuous:
        raise ValueError("the LPO losses train a discrete head (adaptive_head.py), not a continuous one (--loss ce)")
    chosen, rejected = stack_side(pairs, 0, device), stack_side(pairs, 1, device)
    if loss == "lpo":                                                    # loss (a), Eq. 10
        logp_c, logp_r = temperature_logp(head, chosen, level), temperature_logp(head, rejected, level)
        return lpo_loss(logp_c, logp_r, beta)
    if loss == "nll":                                                    # baseline (d)
        return nll_loss(temperature_logp(head, chosen, level))
    if loss != "lpo_marginal":
        raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(PAIR_LOSSES)}")
    comps_c = config_logps([c for c, _ in pairs], lm_head, head.configs, device)     # loss (c)
    comps_r = config_logps([r for _, r in pairs], lm_head, head.configs, device)
    policy_c, ref_c, mask_c = mixture_logps(head, ref_head, chosen, comps_c, level)
    policy_r, ref_r, mask_r = mixture_logps(head, ref_head, rejected, comps_r, level)
    return lpo_marginal_loss(policy_c, policy_r, ref_c, ref_r, mask_c, mask_r, beta)


@torch.no_grad()
def preference_accuracy(head, pairs, level="sequence", device="cpu"):
    """The fraction of pairs where the head gives the chosen side's temperatures a higher
    probability than the rejected side's, counted on the pairs whose temperatures differ (a pair
    with the same temperatures on both sides says nothing about the head: it is left out, not
    counted half). Returns (accuracy or nan, the number of pairs counted)."""
    pairs = [p for p in pairs if not same_temperatures(p[0], p[1], level)]
    if not pairs:
        return float("nan"), 0
    logp_c = temperature_logp(head, stack_side(pairs, 0, device), level)
    logp_r = temperature_logp(head, stack_side(pairs, 1, device), level)
    return (logp_c > logp_r).float().mean().item(), len(pairs)
