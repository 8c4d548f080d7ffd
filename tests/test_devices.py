"""Generation, the head and the losses on every device this machine has (the CPU, and "cuda" where an
NVIDIA GPU answers): what `python bench.py --gpu-check` runs first. On a GPU each result is compared
with the CPU's: the same tokens where the draws cannot part (greedy, or a margin far above rounding),
the same losses and gradients to float rounding."""
from pathlib import Path

import pytest
import torch

from adaptive_head import AdaptiveDecoder
from checkpoints import load_model
from evaluate import config_settings
from lpo import pair_loss, preference_pairs
from sample import config_rows, generate, generate_batch

FIXTURES = Path(__file__).parent / "fixtures"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CONFIGS = [(0.0, None, None), (0.8, None, None), (1.0, 0.9, None), (1.2, None, 0.1)]


@pytest.fixture(scope="module", params=DEVICES)
def on(request):
    """(device, the tiny checkpoint there in float32, the same on the CPU)."""
    cpu = load_model(FIXTURES / "llama3_untied")
    return request.param, load_model(FIXTURES / "llama3_untied", device=request.param), cpu


def prompts(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (int(k),), generator=g).tolist() for k in torch.randint(1, 12, (n,), generator=g)]


def head_on(d, level, device, seed=0):
    torch.manual_seed(seed)
    head = AdaptiveDecoder(d, CONFIGS, level=level)
    torch.nn.init.normal_(head.mlp[-1].weight, std=1.0)
    return head.eval().to(device)


@pytest.mark.parametrize("level", [None, "sequence", "token"])
def test_generation_on_the_device(on, level):
    device, model, cpu = on
    ps = prompts(6, seed=3)
    head = head_on(model.config.d_model, level, device) if level else None
    kw = dict(temperature=0.0, head=head, selection="greedy", seed=1, stop_ids=[7])
    g = generate_batch(model, ps, 10, keep_hidden=True, **kw)
    assert g.hidden.device.type == device and g.prompt_hidden.device.type == device
    assert generate(model, ps, 10, **kw) == (g.tokens, g.choices)  # the lesson, on the device
    compiled = generate_batch(model, ps, 10, compile=True, **kw)
    assert compiled.tokens == g.tokens and compiled.choices == g.choices
    if device != "cpu":  # greedy (temperature 0 or the head's greedy choice of a configuration): the CPU's
        on_cpu = generate_batch(cpu, ps, 10, keep_hidden=True, **dict(kw, head=head.to("cpu") if head else None))
        assert g.tokens == on_cpu.tokens and g.choices == on_cpu.choices
        torch.testing.assert_close(g.hidden.cpu(), on_cpu.hidden, atol=1e-3, rtol=1e-3)


def test_per_row_configurations_on_the_device(on):
    device, model, _ = on
    ps = prompts(4, seed=5)
    together = generate_batch(model, ps * len(CONFIGS), 8, seed=2, **config_rows(CONFIGS, len(ps)))
    for m, c in enumerate(CONFIGS):
        alone = generate_batch(model, ps, 8, seed=2, **config_settings(c))
        assert together.tokens[4 * m:4 * m + 4] == alone.tokens


@pytest.mark.parametrize("loss", ["lpo", "lpo_marginal", "nll"])
def test_losses_on_the_device_equal_the_cpus(on, loss):
    device, model, cpu = on
    head = head_on(model.config.d_model, "token", "cpu")
    g = generate_batch(cpu, prompts(4, seed=6) * 2, 6, head=head, seed=4, keep_hidden=True, explore=1.0)
    samples = [{"id": f"p{i % 4}", "kind": "k", "reward": float(len(t)) + 0.1 * i, "tokens": t,
                "choices": ks, "hidden": g.hidden[i, :len(ks)]} for i, (t, ks) in enumerate(zip(g.tokens, g.choices))]
    pairs = preference_pairs(samples, "all", "token")
    assert pairs
    values = {}
    for where, lm in (("cpu", cpu), (device, model)):
        h = head_on(model.config.d_model, "token", where)
        ref = head_on(model.config.d_model, "token", where, seed=1)
        value = pair_loss(h, pairs, loss, "token", beta=1.0, ref_head=ref, lm_head=lm.lm_head, device=where)
        value.backward()
        values[where] = (value.item(), [p.grad.cpu() for p in h.parameters()])
    assert values[device][0] == pytest.approx(values["cpu"][0], rel=1e-4, abs=1e-5)
    for a, b in zip(values[device][1], values["cpu"][1]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
