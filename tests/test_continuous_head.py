"""continuous_head.py: the continuous temperature head recovers planted temperatures by cross-entropy,
loads where a head is loaded, and is refused (one line) where a discrete head is needed."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adaptive_head import AdaptiveDecoder
from continuous_head import ContinuousDecoder, ce_loss, load_head, targets
from evaluate import exact_ad_seq
from lpo import pair_loss

ROOT = Path(__file__).resolve().parent.parent


def drawn_at(temperature_of, n, d=16, V=50, T=12, seed=0):
    """n responses of T tokens (and a stop token) from a fixed random "LM" (logits = lm_head(h) on
    random states), each drawn at temperature_of(kind) for its prompt's kind (told apart by the first
    state), as train.py stores them."""
    g = torch.Generator().manual_seed(seed)
    lm_head = torch.nn.Linear(d, V, bias=False)
    with torch.no_grad():
        lm_head.weight.copy_(0.25 * torch.randn(V, d, generator=g))
    kinds = {"A": torch.randn(d, generator=g), "B": torch.randn(d, generator=g)}
    samples = []
    for i in range(n):
        kind = "AB"[i % 2]
        hidden = torch.randn(T + 1, d, generator=g) * 0.3 + kinds[kind]  # every state says its kind
        hidden[0] = kinds[kind]  # the last prompt token's, what AD_seq reads: the same for a kind
        logits = lm_head(hidden).detach()
        tokens = torch.multinomial(torch.softmax(logits / temperature_of(kind), -1), 1, generator=g)[:, 0]
        samples.append({"id": f"p{i}", "kind": kind, "reward": 1.0, "choices": [0] * (T + 1),
                        "tokens": tokens[:T].tolist(), "stop": int(tokens[T]), "hidden": hidden})
    return samples, kinds, lm_head


def fit(head, samples, lm_head, steps=200, lr=0.05):
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        loss = ce_loss(head, samples, lm_head)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.eval()


def test_recovers_a_planted_temperature_at_sequence_level():
    """Targets drawn at T* = 0.5 from a fixed logits table: the head's T within 0.05 of 0.5."""
    torch.manual_seed(0)
    samples, kinds, lm_head = drawn_at(lambda kind: 0.5, 64)
    head = fit(ContinuousDecoder(16, level="sequence", hidden=16), samples, lm_head)
    with torch.no_grad():
        t = head.temperature(torch.stack([s["hidden"][0] for s in samples]))
    assert abs(t.mean().item() - 0.5) < 0.05, t.mean()


def test_recovers_two_planted_temperatures_at_token_level():
    """Two kinds of states, their tokens drawn at T* = 0.3 and 1.0: two temperatures."""
    torch.manual_seed(0)
    samples, kinds, lm_head = drawn_at(lambda kind: 0.3 if kind == "A" else 1.0, 128)
    head = fit(ContinuousDecoder(16, level="token", hidden=4), samples, lm_head, steps=150)
    with torch.no_grad():
        t = {k: head.temperature(torch.stack([s["hidden"] for s in samples if s["kind"] == k])).mean().item()
             for k in kinds}
    assert abs(t["A"] - 0.3) < 0.1 and abs(t["B"] - 1.0) < 0.1, t


def test_targets_are_each_prompts_best_response():
    s = lambda pid, r: {"id": pid, "reward": r}  # noqa: E731
    samples = [s("a", 0.1), s("a", 0.9), s("a", 0.9), s("b", 0.5), s("b", 0.5), s("c", 0.0), s("c", 1.0)]
    assert targets(samples) == [samples[1], samples[6]]  # the first of tied bests; b ties: none


def test_saves_loads_and_is_refused_where_a_discrete_head_is_needed(tmp_path):
    head = ContinuousDecoder(16, (0.0, 0.5, 1.0), "token", base_model="m")
    torch.nn.init.normal_(head.mlp[-1].weight)
    head.save(tmp_path / "c.pt")
    back = load_head(tmp_path / "c.pt", d_model=16, temperatures=(0.0, 0.5, 1.0), level="token")
    h = torch.randn(3, 16)
    assert isinstance(back, ContinuousDecoder) and torch.equal(back.temperature(h), head.eval().temperature(h))
    assert isinstance(load_head(tmp_path / "c.pt"), ContinuousDecoder)
    AdaptiveDecoder(16).save(tmp_path / "d.pt")
    assert isinstance(load_head(tmp_path / "d.pt"), AdaptiveDecoder)
    with pytest.raises(ValueError, match="continuous-temperature head"):
        AdaptiveDecoder.load(tmp_path / "c.pt")
    with pytest.raises(ValueError, match="not a continuous head"):
        ContinuousDecoder.load(tmp_path / "d.pt")
    with pytest.raises(ValueError, match="hidden size 16"):
        load_head(tmp_path / "c.pt", d_model=32)
    with pytest.raises(ValueError, match="token-level"):
        load_head(tmp_path / "c.pt", level="sequence")
    with pytest.raises(ValueError, match="compared with the temperatures"):
        load_head(tmp_path / "c.pt", temperatures=(0.0, 1.0))
    (tmp_path / "bad.pt").write_bytes((tmp_path / "c.pt").read_bytes()[:100])
    with pytest.raises(ValueError, match="damaged"):
        load_head(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="no fixed-temperature twin"):
        exact_ad_seq(ContinuousDecoder(16), {})
    pair = {"hidden": torch.randn(2, 16), "choices": [0, 0], "tokens": [1], "stop": None}
    with pytest.raises(ValueError, match="discrete"):
        pair_loss(ContinuousDecoder(16), [(pair, pair)])


def test_range_and_untrained_temperature():
    head = ContinuousDecoder(8, t_range=(0.05, 1.5))
    assert head.temperature(torch.zeros(8)).item() == pytest.approx(0.775)  # the middle, untrained
    torch.nn.init.constant_(head.mlp[-1].bias, 100.0)
    assert head.temperature(torch.zeros(8)).item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="temperature alone"):
        ContinuousDecoder(8, ((1.0, 0.9, None),))
