#!/usr/bin/python3
"""Draw a concbench trace (bench_runner run --trace) as a PNG timeline: one row per track, one
figure per cell, the spans coloured by kind (tasks, GIL waits by how they ended, GIL holds, IO
and idle waits, serializing). For README, where Perfetto is not at hand; open the JSON itself in
ui.perfetto.dev for everything else.

Usage: scripts/plot_trace.py TRACE.json --out-dir results/plots [--prefix trace]
                             [--window-ms 60] [--cells SUBSTRING]
A cell's figure shows its first --window-ms milliseconds. Bad input: one line on stderr, exit 2.
Run with Debian's python3 (python3-matplotlib)."""
import argparse
import json
import os
import re
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.stderr.write("plot_trace: matplotlib is missing: run with /usr/bin/python3\n")
    sys.exit(2)

COLOURS = {
    # in a task, neither waiting for nor holding a GIL: running or runnable
    "task": "#bbbbbb",
    "GIL held": "#2ca02c", "IO wait": "#1f77b4", "idle": "#eeeeee",
    "CPU step (holds the loop)": "#17becf",
    "serialize": "#9467bd", "deserialize": "#c5b0d5", "task at the worker": "#8c564b",
    "GIL wait/free": "#fdd0a2", "GIL wait/slipped_through": "#fdae6b",
    "GIL wait/signalled_won": "#fd8d3c", "GIL wait/timed_out_set_drop_request": "#d62728",
    "GIL wait/forced_switch": "#7f2704",
}
# Drawn under the finer spans: a task spans its waits and holds.
LAYER = {"task": 0, "task at the worker": 0}


def key(e):
    if e["name"] == "GIL wait":
        return "GIL wait/" + e.get("args", {}).get("ended", "?")
    return e["name"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--out-dir", default="results/plots")
    ap.add_argument("--prefix", default="trace")
    ap.add_argument("--window-ms", type=float, default=60.0)
    ap.add_argument("--cells", default="", help="only cells whose name contains this")
    a = ap.parse_args(argv)
    try:
        with open(a.trace) as f:
            t = json.load(f)
        events = t["traceEvents"]
        if not isinstance(events, list):
            raise ValueError("traceEvents is not a list")
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.stderr.write(f"plot_trace: {a.trace}: not a concbench trace ({e})\n")
        return 2
    if a.window_ms <= 0:
        sys.stderr.write("plot_trace: --window-ms must be more than 0\n")
        return 2
    procs, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            procs[e["pid"]] = e["args"]["name"]
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    os.makedirs(a.out_dir, exist_ok=True)
    written = 0
    for pid, name in sorted(procs.items()):
        if a.cells not in name:
            continue
        tids = sorted(tid for (p, tid) in threads if p == pid)
        spans = [e for e in events if e.get("pid") == pid and e.get("ph") == "X"
                 and e["ts"] <= a.window_ms * 1e3]
        lost = [e for e in events if e.get("pid") == pid and e.get("ph") == "i"
                and e["ts"] <= a.window_ms * 1e3]
        if not spans:
            continue
        fig, ax = plt.subplots(figsize=(13, 1.0 + 0.6 * len(tids)))
        row = {tid: i for i, tid in enumerate(tids)}
        seen = set()
        flight = {}
        # Longer spans first, so the waits inside a step (a GIL wait within an IO step) show.
        for e in sorted(spans, key=lambda e: (LAYER.get(e["name"], 1), -e["dur"])):
            k = key(e)
            seen.add(k)
            y = row[e["tid"]]
            h = 0.8 if LAYER.get(e["name"], 1) == 0 else 0.5
            if e["name"] == "task at the worker":
                # Pipelined tasks overlap at a worker: alternate halves of the row.
                n = flight.get(e["tid"], 0)
                flight[e["tid"]] = n + 1
                h = 0.38
                y += -0.2 if n % 2 == 0 else 0.2
            edge = e["name"] in ("task", "task at the worker")
            ax.broken_barh([(e["ts"] / 1e3, max(e["dur"] / 1e3, 0.01))], (y - h / 2, h),
                           facecolors=COLOURS.get(k, "#000000"),
                           edgecolors="white" if edge else "none", linewidth=0.8 if edge else 0)
        for e in lost:
            ax.plot(e["ts"] / 1e3, row[e["tid"]] + 0.35, marker="v", color="black", ms=3)
        ax.set_yticks(range(len(tids)))
        ax.set_yticklabels([threads[(pid, tid)] for tid in tids], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, a.window_ms)
        ax.set_xlabel("ms from the traced batch's first event")
        ax.set_title(name + f" (first {a.window_ms:g} ms)", fontsize=10)
        handles = [Patch(color=COLOURS[k], label=k) for k in COLOURS if k in seen]
        if lost:
            handles.append(plt.Line2D([], [], marker="v", color="black", ls="", label="GIL lost"))
        ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5),
                  frameon=False)
        fig.tight_layout()
        slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
        path = os.path.join(a.out_dir, f"{a.prefix}-{slug}.png")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        print(path)
        written += 1
    if not written:
        sys.stderr.write("plot_trace: no cell with spans in the window\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
