#!/usr/bin/env python3
"""The event loop against asyncio, measured in the same run.

C++ side: bench_runner's micro-benchmarks (BM_Async_*) and the async model on 10,000 concurrent
10 ms sleeps. Python side: the same things with asyncio, under the interpreter given by
--python (default: this one). Prints a table, writes results/async_vs_asyncio.json, and with
--check exits 1 unless coroutine create-and-complete costs at most 1/20 of asyncio's per-task
cost and the 10,000 sleeps finish within 15 ms (median per batch).

Usage: scripts/compare_asyncio.py [--build build] [--python /usr/bin/python3] [--check]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from reportlib import write_json_atomic

# Runs under the chosen interpreter; prints one JSON object. Batches of 1000, as the C++
# micro-benchmark uses; the median over repeated batches.
ASYNCIO_PROBE = r"""
import asyncio, json, platform, statistics, sys, time

async def noop():
    pass

async def main():
    per_task = []
    for _ in range(60):
        t0 = time.perf_counter_ns()
        await asyncio.gather(*[noop() for _ in range(1000)])
        per_task.append((time.perf_counter_ns() - t0) / 1000)
    per_yield = []
    for _ in range(30):
        t0 = time.perf_counter_ns()
        for _ in range(1000):
            await asyncio.sleep(0)
        per_yield.append((time.perf_counter_ns() - t0) / 1000)
    per_timer = []
    for _ in range(10):
        t0 = time.perf_counter_ns()
        for _ in range(100):
            await asyncio.sleep(1e-9)
        per_timer.append((time.perf_counter_ns() - t0) / 100)
    sleeps = []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        await asyncio.gather(*[asyncio.sleep(0.010) for _ in range(10000)])
        sleeps.append(time.perf_counter_ns() - t0)
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "task_create_ns": statistics.median(per_task),
        "yield_ns": statistics.median(per_yield),
        "zero_timer_ns": statistics.median(per_timer),
        "sleep_10k_10ms_batch_ns": statistics.median(sleeps),
    }

print(json.dumps(asyncio.run(main())))
"""


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(f"compare_asyncio: {' '.join(cmd)} failed ({p.returncode}): "
                         f"{p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''}\n")
        sys.exit(2)
    return p.stdout


def micro(runner):
    out = run([runner, "micro", "--benchmark_filter=BM_Async_", "--benchmark_format=json",
               "--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true"])
    res = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"]
        for key in ("per_task", "per_yield", "per_wait"):
            if key in b:
                res[name] = b[key] * 1e9  # the counters are seconds per operation
    return res


def sleep_batch(runner):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        run([runner, "run", "--workloads", "io.sleep", "--models", "async", "--workers", "1",
             "--param", "tasks=10000", "--param", "sleep_us=10000", "--repetitions", "5",
             "--overwrite", "--out", out])
        with open(out) as f:
            r = json.load(f)
    cell = r["results"][0]
    if cell["status"] != "ok":
        sys.stderr.write(f"compare_asyncio: the io.sleep cell ended {cell['status']}\n")
        sys.exit(1)
    return cell["summary"]["wall_ns"]["median"], cell["rounds"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build", help="the CMake build directory")
    ap.add_argument("--python", default=sys.executable, help="interpreter whose asyncio to time")
    ap.add_argument("--out", default="results/async_vs_asyncio.json")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    a = ap.parse_args()
    runner = os.path.join(a.build, "bench_runner")
    if not os.access(runner, os.X_OK):
        sys.stderr.write(f"compare_asyncio: no bench_runner at {runner} (build first)\n")
        sys.exit(2)

    cpp = micro(runner)
    py = json.loads(run([a.python, "-c", ASYNCIO_PROBE]))
    batch_ns, rounds = sleep_batch(runner)

    create = cpp["BM_Async_CoroutineCreate/1000/real_time"]
    rows = [
        ("coroutine create+complete / asyncio task", create, py["task_create_ns"]),
        ("yield through the loop / asyncio.sleep(0)", cpp["BM_Async_Yield/1000/real_time"],
         py["yield_ns"]),
        ("zero-length timer / asyncio.sleep(1e-9)", cpp["BM_Async_ZeroTimer/100/real_time"],
         py["zero_timer_ns"]),
        ("10,000 concurrent 10 ms sleeps, per batch", batch_ns, py["sleep_10k_10ms_batch_ns"]),
    ]
    print(f"{'':46} {'concbench':>12} {'asyncio ' + py['python']:>16} {'ratio':>8}")
    for name, c, p in rows:
        print(f"{name:46} {c:10.0f}ns {p:14.0f}ns {c / p:8.3f}")
    ratio = create / py["task_create_ns"]
    ok_create = ratio <= 1 / 20
    ok_sleep = batch_ns <= 15e6
    print(f"create: {ratio:.4f} of asyncio's per-task cost (target <= 0.05): "
          f"{'met' if ok_create else 'MISSED'}")
    print(f"10,000 sleeps: {batch_ns / 1e6:.2f} ms per batch of {rounds} round(s) "
          f"(target <= 15 ms): {'met' if ok_sleep else 'MISSED'}")

    report = {
        "schema": "concbench.async_vs_asyncio/1",
        "cpp_ns": {name: v for name, v in cpp.items()},
        "cpp_sleep_10k_10ms_batch_ns": batch_ns,
        "asyncio": py,
        "create_ratio": ratio,
        "targets": {"create_ratio_max": 0.05, "sleep_batch_max_ns": 15e6,
                    "create_met": ok_create, "sleep_met": ok_sleep},
    }
    write_json_atomic(a.out, report)
    print(f"written: {a.out}")
    if a.check and not (ok_create and ok_sleep):
        sys.exit(1)


if __name__ == "__main__":
    main()
