#!/usr/bin/env python3
"""Measures CPython's multiprocessing beside concbench's process_pool, on the same machine and
the same payload sizes, and writes the comparison into results/.

CPython side (the interpreter running this script, or --python):
  * ProcessPoolExecutor(max_workers=1): per-task cost of a no-op task carrying a 1 KiB payload,
    all tasks submitted at once (the executor pipelines them).
  * multiprocessing.Pool(1).apply: a synchronous round trip per payload size.
concbench side (bench_runner, overhead.noop, 1 worker process):
  * all tasks at once: the median wall time per task (the same figure as the executor's);
  * synchronous (inflight=1) round trips per payload size, for transport=pipe and shm;
  * the bare socketpair ping-pong between two processes (`bench_runner micro`), the floor.

Usage: scripts/compare_multiprocessing.py [--bench-runner PATH] [--python PATH] [--out FILE]
                                          [--quick]
Exit status: 0 when process_pool's per-task cost is at most a quarter of ProcessPoolExecutor's,
1 otherwise, 2 for bad usage.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

from reportlib import bench_report, write_json_atomic

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CPYTHON = r"""
import json, sys, time
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

def noop(payload):
    return len(payload)

def echo(payload):
    return payload

def main():
    n_exec, sizes, n_apply = int(sys.argv[1]), [int(s) for s in sys.argv[2].split(",")], int(sys.argv[3])
    ctx = mp.get_context("fork")
    out = {"version": sys.version.split()[0], "executable": sys.executable}
    payload = b"x" * 1024
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
        list(ex.map(noop, [payload] * 100))  # warm up
        t0 = time.perf_counter()
        futs = [ex.submit(noop, payload) for _ in range(n_exec)]
        for f in futs:
            f.result()
        out["executor_noop_1k_per_task_ns"] = (time.perf_counter() - t0) * 1e9 / n_exec
    out["pool_apply_round_trip_ns"] = {}
    with ctx.Pool(1) as pool:
        for size in sizes:
            data = b"y" * size
            n = max(5, min(n_apply, int(n_apply * 1024 / max(size, 1024))))
            for _ in range(3):
                pool.apply(echo, (data,))
            t0 = time.perf_counter()
            for _ in range(n):
                pool.apply(echo, (data,))
            out["pool_apply_round_trip_ns"][str(size)] = (time.perf_counter() - t0) * 1e9 / n
    json.dump(out, sys.stdout)

if __name__ == "__main__":
    main()
"""


def bench(runner, args):
    return bench_report("compare_multiprocessing", runner, args)


def per_task_ns(report):
    cell = report["results"][0]
    s = cell["summary"]["wall_ns_per_task"]
    if not isinstance(s, dict):
        raise SystemExit("compare_multiprocessing: process_pool cell did not verify: %s" % cell["error"])
    return s["median"]


def ping_pong_ns(runner):
    proc = subprocess.run([runner, "micro", "--benchmark_filter=BM_SocketpairPingPong_Processes",
                           "--benchmark_format=json", "--benchmark_min_time=0.2"],
                          capture_output=True, text=True, timeout=600)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {}
    return {b["name"]: b["real_time"] for b in data.get("benchmarks", [])
            if b.get("run_type") == "iteration"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench-runner", default=os.path.join(ROOT, "build", "bench_runner"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "process_pool_vs_cpython.json"))
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if not os.access(a.bench_runner, os.X_OK):
        print("compare_multiprocessing: no bench_runner at %s" % a.bench_runner, file=sys.stderr)
        return 2
    sizes = [0, 1024, 65536, 1 << 20] + ([] if a.quick else [16 << 20, 64 << 20])
    n_exec = 5000 if a.quick else 20000
    cp = subprocess.run([a.python, "-c", CPYTHON, str(n_exec), ",".join(map(str, sizes)),
                         "500" if a.quick else "2000"],
                        capture_output=True, text=True, timeout=1800, check=True)
    cpython = json.loads(cp.stdout)

    noop = bench(a.bench_runner, ["--workloads", "overhead.noop", "--models", "process_pool",
                                  "--workers", "1", "--repetitions", "5", "--param", "payload_bytes=1024",
                                  "--param", "tasks=%d" % n_exec])
    ours = {"noop_1k_per_task_ns": per_task_ns(noop),
            "inflight": noop["results"][0]["params"].get("inflight"),
            "sync_round_trip_ns": {}}
    for transport in ("pipe", "shm"):
        ours["sync_round_trip_ns"][transport] = {}
        for size in sizes:
            n = max(20, min(2000, 2000 * 1024 // max(size, 1024)))
            rep = bench(a.bench_runner, ["--workloads", "overhead.noop", "--models", "process_pool",
                                         "--workers", "1", "--repetitions", "3", "--min-time", "0",
                                         "--param", "payload_bytes=%d" % size, "--param", "tasks=%d" % n,
                                         "--param", "inflight=1", "--param", "transport=" + transport])
            ours["sync_round_trip_ns"][transport][str(size)] = per_task_ns(rep)
    ours["bare_ping_pong_ns"] = ping_pong_ns(a.bench_runner)

    ratio = ours["noop_1k_per_task_ns"] / cpython["executor_noop_1k_per_task_ns"]
    report = {
        "kind": "concbench-process-pool-vs-cpython",
        "schema_version": 1,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpython": cpython,
        "process_pool": ours,
        "context": noop["context"],
        "criterion": {"what": "process_pool per-task cost (overhead.noop, 1 KiB, all at once) <= 1/4 of "
                              "ProcessPoolExecutor's", "ratio": ratio, "holds": ratio <= 0.25},
    }
    write_json_atomic(a.out, report)

    print("no-op task with 1 KiB, all submitted at once (1 worker):")
    print("  CPython %s ProcessPoolExecutor  %9.1f us/task" % (cpython["version"],
                                                            cpython["executor_noop_1k_per_task_ns"] / 1e3))
    print("  concbench process_pool            %9.1f us/task  (%.2fx)" % (ours["noop_1k_per_task_ns"] / 1e3, ratio))
    print("synchronous round trip by payload size:")
    print("  %10s %14s %14s %14s" % ("bytes", "Pool.apply", "pipe", "shm"))
    for size in sizes:
        k = str(size)
        print("  %10d %11.1f us %11.1f us %11.1f us" % (size, cpython["pool_apply_round_trip_ns"][k] / 1e3,
                                                        ours["sync_round_trip_ns"]["pipe"][k] / 1e3,
                                                        ours["sync_round_trip_ns"]["shm"][k] / 1e3))
    for name, ns in sorted(ours["bare_ping_pong_ns"].items()):
        print("  bare %s: %.1f us" % (name, ns / 1e3))
    print("report: " + a.out)
    return 0 if report["criterion"]["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
