"""
Judges: the reward of the tasks scored by a model (stories, instructions, constrained_stories).
The paper scores them with a reward model (ArmoRM-Llama3-8B). A judge here is any function

    judge(prompts, responses) -> one float per pair, higher is better

batched, since a reward model is much faster on batches. load() makes one (a Judge: the judge's
scores, and the policy LM's own surprisal of a response, which the story reward reads); train.py
and evaluate.py pass it to the tasks' group_reward (tasks.rewards):

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
    """A Judge: "offline" (the policy LM `model` rates responses, see OfflineJudge) or a reward
    model's directory or hub id, loaded in the LM's dtype and device (bfloat16 on a GPU, where an
    8B reward model takes 16 GB); its surprisal is the policy LM's."""
    if source == "offline":
        return Judge(OfflineJudge(model, tok).score, model, tok)
    w = model.lm_head.weight
    return Judge(RewardModel(source, device=w.device, dtype=w.dtype).score, model, tok)


class Judge:
    """What a judged task's group_reward gets as `judge`: called with (prompts, responses), the
    judge's scores; surprisal(prompts, responses), the policy LM's own surprisal of each response.
    Each is computed once per (prompt, response) and remembered: evaluation's metrics ask again."""

    def __init__(self, score, model, tok):
        self.score, self.model, self.tok = score, model, tok
        self.seen = {"score": {}, "surprisal": {}}

    def _once(self, what, fn, prompts, responses):
        memo = self.seen[what]
        new = [i for i, key in enumerate(zip(prompts, responses)) if key not in memo]
        for i, value in zip(new, fn([prompts[i] for i in new], [responses[i] for i in new]) if new else []):
            memo[prompts[i], responses[i]] = float(value)
        return [memo[key] for key in zip(prompts, responses)]

    def __call__(self, prompts, responses):
        return self._once("score", self.score, list(prompts), list(responses))

    def surprisal(self, prompts, responses):
        return self._once("surprisal", lambda ps, rs: surprisal(self.model, self.tok, ps, rs),
                          list(prompts), list(responses))

    def remember_surprisal(self, prompts, responses, logprobs):
        """What generation already knows: the LM's log-probability of each token it drew (sample.py's
        Generation.logprobs). Their mean is the surprisal, without running the LM again."""
        for p, r, lp in zip(prompts, responses, logprobs):
            self.seen["surprisal"].setdefault((p, r), -sum(lp) / len(lp) if lp else 0.0)


def surprisal(model, tok, prompts, responses, batch_size=8):
    """The LM's own surprisal of each response as the reply to its prompt (a user message in the
    chat format): -1/n sum_t log p(y_t | prompt, y_<t), in nats per token, at temperature 1, over
    the response's n tokens (0.0 for an empty response). Low: the text the model would write anyway
    (its greedy reply); high: text it finds improbable, up to noise."""
    import torch
    from model import left_pad
    pairs = [(tok.encode_prompt(p), tok.encode(r)) for p, r in zip(prompts, responses)]
    seqs = [(p + r)[-model.config.max_seq_len:] for p, r in pairs]
    n = [min(len(r), len(s) - 1) for (p, r), s in zip(pairs, seqs)]  # the response tokens that are read
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    device, out = model.lm_head.weight.device, [0.0] * len(seqs)
    for b in range(0, len(order), batch_size):
        rows = [i for i in order[b:b + batch_size] if n[i] > 0]
        if not rows:
            continue
        T = max(len(seqs[i]) for i in rows)
        idx, pad = left_pad([seqs[i] for i in rows], 0, device)
        with torch.no_grad():
            logp = torch.log_softmax(model(idx, pad=pad).float(), dim=-1)  # (B, T, V)
        for row, i in enumerate(rows):  # position t predicts token t + 1; the last n[i] are the reply's
            target = idx[row, T - n[i]:]
            out[i] = -logp[row, T - n[i] - 1:T - 1].gather(-1, target[:, None]).mean().item()
    return out


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


def last_token_scores(model, seqs, batch_size, reduce, prefixes=None):
    """Run the sequences (lists of ids) through the model in batches; reduce((B, V) logits at each
    last token) -> (B,) scores. One float per sequence. prefixes[i]: how many of seqs[i]'s first
    tokens other sequences share (a judge's template and the instruction, the same for every response
    to a prompt; see prefix_lengths): those run through the model once (run_prefixes), and each
    sequence runs only what follows them, attending to the prefix's keys and values copied into its
    cache (the scores agree with whole sequences' to float rounding, tests/test_judge.py)."""
    import torch
    from model import KVCache
    prefixes = prefixes or [0] * len(seqs)
    kv = run_prefixes(model, [s[:a] for s, a in zip(seqs, prefixes) if a], batch_size)
    # batches of sequences whose parts after the prefix are of similar lengths: each row's window is its
    # last T tokens (T: the longest part after a prefix in the batch), the rest of it taken from the cache
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]) - prefixes[i])
    device, out = model.lm_head.weight.device, [0.0] * len(seqs)
    for b in range(0, len(order), batch_size):
        rows = order[b:b + batch_size]
        T = max(len(seqs[i]) - prefixes[i] for i in rows)
        cached = [max(0, len(seqs[i]) - T) for i in rows]          # tokens of row i read from a prefix
        M = max(cached)
        cache = KVCache(model.config, len(rows), M + T, device, model.lm_head.weight.dtype)
        idx, pad = torch.zeros(len(rows), T, dtype=torch.long), []
        for r, (i, m) in enumerate(zip(rows, cached)):
            window = seqs[i][m:]                                    # T tokens, or all of a short row
            idx[r, T - len(window):] = torch.tensor(window)
            pad.append(M - m if m else M + T - len(window))        # the keys before it are hidden
            if m:
                k, v = kv[tuple(seqs[i][:prefixes[i]])]             # per layer, (Hkv, prefix, hd)
                for layer in range(model.config.n_layer):
                    cache.k[layer][r, :, M - m:M] = k[layer][:, :m]
                    cache.v[layer][r, :, M - m:M] = v[layer][:, :m]
        cache.pos = M
        with torch.no_grad():
            scores = reduce(model(idx.to(device), cache=cache, pad=torch.tensor(pad, device=device),
                                  last_only=True)[:, 0])
        for i, s in zip(rows, scores.tolist()):
            out[i] = s
    return out


def run_prefixes(model, prefixes, batch_size):
    """Every distinct prefix through the model once, in left-padded batches: {prefix (a tuple of
    ids): (keys, values)}, each a list of (Hkv, len, hd) per layer."""
    import torch
    from model import KVCache, left_pad
    distinct = sorted(set(map(tuple, prefixes)), key=len)
    device, kv = model.lm_head.weight.device, {}
    for b in range(0, len(distinct), batch_size):
        group = distinct[b:b + batch_size]
        L = max(len(p) for p in group)
        idx, pad = left_pad(group, 0, device)
        cache = KVCache(model.config, len(group), L, device, model.lm_head.weight.dtype)
        with torch.no_grad():
            model(idx, cache=cache, pad=pad, last_only=True)
        for r, p in enumerate(group):
            kv[p] = ([k[r, :, L - len(p):].clone() for k in cache.k], [v[r, :, L - len(p):].clone() for v in cache.v])
    return kv


def prefix_lengths(prompts, seqs):
    """Per sequence, how many first tokens it shares with every other sequence to the same prompt (the
    judge's template and the instruction, up to where the responses begin); 0 for a prompt with one
    sequence. A sequence's last token is always its own."""
    group = {}
    for p, s in zip(prompts, seqs):
        group.setdefault(p, []).append(s)
    common = {}
    for p, ss in group.items():
        n = min(len(s) for s in ss) - 1
        for s in ss[1:]:
            n = next((i for i in range(n) if s[i] != ss[0][i]), n)
        common[p] = n if len(ss) > 1 else 0
    return [common[p] for p in prompts]


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
        from checkpoints import load_model
        from tokenizer import Tokenizer
        self.model = load_model(source, device, dtype or torch.float32)
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
        return last_token_scores(self.model, seqs, self.batch_size, lambda logits: logits[:, 0],
                                 prefix_lengths(prompts, seqs))


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

    What it is: with the embedded SmolLM2-135M-Instruct (load("offline", model, tok)), a judge that
    runs anywhere offline: enough to exercise the plumbing (the judge-scored tasks, training and win
    rates end to end) and to teach how an LLM-as-a-judge and a reward model are wired.
    What it is not: evidence of quality. A 135M model barely reads the response; its ratings are
    weak, biased (towards certain digits whatever the input, and sensitive to the prompt's wording)
    and correlated with surface features such as length and fluency. Improvements measured with it
    say little about real quality: report results with a real reward model (RewardModel)."""

    # the question after the texts: a small model follows the last thing it read best
    PROMPT = ("Instruction:\n{prompt}\n\nResponse:\n{response}\n\nRate the response to the instruction "
              "on a scale from 1 (very bad) to 9 (excellent). Answer with a single digit.")
    ANSWER = "Rating: "

    def __init__(self, model, tokenizer, batch_size=16, max_len=None):
        self.model, self.tok = model, tokenizer
        digits = [tokenizer.encode(str(d)) for d in range(1, 10)]
        if any(len(d) != 1 for d in digits):
            raise ValueError(f"{tokenizer}: the digits 1..9 must be single tokens, got {digits}")
        self.digit_ids = [d[0] for d in digits]
        self.batch_size, self.max_len = batch_size, max_len or model.config.max_seq_len

    def encode(self, prompt, response):
        chat = [{"role": "user", "content": self.PROMPT.format(prompt=prompt, response=response)}]
        return self.tok.encode_chat(chat) + self.tok.encode(self.ANSWER)

    def score(self, prompts, responses):
        def expected_digit(logits):
            p = logits[:, self.digit_ids].softmax(-1)           # (B, 9), renormalised over 1..9
            return p @ p.new_tensor(range(1, 10))
        seqs = encode_all(self, prompts, responses)
        return last_token_scores(self.model, seqs, self.batch_size, expected_digit,
                                 prefix_lengths(prompts, seqs))
