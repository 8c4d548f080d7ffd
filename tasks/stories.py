"""
Stories: creative writing from a title (the "Stories" part of UltraMathStories). The titles
(story_titles.txt, one a line) are this project's own; a hash of each title puts ~20% of them in
the test split.

Reward of a story (group_reward scores a title's stories in one batch):
    judge score (a reward model plugged in through tasks.judge)
    + SURPRISE_WEIGHT * surprise,   surprise = S                            if S <= NOISE
                                             = NOISE - NOISE_SLOPE (S - NOISE) above it,
where S is the policy LM's own surprisal of the story: the mean -log p of its tokens at
temperature 1, in nats per token (recorded by generation as it samples; tasks.judge.surprisal
computes it for any text).
Why: the paper's AD learns high temperatures for stories, so its reward model (ArmoRM-8B) must
prefer what higher temperatures bring there, variety and originality. The offline judge
(SmolLM2-135M rating stories 1-9) does not: its mean scores hardly change with the temperature.
S measures how far a story is from the one the model would write anyway (its greedy story: S ~0.8
nats), and rises with the temperature (~1.6 at 0.8); but past NOISE the model's own stories break
down (invented words, other scripts, replacement characters), so there the reward falls steeply
and noise cannot win. The reward depends on the story alone, never on the other samples (a reward
that compares a story with its siblings changes with the temperatures they were drawn at, so it
moves as the head learns). The constants were chosen on 24 training titles x 4 stories at each
temperature (the README): the reward rises from 0 to 0.8 and falls at 1.0, where fluent and
broken stories mix. Set SURPRISE_WEIGHT = 0 for the judge alone (the paper's reward).
"""
from pathlib import Path

from tasks.judge import score_batch
from tasks.data import is_test, subsample

NAME = "stories"
CHAT = True
JUDGED = True  # scored by the judge: tasks.rewards batches its calls
EVAL_SAMPLES = 2  # stories per title and method in evaluation: their mean reward is the title's
SURPRISE_WEIGHT = 2.0  # judge points per nat, on the offline judge's 1-9 scale
NOISE = 2.5            # nats per token: above it, more and more of the model's stories break down
NOISE_SLOPE = 4.0      # how fast the surprise term falls above NOISE
REWARD = (f"the judge's score + {SURPRISE_WEIGHT:g} x surprise (the LM's surprisal of the story, in nats per "
          f"token, falling above {NOISE:g})")
PROMPT = "Write a short story with the title: {title}"
# the titles, one a line, in a fixed order (shipped next to this file)
TITLES = (Path(__file__).parent / "story_titles.txt").read_text(encoding="utf-8").strip().splitlines()


def format_prompt(title):
    return PROMPT.format(title=title)


def prompts(split="train", n=None, seed=0, prompt=PROMPT):
    assert split in ("train", "test"), split
    examples = [dict(id=f"{NAME}/{t}", task=NAME, prompt=prompt.format(title=t), title=t)
                for t in TITLES if is_test(t) == (split == "test")]
    return subsample(examples, n, seed)


def surprise(s):
    """The surprise term of the reward, from the surprisal s: rises with s up to NOISE, then falls."""
    return s if s <= NOISE else NOISE - NOISE_SLOPE * (s - NOISE)


def group_reward(example, responses, judge):
    """The stories for one title: the judge's scores (one batch) + SURPRISE_WEIGHT * surprise."""
    scores = score_batch(judge, [example["prompt"]] * len(responses), responses)
    if SURPRISE_WEIGHT == 0:
        return scores
    if not hasattr(judge, "surprisal"):
        raise RuntimeError("the story reward needs the LM's surprisal of a story: pass "
                           "judge=tasks.judge.load(...) (a Judge), or set stories.SURPRISE_WEIGHT = 0")
    surprisal = judge.surprisal([example["prompt"]] * len(responses), responses)
    return [j + SURPRISE_WEIGHT * surprise(x) for j, x in zip(scores, surprisal)]


def group_metrics(example, responses, rewards, judge=None):
    """Evaluation: the judge's score and the surprisal apart (remembered by the Judge: not run again)."""
    if judge is None or not hasattr(judge, "surprisal"):
        return {}
    surprisal = judge.surprisal([example["prompt"]] * len(responses), responses)
    judged = [r - SURPRISE_WEIGHT * surprise(x) for r, x in zip(rewards, surprisal)]
    return {"judge": sum(judged) / len(judged), "surprisal": sum(surprisal) / len(surprisal)}
