"""Tests for adaptive_head.py: shapes, uniform start, learning, checkpoints and refusals, bf16 input."""
import math

import pytest
import torch

from adaptive_head import DEFAULT_TEMPERATURES, AdaptiveDecoder


def trained_head(**kw):
    """A head with non-zero last layer, so outputs depend on the input."""
    torch.manual_seed(0)
    head = AdaptiveDecoder(16, **kw)
    torch.nn.init.normal_(head.mlp[-1].weight)
    torch.nn.init.normal_(head.mlp[-1].bias)
    return head


def test_shapes_and_temperatures():
    head = AdaptiveDecoder(16, hidden=8)
    assert head(torch.randn(2, 5, 16)).shape == (2, 5, 6)
    assert head.log_probs(torch.randn(16)).shape == (6,)
    assert torch.equal(head.temperatures, torch.tensor(DEFAULT_TEMPERATURES))
    assert "temperatures" in dict(head.named_buffers())
    assert AdaptiveDecoder(16, temperatures=(0.0, 0.4, 0.8, 1.0, 1.2))(torch.randn(3, 16)).shape == (3, 5)
    with pytest.raises(ValueError, match="hidden size 16"):
        head(torch.randn(2, 12))
    with pytest.raises(ValueError, match="level"):
        AdaptiveDecoder(16, level="word")
    with pytest.raises(ValueError, match="temperatures"):
        AdaptiveDecoder(16, temperatures=(-0.5, 1.0))


def test_uniform_at_init_then_learns():
    head = AdaptiveDecoder(16)
    h = torch.randn(4, 16)
    assert torch.allclose(head.log_probs(h), torch.full((4, 6), -math.log(6)))
    opt = torch.optim.SGD(head.parameters(), lr=0.5)
    for _ in range(3):  # push every position towards temperature index 2
        opt.zero_grad()
        (-head.log_probs(h)[:, 2].mean()).backward()
        opt.step()
    p = head.log_probs(h).exp()
    assert (p.argmax(-1) == 2).all() and (p[:, 2] > 1 / 6).all()
    assert head.mlp[0].weight.grad.abs().sum() > 0  # earlier layers learn too once the last is non-zero


def test_save_load_round_trip(tmp_path):
    head = trained_head(level="sequence", hidden=24, base_model="SmolLM2-135M")
    path = tmp_path / "head.pt"
    head.save(path)
    back = AdaptiveDecoder.load(path, d_model=16, base_model="SmolLM2-135M",
                                temperatures=DEFAULT_TEMPERATURES)
    h = torch.randn(3, 7, 16)
    assert torch.equal(head(h), back(h))
    assert ((back.level, back.base_model, back.hidden) == ("sequence", "SmolLM2-135M", 24))
    assert torch.equal(back.temperatures, head.temperatures)
    assert not back.training


def test_refusals(tmp_path):
    path = tmp_path / "head.pt"
    trained_head(base_model="SmolLM2-135M").save(path)
    with pytest.raises(ValueError) as e:
        AdaptiveDecoder.load(path, d_model=2048)
    msg = str(e.value)
    assert "SmolLM2-135M" in msg and "hidden size 16" in msg and "2048" in msg and "train a head" in msg
    with pytest.raises(ValueError, match="temperatures"):
        AdaptiveDecoder.load(path, temperatures=(0.0, 0.4, 0.8, 1.0))
    with pytest.raises(ValueError, match="temperatures"):
        AdaptiveDecoder.load(path, temperatures=(0.0, 0.2, 0.4, 0.6, 0.8, 1.2))
    with pytest.raises(ValueError) as e:
        AdaptiveDecoder.load(path, base_model="SmolLM2-1.7B")
    assert "SmolLM2-135M" in str(e.value) and "SmolLM2-1.7B" in str(e.value)


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        AdaptiveDecoder.load(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)  # a valid torch file, but not a head
    with pytest.raises(ValueError, match="other.pt"):
        AdaptiveDecoder.load(other)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        AdaptiveDecoder.load(tmp_path / "missing.pt")


def test_bf16_input_fp32_head():
    head = trained_head()
    h = torch.randn(2, 3, 16).to(torch.bfloat16)
    out = head.log_probs(h)
    assert out.dtype == torch.float32
    assert torch.allclose(out, head.log_probs(h.float()))
