"""
Online Latent Preference Optimization: train the AdaptiveDecoder head on top of a frozen LM from
preferences between the LM's own samples, as in *Adaptive Decoding via Latent Preference
Optimization* (Dhuliawala et al., arXiv 2411.09661, Section 3).

    python train.py        # the default experiment: SmolLM2, the UltraMathStories mixture with
                           # easy arithmetic problems in place of GSM8K, the offline judge, AD_seq
    python train.py --task synthetic --level sequence --n_samples 6 --prompts_per_round 64 \
        --test_prompts 48 --max_new_tokens 24 --compare none  # a task whose answer is known

Read `main` at the bottom: its loop over rounds is the method. Before the rounds, a validation split:
--val_prompts training prompts per task (never used by the rounds, never the held-out ones) decoded at
every fixed temperature of the set, once. Each round:
  1. collect: N responses per training prompt, temperatures drawn from the head mixed with uniform
     draws (--explore; by default all draws uniform, see the README), keeping the temperature chosen
     at every step and the hidden state it was chosen from; decoded to text and scored with the
     task's reward (tasks.rewards);
  2. pairs: every better/worse pair of a prompt's responses with different temperatures (--pairs all),
     or the paper's best against worst (lpo.preference_pairs);
  3. train: AdamW on the head (its state kept from round to round) with the loss chosen by --loss,
     for some epochs over all pairs so far; the LM is not run again (the stored hidden states are
     what the head and the LM head read). --loss names one of losses.py's registry: the paper's
     (lpo.py), or a rival trained on the same samples (grpo.py: responses and their advantages;
     continuous_head.py with --head continuous: each prompt's best response);
  4. the learning metric, on the validation split: AD's win rate against every fixed temperature
     (pooled over the subtasks of a mix) and its mean temperature per subtask. For AD_seq it costs
     no generation (evaluate.exact_ad_seq); AD_tok decodes the validation prompts.
The head of the round with the best validation win rate (its worst against a fixed temperature)
becomes head.pt. It then decodes the held-out prompts (greedy temperature selection), against every
fixed temperature (--compare all: and two adaptive baselines), scored with the reward it was
trained on (evaluate.py).

Everything collected is written to out_dir as it is made (one file per batch, written atomically);
a killed run started again with the same command resumes where it stopped, without regenerating or
duplicating samples (runs.py).
"""
import argparse
import math
import os
import random
import sys
import time
import zlib
from pathlib import Path

import torch

import parallel
import runs
import tasks
from adaptive_head import DEFAULT_TEMPERATURES, AdaptiveDecoder, config_name, truncates
from checkpoints import load_model
from cli import (SEED_RANGE, Progress, check_device, check_settings, check_writable, default_device, duration,
                 model_dtype, one_line_errors, parse_configs, plural, typed)
from evaluate import (batches_by_length, evaluate, exact_ad_seq, methods, pooled_win_rates, run_method, run_methods,
                      samples_per_prompt)
from losses import LOSSES
from lpo import PAIR_RULES, preference_accuracy, preference_pairs, same_temperatures
from runs import load_or_exit, save_atomic
from sample import generate_batch
from tasks import judge as judges
from tokenizer import Tokenizer


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    method_arguments(p)
    machine_arguments(p)
    return p


def defaults():
    """Every setting's default, what a key missing from an older run's config.json stands for."""
    args = parser().parse_args([])
    args.loss = "lpo"
    return runs.settings(args)


def parse_args(argv=None):
    args = parser().parse_args(argv)
    # every setting in its range before anything is loaded or written
    check_settings(args, at_least={"n_samples": (2, ": a pair needs two responses to a prompt"),
                                   "max_new_tokens": 1, "prompts_per_round": 1, "test_prompts": 1,
                                   "val_prompts": 1, "rounds": 0,
                                   "epochs": 1, "batch_size": 1, "train_batch_size": 1, "beta": 0, "lr": 0},
                   between={"explore": (0, 1), "seed": SEED_RANGE, "clip": (0, 0.99)})
    configs = parse_configs(args.temperatures, typed(sys.argv[1:] if argv is None else argv, "--configs",
                                                     "--temperatures"))
    args.loss = args.loss or ("ce" if args.head == "continuous" else "lpo")
    if LOSSES[args.loss].head != args.head:
        sys.exit(f"error: --loss {args.loss} trains a {LOSSES[args.loss].head} head, not --head {args.head}; "
                 f"the continuous head is trained by ce, the discrete one by {', '.join(n for n, f in LOSSES.items() if f.head == 'discrete')}")
    if args.head == "continuous" and truncates(configs):
        sys.exit("error: --head continuous predicts a temperature alone; give --temperatures, not configurations")
    check_device(args.device)
    if args.explore is None:
        args.explore = 1.0 if args.level == "sequence" else 0.5
    if args.out_dir == "":
        sys.exit("error: --out_dir is empty; give a directory (default: out/<task>_<level>)")
    if args.data_dir:  # where the tasks read their data
        os.environ["LPO_DATA_DIR"] = args.data_dir
    return args


def method_arguments(p):
    """What the run is: the task, the head, the samples, the fit (a run's settings, runs.py)."""
    p.add_argument("--model", default="smollm2", help="smollm2, a .gguf file, a model directory or a hub id")
    p.add_argument("--task", default="ultramathstories_arithmetic",
                   help=f"one of {', '.join(tasks.TASKS)} or a mix: {', '.join(tasks.MIXES)}")
    p.add_argument("--level", default="sequence", choices=["sequence", "token"])
    p.add_argument("--loss", default=None, choices=list(LOSSES), help="how the head is fitted (losses.py): the "
                   "paper's lpo (a, the default), lpo_marginal (c), nll (d); grpo, policy gradient (grpo.py); ce, "
                   "the continuous head's cross-entropy (the default with --head continuous)")
    p.add_argument("--head", default="discrete", choices=["discrete", "continuous"], help="the paper's head, a "
                   "distribution over the --temperatures (discrete), or one predicting the temperature itself "
                   "(continuous_head.py; its samples are drawn uniformly over the --temperatures)")
    p.add_argument("--clip", type=float, default=0.2, help="--loss grpo: PPO's clip of the importance weights "
                   "pi / q to [1 - clip, 1 + clip] (0: no clip)")
    p.add_argument("--configs", "--temperatures", dest="temperatures", default=",".join(map(str, DEFAULT_TEMPERATURES)),
                   help="the head's K choices: temperatures (the paper's), or decoding configurations, items "
                   "T/top_p=P, T/min_p=M or T/top_p=P/min_p=M (e.g. 0,0.4,0.8,1.0,1.0/top_p=0.9,1.2/min_p=0.1)")
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
    p.add_argument("--batch_size", type=int, default=64, help="rows per generation batch (validation and "
                   "evaluation decode every fixed temperature of a batch in one call: this many rows per "
                   "temperature)")
    p.add_argument("--train_batch_size", type=int, default=32, help="pairs per optimizer step")


def machine_arguments(p):
    """The machine, what the evaluation compares with, the seed, where the run reads and writes."""
    p.add_argument("--device", default=default_device())
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="the LM's (default: bf16 on CUDA)")
    p.add_argument("--judge", default="offline", help="for judged tasks: 'offline' (the LM itself rates "
                   "responses, see tasks/judge.py) or a reward model (directory or hub id)")
    p.add_argument("--compare", default="fixed", choices=["none", "fixed", "all"], help="what the evaluation "
                   "at the end runs besides AD: nothing, every fixed temperature of the set (what the paper's "
                   "claim needs), or those and min-p and EDT (the full sweep)")
    p.add_argument("--data_dir", default=None, help="local copies of the datasets (else $LPO_DATA_DIR, "
                   "else ~/.cache/lpo/data, downloading what is missing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out_dir", default=None, help="default: out/<task>_<level>")
    p.add_argument("--samples_from", default=None, help="another run's directory: reuse its validation and "
                   "first-round samples (with --explore 1, every round's), which do not depend on how the head "
                   "is fitted (--loss, --lr, --epochs, --pairs...: ablations on the same samples, see the "
                   "README)")
    p.add_argument("--compile", action="store_true", help="generate with a compiled decode step "
                   "(torch.compile; see the README's Speed section for when it pays off)")


# -----------------------------------------------------------------------------
# the prompts: the rounds', the validation split, the held-out ones

def split_prompts(task, val_prompts, test_prompts, seed):
    """(training, validation, held-out) examples; validation prompts are training prompts set aside."""
    train = tasks.prompts(task, "train")
    val = tasks.prompts(task, "train", n=val_prompts, seed=seed)
    val_ids = {ex["id"] for ex in val}
    train = [ex for ex in train if ex["id"] not in val_ids]
    test = tasks.prompts(task, "test", n=test_prompts, seed=seed)
    for split, exs in (("training", train), ("validation", val), ("held-out", test)):
        for name in tasks.mix(task):
            if not any(ex["task"] == name for ex in exs):
                sys.exit(f"error: task {name} has no {split} prompts with these settings (--val_prompts "
                         f"{val_prompts}, --test_prompts {test_prompts}); its data may be too small")
    return train, val, test


def round_prompts(train_examples, task, prompts_per_round, rng):
    """A round's training prompts: a mix's tasks get them in the shares tasks.MIXES gives."""
    by_task = {}
    for ex in train_examples:
        by_task.setdefault(ex["task"], []).append(ex)
    shares = tasks.mix(task)
    examples = []
    for name, exs in by_task.items():
        k = round(prompts_per_round * shares[name] / sum(shares.values()))
        examples += rng.sample(exs, min(k, len(exs)))
    return examples


def choices_said(configs):
    """The head's choices for people: "temperatures [0.0, 0.4]", or the configurations' names."""
    if not truncates(configs):
        return f"temperatures {[t for t, _, _ in configs]}"
    return f"configurations {', '.join(config_name(c) for c in configs)}"


def set_up(args, examples):
    """The frozen LM in its dtype, its tokenizer, the judge (for the tasks a judge scores, else None)."""
    torch.manual_seed(args.seed)  # the head's initialisation below draws from it
    dtype = model_dtype(args.dtype, args.device)
    model = load_model(args.model, device=args.device, dtype=dtype)
    tok = Tokenizer.from_pretrained(args.model)
    longest = max(len(tasks.prompt_ids(tok, ex)) for ex in examples)
    if longest + args.max_new_tokens > model.config.max_seq_len:
        sys.exit(f"error: the longest prompt ({longest} tokens) plus --max_new_tokens {args.max_new_tokens} is "
                 f"longer than {args.model}'s context of {model.config.max_seq_len} tokens; ask for fewer new tokens")
    judged = any(tasks.get_task(name).JUDGED for name in tasks.mix(args.task))
    judge = judges.load(args.judge, model, tok) if judged else None
    print(f"{args.model}: {model.config.n_layer} layers, d={model.config.d_model}, {dtype} on {args.device}; "
          f"head: {args.level} level, {choices_said(parse_configs(args.temperatures))}")
    for name in tasks.mix(args.task):  # a stand-in task says so (e.g. arithmetic in place of GSM8K)
        if tasks.get_task(name).LABEL:
            print(f"{name}: {tasks.get_task(name).LABEL}")
    return model, tok, judge


# -----------------------------------------------------------------------------
# collecting samples: generate -> decode -> reward

def collect_batch(model, tok, judge, head, exs, n_samples, max_new_tokens, explore, seed, compile=False):
    """n_samples responses to each example of exs, generated with the head (temperatures drawn from it,
    with explore), decoded and scored with the task's reward: the samples, row i*N + j for example i."""
    N = n_samples
    prompts = [tasks.prompt_ids(tok, ex) for ex in exs for _ in range(N)]
    g = generate_batch(model, prompts, max_new_tokens, head=head, selection="sample", explore=explore,
                       stop_ids=tok.stop_ids, seed=seed, keep_hidden=True, compile=compile)
    responses = [tok.decode(t) for t in g.tokens]
    if judge is not None:  # the story reward reads the LM's surprisal of each response: generation has it
        judge.remember_surprisal([exs[j // N]["prompt"] for j in range(len(prompts))], responses, g.logprobs)
    rewards = tasks.rewards(exs, responses, judge)
    hidden = to_cpu(g.hidden.float())  # (rows, steps, d): one transfer from a GPU
    return [{"id": exs[j // N]["id"], "kind": tasks.subtask(exs[j // N]), "response": responses[j],
             "tokens": g.tokens[j], "stop": g.stops[j], "choices": g.choices[j], "reward": rewards[j],
             # log q of each choice under the distribution it was drawn from (grpo.py's importance weights)
             "behaviour_logps": g.behaviour_logps[j],
             # the states the choices were made from: the response's tokens, plus its stop token
             "hidden": hidden[j, :len(g.choices[j])].clone()}
            for j in range(len(prompts))]


def to_cpu(x):
    """x on the CPU; from a GPU through pinned memory, the fast path for a device-to-host copy."""
    if x.device.type != "cuda":
        return x
    host = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
    return host.copy_(x)


def collect(model, tok, judge, head, examples, name, out, args):
    """collect_batch over the examples, in batches of similar prompt lengths, one file per batch
    (out/samples/<name>_batch<b>.pt) so that a killed run loses at most the batch in flight; the
    batches saved before are read back. args: n_samples, batch_size, max_new_tokens, explore, seed,
    compile. Returns the samples of all batches."""
    N = args.n_samples
    lengths = [len(tasks.prompt_ids(tok, ex)) for ex in examples]
    batches = [[examples[i] for i in b] for b in batches_by_length(lengths, [N] * len(examples), args.batch_size)]
    path = lambda b: out / "samples" / f"{name}_batch{b:04d}.pt"  # noqa: E731
    parallel.wait()  # every rank sees the same files saved before
    saved = {b for b in range(len(batches)) if path(b).exists()}
    if saved:  # saved before a restart (resume): read back, not generated (no rate to measure)
        print(f"  {name}: read back {plural(len(saved), 'batch', 'batches')} saved before")
    to_make = [b for b in range(len(batches)) if b not in saved and parallel.mine(b)]  # torchrun: a share
    prog, made = Progress(name, N * sum(len(batches[b]) for b in to_make), "samples"), 0
    for b in to_make:
        batch = collect_batch(model, tok, judge, head, batches[b], N, args.max_new_tokens, args.explore,
                              zlib.crc32(f"{args.seed}/{name}/{b}".encode()), args.compile)
        save_atomic(lambda tmp: torch.save(batch, tmp), path(b))
        made += len(batch)
        prog.update(made)
    parallel.wait()  # every rank's batches are written
    return [s for b in range(len(batches)) for s in load_or_exit(path(b), "samples")]


# -----------------------------------------------------------------------------
# the validation split: every fixed temperature once, then any head's win rates from it

def validation_fixed(model, tok, judge, configs, val_examples, val_n, out, args):
    """Every fixed configuration (temperature) on the validation prompts (val_n responses to each), one
    file per configuration (a resumed run reads them back). Returns ({"tau=t": evaluate.run_method's
    result}, the responses decoded per second here, None when all were read back)."""
    fixed = methods(None, "fixed", configs)
    path = lambda name: out / "samples" / f"val_{name.replace('/', '_')}.pt"  # noqa: E731  (tau=1_top_p=0.9)
    parallel.wait()  # every rank sees the same files saved before
    to_decode = [name for name in fixed if not path(name).exists()]
    if len(to_decode) < len(fixed):  # saved before a restart (resume): read back, not generated
        print(f"  validation: read back {plural(len(fixed) - len(to_decode), 'temperature')} saved before")
    t0 = time.time()
    # all of them together: a batch of prompts goes through the model once for every temperature
    decoded = run_methods(model, tok, {name: fixed[name] for name in to_decode}, val_examples, val_n,
                          args.max_new_tokens, args.batch_size, args.seed, judge, args.compile,
                          phase="validation") if to_decode else {}
    if parallel.main_rank():  # under torchrun every rank has the results: rank 0 writes them
        for name, res in decoded.items():
            save_atomic(lambda tmp: torch.save(res, tmp), path(name))
    parallel.wait()
    rate = len(decoded) * sum(val_n) / (time.time() - t0) if decoded else None
    return {name: load_or_exit(path(name), "results") for name in fixed}, rate


def learning_metric(head, fixed, model, tok, judge, val_examples, val_n, args):
    """What a head does on the validation split: AD's pooled win rate against every fixed temperature
    ({name: (rate, lo, hi)}) and its mean temperature per subtask. AD_seq: no generation
    (exact_ad_seq); AD_tok and a continuous head: its responses to the validation prompts, generated."""
    head.eval()
    if head.level == "sequence" and not head.continuous:
        ad = exact_ad_seq(head, fixed)
    else:
        ad = run_method(model, tok, dict(head=head, selection="greedy"), val_examples, val_n,
                        args.max_new_tokens, args.batch_size, args.seed, judge, args.compile, lambda k: None)
    subtask_of = [tasks.subtask(ex) for ex in val_examples]
    pooled = pooled_win_rates({"AD": ad["reward"], **{n: r["reward"] for n, r in fixed.items()}}, subtask_of,
                              list(fixed))
    wins = {name: m["ad_win_rate"] for name, m in pooled["methods"].items()}
    sub_of, temps = {ex["id"]: tasks.subtask(ex) for ex in val_examples}, {}
    for s in ad["samples"]:  # the temperature of every step (AD_seq: the one it chose, once a response)
        temps.setdefault(sub_of[s["id"]], []).extend(s["temperatures"] if head.level == "token"
                                                     else s["temperatures"][:1])
    return wins, {sub: sum(ts) / len(ts) for sub, ts in sorted(temps.items())}


def metric_line(wins, mean_tau):
    w = " / ".join(f"{100 * rate:.0f}" for rate, lo, hi in wins.values())
    taus = ", ".join(f"{sub} {t:.2f}" for sub, t in mean_tau.items())
    return f"AD wins {w}% against {', '.join(wins)}; mean temperature {taus}"


# -----------------------------------------------------------------------------
# a round's pairs and training

def round_line(r, samples, pairs, n_all, pair_rule, level, item="pair"):
    """What round r collected: its mean reward per subtask, its pairs (and how many of the paper's
    best/worst pairs have the same temperature on both sides, which no loss can learn from); or,
    for a loss that trains on other items (losses.py: responses, targets), how many."""
    by_kind = {}  # the mean reward of each subtask: their rewards are on different scales
    for s in samples:
        by_kind.setdefault(s["kind"], []).append(s["reward"])
    means = ", ".join(f"{k} {sum(v) / len(v):.3f}" for k, v in sorted(by_kind.items()))
    said = f"round {r}: {plural(len(samples), 'sample')}, mean reward {means}; "
    if item != "pair":
        return said + f"{plural(len(pairs), 'new ' + item)} ({n_all} in all)"
    if not pairs:  # said plainly: the round adds nothing to train on
        why = "the same reward" + (" or the same temperature" if pair_rule == "all" else "")
        return said + (f"0 new pairs: every prompt's responses got {why}; nothing new to learn this round "
                       f"({plural(n_all, 'pair')} in all)")
    n_pairs = {k: sum(c["kind"] == k for c, _ in pairs) for k in sorted(by_kind)}
    best_worst = preference_pairs(samples, "best_worst")  # the paper's pairs, said even where not used
    same = sum(same_temperatures(c, w, level) for c, w in best_worst)
    return said + (f"{plural(len(pairs), 'new pair')} ({', '.join(f'{k} {n}' for k, n in n_pairs.items())}), "
                   f"{n_all} in all; best/worst pairs with the same temperature on both sides: "
                   f"{same} of {len(best_worst)}")


def train_head(head, opt, items, ref_head, lm_head, rng, r, args):
    """args.epochs passes over all items so far (pairs for LPO, losses.py; a fresh order each, from rng),
    args.train_batch_size items a step: the loss args.loss, then AdamW's step. Stops the run, saving
    nothing, when the loss or the weights stop being finite. Returns the seconds it took."""
    head.train()
    t0, steps = time.time(), args.epochs * math.ceil(len(items) / args.train_batch_size)
    prog, step = Progress("train", steps, "steps"), 0
    for epoch in range(args.epochs):
        order = list(range(len(items)))  # a fresh permutation: items keeps its order (resume)
        rng.shuffle(order)
        for i in range(0, len(order), args.train_batch_size):
            batch = [items[j] for j in order[i:i + args.train_batch_size]]
            loss = LOSSES[args.loss].loss(head, batch, ref_head, lm_head, args)
            stop_unless_finite(loss, f"the loss is {loss.item()} at round {r}, step {step + 1}", args)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            prog.update(step, f"loss {loss.item():.4f}")
    head.eval()
    stop_unless_finite(torch.cat([p.flatten() for p in head.parameters()]),
                       f"the head's weights are no longer finite after round {r}", args)
    parallel.same_weights(head)  # under torchrun every rank trained alike: rank 0's weights, to be sure
    return time.time() - t0


def stop_unless_finite(x, what, args):
    if not torch.isfinite(x).all():
        sys.exit(f"error: {what} (--lr {args.lr}, --beta {args.beta}): nothing was saved for this round; "
                 "use a smaller --lr or --beta")


# -----------------------------------------------------------------------------
# what the run will do, and which round's head it keeps

def plan(args, configs, val_n, n_val, train_ex, test_ex, eval_n):
    """The plan line, printed before the work; returns the counts the time estimate needs:
    (prompts a round, methods evaluated, held-out responses per method)."""
    n_round = len(round_prompts(train_ex, args.task, args.prompts_per_round, rng_of(args, 0)))
    n_eval = sum(samples_per_prompt(test_ex, eval_n))
    n_methods = len(methods(None, args.compare, configs)) + (args.level == "token" or args.compare == "none")
    kind = "configuration" if truncates(configs) else "temperature"
    print(f"plan: 1) validation: {plural(len(configs), kind)} x {plural(sum(val_n), 'response')} to "
          f"{plural(n_val, 'training prompt')}; 2) {plural(args.rounds, 'round')}: "
          f"{plural(n_round, 'prompt')} x {plural(args.n_samples, 'sample')}, then {plural(args.epochs, 'epoch')} "
          f"on all pairs so far; 3) evaluation: {plural(n_methods, 'method')} x {plural(n_eval, 'response')} to "
          f"{plural(len(test_ex), 'held-out prompt')}\n(how long it takes is measured here: an estimate follows "
          "the validation phase)")
    return n_round, n_methods, n_eval


def estimate_line(rate, args, start, counts, val_n):
    """The rest of the run's time, from the validation phase's rate: every phase generates and scores alike."""
    n_round, n_methods, n_eval = counts
    left = ((args.rounds - start) * n_round * args.n_samples + n_methods * n_eval
            + (args.level == "token") * (args.rounds - start) * sum(val_n))
    return (f"validation decoded {rate:.1f} responses/s here: the rest of the run, {plural(left, 'response')}, "
            f"should take about {duration(left / rate)}")


@torch.no_grad()
def fit_line(head, items, args):
    """How the head fits what it was trained on: the preference accuracy of pairs; grpo, the mean
    P(choice) of the responses better and worse than their prompt's mean; ce, T on the targets."""
    mean = lambda xs: sum(xs) / max(len(xs), 1)  # noqa: E731
    steps = lambda s: slice(0, 1) if args.level == "sequence" else slice(None)  # noqa: E731  (the choices made)
    if LOSSES[args.loss].item == "target":
        t = [head.temperature(s["hidden"][steps(s)]).mean().item() for s in items]
        drawn = [head.temperatures[torch.tensor(s["choices"][steps(s)])].mean().item() for s in items]
        return (f"mean temperature on the {plural(len(items), 'target')} {mean(t):.2f} (they were drawn at "
                f"{mean(drawn):.2f} on average)")
    if LOSSES[args.loss].item == "response":
        p = {better: [head.log_probs(s["hidden"][steps(s)]).exp().gather(
            -1, torch.tensor(s["choices"][steps(s)])[:, None]).mean().item() for s, a in items if (a > 0) == better]
            for better in (True, False)}
        return (f"mean P(choice) of the responses better than their prompt's mean {mean(p[True]):.3f}, of the worse "
                f"{mean(p[False]):.3f} (uniform: {1 / len(head.configs):.3f})")
    acc, n_acc = preference_accuracy(head, items, args.level, args.device)
    return (f"train preference accuracy {acc:.3f} ({plural(n_acc, 'pair')} with different temperatures)" if n_acc
            else "no pair with different temperatures to train on yet")


def best_round(validation, rounds):
    """The round whose head's validation win rate against its strongest fixed temperature is best (a
    tie: the later round, trained on more pairs), and the line that says so."""
    worst = {r: min(rate for rate, lo, hi in validation(r)[0].values()) for r in range(1, rounds + 1)}
    best = max(worst, key=lambda r: (worst[r], r))
    return best, (f"head.pt: the head of round {best} (validation: its lowest win rate against a fixed temperature "
                  f"{100 * worst[best]:.0f}%; by round: {', '.join(f'{100 * w:.0f}%' for w in worst.values())})")


# -----------------------------------------------------------------------------
# the run: set-up, validation split, then the online loop, round after round

def main(argv=None, evaluate_head=True):
    """The run; without evaluate_head it stops at head.pt (compare.py evaluates the heads together)."""
    args = parse_args(argv)
    args.device = parallel.start(args.device)  # under torchrun: join the other ranks (parallel.py)
    started, configs = time.time(), parse_configs(args.temperatures)
    one_line_errors()  # a user's mistake (a missing file, a bad weight file...) is one line, not a traceback
    runs.exit_on_interrupt()
    train_ex, val_ex, test_ex = split_prompts(args.task, args.val_prompts, args.test_prompts, args.seed)
    out, config = Path(args.out_dir or f"out/{args.task}_{args.level}"), runs.settings(args)
    check_writable(out, "directory")
    runs.check_same_run(out, config, defaults())  # the run's directory holds one run (runs.py)
    model, tok, judge = set_up(args, train_ex + val_ex + test_ex)
    runs.open_run(out, config, args.samples_from, args.explore == 1, defaults())
    # responses per prompt: a relative reward (synthetic's) as many as training drew, else EVAL_SAMPLES
    eval_n = {name: args.n_samples for name in tasks.mix(args.task) if tasks.get_task(name).RELATIVE}
    val_n, d = samples_per_prompt(val_ex, eval_n), model.config.d_model
    counts = plan(args, configs, val_n, len(val_ex), train_ex, test_ex, eval_n)
    start, head, opt = runs.resume(out, args, d, configs, n_round=counts[0])
    fit, drawer = LOSSES[args.loss], drawing_head(head, configs)  # how the head is fitted; what draws the samples
    items = items_so_far(model, tok, judge, drawer, fit, train_ex, start, out, args)  # resumed: read back
    val_fixed, rate = validation_fixed(model, tok, judge, configs, val_ex, val_n, out, args)
    if rate:
        print(estimate_line(rate, args, start, counts, val_n))
    head_of = lambda r: runs.load_head(out, r, d, configs, args.level, args.device)  # noqa: E731
    validation = lambda r: runs.validation_of(out, r, lambda: learning_metric(  # noqa: E731
        head_of(r), val_fixed, model, tok, judge, val_ex, val_n, args))
    print(f"validation: {plural(len(val_ex), 'training prompt')} set aside; the untrained head ({untrained(head)}): "
          f"{metric_line(*validation(0))}")
    init_head = head_of(0)

    for r in range(start, args.rounds):  # the online loop: generate -> reward -> pairs -> loss -> step
        t0, rng = time.time(), rng_of(args, r)
        examples = round_prompts(train_ex, args.task, args.prompts_per_round, rng)
        samples = collect(model, tok, judge, drawer, examples, f"round{r + 1}", out, args)  # 1. generate, reward
        new = fit.items(samples, args)                                    # 2. LPO: better vs worse pairs
        items += new
        print(round_line(r + 1, samples, new, len(items), args.pairs, args.level, fit.item))
        seconds = train_head(head, opt, items, init_head, model.lm_head, rng, r + 1, args)  # 3. loss and step
        runs.save_round(out, r + 1, head, opt, seconds)
        print(f"round {r + 1} done in {duration(time.time() - t0)}: {fit_line(head, items, args)}; "
              f"validation: {metric_line(*validation(r + 1))}", flush=True)           # 4. learning metric

    if args.rounds > 0:  # head.pt: the best round's head
        best, said = best_round(validation, args.rounds)
        head = head_of(best)
        print(said)
    if parallel.main_rank():
        save_atomic(head.save, out / "head.pt")
    if evaluate_head:
        held_out(model, tok, judge, head, test_ex, eval_n, out, config, started, validation, args)


def held_out(model, tok, judge, head, test_ex, eval_n, out, config, started, validation, args):
    """The head on the held-out prompts, against the methods of args.compare (evaluate.py): report.json and
    report.html in out, with the run's settings and the learning metric of every round (validation(r))."""
    print(f"\nevaluation on {plural(len(test_ex), 'held-out prompt')}:")
    history = [dict(zip(("round", "wins", "mean_tau"), (r, *validation(r)))) for r in range(args.rounds + 1)]
    settings = dict(config, model=str(args.model), device=args.device,
                    dtype=str(model_dtype(args.dtype, args.device)).removeprefix("torch."), rounds=args.rounds,
                    started=started)
    evaluate(model, tok, head, test_ex, eval_n, args.max_new_tokens, args.batch_size, args.seed, out,
             compare=args.compare, judge=judge, settings=settings, compile=args.compile, rounds=history)


def items_so_far(model, tok, judge, drawer, fit, train_ex, start, out, args):
    """What the rounds before round start + 1 give to train on (fit.items: LPO's pairs...), from their
    samples read back (a resumed run: a round alone is too few to train on, every round trains on all)."""
    return [item for r in range(start) for item in fit.items(collect(
        model, tok, judge, drawer, round_prompts(train_ex, args.task, args.prompts_per_round, rng_of(args, r)),
        f"round{r + 1}", out, args), args)]


def untrained(head):
    """What the untrained head does, for people."""
    if head.continuous:
        return f"T = {(head.t_min + head.t_max) / 2:g} everywhere"
    return "uniform: its argmax is the first temperature"


def drawing_head(head, configs):
    """The head the samples are drawn with: the head trained; for a continuous one, which draws nothing,
    a uniform one over the configurations (the untrained AdaptiveDecoder's, what an LPO run's first
    round draws from)."""
    if not head.continuous:
        return head
    return AdaptiveDecoder(head.d_model, configs, head.level).to(next(head.parameters()).device)


def rng_of(args, r):
    """Round r + 1's random numbers: its prompts, then the order of the pairs in each epoch."""
    return random.Random(args.seed * 1000 + r)


if __name__ == "__main__":
    main()
