"""compare.py's markdown table and the formatting of its values, ratios and targets."""

from compare_figures import FIGURE_NAMES, KINDS, SIDES


# ------------------------------------------------------------- formatting ---

def fmt_value(kind, v):
    if v is None:
        return "-"
    if kind in ("throughput", "bandwidth"):
        unit = "tasks/s" if kind == "throughput" else "B/s"
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if v >= div:
                return f"{v / div:.3g} {suffix}{unit}" if kind == "bandwidth" \
                    else f"{v / div:.3g}{suffix} {unit}"
        return f"{v:.3g} {unit}"
    if kind == "speedup":
        return f"{v:.2f}x"
    if kind == "cpu_percent":
        return f"{v:.2g}%" if abs(v) < 1 else f"{v:.3g}%"
    if kind == "memory":
        if v >= 1024 * 1024:
            return f"{v / 1024 / 1024:.3g} GiB"
        return f"{v / 1024:.3g} MiB" if v >= 1024 else f"{v:.3g} KiB"
    if kind == "growth":
        return f"{v:.2g} B/task"
    if kind == "copies":
        return f"{v:.2f} copies/worker"
    if kind == "faults":
        return f"{v:.4g} faults"
    if v >= 1e6:
        return f"{v / 1e6:.3g} s"
    if v >= 1e3:
        return f"{v / 1e3:.3g} ms"
    return f"{v:.3g} us"


def fmt_ratio(r):
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 1:
        return f"{r:.1f}x"
    return f"{r:.2g}x"  # two significant digits: 0.0032x, not 0.00x


def fmt_target(kind, t):
    """E.g. ">= 50x vs Python: met (61x)", "<= 1%: NOT met (2.3%, 2.3x over)"."""
    op = t["op"]
    if t["of"] == "procpool":
        what = f"{op} {fmt_value(kind, t['bound'])}"
        shown = fmt_value(kind, t["value"])
    elif t["of"] == "figure":
        what = f"{op} {t['bound']:g}x {FIGURE_NAMES.get(t['figure'], t['figure'])}"
        shown = fmt_ratio(t["value"])
    else:
        versus = "Python" if t["of"] == "vs_python" else "thread pool"
        what = f"{op} {t['bound']:g}x vs {versus}"
        shown = fmt_ratio(t["value"])
    if t["aim"]:
        what = "aim " + what
    if t["met"] is None:
        return f"{what}: {t.get('missing') or 'no value'}"
    if t["met"]:
        return f"{what}: met ({shown})"
    v, b = t["value"], t["bound"]
    if op == ">=":
        gap = f"{fmt_ratio(b / v)} short" if v > 0 else f"short by {fmt_value(kind, b - v)}"
    else:
        gap = f"{fmt_ratio(v / b)} over" if b > 0 else f"over by {fmt_value(kind, v - b)}"
    return f"{what}: NOT met ({shown}, {gap})"


def markdown_table(rows):
    header = ["figure", "procpool", "thread pool", "Python Pool",
              "procpool vs Python", "procpool vs thread pool", "target"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|"]
    for r in rows:
        better = "higher is better" if KINDS[r["kind"]]["higher"] else "lower is better"
        cells = [f"{r['title']} ({better})"]
        cells += [fmt_value(r["kind"], r[side]) for side, _ in SIDES]
        cells += [fmt_ratio(r["procpool_vs_python"]),
                  fmt_ratio(r["procpool_vs_thread_pool"])]
        cells.append("; ".join(fmt_target(r["kind"], t) for t in r["targets"]) or r.get("not_measured") or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
