# Sentence splitting and the 'Ab' constraint on tricky hand-written stories.
import pytest

from tasks import constrained_stories as cs, stories

@pytest.mark.parametrize("text, expected", [
    # quotes: a closing quote stays with its sentence; a lowercase dialogue tag does not start a new one
    ('He said, "Stop." Then he left.', ['He said, "Stop."', 'Then he left.']),
    ('"Stop!" he said. Abby ran.', ['"Stop!" he said.', 'Abby ran.']),
    ('"Abandon ship!" Abby shouted. ‘Absolutely.’ Abe agreed.',
     ['"Abandon ship!"', 'Abby shouted.', '‘Absolutely.’', 'Abe agreed.']),
    # abbreviations and initials
    ('Mr. Abbot met Dr. Able in the U.S. Army. Absolutely true.',
     ['Mr. Abbot met Dr. Able in the U.S. Army.', 'Absolutely true.']),
    ('Abby likes tools, e.g. hammers. J. R. Abbot agreed.',
     ['Abby likes tools, e.g. hammers.', 'J. R. Abbot agreed.']),
    # ellipses: mid-sentence before a lowercase word, a boundary before a capital
    ('Wait... what? Abel waited... Nothing happened.',
     ['Wait... what?', 'Abel waited...', 'Nothing happened.']),
    ('Abel paused… Above him, birds.', ['Abel paused…', 'Above him, birds.']),
    # ! ? runs and decimals
    ('It cost 3.5 dollars. Abacus! Absurd?! Yes.', ['It cost 3.5 dollars.', 'Abacus!', 'Absurd?!', 'Yes.']),
    # newlines and paragraphs always end a sentence; blank lines vanish; list numbers are not sentences
    ('The Abbey\n\nAbove the hills lived a monk.\nAbbots came\n\n1. Abide by rules. 2. Abstain.',
     ['The Abbey', 'Above the hills lived a monk.', 'Abbots came', '1. Abide by rules.', '2. Abstain.']),
    ('  Abe ran.   About time!  ', ['Abe ran.', 'About time!']),
    ('', []),
    ('... !', []),
])
def test_split_sentences(text, expected):
    assert cs.split_sentences(text) == expected

def test_offsets_point_at_first_words():
    text = '"Abandon ship!" Abby shouted.\n\n1. Abide. **Above** all, (abstain).'
    offs = cs.sentence_start_char_offsets(text)
    #        "Abandon    Abby     Abide    Above     abstain is inside the 'Above' sentence
    assert offs == [1, 16, 34, 43]
    assert [text[o:o + 3] for o in offs] == ["Aba", "Abb", "Abi", "Abo"]
    assert cs.first_words(text) == ["Abandon", "Abby", "Abide", "Above"]

@pytest.mark.parametrize("text, prefix, score", [
    ("Abby ran. Above, birds flew. The end.", "Ab", 2 / 3),
    # 3 sentences: '"Absolutely not!" he said.' (Ab) | 'Abel agreed... and left.' (Ab) | 'Nobody cared.'
    ('"Absolutely not!" he said. Abel agreed... and left. Nobody cared.', "Ab", 2 / 3),
    ("abruptly, it rained. ABOVE us, thunder. Abc.", "ab", 1.0),                       # case-insensitive
    ("Mr. Abbot came. Dr. Able left.", "Ab", 0.0),                                  # first words are Mr, Dr
    ("Ab.", "Ab", 1.0),
    ("", "Ab", 0.0),
    ("Baby ran. Cab fare.", "Ab", 0.0),                                             # must START with Ab
    ("Tom ran. Tina sat.", "T", 1.0),
])
def test_constraint_score(text, prefix, score):
    assert cs.constraint_score(text, prefix) == pytest.approx(score)

def test_prompts_and_reward():
    exs = cs.prompts("test", prefix="Ab")
    assert {e["title"] for e in exs} == {e["title"] for e in stories.prompts("test")}
    assert "begin each sentence with a word that starts with 'Ab'" in exs[0]["prompt"]
    assert exs[0]["title"] in exs[0]["prompt"] and exs[0]["task"] == "constrained_stories"
    assert "'Zo'" in cs.prompts("train", n=1, prefix="Zo")[0]["prompt"]
    ex = exs[0]
    assert cs.group_reward(ex, ["Abby ran. The end."], None) == [0.5]      # no judge: constraint only
    quarter = lambda ps, rs: [0.25 for _ in rs]
    # + quality
    assert cs.group_reward(ex, ["Abby ran. The end."], quarter) == [0.5 + cs.QUALITY_WEIGHT * 0.25]
    with pytest.raises(RuntimeError, match="judge"):
        stories.group_reward(stories.prompts("train", n=1)[0], ["Once..."], None)
    with pytest.raises(RuntimeError, match="surprisal"):  # a bare function gives no surprisal
        stories.group_reward(stories.prompts("train", n=1)[0], ["Once..."], quarter)


def test_group_metrics_split_the_reward():
    from tasks import constrained_stories
    ex = {"prompt": "p", "prefix": "Ab"}
    responses = ["Abby ran. Then she sat.", "Absolutely. Above all."]
    judge = lambda ps, rs: [3.0 if r.startswith("Abby") else 7.0 for r in rs]
    rewards = [constrained_stories.group_reward(ex, [r], judge)[0] for r in responses]  # 0.5 + w 3, 1.0 + w 7
    m = constrained_stories.group_metrics(ex, responses, rewards, judge)
    w = constrained_stories.QUALITY_WEIGHT
    assert rewards == [0.5 + w * 3.0, 1.0 + w * 7.0]
    assert m == {"constraint": 0.75, "quality": 5.0}
    assert constrained_stories.group_metrics(ex, responses, [0.5, 1.0], None) == {"constraint": 0.75}
    batches = []
    counting = lambda ps, rs: batches.append(len(rs)) or judge(ps, rs)
    # the same reward, one judge call
    assert constrained_stories.group_reward(ex, responses, counting) == rewards
    assert batches == [2]


class FakeJudge:
    """The judge's score 5 for every story, and the surprisals given."""
    def __init__(self, surprisal):
        self.s = surprisal

    def __call__(self, prompts, responses):
        return [5.0] * len(responses)

    def surprisal(self, prompts, responses):
        return [self.s[r] for r in responses]


def test_story_reward_by_hand():
    # the surprise term rises with the surprisal up to NOISE, then falls NOISE_SLOPE times as fast
    w, noise, slope = stories.SURPRISE_WEIGHT, stories.NOISE, stories.NOISE_SLOPE
    judge = FakeJudge({"greedy": 0.8, "warm": noise, "broken": noise + 0.5, "noise": 8.0})
    ex = stories.prompts("train", n=1)[0]
    rewards = stories.group_reward(ex, ["greedy", "warm", "broken", "noise"], judge)
    assert rewards == pytest.approx([5 + w * 0.8, 5 + w * noise, 5 + w * (noise - slope * 0.5),
                                     5 + w * (noise - slope * (8.0 - noise))])
    assert rewards[1] == max(rewards) and rewards[3] == min(rewards)   # noise cannot win
    # a story's reward is its own: the same story scores the same among any siblings
    assert stories.group_reward(ex, ["warm"], judge) == [rewards[1]]
    assert stories.group_reward(ex, ["greedy", "warm", "warm"], judge) == [rewards[0], rewards[1], rewards[1]]
    m = stories.group_metrics(ex, ["greedy", "warm"], rewards[:2], judge)
    assert m == pytest.approx({"judge": 5.0, "surprisal": (0.8 + noise) / 2})
