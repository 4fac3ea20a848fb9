#!/usr/bin/python3
"""Draw concbench reports: which model wins, by how much, and why, at a glance.

From one or more reports (bench_runner's or the Python module's, the same schema) it draws, as
PNG and SVG under --out-dir:

  speedup-<report>          throughput against serial versus workers, per model, one panel per
                            workload (the dashed line is perfect scaling up to the CPUs allowed)
  latency_under_load        latency.echo_under_load: round-trip p50/p99 of an echo client while
                            CPU-bound work runs, per model (and per CPython version for cpython.*)
  counters-<report>         context switches and CPU migrations per task, and cache misses per
                            task where the machine counts them (otherwise the reason is shown)
  counter_race              lost updates of an unsynchronized x += 1 per model and CPython version
  payload                   process-pool cost versus payload size (reports that sweep
                            payload_bytes, e.g. from scripts/sweep_payload.py)
  cross_machine             each model's best speedup against serial per workload, one bar per
                            report (two or more reports from different machines or CPU sets)
  attribution-<report>      where the workers' time went: one stacked bar per model and worker
                            count, one panel per workload (the cells' `attribution`; parts that
                            overlap, a negative `unattributed`, show as a bar past 100%)

A figure whose data the reports do not hold is skipped with a note. Run with Debian's python3
(python3-matplotlib). Bad input: one line on stderr, exit 2.

Usage: scripts/plot.py REPORT.json [REPORT.json ...] [--out-dir results/plots]
                       [--formats png,svg]
"""
import argparse
import math
import os
import re
import sys
import textwrap
from collections import defaultdict

from reportlib import BadInput, load_report, median

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.stderr.write("plot: matplotlib is missing: run with /usr/bin/python3 "
                     "(Debian's python3-matplotlib)\n")
    sys.exit(2)

# One colour per model, stable across figures.
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f"]
MODEL_ORDER = ["serial", "free_threads", "gil_threads", "thread_pool", "pinned_pool",
               "process_pool", "async", "async_mt", "cpython.serial", "cpython.threading",
               "cpython.thread_pool", "cpython.process_pool", "cpython.asyncio"]


def load(path):
    report = load_report(path)
    report["_path"] = path
    return report


def label_reports(reports):
    """Short labels that tell reports apart: host and CPUs, Python version, else the file."""
    labels = []
    for r in reports:
        ctx = r["context"]
        label = f"{ctx.get('hostname', '?')}, {ctx.get('cpus_allowed', '?')} CPUs"
        py = ctx.get("python")
        if isinstance(py, dict) and py.get("version"):
            label += f", Python {py['version']}"
        labels.append(label)
    for i, l in enumerate(labels):
        if labels.count(l) > 1:
            labels[i] = f"{l} ({os.path.splitext(os.path.basename(reports[i]['_path']))[0]})"
    for r, l in zip(reports, labels):
        r["_label"] = l
        r["_slug"] = re.sub(r"[^A-Za-z0-9.]+", "-", os.path.splitext(
            os.path.basename(r["_path"]))[0]).strip("-")


def verified(cell):
    return [r for r in cell["repetitions"] if r.get("verified")]


def throughput(cell):
    return median([r.get("throughput_per_s") for r in verified(cell)]) if cell["status"] == "ok" else None


def baseline_model(cell):
    if "serial_baseline" in cell:
        return cell["serial_baseline"]
    return "cpython.serial" if cell["model"].startswith("cpython.") else "serial"


def serial_throughput(report, workload, model):
    for c in report["results"]:
        if c["workload"] == workload and c["model"] == model and c["workers"] == 1:
            return throughput(c)
    return None


def vs_serial(report, cell):
    t = throughput(cell)
    base = serial_throughput(report, cell["workload"], baseline_model(cell))
    return t / base if t and base else None


def model_key(m):
    return (MODEL_ORDER.index(m) if m in MODEL_ORDER else len(MODEL_ORDER), m)


def colours(models):
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(models, key=model_key))}


def save(fig, out_dir, name, formats, written):
    for fmt in formats:
        path = os.path.join(out_dir, f"{name}.{fmt}")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        written.append(path)
    plt.close(fig)


def grid(n):
    cols = min(4, n)
    rows = math.ceil(n / cols)
    return rows, cols


def plot_speedup(report, out_dir, formats, written):
    by_wl = defaultdict(lambda: defaultdict(list))
    for c in report["results"]:
        s = vs_serial(report, c)
        if s is not None:
            by_wl[c["workload"]][c["model"]].append((c["workers"], s))
    if not by_wl:
        return "speedup: no verified cells"
    cpus = report["context"].get("cpus_allowed") or report["context"].get("logical_cpus") or 1
    workloads = list(dict.fromkeys(c["workload"] for c in report["results"] if c["workload"] in by_wl))
    models = {m for w in by_wl.values() for m in w}
    col = colours(models)
    rows, cols = grid(len(workloads))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, wl in zip(axes.flat, workloads):
        max_w = 1
        for m in sorted(by_wl[wl], key=model_key):
            pts = sorted(by_wl[wl][m])
            max_w = max(max_w, pts[-1][0])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, color=col[m], label=m)
        ideal = [w for w in (1, 2, 4, 8, 16, 32, 64, 128, 256) if w <= max_w]
        ax.plot(ideal, [min(w, cpus) for w in ideal], ls="--", color="grey", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_title(wl, fontsize=10)
        ax.set_xlabel("workers")
        ax.set_ylabel("throughput / serial")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(workloads):]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    fig.legend(handles, labels, loc="lower center", ncol=min(8, len(labels)), frameon=False)
    fig.suptitle(f"Speedup against serial versus workers ({report['_label']}); "
                 "dashed: perfect scaling up to the CPUs allowed", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    save(fig, out_dir, f"speedup-{report['_slug']}", formats, written)


def by_version(reports):
    """C++ reports first, then Python reports by interpreter version (3.8 before 3.10)."""
    def key(r):
        if not is_python(r):
            return (0, ())
        v = r["context"]["python"].get("version") or ""
        return (1, tuple(int(x) for x in re.findall(r"\d+", v)), v)
    return sorted(reports, key=key)


def plot_latency(reports, out_dir, formats, written):
    bars = []  # (label, p50 us, p99 us, round trips/s)
    for r in by_version(reports):
        py = r["context"].get("python")
        if is_python(r) and py.get("version"):
            suffix = f" (Py {py['version']})"
        else:
            suffix = f" ({r['_label']})" if sum(not is_python(x) for x in reports) > 1 else ""
        for c in r["results"]:
            if c["workload"] != "latency.echo_under_load" or c["status"] != "ok":
                continue
            reps = verified(c)
            p50 = median([x["metrics"].get("rtt_p50_ns") for x in reps])
            p99 = median([x["metrics"].get("rtt_p99_ns") for x in reps])
            rate = median([x["metrics"].get("round_trips_per_s") for x in reps])
            if p50 is None:
                continue
            bars.append((f"{c['model']} {c['workers']}w{suffix}", p50 / 1e3, (p99 or p50) / 1e3, rate))
    if not bars:
        return "latency_under_load: no latency.echo_under_load cells"
    # Horizontal bars, one row per cell: labels stay readable however many versions there are.
    fig, (ax, ax2) = plt.subplots(1, 2, sharey=True, figsize=(12, 0.32 * len(bars) + 1.6),
                                  gridspec_kw={"width_ratios": [3, 2]})
    ys = list(range(len(bars)))
    ax.barh([y - 0.2 for y in ys], [b[1] for b in bars], height=0.4, label="p50", color="#1f77b4")
    ax.barh([y + 0.2 for y in ys], [b[2] for b in bars], height=0.4, label="p99", color="#d62728")
    ax.set_xscale("log")
    ax.set_yticks(ys)
    ax.set_yticklabels([b[0] for b in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("echo round trip (us, log)")
    ax.set_title("Echo round trip while CPU-bound work runs")
    ax.legend(loc="lower right")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax2.barh(ys, [b[3] or 0 for b in bars], color="#2ca02c")
    ax2.set_xscale("log")
    ax2.set_xlabel("round trips per second (log)")
    ax2.set_title("Echo throughput under load")
    ax2.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    save(fig, out_dir, "latency_under_load", formats, written)


COUNTERS = [("context_switches", "context switches per task"),
            ("cpu_migrations", "CPU migrations per task"),
            ("cache_misses", "cache misses per task")]


def plot_counters(report, out_dir, formats, written):
    # Per workload, each model at its largest worker count: where switching and migration show.
    cells = {}
    for c in report["results"]:
        if c["status"] != "ok":
            continue
        k = (c["workload"], c["model"])
        if k not in cells or c["workers"] > cells[k]["workers"]:
            cells[k] = c
    workloads = list(dict.fromkeys(k[0] for k in cells))
    models = sorted({k[1] for k in cells}, key=model_key)
    if not workloads:
        return "counters: no verified cells"
    unavailable = report["context"].get("counters_unavailable") or {}
    col = colours(models)
    fig, axes = plt.subplots(len(COUNTERS), 1, figsize=(max(10, 1.0 * len(workloads) * len(models) / 4), 3.2 * len(COUNTERS)), squeeze=False)
    width = 0.8 / max(1, len(models))
    for ax, (name, title) in zip(axes[:, 0], COUNTERS):
        ax.set_title(title + " (each model at its largest worker count)", fontsize=10)
        if name in unavailable:
            reason = unavailable[name]
            ax.text(0.5, 0.5, "not available on this machine:\n" + textwrap.fill(reason, 110),
                    ha="center", va="center", transform=ax.transAxes, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for j, m in enumerate(models):
            vals = []
            for wl in workloads:
                c = cells.get((wl, m))
                v = None
                if c:
                    per = [r["counters"].get(name) / r["tasks"] for r in verified(c)
                           if r["counters"].get(name) is not None and r.get("tasks")]
                    v = median(per)
                vals.append(v if v is not None else 0)
            ax.bar([i + (j - len(models) / 2 + 0.5) * width for i in range(len(workloads))], vals,
                   width=width, color=col[m], label=m)
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_ylabel("per task (symlog)")
        ax.set_xticks(range(len(workloads)))
        ax.set_xticklabels(workloads, fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0, 0].legend(ncol=min(8, len(models)), fontsize=8, loc="upper left")
    fig.suptitle(f"Scheduler and cache counters per task ({report['_label']})", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    save(fig, out_dir, f"counters-{report['_slug']}", formats, written)


def plot_counter_race(reports, out_dir, formats, written):
    bars = []
    for r in by_version(reports):
        py = r["context"].get("python")
        ver = py.get("version") if isinstance(py, dict) else None
        for c in r["results"]:
            if c["workload"] != "cpu.counter_race" or c["status"] != "ok" or c["workers"] < 2:
                continue
            reps = verified(c)
            lost = median([x["metrics"].get("lost_updates") for x in reps])
            total = median([x["metrics"].get("increments") for x in reps])
            if lost is None or not total:
                continue
            name = f"{c['model']} {c['workers']}w" + (f" (Py {ver})" if ver else "")
            bars.append((name, 100.0 * lost / total))
    if not bars:
        return "counter_race: no cpu.counter_race cells with 2 or more workers"
    fig, ax = plt.subplots(figsize=(max(8, 0.4 * len(bars) + 3), 4.5))
    ax.bar(range(len(bars)), [b[1] for b in bars],
           color=["#d62728" if b[1] > 0 else "#2ca02c" for b in bars])
    for i, b in enumerate(bars):
        ax.text(i, b[1] + 1, f"{b[1]:.0f}%" if b[1] >= 1 or b[1] == 0 else f"{b[1]:.2f}%",
                ha="center", fontsize=7)
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([b[0] for b in bars], rotation=70, ha="right", fontsize=8)
    ax.set_ylabel("lost updates (% of increments)")
    ax.set_ylim(0, 105)
    ax.set_title("Unsynchronized x += 1 from every worker: updates lost "
                 "(process_pool: each process has its own x)")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    save(fig, out_dir, "counter_race", formats, written)


def plot_payload(reports, out_dir, formats, written):
    # series -> {payload: (per-task time ns, vs serial)}
    series = defaultdict(dict)
    sizes = set()
    # A sweep writes one report per payload and transport, and only some hold serial: its
    # throughput at each payload is looked up across all of them.
    serial = {}
    for r in reports:
        for c in r["results"]:
            if c["model"] == baseline_model(c) and c["workers"] == 1 and throughput(c):
                serial[(c["workload"], c["params"].get("payload_bytes"))] = throughput(c)
    for r in reports:
        for c in r["results"]:
            p = c["params"].get("payload_bytes")
            if p is None or c["status"] != "ok":
                continue
            t = throughput(c)
            if not t:
                continue
            base = serial.get((c["workload"], p))
            name = f"{c['model']} {c['workers']}w"
            if c["model"] == "process_pool":
                name = f"process_pool/{c['params'].get('transport', 'pipe')} {c['workers']}w"
            key = (c["workload"], name)
            series[key][int(p)] = (1e9 / t, t / base if base else None)
            sizes.add(int(p))
    series = {k: v for k, v in series.items() if len(v) >= 2}
    if len(sizes) < 2 or not any("process_pool" in k[1] for k in series):
        return "payload: the reports sweep no payload_bytes for process_pool"
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    names = sorted(series, key=lambda k: (k[0], k[1]))
    col = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(names)}
    for k in names:
        pts = sorted(series[k].items())
        xs = [max(p, 1) for p, _ in pts]
        label = k[1] if len({n[0] for n in names}) == 1 else f"{k[0]}: {k[1]}"
        ax.plot(xs, [v[0] / 1e3 for _, v in pts], marker="o", ms=4, color=col[k], label=label)
        ax2.plot(xs, [v[1] if v[1] is not None else float("nan") for _, v in pts], marker="o",
                 ms=4, color=col[k], label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("payload per task (bytes; 0 drawn at 1)")
    ax.set_ylabel("wall time per task (us, log)")
    ax.set_title("Cost per task versus payload")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax2.axhline(1, color="grey", ls="--", lw=1)
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("payload per task (bytes; 0 drawn at 1)")
    ax2.set_ylabel("throughput / serial")
    ax2.set_title("Gain over serial: below the dashed line, serial wins")
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    save(fig, out_dir, "payload", formats, written)


def is_sweep(report):
    """A report made for a payload sweep: the user set payload_bytes for the whole run."""
    params = report.get("config", {}).get("params")
    return isinstance(params, dict) and "payload_bytes" in params


def is_python(report):
    return isinstance(report["context"].get("python"), dict)


def plot_cross_machine(reports, out_dir, formats, written):
    usable = [r for r in reports if len({c["model"] for c in r["results"]}) > 1]
    if len(usable) < 2:
        return "cross_machine: needs two or more reports of the suite"
    best = []  # per report: {(workload, model): (speedup, workers)}
    for r in usable:
        b = {}
        for c in r["results"]:
            s = vs_serial(r, c)
            if s is not None and s > b.get((c["workload"], c["model"]), (0, 0))[0]:
                b[(c["workload"], c["model"])] = (s, c["workers"])
        best.append(b)
    common = set(best[0])
    for b in best[1:]:
        common &= set(b)
    workloads = list(dict.fromkeys(k[0] for r in usable for k in
                                   [(c["workload"], c["model"]) for c in r["results"]] if k in common))
    if not workloads:
        return "cross_machine: the reports share no cells"
    rows, cols = grid(len(workloads))
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows), squeeze=False)
    width = 0.8 / len(usable)
    for ax, wl in zip(axes.flat, workloads):
        models = sorted({m for (w, m) in common if w == wl}, key=model_key)
        for i, (r, b) in enumerate(zip(usable, best)):
            ax.bar([x + (i - len(usable) / 2 + 0.5) * width for x in range(len(models))],
                   [b[(wl, m)][0] for m in models], width=width, color=PALETTE[i % len(PALETTE)],
                   label=r["_label"])
        ax.axhline(1, color="grey", ls="--", lw=1)
        ax.set_yscale("log", base=2)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=60, ha="right", fontsize=7)
        ax.set_title(wl, fontsize=10)
        ax.set_ylabel("best throughput / serial")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    for ax in list(axes.flat)[len(workloads):]:
        ax.axis("off")
    h, l = axes[0, 0].get_legend_handles_labels()
    fig.legend(h, l, loc="lower center", ncol=len(usable), frameon=False)
    fig.suptitle("Each model's best speedup against its own machine's serial baseline", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    save(fig, out_dir, "cross_machine", formats, written)


PARTS = ["cpu", "runqueue", "gil_wait", "io_wait", "serialize", "deserialize", "idle",
         "unattributed"]
PART_COLOURS = {"cpu": "#2ca02c", "runqueue": "#ff7f0e", "gil_wait": "#d62728",
                "io_wait": "#1f77b4", "serialize": "#9467bd", "deserialize": "#c5b0d5",
                "idle": "#d9d9d9", "unattributed": "#7f7f7f"}


def plot_attribution(report, out_dir, formats, written):
    by_wl = defaultdict(list)
    for c in report["results"]:
        a = c.get("attribution") or {}
        if c["status"] == "ok" and "total" in a:
            by_wl[c["workload"]].append(c)
    if not by_wl:
        return "attribution: no cell has one (a report from before attribution, or none verified)"
    workloads = list(by_wl)
    rows, cols = grid(len(workloads))
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 3.6 * rows), squeeze=False)
    for ax, wl in zip(axes.flat, workloads):
        cells = sorted(by_wl[wl], key=lambda c: (model_key(c["model"]), c["workers"]))
        labels = [f"{c['model']}@{c['workers']}" for c in cells]
        bottom = [0.0] * len(cells)
        for part in PARTS:
            vals = []
            for c in cells:
                v = c["attribution"]["total"]["share"].get(part)
                vals.append(abs(v) if v is not None else 0.0)
            ax.barh(range(len(cells)), vals, left=bottom, color=PART_COLOURS[part],
                    label=part, hatch="//" if part == "unattributed" else None)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_yticks(range(len(cells)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("share of worker time")
        ax.set_title(wl, fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(workloads):]:
        ax.axis("off")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.suptitle(f"Where the workers' time went ({report['_label']})", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.legend(handles, names, ncol=len(PARTS), fontsize=8, loc="lower center")
    save(fig, out_dir, f"attribution-{report['_slug']}", formats, written)


FIGURES = {"speedup": plot_speedup, "counters": plot_counters, "attribution": plot_attribution,
           "latency_under_load": plot_latency, "counter_race": plot_counter_race,
           "payload": plot_payload, "cross_machine": plot_cross_machine}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+")
    ap.add_argument("--out-dir", default="results/plots")
    ap.add_argument("--formats", default="png,svg")
    ap.add_argument("--figures", default=",".join(FIGURES),
                    help="which figures (default all): " + ", ".join(FIGURES))
    a = ap.parse_args(argv)
    formats = [f for f in a.formats.split(",") if f]
    figures = [f for f in a.figures.split(",") if f]
    try:
        if not formats or any(f not in ("png", "svg", "pdf") for f in formats):
            raise BadInput(f"--formats: expected a list of png, svg, pdf; got '{a.formats}'")
        if not figures or any(f not in FIGURES for f in figures):
            raise BadInput(f"--figures: expected a list of {', '.join(FIGURES)}; got '{a.figures}'")
        reports = [load(p) for p in a.reports]
        os.makedirs(a.out_dir, exist_ok=True)
    except BadInput as e:
        sys.stderr.write(f"plot: {e}\n")
        return 2
    except OSError as e:
        sys.stderr.write(f"plot: --out-dir {a.out_dir}: {e.strerror}\n")
        return 2
    label_reports(reports)
    written, skipped = [], []
    # Per-report figures for every report but payload sweeps, which only make sense together.
    suites = [r for r in reports if not is_sweep(r)]
    for r in suites:
        for name in ("speedup", "counters", "attribution"):
            if name in figures:
                note = FIGURES[name](r, a.out_dir, formats, written)
                if note:
                    skipped.append(note)
    for name in ("latency_under_load", "counter_race", "payload", "cross_machine"):
        if name in figures:
            note = FIGURES[name](reports if name != "cross_machine" else suites, a.out_dir,
                                 formats, written)
            if note:
                skipped.append(note)
    for p in written:
        print(p)
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
