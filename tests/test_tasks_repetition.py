# The repeated 3-gram metric, worked out by hand, and the WikiText-2 passages.
import os

import pytest

from tasks import repetition
from tasks.repetition import repeated_ngram_fraction as rep

def test_no_repeats():
    # "the cat sat on the mat": trigrams (the cat sat) (cat sat on) (sat on the) (on the mat)
    # -> 4 trigrams, all different -> 0/4. ("the" repeats as a word, but no trigram does.)
    assert rep("the cat sat on the mat") == 0.0

def test_period_two_loop():
    # "a b c a b c": trigrams abc, bca, cab, abc -> 4 trigrams; the 4th repeats the 1st -> 1/4
    assert rep("a b c a b c") == 0.25

def test_greedy_style_loop():
    # "I like it . I like it . I like it ." has 12 words -> 10 trigrams:
    #  1 (I like it)  2 (like it .)  3 (it . I)  4 (. I like)      <- all new
    #  5 (I like it)  6 (like it .)  7 (it . I)  8 (. I like)      <- repeats of 1-4
    #  9 (I like it) 10 (like it .)                                 <- repeats of 1-2
    # -> 6 repeats / 10 trigrams
    assert rep("I like it . I like it . I like it .") == pytest.approx(0.6)

def test_overlapping_and_counts_every_later_occurrence():
    # "x x x x x": trigrams (x x x) x3; the 2nd and 3rd repeat the 1st -> 2/3
    assert rep("x x x x x") == pytest.approx(2 / 3)
    # "a b c d a b c e a b c": 11 words, 9 trigrams:
    # abc bcd cda dab abc(rep) bce cea eab abc(rep) -> 2/9
    assert rep("a b c d a b c e a b c") == pytest.approx(2 / 9)

def test_token_ids_short_and_n():
    assert rep([5, 6, 7, 5, 6, 7, 5]) == pytest.approx(2 / 5)  # 567 675 756 567(rep) 675(rep)
    assert rep([1, 2]) == 0.0 and rep([]) == 0.0 and rep("") == 0.0   # fewer words than n
    # bigrams of "a b a b": ab ba ab(rep) -> 1/3
    assert rep("a b a b", n=2) == pytest.approx(1 / 3)
    assert repetition.reward({}, "a b c a b c") == -0.25
    assert repetition.reward({}, "all new words here") == 0.0

def test_clean():
    line = ' The red @-@ tipped claw , weighing 2 @.@ 5 kg ( 5 @,@ 500 g ) , is " lobster red " . '
    assert repetition.clean(line) == 'The red-tipped claw, weighing 2.5 kg (5,500 g), is "lobster red".'
    assert repetition.passage("Too short .", n_words=5) is None
    # the window skips the first sentence, which has an <unk>
    got = repetition.passage("A <unk> here . One two three four five six .", n_words=5)
    assert got == "One two three four five"

WIKITEXT = os.path.join(os.environ.get("LPO_DATA_DIR", ""), "wikitext-2", "valid.txt")

@pytest.mark.skipif(not os.path.isfile(WIKITEXT),
                    reason="set LPO_DATA_DIR to a copy of the data (wikitext-2/valid.txt)")
def test_wikitext_prompts():
    exs = repetition.prompts("train")
    assert len(exs) > 200 and repetition.CHAT is False
    for e in exs:
        p = e["prompt"]
        assert len(p.split()) == repetition.N_WORDS
        assert "@" not in p and "<unk>" not in p and not p.startswith("=")
    assert exs[0]["prompt"].startswith("It is closely related to the American lobster, H. americanus.")
    test_texts = {e["prompt"] for e in repetition.prompts("test")}
    assert test_texts and not test_texts & {e["prompt"] for e in exs}
    assert len(repetition.prompts("test", n=10, seed=3)) == 10

def test_bad_utf8_names_the_line(tmp_path, monkeypatch):
    path = tmp_path / "wikitext-2" / "valid.txt"
    path.parent.mkdir()
    para = " ".join(f"w{i} ." for i in range(30))
    path.write_bytes(f" \n = Heading = \n {para}\n".encode() + b" The caf\xe9 opened in 1902 .\n")
    monkeypatch.setenv("LPO_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError) as e:
        repetition.prompts("train")
    assert str(e.value) == (f"{path}, line 4: not valid UTF-8 (byte 0xe9: invalid continuation byte); "
                            "expected UTF-8 text")
    path.write_text(f" \n = Heading = \r\n {para}\r {para}\n")  # valid: lines and ids as in text mode
    exs = repetition.prompts("train", n_words=20)
    assert [e["id"] for e in exs] == ["repetition/train/2", "repetition/train/3"]


def test_non_greedy_share_in_the_unit_of_the_choice():
    # the paper's "non-greedy in 94%" is a share of AD_tok's temperature choices: per token here too
    samples = [{"tokens": [5, 6, 7], "temperatures": [0.0, 0.8, 1.0, 0.0]},   # the stop token's step last
               {"tokens": [5], "temperatures": [0.0, 1.0]}]
    assert repetition.temperature_metrics([], samples, None, "token") == {
        "non-greedy choices % (per token)": 50.0}
    assert repetition.temperature_metrics([], samples, None, "sequence") == {
        "non-greedy choices % (per response)": 0.0}
