# Bootstrap win rates and mean CIs on synthetic data with known answers.
import numpy as np
import pytest

from tasks.stats import bootstrap_ci, win_rate

def test_known_win_rate():
    # A beats B on exactly 70% of 1000 prompts and loses on the rest
    rng = np.random.default_rng(1)
    b = rng.normal(size=1000)
    a = b + np.where(np.arange(1000) < 700, 1.0, -1.0)
    rate, lo, hi = win_rate(a, b)
    assert rate == pytest.approx(0.7)
    assert lo < 0.7 < hi
    # binomial s.e. sqrt(.7*.3/1000) = 0.0145 -> the 95% CI is about +-0.028
    assert 0.02 < 0.7 - lo < 0.04 and 0.02 < hi - 0.7 < 0.04

def test_ties_and_sides():
    rate, lo, hi = win_rate([1, 2, 3], [1, 2, 3])
    assert (rate, lo, hi) == (0.5, 0.5, 0.5)
    assert win_rate([1, 0, 5, 5], [0, 1, 5, 5])[0] == 0.5     # win, loss, tie, tie -> (1+0+.5+.5)/4
    assert win_rate([2, 2, 2, 0], [1, 1, 1, 1])[0] == 0.75
    ra, rb = win_rate([3, 1, 2], [1, 2, 2])[0], win_rate([1, 2, 2], [3, 1, 2])[0]
    assert ra + rb == 1.0                                       # swapping sides mirrors the rate

def test_paired_not_pooled():
    # A is B + 0.01 on every prompt: a paired test says A always wins, whatever the spread across prompts
    b = np.linspace(-100, 100, 50)
    assert win_rate(b + 0.01, b) == (1.0, 1.0, 1.0)

def test_ci_covers_truth():
    # 200 repeated experiments of 300 prompts with true win prob 0.6: the CI covers 0.6 ~95% of the time
    rng = np.random.default_rng(0)
    covered = 0
    for i in range(200):
        wins = rng.random(300) < 0.6
        _, lo, hi = win_rate(wins.astype(float), np.zeros(300) + 0.5, n_boot=500, seed=i)
        covered += lo <= 0.6 <= hi
    assert 0.88 <= covered / 200 <= 0.99

def test_deterministic_and_bootstrap_ci():
    x = np.random.default_rng(3).normal(2.0, 1.0, size=400)
    assert bootstrap_ci(x, seed=5) == bootstrap_ci(x, seed=5)
    m, lo, hi = bootstrap_ci(x)
    assert m == pytest.approx(x.mean()) and lo < m < hi
    assert hi - lo == pytest.approx(2 * 1.96 / 20, rel=0.2)   # ~ 2 * 1.96 * sd / sqrt(n)
    with pytest.raises(AssertionError):
        win_rate([1, 2], [1, 2, 3])
