"""
One transformer for two families of open weights, in the spirit of nanoGPT.

- GPT-2:  learned positions, LayerNorm, GELU MLP, tied LM head.
- Llama:  RoPE (with Llama 3.1's "llama3" frequency scaling), RMSNorm, SwiGLU MLP,
          grouped-query attention, tied or untied LM head. Covers Llama 2/3/3.1/3.2,
          SmolLM2, TinyLlama and the like.

The forward pass returns logits and, on request, the final hidden states (after the final
norm: the vectors the LM head reads, which the temperature head of adaptive_head.py reads too).
A reward model (Hugging Face's LlamaForSequenceClassification, e.g. Skywork-Reward) is the same
network with a small head: `lm_head` maps to n_labels scores instead of the vocabulary, and the
reward is the score at the last token (tasks/judge.py's RewardModel).
A static KV cache (KVCache) makes decoding one token at a time cheap; a batch of prompts of
different lengths is left-padded, and `pad` (number of pad tokens per row) keeps the pads out
of attention and out of the position count.

Weights load with checkpoints.load_model(source): a Hugging Face model directory, a hub repo id, a
.gguf file, or "smollm2" (the embedded default). This file is the network only: mapping checkpoints
onto it (nanoGPT's from_pretrained, with its explicit weight-name maps) lives in checkpoints.py,
reading their file formats in weights.py.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    """A model's shape. Defaults: SmolLM2-135M-Instruct, the embedded default model (see rope_theta)."""
    arch: str = "llama"            # "gpt2" or "llama"
    vocab_size: int = 49152
    n_layer: int = 30
    n_head: int = 9
    n_kv_head: int = 3             # < n_head: grouped-query attention
    d_model: int = 576
    d_ff: int = 1536
    head_dim: int = 64
    max_seq_len: int = 8192
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0    # Llama 2's; SmolLM2's 100000.0 comes from its file
    rope_scaling: dict | None = None   # {"rope_type": "llama3", "factor": ..., ...} or None
    tie_embeddings: bool = True
    n_labels: int = 0              # 0: a language model; > 0: a classifier/reward model whose head
                                   # gives n_labels scores per position (HF's "score.weight")
    name: str = ""                 # where the weights came from (recorded by head checkpoints)


# -----------------------------------------------------------------------------
# RoPE

def rope_frequencies(cfg):
    """Inverse frequencies theta^(-2i/d), i < d/2, with Llama 3.1's "llama3" scaling if asked:
    long wavelengths are divided by `factor`, short ones kept, the band between interpolated."""
    inv_freq = 1.0 / (cfg.rope_theta
                      ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float64) / cfg.head_dim))
    s = cfg.rope_scaling
    if s and s.get("rope_type", s.get("type")) == "llama3":
        old_len = s["original_max_position_embeddings"]
        low_wavelen = old_len / s["low_freq_factor"]
        high_wavelen = old_len / s["high_freq_factor"]
        wavelen = 2 * math.pi / inv_freq
        smooth = (old_len / wavelen - s["low_freq_factor"]) / (s["high_freq_factor"] - s["low_freq_factor"])
        mid = (1 - smooth) * inv_freq / s["factor"] + smooth * inv_freq
        inv_freq = torch.where(wavelen > low_wavelen, inv_freq / s["factor"],
                               torch.where(wavelen < high_wavelen, inv_freq, mid))
    elif s and s.get("rope_type", s.get("type")) not in (None, "default"):
        raise ValueError(f"RoPE scaling {s!r} is not supported (only 'llama3')")
    return inv_freq.float()


def apply_rope(x, cos, sin):
    # x: (B, H, T, hd); cos, sin: (B, 1, T, hd). The Hugging Face layout: the two halves of
    # each head are the (real, imaginary) parts, so rotating by an angle is:
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


# -----------------------------------------------------------------------------
# The KV cache: preallocated, filled left to right (gpt-fast's static cache)

class KVCache:
    def __init__(self, cfg, batch_size, max_len, device=None, dtype=torch.float32):
        # one key and one value tensor per layer, (B, n_kv_head, max_len, hd), zeroed: attention
        # over the whole cache (Transformer.decode) masks unfilled positions, and 0 * NaN from stale
        # memory would still be NaN
        shape = (batch_size, cfg.n_kv_head, max_len, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.pos = 0  # number of positions filled; the model's forward advances it

    def update(self, layer, k, v, slot=None):
        """k, v: (B, n_kv_head, T, hd), the new positions' keys and values, written after the cache.pos
        positions filled; returns the keys and values so far. With slot (a 0-d long tensor, T = 1: the
        fixed-shape step of Transformer.decode) they go to position slot, and the whole cache comes
        back (the caller masks its unfilled positions)."""
        if slot is not None:
            self.k[layer].index_copy_(2, slot.view(1), k)
            self.v[layer].index_copy_(2, slot.view(1), v)
            return self.k[layer], self.v[layer]
        T = k.size(2)
        self.k[layer][:, :, self.pos:self.pos + T] = k
        self.v[layer][:, :, self.pos:self.pos + T] = v
        return self.k[layer][:, :, :self.pos + T], self.v[layer][:, :, :self.pos + T]

    def copy_rows(self, other, rows):
        """Row i of this cache becomes row rows[i] of other, for the positions other has filled:
        a prompt prefilled once serves its N samples. rows: (B,) long."""
        n = other.pos
        for mine, theirs in zip(self.k + self.v, other.k + other.v):
            mine[:, :, :n] = theirs[rows, :, :n]
        self.pos = n

    def keep_rows(self, keep):
        """Only the rows where keep (B,) bool is True stay (generation drops the rows that stopped)."""
        self.k = [k[keep] for k in self.k]
        self.v = [v[keep] for v in self.v]


def left_pad(prompts, pad_id, device):
    """Prompts of different lengths (lists of token ids) as one batch: idx (B, L) left-padded, and
    pad (B,) the number of pad tokens per row (None when no row is padded: the faster unmasked
    attention paths)."""
    L = max(len(p) for p in prompts)
    idx = torch.tensor([[pad_id] * (L - len(p)) + list(p) for p in prompts], device=device)
    pad = torch.tensor([L - len(p) for p in prompts], device=device)
    return idx, (pad if pad.any() else None)


def attention_mask(pad, start, T, device):
    """Boolean mask (True = may attend) for T queries at positions start..start+T-1 over the
    start+T keys so far: causal, and with left padding (pad: (B,) long) the pad keys hidden.
    A pad query still sees itself, so that no softmax row is empty (that would give NaN)."""
    q = torch.arange(start, start + T, device=device)[:, None]   # (T, 1)
    k = torch.arange(start + T, device=device)[None, :]          # (1, S)
    allowed = k <= q                                             # (T, S)
    if pad is None:
        return allowed
    return ((allowed & (k >= pad[:, None, None])) | (k == q))[:, None]  # (B, 1, T, S)


# -----------------------------------------------------------------------------
# The blocks

class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        bias = cfg.arch == "gpt2"
        # q, k and v in one matmul: (d_model) -> (n_head + 2 n_kv_head) * head_dim
        self.wqkv = nn.Linear(cfg.d_model, (cfg.n_head + 2 * cfg.n_kv_head) * cfg.head_dim, bias=bias)
        self.wo = nn.Linear(cfg.n_head * cfg.head_dim, cfg.d_model, bias=bias)

    def forward(self, x, rope, mask, is_causal, cache, layer, slot=None):
        cfg, (B, T, _) = self.cfg, x.shape
        q, k, v = self.wqkv(x).split([cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim,
                                      cfg.n_kv_head * cfg.head_dim], dim=-1)
        q = q.view(B, T, cfg.n_head, cfg.head_dim).transpose(1, 2)       # (B, H, T, hd)
        k = k.view(B, T, cfg.n_kv_head, cfg.head_dim).transpose(1, 2)    # (B, Hkv, T, hd)
        v = v.view(B, T, cfg.n_kv_head, cfg.head_dim).transpose(1, 2)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:                                            # (B, Hkv, S, hd)
            k, v = cache.update(layer, k, v, slot)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                           enable_gqa=cfg.n_kv_head != cfg.n_head)
        return self.wo(y.transpose(1, 2).reshape(B, T, cfg.n_head * cfg.head_dim))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gated = cfg.arch == "llama"
        # Llama: gate and up projections in one matmul, SwiGLU; GPT-2: one projection, GELU
        self.w_in = nn.Linear(cfg.d_model, (2 if self.gated else 1) * cfg.d_ff, bias=not self.gated)
        self.w_out = nn.Linear(cfg.d_ff, cfg.d_model, bias=not self.gated)

    def forward(self, x):
        h = self.w_in(x)
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h, approximate="tanh")  # GPT-2's "gelu_new"
        return self.w_out(h)


def make_norm(cfg):
    if cfg.arch == "gpt2":
        return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
    return nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attn_norm = make_norm(cfg)
        self.attn = Attention(cfg)
        self.mlp_norm = make_norm(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x, rope, mask, is_causal, cache, layer, slot=None):
        x = x + self.attn(self.attn_norm(x), rope, mask, is_causal, cache, layer, slot)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.arch == "gpt2":
            self.pos_emb = nn.Embedding(cfg.max_seq_len, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.n_labels or cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        # RoPE frequencies and the cos/sin tables stay in float32 whatever the model's dtype (plain
        # attributes, not buffers, so that model.to(torch.bfloat16) does not round them)
        self.inv_freq = rope_frequencies(cfg) if cfg.arch == "llama" else None
        self.rope_cos = self.rope_sin = None

    def rope_tables(self, n, device):
        """cos and sin of the RoPE angles of positions 0..n-1 at least, (>= n, hd), float32: built
        once (doubling when a longer sequence comes), then looked up by position."""
        if self.rope_cos is None or len(self.rope_cos) < n or self.rope_cos.device != device:
            built = 0 if self.rope_cos is None else len(self.rope_cos)
            n = min(self.config.max_seq_len, max(n, 1024, 2 * built))
            freqs = torch.arange(n, device=device).float()[:, None] * self.inv_freq.to(device)  # (n, hd/2)
            angles = torch.cat((freqs, freqs), dim=-1)                                         # (n, hd)
            self.rope_cos, self.rope_sin = angles.cos(), angles.sin()
        return self.rope_cos, self.rope_sin

    def embed(self, idx, pos):
        """The input vectors of tokens idx (B, T) at positions pos (B|1, T): token embeddings, plus
        GPT-2's learned positions; for Llama also the RoPE (cos, sin) of those positions, looked up
        in the tables (rope_tables must cover them) and cast to the model's dtype."""
        x = self.tok_emb(idx)                                                   # (B, T, d)
        if self.config.arch == "gpt2":
            return x + self.pos_emb(pos), None
        cos, sin = self.rope_cos[pos][:, None], self.rope_sin[pos][:, None]     # (B|1, 1, T, hd)
        return x, (cos.to(x.dtype), sin.to(x.dtype))

    def run_blocks(self, x, rope, mask, is_causal, cache, slot=None):
        """x (B, T, d) through every block; each appends its keys and values to the cache, if any."""
        for i, block in enumerate(self.layers):
            x = block(x, rope, mask, is_causal, cache, i, slot)
        return x

    def forward(self, idx, cache=None, pad=None, last_only=False, return_hidden=False):
        """idx: (B, T) token ids. cache: a KVCache; the T tokens are appended after its cache.pos
        positions and attend to all of them. pad: (B,) long, left-pad tokens per row, or None.
        last_only: compute logits for the last position only (what generation needs).
        Returns logits (B, T or 1, V) in float32 (V = n_labels for a reward model), and with
        return_hidden the final hidden states (B, T or 1, d_model) after the final norm."""
        cfg, T = self.config, idx.shape[1]
        start = cache.pos if cache is not None else 0
        if start + T > cfg.max_seq_len:
            raise ValueError(f"sequence of {start + T} tokens is longer than the model's context "
                             f"of {cfg.max_seq_len}; shorten the prompt or max_new_tokens")
        pos = torch.arange(start, start + T, device=idx.device)[None, :]        # (1, T)
        if pad is not None:
            pos = (pos - pad[:, None]).clamp(min=0)                              # (B, T)
        # masks: the plain cases need none (SDPA's own causal mask, or a single query that sees
        # everything cached); chunked prefill and padding need an explicit one
        is_causal = pad is None and start == 0 and T > 1
        mask = None if pad is None and (start == 0 or T == 1) else attention_mask(pad, start, T, idx.device)

        if cfg.arch == "llama":
            self.rope_tables(start + T, idx.device)                              # (>= S, hd)
        x, rope = self.embed(idx, pos)                                           # (B, T, d)
        x = self.run_blocks(x, rope, mask, is_causal, cache)
        if cache is not None:
            cache.pos += T
        if last_only:
            x = x[:, -1:]
        h = self.norm(x)
        logits = self.lm_head(h).float()
        return (logits, h) if return_hidden else logits

    def decode(self, tok, cache, slot, pad):
        """One new token per row, written at cache position slot, with shapes that never change (what
        torch.compile wants, see sample.py): attention runs over the whole preallocated cache, a mask
        hiding its unfilled positions and the left padding. tok (B,) long; slot: a 0-d long tensor;
        pad (B,) long, pad tokens per row. The RoPE tables must cover the cache (rope_tables).
        Returns logits (B, V) in float32 and the final hidden state h (B, d)."""
        keys = torch.arange(cache.k[0].shape[2], device=tok.device)                  # (S,)
        mask = ((keys <= slot) & (keys >= pad[:, None]))[:, None, None, :]            # (B, 1, 1, S)
        pos = (slot - pad)[:, None]                                                   # (B, 1)
        x, rope = self.embed(tok[:, None], pos)                                       # (B, 1, d)
        x = self.run_blocks(x, rope, mask, False, cache, slot)
        h = self.norm(x)
        return self.lm_head(h).float()[:, -1], h[:, -1]
