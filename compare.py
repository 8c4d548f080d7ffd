"""
Why preferences? LPO against its rivals on the same samples: every way train.py can fit a head
(losses.py) trained on one run's collected samples, then evaluated on the same held-out prompts
beside the fixed temperatures, min-p, EDT and the oracle.

    python train.py --compare none --out_dir out/base          # collect once (any run whose samples
                                                               # ignore the head: --explore 1, or one round)
    python compare.py --samples_from out/base                  # fit every method on them, evaluate all
    python compare.py --samples_from out/base_s0 out/base_s1 out/base_s2   # several seeds, and pooled

For each method a train.py run in <out_dir>/<method> with --samples_from (collection is paid once; its
validation split picks the round's head as for LPO; the seconds of its fits are kept), then one
evaluation of all of them on the run's held-out prompts: the fixed temperatures, min-p and EDT are
decoded once for all; a discrete AD_seq head is a lookup among the fixed temperatures' responses
(evaluate.exact_ad_seq), a continuous head or an AD_tok one generates. Per method: its win rate on all
held-out prompts pooled against the best fixed temperature (the one with the highest mean win rate
against the other fixed temperatures, chosen on these prompts, as the oracle is: the strongest
single-temperature rival), its mean temperature per subtask and its training seconds. Written to
<out_dir>/report.json and report.html (a figure and the table); with several runs, the same pooled
over all of their prompts in the first run's out_dir (pooled_report.*).
"""
import argparse
import json
import sys
from pathlib import Path

import runs
import tasks
import train
from cli import check_device, default_device, one_line_errors, parse_configs, plural
from continuous_head import load_head
from evaluate import exact_ad_seq, methods, pooled_win_rates, run_methods, samples_per_prompt
from report import comparison_html, print_markdown
from tasks.stats import win_rate

# the methods compared: name -> train.py's flags for it
RIVALS = {
    "lpo": ["--loss", "lpo"],                  # (a), the paper's Eq. 10
    "lpo_marginal": ["--loss", "lpo_marginal"],  # (c), Section 3.3
    "nll": ["--loss", "nll"],                  # (d), the chosen side alone
    "grpo": ["--loss", "grpo"],                # group policy gradient, PPO's clip 0.2
    "grpo_noclip": ["--loss", "grpo", "--clip", "0"],  # the same, importance weights unclipped
    "continuous": ["--head", "continuous"],    # T(h) by cross-entropy on the best responses
}
PER_METHOD = ("loss", "head", "clip")  # the settings the methods differ in; the rest is the run's


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples_from", nargs="+", required=True, help="train.py runs whose samples the methods share")
    p.add_argument("--methods", default=",".join(RIVALS), help=f"a comma-separated subset of {', '.join(RIVALS)}")
    p.add_argument("--out_dir", default=None, help="default: <run>/compare for each run")
    p.add_argument("--device", default=default_device())
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    p.add_argument("--compile", action="store_true")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in RIVALS]
    if unknown or not args.methods:
        sys.exit(f"error: --methods {','.join(unknown) or '(none)'}: choose from {', '.join(RIVALS)}")
    if args.out_dir and len(args.samples_from) > 1:
        sys.exit("error: --out_dir is one run's; with several --samples_from each writes <run>/compare")
    check_device(args.device)
    return args


def run_argv(run, rounds, device, dtype):
    """train.py's command line for another fit of the run's samples: its settings but PER_METHOD."""
    config = runs.read_settings(Path(run) / "config.json")
    argv = [f"--{k}={v}" for k, v in config.items() if k not in PER_METHOD and v is not None]
    return argv + ["--rounds", str(rounds), "--device", device] + (["--dtype", dtype] if dtype else [])


def check_run(run):
    """A finished train.py run whose samples do not depend on the head (so every method may share
    them): its rounds done."""
    run = Path(run)
    if not (run / "config.json").is_file():
        sys.exit(f"error: --samples_from {run}: no train.py run there (no config.json)")
    config, rounds = runs.read_settings(run / "config.json"), runs.last_round(run)
    if not rounds:
        sys.exit(f"error: --samples_from {run}: no round is done there; let its train.py finish first")
    if config.get("explore") != 1 and rounds > 1:
        sys.exit(f"error: --samples_from {run}: its rounds after the first were drawn by its own head (--explore "
                 f"{config.get('explore')}), so other methods cannot share them; compare on a run with --explore 1 "
                 "or --rounds 1")
    return rounds


def fit_all(run, names, out, args):
    """Every method of names trained on the run's samples (train.main, --samples_from), in out/<name>:
    {name: (its head.pt, the seconds its fits took)}."""
    rounds = check_run(run)
    base = run_argv(run, rounds, args.device, args.dtype) + (["--compile"] if args.compile else [])
    fitted = {}
    for name in names:
        print(f"\n=== {name}: train.py {' '.join(RIVALS[name])} on the samples of {run}", flush=True)
        where = out / name
        train.main(base + RIVALS[name] + ["--samples_from", str(run), "--out_dir", str(where)], evaluate_head=False)
        seconds = sum(json.loads(f.read_text())["seconds"] for f in where.glob("fit_round*.json"))
        fitted[name] = (where / "head.pt", seconds)
    return fitted


def evaluate_all(fitted, run, args):
    """The fitted heads, the fixed temperatures, min-p and EDT on the run's held-out prompts, row for row on
    the same batches and seeds: {method: evaluate.run_methods' result}, the examples, the run's args."""
    targs = train.parse_args(run_argv(run, check_run(run), args.device, args.dtype))
    configs = parse_configs(targs.temperatures)
    _, _, test_ex = train.split_prompts(targs.task, targs.val_prompts, targs.test_prompts, targs.seed)
    model, tok, judge = train.set_up(targs, test_ex)
    heads = {name: load_head(path, d_model=model.config.d_model, map_location=args.device)
             for name, (path, _) in fitted.items()}
    looked_up = {n for n, h in heads.items() if h.level == "sequence" and not h.continuous}  # exact_ad_seq
    to_run = methods(None, "all", configs)
    to_run.update({n: dict(head=h, selection="greedy") for n, h in heads.items() if n not in looked_up})
    eval_n = {name: targs.n_samples for name in tasks.mix(targs.task) if tasks.get_task(name).RELATIVE}
    results = run_methods(model, tok, to_run, test_ex, samples_per_prompt(test_ex, eval_n), targs.max_new_tokens,
                          targs.batch_size, targs.seed, judge, args.compile)
    for n in looked_up:
        results[n] = exact_ad_seq(heads[n], results)
    return results, test_ex, targs, configs


def best_fixed(rewards, fixed):
    """The fixed method with the highest mean win rate against the other fixed ones (per prompt, pooled)."""
    score = {f: sum(win_rate(rewards[f], rewards[g])[0] for g in fixed if g != f) for f in fixed}
    return max(fixed, key=lambda f: score[f])


def mean_temperatures(result, subtask_of_id, level):
    """A method's mean temperature per subtask, over its samples' steps (AD_seq: the one choice a response)."""
    temps = {}
    for s in result["samples"]:
        ts = s["temperatures"] or []
        temps.setdefault(subtask_of_id[s["id"]], []).extend(ts[:1] if level == "sequence" else ts)
    return {sub: sum(ts) / len(ts) for sub, ts in sorted(temps.items()) if ts}


def summary(results, examples, fitted, level, fixed):
    """The comparison of one run: per method (the fitted ones, then the rest), its per-prompt rewards, its
    pooled win rate against the best fixed temperature, its mean temperature per subtask and training
    seconds; the oracle (each subtask's best fixed temperature, chosen on these prompts) beside them."""
    subtask_of = [tasks.subtask(ex) for ex in examples]
    rewards = {name: res["reward"] for name, res in results.items()}
    oracle = pooled_win_rates(rewards, subtask_of, fixed)["oracle"]
    rewards["oracle"] = [rewards[oracle[s]][i] for i, s in enumerate(subtask_of)]
    best = best_fixed(rewards, fixed)
    of_id = {ex["id"]: tasks.subtask(ex) for ex in examples}
    rows = {}
    for name in [*fitted, *[n for n in results if n not in fitted], "oracle"]:
        if name == "oracle":
            taus = {s: mean_temperatures(results[f], of_id, level).get(s) for s, f in oracle.items()}
        else:
            taus = mean_temperatures(results[name], of_id, level if name in fitted else "token")  # EDT: every step
        rows[name] = {"win_rate_vs_best": win_rate(rewards[name], rewards[best]), "mean_tau": taus,
                      "train_seconds": round(fitted[name][1], 3) if name in fitted else None}
    return {"best_fixed": best, "oracle": oracle, "prompts": len(examples), "level": level, "methods": rows,
            "rewards": rewards, "subtasks": subtask_of}


def pooled_summary(summaries):
    """Several runs (seeds) together: each method's win rate against its run's best fixed temperature, on
    all the runs' prompts pooled, its mean temperature per subtask and training seconds averaged."""
    names = [n for n in summaries[0]["methods"] if all(n in s["methods"] for s in summaries)]
    rows = {}
    for name in names:
        mine = [x for s in summaries for x in s["rewards"][name]]
        best = [x for s in summaries for x in s["rewards"][s["best_fixed"]]]
        taus = [s["methods"][name]["mean_tau"] for s in summaries]
        subs = sorted({k for t in taus for k in t})
        secs = [s["methods"][name]["train_seconds"] for s in summaries]
        rows[name] = {"win_rate_vs_best": win_rate(mine, best),
                      "mean_tau": {k: sum(t[k] for t in taus if k in t) / sum(k in t for t in taus) for k in subs},
                      "train_seconds": None if None in secs else round(sum(secs) / len(secs), 1)}
    bests = sorted({s["best_fixed"] for s in summaries})
    return {"best_fixed": bests[0] if len(bests) == 1 else f"each run's own: {' / '.join(bests)}",
            "best_fixed_by_run": [s["best_fixed"] for s in summaries], "prompts": sum(s["prompts"] for s in summaries),
            "level": summaries[0]["level"], "methods": rows, "runs": len(summaries)}


def table(summary):
    subs = sorted({k for m in summary["methods"].values() for k in m["mean_tau"]})
    rows = [["method", f"win rate vs best fixed ({summary['best_fixed']})", *[f"mean tau: {s}" for s in subs],
             "training s"]]
    for name, m in summary["methods"].items():
        w = m["win_rate_vs_best"]
        rows.append([name, f"{100 * w[0]:.1f} [{100 * w[1]:.1f}, {100 * w[2]:.1f}]",
                     *[f"{m['mean_tau'][s]:.2f}" if m["mean_tau"].get(s) is not None else "" for s in subs],
                     "" if m["train_seconds"] is None else f"{m['train_seconds']:.1f}"])
    return rows


def write(summary, out, title):
    """report.json (without the per-prompt rewards) and report.html in out; the table on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    kept = {k: v for k, v in summary.items() if k not in ("rewards", "subtasks")}
    (out / f"{title}.json").write_text(json.dumps(kept, indent=1))
    (out / f"{title}.html").write_text(comparison_html(kept, table(summary)))
    print(f"\n{plural(summary['prompts'], 'held-out prompt')}, win rates against the best fixed temperature "
          f"{summary['best_fixed']} (95% interval):")
    print_markdown(table(summary))
    print(f"wrote {out / title}.json and .html")


def main(argv=None):
    args = parse_args(argv)
    one_line_errors()
    runs.exit_on_interrupt()
    summaries = []
    for run in map(Path, args.samples_from):
        check_run(run)  # every run checked before any fit
    for run in map(Path, args.samples_from):
        out = Path(args.out_dir) if args.out_dir else run / "compare"
        fitted = fit_all(run, args.methods, out, args)
        results, examples, targs, configs = evaluate_all(fitted, run, args)
        fixed = list(methods(None, "fixed", configs))
        summaries.append(summary(results, examples, fitted, targs.level, fixed))
        write(summaries[-1], out, "report")
    if len(summaries) > 1:
        write(pooled_summary(summaries), Path(args.samples_from[0]) / "compare", "pooled_report")  # no --out_dir here


if __name__ == "__main__":
    main()
