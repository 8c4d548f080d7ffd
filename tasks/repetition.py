"""
Reducing repetitions (the paper's experiment 1): the model continues a WikiText-2 passage for a fixed
number of tokens (plain LM continuation, no chat template); greedy decoding tends to loop.
The continuation length is the command line's --max_new_tokens (train.py, evaluate.py).
Reward = -(fraction of repeated 3-grams in the continuation).
Splits: train = WikiText-2 valid.txt, test = WikiText-2 test.txt (tokenized WikiText-2, <unk> for rare words).
"""
import re

from tasks.data import data_path, read_lines, subsample

NAME = "repetition"
CHAT = False          # the prompt is raw text to continue, not a user message
LOWER_IS_BETTER = {"repeated 3-grams %"}  # metrics where AD wins a prompt by having less
REWARD = "minus the fraction of repeated word 3-grams"
N_WORDS = 48          # passage length in words
FILES = {"train": "wikitext-2/valid.txt", "test": "wikitext-2/test.txt"}


def clean(line):
    """Undo WikiText's tokenization: ' @-@ ' -> '-', ' @,@ ' -> ',', ' @.@ ' -> '.', and glue punctuation."""
    s = line.strip().replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    s = re.sub(r" ([,.;:!?%)\]])", r"\1", s)          # "word ," -> "word,"
    s = re.sub(r"([(\[]) ", r"\1", s)                   # "( word" -> "(word"
    s = re.sub(r" ('s|'re|'ve|'m|'ll|'d|n't)\b", r"\1", s)
    s = re.sub(r'" ([^"]*?) "', r'"\1"', s)             # '" lobster red "' -> '"lobster red"'
    return s


def passage(line, n_words=N_WORDS):
    """The paragraph's first n_words-word window that starts a sentence and holds no <unk>, or None."""
    words = clean(line).split()
    starts = [0] + [i + 1 for i, w in enumerate(words) if w.endswith((".", "!", "?"))]
    for s in starts:
        window = words[s:s + n_words]
        if len(window) == n_words and not any("<unk>" in w for w in window):
            return " ".join(window)
    return None


def prompts(split="train", n=None, seed=0, n_words=N_WORDS):
    """One passage per WikiText paragraph (headings ' = ... = ' and empty lines skipped)."""
    lines = read_lines(data_path(FILES[split]))
    examples = []
    for i, line in enumerate(lines):
        s = line.strip()
        if not s or (s.startswith("=") and s.endswith("=")):
            continue
        p = passage(s, n_words)
        if p:
            examples.append(dict(id=f"{NAME}/{split}/{i}", task=NAME, prompt=p))
    return subsample(examples, n, seed)


def repeated_ngram_fraction(seq, n=3):
    """Fraction of the n-grams of seq that repeat an n-gram occurring earlier in seq.

    seq: a list of tokens (ids or strings), or a str (split on whitespace into words).
    With L = len(seq), there are L-n+1 (overlapping) n-grams g_i = seq[i:i+n]; g_i counts as a repeat
    when g_i == g_j for some j < i. Result = (#repeats) / (L-n+1), in [0, 1); 0.0 when L < n.
    E.g. "a b c a b c" has 4 trigrams (abc, bca, cab, abc), one repeat -> 0.25.
    """
    if isinstance(seq, str):
        seq = seq.split()
    seq = list(seq)
    grams = [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]
    if not grams:
        return 0.0
    return (len(grams) - len(set(grams))) / len(grams)  # every occurrence after the first is a repeat


def reward(example, response, n=3):
    """-(repeated n-gram fraction of the continuation's words). Higher is better, 0 is best."""
    return -repeated_ngram_fraction(response, n)


def group_metrics(example, responses, rewards, judge=None):
    """Evaluation: % of repeated 3-grams, the paper's metric (lower is better; reward = -fraction)."""
    return {"repeated 3-grams %": -100 * sum(rewards) / len(rewards)}


def temperature_metrics(examples, samples, tok, level):
    """How often AD picks a temperature above 0, in the unit it picks in: per token for AD_tok (the
    paper: a non-greedy temperature for 94% of its AD_tok's choices), per response for AD_seq."""
    taus = [t for s in samples for t in (s["temperatures"][:len(s["tokens"])] if level == "token"
                                         else s["temperatures"][:1])]
    per = "token" if level == "token" else "response"
    return {f"non-greedy choices % (per {per})": 100 * sum(t > 0 for t in taus) / max(len(taus), 1)}
