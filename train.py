"""
Online Latent Preference Optimization: train the AdaptiveDecoder head on top of a frozen LM from
preferences between the LM's own samples, as in *Adaptive Decoding via Latent Preference
Optimization* (Dhuliawala et al., arXiv 2411.09661, Section 3).

    python train.py        # the default experiment: SmolLM2, the UltraMathStories mixture with
                           # easy arithmetic problems in place of GSM8K, the offline judge, AD_seq
    python train.py --task synthetic --level sequence --n_samples 6 --prompts_per_round 64 \
        --test_prompts 48 --max_new_tokens 24 --compare none  # a task whose answer is known

Each round (the loop at the bottom of this file):
  1. generate: N responses per training prompt with the current head (temperatures sampled from
     it; by default half of the draws uniform instead, see --explore), keeping the temperature
     chosen at every step and the hidden state it was chosen from;
  2. decode the responses to text and score them with the task's reward (tasks.rewards);
  3. pairs: the best and the worst response of each prompt (lpo.preference_pairs; prompts whose
     responses all tie give no pair);
  4. loss and step: AdamW on the head with the loss chosen by --loss, for some epochs over the
     pairs; the LM is not run again (the stored hidden states are what the head and the LM head read);
  5. report the preference accuracy on held-out pairs and save the head.
After the last round, the head decodes the held-out prompts (greedy temperature selection), against
every fixed temperature (--compare all: and two adaptive baselines), scored with the reward it was
trained on (evaluate.py).

Everything collected is written to out_dir as it is made (one file per batch, written
atomically); a killed run started again with the same command resumes where it stopped,
without regenerating or duplicating samples (see "resume" below).
"""
import argparse
import json
import math
import os
import random
import shutil
import signal
import sys
import time
import zlib
from pathlib import Path
from typing import NamedTuple

import torch
from torch.nn.utils.rnn import pad_sequence

import tasks
from adaptive_head import DEFAULT_TEMPERATURES, AdaptiveDecoder
from evaluate import evaluate, methods, samples_per_prompt
from lpo import (choice_logps, lpo_loss, lpo_marginal_loss, mixture_sequence_logps, mixture_token_logps,
                 nll_loss, preference_pairs)
from model import Transformer
from sample import Progress, check_settings, check_writable, generate, parse_temperatures
from tasks import judge as judges
from tokenizer import Tokenizer

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--model", default="smollm2", help="smollm2, a .gguf file, a model directory or a hub id")
p.add_argument("--task", default="ultramathstories_arithmetic",
               help=f"one of {', '.join(tasks.TASKS)} or a mix: {', '.join(tasks.MIXES)}")
p.add_argument("--level", default="sequence", choices=["sequence", "token"])
p.add_argument("--loss", default="lpo", choices=["lpo", "lpo_marginal", "nll"])
p.add_argument("--temperatures", default=",".join(str(t) for t in DEFAULT_TEMPERATURES))
p.add_argument("--n_samples", type=int, default=4, help="N responses per prompt")
p.add_argument("--prompts_per_round", type=int, default=64,
               help="training prompts a round (a mix's tasks share them as tasks.MIXES says)")
p.add_argument("--test_prompts", type=int, default=28, help="held-out prompts (per task of a mix; the "
               "default: as many as the default run's 15 minutes on a 2-core CPU allow)")
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--max_new_tokens", type=int, default=80)
p.add_argument("--explore", type=float, default=0.5, help="while collecting, this fraction of the "
               "temperature draws ignores the head (uniform over the set): a head that a few noisy pairs "
               "made sure of itself would otherwise stop trying other temperatures "
               "(0: the paper's on-policy sampling)")
p.add_argument("--beta", type=float, default=1.0)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--epochs", type=int, default=20)
p.add_argument("--batch_size", type=int, default=64, help="rows per generation batch")
p.add_argument("--train_batch_size", type=int, default=32, help="pairs per optimizer step")
p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
               help="the LM's (default: bf16 on CUDA)")
p.add_argument("--judge", default="offline", help="for judged tasks: 'offline' (the LM itself rates "
               "responses, see tasks/judge.py) or a reward model (directory or hub id)")
p.add_argument("--compare", default="fixed", choices=["none", "fixed", "all"], help="what the evaluation at "
               "the end runs besides AD: nothing, every fixed temperature of the set (what the paper's claim "
               "needs), or those and min-p and EDT (the full sweep)")
p.add_argument("--data_dir", default=None, help="local copies of the datasets (else $LPO_DATA_DIR, "
               "else ~/.cache/lpo/data, downloading what is missing)")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--out_dir", default=None, help="default: out/<task>_<level>")
p.add_argument("--samples_from", default=None, help="another run's directory: reuse its held-out and "
               "first-round samples, which do not depend on the loss (the loss ablation: three heads "
               "trained on the same pairs, see the README)")
p.add_argument("--compile", action="store_true", help="generate with a compiled decode step (torch.compile; "
               "see the README's Speed section for when it pays off)")
args = p.parse_args()
# every setting in its range before anything is loaded or written
check_settings(args, at_least={"n_samples": (2, ": a pair needs two responses to a prompt"),
                               "max_new_tokens": 1, "prompts_per_round": 1, "test_prompts": 1, "rounds": 0,
                               "epochs": 1, "batch_size": 1, "train_batch_size": 1, "beta": 0, "lr": 0},
               between={"explore": (0, 1)})
temperatures = parse_temperatures(args.temperatures)
started = time.time()


def interrupted(signum, frame):  # Ctrl-C or a kill: what is saved is whole (files are written atomically)
    sys.stdout.flush()
    print("\ninterrupted; run the same command again to resume", file=sys.stderr, flush=True)
    os._exit(130)


signal.signal(signal.SIGINT, interrupted)
signal.signal(signal.SIGTERM, interrupted)

# -----------------------------------------------------------------------------
# set-up: the task, the frozen LM, its tokenizer, the judge

if args.data_dir:
    os.environ["LPO_DATA_DIR"] = args.data_dir
try:  # the task first: a bad --task is reported before minutes of model loading
    train_examples = tasks.prompts(args.task, "train")
    test_examples = tasks.prompts(args.task, "test", n=args.test_prompts, seed=args.seed)
except (ValueError, FileNotFoundError) as e:
    sys.exit(f"error: {e}")
out = Path(args.out_dir or f"out/{args.task}_{args.level}")
check_writable(out / "samples", "directory")

# the run's directory holds one run: the same settings resume it, other settings are refused. Not
# settings (they may change when a run resumes): where and how fast it runs, how many rounds, and
# out_dir itself, so that a run is the same under any spelling of its path
not_settings = ("rounds", "device", "dtype", "compare", "data_dir", "out_dir", "compile", "samples_from")
config = {k: v for k, v in vars(args).items() if k not in not_settings}
if (out / "config.json").exists():
    old = json.loads((out / "config.json").read_text())
    changed = {k: (old.get(k), v) for k, v in config.items() if old.get(k) != v}
    if changed:
        sys.exit(f"error: {out} holds a run with other settings {changed}; use another --out_dir "
                 "or the same settings to resume it")

if args.samples_from:  # the samples collected with the initial head depend on these settings, not on the loss
    source = Path(args.samples_from)
    try:
        theirs = json.loads((source / "config.json").read_text())
    except (OSError, ValueError):
        sys.exit(f"error: --samples_from {source}: no run there (config.json missing or unreadable)")
    training = ("loss", "beta", "lr", "epochs", "train_batch_size")
    differ = {k: (theirs.get(k), v) for k, v in config.items() if k not in training and theirs.get(k) != v}
    if differ:
        sys.exit(f"error: --samples_from {source} was collected with other settings {differ}")
    for pattern in ("test_*.pt", "round1_*.pt"):
        for f in sorted((source / "samples").glob(pattern)):
            if not (out / "samples" / f.name).exists():
                shutil.copy(f, out / "samples" / f.name)

torch.manual_seed(args.seed)
dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))
model = Transformer.from_pretrained(args.model, device=args.device, dtype=dtype)
tok = Tokenizer.from_pretrained(args.model)
judge = judges.load(args.judge, model, tok)  # for the tasks scored by a judge (stories, instructions)


def save_atomic(save, path):
    """save(tmp) then rename: a file is whole or absent. A full disk stops the run with a message;
    the files saved before it stay intact."""
    try:
        save(str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as a RuntimeError
        Path(str(path) + ".tmp").unlink(missing_ok=True)
        why = e.strerror if isinstance(e, OSError) and e.strerror else "the write failed"
        sys.exit(f"error: could not write {path}: {why} (is the disk full?); what was saved before is "
                 "intact: make room and run the same command again")


print(f"{args.model}: {model.config.n_layer} layers, d={model.config.d_model}, {dtype} on {args.device}; "
      f"head: {args.level} level, temperatures {temperatures}")
for name in tasks.mix(args.task):  # a stand-in task says so (e.g. arithmetic in place of GSM8K)
    if tasks.get_task(name).LABEL:
        print(f"{name}: {tasks.get_task(name).LABEL}")


# -----------------------------------------------------------------------------
# collecting samples: generate -> decode -> reward

def collect(name, examples, head):
    """N responses to each example, generated with the head (temperatures drawn from it, with
    --explore), decoded and scored with the task's reward. One file per batch of whole prompts,
    so that a killed run loses at most the batch in flight. Returns the samples of all batches."""
    N = args.n_samples
    per_batch = max(1, args.batch_size // N)
    batches = [examples[i:i + per_batch] for i in range(0, len(examples), per_batch)]
    prog, samples = Progress(name, len(examples) * N, "samples"), []
    for b, exs in enumerate(batches):
        path = out / "samples" / f"{name}_batch{b:04d}.pt"
        if not path.exists():  # else: saved before a restart (resume), read back below
            prompts = [tasks.prompt_ids(tok, ex) for ex in exs for _ in range(N)]  # row i*N + j: ex i
            seed = zlib.crc32(f"{args.seed}/{name}/{b}".encode())
            g = generate(model, prompts, args.max_new_tokens, head=head, selection="sample",
                         explore=args.explore, stop_ids=tok.stop_ids, seed=seed, keep_hidden=True,
                         compile=args.compile)
            responses = [tok.decode(t) for t in g.tokens]
            rewards = tasks.rewards(exs, responses, judge)
            batch = [{"id": exs[j // N]["id"], "kind": tasks.subtask(exs[j // N]), "response": responses[j],
                      "tokens": g.tokens[j], "stop": g.stops[j], "choices": g.choices[j],
                      "reward": rewards[j],
                      # the states the choices were made from: the response's tokens, plus its stop token
                      "hidden": g.hidden[j, :len(g.choices[j])].float().cpu().clone()}
                     for j in range(len(prompts))]
            save_atomic(lambda tmp: torch.save(batch, tmp), path)
        try:
            samples += torch.load(path, weights_only=True)
        except Exception as e:
            sys.exit(f"error: {path} is damaged ({type(e).__name__}); delete it and run the same command "
                     "again: that batch is generated again")
        prog.update(len(samples))
    return samples


def round_prompts(rng):
    """A round's training prompts: a mix's tasks get them in the shares tasks.MIXES gives."""
    by_task = {}
    for ex in train_examples:
        by_task.setdefault(ex["task"], []).append(ex)
    shares = tasks.mix(args.task)
    examples = []
    for name, exs in by_task.items():
        k = round(args.prompts_per_round * shares[name] / sum(shares.values()))
        examples += rng.sample(exs, min(k, len(exs)))
    return examples


# -----------------------------------------------------------------------------
# the loss of a batch of pairs

class Side(NamedTuple):
    """One side (chosen or rejected) of a batch of B pairs, padded to the longest response (T steps)."""
    hidden: torch.Tensor       # (B, T, d) the LM's final hidden state each temperature was chosen from
    choices: torch.Tensor      # (B, T) index of the temperature chosen at each step
    tokens: torch.Tensor       # (B, T) the response's tokens, then its stop token if it stopped
    has_choice: torch.Tensor   # (B, T) bool: a step of the response (its tokens and its stop token)
    counts: torch.Tensor       # (B, T) bool: a token whose probability counts in loss (c): the response's
                               # and its stop token (unknown in samples saved before it was stored)


def stack_side(pairs, i):
    """Side i (0 chosen, 1 rejected) of some pairs, on the device."""
    samples = [pair[i] for pair in pairs]
    pad = lambda xs: pad_sequence(xs, batch_first=True).to(args.device)
    stop = [[] if s.get("stop") is None else [s["stop"]] for s in samples]
    return Side(hidden=pad([s["hidden"] for s in samples]),
                choices=pad([torch.tensor(s["choices"]) for s in samples]),
                tokens=pad([torch.tensor((s["tokens"] + st + [0])[:len(s["choices"])])
                            for s, st in zip(samples, stop)]),
                has_choice=pad([torch.ones(len(s["choices"]), dtype=torch.bool) for s in samples]),
                counts=pad([torch.arange(len(s["choices"])) < len(s["tokens"]) + len(st)
                            for s, st in zip(samples, stop)]))


def temperature_logp(head, side):
    """log P(tau) of the temperatures each response was generated with (B,), the terms of Eq. 10:
    the one choice at sequence level; the sum of log P(tau_t | h_t) over the steps at token level."""
    if args.level == "sequence":
        return choice_logps(head.log_probs(side.hidden[:, :1]), side.choices[:, :1], side.has_choice[:, :1])
    return choice_logps(head.log_probs(side.hidden), side.choices, side.has_choice)


def mixture_logps(head, ref_head, side):
    """log P(y) of AD as a mixture over temperatures (loss (c), Section 3.3), with the trained head
    and with the reference head P_ref, and the mask of what counts: per token at token level, (B, T)
    (tau is chosen anew at each token); per response at sequence level, (B, 1) (one tau, chosen from
    the last prompt token's state, for the whole response). The LM's logits come from the stored
    hidden states through its LM head (one matmul: the LM is not run again)."""
    with torch.no_grad():
        logits = model.lm_head(side.hidden.to(dtype)).float()

    def mixture(hd):
        if args.level == "token":
            return mixture_token_logps(logits, hd.log_probs(side.hidden), head.temperatures, side.tokens)
        return mixture_sequence_logps(logits, hd.log_probs(side.hidden[:, 0]), head.temperatures,
                                      side.tokens, side.counts)[:, None]
    with torch.no_grad():
        ref = mixture(ref_head)
    return mixture(head), ref, side.counts if args.level == "token" else side.counts[:, :1]


def pair_loss(head, ref_head, pairs):
    """The loss chosen by --loss on a batch of pairs."""
    chosen, rejected = stack_side(pairs, 0), stack_side(pairs, 1)
    if args.loss == "lpo":                                   # loss (a), Eq. 10
        return lpo_loss(temperature_logp(head, chosen), temperature_logp(head, rejected), args.beta)[0]
    if args.loss == "nll":                                   # baseline (d)
        return nll_loss(temperature_logp(head, chosen))
    policy_c, ref_c, mask_c = mixture_logps(head, ref_head, chosen)   # loss (c), Section 3.3
    policy_r, ref_r, mask_r = mixture_logps(head, ref_head, rejected)
    return lpo_marginal_loss(policy_c, policy_r, ref_c, ref_r, mask_c, mask_r, args.beta)[0]


@torch.no_grad()
def preference_accuracy(head, pairs):
    """Fraction of pairs where the head gives the chosen response's temperatures a higher
    probability than the rejected one's (ties, e.g. the same temperature on both, count half)."""
    if not pairs:
        return float("nan")
    logp_c = temperature_logp(head, stack_side(pairs, 0))
    logp_r = temperature_logp(head, stack_side(pairs, 1))
    return ((logp_c > logp_r).float() + 0.5 * (logp_c == logp_r).float()).mean().item()


# -----------------------------------------------------------------------------
# what the run will do

def batches_saved(name):
    return len(list((out / "samples").glob(f"{name}_batch*.pt")))


# evaluation: a task whose reward is relative (novelty) is scored on as many responses per prompt as
# training drew, the reward the head was trained on; the others draw their EVAL_SAMPLES
eval_samples = {name: args.n_samples for name in tasks.mix(args.task) if tasks.get_task(name).RELATIVE}
n_eval = sum(samples_per_prompt(test_examples, eval_samples))
n_methods = len(methods(None, args.compare, temperatures)) + 1
n_round = len(round_prompts(random.Random(args.seed)))
per_batch = max(1, args.batch_size // args.n_samples)
print(f"plan: 1) held-out pairs: {len(test_examples)} prompts x {args.n_samples} samples; 2) {args.rounds} "
      f"rounds: {n_round} prompts x {args.n_samples} samples, then {args.epochs} epochs on all pairs so far; "
      f"3) evaluation: {n_methods} methods x {n_eval} responses to {len(test_examples)} prompts")
if args.model == "smollm2" and args.device == "cpu":  # rates measured with the default run on 2 cores
    collected = (len(test_examples) + args.rounds * n_round) * args.n_samples
    seconds = (0.25 * collected + 0.38 * n_methods * n_eval) * args.max_new_tokens / 80
    print(f"about {seconds / 60:.0f} minutes on an idle 2-core CPU (the README's runs); the progress lines "
          "below say how fast it goes here")

# -----------------------------------------------------------------------------
# resume. A run is its out_dir: its settings (config.json), the head after each round
# (head_init.pt, head_round1.pt, ...) and its samples, one file per batch. Started again with the
# same settings, a killed run goes on from the last head saved, the finished rounds' samples are
# read back for their pairs, and collect() reads back the batches already saved.

def head_path(r):
    return out / ("head_init.pt" if r == 0 else f"head_round{r}.pt")


def save_head(head, path):
    save_atomic(head.save, path)


def load_head(r):
    """The head saved after round r, checked against the command line (config.json may be gone)."""
    try:
        return AdaptiveDecoder.load(head_path(r), d_model=model.config.d_model, temperatures=temperatures,
                                    level=args.level, map_location=args.device)
    except ValueError as e:
        sys.exit(f"error: {e}")


start_round = max([r for r in range(args.rounds + 1) if head_path(r).exists()], default=None)
if start_round is None:  # a fresh run: the head's initialisation is saved so a resume reuses it
    save_head(AdaptiveDecoder(model.config.d_model, temperatures, args.level, base_model=str(args.model)),
              head_path(0))
    start_round = 0
head = load_head(start_round)
# the settings, written once the heads are known to fit them
save_atomic(lambda tmp: Path(tmp).write_text(json.dumps(config, indent=1)), out / "config.json")
if start_round > 0 or batches_saved("test"):
    done = "all rounds done"
    if start_round < args.rounds:
        done = (f"round {start_round + 1}, {batches_saved(f'round{start_round + 1}')} of "
                f"{math.ceil(n_round / per_batch)} batches collected")
    held_out = math.ceil(len(test_examples) / per_batch)
    if batches_saved("test") < held_out:
        done = f"held-out pairs, {batches_saved('test')} of {held_out} batches collected"
    print(f"resuming {out}: {done}")

# each round trains on every pair so far: once the head is good, a round alone gives few pairs
# (most prompts' responses tie), too few to train on without overfitting
all_pairs = []
for r in range(start_round):  # the rounds finished before a restart, read back for their pairs
    samples = collect(f"round{r + 1}", round_prompts(random.Random(args.seed * 1000 + r)), head)
    all_pairs += preference_pairs(samples)

# -----------------------------------------------------------------------------
# held-out pairs, collected once with the initial head: the preference accuracy reported below

init_head = load_head(0)
test_pairs = preference_pairs(collect("test", test_examples, init_head))
print(f"held-out: {len(test_pairs)} pairs from {len(test_examples)} prompts")

# -----------------------------------------------------------------------------
# the online loop: generate -> decode -> reward -> pairs -> loss -> step, round after round

for r in range(start_round, args.rounds):
    t0 = time.time()
    rng = random.Random(args.seed * 1000 + r)
    samples = collect(f"round{r + 1}", round_prompts(rng), head)    # generate -> decode -> reward
    pairs = preference_pairs(samples)                                # best against worst of each prompt
    all_pairs += pairs
    by_kind = {}  # the mean reward of each subtask: their rewards are on different scales
    for s in samples:
        by_kind.setdefault(s["kind"], []).append(s["reward"])
    n_pairs = {k: sum(c["kind"] == k for c, _ in pairs) for k in sorted(by_kind)}
    means = ", ".join(f"{k} {sum(v) / len(v):.3f}" for k, v in sorted(by_kind.items()))
    print(f"round {r + 1}: {len(samples)} samples, mean reward {means}; {len(pairs)} new pairs "
          f"({', '.join(f'{k} {n}' for k, n in n_pairs.items())}), {len(all_pairs)} in all")

    ref_head = init_head  # P_ref of loss (c): the head the training started from, frozen
    head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(all_pairs) / args.train_batch_size)
    prog, step = Progress("train", steps, "steps"), 0
    for epoch in range(args.epochs):
        rng.shuffle(all_pairs)
        for i in range(0, len(all_pairs), args.train_batch_size):
            loss = pair_loss(head, ref_head, all_pairs[i:i + args.train_batch_size])   # loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()                                                               # step
            step += 1
            prog.update(step, f"loss {loss.item():.4f}")
    head.eval()
    save_head(head, head_path(r + 1))
    save_head(head, out / "head.pt")
    print(f"round {r + 1} done in {time.time() - t0:.0f}s: preference accuracy train "
          f"{preference_accuracy(head, all_pairs):.3f}, held-out {preference_accuracy(head, test_pairs):.3f} "
          f"(initial head {preference_accuracy(init_head, test_pairs):.3f}); saved {out / 'head.pt'}",
          flush=True)

save_head(head, out / "head.pt")  # the last round's head, also when a kill came between two writes

# -----------------------------------------------------------------------------
# the trained head on the held-out prompts, against fixed temperatures and baselines

print(f"\nevaluation on {len(test_examples)} held-out prompts:")
settings = dict(config, model=str(args.model), device=args.device, dtype=str(dtype).removeprefix("torch."),
                rounds=args.rounds, started=started)
evaluate(model, tok, head, test_examples, eval_samples, args.max_new_tokens, args.batch_size, args.seed, out,
         compare=args.compare, judge=judge, settings=settings, compile=args.compile)
