"""
Evaluate a trained AdaptiveDecoder (or a continuous head, continuous_head.py: by generating, it has
no exact evaluator) on a task's held-out prompts, as *Adaptive Decoding via Latent Preference
Optimization* (arXiv 2411.09661) does: AD's win rate against every fixed temperature of
its set; and (--compare all) against two adaptive baselines the paper does not compare with:
- min-p sampling (temperature 1, tokens below 0.1 x the top probability dropped),
- EDT, entropy-based dynamic temperature: tau = T0 * N^(theta / H) at every step.

    python evaluate.py --head out/synthetic_sequence/head.pt   # the task and settings of its run
    python evaluate.py --sweep --task ultramathstories_arithmetic   # fixed temperatures on training prompts

For each subtask it reports the mean reward of every method, the win rate of AD against each
(per prompt: win 1, tie 0.5, loss 0) with a 95% bootstrap confidence interval, AD's temperature
histogram (the paper's Fig. 4) and what the task's temperature_metrics find (its Fig. 5); for a mix
of tasks, AD's win rates on all prompts pooled and an oracle's (pooled_win_rates). The reward is the
one training used: a task whose reward is relative (the synthetic varied kind) gets N responses per prompt,
scored together. Written to stdout (markdown), eval_report.json and eval_report.html (tables,
histograms and per-token temperatures, Fig. 6) in --out_dir, the head's directory by default (train.py's
own evaluation there is report.json and report.html; --name report replaces it).
The task and the settings (held-out prompts, max_new_tokens, seed, ...) are those of the head's run,
read from the config.json train.py wrote beside head.pt; a flag given on the command line wins.
--sweep runs the fixed temperatures alone on training prompts: how a mixture whose subtasks want
different temperatures is chosen (sweep.json).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

import parallel
import runs
import tasks
from adaptive_head import DEFAULT_TEMPERATURES, as_config, config_name, truncates
from cli import (SEED_RANGE, Progress, check_device, check_settings, check_writable, default_device, model_dtype,
                 one_line_errors, parse_configs, plural, typed)
from report import print_report, print_sweep, report_html
from sample import Generation, config_rows, generate_batch
from tasks.stats import bootstrap_ci, win_rate


def methods(head, compare="all", configs=None):
    """What evaluation runs, {name: generate_batch's keyword arguments}: AD with greedy temperature
    selection (when there is a head); with compare "fixed" or "all", every fixed configuration of its
    choices (or of configs: temperatures, or (temperature, top_p, min_p) tuples), each named by
    config_name; with "all", also the two adaptive baselines, min-p and EDT."""
    m = {"AD": dict(head=head, selection="greedy")} if head is not None else {}
    if compare == "none":
        return m
    for c in (head.configs if configs is None else map(as_config, configs)):
        m[config_name(c)] = config_settings(c)
    if compare == "all":
        m["min-p 0.1"] = dict(temperature=1.0, min_p=0.1)
        m["EDT"] = dict(edt=(1.0, 0.8, 1.0))
    return m


def config_settings(c):
    """A configuration as generate_batch's keyword arguments: its temperature, and its top_p and min_p if set."""
    t, top_p, min_p = c
    return dict(temperature=t, **({"top_p": top_p} if top_p is not None else {}),
                **({"min_p": min_p} if min_p is not None else {}))


def fixed_config(name, kw):
    """The configuration of a method that is one (named by config_name), else None (AD, a baseline)."""
    if not set(kw) <= {"temperature", "top_p", "min_p"}:
        return None
    c = (kw["temperature"], kw.get("top_p"), kw.get("min_p"))
    return c if config_name(c) == name else None


def samples_per_prompt(examples, n_samples=None):
    """Responses per prompt, a list: n_samples for every task (an int), per task ({task: n}), or
    each task's EVAL_SAMPLES (None)."""
    def n(task):
        if isinstance(n_samples, dict) and task in n_samples:
            return n_samples[task]
        return n_samples if isinstance(n_samples, int) else tasks.get_task(task).EVAL_SAMPLES
    return [n(ex["task"]) for ex in examples]


def run_methods(model, tok, to_run, examples, n_per_prompt, max_new_tokens, batch_size, seed, judge,
                compile=False, phase="evaluation (held-out)", progress=None):
    """Every method of to_run ({name: generate()'s keyword arguments}, see methods) on the examples,
    n_per_prompt[i] responses to example i, in batches of at most batch_size rows per method (a
    prompt's responses in one batch, subtasks mixed). The N responses to a prompt are scored together by the
    task's reward (tasks.rewards: a relative reward compares them), the reward the head was trained on.
    Returns {name: result}, a result per method holding, per prompt, the mean reward, the task's
    metrics, the LM's final hidden state at the last prompt token ("states", (P, d): what AD_seq
    chooses from), and all the samples. The batches and their seeds depend only on the examples and
    n_per_prompt, never on the method: row for row, the same random numbers drive every method (what
    exact_ad_seq relies on). The fixed configurations of a batch decode together, in one call (a batch
    of rows per configuration, each drawing the random numbers it would draw alone: sample.config_rows);
    any other method decodes on its own, copying the batch's prefill (generate_batch's reuse_prefill).
    A batch's responses are scored in one call of the judge. Under torchrun each rank runs its share of
    the batches (parallel.py) and every rank gets the whole result. progress(done, name), else a
    progress line named phase."""
    ids = [tasks.prompt_ids(tok, ex) for ex in examples]
    batches = batches_by_length([len(p) for p in ids], n_per_prompt, batch_size)
    starts = [sum(map(len, batches[:b])) for b in range(len(batches))]  # a batch's seed: seed + its start
    ours = [b for b in range(len(batches)) if parallel.mine(b)]
    if progress is None:
        prog = Progress(phase, len(to_run) * sum(n_per_prompt[i] for b in ours for i in batches[b]), "responses")
        progress = lambda done, name: prog.update(done, f"({name})")  # noqa: E731
    fixed = {name: fixed_config(name, kw) for name, kw in to_run.items() if fixed_config(name, kw)}
    calls = ([list(fixed)] if fixed else []) + [[name] for name in to_run if name not in fixed]
    results, done = {}, 0  # per example: {name: (reward, metrics, state, samples)}
    for batch, first in ((batches[b], starts[b]) for b in ours):
        exs, ns = [examples[i] for i in batch], [n_per_prompt[i] for i in batch]
        prompts = [ids[i] for i, n in zip(batch, ns) for _ in range(n)]
        size = len(prompts)
        prefills, gens = {}, {}  # the batch's prefill for the methods decoded alone: made once, then copied
        for names in calls:
            kw = to_run[names[0]] if len(names) == 1 else config_rows([fixed[n] for n in names], size)
            g = generate_batch(model, prompts * len(names), max_new_tokens, stop_ids=tok.stop_ids,
                               seed=seed + first, compile=compile,
                               reuse_prefill=prefills if len(names) == 1 else None, **kw)
            gens.update({name: rows_of(g, m * size, (m + 1) * size) for m, name in enumerate(names)})
            done += size * len(names)
            progress(done, ", ".join(names))
        scored = score_responses(tok, exs, ns, [gens[name] for name in to_run], judge, list(to_run.values()))
        for name, per_example in zip(to_run, scored):
            for i, result in zip(batch, per_example):
                results.setdefault(i, {})[name] = result
    results = parallel.gather(results)  # every rank's batches
    res = {name: [results[i][name] for i in range(len(examples))] for name in to_run}
    return {name: {"reward": [r[0] for r in rs], "metrics": [r[1] for r in rs],
                   "states": torch.stack([r[2] for r in rs]), "samples": [s for r in rs for s in r[3]]}
            for name, rs in res.items()}


def batches_by_length(lengths, n_per_prompt, batch_size):
    """Prompts (their lengths) in batches of similar lengths, since a batch is left-padded to its
    longest: in order of length, the next prompts with all their responses (n_per_prompt[i] for
    prompt i), batch_size rows at most (a prompt alone may have more). Lists of prompt indices."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, b = [], 0
    while b < len(order):
        e, size = b + 1, n_per_prompt[order[b]]
        while e < len(order) and size + n_per_prompt[order[e]] <= batch_size:
            size, e = size + n_per_prompt[order[e]], e + 1
        batches.append(order[b:e])
        b = e
    return batches


def rows_of(g, start, end):
    """Rows start..end-1 of a Generation (the rows of one method in a call that ran several)."""
    cut = lambda x: x[start:end] if x is not None else None  # noqa: E731
    return Generation(tokens=cut(g.tokens), choices=cut(g.choices), hidden=cut(g.hidden), stops=cut(g.stops),
                      prompt_hidden=cut(g.prompt_hidden), logprobs=cut(g.logprobs), temperatures=cut(g.temperatures),
                      behaviour_logps=cut(g.behaviour_logps))


def score_responses(tok, exs, ns, gens, judge, kws):
    """A batch's responses for every method (Generation gens[m] for method m, generate()'s keyword
    arguments kws[m]; ns[i] rows for example i) decoded and scored, all methods in one call of the
    rewards (so one of the judge): per method, per example, (mean reward, the task's metrics, the
    state at its last prompt token, its samples)."""
    responses = [[tok.decode(t) for t in g.tokens] for g in gens]
    prompts = [ex["prompt"] for ex, n in zip(exs, ns) for _ in range(n)]
    if hasattr(judge, "remember_surprisal"):  # the story reward reads the surprisal: generation has it
        for g, rs in zip(gens, responses):
            judge.remember_surprisal(prompts, rs, g.logprobs)
    rewards = tasks.rewards(exs * len(gens), [r for rs in responses for r in rs], judge, counts=ns * len(gens))
    out = []
    for m, (g, kw) in enumerate(zip(gens, kws)):
        head = kw.get("head")
        rs, first, per_example = rewards[m * len(prompts):(m + 1) * len(prompts)], 0, []
        for ex, n in zip(exs, ns):  # example i: rows first ... first + n - 1
            rows = range(first, first + n)
            task = tasks.get_task(ex["task"])  # task-specific metrics, e.g. maj@8 or the judge alone
            per_example.append((
                sum(rs[j] for j in rows) / n,
                task.group_metrics(ex, [responses[m][j] for j in rows], [rs[j] for j in rows], judge),
                g.prompt_hidden[first].float().cpu(),
                [{"id": ex["id"], "response": responses[m][j], "tokens": g.tokens[j], "reward": rs[j],
                  **choices_of(head, g, j)} for j in rows]))
            first += n
        out.append(per_example)
    return out


def choices_of(head, g, j):
    """Row j's choices and temperatures, as samples keep them: a head's choices (the index of each step's
    choice; a continuous head's temperatures counted at the nearest of its grid) and the temperature of
    each step; without a head, no choices and the temperatures it drew at (a fixed one, EDT's)."""
    if head is None:
        return {"choices": None, "temperatures": g.temperatures[j] if g.temperatures is not None else None}
    if head.continuous:
        return {"choices": head.nearest(g.choices[j]), "temperatures": g.choices[j]}
    temps = head.temperatures.tolist()
    return {"choices": g.choices[j], "temperatures": [temps[k] for k in g.choices[j]]}


def run_method(model, tok, kw, examples, n_per_prompt, max_new_tokens, batch_size, seed, judge, compile,
               progress):
    """One method (generate()'s keyword arguments kw) on the examples: run_methods' result for it.
    progress(done)."""
    return run_methods(model, tok, {"method": kw}, examples, n_per_prompt, max_new_tokens, batch_size, seed,
                       judge, compile, progress=lambda done, name: progress(done))["method"]


@torch.no_grad()
def exact_ad_seq(head, results):
    """AD_seq with greedy temperature selection, evaluated without generating anything. AD_seq
    chooses one temperature per prompt, argmax P(tau | h) at the last prompt token, and then samples
    exactly as a fixed temperature does: with the same batches and seeds (run_method), its response
    to a prompt *is* the fixed-tau response, row for row. So once every fixed temperature of the
    head's set has been run, AD_seq's rewards, metrics and samples are a lookup (a lesson about
    AD_seq: it is a per-prompt choice among fixed temperatures, no more). results: {"tau=t": a
    run_method result} for every t of the head's set (every configuration: config_name). Returns a
    run_method-like result for AD."""
    if head.continuous:
        raise ValueError("a continuous head has no fixed-temperature twin: evaluate it by generating (exact=False)")
    temps = head.temperatures.tolist()
    fixed = [results[name] for name in head.names()]
    ks = head.log_probs(fixed[0]["states"]).argmax(-1).tolist()  # the temperature of each prompt
    by_prompt = [{} for _ in ks]  # the fixed runs' samples, per prompt (their order is the prompts')
    ids = list(dict.fromkeys(s["id"] for s in fixed[0]["samples"]))
    for k, res in enumerate(fixed):
        for s in res["samples"]:
            by_prompt[ids.index(s["id"])].setdefault(k, []).append(s)
    out = {"reward": [], "metrics": [], "samples": [], "states": fixed[0]["states"]}
    for i, k in enumerate(ks):
        out["reward"].append(fixed[k]["reward"][i])
        out["metrics"].append(fixed[k]["metrics"][i])
        out["samples"] += [dict(s, choices=[k] * max(1, len(s["tokens"])),
                                temperatures=[temps[k]] * max(1, len(s["tokens"])))
                           for s in by_prompt[i][k]]
    return out


def evaluate(model, tok, head, examples, n_samples=None, max_new_tokens=64, batch_size=48, seed=0,
             out_dir=None, compare="all", judge=None, settings=None, compile=False, exact=True, rounds=None,
             name="report"):
    """AD (greedy temperature selection) and the methods compare asks for (see methods) on the
    examples (AD_seq beside the fixed temperatures: exact_ad_seq, unless exact=False), with
    n_samples responses per prompt and method (see samples_per_prompt), scored by
    the tasks' rewards (judge: for the judged tasks, see tasks/judge.py). settings: what to say of
    the run in the report (a dict; "started", a time.time(), gives the time the run took); rounds: the
    learning metric by round ([{"round", "wins", "mean_tau"}], train.py's validation).
    Prints the tables; with out_dir, writes <name>.json and <name>.html there. Returns the report."""
    n_per_prompt = samples_per_prompt(examples, n_samples)
    to_run = methods(head, compare)
    # AD_seq needs no generation of its own once the fixed temperatures are run (exact_ad_seq)
    exact = exact and head.level == "sequence" and not head.continuous and compare != "none"
    if exact:
        to_run.pop("AD")
    results = run_methods(model, tok, to_run, examples, n_per_prompt, max_new_tokens, batch_size, seed, judge,
                          compile)
    if exact:
        results = {"AD": exact_ad_seq(head, results), **results}

    report = summarise(results, examples, n_per_prompt, head, tok, settings)
    if rounds:
        report["rounds"] = rounds
    print_report(report)
    if out_dir is not None and parallel.main_rank():  # under torchrun: rank 0 writes
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(report, indent=1))
        (out / f"{name}.html").write_text(report_html(report, tok, head, examples, results["AD"]["samples"]))
        print(f"wrote {out / (name + '.json')} and {out / (name + '.html')}")
    return report


def summarise(results, examples, n_per_prompt, head, tok, settings=None):
    """The report of an evaluation (report.json): per subtask, every method's mean reward and
    metrics with AD's win rates against it, AD's temperature choices and what the task finds in them;
    the run's settings; for a mix, the pooled win rates. results: {method: run_method's result}, "AD"
    among them."""
    report = {"level": head.level, "temperatures": head.temperatures.tolist(), "subtasks": {}}
    if head.truncates:  # the choices are configurations: their names (report.py labels them so)
        report["configs"] = head.names()
    if head.continuous:  # its temperatures are counted at the nearest of the grid
        report["continuous"] = [head.t_min, head.t_max]
    for sub in sorted({tasks.subtask(ex) for ex in examples}):
        idx = [i for i, ex in enumerate(examples) if tasks.subtask(ex) == sub]
        report["subtasks"][sub] = subtask_report(results, examples, idx, n_per_prompt[idx[0]], head, tok)
    if settings:
        report["settings"] = {k: v for k, v in settings.items() if k != "started"}
        if "started" in settings:
            report["settings"]["seconds"] = round(time.time() - settings["started"])
    fixed = [name for name in results if name.startswith("tau=")]
    if len(report["subtasks"]) > 1 and fixed:  # a mix: the paper's claim is about all its prompts
        report["pooled"] = pooled_win_rates({name: res["reward"] for name, res in results.items()},
                                            [tasks.subtask(ex) for ex in examples], fixed)
    return report


def subtask_report(results, examples, idx, n_samples, head, tok):
    """One subtask (the examples idx): the methods' rows, AD's temperature counts and metrics."""
    task, temps = tasks.get_task(examples[idx[0]]["task"]), head.temperatures.tolist()
    ad = [results["AD"]["reward"][i] for i in idx]
    rows = {}
    for name, res in results.items():
        r = [res["reward"][i] for i in idx]
        rows[name] = {"mean_reward": sum(r) / len(r)}
        if name != "AD":
            rows[name]["ad_win_rate"] = win_rate(ad, r)  # (rate, lo, hi)
        for key in res["metrics"][idx[0]]:
            m = [res["metrics"][i][key] for i in idx]
            rows[name][key] = sum(m) / len(m)
            if name != "AD":  # AD wins a prompt where its metric is better: lower, for some
                sign = -1 if key in task.LOWER_IS_BETTER else 1
                ad_m = [sign * results["AD"]["metrics"][i][key] for i in idx]
                rows[name][key + " AD win rate"] = win_rate(ad_m, [sign * x for x in m])
    ids = {examples[i]["id"] for i in idx}
    ad_samples = [s for s in results["AD"]["samples"] if s["id"] in ids]
    counts, chosen = [0] * len(temps), []  # AD's temperature choices (a continuous head's: the nearest)
    for s in ad_samples:
        steps = slice(None) if head.level == "token" else slice(0, 1)
        for k in s["choices"][steps]:
            counts[k] += 1
        chosen += s["temperatures"][steps]
    # every method's mean reward with a 95% bootstrap interval over prompts, for report.html's picture
    intervals = {name: bootstrap_ci([res["reward"][i] for i in idx]) for name, res in results.items()}
    out = {"prompts": len(idx), "samples": n_samples, "reward": task.REWARD, "methods": rows,
           "mean_reward_ci": intervals,
           "ad_temperature_counts": counts,
           "ad_mean_temperature": (sum(chosen) / max(len(chosen), 1) if head.continuous else
                                   sum(c * t for c, t in zip(counts, temps)) / max(sum(counts), 1))}
    if task.LABEL:  # e.g. arithmetic: a stand-in for GSM8K, said wherever it is reported
        out["label"] = task.LABEL
    analysis = task.temperature_metrics([examples[i] for i in idx], ad_samples, tok, head.level)
    if analysis:  # e.g. the paper's Fig. 5 for constrained stories
        out["ad_temperature_metrics"] = analysis
    return out


def pooled_win_rates(rewards, subtask_of, fixed):
    """The paper's headline (AD beats every fixed temperature on a mix of tasks): AD's win rate
    against each method on all prompts pooled, each prompt won, tied or lost on its own subtask's
    reward, with a 95% bootstrap interval; and beside it the headroom, the same for an oracle that
    uses the best fixed temperature of each subtask (chosen on these prompts: it shows what is
    possible, it is not a method). AD can only beat every fixed temperature if the oracle can.
    rewards: {method: per-prompt rewards}; subtask_of: per-prompt subtask; fixed: the fixed methods."""
    subs = sorted(set(subtask_of))
    mean = lambda name, sub: (sum(r for r, s in zip(rewards[name], subtask_of) if s == sub)
                              / subtask_of.count(sub))
    best = {sub: max(fixed, key=lambda name: mean(name, sub)) for sub in subs}
    oracle = [rewards[best[s]][i] for i, s in enumerate(subtask_of)]
    win = lambda r: ({"ad_win_rate": win_rate(rewards["AD"], r)} if "AD" in rewards else {})  # none: a sweep
    return {"prompts": len(subtask_of), "oracle": best,
            "methods": {name: {**win(r), "oracle_win_rate": win_rate(oracle, r)}
                        for name, r in rewards.items() if name != "AD"}}


def sweep(model, tok, examples, configs, n_samples=None, max_new_tokens=64, batch_size=48, seed=0,
          judge=None, out_dir=None, compile=False):
    """Every fixed configuration (temperatures, or (temperature, top_p, min_p) tuples) on the examples
    (training prompts: this is how a mixture is chosen,
    never on the held-out ones): per subtask, the mean reward with a 95% bootstrap interval (over
    prompts) and the task's metrics; then the headroom, the oracle (the best temperature of each
    subtask) against every single temperature on all prompts pooled. Printed and in sweep.json."""
    started = time.time()
    n_per_prompt = samples_per_prompt(examples, n_samples)
    results = run_methods(model, tok, methods(None, "fixed", configs), examples, n_per_prompt,
                          max_new_tokens, batch_size, seed, judge, compile, phase="sweep")
    subtask_of = [tasks.subtask(ex) for ex in examples]
    configs = [as_config(c) for c in configs]
    out = {"temperatures": [t for t, _, _ in configs], "subtasks": {}}
    if truncates(configs):
        out["configs"] = [config_name(c) for c in configs]
    for sub in sorted(set(subtask_of)):
        idx = [i for i, s in enumerate(subtask_of) if s == sub]
        rows = {}
        for name, res in results.items():
            rows[name] = {"mean_reward": bootstrap_ci([res["reward"][i] for i in idx])}
            for key in res["metrics"][idx[0]]:
                rows[name][key] = sum(res["metrics"][i][key] for i in idx) / len(idx)
        out["subtasks"][sub] = {"prompts": len(idx), "samples": n_per_prompt[idx[0]],
                                "reward": tasks.get_task(examples[idx[0]]["task"]).REWARD, "methods": rows}
    if len(out["subtasks"]) > 1:
        out["pooled"] = pooled_win_rates({name: res["reward"] for name, res in results.items()}, subtask_of,
                                         list(results))
    out["seconds"] = round(time.time() - started)
    print_sweep(out)
    print(f"\nthe sweep took {out['seconds']} s")
    if out_dir is not None and parallel.main_rank():
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "sweep.json").write_text(json.dumps(out, indent=1))
        print(f"wrote {Path(out_dir) / 'sweep.json'}")
    return out


# what evaluate.py uses where neither the command line nor the head's run (the config.json train.py
# wrote beside head.pt) says
DEFAULTS = dict(model="smollm2", test_prompts=48, max_new_tokens=64, batch_size=48, judge="offline", seed=0,
                temperatures=",".join(str(t) for t in DEFAULT_TEMPERATURES))


def parse_args():
    run = " (default: the head's run's, else {})"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--head", default=None, help="the trained head (a head.pt); not with --sweep")
    p.add_argument("--model", default=None, help=run.format(DEFAULTS["model"]))
    p.add_argument("--task", default=None, help="default: the head's run's (its config.json); needed for a head "
                   "without one; a sweep: synthetic")
    p.add_argument("--test_prompts", type=int, default=None,
                   help="held-out prompts (per task of a mix)" + run.format(DEFAULTS["test_prompts"]))
    p.add_argument("--compare", default="all", choices=["none", "fixed", "all"],
                   help="besides AD: nothing, every fixed temperature of the head's set, or those and "
                   "min-p and EDT")
    p.add_argument("--sweep", action="store_true", help="no head: every fixed temperature of --temperatures "
                   "on --train_prompts TRAINING prompts per task (how a mixture is chosen)")
    p.add_argument("--configs", "--temperatures", dest="temperatures", default=None,
                   help="the sweep's decoding configurations: temperatures, or items T/top_p=P, T/min_p=M, "
                   "T/top_p=P/min_p=M (e.g. 0,0.4,0.8,1.0,1.0/top_p=0.9)")
    p.add_argument("--train_prompts", type=int, default=48, help="the sweep's prompts per task")
    p.add_argument("--n_samples", type=int, default=None, help="responses per prompt and method "
                   "(default: the task's EVAL_SAMPLES, e.g. 4 for stories, 8 for gsm8k_vote; for a relative reward "
                   "(synthetic), the head's run's n_samples, as train.py evaluates)")
    p.add_argument("--max_new_tokens", type=int, default=None, help=run.format(DEFAULTS["max_new_tokens"]))
    p.add_argument("--batch_size", type=int, default=None, help=run.format(DEFAULTS["batch_size"]))
    p.add_argument("--judge", default=None, help="'offline' (the LM rates responses) or a reward model "
                   "(directory or hub id)" + run.format(DEFAULTS["judge"]))
    p.add_argument("--data_dir", default=None, help="local copies of the datasets (else $LPO_DATA_DIR, "
                   "else ~/.cache/lpo/data, downloading what is missing)")
    p.add_argument("--seed", type=int, default=None, help=run.format(DEFAULTS["seed"]))
    p.add_argument("--out_dir", default=None,
                   help="default: the head's directory (a sweep: out/sweep_<task>)")
    p.add_argument("--name", default="eval_report", help="the report's files: <name>.json and <name>.html in "
                   "--out_dir (train.py's are report.*; --name report replaces them)")
    p.add_argument("--device", default=default_device())
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="the LM's (default: bf16 on CUDA)")
    p.add_argument("--compile", action="store_true", help="generate with a compiled decode step")
    args = p.parse_args()
    if (args.head is None) != args.sweep:
        sys.exit("error: give either --head (evaluate a trained head) or --sweep (fixed temperatures alone)")
    # the head's run: what it was trained on and evaluated with; the command line wins, then the run
    args.config = Path(args.head).parent / "config.json" if args.head else None
    args.run = runs.read_settings(args.config) if args.config and args.config.exists() else {}
    for key, default in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, args.run.get(key, default))
    check_settings(args, at_least={"test_prompts": 1, "train_prompts": 1, "n_samples": 1, "max_new_tokens": 1,
                                   "batch_size": 1}, between={"seed": SEED_RANGE})
    if args.n_samples is not None and args.n_samples > args.batch_size:
        sys.exit(f"error: --n_samples {args.n_samples}: a prompt's responses are generated in one batch, so "
                 f"at most --batch_size ({args.batch_size})")
    check_device(args.device)
    args.temperatures = parse_configs(args.temperatures, typed(sys.argv[1:], "--configs", "--temperatures"))
    if args.data_dir:
        os.environ["LPO_DATA_DIR"] = args.data_dir
    if not args.name or "/" in args.name:
        sys.exit(f"error: --name {args.name!r}: a file name without its extension, e.g. eval_report")
    args.task = args.task or args.run.get("task") or ("synthetic" if args.sweep else None)
    args.out_dir = args.out_dir or (f"out/sweep_{args.task}" if args.sweep else Path(args.head).parent)
    check_writable(args.out_dir, "directory")
    if args.head and not Path(args.head).exists():
        sys.exit(f"error: --head {args.head}: not found")
    if args.task is None:
        sys.exit(f"error: no {args.config} (train.py writes one beside head.pt) to say which task the head "
                 "was trained on; give --task")
    return args


def main():
    args = parse_args()
    args.device = parallel.start(args.device)  # under torchrun: join the other ranks (parallel.py)
    one_line_errors()  # a user's mistake (a missing file, a bad weight file...) is one line, not a traceback
    from checkpoints import load_model
    from continuous_head import load_head
    from tasks import judge
    from tokenizer import Tokenizer
    split, n = ("train", args.train_prompts) if args.sweep else ("test", args.test_prompts)
    examples = tasks.prompts(args.task, split, n=n, seed=args.seed)
    for name in tasks.mix(args.task):
        if not any(ex["task"] == name for ex in examples):
            sys.exit(f"error: task {name} has no {'training' if args.sweep else 'held-out'} prompts with these "
                     "settings; its data may be too small")
    n_samples = args.n_samples
    if n_samples is None and "n_samples" in args.run:  # a relative reward: scored on as many as training drew
        n_samples = {name: args.run["n_samples"] for name in tasks.mix(args.task) if tasks.get_task(name).RELATIVE}
    n_responses = sum(samples_per_prompt(examples, n_samples))
    # the plan, before minutes of model loading
    if args.sweep:
        kind = "configuration" if truncates(args.temperatures) else "temperature"
        print(f"plan: sweep {args.task}: {plural(len(args.temperatures), 'fixed ' + kind)} x "
              f"{plural(n_responses, 'response')} to {plural(len(examples), 'training prompt')}; writes "
              f"{Path(args.out_dir) / 'sweep.json'}", flush=True)
    else:
        head = load_head(args.head)  # what it is (its level, its temperatures); checked below
        source = f", settings from {args.config}" if args.run else ""
        print(f"plan: evaluate {args.head} ({head.level} level{source}) on {args.task}: "
              f"{plural(len(methods(head, args.compare)), 'method')} x {plural(n_responses, 'response')} to "
              f"{plural(len(examples), 'held-out prompt')}; writes {Path(args.out_dir) / args.name}.json and "
              ".html", flush=True)
    model = load_model(args.model, device=args.device, dtype=model_dtype(args.dtype, args.device))
    tok = Tokenizer.from_pretrained(args.model)
    head = None if args.sweep else load_head(args.head, d_model=model.config.d_model, map_location=args.device)
    longest = max(len(tasks.prompt_ids(tok, ex)) for ex in examples)
    if longest + args.max_new_tokens > model.config.max_seq_len:
        sys.exit(f"error: the longest prompt ({longest} tokens) plus --max_new_tokens {args.max_new_tokens} is "
                 f"longer than {args.model}'s context of {model.config.max_seq_len} tokens")
    judged = any(tasks.get_task(name).JUDGED for name in tasks.mix(args.task))
    scorer = judge.load(args.judge, model, tok) if judged else None
    if args.sweep:
        sweep(model, tok, examples, args.temperatures, args.n_samples, args.max_new_tokens, args.batch_size,
              args.seed, scorer, args.out_dir, args.compile)
    else:
        evaluate(model, tok, head, examples, n_samples, args.max_new_tokens, args.batch_size, args.seed,
                 args.out_dir, compare=args.compare, judge=scorer, compile=args.compile, name=args.name)


if __name__ == "__main__":
    main()
