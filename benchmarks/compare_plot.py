"""compare.py's plots (comparison.png, echo_sizes.png) with matplotlib or gnuplot."""

import math
import os
import shutil
import subprocess
import sys
import tempfile

from compare_figures import COLORS, FIGURE_NAMES, KINDS, SIDES, UNITS, log
from compare_table import fmt_value


# --------------------------------------------------------------- plotting ---

def plot_title(machine, date):
    return f"procpool vs thread pool vs Python Pool - {machine['cpu_model']}, " \
           f"{machine['cores']} cores - {date}"


def plot_matplotlib(rows, png, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(rows)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.4 * nrows),
                             squeeze=False)
    for ax, r in zip(axes.flat, rows):
        labels = [label for _, label in SIDES]
        vals = [r[side] for side, _ in SIDES]
        xs = range(len(labels))
        log_axis = KINDS[r["kind"]]["log"]
        shown = [v is not None and (v > 0 or not log_axis) for v in vals]
        heights = [v if ok else float("nan") for v, ok in zip(vals, shown)]
        bars = ax.bar(xs, heights, color=COLORS[:len(labels)])
        if log_axis:
            ax.set_yscale("log")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels)
        better = "higher" if KINDS[r["kind"]]["higher"] else "lower"
        ax.set_title(f"{r['title']}\n({UNITS[r['kind']]}, {better} is better)",
                     fontsize=10)
        ax.set_ylabel(UNITS[r["kind"]])
        ax.grid(axis="y", which="major", alpha=0.3)
        for b, v, ok in zip(bars, vals, shown):
            if ok:
                ax.annotate(fmt_value(r["kind"], v), (b.get_x() + b.get_width() / 2, v),
                            ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")
        # procpool's own targets as dashed lines, labelled met / NOT met.
        bounds = []
        for t in r["targets"]:
            if t["of"] == "procpool":
                bounds.append(t["bound"])
                ax.axhline(t["bound"], color="0.3", linestyle="--", linewidth=0.8)
                state = "no value" if t["met"] is None else \
                    ("met" if t["met"] else "NOT met")
                ax.annotate(f"{'aim' if t['aim'] else 'target'} "
                            f"{t['op']} {fmt_value(r['kind'], t['bound'])}: {state}",
                            (0.01, t["bound"]), xycoords=("axes fraction", "data"),
                            fontsize=7, color="0.3", va="bottom")
        # Figure-relative targets (e.g. 0.5x the floor) and reference rows
        # (the memcpy ceiling, the fresh-vector floor) as dotted lines.
        lines = [(f"{'aim' if t['aim'] else 'target'} {t['op']} {t['bound']:g}x "
                  f"{FIGURE_NAMES.get(t['figure'], t['figure'])}",
                  t["bound"] * t["other"]) for t in r["targets"]
                 if t["of"] == "figure" and t.get("other")]
        lines += [(ref["title"].split(":")[0], ref["value"]) for ref in r.get("refs", [])
                  if ref["value"]]
        for label, y in lines:
            bounds.append(y)
            ax.axhline(y, color="0.5", linestyle=":", linewidth=0.8)
            ax.annotate(f"{label}: {fmt_value(r['kind'], y)}", (0.99, y),
                        xycoords=("axes fraction", "data"), ha="right",
                        fontsize=7, color="0.4", va="bottom")
        present = [v for v, ok in zip(vals, shown) if ok] + bounds
        if present and log_axis:  # headroom for the labels on the log axis
            ax.set_ylim(min(present) / 3, max(present) * 4)
        elif present:
            ax.set_ylim(min(0, min(present) * 1.3), max(0, max(present)) * 1.3 or 1)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))  # room for the title
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_gnuplot(rows, png, title, gnuplot):
    n = len(rows)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)

    def q(s):  # gnuplot string literal
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    size = f"size {460 * ncols},{440 * nrows}"
    with tempfile.TemporaryDirectory() as tmp:
        script = [
            f"set terminal pngcairo {size} font ',9' noenhanced"
            if _gnuplot_has_pngcairo(gnuplot) else f"set terminal png {size} noenhanced",
            f"set output {q(png)}",
            "set style fill solid 0.9 border -1",
            "set grid ytics",
            "unset key",
            "set xtics nomirror",
            f"set xrange [-0.6:{len(SIDES) - 0.4}]",
            f"set multiplot layout {nrows},{ncols} title {q(title)}",
        ]
        for i, r in enumerate(rows):
            dat = os.path.join(tmp, f"fig{i}.dat")
            with open(dat, "w") as f:  # x label value value-label rgb ('#' is a comment)
                for j, (side, label) in enumerate(SIDES):
                    v = r[side]
                    f.write(f"{j} {q(label)} {'NaN' if v is None else v} "
                            f"{q(fmt_value(r['kind'], v))} "
                            f"{int(COLORS[j % len(COLORS)][1:], 16)}\n")
            log_axis = KINDS[r["kind"]]["log"]
            present = [r[side] for side, _ in SIDES
                       if r[side] is not None and (r[side] > 0 or not log_axis)]
            if present and log_axis:
                yrange = f"set yrange [{min(present) / 3}:{max(present) * 4}]"
            elif present:
                yrange = (f"set yrange [{min(0, min(present) * 1.3)}:"
                          f"{max(0, max(present)) * 1.3 or 1}]")
            else:
                yrange = "set autoscale y"
            better = "higher" if KINDS[r["kind"]]["higher"] else "lower"
            script += [
                "set logscale y" if log_axis else "unset logscale y",
                yrange,
                f"set title {q(r['title'] + ' (' + UNITS[r['kind']] + ', ' + better + ' is better)')}",
                f"set ylabel {q(UNITS[r['kind']])}",
                f"plot {q(dat)} using 1:3:(0.7):5:xtic(2) "
                "with boxes lc rgb variable, "
                "'' using 1:3:4 with labels offset 0,0.7",
            ]
        script.append("unset multiplot")
        gp = os.path.join(tmp, "plot.gp")
        with open(gp, "w") as f:
            f.write("\n".join(script) + "\n")
        proc = subprocess.run([gnuplot, gp], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip())


def _gnuplot_has_pngcairo(gnuplot):
    proc = subprocess.run([gnuplot, "-e", "set terminal"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    return "pngcairo" in proc.stdout


def sweep_points(rows, name):
    """The rows of sweep `name` by x: {"x": [...], side: [value or None]}."""
    sweep = sorted((r for r in rows if r.get("sweep", [None])[0] == name), key=lambda r: r["sweep"][1])
    out = {"x": [r["sweep"][1] for r in sweep]}
    for side, _ in SIDES:
        out[side] = [r[side] for r in sweep]
    return out


def fmt_bytes(n):
    for div, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div:
            return f"{n / div:g} {suffix}"
    return f"{n} B"


def fmt_count(n):
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= div:
            return f"{n / div:g}{suffix}"
    return f"{n}"


def fmt_x(spec, n):
    return fmt_bytes(n) if spec["base"] == 2 else fmt_count(n)


def plot_sweep_matplotlib(points, png, spec, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for j, (side, label) in enumerate(SIDES):
        pts = [(x, y) for x, y in zip(points["x"], points[side]) if y]
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o",
                    color=COLORS[j], label=label)
    ax.set_xscale("log", base=spec["base"])
    ax.set_yscale("log")
    ax.set_xticks(points["x"])
    ax.set_xticklabels([fmt_x(spec, n) for n in points["x"]])
    ax.set_xlabel(spec["x"])
    ax.set_ylabel(spec["y"])
    ax.grid(which="major", alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_sweep_gnuplot(points, png, spec, title, gnuplot):
    def q(s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    with tempfile.TemporaryDirectory() as tmp:
        plots = []
        for j, (side, label) in enumerate(SIDES):
            dat = os.path.join(tmp, f"{side}.dat")
            with open(dat, "w") as f:
                for x, y in zip(points["x"], points[side]):
                    if y:
                        f.write(f"{x} {y}\n")
            plots.append(f"{q(dat)} using 1:2 with linespoints lw 2 pt 7 "
                         f"lc rgb {q(COLORS[j])} title {q(label)}")
        tics = ", ".join(f"{q(fmt_x(spec, n))} {n}" for n in points["x"])
        script = [
            "set terminal pngcairo size 820,550 font ',9' noenhanced"
            if _gnuplot_has_pngcairo(gnuplot) else "set terminal png size 820,550 noenhanced",
            f"set output {q(png)}",
            f"set title {q(title)}",
            "set logscale xy", "set grid", "set key top left",
            f"set xtics ({tics})",
            f"set xlabel {q(spec['x'])}", f"set ylabel {q(spec['y'])}",
            "plot " + ", ".join(plots),
        ]
        gp = os.path.join(tmp, "sweep.gp")
        with open(gp, "w") as f:
            f.write("\n".join(script) + "\n")
        proc = subprocess.run([gnuplot, gp], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip())


def draw(with_matplotlib, with_gnuplot, what):
    """Draws with matplotlib if this interpreter has it, else with gnuplot.
    Returns the tool used, or None if nothing was written."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        with_matplotlib()
        return "matplotlib"
    gnuplot = shutil.which("gnuplot")
    if gnuplot:
        try:
            with_gnuplot(gnuplot)
            return "gnuplot"
        except (RuntimeError, OSError) as e:
            log(f"compare.py: warning: gnuplot failed, no {what} written: {e}")
            return None
    log(f"compare.py: warning: neither matplotlib (for {sys.executable}) nor "
        f"gnuplot is available; skipping the {what}. Install python3-matplotlib "
        "and run with /usr/bin/python3, or install gnuplot.")
    return None


def plot_sweep(points, png, spec, title):
    """A sweep (SWEEPS[name] is spec), log-log, one line per side. Returns the
    tool used or None (also when no side has a value)."""
    if not any(y for side, _ in SIDES for y in points[side]):
        return None
    return draw(lambda: plot_sweep_matplotlib(points, png, spec, title),
                lambda gnuplot: plot_sweep_gnuplot(points, png, spec, title, gnuplot), "sweep plot")


def plot(rows, png, title):
    """Returns the tool used, or None if no plot was written."""
    return draw(lambda: plot_matplotlib(rows, png, title),
                lambda gnuplot: plot_gnuplot(rows, png, title, gnuplot), "plot")
