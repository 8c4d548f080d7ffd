"""
The AdaptiveDecoder of *Adaptive Decoding via Latent Preference Optimization* (Dhuliawala et al.,
arXiv 2411.09661, its Fig. 1): a small MLP on top of a frozen LM that reads the LM's last hidden
state h_t (after the final norm) and outputs P(tau | h_t), a categorical distribution over K fixed
sampling temperatures. Only this module is trained; the LM never changes.

Beyond the paper ("a general approach to train discrete latent variables such as choices of
temperature", its abstract): each of the K choices may be a decoding configuration, a temperature
with an optional top-p and min-p truncation, e.g. (1.0, 0.9, None) for temperature 1 with top-p 0.9.
A plain temperature t is the configuration (t, None, None).

    level='token'    (AD_tok): a new tau_t is predicted from h_t before every generated token.
    level='sequence' (AD_seq): one tau, predicted from the last prompt token, for the whole response.

The head does not sample tokens itself: sample.py's choose_config turns P(tau | h) into a
temperature, and the token is drawn from softmax(W h / tau) (argmax when tau = 0).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # the paper's K = 6 grid; 0.0 means greedy
LEVELS = ("token", "sequence")


def as_config(c):
    """A temperature t, or a (temperature, top_p, min_p) tuple, as the tuple (None: no truncation)."""
    t, top_p, min_p = (c, None, None) if isinstance(c, (int, float)) else c
    return float(t), None if top_p is None else float(top_p), None if min_p is None else float(min_p)


def truncates(configs):
    """Whether any of the configurations truncates (has a top-p or a min-p): temperatures alone do not."""
    return any(as_config(c)[1:] != (None, None) for c in configs)


def config_name(c):
    """A configuration's name wherever it is reported: "tau=0.8", "tau=1/top_p=0.9", "tau=1.2/min_p=0.1"."""
    t, top_p, min_p = as_config(c)
    return (f"tau={t:g}" + (f"/top_p={top_p:g}" if top_p is not None else "")
            + (f"/min_p={min_p:g}" if min_p is not None else ""))


class AdaptiveDecoder(nn.Module):
    continuous = False  # a distribution over K choices (continuous_head.py's head predicts a temperature)

    def __init__(self, d_model, temperatures=DEFAULT_TEMPERATURES, level="token", hidden=None, base_model=""):
        super().__init__()
        self.configs = [as_config(c) for c in temperatures]  # K configurations (temperature, top_p, min_p)
        temps = tuple(t for t, _, _ in self.configs)
        if len(temps) == 0 or any(t < 0 or not math.isfinite(t) for t in temps):
            raise ValueError(f"temperatures must be a non-empty list of finite values >= 0, got {temps}")
        if len(set(self.configs)) < len(self.configs):
            raise ValueError(f"the configurations {[config_name(c) for c in self.configs]} hold a duplicate")
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        self.d_model, self.hidden = int(d_model), int(hidden or d_model)
        self.level, self.base_model = level, str(base_model)
        self.register_buffer("temperatures", torch.tensor(temps, dtype=torch.float32))
        # each choice's truncation, looked up per row by sample.choose_config (top-p 1 and min-p 0 keep
        # every token); not in the weights: the checkpoint keeps the configurations
        self.truncates = truncates(self.configs)
        self.register_buffer("top_p", torch.tensor([1.0 if p is None else p for _, p, _ in self.configs]),
                             persistent=False)
        self.register_buffer("min_p", torch.tensor([0.0 if m is None else m for _, _, m in self.configs]),
                             persistent=False)
        # the 3-layer MLP of the paper, ending in K logits (one per temperature)
        d, h, K = self.d_model, self.hidden, len(temps)
        self.mlp = nn.Sequential(
            nn.Linear(d, h), nn.GELU(),   # (..., d) -> (..., h)
            nn.Linear(h, h), nn.GELU(),
            nn.Linear(h, K),              # -> (..., K) logits over the temperatures
        )
        # Zero-init the last layer: the untrained head is exactly uniform over the K temperatures,
        # a neutral starting point for collecting the first round of samples (exploration).
        # Its gradient is not zero, so learning starts at once; earlier layers follow a step later.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, h):
        """h: (..., d_model) final hidden states of the frozen LM -> logits (..., K) over temperatures."""
        if h.shape[-1] != self.d_model:
            raise ValueError(f"adaptive head expects hidden size {self.d_model}, "
                             f"got input of shape {tuple(h.shape)}")
        w = self.mlp[0].weight
        return self.mlp(h.to(device=w.device, dtype=w.dtype))  # a bf16 LM can feed an fp32 head

    def log_probs(self, h):
        """log P(tau | h): (..., K)."""
        return F.log_softmax(self(h), dim=-1)

    def extra_repr(self):
        return f"level={self.level!r}, choices=({', '.join(self.names())}), base_model={self.base_model!r}"

    def names(self):
        """The K choices' names (config_name), in order."""
        return [config_name(c) for c in self.configs]

    # ---------------------------------------------------------------- checkpoints

    def save(self, path):
        """Save weights plus everything needed to rebuild the head and check it fits a model (the
        configurations too, where one truncates: a head of temperatures alone is saved as before)."""
        ckpt = {
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            "temperatures": self.temperatures.tolist(),
            "level": self.level,
            "base_model": self.base_model,
            "d_model": self.d_model,
            "hidden": self.hidden,
        }
        if self.truncates:
            ckpt["configs"] = [list(c) for c in self.configs]
        torch.save(ckpt, path)

    @classmethod
    def load(cls, path, d_model=None, base_model=None, temperatures=None, level=None, map_location="cpu"):
        """Rebuild a saved head (in eval mode). The optional arguments describe what the caller will
        run it with; a head that does not fit is refused with a ValueError saying why."""
        try:
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise FileNotFoundError(f"adaptive head checkpoint not found: {path}") from None
        except Exception as e:  # not its message: PyTorch's advice to load untrusted files unsafely
            raise ValueError(f"could not read adaptive head checkpoint {path} ({type(e).__name__}): the "
                             "file is damaged or not a head; delete it (train.py makes it again)") from None
        if isinstance(ckpt, dict) and ckpt.get("kind") == "continuous":
            raise ValueError(f"{path} is a continuous-temperature head (continuous_head.py), not a distribution over "
                             "K choices; this needs an AdaptiveDecoder (train.py without --head continuous)")
        keys = ("state_dict", "temperatures", "level", "base_model", "d_model", "hidden")
        if not isinstance(ckpt, dict) or any(k not in ckpt for k in keys):
            raise ValueError(f"{path} is not an adaptive head checkpoint (expected keys {keys})")
        trained_on = ckpt["base_model"] or "an unnamed model"
        if d_model is not None and int(d_model) != ckpt["d_model"]:
            raise ValueError(f"head trained on {trained_on} (hidden size {ckpt['d_model']}) cannot run on a "
                             f"model with hidden size {d_model}; train a head for this model")
        if base_model and ckpt["base_model"] and base_model != ckpt["base_model"]:
            raise ValueError(f"head {path} was trained on {ckpt['base_model']!r} but the model is "
                             f"{base_model!r}; train a head for this model")
        if level is not None and level != ckpt["level"]:
            raise ValueError(f"head {path} is a {ckpt['level']}-level head, not {level}-level; "
                             "use another out_dir or the head's level")
        try:
            configs = [as_config(c) for c in ckpt.get("configs", ckpt["temperatures"])]
        except (TypeError, ValueError):
            raise ValueError(f"{path} holds damaged configurations; delete it (train.py makes it again)") from None
        want = None if temperatures is None else [as_config(c) for c in temperatures]
        if want is not None and not same_configs(want, configs):
            kind = "configurations" if truncates(configs + want) else "temperatures"
            names = lambda cs: ", ".join(config_name(c).removeprefix("tau=") for c in cs)  # noqa: E731
            raise ValueError(f"head {path} was trained with the {kind} ({names(configs)}), not ({names(want)}); "
                             f"its outputs are a distribution over exactly those {kind}")
        head = cls(ckpt["d_model"], configs, ckpt["level"], ckpt["hidden"], ckpt["base_model"])
        try:
            head.load_state_dict(ckpt["state_dict"])
        except RuntimeError as e:
            raise ValueError(f"weights in {path} do not match its own configuration: {e}") from e
        if isinstance(map_location, (str, torch.device)):
            head = head.to(map_location)
        return head.eval()


def same_configs(a, b):
    """Two lists of configurations alike, to float rounding (a saved value read back)."""
    close = lambda x, y: x == y or (x is not None and y is not None and abs(x - y) <= 1e-6)  # noqa: E731
    return len(a) == len(b) and all(close(x, y) for u, v in zip(a, b) for x, y in zip(u, v))
