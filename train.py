"""
Online Latent Preference Optimization (PAPER.md section 2): train the AdaptiveDecoder head on
top of a frozen LM from preferences between the LM's own samples.

    python train.py        # the default experiment: SmolLM2, the UltraMathStories mixture with
                           # arithmetic problems in place of GSM8K, the offline judge, AD_seq
    python train.py --task synthetic --level sequence --n_samples 6 --prompts_per_round 64 \
        --test_prompts 48 --max_new_tokens 24 --compare 0     # a task whose answer is known

For each round:
  1. collect: N responses per training prompt, generated with the current head (temperatures
     sampled from it; by default half of the draws uniform instead, see --explore), keeping the
     temperature chosen at every step and the hidden states it was chosen from; score each
     response with the task's reward;
  2. pairs: the best and the worst response of each prompt (prompts whose responses all tie
     give no pair);
  3. train: AdamW on the head with the chosen loss, for some epochs over the round's pairs; the
     LM is not run again (the stored hidden states are what the head and the LM head read);
  4. report the preference accuracy on held-out pairs and save the head.
After the last round, the head decodes the held-out prompts (greedy temperature selection).

Everything collected is written to out_dir as it is made (one file per batch, written
atomically); a killed run started again with the same command resumes where it stopped,
without regenerating or duplicating samples.
"""
import argparse
import json
import math
import os
import random
import sys
import time
import zlib
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

import tasks
from adaptive_head import DEFAULT_TEMPERATURES, AdaptiveDecoder
from lpo import choice_logps, lpo_loss, lpo_marginal_loss, mixture_token_logps, nll_loss
from model import Transformer
from evaluate import evaluate, respond, set_judge, subtask
from tokenizer import Tokenizer

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--model", default="smollm2", help="smollm2, a .gguf file, a model directory or a hub id")
p.add_argument("--task", default="ultramathstories_arithmetic", help=f"one of {', '.join(tasks.TASKS)} or a mix: {', '.join(tasks.MIXES)}")
p.add_argument("--level", default="sequence", choices=["sequence", "token"])
p.add_argument("--loss", default="lpo", choices=["lpo", "lpo_marginal", "nll"])
p.add_argument("--temperatures", default=",".join(str(t) for t in DEFAULT_TEMPERATURES))
p.add_argument("--n_samples", type=int, default=4, help="N responses per prompt")
p.add_argument("--prompts_per_round", type=int, default=64, help="training prompts a round (a mix's tasks share them as tasks.MIXES says)")
p.add_argument("--test_prompts", type=int, default=16, help="held-out prompts (per task of a mix)")
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--max_new_tokens", type=int, default=80)
p.add_argument("--explore", type=float, default=0.5, help="while collecting, this fraction of the "
               "temperature draws ignores the head (uniform over the set): a head that a few noisy pairs "
               "made sure of itself would otherwise stop trying other temperatures (0: the paper's on-policy sampling)")
p.add_argument("--beta", type=float, default=1.0)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--epochs", type=int, default=20)
p.add_argument("--batch_size", type=int, default=64, help="rows per generation batch")
p.add_argument("--train_batch_size", type=int, default=32, help="pairs per optimizer step")
p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"], help="the LM's (default: bf16 on CUDA)")
p.add_argument("--judge", default="offline", help="for judged tasks: 'offline' (the LM itself rates "
               "responses, see tasks/judge.py) or a reward model (directory or hub id)")
p.add_argument("--compare", type=int, default=1, help="1: evaluate against every fixed temperature, "
               "min-p and EDT at the end; 0: the head alone")
p.add_argument("--data_dir", default=None, help="local copies of the datasets (else $LPO_DATA_DIR, "
               "else ~/.cache/lpo/data, downloading what is missing)")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--out_dir", default=None, help="default: out/<task>_<level>")
args = p.parse_args()

# -----------------------------------------------------------------------------
# set-up: the frozen LM, its tokenizer, the task, the head (or the last one saved)

if args.data_dir:
    os.environ["LPO_DATA_DIR"] = args.data_dir
try:  # the task first: a bad --task is reported before minutes of model loading
    train_examples = tasks.prompts(args.task, "train")
    test_examples = tasks.prompts(args.task, "test", n=args.test_prompts, seed=args.seed)
except (ValueError, FileNotFoundError) as e:
    sys.exit(f"error: {e}")
out = Path(args.out_dir or f"out/{args.task}_{args.level}")
(out / "samples").mkdir(parents=True, exist_ok=True)
config = {k: v for k, v in vars(args).items() if k not in ("rounds", "device", "dtype", "compare", "data_dir")}
if (out / "config.json").exists():
    old = json.loads((out / "config.json").read_text())
    changed = {k: (old.get(k), v) for k, v in config.items() if old.get(k) != v}
    if changed:
        sys.exit(f"error: {out} holds a run with other settings {changed}; use another --out_dir "
                 "or the same settings to resume it")
(out / "config.json").write_text(json.dumps(config, indent=1))

torch.manual_seed(args.seed)
dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))
model = Transformer.from_pretrained(args.model, device=args.device, dtype=dtype)
tok = Tokenizer.from_pretrained(args.model)
set_judge(args.judge, model, tok, args.device)  # used by the judged tasks only
temperatures = [float(t) for t in args.temperatures.split(",")]


def save_atomic(obj, path):
    torch.save(obj, str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)


def save_head(head, path, **extra):
    head.save(str(path) + ".tmp", extra=extra)
    os.replace(str(path) + ".tmp", path)


def head_path(r):
    return out / ("head_init.pt" if r == 0 else f"head_round{r}.pt")


start_round = max([r for r in range(args.rounds + 1) if head_path(r).exists()], default=None)
if start_round is None:  # a fresh run: the head's initialisation is saved so a resume reuses it
    head = AdaptiveDecoder(model.config.d_model, temperatures, args.level, base_model=str(args.model))
    save_head(head, head_path(0))
    start_round = 0
head = AdaptiveDecoder.load(head_path(start_round), d_model=model.config.d_model,
                            temperatures=temperatures, map_location=args.device)
print(f"{args.model}: {model.config.n_layer} layers, d={model.config.d_model}, {dtype} on {args.device}; "
      f"head: {args.level} level, temperatures {temperatures}, starting at round {start_round + 1}")
for name in tasks.mix(args.task):  # a stand-in task says so (e.g. arithmetic in place of GSM8K)
    if hasattr(tasks.get_task(name), "LABEL"):
        print(f"{name}: {tasks.get_task(name).LABEL}")


class Progress:
    """A line every few seconds: phase, done/total, rate, time left."""
    def __init__(self, phase, total, unit):
        self.phase, self.total, self.unit, self.t0, self.last = phase, total, unit, time.time(), 0.0

    def update(self, done, extra=""):
        now = time.time()
        if now - self.last > 5 or done == self.total:
            rate = done / max(now - self.t0, 1e-9)
            left = (self.total - done) / rate if rate > 0 else float("inf")
            print(f"  {self.phase}: {done}/{self.total} {self.unit}, {rate:.1f} {self.unit}/s, "
                  f"{left:.0f}s left {extra}", flush=True)
            self.last = now


def collect(name, examples, head, selection):
    """N samples per prompt with the given head; one file per batch of whole prompt groups, so
    that a killed run loses at most the batch in flight. Returns the samples of all batches."""
    N = args.n_samples
    per_batch = max(1, args.batch_size // N)
    batches = [examples[i:i + per_batch] for i in range(0, len(examples), per_batch)]
    prog, samples = Progress(name, len(examples) * N, "samples"), []
    for b, exs in enumerate(batches):
        path = out / "samples" / f"{name}_batch{b:04d}.pt"
        if not path.exists():
            g, responses, rewards = respond(model, tok, exs, N, args.max_new_tokens, zlib.crc32(f"{args.seed}/{name}/{b}".encode()),
                                            head=head, selection=selection, keep_hidden=True, explore=args.explore)
            batch = []
            for j, (resp, r) in enumerate(zip(responses, rewards)):
                n_steps = len(g.choices[j])  # the response's tokens, plus the stop token if it stopped
                batch.append({"id": exs[j // N]["id"], "kind": subtask(exs[j // N]), "response": resp,
                              "tokens": g.tokens[j], "choices": g.choices[j], "reward": r,
                              "hidden": g.hidden[j, :n_steps].float().cpu().clone()})
            save_atomic(batch, path)
        samples += torch.load(path, weights_only=True)
        prog.update(len(samples))
    return samples


def make_pairs(samples):
    """The best and the worst response of each prompt; ties give no pair."""
    groups = {}
    for s in samples:
        groups.setdefault(s["id"], []).append(s)
    pairs = []
    for group in groups.values():
        best = max(group, key=lambda s: s["reward"])
        worst = min(group, key=lambda s: s["reward"])
        if best["reward"] > worst["reward"]:
            pairs.append((best, worst))
    return pairs


def side(pairs, i):
    """Stack one side (0 chosen, 1 rejected) of some pairs: hidden (B, T, d), choices (B, T),
    tokens (B, T), the mask of the steps with a choice and the mask of the response's tokens
    (a response that stopped has one more choice, the one that produced its stop token)."""
    dev = args.device
    hs = [pr[i]["hidden"] for pr in pairs]
    ks = [torch.tensor(pr[i]["choices"]) for pr in pairs]
    ys = [torch.tensor(pr[i]["tokens"] + [0] * (len(pr[i]["choices"]) - len(pr[i]["tokens"]))) for pr in pairs]
    steps = pad_sequence([torch.ones(len(k), dtype=torch.bool) for k in ks], batch_first=True)
    toks = pad_sequence([torch.arange(len(k)) < len(pr[i]["tokens"]) for k, pr in zip(ks, pairs)], batch_first=True)
    return (pad_sequence(hs, batch_first=True).to(dev), pad_sequence(ks, batch_first=True).to(dev),
            pad_sequence(ys, batch_first=True).to(dev), steps.to(dev), toks.to(dev))


def head_logprobs(head, h):
    """log P(tau | h_t) at every step (B, T, K); at sequence level the one choice made from the
    first step's state (the last prompt token) holds for every token."""
    if args.level == "token":
        return head.log_probs(h)
    return head.log_probs(h[:, :1]).expand(*h.shape[:2], -1)


def choice_margin(head, chosen, rejected):
    """log P(tau^c) and log P(tau^r): the temperatures the two responses were sampled with."""
    out = []
    for h, k, _, steps, _ in (chosen, rejected):
        if args.level == "sequence":
            h, k, steps = h[:, :1], k[:, :1], steps[:, :1]
        out.append(choice_logps(head.log_probs(h), k, steps))
    return out


def pair_loss(head, ref_head, pairs):
    """The loss of PAPER.md section 2 chosen by --loss, on a batch of pairs."""
    chosen, rejected = side(pairs, 0), side(pairs, 1)
    if args.loss == "lpo":                                   # loss (a), Eq. 10
        return lpo_loss(*choice_margin(head, chosen, rejected), args.beta)[0]
    if args.loss == "nll":                                   # baseline (d)
        return nll_loss(choice_margin(head, chosen, rejected)[0])
    # loss (c): mixtures over temperatures of the token probabilities. The LM's logits come from
    # the stored hidden states through its LM head (one matmul: the LM is not run again)
    mix = {}
    for name, (h, _, y, _, toks) in (("c", chosen), ("r", rejected)):
        with torch.no_grad():
            logits = model.lm_head(h.to(dtype)).float()
            mix["ref_" + name] = mixture_token_logps(logits, head_logprobs(ref_head, h), head.temperatures, y)
        mix[name] = mixture_token_logps(logits, head_logprobs(head, h), head.temperatures, y)
        mix["mask_" + name] = toks
    return lpo_marginal_loss(mix["c"], mix["r"], mix["ref_c"], mix["ref_r"], mix["mask_c"], mix["mask_r"], args.beta)[0]


@torch.no_grad()
def preference_accuracy(head, pairs):
    """Fraction of pairs where the head gives the chosen response's temperatures a higher
    probability than the rejected one's (ties, e.g. the same temperature on both, count half)."""
    if not pairs:
        return float("nan")
    logp_c, logp_r = choice_margin(head, side(pairs, 0), side(pairs, 1))
    return ((logp_c > logp_r).float() + 0.5 * (logp_c == logp_r).float()).mean().item()


# -----------------------------------------------------------------------------
# held-out pairs, collected once with the initial head: the preference accuracy reported below

init_head = AdaptiveDecoder.load(head_path(0), map_location=args.device)
test_pairs = make_pairs(collect("test", test_examples, init_head, "sample"))
print(f"held-out: {len(test_pairs)} pairs from {len(test_examples)} prompts")

all_pairs = []
for r in range(args.rounds):
    t0 = time.time()
    rng = random.Random(args.seed * 1000 + r)
    by_task = {}
    for ex in train_examples:
        by_task.setdefault(ex["task"], []).append(ex)
    shares = tasks.mix(args.task)  # a mix's tasks get the round's prompts in these proportions
    examples = []
    for name, exs in by_task.items():
        k = round(args.prompts_per_round * shares[name] / sum(shares.values()))
        examples += rng.sample(exs, min(k, len(exs)))
    samples = collect(f"round{r + 1}", examples, head, "sample")  # a finished round's: read back
    pairs = make_pairs(samples)
    # each round trains on every pair so far: once the head is good, a round alone gives few
    # pairs (most prompts' responses tie), too few to train on without overfitting
    all_pairs += pairs
    if r < start_round:  # a round finished before a restart: its pairs are all we need
        continue
    mean_reward = sum(s["reward"] for s in samples) / len(samples)
    kinds = {}
    for c, _ in pairs:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
    print(f"round {r + 1}: {len(samples)} samples, mean reward {mean_reward:.3f}, {len(pairs)} new pairs "
          f"({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}), {len(all_pairs)} in all")
    ref_head = AdaptiveDecoder.load(head_path(r), map_location=args.device)  # frozen P_ref for loss (c)
    head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(all_pairs) / args.train_batch_size)
    prog, step = Progress("train", steps, "steps"), 0
    for epoch in range(args.epochs):
        rng.shuffle(all_pairs)
        for i in range(0, len(all_pairs), args.train_batch_size):
            loss = pair_loss(head, ref_head, all_pairs[i:i + args.train_batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            prog.update(step, f"loss {loss.item():.4f}")
    head.eval()
    save_head(head, head_path(r + 1), round=r + 1, task=args.task, loss=args.loss)
    save_head(head, out / "head.pt", round=r + 1, task=args.task, loss=args.loss)
    print(f"round {r + 1} done in {time.time() - t0:.0f}s: preference accuracy train "
          f"{preference_accuracy(head, all_pairs):.3f}, held-out {preference_accuracy(head, test_pairs):.3f} "
          f"(initial head {preference_accuracy(init_head, test_pairs):.3f}); saved {out / 'head.pt'}", flush=True)

# -----------------------------------------------------------------------------
# the trained head on the held-out prompts, against fixed temperatures and baselines

print(f"\nevaluation on {len(test_examples)} held-out prompts:")
evaluate(model, tok, head, test_examples, None, args.max_new_tokens,
         args.batch_size, args.seed, out, compare=bool(args.compare))
