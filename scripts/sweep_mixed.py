#!/usr/bin/env python3
"""Sweep mixed.cpu_io's CPU share and find where the event loop stops winning.

Each task does cpu_us of CPU work then waits io_us (cpu_us + io_us = --cycle-us). An event loop
overlaps every task's wait but runs CPU work one task at a time; threads overlap only as many
waits as there are threads but run CPU work in parallel (free threads) or not (the GIL). The
sweep runs one bench_runner report per CPU share, then prints tasks/s per model and the winner,
and writes a summary (results/mixed_sweep.json by default) with the crossover.

With --workers 2,64 (the default) thread models appear twice: as many threads as cores, and as
many as tasks (what Python programs do for IO); async always has one loop thread.

Usage: scripts/sweep_mixed.py [--build build] [--workers 2,64] [--tasks 64] [--cycle-us 1000]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from reportlib import bench_runner, die, int_list, write_json_atomic

MODELS = ["async", "async_mt", "free_threads", "gil_threads", "thread_pool", "process_pool"]
SHARES = [0, 5, 10, 20, 40, 60, 80, 100]  # percent of a task's time that is CPU work


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--workers", default="2,64", help="comma-separated worker counts")
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--cycle-us", type=int, default=1000)
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", default="results/mixed_sweep.json")
    a = ap.parse_args()
    runner = bench_runner("sweep_mixed", a.build)
    workers = int_list(a.workers)
    if not workers or min(workers) < 1 or a.tasks < 1 or a.cycle_us < 1 or a.repetitions < 1:
        die("sweep_mixed", "--workers (a list), --tasks, --cycle-us and --repetitions must be >= 1")
    models = a.models.split(",")

    rows = []
    with tempfile.TemporaryDirectory() as d:
        for share in SHARES:
            cpu_us = a.cycle_us * share // 100
            io_us = a.cycle_us - cpu_us
            out = os.path.join(d, f"share{share}.json")
            cmd = [runner, "run", "--workloads", "mixed.cpu_io", "--models", ",".join(models),
                   "--workers", ",".join(map(str, workers)),
                   "--repetitions", str(a.repetitions),
                   "--param", f"tasks={a.tasks}", "--param", f"cpu_us={cpu_us}",
                   "--param", f"io_us={io_us}", "--out", out]
            p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if p.returncode not in (0, 1):
                sys.stderr.write(f"sweep_mixed: bench_runner failed: {p.stderr.strip()}\n")
                sys.exit(2)
            with open(out) as f:
                report = json.load(f)
            per_model = {}
            for c in report["results"]:
                s = c.get("summary") or {}
                thr = s.get("throughput_per_s", {}) or {}
                key = c["model"] if c["model"] == "async" else f"{c['model']}@{c['workers']}"
                per_model[key] = thr.get("median") if c["status"] == "ok" else None
            rows.append({"cpu_percent": share, "cpu_us": cpu_us, "io_us": io_us,
                         "tasks_per_s": per_model})

    columns = list(rows[0]["tasks_per_s"].keys())
    print(f"mixed.cpu_io, {a.tasks} tasks of {a.cycle_us} us, model@workers "
          f"(async: 1 loop thread); tasks/s")
    print(f"{'cpu %':>6} " + " ".join(f"{m:>16}" for m in columns) + "  winner")
    crossover = gil_crossover = None
    for r in rows:
        t = r["tasks_per_s"]
        ok = {m: v for m, v in t.items() if v is not None}
        winner = max(ok, key=ok.get) if ok else None
        r["winner"] = winner
        cells = " ".join(f"{t[m]:16.0f}" if t.get(m) is not None else f"{'-':>16}"
                         for m in columns)
        print(f"{r['cpu_percent']:>6} {cells}  {winner}")
        # Where a single-threaded loop first loses: to any model without a loop, and to
        # threads behind the GIL (the comparison a CPython programmer faces).
        if "async" in ok:
            threaded = [v for m, v in ok.items() if not m.startswith("async")]
            gil = [v for m, v in ok.items() if m.startswith("gil_threads")]
            if crossover is None and threaded and max(threaded) > ok["async"]:
                crossover = r["cpu_percent"]
            if gil_crossover is None and gil and max(gil) > ok["async"]:
                gil_crossover = r["cpu_percent"]
    for what, at in (("a model without a loop", crossover), ("gil_threads", gil_crossover)):
        print(f"async (one loop) first loses to {what} at {at}% CPU" if at is not None else
              f"async (one loop) never lost to {what} in this sweep")

    summary = {"schema": "concbench.mixed_sweep/1", "workers": workers, "tasks": a.tasks,
               "cycle_us": a.cycle_us, "rows": rows, "async_loses_from_cpu_percent": crossover,
               "async_loses_to_gil_threads_from_cpu_percent": gil_crossover,
               "context": report.get("context", {}).get("machine", report.get("context"))}
    write_json_atomic(a.out, summary)
    print(f"written: {a.out}")


if __name__ == "__main__":
    main()
