"""
ConstrainedStories (the paper's experiment 3): a story from a title (titles and split from stories.py)
where every sentence must begin with a word starting with a given prefix ('Ab' by default).
Reward = constraint_score (fraction of sentences obeying the rule, in [0, 1])
         + QUALITY_WEIGHT * judge score when there is a judge (tasks.judge), else the constraint alone.
sentence_start_char_offsets() marks where each sentence's first word begins, so that
temperature_metrics can find the first token of every sentence (the paper's Fig. 5: AD_tok's
temperature there against elsewhere).
"""
import re

from tasks import stories
from tasks.judge import score_batch
from tasks.stats import bootstrap_ci

NAME = "constrained_stories"
CHAT = True
JUDGED = True  # scored by the judge: tasks.rewards batches its calls
PREFIX = "Ab"
# the judge's 1-9 score counts a quarter: the constraint is what the task tests, and the offline
# judge's scores of one title's stories differ by ~1 point whatever they are, noise that at full
# weight would decide most pairs (a story that obeys one more of 4 sentences gains 0.25)
QUALITY_WEIGHT = 0.25
REWARD = f"the share of sentences that obey the rule + {QUALITY_WEIGHT} x the judge's score"
PROMPT = ("Write a creative and coherent story with the following title. "
          "You must begin each sentence with a word that starts with '{prefix}'.\n\nTitle: {title}")


def format_prompt(title, prefix=PREFIX):
    return PROMPT.format(prefix=prefix, title=title)


def prompts(split="train", n=None, seed=0, prefix=PREFIX):
    return [dict(ex, id=f"{NAME}/{ex['title']}", task=NAME, prefix=prefix,
                 prompt=format_prompt(ex["title"], prefix))
            for ex in stories.prompts(split, n, seed)]


# -----------------------------------------------------------------------------
# sentence splitting

# words whose final "." never ends a sentence
ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "mt", "capt", "gen", "col",
                 "lt", "sgt", "rev", "fig", "approx", "e.g", "i.e", "u.s", "u.k", "a.k.a"}
ENDS = ".!?…"
CLOSERS = "\"'”’)]*_"  # may follow the end punctuation: 'Stop."' '(really!)' '**Done.**'
OPENERS = "\"'“‘([*_-—– #>"
WORD_RE = re.compile(r"[^\W_]")  # a letter or digit
LIST_RE = re.compile(r"\d+[.)]\s+")  # "1. " or "2) " before a list item


def _ends_sentence(text, start, i, j):
    ("""Does the punctuation run text[i:j] (end marks, then closers) followed by whitespace """
     """end the sentence?""")
    marks = text[i:j].rstrip(CLOSERS)
    word = text[start:i].split()[-1].lstrip(OPENERS).lower() if text[start:i].split() else ""
    if marks == ".":
        if word in ABBREVIATIONS:
            return False                          # "Mr. Abbot", "e.g. abacus", "the U.S. Army"
        if len(word) == 1 and word.isalpha() and text[i - 1].isupper():
            return False                          # an initial: "J. R. Abbot"
        if word.isdigit() and text[start:i].strip() == word:
            return False                          # a list number: "1. Abandon ship"
    k = j
    while k < len(text) and (text[k].isspace() or text[k] in OPENERS) and text[k] != "\n":
        k += 1
    if k == len(text) or text[k] == "\n":
        return True
    if "..." in marks or "…" in marks or len(text[i:j]) > len(marks):
        # after an ellipsis or a closing quote, only a capitalised word starts a new sentence:
        # 'Wait... what?' and '"Stop!" he said.' stay one sentence
        return text[k].isupper() or text[k].isdigit()
    return True


def sentence_spans(text):
    """(start, end) character spans of the sentences of text. Boundaries: a newline (lines and paragraphs
    always end a sentence), or end punctuation .!?… (plus closing quotes/brackets) followed by whitespace,
    except after abbreviations, initials, list numbers, and ellipses/quotes followed by a lowercase word.
    Spans are stripped of surrounding whitespace; spans without a letter or digit are dropped."""
    cuts, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\n":
            cuts.append((start, i))
            start = i = i + 1
        elif text[i] in ENDS:
            j = i
            while j < len(text) and text[j] in ENDS:
                j += 1
            while j < len(text) and text[j] in CLOSERS:
                j += 1
            if (j == len(text) or text[j].isspace()) and _ends_sentence(text, start, i, j):
                cuts.append((start, j))
                start = j
            i = j
        else:
            i += 1
    cuts.append((start, len(text)))
    spans = []
    for s, e in cuts:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if WORD_RE.search(text, s, e):
            spans.append((s, e))
    return spans


def split_sentences(text):
    return [text[s:e] for s, e in sentence_spans(text)]


def _word_start(text, s, e):
    """Offset of the first word in text[s:e], skipping opening quotes/brackets/markdown and a list number."""
    k = WORD_RE.search(text, s, e).start()
    m = LIST_RE.match(text, k, e)
    if m and WORD_RE.search(text, m.end(), e):
        k = WORD_RE.search(text, m.end(), e).start()
    return k


def sentence_start_char_offsets(text):
    """For each sentence of split_sentences(text), the offset in text of its first word's first character
    (opening quotes, brackets, markdown and list numbers skipped). The token containing that character
    is the sentence's first word token."""
    return [_word_start(text, s, e) for s, e in sentence_spans(text)]


def first_words(text):
    """The first word of each sentence of text."""
    return [re.match(r"[\w'’-]*", text[k:]).group(0) for k in sentence_start_char_offsets(text)]


def constraint_score(text, prefix=PREFIX):
    """Fraction of sentences whose first word starts with prefix (case-insensitive); 0.0 for no sentence."""
    words = first_words(text)
    if not words:
        return 0.0
    return sum(w.lower().startswith(prefix.lower()) for w in words) / len(words)


def group_reward(example, responses, judge):
    """Rewards of the N responses to one prompt: constraint_score + QUALITY_WEIGHT * the judge's
    score (with a judge; without, the constraint alone), the judge run on all N in one batch."""
    prefix = example.get("prefix", PREFIX)
    rewards = [constraint_score(r, prefix) for r in responses]
    if judge is not None:
        quality = score_batch(judge, [example["prompt"]] * len(responses), responses)
        rewards = [r + QUALITY_WEIGHT * q for r, q in zip(rewards, quality)]
    return rewards


def group_metrics(example, responses, rewards, judge=None):
    """Evaluation: the constraint and the story's quality (the judge) apart, as the paper reports
    them; the quality is what the reward holds beyond the constraint (the judge is not run again)."""
    prefix = example.get("prefix", PREFIX)
    constraint = [constraint_score(r, prefix) for r in responses]
    m = {"constraint": sum(constraint) / len(responses)}
    if judge is not None:
        m["quality"] = sum((r - c) / QUALITY_WEIGHT for r, c in zip(rewards, constraint)) / len(responses)
    return m


def temperature_metrics(examples, samples, tok, level):
    """The paper's Fig. 5: AD_tok's mean temperature on the first token of each sentence (where the
    constraint is decided) and on the other tokens, over all of AD's samples; and the difference
    within a response (sentence starts minus the rest) averaged over the responses that have both,
    with a 95% bootstrap interval over those responses."""
    if level != "token":
        return {}
    first, other, diffs = [], [], []
    for s in samples:
        text = tok.decode(s["tokens"])
        starts = set(sentence_start_char_offsets(text))
        begin, mine = 0, ([], [])
        for i, tau in enumerate(s["temperatures"][:len(s["tokens"])]):
            end = len(tok.decode(s["tokens"][:i + 1]))  # token i wrote the characters begin..end
            mine[0 if any(begin <= o < end for o in starts) else 1].append(tau)
            begin = end
        first += mine[0]
        other += mine[1]
        if mine[0] and mine[1]:
            diffs.append(sum(mine[0]) / len(mine[0]) - sum(mine[1]) / len(mine[1]))
    m = {"mean temperature on the first token of a sentence": sum(first) / max(len(first), 1),
         "mean temperature on the other tokens": sum(other) / max(len(other), 1)}
    if diffs:  # (mean, lo, hi)
        m[f"temperature on sentence starts minus the rest, per response ({len(diffs)}) [95% CI]"] = \
            bootstrap_ci(diffs)
    return m
