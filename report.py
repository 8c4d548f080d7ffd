"""
What a run found, for people: markdown tables on stdout, and a self-contained HTML page
(report.html: no scripts, no external resources) with the tables, AD's temperature choices and
responses shaded by the temperature chosen for each token (the paper's Fig. 6). evaluate.py makes
the numbers (report.json); this file only shows them.
"""
import html


def ci(w, fmt="{:.1%}"):
    """(value, lo, hi), a value with its 95% interval, as text; "" for None."""
    return "" if w is None else f"{fmt} [{fmt}, {fmt}]".format(*w)


def number(value):
    """A temperature metric: a number, or (mean, lo, hi) with its interval."""
    return f"{value:.2f}" if isinstance(value, (int, float)) else ci(value, "{:.2f}")


# -----------------------------------------------------------------------------
# tables: lists of rows of cells, printed as markdown or drawn as HTML

def heading(report, sub):
    r = report["subtasks"][sub]
    hist = ", ".join(f"{t:g}: {c}" for t, c in zip(report["temperatures"], r["ad_temperature_counts"]))
    label = f": {r['label']}" if r.get("label") else ""
    return (f"{sub}{label} ({r['prompts']} prompts x {r['samples']} responses; mean reward and win rates on "
            f"{r['reward']}; AD_{report['level'][:3]} mean temperature {r['ad_mean_temperature']:.2f}; "
            f"choices {hist})")


def table(r):
    """A subtask's results as rows of cells: the header, then one row a method."""
    extra = [k for k in r["methods"]["AD"] if k != "mean_reward"]  # the task's own metrics
    rows = [["method", "mean reward", "AD win rate [95% CI]"]]
    rows[0] += [c for k in extra for c in (k, "AD win rate")]
    for name, m in r["methods"].items():
        rows.append([name, f"{m['mean_reward']:.3f}", ci(m.get("ad_win_rate"))])
        rows[-1] += [c for k in extra for c in (f"{m[k]:.3f}", ci(m.get(k + " AD win rate")))]
    return rows


def pooled_heading(pooled):
    oracle = ", ".join(f"{sub} {name}" for sub, name in pooled["oracle"].items())
    return (f"all {pooled['prompts']} prompts pooled, each on its subtask's reward (the oracle: the best "
            f"fixed temperature of each subtask, {oracle})")


def pooled_table(pooled):
    has_ad = any("ad_win_rate" in m for m in pooled["methods"].values())
    rows = [["method"] + ["AD win rate [95% CI]"] * has_ad + ["oracle win rate [95% CI]"]]
    rows += [[name] + ([ci(m["ad_win_rate"])] if has_ad else []) + [ci(m["oracle_win_rate"])]
             for name, m in pooled["methods"].items()]
    return rows


def sweep_table(r):
    """A subtask of a sweep: each temperature's mean reward with its interval, and the task's metrics."""
    extra = [k for k in next(iter(r["methods"].values())) if k != "mean_reward"]
    return ([["temperature", "mean reward [95% CI]"] + extra]
            + [[name, ci(m["mean_reward"], "{:.3f}")] + [f"{m[k]:.3f}" for k in extra]
               for name, m in r["methods"].items()])


def print_markdown(rows):
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows[1:]:
        print("| " + " | ".join(row) + " |")


def print_report(report):
    for sub, r in report["subtasks"].items():
        print(f"\n### {heading(report, sub)}\n")
        for what, value in r.get("ad_temperature_metrics", {}).items():
            print(f"AD's {what}: {number(value)}\n")
        print_markdown(table(r))
    if "pooled" in report:
        print(f"\n### {pooled_heading(report['pooled'])}\n")
        print_markdown(pooled_table(report["pooled"]))


def print_sweep(sweep):
    for sub, r in sweep["subtasks"].items():
        print(f"\n### {sub} ({r['prompts']} prompts x {r['samples']} responses; {r['reward']})\n")
        print_markdown(sweep_table(r))
    if "pooled" in sweep:
        print(f"\n### {pooled_heading(sweep['pooled'])}\n")
        print_markdown(pooled_table(sweep["pooled"]))


# -----------------------------------------------------------------------------
# HTML

def temperature_html(tokenizer, tokens, choices, temperatures, title=""):
    """An HTML section: each token shaded by the temperature chosen for it (the paper's Fig. 6),
    white for 0 (greedy), deeper red for hotter. html_page() makes a file of sections."""
    tmax = max(float(temperatures.max()), 1e-6)
    spans = []
    for tok, k in zip(tokens, choices):
        t = float(temperatures[k])
        text = html.escape(tokenizer.decode([tok])).replace("\n", "&#8629;<br>")
        spans.append(f'<span title="temperature {t:g}" '
                     f'style="background:rgba(220,40,30,{t / tmax:.2f})">{text}</span>')
    legend = " ".join(f'<span style="background:rgba(220,40,30,{float(t) / tmax:.2f})">'
                      f'&nbsp;{float(t):g}&nbsp;</span>'
                      for t in temperatures)
    return f"<h3>{html.escape(title)}</h3><p>temperature: {legend}</p><p>{''.join(spans)}</p>"


def html_page(sections, title="adaptive decoding"):
    """A self-contained HTML file: no scripts, no external resources."""
    return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<body style='font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.7'>"
            f"{''.join(sections)}</body>")


def cell(tag, x):
    return f"<{tag} style='border:1px solid #ccc;padding:2px 6px'>{html.escape(str(x))}</{tag}>"


def html_table(rows):
    return ("<table style='border-collapse:collapse'>"
            + f"<tr>{''.join(cell('th', c) for c in rows[0])}</tr>"
            + "".join(f"<tr>{''.join(cell('td', c) for c in row)}</tr>" for row in rows[1:]) + "</table>")


def report_html(report, tok, head, examples, ad_samples):
    """A self-contained page: the run's settings, the results tables, AD's temperature histogram
    per subtask and a few responses shaded by the temperature chosen for each token."""
    parts = ["<h1>Adaptive decoding: evaluation</h1>"]
    if report.get("settings"):
        parts.append("<h2>Run</h2><table style='border-collapse:collapse'>"
                     + "".join(f"<tr>{cell('th', k)}{cell('td', v)}</tr>"
                               for k, v in report["settings"].items())
                     + "</table>")
    parts.append("<h2>Results</h2><p>AD's win rate: per prompt 1 for a win, 0.5 for a tie, with a 95% "
                 "bootstrap interval.</p>")
    if "pooled" in report:
        parts.append(f"<h3>{html.escape(pooled_heading(report['pooled']))}</h3>"
                     + html_table(pooled_table(report["pooled"])))
    for sub, r in report["subtasks"].items():
        parts.append(f"<h3>{html.escape(heading(report, sub))}</h3>"
                     + "".join(f"<p>AD's {html.escape(w)}: {number(v)}</p>"
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
