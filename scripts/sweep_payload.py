#!/usr/bin/env python3
"""Sweep the payload each task carries and find where the process pool's serialization eats its
parallel gain.

Every task of cpu.spin carries payload_bytes of data (hashed into its checksum, so every model
touches it). Threads pass a pointer; process_pool copies it into a worker and the result back,
through the socket (transport=pipe) or shared memory (transport=shm). The sweep runs one
bench_runner report per payload size and transport, and prints each model's throughput against
serial at one worker. The crossover is the smallest payload at which process_pool with N workers
is no faster than serial.

Reports go to --out-dir (results/payload by default), one per payload and transport, with a
summary.json beside them; scripts/plot.py draws the cost-versus-payload figure from them.

The process_pool/pipe cell is also driven from Python (concbench.run, the module built into
--build/python), so the summary shows both entry points' time and page faults per task side by
side: the harness, not the entry point, must decide the figure.

Usage: scripts/sweep_payload.py [--build build] [--workers 2] [--units 1000] [--tasks 32]
                                [--repetitions 5] [--min-time 0.2] [--sizes 0,16384,...]
                                [--out-dir DIR] [--no-python]
Exit status: 0 when every cell verified, 1 otherwise, 2 for bad usage.
"""
import argparse
import json
import os
import subprocess
import sys

from reportlib import bench_runner, die, int_list, median, write_json_atomic

SIZES = [0, 4096, 65536, 262144, 524288, 1048576, 2097152, 4194304, 16777216]


def cell_throughput(cell):
    reps = [r["throughput_per_s"] for r in cell["repetitions"] if r["verified"]]
    return median(reps)


def cell_ns_per_task(cell):
    return median([r["wall_ns"] / r["tasks"] for r in cell["repetitions"]
                   if r["verified"] and r["tasks"]])


def cell_faults_per_task(cell):
    """Page faults per task over every process that ran tasks (None where not countable)."""
    return median([r["counters"]["page_faults"] / r["tasks"] for r in cell["repetitions"]
                   if r["verified"] and r["tasks"] and r["counters"].get("page_faults") is not None])


def python_driven(a, size, out):
    """The process_pool/pipe cell again, from the Python module: the same request, the same
    harness, another entry point."""
    cfg = {"workloads": ["cpu.spin"], "models": ["process_pool"], "workers": [a.workers],
           "repetitions": a.repetitions, "min_time": a.min_time,
           "params": {"tasks": str(a.tasks), "units": str(a.units), "payload_bytes": str(size),
                      "transport": "pipe"}}
    code = ("import json, sys, concbench\n"
            "r = concbench.run(json.loads(sys.argv[1]))\n"
            "concbench.write_report(sys.argv[2], r)\n")
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.abspath(a.build), "python"))
    proc = subprocess.run(["/usr/bin/python3", "-c", code, json.dumps(cfg), out], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        die("sweep_payload", f"the Python-driven cell at {size} bytes failed")
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--units", type=int, default=1000, help="cpu.spin units per task (~1.25 us each here)")
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per repetition")
    ap.add_argument("--no-python", action="store_true", help="skip the Python-driven cells")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--out-dir", default="results/payload")
    a = ap.parse_args()
    runner = bench_runner("sweep_payload", a.build)
    sizes = int_list(a.sizes)
    if (not sizes or min(sizes) < 0 or min(a.workers, a.units, a.tasks, a.repetitions) < 1
            or a.min_time < 0):
        die("sweep_payload", "--sizes must be byte counts >= 0; --workers, --units, --tasks and "
            "--repetitions >= 1")
    os.makedirs(a.out_dir, exist_ok=True)

    rows, ok = [], True
    for size in sizes:
        row = {"payload_bytes": size}
        for transport, models, workers in (("pipe", "serial,free_threads,process_pool", f"1,{a.workers}"),
                                           ("shm", "process_pool", str(a.workers))):
            out = os.path.join(a.out_dir, f"payload-{size}-{transport}.json")
            cmd = [runner, "run", "--workloads", "cpu.spin", "--models", models,
                   "--workers", workers, "--repetitions", str(a.repetitions),
                   "--min-time", str(a.min_time),
                   "--param", f"tasks={a.tasks}", "--param", f"units={a.units}",
                   "--param", f"payload_bytes={size}", "--param", f"transport={transport}",
                   "--overwrite", "--out", out]
            proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if proc.returncode == 2:
                sys.stderr.write(proc.stderr)
                sys.exit(2)
            ok = ok and proc.returncode == 0
            with open(out) as f:
                report = json.load(f)
            for cell in report["results"]:
                name = cell["model"] + ("" if cell["model"] != "process_pool" else "/" + transport)
                row[f"{name}@{cell['workers']}"] = cell_throughput(cell)
                if cell["model"] == "process_pool" and cell["workers"] == a.workers:
                    row[f"{name}@{cell['workers']} ns/task"] = cell_ns_per_task(cell)
                    row[f"{name}@{cell['workers']} faults/task"] = cell_faults_per_task(cell)
        if not a.no_python:
            out = os.path.join(a.out_dir, f"python-payload-{size}-pipe.json")
            ok = python_driven(a, size, out) and ok
            with open(out) as f:
                report = json.load(f)
            (cell,) = report["results"]
            row[f"python:process_pool/pipe@{a.workers} ns/task"] = cell_ns_per_task(cell)
            row[f"python:process_pool/pipe@{a.workers} faults/task"] = cell_faults_per_task(cell)
        rows.append(row)

    serial_key = "serial@1"
    series = [k for k in rows[0] if k not in ("payload_bytes", serial_key) and " " not in k]
    print(f"cpu.spin, {a.tasks} tasks of {a.units} units, throughput against serial at 1 worker")
    print("payload      " + "  ".join(f"{s:>20}" for s in series))
    crossover = {}
    for row in rows:
        base = row.get(serial_key)
        cells = []
        for s in series:
            v = row.get(s)
            x = v / base if v and base else None
            cells.append(f"{x:>19.2f}x" if x is not None else f"{'-':>20}")
            if (s.startswith("process_pool") and s.endswith(f"@{a.workers}") and x is not None
                    and x <= 1 and s not in crossover):
                crossover[s] = row["payload_bytes"]
        print(f"{row['payload_bytes']:>10}   " + "  ".join(cells))
    py_key = f"python:process_pool/pipe@{a.workers} ns/task"
    if not a.no_python:
        print(f"process_pool/pipe@{a.workers} from bench_runner and from Python (concbench.run):")
        for row in rows:
            b, p = row.get(f"process_pool/pipe@{a.workers} ns/task"), row.get(py_key)
            print(f"{row['payload_bytes']:>10}   {b / 1e3 if b else 0:9.1f} us vs {p / 1e3 if p else 0:9.1f} us"
                  f"   faults/task {row.get(f'process_pool/pipe@{a.workers} faults/task')} vs "
                  f"{row.get(f'python:process_pool/pipe@{a.workers} faults/task')}")
    for s in series:
        if s.startswith("process_pool") and s.endswith(f"@{a.workers}"):
            where = crossover.get(s)
            print(f"{s}: " + (f"no faster than serial from {where} bytes per task" if where is not None
                              else "faster than serial at every payload swept"))
    summary = {"kind": "concbench-payload-sweep", "schema_version": 1, "workload": "cpu.spin",
               "tasks": a.tasks, "units": a.units, "workers": a.workers,
               "min_time_s": a.min_time, "rows": rows,
               "process_pool_no_faster_than_serial_from_bytes": crossover}
    write_json_atomic(os.path.join(a.out_dir, "summary.json"), summary)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
