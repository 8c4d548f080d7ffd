"""
Online Latent Preference Optimization: train the AdaptiveDecoder head on top of a frozen LM from
preferences between the LM's own samples, as in *Adaptive Decoding via Latent Preference
Optimization* (Dhuliawala et al., arXiv 2411.09661, Section 3).

    python train.py        # the default experiment: SmolLM2, the UltraMathStories mixture with
                           # easy arithmetic problems in place of GSM8K, the offline judge, AD_seq
    python train.py --task synthetic --level sequence --n_samples 6 --prompts_per_round 64 \
        --test_prompts 48 --max_new_tokens 24 --compare none  # a task whose answer is known

Before the rounds, a validation split: --val_prompts training prompts per task (never used by the
rounds, never the held-out ones) decoded at every fixed temperature of the set, once.
Each round (the loop at the bottom of this file):
  1. generate: N responses per training prompt, temperatures drawn from the head mixed with
     uniform draws (--explore; by default all draws uniform, see the README), keeping the
     temperature chosen at every step and the hidden state it was chosen from;
  2. decode the responses to text and score them with the task's reward (tasks.rewards);
  3. pairs: every better/worse pair of a prompt's responses with different temperatures (--pairs all),
     or the paper's best against worst (lpo.preference_pairs);
  4. loss and step: AdamW on the head (its state kept from round to round) with the loss chosen by
     --loss, for some epochs over all pairs so far; the LM is not run again (the stored hidden
     states are what the head and the LM head read);
  5. the learning metric, on the validation split: AD's win rate against every fixed temperature
     (pooled over the subtasks of a mix) and its mean temperature per subtask. For AD_seq it costs
     no generation (evaluate.exact_ad_seq); AD_tok decodes the validation prompts.
The head of the round with the best validation win rate (its worst against a fixed temperature)
becomes head.pt. It then decodes the held-out prompts (greedy temperature selection), against every
fixed temperature (--compare all: and two adaptive baselines), scored with the reward it was
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
import sys
import time
import zlib
from pathlib import Path

import torch

import runs
import tasks
from adaptive_head import DEFAULT_TEMPERATURES, AdaptiveDecoder
from cli import (SEED_RANGE, Progress, check_device, check_settings, check_writable, default_device, duration,
                 model_dtype, one_line_errors, parse_temperatures, plural)
from evaluate import evaluate, exact_ad_seq, methods, pooled_win_rates, run_method, run_methods, samples_per_prompt
from lpo import PAIR_RULES, pair_loss, preference_accuracy, preference_pairs, same_temperatures
from model import Transformer
from runs import load_or_exit, save_atomic
from sample import generate
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
p.add_argument("--test_prompts", type=int, default=24, help="held-out prompts (per task of a mix; the "
               "default: enough for the headline to hold across seeds in a run of minutes on a 2-core CPU, "
               "see the README)")
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--max_new_tokens", type=int, default=80)
p.add_argument("--val_prompts", type=int, default=10, help="training prompts per task set aside for the "
               "learning metric and the choice of the round's head (decoded once at every fixed temperature)")
p.add_argument("--explore", type=float, default=None, help="while collecting, this fraction of the "
               "temperature draws ignores the head (uniform over the set). Default: 1 at sequence level, "
               "every temperature drawn equally often in every round (see the README); 0.5 at token level, "
               "where uniform draws at every token would make every response a random mix. 0: the paper's "
               "on-policy sampling")
p.add_argument("--pairs", default="all", choices=PAIR_RULES, help="a prompt's training pairs: every "
               "better/worse pair with different temperatures (all), or its best against its worst response "
               "(best_worst, the paper's rule)")
p.add_argument("--beta", type=float, default=1.0)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--epochs", type=int, default=5, help="passes over all pairs so far, each round")
p.add_argument("--batch_size", type=int, default=64, help="rows per generation batch (validation and evaluation "
               "decode every fixed temperature of a batch in one call: this many rows per temperature)")
p.add_argument("--train_batch_size", type=int, default=32, help="pairs per optimizer step")
p.add_argument("--device", default=default_device())
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
p.add_argument("--samples_from", default=None, help="another run's directory: reuse its validation and "
               "first-round samples (with --explore 1, every round's), which do not depend on how the head "
               "is fitted (--loss, --lr, --epochs, --pairs...: ablations on the same samples, see the "
               "README)")
p.add_argument("--compile", action="store_true", help="generate with a compiled decode step (torch.compile; "
               "see the README's Speed section for when it pays off)")
args = p.parse_args()
# every setting in its range before anything is loaded or written
check_settings(args, at_least={"n_samples": (2, ": a pair needs two responses to a prompt"),
                               "max_new_tokens": 1, "prompts_per_round": 1, "test_prompts": 1,
                               "val_prompts": 1, "rounds": 0,
                               "epochs": 1, "batch_size": 1, "train_batch_size": 1, "beta": 0, "lr": 0},
               between={"explore": (0, 1), "seed": SEED_RANGE})
temperatures = parse_temperatures(args.temperatures)
check_device(args.device)
if args.explore is None:
    args.explore = 1.0 if args.level == "sequence" else 0.5
started = time.time()
one_line_errors()  # a user's mistake (a missing file, a bad weight file...) is one line, not a traceback
runs.exit_on_interrupt()

# -----------------------------------------------------------------------------
# set-up: the task, the frozen LM, its tokenizer, the judge

if args.data_dir:
    os.environ["LPO_DATA_DIR"] = args.data_dir
# the task first: a bad --task is reported before minutes of model loading
train_examples = tasks.prompts(args.task, "train")
val_examples = tasks.prompts(args.task, "train", n=args.val_prompts, seed=args.seed)  # validation split
val_ids = {ex["id"] for ex in val_examples}
train_examples = [ex for ex in train_examples if ex["id"] not in val_ids]           # the rounds' prompts
test_examples = tasks.prompts(args.task, "test", n=args.test_prompts, seed=args.seed)
for split, exs in (("training", train_examples), ("validation", val_examples), ("held-out", test_examples)):
    for name in tasks.mix(args.task):
        if not any(ex["task"] == name for ex in exs):
            sys.exit(f"error: task {name} has no {split} prompts with these settings (--val_prompts "
                     f"{args.val_prompts}, --test_prompts {args.test_prompts}); its data may be too small")
if args.out_dir == "":
    sys.exit("error: --out_dir is empty; give a directory (default: out/<task>_<level>)")
out = Path(args.out_dir or f"out/{args.task}_{args.level}")
check_writable(out, "directory")
config = runs.settings(args)        # the run's directory holds one run (runs.py)
runs.check_same_run(out, config)

torch.manual_seed(args.seed)
dtype = model_dtype(args.dtype, args.device)
model = Transformer.from_pretrained(args.model, device=args.device, dtype=dtype)
tok = Tokenizer.from_pretrained(args.model)
longest = max(len(tasks.prompt_ids(tok, ex)) for ex in train_examples + val_examples + test_examples)
if longest + args.max_new_tokens > model.config.max_seq_len:
    sys.exit(f"error: the longest prompt ({longest} tokens) plus --max_new_tokens {args.max_new_tokens} is "
             f"longer than {args.model}'s context of {model.config.max_seq_len} tokens; ask for fewer new tokens")
# the judge, for the tasks scored by one (stories, instructions)
judged = any(tasks.get_task(name).JUDGED for name in tasks.mix(args.task))
judge = judges.load(args.judge, model, tok) if judged else None

runs.lock(out)                      # from here on this process writes out_dir: no other may
runs.check_same_run(out, config)    # again, now that no other run can write it
(out / "samples").mkdir(exist_ok=True)
if args.samples_from:  # samples that do not depend on how the head is fitted: reused, not generated again
    runs.reuse_samples(args.samples_from, out, config, all_rounds=args.explore == 1)


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
    # batches of prompts of similar lengths: a batch is left-padded to its longest prompt
    examples = sorted(examples, key=lambda ex: len(tasks.prompt_ids(tok, ex)))
    batches = [examples[i:i + per_batch] for i in range(0, len(examples), per_batch)]
    saved = {b for b in range(len(batches)) if (out / "samples" / f"{name}_batch{b:04d}.pt").exists()}
    if saved:  # saved before a restart (resume): read back, not generated (no rate to measure)
        print(f"  {name}: read back {plural(len(saved), 'batch', 'batches')} saved before")
    to_make = N * sum(len(exs) for b, exs in enumerate(batches) if b not in saved)
    prog, samples, made = Progress(name, to_make, "samples"), [], 0
    for b, exs in enumerate(batches):
        path = out / "samples" / f"{name}_batch{b:04d}.pt"
        if b not in saved:
            prompts = [tasks.prompt_ids(tok, ex) for ex in exs for _ in range(N)]  # row i*N + j: ex i
            seed = zlib.crc32(f"{args.seed}/{name}/{b}".encode())
            g = generate(model, prompts, args.max_new_tokens, head=head, selection="sample",
                         explore=args.explore, stop_ids=tok.stop_ids, seed=seed, keep_hidden=True,
                         compile=args.compile)
            responses = [tok.decode(t) for t in g.tokens]
            if judge is not None:  # the story reward reads the LM's surprisal of each response: generation has it
                judge.remember_surprisal([exs[j // N]["prompt"] for j in range(len(prompts))], responses,
                                         g.logprobs)
            rewards = tasks.rewards(exs, responses, judge)
            batch = [{"id": exs[j // N]["id"], "kind": tasks.subtask(exs[j // N]), "response": responses[j],
                      "tokens": g.tokens[j], "stop": g.stops[j], "choices": g.choices[j],
                      "reward": rewards[j],
                      # the states the choices were made from: the response's tokens, plus its stop token
                      "hidden": g.hidden[j, :len(g.choices[j])].float().cpu().clone()}
                     for j in range(len(prompts))]
            save_atomic(lambda tmp: torch.save(batch, tmp), path)
            made += len(batch)
            prog.update(made)
        samples += load_or_exit(path, "samples")
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
# the validation split: every fixed temperature once, then any head's win rates from it

# evaluation: a task whose reward is relative (the synthetic varied kind) is scored on as many
# responses per prompt as training drew, the reward the head was trained on; the others draw their
# EVAL_SAMPLES
eval_samples = {name: args.n_samples for name in tasks.mix(args.task) if tasks.get_task(name).RELATIVE}
val_n = samples_per_prompt(val_examples, eval_samples)
val_subtask = [tasks.subtask(ex) for ex in val_examples]


def validation_fixed():
    """Every fixed temperature on the validation prompts, one file per temperature (a resumed run
    reads them back): {"tau=t": evaluate.run_method's result}."""
    fixed = methods(None, "fixed", temperatures)
    path = lambda name: out / "samples" / f"val_{name}.pt"  # noqa: E731
    to_decode = [name for name in fixed if not path(name).exists()]
    if len(to_decode) < len(fixed):  # saved before a restart (resume): read back, not generated
        print(f"  validation: read back {plural(len(fixed) - len(to_decode), 'temperature')} saved before")
    t0 = time.time()
    # all of them together: a batch of prompts goes through the model once for every temperature
    decoded = run_methods(model, tok, {name: fixed[name] for name in to_decode}, val_examples, val_n,
                          args.max_new_tokens, args.batch_size, args.seed, judge, args.compile,
                          phase="validation") if to_decode else {}
    for name, res in decoded.items():
        save_atomic(lambda tmp: torch.save(res, tmp), path(name))
    decoded = len(decoded) * sum(val_n)
    results = {name: load_or_exit(path(name), "results") for name in fixed}
    if decoded:  # every phase generates and scores alike: this rate times the responses still to make
        left = ((args.rounds - start_round) * n_round * args.n_samples + n_methods * n_eval
                + (args.level == "token") * (args.rounds - start_round) * sum(val_n))
        rate = decoded / (time.time() - t0)
        print(f"validation decoded {rate:.1f} responses/s here: the rest of the run, {plural(left, 'response')}, "
              f"should take about {duration(left / rate)}")
    return results


def learning_metric(head, fixed):
    """What a head does on the validation split: AD's pooled win rate against every fixed temperature
    ({name: (rate, lo, hi)}) and its mean temperature per subtask. AD_seq: no generation
    (exact_ad_seq); AD_tok: its responses to the validation prompts, generated."""
    head.eval()
    if args.level == "sequence":
        ad = exact_ad_seq(head, fixed)
    else:
        ad = run_method(model, tok, dict(head=head, selection="greedy"), val_examples, val_n,
                        args.max_new_tokens, args.batch_size, args.seed, judge, args.compile, lambda k: None)
    pooled = pooled_win_rates({"AD": ad["reward"], **{n: r["reward"] for n, r in fixed.items()}}, val_subtask,
                              list(fixed))
    wins = {name: m["ad_win_rate"] for name, m in pooled["methods"].items()}
    sub_of, temps = {ex["id"]: tasks.subtask(ex) for ex in val_examples}, {}
    for s in ad["samples"]:  # the temperature of every step (AD_seq: the one it chose, once a response)
        temps.setdefault(sub_of[s["id"]], []).extend(s["temperatures"] if args.level == "token"
                                                     else s["temperatures"][:1])
    return wins, {sub: sum(ts) / len(ts) for sub, ts in sorted(temps.items())}


def metric_line(wins, mean_tau):
    w = " / ".join(f"{100 * rate:.0f}" for rate, lo, hi in wins.values())
    taus = ", ".join(f"{sub} {t:.2f}" for sub, t in mean_tau.items())
    return f"AD wins {w}% against {', '.join(wins)}; mean temperature {taus}"


# -----------------------------------------------------------------------------
# what the run will do

def batches_saved(name):
    return len(list((out / "samples").glob(f"{name}_batch*.pt")))


n_eval = sum(samples_per_prompt(test_examples, eval_samples))
n_methods = len(methods(None, args.compare, temperatures)) + (args.level == "token" or args.compare == "none")
n_round = len(round_prompts(random.Random(args.seed)))
per_batch = max(1, args.batch_size // args.n_samples)
print(f"plan: 1) validation: {plural(len(temperatures), 'temperature')} x {plural(sum(val_n), 'response')} to "
      f"{plural(len(val_examples), 'training prompt')}; 2) {plural(args.rounds, 'round')}: "
      f"{plural(n_round, 'prompt')} x {plural(args.n_samples, 'sample')}, then {plural(args.epochs, 'epoch')} on "
      f"all pairs so far; 3) evaluation: {plural(n_methods, 'method')} x {plural(n_eval, 'response')} to "
      f"{plural(len(test_examples), 'held-out prompt')}")
print("(how long it takes is measured here: an estimate follows the validation phase)")

# -----------------------------------------------------------------------------
# resume. A run is its out_dir: its settings (config.json), the head and the optimizer's state
# after each round (head_init.pt, head_round1.pt, opt_round1.pt, ...), the validation results and
# the samples, one file per batch. Started again with the same settings, a killed run goes on from
# the last head saved, the finished rounds' samples are read back for their pairs, and collect()
# reads back the batches already saved.

def head_path(r):
    return out / ("head_init.pt" if r == 0 else f"head_round{r}.pt")


def save_head(head, path):
    save_atomic(head.save, path)


def load_head(r):
    """The head saved after round r, checked against the command line."""
    try:
        return AdaptiveDecoder.load(head_path(r), d_model=model.config.d_model, temperatures=temperatures,
                                    level=args.level, map_location=args.device)
    except ValueError as e:
        sys.exit(f"error: {e}")


rounds_done = max([int(p.stem.removeprefix("head_round")) for p in out.glob("head_round*.pt")
                   if p.stem.removeprefix("head_round").isdigit()], default=0)
if rounds_done > args.rounds:  # fewer rounds than done would replace head.pt with an earlier round's
    sys.exit(f"error: {out} has {plural(rounds_done, 'round')} done; give --rounds {rounds_done} or more (or another "
             "--out_dir)")
runs.save_settings(out, config)
start_round = max([r for r in range(args.rounds + 1) if head_path(r).exists()], default=None)
if start_round is None:  # a fresh run: the head's initialisation is saved so a resume reuses it
    save_head(AdaptiveDecoder(model.config.d_model, temperatures, args.level, base_model=str(args.model)),
              head_path(0))
    start_round = 0
head = load_head(start_round)
n_val_saved = len(list((out / "samples").glob("val_*.pt")))
if start_round > 0 or n_val_saved:
    done = "all rounds done"
    if start_round < args.rounds:
        done = (f"round {start_round + 1}, {batches_saved(f'round{start_round + 1}')} of "
                f"{plural(math.ceil(n_round / per_batch), 'batch', 'batches')} collected")
    if n_val_saved < len(temperatures):
        done = f"validation, {n_val_saved} of {plural(len(temperatures), 'temperature')} decoded"
    print(f"resuming {out}: {done}")

# the optimizer: one AdamW for the whole run, its state (moment estimates) carried from round to
# round, so that a round continues the fit instead of restarting it
opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=0.01)
if start_round > 0 and (out / f"opt_round{start_round}.pt").exists():
    opt.load_state_dict(load_or_exit(out / f"opt_round{start_round}.pt", "optimizer"))

# each round trains on every pair so far: a round alone gives few pairs, too few to train on
# without overfitting
all_pairs = []
for r in range(start_round):  # the rounds finished before a restart, read back for their pairs
    samples = collect(f"round{r + 1}", round_prompts(random.Random(args.seed * 1000 + r)), head)
    all_pairs += preference_pairs(samples, args.pairs, args.level)

# -----------------------------------------------------------------------------
# the validation split, decoded once at every fixed temperature

val_fixed = validation_fixed()
init_head = load_head(0)


def validation(r):
    """The learning metric of round r's head, computed once (validation_round<r>.json)."""
    path = out / f"validation_round{r}.json"
    if not path.exists():
        wins, mean_tau = learning_metric(load_head(r), val_fixed)
        save_atomic(lambda tmp: Path(tmp).write_text(json.dumps({"wins": wins, "mean_tau": mean_tau})), path)
    try:
        m = json.loads(path.read_text())
        return m["wins"], m["mean_tau"]
    except (ValueError, KeyError, TypeError):
        sys.exit(f"error: {path} is damaged; delete it and run the same command again: it is computed again")


print(f"validation: {plural(len(val_examples), 'training prompt')} set aside; the untrained head (uniform: its argmax "
      f"is the first temperature): {metric_line(*validation(0))}")

# -----------------------------------------------------------------------------
# the online loop: generate -> decode -> reward -> pairs -> loss -> step, round after round

for r in range(start_round, args.rounds):
    t0 = time.time()
    rng = random.Random(args.seed * 1000 + r)
    samples = collect(f"round{r + 1}", round_prompts(rng), head)    # generate -> decode -> reward
    pairs = preference_pairs(samples, args.pairs, args.level)      # better against worse
    all_pairs += pairs
    by_kind = {}  # the mean reward of each subtask: their rewards are on different scales
    for s in samples:
        by_kind.setdefault(s["kind"], []).append(s["reward"])
    n_pairs = {k: sum(c["kind"] == k for c, _ in pairs) for k in sorted(by_kind)}
    means = ", ".join(f"{k} {sum(v) / len(v):.3f}" for k, v in sorted(by_kind.items()))
    bw = preference_pairs(samples, "best_worst")  # the paper's pairs, said even where they are not used
    same = sum(same_temperatures(c, w, args.level) for c, w in bw)
    said = f"round {r + 1}: {plural(len(samples), 'sample')}, mean reward {means}; "
    if pairs:
        said += (f"{plural(len(pairs), 'new pair')} ({', '.join(f'{k} {n}' for k, n in n_pairs.items())}), "
                 f"{len(all_pairs)} in all; best/worst pairs with the same temperature on both sides: "
                 f"{same} of {len(bw)}")
    else:  # said plainly: the round adds nothing to train on
        why = "the same reward" + (" or the same temperature" if args.pairs == "all" else "")
        said += (f"0 new pairs: every prompt's responses got {why}; nothing new to learn this round "
                 f"({plural(len(all_pairs), 'pair')} in all)")
    print(said)

    head.train()
    steps = args.epochs * math.ceil(len(all_pairs) / args.train_batch_size)
    prog, step = Progress("train", steps, "steps"), 0
    for epoch in range(args.epochs):
        order = list(range(len(all_pairs)))  # a fresh permutation: all_pairs keeps its order (resume)
        rng.shuffle(order)
        for i in range(0, len(order), args.train_batch_size):
            batch = [all_pairs[j] for j in order[i:i + args.train_batch_size]]
            loss = pair_loss(head, batch, args.loss, args.level, args.beta, ref_head=init_head,   # loss
                             lm_head=model.lm_head, device=args.device)
            if not torch.isfinite(loss):
                sys.exit(f"error: the loss is {loss.item()} at round {r + 1}, step {step + 1} (--lr {args.lr}, "
                         f"--beta {args.beta}): nothing was saved for this round; use a smaller --lr or --beta")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()                                                                      # step
            step += 1
            prog.update(step, f"loss {loss.item():.4f}")
    head.eval()
    if not all(torch.isfinite(p).all() for p in head.parameters()):
        sys.exit(f"error: the head's weights are no longer finite after round {r + 1} (--lr {args.lr}, "
                 f"--beta {args.beta}): nothing was saved for this round; use a smaller --lr or --beta")
    save_atomic(lambda tmp: torch.save(opt.state_dict(), tmp), out / f"opt_round{r + 1}.pt")
    save_head(head, head_path(r + 1))
    acc, n_acc = preference_accuracy(head, all_pairs, args.level, args.device)
    fit = (f"train preference accuracy {acc:.3f} ({plural(n_acc, 'pair')} with different temperatures)" if n_acc
           else "no pair with different temperatures to train on yet")
    print(f"round {r + 1} done in {duration(time.time() - t0)}: {fit}; validation: "
          f"{metric_line(*validation(r + 1))}", flush=True)

# -----------------------------------------------------------------------------
# the head: the round whose validation win rate against its strongest fixed temperature is best

if args.rounds > 0:
    worst = {r: min(rate for rate, lo, hi in validation(r)[0].values()) for r in range(1, args.rounds + 1)}
    best = max(worst, key=lambda r: (worst[r], r))  # a tie: the later round (more pairs)
    head = load_head(best)
    print(f"head.pt: the head of round {best} (validation: its lowest win rate against a fixed temperature "
          f"{100 * worst[best]:.0f}%; by round: {', '.join(f'{100 * w:.0f}%' for w in worst.values())})")
save_head(head, out / "head.pt")

# -----------------------------------------------------------------------------
# the trained head on the held-out prompts, against fixed temperatures and baselines

print(f"\nevaluation on {plural(len(test_examples), 'held-out prompt')}:")
settings = dict(config, model=str(args.model), device=args.device, dtype=str(dtype).removeprefix("torch."),
                rounds=args.rounds, started=started)
history = [dict(zip(("round", "wins", "mean_tau"), (r, *validation(r)))) for r in range(args.rounds + 1)]
evaluate(model, tok, head, test_examples, eval_samples, args.max_new_tokens, args.batch_size, args.seed, out,
         compare=args.compare, judge=judge, settings=settings, compile=args.compile, rounds=history)
