#!/usr/bin/env python3
"""The CPython version matrix: builds the concbench module for every CPython on this machine
(/usr/bin/python3 and pyenv's 3.8 and later), runs the Python suite on each, and writes one report
per version into results/cpython/, plus results/cpython/matrix.json, the figures that change
between versions: lost updates of `x += 1` under two threads, the convoy effect (round trips of an
IO thread beside a CPU-bound one), the CPU speedup of threads, processes, processes of threads and
subinterpreters (where the version has them), and io.sleep's overlap under asyncio and gevent.
Every cpython.* model the version offers runs (they register where available); the ones it
lacks are listed per version with the interpreter's one-line reason.

    python3 scripts/python_matrix.py [--build-dir build] [--out-dir results/cpython]
                                     [--repetitions 3] [--only 3.9,3.12]

The harness is compiled once; each interpreter gets only its module (CMake target
concbench_python_matrix). Interpreters without headers are skipped, and the summary says so.
"""

import argparse
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = ("cpu.spin", "cpu.pidigits", "cpu.sha256", "cpu.counter_race", "io.sleep",
             "io.pipe_echo", "overhead.noop", "latency.echo_under_load", "mixed.cpu_io")


def interpreters():
    """(label, executable, headers present) for /usr/bin/python3 and pyenv's 3.8 and later."""
    found = []
    if os.path.exists("/usr/bin/python3"):
        found.append("/usr/bin/python3")
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        root = os.path.expanduser("~/.pyenv")
    for exe in sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3"))):
        found.append(exe)
    out = []
    for exe in found:
        info = subprocess.run(
            [exe, "-c", "import sys, sysconfig, os; print('%d.%d' % sys.version_info[:2]); "
             "print(sys.version.split()[0]); "
             "print(os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"],
            capture_output=True, text=True)
        if info.returncode != 0:
            continue
        minor, full, headers = info.stdout.split()
        if tuple(int(x) for x in minor.split(".")) < (3, 8):
            continue  # concurrent.futures' initializer and other 3.8 features are needed
        out.append({"exe": exe, "minor": minor, "version": full, "headers": headers == "True"})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "results", "cpython"))
    ap.add_argument("--repetitions", default="3")
    ap.add_argument("--only", help="comma-separated X.Y versions to run")
    ap.add_argument("--digest-only", action="store_true",
                    help="rewrite matrix.json from the reports already in --out-dir")
    args = ap.parse_args()
    if args.digest_only:
        return digest_only(args.out_dir)

    interps = interpreters()
    if args.only:
        keep = set(args.only.split(","))
        interps = [i for i in interps if i["minor"] in keep]
    # /usr/bin/python3 uses the default build's module (build/python); the others get
    # python-X.Y. A pyenv version with the same X.Y as /usr/bin/python3 is still built and run.
    extra = [i for i in interps if i["exe"] != "/usr/bin/python3" and i["headers"]]
    subprocess.run(["cmake", "-S", ROOT, "-B", args.build_dir,
                    "-DCONCBENCH_PYTHON_EXECUTABLES=" + ";".join(i["exe"] for i in extra)],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", args.build_dir, "-j", str(os.cpu_count() or 2),
                    "--target", "concbench_python", "concbench_python_matrix", "bench_runner"],
                   check=True)
    os.makedirs(args.out_dir, exist_ok=True)
    summary = {"versions": [], "skipped": []}
    for i in interps:
        if not i["headers"]:
            summary["skipped"].append({"executable": i["exe"], "reason": "no Python.h"})
            continue
        if i["exe"] == "/usr/bin/python3":
            pkg, label = os.path.join(args.build_dir, "python"), "debian-" + i["version"]
        else:
            pkg, label = os.path.join(args.build_dir, "python-" + i["minor"]), i["version"]
        out = os.path.join(args.out_dir, "cpython-%s.json" % label)
        env = dict(os.environ, PYTHONPATH=pkg)
        cmd = [i["exe"], "-m", "concbench", "run", "--workloads", ",".join(WORKLOADS),
               "--workers", "1,2", "--repetitions", args.repetitions, "--overwrite", "--out", out]
        print("== %s (%s)" % (label, i["exe"]), flush=True)
        rc = subprocess.run(cmd, env=env, cwd=ROOT).returncode
        if rc == 2 or not os.path.exists(out):
            summary["skipped"].append({"executable": i["exe"], "reason": "run failed (%d)" % rc})
            continue
        summary["versions"].append(digest(label, out))
    path = os.path.join(args.out_dir, "matrix.json")
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(path + ".tmp", path)
    print_table(summary)
    print("matrix: " + path)
    return 0


def digest_only(out_dir):
    """matrix.json again from the reports in out_dir (after a change to digest())."""
    summary = {"versions": [], "skipped": []}
    old = os.path.join(out_dir, "matrix.json")
    if os.path.exists(old):
        with open(old) as f:
            summary["skipped"] = json.load(f).get("skipped", [])
    for path in sorted(glob.glob(os.path.join(out_dir, "cpython-*.json"))):
        label = os.path.basename(path)[len("cpython-"):-len(".json")]
        summary["versions"].append(digest(label, path))
    with open(old + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(old + ".tmp", old)
    print_table(summary)
    return 0


def _median(cell, key):
    vals = sorted(r["metrics"].get(key) for r in cell["repetitions"]
                  if r["metrics"].get(key) is not None)
    return vals[len(vals) // 2] if vals else None


def digest(label, path):
    with open(path) as f:
        rep = json.load(f)
    cells = {(c["workload"], c["model"], c["workers"]): c for c in rep["results"]}
    d = {"version": label, "report": os.path.relpath(path, ROOT),
         "switch_interval_s": rep["context"]["python"]["switch_interval_s"]}
    race = cells.get(("cpu.counter_race", "cpython.threading", 2))
    if race and race["repetitions"]:
        d["counter_race_lost_updates_2_threads"] = _median(race, "lost_updates")
        d["counter_race_increments"] = race["repetitions"][0]["metrics"].get("increments")
    echo = cells.get(("latency.echo_under_load", "cpython.threading", 2))
    if echo and echo["repetitions"]:
        d["echo_under_load_round_trips_per_s"] = _median(echo, "round_trips_per_s")
        d["echo_under_load_rtt_p50_ns"] = _median(echo, "rtt_p50_ns")
        d["echo_under_load_rtt_p99_ns"] = _median(echo, "rtt_p99_ns")
    for model in ("cpython.threading", "cpython.process_pool", "cpython.process_threads",
                  "cpython.interpreters"):
        c = cells.get(("cpu.spin", model, 2))
        if c and c["status"] == "ok":
            d["cpu_spin_speedup_2_workers_" + model.split(".")[1]] = c["summary"]["speedup"]
    # One event loop each: their single cell, against cpython.serial.
    for model in ("cpython.asyncio", "cpython.gevent"):
        c = cells.get(("io.sleep", model, 1))
        if c and c["status"] == "ok":
            d["io_sleep_vs_serial_" + model.split(".")[1]] = c["summary"]["speedup_vs_serial"]
    d["models_unavailable"] = rep["context"]["python"].get("models_unavailable", {})
    d["failed_cells"] = [k[0] + "/" + k[1] + "/" + str(k[2]) for k, c in cells.items()
                         if c["status"] != "ok"]
    return d


def print_table(summary):
    cols = ("version", "counter_race_lost_updates_2_threads", "echo_under_load_round_trips_per_s",
            "cpu_spin_speedup_2_workers_threading", "cpu_spin_speedup_2_workers_process_pool",
            "cpu_spin_speedup_2_workers_interpreters", "io_sleep_vs_serial_gevent")
    print(" | ".join(cols))
    for v in summary["versions"]:
        row = []
        for c in cols:
            x = v.get(c)
            row.append("%.2f" % x if isinstance(x, float) else str(x))
        print(" | ".join(row))
    for s in summary["skipped"]:
        print("skipped %s: %s" % (s["executable"], s["reason"]))


if __name__ == "__main__":
    sys.exit(main())
