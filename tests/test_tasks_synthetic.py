"""The synthetic task: its rewards, computed by hand."""
from tasks import synthetic


def test_splits_balanced_and_disjoint():
    train, test = synthetic.prompts("train"), synthetic.prompts("test")
    assert not {e["prompt"] for e in train} & {e["prompt"] for e in test}
    for split in (train, test, synthetic.prompts("test", n=10)):
        kinds = [e["kind"] for e in split]
        assert kinds.count("copy") == kinds.count("varied") > 0


def test_copy_reward():
    ex = {"kind": "copy", "sentence": "The quiet fox paints the golden lamp."}
    assert synthetic.reward(ex, "The quiet fox paints the golden lamp.") == 1.0
    assert synthetic.reward(ex, "  the quiet fox paints the golden lamp") == 1.0  # case, spaces, final period
    assert synthetic.reward(ex, "The quiet fox paints the golden lamp. Done!") == 0.0
    assert synthetic.group_reward(ex, ["The quiet fox paints the golden lamp.", "no"]) == [1.0, 0.0]


def test_varied_reward_counts_same_first_words():
    ex = {"kind": "varied"}
    # answers by their first three words: a, a, a, b, c -> the three a's share with 2 of the 4 others
    rs = ["Paris is nice", "paris is nice!", "Paris is nice and big", "Rome", "Lima, Peru"]
    assert synthetic.group_reward(ex, rs) == [0.5, 0.5, 0.5, 1.0, 1.0]
    assert synthetic.group_reward(ex, ["x"] * 4) == [0.0] * 4


def test_better_temperature():
    assert (synthetic.better_temperature({"kind": "copy"}, 0.4)
            and not synthetic.better_temperature({"kind": "copy"}, 0.6))
    assert (synthetic.better_temperature({"kind": "varied"}, 0.6)
            and not synthetic.better_temperature({"kind": "varied"}, 0.4))
