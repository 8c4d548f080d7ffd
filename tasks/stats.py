"""
Win rates and means with 95% bootstrap confidence intervals (percentile method, vectorised numpy).
"""
import numpy as np

def bootstrap_ci(values, n_boot=1000, seed=0, alpha=0.05):
    """(mean, lo, hi): the mean of values and the percentile bootstrap CI of the mean."""
    x = np.asarray(values, dtype=np.float64)
    assert x.ndim == 1 and len(x) > 0, "need a non-empty 1-D array"
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    boots = x[idx].mean(axis=1)  # (n_boot,) resampled means
    lo, hi = np.percentile(boots, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(x.mean()), float(lo), float(hi)

def win_rate(scores_a, scores_b, n_boot=1000, seed=0):
    """(rate, lo, hi): how often A beats B on the same prompts. Per prompt: win 1, tie 0.5, loss 0;
    rate is the mean over prompts, and lo, hi the 95% bootstrap CI (prompts resampled, pairs kept)."""
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    assert a.shape == b.shape, "paired scores: one per prompt on each side"
    wins = (a > b) + 0.5 * (a == b)
    return bootstrap_ci(wins, n_boot, seed)
