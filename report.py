"""
What a run found, for people: markdown tables on stdout, and a self-contained HTML page
(report.html: no scripts, no external resources) with the tables, AD's temperature choices and
responses shaded by the temperature chosen for each token (the paper's Fig. 6). evaluate.py makes
the numbers (report.json); this file only shows them.
"""
import html

from adaptive_head import config_name


def choice_names(report):
    """The names of a report's K choices, as its methods are named: its configurations (report.json's
    "configs", where one truncates), else "tau=t" for each temperature."""
    return report.get("configs") or [config_name(t) for t in report["temperatures"]]


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
    hist = ", ".join(f"{name.removeprefix('tau=')}: {c}" for name, c in zip(choice_names(report),
                                                                         r["ad_temperature_counts"]))
    label = f": {r['label']}" if r.get("label") else ""
    if report.get("continuous"):  # a continuous head's temperatures, counted at the nearest of the grid
        hist = f"nearest {hist}"
    return (f"{sub}{label} ({r['prompts']} prompt{'s' * (r['prompts'] != 1)} x {r['samples']} "
            f"response{'s' * (r['samples'] != 1)}; mean reward and win rates on "
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
        n, k = r["prompts"], r["samples"]
        print(f"\n### {sub} ({n} prompt{'s' * (n != 1)} x {k} response{'s' * (k != 1)}; {r['reward']})\n")
        print_markdown(sweep_table(r))
    if "pooled" in sweep:
        print(f"\n### {pooled_heading(sweep['pooled'])}\n")
        print_markdown(pooled_table(sweep["pooled"]))


# -----------------------------------------------------------------------------
# HTML

def temperature_html(tokenizer, tokens, token_temperatures, temperatures, title=""):
    """An HTML section: each token shaded by the temperature chosen for it (token_temperatures, one a
    token; the paper's Fig. 6), white for 0 (greedy), deeper red for hotter; the legend shows the head's
    temperatures (a tensor). html_page() makes a file of sections."""
    tmax = max(float(temperatures.max()), max(token_temperatures, default=0), 1e-6)
    spans = []
    for tok, t in zip(tokens, token_temperatures):
        text = html.escape(tokenizer.decode([tok])).replace("\n", "&#8629;<br>")
        spans.append(f'<span title="temperature {t:.3g}" '
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


# -----------------------------------------------------------------------------
# pictures: inline SVG, drawn from report.json's numbers (no library, no script)

BLUE, RED, GREEN, GREY = "#3b6fb6", "#c8372d", "#2e8b57", "#888"


def scale(lo, hi, a, b):
    """The map from data [lo, hi] to pixels [a, b]."""
    return lambda v: a + (v - lo) / ((hi - lo) or 1) * (b - a)


def svg(width, height, body, label):
    return (f"<svg class='figure' role='img' aria-label='{html.escape(label, quote=True)}' width='{width}' "
            f"height='{height}' viewBox='0 0 {width} {height}' style='font:11px sans-serif;display:block'>"
            f"{body}</svg>")


def axes(x, y, xs, ys, xlabel, ylabel, x_fmt="{:g}", y_fmt="{:g}"):
    """Axis lines with ticks at xs and ys (data values) and their labels; x, y the scales."""
    x0, y0 = x(xs[0]), y(ys[0])
    parts = [f"<line x1='{x0:.1f}' y1='{y0:.1f}' x2='{x(xs[-1]):.1f}' y2='{y0:.1f}' stroke='#444'/>",
             f"<line x1='{x0:.1f}' y1='{y0:.1f}' x2='{x0:.1f}' y2='{y(ys[-1]):.1f}' stroke='#444'/>"]
    parts += [f"<text x='{x(v):.1f}' y='{y0 + 14:.1f}' text-anchor='middle'>{x_fmt.format(v)}</text>" for v in xs]
    parts += [f"<text x='{x0 - 4:.1f}' y='{y(v) + 4:.1f}' text-anchor='end'>{y_fmt.format(v)}</text>" for v in ys]
    parts.append(f"<text x='{(x0 + x(xs[-1])) / 2:.1f}' y='{y0 + 30:.1f}' text-anchor='middle'>"
                 f"{html.escape(xlabel)}</text>")
    lx, ly = x0 - 38, (y0 + y(ys[-1])) / 2
    parts.append(f"<text x='{lx:.1f}' y='{ly:.1f}' text-anchor='middle' transform='rotate(-90 {lx:.1f} {ly:.1f})'>"
                 f"{html.escape(ylabel)}</text>")
    return "".join(parts)


def point(cls, cx, cy, lo, hi, color, title, square=False):
    """A mark with a vertical interval (lo, hi in pixels) and a tooltip saying its numbers."""
    bar = f"<line x1='{cx:.1f}' y1='{lo:.1f}' x2='{cx:.1f}' y2='{hi:.1f}' stroke='{color}'/>"
    mark = (f"<rect x='{cx - 4:.1f}' y='{cy - 4:.1f}' width='8' height='8'" if square
            else f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='4'")
    return f"<g class='{cls}'><title>{html.escape(title)}</title>{bar}{mark} fill='{color}'/></g>"


def reward_figure(report, sub):
    """(a) A subtask's mean reward for each fixed choice (a temperature, or a configuration) with its
    95% interval, in order of temperature (one temperature's configurations side by side), AD's mean
    reward as a line across, and under them how often AD chose each. Every choice of the head has its
    place, whether or not it was run as a fixed method."""
    r, names = report["subtasks"][sub], choice_names(report)
    order = sorted(range(len(names)), key=lambda k: (report["temperatures"][k], names[k]))  # the x axis
    cis = {k: r["mean_reward_ci"][names[k]] for k in order if names[k] in r["mean_reward_ci"]}
    ad = r["mean_reward_ci"]["AD"]
    lo = min([c[1] for c in cis.values()] + [ad[0]])
    hi = max([c[2] for c in cis.values()] + [ad[0]])
    pad = 0.1 * (hi - lo or 1)
    step = 44 if all(len(n) <= 8 for n in names) else 84  # room for a configuration's label
    W, H, left, right, top, bottom = max(460, 110 + step * len(names)), 260, 56, 100, 14, 200
    x = lambda k: left + 10 + step / 2 + step * order.index(k)  # noqa: E731  (choice k's place)
    y = scale(lo - pad, hi + pad, bottom, top)
    ticks = [lo - pad + i * (hi - lo + 2 * pad) / 4 for i in range(5)]
    body = [f"<line x1='{left + 10}' y1='{bottom}' x2='{W - right}' y2='{bottom}' stroke='#444'/>",
            f"<line x1='{left + 10}' y1='{bottom}' x2='{left + 10}' y2='{top}' stroke='#444'/>"]
    body += [f"<text x='{left + 6}' y='{y(v) + 4:.1f}' text-anchor='end'>{v:.2f}</text>" for v in ticks]
    body += [f"<text x='{x(k):.1f}' y='{bottom + 14}' text-anchor='middle'>{html.escape(names[k].removeprefix('tau='))}"
             "</text>" for k in order]
    body.append(f"<text x='{(left + W - right) / 2:.1f}' y='{bottom + 30}' text-anchor='middle'>temperature"
                f"{' (and truncation)' if report.get('configs') else ''}</text>"
                f"<text x='18' y='{(top + bottom) / 2:.1f}' text-anchor='middle' "
                f"transform='rotate(-90 18 {(top + bottom) / 2:.1f})'>mean reward</text>")
    total = max(sum(r["ad_temperature_counts"]), 1)
    for k, c in enumerate(r["ad_temperature_counts"]):  # AD's choices: bars from the axis up
        h = 40 * c / total
        body.append(f"<g class='choice'><title>AD chose {html.escape(names[k])} {c} times ({c / total:.0%})</title>"
                    f"<rect x='{x(k) - 9:.1f}' y='{bottom - h:.1f}' width='18' height='{h:.1f}' fill='{RED}' "
                    f"opacity='0.25'/></g>")
    for k, (m, l, h) in cis.items():
        body.append(point("fixed", x(k), y(m), y(l), y(h), BLUE,
                          f"{names[k]}: mean reward {m:.3f} [{l:.3f}, {h:.3f}]"))
    body.append(f"<g class='ad'><title>AD: mean reward {ad[0]:.3f} [{ad[1]:.3f}, {ad[2]:.3f}]</title>"
                f"<line x1='{left + 10}' y1='{y(ad[0]):.1f}' x2='{W - right}' y2='{y(ad[0]):.1f}' stroke='{RED}' "
                f"stroke-width='2' stroke-dasharray='6 3'/></g>")
    fixed = "fixed configurations" if report.get("configs") else "fixed temperatures"
    body.append(f"<text x='{W - right + 6}' y='{y(ad[0]) + 4:.1f}' fill='{RED}'>AD {ad[0]:.3f}</text>"
                f"<text x='{W - right + 6}' y='{bottom - 4}' fill='{RED}' opacity='0.7'>AD's choices</text>"
                f"<text x='{left + 10}' y='{top}' fill='{BLUE}'>{fixed} (95% interval)</text>")
    return svg(W, H, "".join(body), f"{sub}: mean reward against {'configuration' if report.get('configs') else 'temperature'}")


def win_figure(report):
    """(b) AD's win rate against each fixed temperature with its 95% interval, on all prompts pooled
    (a mix) or on its one subtask, and beside it the oracle's (a mix: the best fixed temperature of
    each subtask)."""
    if "pooled" in report:
        methods = report["pooled"]["methods"]
    else:
        methods = next(iter(report["subtasks"].values()))["methods"]
    names = [n for n in methods if n.startswith("tau=")]
    left = max(130, 16 + 6 * max((len(f"against {n}") for n in names), default=0))  # room for the longest label
    W, H, top = left + 390, 40 + 26 * len(names), 24
    x, y = scale(0, 1, left, W - 20), lambda i: top + 26 * i + 13
    body = [f"<line x1='{x(0.5):.1f}' y1='{top}' x2='{x(0.5):.1f}' y2='{H - 20}' stroke='{GREY}' "
            "stroke-dasharray='3 3'/>"]
    body += [f"<text x='{x(v):.1f}' y='{H - 6}' text-anchor='middle'>{v:.0%}</text>" for v in (0, 0.25, 0.5, 0.75, 1)]
    body.append(f"<text x='{left}' y='12' fill='{RED}'>AD wins (circle)</text>"
                + (f"<text x='{left + 120}' y='12' fill='{GREEN}'>the oracle wins (square)</text>"
                   if "pooled" in report else ""))
    for i, name in enumerate(names):
        body.append(f"<text x='{left - 6}' y='{y(i) + 4}' text-anchor='end'>against {name}</text>")
        for key, cls, color, dy, sq in (("ad_win_rate", "adwin", RED, -4, False),
                                        ("oracle_win_rate", "oraclewin", GREEN, 4, True)):
            if key in methods[name]:
                rate, lo, hi = methods[name][key]
                who = "AD" if cls == "adwin" else "the oracle"
                body.append(f"<g class='{cls}'><title>{who} against {name}: {rate:.1%} [{lo:.1%}, {hi:.1%}]</title>"
                            f"<line x1='{x(lo):.1f}' y1='{y(i) + dy}' x2='{x(hi):.1f}' y2='{y(i) + dy}' "
                            f"stroke='{color}'/>"
                            + (f"<rect x='{x(rate) - 4:.1f}' y='{y(i) + dy - 4}' width='8' height='8'" if sq else
                               f"<circle cx='{x(rate):.1f}' cy='{y(i) + dy}' r='4'") + f" fill='{color}'/></g>")
    return svg(W, H, "".join(body), "win rates against each fixed temperature")


def comparison_figure(summary):
    """compare.py: every method's win rate against the best fixed temperature with its 95% interval, one
    row a method (the fitted heads red, the fixed choices and baselines blue, the oracle green)."""
    names = list(summary["methods"])
    left = max(130, 16 + 7 * max(len(n) for n in names))
    W, H, top = left + 390, 44 + 26 * len(names), 24
    x, y = scale(0, 1, left, W - 20), lambda i: top + 26 * i + 13
    body = [f"<line x1='{x(0.5):.1f}' y1='{top}' x2='{x(0.5):.1f}' y2='{H - 20}' stroke='{GREY}' stroke-dasharray='3 3'/>"]
    body += [f"<text x='{x(v):.1f}' y='{H - 6}' text-anchor='middle'>{v:.0%}</text>" for v in (0, 0.25, 0.5, 0.75, 1)]
    body.append(f"<text x='{left}' y='12'>win rate against {html.escape(str(summary['best_fixed']))} (95% interval)</text>")
    for i, name in enumerate(names):
        m = summary["methods"][name]
        rate, lo, hi = m["win_rate_vs_best"]
        color = GREEN if name == "oracle" else RED if m["train_seconds"] is not None else BLUE
        body.append(f"<text x='{left - 6}' y='{y(i) + 4}' text-anchor='end'>{html.escape(name)}</text>"
                    f"<g class='method'><title>{html.escape(name)}: {rate:.1%} [{lo:.1%}, {hi:.1%}]</title>"
                    f"<line x1='{x(lo):.1f}' y1='{y(i)}' x2='{x(hi):.1f}' y2='{y(i)}' stroke='{color}'/>"
                    f"<circle cx='{x(rate):.1f}' cy='{y(i)}' r='4' fill='{color}'/></g>")
    return svg(W, H, "".join(body), "each method's win rate against the best fixed temperature")


def comparison_html(summary, rows):
    """compare.py's page: the figure, then the table (rows: compare.table's)."""
    runs = f" over {summary['runs']} runs" if summary.get("runs") else ""
    return html_page(["<h1>LPO against its rivals, on the same samples</h1>",
                      f"<p>{summary['prompts']} held-out prompts{runs}, {summary['level']} level; per prompt a win 1, "
                      "a tie 0.5. Red: heads fitted on the run's samples; blue: fixed temperatures and baselines; "
                      "green: the oracle (each subtask's best fixed temperature, chosen on these prompts).</p>",
                      comparison_figure(summary), html_table(rows)], "LPO against its rivals")


def rounds_figure(rounds):
    """(c) Per round of training (0: the untrained head), on the validation split: AD's lowest win rate
    against a fixed temperature (the learning metric that picks head.pt) and each subtask's mean
    temperature."""
    R = [r["round"] for r in rounds]
    subs = sorted({s for r in rounds for s in r["mean_tau"]})
    colors = [BLUE, GREEN, "#b8860b", "#6a3d9a", GREY]
    W, H, top, bottom = 460, 210, 20, 170
    panels = []
    for p, (label, values) in enumerate([
            ("lowest win rate", {"AD": [min(w[0] for w in r["wins"].values()) for r in rounds]}),
            ("mean temperature", {s: [r["mean_tau"].get(s, float("nan")) for r in rounds] for s in subs})]):
        left = 50 + p * 250
        x = scale(R[0], R[-1], left + 6, left + 190)
        lo, hi = (0, 1) if p == 0 else (0, max(1.0, max(v for vs in values.values() for v in vs)))
        y = scale(lo, hi, bottom, top)
        body = [axes(x, y, R, [lo, (lo + hi) / 2, hi], "round", label, y_fmt="{:.0%}" if p == 0 else "{:.1f}")]
        for k, (name, vs) in enumerate(values.items()):
            color = RED if p == 0 else colors[k % len(colors)]
            pts = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in zip(R, vs))
            body.append(f"<polyline points='{pts}' fill='none' stroke='{color}'/>")
            body += [f"<g class='{'metric' if p == 0 else 'tau'}'><title>round {r}: {name} "
                     f"{f'{v:.0%}' if p == 0 else f'{v:.2f}'}</title><circle cx='{x(r):.1f}' cy='{y(v):.1f}' r='3.5' "
                     f"fill='{color}'/></g>" for r, v in zip(R, vs)]
            if p == 1:  # the legend: one line a subtask, at the right
                body.append(f"<text x='{left + 196}' y='{top + 12 + 14 * k}' fill='{color}'>{html.escape(name)}</text>")
        panels.append("".join(body))
    return svg(W + 160, H, "".join(panels), "learning metric and mean temperature by round")


def finding(report):
    """The first sentence of the page: what the run found, from the numbers."""
    pooled = "pooled" in report
    methods = report["pooled"]["methods"] if pooled else next(iter(report["subtasks"].values()))["methods"]
    fixed = {n: m for n, m in methods.items() if n.startswith("tau=")}
    if not fixed or "ad_win_rate" not in next(iter(fixed.values())):
        return ""
    rates = {n: m["ad_win_rate"] for n, m in fixed.items()}
    beaten = [n for n, w in rates.items() if w[0] > 0.5]
    sure = [n for n, w in rates.items() if w[1] > 0.5]
    prompts = report["pooled"]["prompts"] if pooled else next(iter(report["subtasks"].values()))["prompts"]
    where = f"all {prompts} held-out prompts pooled" if pooled else f"{prompts} held-out prompts"
    lo, hi = min(w[0] for w in rates.values()), max(w[0] for w in rates.values())
    kind = "configuration" if report.get("configs") else "temperature"
    text = (f"On {where}, AD_{report['level'][:3]} beat "
            + (f"every fixed {kind}" if len(beaten) == len(rates) else
               f"{len(beaten)} of the {len(rates)} fixed {kind}s")
            + f" (win rates from {lo:.0%} to {hi:.0%}; above 50% with 95% confidence against "
            + (f"{len(sure)}: {', '.join(sure)})." if sure else "none of them).")
            )
    if pooled:
        o = [m["oracle_win_rate"][0] for m in fixed.values()]
        text += (f" The oracle, the best fixed {kind} of each subtask chosen on these prompts, wins "
                 f"{min(o):.0%} to {max(o):.0%} against them: the headroom of choosing per subtask.")
    return text


def cell(tag, x):
    return f"<{tag} style='border:1px solid #ccc;padding:2px 6px'>{html.escape(str(x))}</{tag}>"


def html_table(rows):
    return ("<table style='border-collapse:collapse'>"
            + f"<tr>{''.join(cell('th', c) for c in rows[0])}</tr>"
            + "".join(f"<tr>{''.join(cell('td', c) for c in row)}</tr>" for row in rows[1:]) + "</table>")


def report_html(report, tok, head, examples, ad_samples):
    """A self-contained page: what the run found in one sentence, the pictures (win rates, reward
    against temperature per subtask, learning by round), the run's settings, the results tables and
    a few of AD's responses with the temperature chosen for each token."""
    level = f"AD_{report['level'][:3]}"
    parts = ["<h1>Adaptive decoding: evaluation</h1>", f"<p class='finding'><b>{html.escape(finding(report))}</b></p>",
             "<h2>Win rates</h2><p>Per prompt: 1 for a win, 0.5 for a tie; with a 95% bootstrap interval.</p>",
             win_figure(report) if any(n.startswith("tau=") for r in report["subtasks"].values() for n in r["methods"])
             else "<p>(no fixed temperature was run: nothing to compare AD with)</p>"]
    if report.get("rounds"):
        parts += ["<h2>Learning, round by round (validation split)</h2>", rounds_figure(report["rounds"])]
    if report.get("settings"):
        parts.append("<h2>Run</h2><table style='border-collapse:collapse'>"
                     + "".join(f"<tr>{cell('th', k)}{cell('td', v)}</tr>"
                               for k, v in report["settings"].items())
                     + "</table>")
    parts.append("<h2>Results</h2>")
    if "pooled" in report:
        parts.append(f"<h3>{html.escape(pooled_heading(report['pooled']))}</h3>"
                     + html_table(pooled_table(report["pooled"])))
    for sub, r in report["subtasks"].items():
        parts.append(f"<h3>{html.escape(heading(report, sub))}</h3>" + reward_figure(report, sub)
                     + "".join(f"<p>AD's {html.escape(w)}: {number(v)}</p>"
                               for w, v in r.get("ad_temperature_metrics", {}).items())
                     + html_table(table(r)))
    parts.append(f"<h2>{level}'s responses, shaded by the temperature it chose</h2>"
                 "<p>Hover a token for its temperature; the legend gives the shade of each.</p>")
    prompts = {ex["id"]: ex["prompt"] for ex in examples}
    temps = head.temperatures.cpu()
    for s in ad_samples[:: max(1, len(ad_samples) // 6)][:6]:
        chosen = s["temperatures"][:max(1, len(s["tokens"]))]
        said = (f"temperature chosen: {chosen[0]:.3g}" if report["level"] == "sequence" else
                f"temperatures chosen: mean {sum(chosen) / len(chosen):.2f}, from {min(chosen):.3g} to {max(chosen):.3g}")
        parts.append(temperature_html(tok, s["tokens"], s["temperatures"], temps, f"{level}'s response to: "
                                      f"{prompts[s['id']]}")
                     + f"<p>{said}; reward {s['reward']:.3f}</p><hr>")
    return html_page(parts, "AD evaluation")
