"""
Judges: the reward of the tasks scored by a model (stories, instructions, constrained_stories).
The paper scores them with a reward model (ArmoRM-Llama3-8B). A judge here is any function

    judge(prompts, responses) -> one float per pair, higher is better

batched, since a reward model is much faster on batches. load() makes one; train.py and
evaluate.py pass it to the tasks' group_reward (tasks.rewards):

    judge = load("offline", model, tok)                               # the LM itself rates responses
    judge = load("Skywork/Skywork-Reward-V2-Llama-3.2-1B", model, tok)  # a reward model

Two kinds ship here:
- RewardModel: a Hugging Face reward model of the LlamaForSequenceClassification kind (the
  Skywork-Reward family), run by model.py. ArmoRM's custom gating head is not supported by
  model.py; a Skywork reward model is the substitute.
- OfflineJudge: an instruct LM (the embedded SmolLM2-135M-Instruct) asked for a 1-9 rating. A
  teaching stand-in that needs no download.
torch and the models load only when one of them is built: the tasks themselves need neither.
"""
import warnings


def load(source, model, tok):
    """A judge: "offline" (the policy LM `model` rates responses, see OfflineJudge) or a reward
    model's directory or hub id, loaded in the LM's dtype and device (bfloat16 on a GPU, where an
    8B reward model takes 16 GB)."""
    if source == "offline":
        return OfflineJudge(model, tok).score
    w = model.lm_head.weight
    return RewardModel(source, device=w.device, dtype=w.dtype).score


def score_batch(judge, prompts, responses):
    """judge(prompts, responses), checked: a task scored by a judge needs one, and one score per pair."""
    if judge is None:
        raise RuntimeError("this task is scored by a judge (reward model) and none was given: pass "
                           "judge=tasks.judge.load(...) or any function (prompts, responses) "
                           "-> list of floats")
    scores = [float(s) for s in judge(list(prompts), list(responses))]
    if len(scores) != len(responses):
        raise ValueError(f"the judge returned {len(scores)} scores for {len(responses)} responses")
    return scores


# -----------------------------------------------------------------------------
# Model judges: shared helpers

def fit(encode, tok, prompt, response, max_len):
    """ids = encode(prompt, response), at most max_len long: too long, the prompt is cut from the
    left (its end, next to the response, matters most); if even the response alone does not fit,
    the sequence keeps its last max_len tokens. Returns (ids, whether anything was cut)."""
    ids = encode(prompt, response)
    if len(ids) <= max_len:
        return ids, False
    p = tok.encode(prompt)
    while len(ids) > max_len and p:  # re-encode the text: cutting token ids could break the template
        p = p[len(ids) - max_len:]
        ids = encode(tok.decode(p), response)
    return ids[-max_len:], True


def last_token_scores(model, seqs, batch_size, reduce):
    """Run the sequences (lists of ids) through the model in left-padded batches of similar
    lengths; reduce((B, V) logits at each last token) -> (B,) scores. One float per sequence."""
    import torch
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # less padding per batch
    device, out = model.lm_head.weight.device, [0.0] * len(seqs)
    for b in range(0, len(order), batch_size):
        rows = order[b:b + batch_size]
        T = max(len(seqs[i]) for i in rows)
        idx = torch.tensor([[0] * (T - len(seqs[i])) + seqs[i] for i in rows], device=device)
        pad = torch.tensor([T - len(seqs[i]) for i in rows], device=device)
        with torch.no_grad():
            scores = reduce(model(idx, pad=pad, last_only=True)[:, 0])
        for i, s in zip(rows, scores.tolist()):
            out[i] = s
    return out


def encode_all(judge, prompts, responses):
    """Each pair encoded by judge.encode and fitted to judge.max_len, with one warning per call."""
    fitted = [fit(judge.encode, judge.tok, p, r, judge.max_len) for p, r in zip(prompts, responses)]
    n_cut = sum(cut for _, cut in fitted)
    if n_cut:
        warnings.warn(f"{n_cut} of {len(fitted)} (prompt, response) pairs were longer than "
                      f"max_len={judge.max_len} tokens; their prompts were cut from the left", stacklevel=3)
    return [ids for ids, _ in fitted]


# -----------------------------------------------------------------------------
# A real reward model

class RewardModel:
    """A Hugging Face sequence-classification reward model on the Llama architecture
    (config "architectures": ["LlamaForSequenceClassification"], one label), e.g.
    Skywork/Skywork-Reward-V2-Llama-3.2-1B or Skywork/Skywork-Reward-Llama-3.1-8B-v0.2.
    Each (prompt, response) becomes a two-turn chat (user, assistant) in the reward model's own
    chat format, without a generation prompt; the reward is the score head applied to the final
    hidden state at the last token, as transformers computes it. Inputs longer than max_len
    (default: the model's context) have their prompt cut from the left, with a warning.
    An 8B model wants dtype=torch.bfloat16 (16 GB) and a GPU; the 1B one runs on a CPU."""

    def __init__(self, source, device="cpu", dtype=None, batch_size=8, max_len=None):
        import torch
        from model import Transformer
        from tokenizer import Tokenizer
        self.model = Transformer.from_pretrained(source, device, dtype or torch.float32)
        if self.model.config.n_labels != 1:
            raise ValueError(f"{source}: not a reward model with one score (n_labels="
                             f"{self.model.config.n_labels}; 0 is a language model, for which see "
                             "OfflineJudge); expected a LlamaForSequenceClassification with num_labels=1")
        self.tok = Tokenizer.from_pretrained(source)
        self.batch_size, self.max_len = batch_size, max_len or self.model.config.max_seq_len

    def encode(self, prompt, response):
        chat = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        return self.tok.encode_chat(chat, add_generation_prompt=False)

    def score(self, prompts, responses):
        seqs = encode_all(self, prompts, responses)
        return last_token_scores(self.model, seqs, self.batch_size, lambda logits: logits[:, 0])


# -----------------------------------------------------------------------------
# A weak judge that needs no download

class OfflineJudge:
    """An instruct language model used as a judge: it is asked to rate the response to the
    instruction from 1 to 9 and to answer with one digit (PROMPT, a user message in its chat
    format); its answer is begun for it with ANSWER ("Rating: ", after which SmolLM2 almost always
    puts a digit next, where without it it starts a sentence), and the score is the expected digit,
    sum_d d * p(d) / sum_d p(d), under its next-token probabilities restricted to the tokens
    "1".."9": one forward pass per pair, batched, no sampling, so the same pair always gets the
    same score, a real number in [1, 9].

    What it is: with the embedded SmolLM2-135M-Instruct (OfflineJudge.load()), a judge that runs
    anywhere offline: enough to exercise the plumbing (the judge-scored tasks, training and win
    rates end to end) and to teach how an LLM-as-a-judge and a reward model are wired.
    What it is not: evidence of quality. A 135M model barely reads the response; its ratings are
    weak, biased (towards certain digits whatever the input, and sensitive to the prompt's wording)
    and correlated with surface features such as length and fluency. Improvements measured with it
    say little about real quality: report results with a real reward model (RewardModel)."""

    # the question after the texts: a small model follows the last thing it read best
    PROMPT = ("Instruction:\n{prompt}\n\nResponse:\n{response}\n\nRate the response to the instruction "
              "on a scale from 1 (very bad) to 9 (excellent). Answer with a single digit.")
    ANSWER = "Rating: "

    def __init__(self, model, tokenizer, batch_size=8, max_len=None):
        self.model, self.tok = model, tokenizer
        digits = [tokenizer.encode(str(d)) for d in range(1, 10)]
        if any(len(d) != 1 for d in digits):
            raise ValueError(f"{tokenizer}: the digits 1..9 must be single tokens, got {digits}")
        self.digit_ids = [d[0] for d in digits]
        self.batch_size, self.max_len = batch_size, max_len or model.config.max_seq_len

    @classmethod
    def load(cls, source="smollm2", device="cpu", **kwargs):
        from model import Transformer
        from tokenizer import Tokenizer
        return cls(Transformer.from_pretrained(source, device), Tokenizer.from_pretrained(source), **kwargs)

    def encode(self, prompt, response):
        chat = [{"role": "user", "content": self.PROMPT.format(prompt=prompt, response=response)}]
        return self.tok.encode_chat(chat) + self.tok.encode(self.ANSWER)

    def score(self, prompts, responses):
        def expected_digit(logits):
            p = logits[:, self.digit_ids].softmax(-1)           # (B, 9), renormalised over 1..9
            return p @ p.new_tensor(range(1, 10))
        return last_token_scores(self.model, encode_all(self, prompts, responses), self.batch_size,
                                 expected_digit)
