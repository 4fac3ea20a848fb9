#!/usr/bin/env python3
"""Checks the emulated GIL (gil_threads) against real CPython on this machine, in one run.

For every CPython found (/usr/bin/python3 and pyenv's versions) it runs
scripts/cpython_gil_probe.py; beside it, bench_runner runs the same three scenarios under
gil_threads (and free_threads for contrast):
  1. the 2-thread speedup of a CPU loop;
  2. echo round trips per second with 0, 1 and 2 CPU-bound threads (ccbench's latency test);
  3. lost updates of `x += 1` (and `x += one()`) with 2 threads, by interpreter version and by
     checkpoint policy (backedge = 3.10+, per_instruction = 3.9 and earlier).
It writes one report (default results/gil_validation.json) and prints the comparison.

Usage: scripts/validate_gil.py [--bench-runner build/bench_runner] [--out FILE] [--quick]
Exit status: 0 when the echo criterion holds (gil_threads' round trips per second with one CPU
thread within 0.5x to 2x of CPython 3.11's), 1 when it does not, 2 for bad usage.
"""
import argparse
import datetime
import glob
import json
import os
import subprocess
import sys

from reportlib import bench_report, write_json_atomic

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def find_pythons():
    found = []
    if os.path.exists("/usr/bin/python3"):
        found.append("/usr/bin/python3")
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for exe in sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python3"))):
        found.append(exe)
    return found


def probe(python, quick):
    args = [python, os.path.join(HERE, "cpython_gil_probe.py")] + (["--quick"] if quick else [])
    try:
        out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=600).stdout
        return json.loads(out)
    except (subprocess.SubprocessError, json.JSONDecodeError, OSError) as e:
        return {"python": {"executable": python}, "error": str(e).splitlines()[0][:300]}


def bench(runner, args):
    return bench_report("validate_gil", runner, ["--min-time", "0"] + args)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return (xs[n // 2] + xs[(n - 1) // 2]) / 2 if xs else None


def cell_metric(report, model, key, workers=None):
    for c in report["results"]:
        if c["model"] == model and (workers is None or c["workers"] == workers):
            vals = [r["metrics"][key] for r in c["repetitions"] if r["verified"]]
            return median(vals)
    return None


def concbench_side(runner, quick):
    reps = "3"
    side = {}
    spin = bench(runner, ["--workloads", "cpu.spin", "--models", "gil_threads,free_threads",
                          "--workers", "1,2", "--repetitions", reps])
    side["speedup"] = {c["model"]: c["summary"]["speedup"] for c in spin["results"]
                       if c["workers"] == 2}
    trips = {0: 2000, 1: 100, 2: 50} if quick else {0: 10000, 1: 300, 2: 150}
    side["echo"] = []
    for k, n in sorted(trips.items()):
        rep = bench(runner, ["--workloads", "latency.echo_under_load", "--models", "gil_threads",
                             "--repetitions", reps, "--param", "cpu_workers=%d" % k,
                             "--param", "round_trips=%d" % n])
        side["echo"].append({
            "cpu_threads": k,
            "round_trips_per_s": cell_metric(rep, "gil_threads", "round_trips_per_s"),
            "rtt_p50_ns": cell_metric(rep, "gil_threads", "rtt_p50_ns"),
            "rtt_p99_ns": cell_metric(rep, "gil_threads", "rtt_p99_ns"),
        })
    side["race"] = {}
    for label, extra in [("backedge", ["--checkpoint", "backedge"]),
                         ("per_instruction", ["--checkpoint", "per_instruction"]),
                         ("backedge_call_between", ["--checkpoint", "backedge", "--param", "call_between=1"])]:
        rep = bench(runner, ["--workloads", "cpu.counter_race", "--models", "gil_threads",
                             "--workers", "2", "--repetitions", reps] + extra)
        side["race"][label] = cell_metric(rep, "gil_threads", "lost_updates")
    rep = bench(runner, ["--workloads", "cpu.counter_race", "--models", "free_threads",
                         "--workers", "2", "--repetitions", reps])
    side["race"]["free_threads"] = cell_metric(rep, "free_threads", "lost_updates")
    side["context"] = spin["context"]
    return side


def fmt(v, f="%.3g"):
    return "-" if v is None else f % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench-runner", default=os.path.join(ROOT, "build", "bench_runner"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "gil_validation.json"))
    ap.add_argument("--quick", action="store_true", help="fewer round trips and iterations")
    a = ap.parse_args()
    if not os.access(a.bench_runner, os.X_OK):
        print("validate_gil: no bench_runner at %s (build first)" % a.bench_runner, file=sys.stderr)
        return 2

    cpython = [probe(p, a.quick) for p in find_pythons()]
    version_key = lambda c: tuple(int(x) for x in c["python"].get("version", "0").split(".")[:3]
                                  if x.isdigit())
    cpython.sort(key=version_key)
    ours = concbench_side(a.bench_runner, a.quick)

    ref = next((c for c in cpython if c.get("python", {}).get("version", "").startswith("3.11")
                and "echo" in c), None)
    ratio = None
    if ref:
        theirs = next(e for e in ref["echo"] if e["cpu_threads"] == 1)["round_trips_per_s"]
        mine = next(e for e in ours["echo"] if e["cpu_threads"] == 1)["round_trips_per_s"]
        ratio = mine / theirs if theirs and mine else None

    report = {
        "kind": "concbench-gil-validation",
        "schema_version": 1,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": a.quick,
        "cpython": cpython,
        "gil_threads": ours,
        "criterion": {
            "what": "gil_threads echo round trips/s with 1 CPU thread within 0.5x..2x of CPython 3.11",
            "reference": ref["python"]["executable"] if ref else None,
            "ratio": ratio,
            "holds": ratio is not None and 0.5 <= ratio <= 2.0,
        },
    }
    write_json_atomic(a.out, report)

    print("%-28s %9s %12s %12s %12s %10s %12s" % ("interpreter", "speedup", "echo rt/s 0", "echo rt/s 1",
                                                   "echo rt/s 2", "lost x+=1", "lost x+=f()"))
    for c in cpython:
        name = "CPython " + c["python"].get("version", "?") + (" (" + c["python"]["executable"] + ")"
                                                               if c["python"]["executable"] == "/usr/bin/python3" else "")
        if "error" in c:
            print("%-28s error: %s" % (name, c["error"]))
            continue
        e = {x["cpu_threads"]: x["round_trips_per_s"] for x in c["echo"]}
        print("%-28s %9s %12s %12s %12s %10d %12d" % (name[:28], fmt(c["speedup"]["speedup"], "%.2f"),
              fmt(e.get(0), "%.0f"), fmt(e.get(1), "%.0f"), fmt(e.get(2), "%.0f"),
              c["race"]["plain"]["lost_updates"], c["race"]["call_between"]["lost_updates"]))
    e = {x["cpu_threads"]: x["round_trips_per_s"] for x in ours["echo"]}
    r = ours["race"]
    print("%-28s %9s %12s %12s %12s %10s %12s" % ("gil_threads (backedge)", fmt(ours["speedup"].get("gil_threads"), "%.2f"),
          fmt(e.get(0), "%.0f"), fmt(e.get(1), "%.0f"), fmt(e.get(2), "%.0f"),
          fmt(r["backedge"], "%.0f"), fmt(r["backedge_call_between"], "%.0f")))
    print("%-28s %9s %12s %12s %12s %10s %12s" % ("gil_threads (per_instruction)", "", "", "", "",
                                                  fmt(r["per_instruction"], "%.0f"), ""))
    print("%-28s %9s %12s %12s %12s %10s %12s" % ("free_threads", fmt(ours["speedup"].get("free_threads"), "%.2f"),
                                                  "", "", "", fmt(r["free_threads"], "%.0f"), ""))
    crit = report["criterion"]
    print("echo with 1 CPU thread, gil_threads / CPython 3.11: %s (%s)" %
          (fmt(crit["ratio"], "%.2fx"), "within 0.5x..2x" if crit["holds"] else "OUTSIDE 0.5x..2x"))
    print("report: " + a.out)
    return 0 if crit["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
