"""
Evaluate a trained AdaptiveDecoder on a task's held-out prompts, as *Adaptive Decoding via Latent
Preference Optimization* (arXiv 2411.09661) does: AD's win rate against every fixed temperature of
its set; and against two adaptive baselines the paper does not compare with:
- min-p sampling (temperature 1, tokens below 0.1 x the top probability dropped),
- EDT, entropy-based dynamic temperature: tau = T0 * N^(theta / H) at every step.

    python evaluate.py --head out/synthetic_sequence/head.pt --task synthetic

For each subtask it reports the mean reward of every method, the win rate of AD against each
(per prompt: win 1, tie 0.5, loss 0) with a 95% bootstrap confidence interval, AD's temperature
histogram (the paper's Fig. 4) and what the task's temperature_metrics find (its Fig. 5); for a mix
of tasks, AD's win rates on all prompts pooled and an oracle's (pooled_win_rates). Written to stdout
(markdown), report.json and report.html (tables, histograms and per-token temperatures, Fig. 6) in
--out_dir.
"""
import argparse
import html
import json
import sys
import time
from pathlib import Path

import torch

import tasks
from sample import Progress, check_settings, check_writable, generate, html_page, temperature_html
from tasks.stats import win_rate


def methods(head, compare=True):
    """AD with greedy temperature selection, and with compare every fixed temperature of its set and
    the two adaptive baselines: {name: generate()'s keyword arguments}."""
    m = {"AD": dict(head=head, selection="greedy")}
    if not compare:
        return m
    for t in head.temperatures.tolist():
        m[f"tau={t:g}"] = dict(temperature=t)
    m["min-p 0.1"] = dict(temperature=1.0, min_p=0.1)
    m["EDT"] = dict(edt=(1.0, 0.8, 1.0))
    return m


def evaluate(model, tok, head, examples, n_samples=None, max_new_tokens=64, batch_size=48, seed=0,
             out_dir=None, compare=True, judge=None, settings=None, compile=False):
    """AD (greedy temperature selection) and, with compare, every baseline on the examples, with
    n_samples responses per prompt and method (default: the tasks' EVAL_SAMPLES), scored by the
    tasks' rewards (judge: for the judged tasks, see tasks/judge.py). settings: what to say of the
    run in the report (a dict; "started", a time.time(), gives the time the run took)."""
    if n_samples is None:
        n_samples = max(tasks.get_task(ex["task"]).EVAL_SAMPLES for ex in examples)
    per_batch = max(1, batch_size // n_samples)
    temps = head.temperatures.tolist()
    results = {}  # method -> {"reward": per-prompt mean reward, "metrics": per-prompt dicts, "samples"}
    to_run = methods(head, compare)
    prog = Progress("evaluation", len(to_run) * len(examples) * n_samples, "responses")
    for name, kw in to_run.items():
        rewards, metrics, samples = [], [], []
        for b in range(0, len(examples), per_batch):
            exs = examples[b:b + per_batch]
            prompts = [tasks.prompt_ids(tok, ex) for ex in exs for _ in range(n_samples)]
            g = generate(model, prompts, max_new_tokens, stop_ids=tok.stop_ids, seed=seed + b,
                         compile=compile, **kw)
            responses = [tok.decode(t) for t in g.tokens]
            rs = tasks.rewards(exs, responses, judge)
            for i, ex in enumerate(exs):
                rows = range(i * n_samples, (i + 1) * n_samples)
                rewards.append(sum(rs[j] for j in rows) / n_samples)
                task = tasks.get_task(ex["task"])  # task-specific metrics, e.g. maj@8 or the constraint alone
                metrics.append(task.group_metrics(ex, [responses[j] for j in rows], [rs[j] for j in rows],
                                                  judge))
                samples += [{"id": ex["id"], "response": responses[j], "tokens": g.tokens[j], "reward": rs[j],
                             "choices": g.choices[j] if g.choices else None,
                             "temperatures": [temps[k] for k in g.choices[j]] if g.choices else None}
                            for j in rows]
            prog.update(len(results) * len(examples) * n_samples + len(samples), f"({name})")
        results[name] = {"reward": rewards, "metrics": metrics, "samples": samples}

    report = {"level": head.level, "temperatures": temps, "subtasks": {}}
    if settings:
        report["settings"] = {k: v for k, v in settings.items() if k != "started"}
        if "started" in settings:
            report["settings"]["seconds"] = round(time.time() - settings["started"])
    for sub in sorted({tasks.subtask(ex) for ex in examples}):
        idx = [i for i, ex in enumerate(examples) if tasks.subtask(ex) == sub]
        task = tasks.get_task(examples[idx[0]]["task"])
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
        counts = [0] * len(temps)
        for s in ad_samples:
            for k in (s["choices"] if head.level == "token" else s["choices"][:1]):
                counts[k] += 1
        mean_temperature = sum(c * t for c, t in zip(counts, temps)) / max(sum(counts), 1)
        report["subtasks"][sub] = {"prompts": len(idx), "methods": rows, "ad_temperature_counts": counts,
                                   "ad_mean_temperature": mean_temperature}
        if task.LABEL:  # e.g. arithmetic: a stand-in for GSM8K, said wherever it is reported
            report["subtasks"][sub]["label"] = task.LABEL
        analysis = task.temperature_metrics([examples[i] for i in idx], ad_samples, tok, head.level)
        if analysis:  # e.g. the paper's Fig. 5 for constrained stories
            report["subtasks"][sub]["ad_temperature_metrics"] = analysis
    fixed = [name for name in results if name.startswith("tau=")]
    if len(report["subtasks"]) > 1 and fixed:  # a mix: the paper's claim is about all its prompts
        report["pooled"] = pooled_win_rates({name: res["reward"] for name, res in results.items()},
                                            [tasks.subtask(ex) for ex in examples], fixed)
    print_table(report)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=1))
        (out / "report.html").write_text(report_html(report, tok, head, examples, results["AD"]["samples"]))
        print(f"wrote {out / 'report.json'} and {out / 'report.html'}")
    return report


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
    return {"prompts": len(subtask_of), "oracle": best,
            "methods": {name: {"ad_win_rate": win_rate(rewards["AD"], r),
                               "oracle_win_rate": win_rate(oracle, r)}
                        for name, r in rewards.items() if name != "AD"}}


def pooled_table(pooled):
    ci = lambda w: "{:.1%} [{:.1%}, {:.1%}]".format(*w)
    rows = [["method", "AD win rate [95% CI]", "oracle win rate [95% CI]"]]
    rows += [[name, ci(m["ad_win_rate"]), ci(m["oracle_win_rate"])] for name, m in pooled["methods"].items()]
    return rows


def pooled_heading(pooled):
    oracle = ", ".join(f"{sub} {name}" for sub, name in pooled["oracle"].items())
    return (f"all {pooled['prompts']} prompts pooled, each on its subtask's reward (the oracle: the best "
            f"fixed temperature of each subtask, {oracle})")


def heading(report, sub):
    r = report["subtasks"][sub]
    hist = ", ".join(f"{t:g}: {c}" for t, c in zip(report["temperatures"], r["ad_temperature_counts"]))
    label = f": {r['label']}" if r.get("label") else ""
    return (f"{sub}{label} ({r['prompts']} prompts; AD_{report['level'][:3]} mean temperature "
            f"{r['ad_mean_temperature']:.2f}; choices {hist})")


def table(r):
    """A subtask's results as rows of cells: the header, then one row a method."""
    extra = [k for k in r["methods"]["AD"] if k != "mean_reward"]  # the task's own metrics
    rows = [["method", "mean reward", "AD win rate [95% CI]"]]
    rows[0] += [c for k in extra for c in (k, "AD win rate")]
    ci = lambda w: "" if w is None else "{:.1%} [{:.1%}, {:.1%}]".format(*w)
    for name, m in r["methods"].items():
        rows.append([name, f"{m['mean_reward']:.3f}", ci(m.get("ad_win_rate"))])
        rows[-1] += [c for k in extra for c in (f"{m[k]:.3f}", ci(m.get(k + " AD win rate")))]
    return rows


def print_table(report):
    for sub, r in report["subtasks"].items():
        print(f"\n### {heading(report, sub)}\n")
        for what, value in r.get("ad_temperature_metrics", {}).items():
            print(f"AD's {what}: {value:.2f}\n")
        print_markdown(table(r))
    if "pooled" in report:
        print(f"\n### {pooled_heading(report['pooled'])}\n")
        print_markdown(pooled_table(report["pooled"]))


def print_markdown(rows):
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows[1:]:
        print("| " + " | ".join(row) + " |")


def report_html(report, tok, head, examples, ad_samples):
    """A self-contained page: the run's settings, the results tables, AD's temperature histogram
    per subtask and a few responses shaded by the temperature chosen for each token."""
    def cell(tag, x):
        return f"<{tag} style='border:1px solid #ccc;padding:2px 6px'>{html.escape(str(x))}</{tag}>"
    parts = ["<h1>Adaptive decoding: evaluation</h1>"]
    if report.get("settings"):
        parts.append("<h2>Run</h2><table style='border-collapse:collapse'>"
                     + "".join(f"<tr>{cell('th', k)}{cell('td', v)}</tr>"
                               for k, v in report["settings"].items())
                     + "</table>")
    parts.append("<h2>Results</h2><p>AD's win rate: per prompt 1 for a win, 0.5 for a tie, with a 95% "
                 "bootstrap interval.</p>")
    def html_table(rows):
        return ("<table style='border-collapse:collapse'>"
                + f"<tr>{''.join(cell('th', c) for c in rows[0])}</tr>"
                + "".join(f"<tr>{''.join(cell('td', c) for c in row)}</tr>" for row in rows[1:]) + "</table>")
    if "pooled" in report:
        parts.append(f"<h3>{html.escape(pooled_heading(report['pooled']))}</h3>"
                     + html_table(pooled_table(report["pooled"])))
    for sub, r in report["subtasks"].items():
        parts.append(f"<h3>{html.escape(heading(report, sub))}</h3>"
                     + "".join(f"<p>AD's {html.escape(w)}: {v:.2f}</p>"
                               for w, v in r.get("ad_temperature_metrics", {}).items())
                     + html_table(table(r)))
    parts.append(f"<h2>AD_{report['level'][:3]}: temperatures chosen on held-out prompts</h2>")
    for sub, r in report["subtasks"].items():
        total = max(sum(r["ad_temperature_counts"]), 1)
        bars = "".join(f"<div style='display:flex;align-items:center'><span style='width:4em'>{t:g}</span>"
                       f"<span style='background:#c33;height:1em;width:{30 * c / total:.1f}em'></span>"
                       f"&nbsp;{c}</div>" for t, c in zip(report["temperatures"], r["ad_temperature_counts"]))
        label = f": {r['label']}" if r.get("label") else ""
        parts.append(f"<h3>{html.escape(sub + label)} (mean {r['ad_mean_temperature']:.2f})</h3>{bars}")
    parts.append("<h2>Examples</h2>")
    prompts = {ex["id"]: ex["prompt"] for ex in examples}
    for s in ad_samples[:: max(1, len(ad_samples) // 6)][:6]:
        parts.append(temperature_html(tok, s["tokens"], s["choices"], head.temperatures.cpu(),
                                      prompts[s["id"]])
                     + f"<p>reward {s['reward']:.3f}</p><hr>")
    return html_page(parts, "AD evaluation")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--head", required=True)
    p.add_argument("--model", default="smollm2")
    p.add_argument("--task", default="synthetic")
    p.add_argument("--test_prompts", type=int, default=48)
    p.add_argument("--n_samples", type=int, default=None, help="responses per prompt and method "
                   "(default: the task's EVAL_SAMPLES, e.g. 8 for gsm8k_vote, else 1)")
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=48)
    p.add_argument("--judge", default="offline",
                   help="'offline' (the LM rates responses) or a reward model (directory or hub id)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out_dir", default=None, help="default: the head's directory")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", action="store_true", help="generate with a compiled decode step")
    args = p.parse_args()
    check_settings(args, at_least={"test_prompts": 1, "n_samples": 1, "max_new_tokens": 1, "batch_size": 1})
    out_dir = args.out_dir or Path(args.head).parent
    check_writable(out_dir, "directory")

    from adaptive_head import AdaptiveDecoder
    from tasks import judge
    from model import Transformer
    from tokenizer import Tokenizer
    try:
        examples = tasks.prompts(args.task, "test", n=args.test_prompts, seed=args.seed)
        head = AdaptiveDecoder.load(args.head, map_location=args.device)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    model = Transformer.from_pretrained(args.model, device=args.device, dtype=dtype)
    tok = Tokenizer.from_pretrained(args.model)
    if head.d_model != model.config.d_model:
        sys.exit(f"error: head {args.head} reads hidden states of size {head.d_model}, {args.model}'s are "
                 f"{model.config.d_model}; use a head trained on this model")
    evaluate(model, tok, head, examples, args.n_samples, args.max_new_tokens, args.batch_size, args.seed,
             out_dir, judge=judge.load(args.judge, model, tok), compile=args.compile)


if __name__ == "__main__":
    main()
