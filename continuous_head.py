"""
A rival of the paper's AdaptiveDecoder, in the spirit of AutoDeco (arXiv 2510.26697): instead of a
distribution over K fixed temperatures, a head that predicts the temperature itself, T(h), from the
frozen LM's final hidden state h, trained by likelihood instead of preferences.

    ContinuousDecoder   the head: T(h) in [T_MIN, T_MAX], per response (from the last prompt token's
                        state) or per token; it loads, saves and generates like the AdaptiveDecoder
    targets             a round's samples -> each prompt's best response (rejection sampling)
    ce_loss             -log softmax(W h_t / T)[y_t] over the targets' tokens (W: the LM head)
    load_head           either kind of head from its file (sample.py and evaluate.py take both)

Training: the cross-entropy of target tokens under the temperature-scaled softmax, through T alone
(the LM is frozen: W h_t comes from the stored hidden states, one matmul, the LM is not run again).
The targets are each training prompt's best response among its collected samples, the same samples
LPO's pairs are made of, the first of tied bests, none where all responses tie. Why not the task's
reference answer (arithmetic's number, GSM8K's solution): only three of the tasks have one, its hidden
states were never computed (the LM would have to run over it), and a reference the model would not
write (a bare "12") teaches the temperature of a text it does not produce. What the loss learns: the
temperature under which the best responses were most likely, so T follows the temperatures the best
responses were drawn at, weighted by how many tokens they have; it sees the chosen response only,
never the rejected one (like the NLL baseline (d), unlike LPO).

The range: T = T_MIN + (T_MAX - T_MIN) sigmoid(z), 0.05 to 1.5, which holds the paper's grid except 0
(greedy is T -> 0 for a softmax: 0.05 makes the argmax's probability near 1 wherever it leads by more
than ~0.25 in logits). No top-p head: AutoDeco's top-p comes with a differentiable soft truncation
that is not the top-p generation uses; with temperature alone the loss is exactly the likelihood of
what the sampler draws. A continuous T has no fixed-temperature twin, so AD_seq with this head has no
exact evaluator (evaluate.exact_ad_seq): it is evaluated by generating.
"""
import math

import torch
import torch.nn as nn

from adaptive_head import DEFAULT_TEMPERATURES, LEVELS, AdaptiveDecoder, as_config, config_name, same_configs
from lpo import stack_side

T_MIN, T_MAX = 0.05, 1.5


class ContinuousDecoder(nn.Module):
    continuous = True  # sample.choose_config: the head's output is the temperature itself
    truncates = False

    def __init__(self, d_model, temperatures=DEFAULT_TEMPERATURES, level="sequence", hidden=None, base_model="",
                 t_range=(T_MIN, T_MAX)):
        """As the AdaptiveDecoder's, temperatures: the run's grid (the fixed temperatures it is compared with)."""
        super().__init__()
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        self.configs = [as_config(t) for t in temperatures]  # the fixed temperatures it is compared with
        if any(c[1:] != (None, None) for c in self.configs):
            raise ValueError("a continuous head predicts a temperature alone; give temperatures, not configurations")
        self.d_model, self.hidden, self.level, self.base_model = int(d_model), int(hidden or d_model), level, str(base_model)
        self.t_min, self.t_max = map(float, t_range)
        if not 0 < self.t_min < self.t_max or not math.isfinite(self.t_max):
            raise ValueError(f"the temperature range must be 0 < min < max, got {t_range}")
        # reports count its temperatures at the nearest of these (the run's grid)
        self.register_buffer("temperatures", torch.tensor([t for t, _, _ in self.configs]), persistent=False)
        d, h = self.d_model, self.hidden
        self.mlp = nn.Sequential(nn.Linear(d, h), nn.GELU(), nn.Linear(h, h), nn.GELU(),
                                 nn.Linear(h, 1))  # (..., d) -> (..., 1)
        nn.init.zeros_(self.mlp[-1].weight)  # untrained: the middle of the range for every state
        nn.init.zeros_(self.mlp[-1].bias)

    def temperature(self, h):
        """h: (..., d_model) final hidden states of the frozen LM -> T(h) (...,) in [t_min, t_max]."""
        if h.shape[-1] != self.d_model:
            raise ValueError(f"continuous head expects hidden size {self.d_model}, got input of shape {tuple(h.shape)}")
        w = self.mlp[0].weight
        z = self.mlp(h.to(device=w.device, dtype=w.dtype))[..., 0]
        return self.t_min + (self.t_max - self.t_min) * torch.sigmoid(z.float())

    def names(self):
        return [config_name(c) for c in self.configs]

    def nearest(self, temps):
        """The index of the grid temperature nearest each of temps (a list): how reports count them."""
        grid = self.temperatures.tolist()
        return [min(range(len(grid)), key=lambda k: abs(grid[k] - t)) for t in temps]

    def extra_repr(self):
        return f"level={self.level!r}, T in [{self.t_min:g}, {self.t_max:g}], base_model={self.base_model!r}"

    def save(self, path):
        torch.save({"kind": "continuous", "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
                    "temperatures": [t for t, _, _ in self.configs], "level": self.level, "base_model": self.base_model,
                    "d_model": self.d_model, "hidden": self.hidden, "t_range": [self.t_min, self.t_max]}, path)

    @classmethod
    def load(cls, path, d_model=None, base_model=None, temperatures=None, level=None, map_location="cpu"):
        """Rebuild a saved continuous head (in eval mode); a ValueError says why one does not fit."""
        ckpt = read(path)
        keys = ("kind", "state_dict", "temperatures", "level", "base_model", "d_model", "hidden", "t_range")
        if not isinstance(ckpt, dict) or any(k not in ckpt for k in keys):
            raise ValueError(f"{path} is not a continuous head checkpoint (expected keys {keys})")
        if d_model is not None and int(d_model) != ckpt["d_model"]:
            raise ValueError(f"head {path} has hidden size {ckpt['d_model']}, the model {d_model}; train a head "
                             "for this model")
        if base_model and ckpt["base_model"] and base_model != ckpt["base_model"]:
            raise ValueError(f"head {path} was trained on {ckpt['base_model']!r} but the model is {base_model!r}")
        if level is not None and level != ckpt["level"]:
            raise ValueError(f"head {path} is a {ckpt['level']}-level head, not {level}-level")
        if temperatures is not None and not same_configs([as_config(t) for t in temperatures],
                                                         [as_config(t) for t in ckpt["temperatures"]]):
            raise ValueError(f"head {path} was compared with the temperatures {ckpt['temperatures']}, not "
                             f"{[as_config(t)[0] for t in temperatures]}")
        try:
            head = cls(ckpt["d_model"], ckpt["temperatures"], ckpt["level"], ckpt["hidden"], ckpt["base_model"],
                       ckpt["t_range"])
            head.load_state_dict(ckpt["state_dict"])
        except (RuntimeError, TypeError, ValueError) as e:
            raise ValueError(f"{path} is damaged ({e}); delete it (train.py makes it again)") from None
        if isinstance(map_location, (str, torch.device)):
            head = head.to(map_location)
        return head.eval()


def read(path):
    """A head file's contents, or one clear error (a missing file, a damaged one)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"head checkpoint not found: {path}") from None
    except Exception as e:  # not its message: PyTorch's advice to load untrusted files unsafely
        raise ValueError(f"could not read head checkpoint {path} ({type(e).__name__}): the file is damaged or "
                         "not a head; delete it (train.py makes it again)") from None


def load_head(path, **kw):
    """A saved head of either kind: the paper's AdaptiveDecoder or a ContinuousDecoder (its file says
    which); kw: their load's checks."""
    ckpt = read(path)
    kind = ckpt.get("kind") if isinstance(ckpt, dict) else None
    return (ContinuousDecoder if kind == "continuous" else AdaptiveDecoder).load(path, **kw)


def targets(samples):
    """A round's training items: each prompt's best response (the first of tied bests), in the order the
    prompts first appear; a prompt whose responses all tie gives none (nothing says which is better)."""
    groups = {}
    for s in samples:
        groups.setdefault(s["id"], []).append(s)
    return [max(g, key=lambda s: s["reward"]) for g in groups.values()
            if max(s["reward"] for s in g) > min(s["reward"] for s in g)]


def ce_loss(head, samples, lm_head, device="cpu"):
    """The mean over the targets' tokens (each response's tokens and its stop token) of
    -log softmax(W h_t / T)[y_t], T = T(h_0) for a sequence-level head (the last prompt token's
    state, stored as each sample's first), T(h_t) for a token-level one. samples: as train.py collects."""
    side = stack_side([(s,) for s in samples], 0, device)
    with torch.no_grad():
        logits = lm_head(side.hidden.to(lm_head.weight.dtype)).float()        # (B, T, V) W h_t
    t = head.temperature(side.hidden[:, :1] if head.level == "sequence" else side.hidden)  # (B, 1) or (B, T)
    z = logits / t[..., None]
    logp = z.gather(-1, side.tokens.long().unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z, dim=-1)  # (B, T)
    mask = side.counts
    return -torch.where(mask, logp, torch.zeros_like(logp)).sum() / mask.sum().clamp(min=1)
