#!/usr/bin/env python3
"""Checks the emulated GIL (gil_threads) against real CPython on this machine, and can fail.

Every installed CPython (/usr/bin/python3 and pyenv's versions) runs scripts/cpython_gil_probe.py
--runs times (at least 5), which measures that version's own spread. Beside each, bench_runner
runs the same scenarios under gil_threads --runs repetitions each, with the --gil-policy the
version falls under (3.6 to 3.9: 3.2-3.9; 3.10; 3.11 and 3.12: 3.11-3.12; 3.13+) and calibrated
from that very interpreter (--param interpreter=EXE): Debian's 3.11.2 and pyenv's 3.11.7 are
builds of one policy whose bytecodes and calls cost differently, so each gets its own emulation:
  1. the 2-thread speedup of a CPU loop;
  2. echo round trips per second with 1 and 2 CPU-bound threads (ccbench's latency test), and
     the mode of the median round trip: microseconds, or 1, 2, 3+ switch intervals;
  3. lost updates of `x += 1` and `x += one()` with 2 threads x 1M increments.
Each interpreter is gated against its own emulation:
  round trips/s with 1 and 2 CPU threads: the medians within 1.25x of each other;
  the p50 mode (the most frequent over the runs) the same;
  lost updates of x += 1 and x += one(): gil_threads' median within the version's observed range;
  the speedup at 2 threads: the medians within 0.1.
The two sides run interleaved, in --runs rounds: each round probes every interpreter once and
then runs each one's emulation once (one repetition a scenario), so that the machine's speed
drifting over the minutes the script takes moves both sides alike. With --reference only our side
runs, each scenario's repetitions in one invocation, calibrated from the reference's interpreters
where they are installed here (else from the policy's newest).
It prints a table of all of them and writes one report (default results/gil_validation.json).

Usage: scripts/validate_gil.py [--bench-runner build/bench_runner] [--out FILE] [--runs 5]
                               [--quick] [--reference FILE] [--check FILE]
  --reference FILE  take the CPython side from FILE (a report of this script) instead of running
                    the interpreters
  --check FILE      run nothing: gate FILE's gil_threads side against FILE's CPython side (or
                    --reference's) and print the table
Exit status: 0 when every gate holds, 1 when one misses, 2 for bad usage or input.
"""
import argparse
import datetime
import glob
import json
import os
import subprocess
import sys

from reportlib import bench_report, median, write_json_atomic

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KIND = "concbench-gil-validation"
SCHEMA = 3  # 3: the gil_threads side per interpreter, not per policy
RT_WINDOW = 1.25
SPEEDUP_WINDOW = 0.1
SPINNER_BOUND = 200_000_000  # units (about a microsecond each): minutes, never reached
SCENARIO_TRIPS = {"quick": {1: 100, 2: 50}, "full": {1: 300, 2: 150}}


def die(message):
    sys.stderr.write("validate_gil: %s\n" % message)
    sys.exit(2)


def policy_for(version):
    parts = tuple(int(x) for x in version.split(".")[:2])
    if parts < (3, 2):
        return "3.1"
    if parts < (3, 10):
        return "3.2-3.9"
    if parts < (3, 11):
        return "3.10"
    if parts < (3, 13):
        return "3.11-3.12"
    return "3.13+"


def find_pythons():
    found = []
    if os.path.exists("/usr/bin/python3"):
        found.append("/usr/bin/python3")
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for exe in sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python3"))):
        if not os.path.basename(os.path.dirname(os.path.dirname(exe))).endswith("t"):
            found.append(exe)  # a free-threaded build has no GIL to compare with
    return found


def probe(python, quick):
    args = [python, os.path.join(HERE, "cpython_gil_probe.py")] + (["--quick"] if quick else [])
    try:
        out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=600).stdout
        return json.loads(out)
    except (subprocess.SubprocessError, json.JSONDecodeError, OSError) as e:
        return {"error": str(e).splitlines()[0][:300]}


def mode_of(p50_ns, interval_ns):
    """The p50 round trip as a mode: microseconds, or how many switch intervals it waited."""
    if p50_ns is None:
        return None
    n = int(p50_ns / interval_ns + 0.5)
    return "microseconds" if n == 0 else "1 interval" if n == 1 else \
        "%d intervals" % n if n < 3 else "3+ intervals"


def most_frequent(modes):
    modes = [m for m in modes if m]
    if not modes:
        return None
    order = ["microseconds", "1 interval", "2 intervals", "3+ intervals"]
    return max(order, key=lambda m: (modes.count(m), -order.index(m)))


def spread(xs):
    xs = [x for x in xs if x is not None]
    return {"median": median(xs), "min": min(xs) if xs else None, "max": max(xs) if xs else None,
            "runs": xs}


def summarize(runs, interval_ns):
    """The per-scenario spread over runs, each run shaped as the probe prints it."""
    ok = [r for r in runs if "error" not in r]
    echo = {}
    for k in (1, 2):
        rows = [next((e for e in r["echo"] if e["cpu_threads"] == k), None) for r in ok]
        rows = [e for e in rows if e]
        echo[str(k)] = {"round_trips_per_s": spread([e["round_trips_per_s"] for e in rows]),
                        "rtt_p50_ns": spread([e["rtt_p50_ns"] for e in rows]),
                        "mode": most_frequent([mode_of(e["rtt_p50_ns"], interval_ns)
                                               for e in rows])}
    return {
        "runs": len(ok),
        "errors": [r["error"] for r in runs if "error" in r],
        "speedup": spread([r["speedup"]["speedup"] for r in ok]),
        "echo": echo,
        "race": {name: spread([r["race"][name]["lost_updates"] for r in ok])
                 for name in ("plain", "call_between")},
    }


def cpython_side(runs, quick):
    return by_version([cpython_entry(exe, [probe(exe, quick) for _ in range(runs)])
                       for exe in find_pythons()])


def reps(report, metric):
    """Per verified repetition of the report's only gil_threads cell (the widest one for spin)."""
    for c in report["results"]:
        if c["model"] == "gil_threads":
            return [r["metrics"].get(metric) for r in c["repetitions"] if r["verified"]]
    return []


def gil_threads_samples(runner, policy, runs, quick, interpreter=None):
    """One bench_runner invocation per scenario with --repetitions RUNS: samples shaped as probe
    runs (so one summarize() serves both sides), each carrying the invocation's spin speedup.
    interpreter: the CPython to calibrate from (default: the policy's newest installed)."""
    common = ["--models", "gil_threads", "--gil-policy", policy, "--repetitions", str(runs),
              "--min-time", "0"] + (["--param", "interpreter=" + interpreter] if interpreter else [])
    tool = "validate_gil"
    spin = bench_report(tool, runner, ["--workloads", "cpu.spin", "--workers", "1,2"] + common)
    speedup = next((c["summary"].get("speedup") for c in spin["results"] if c["workers"] == 2),
                   None)
    interval_ns = None
    runs_by_k = {}
    cost = None
    for k, trips in SCENARIO_TRIPS["quick" if quick else "full"].items():
        # The suite's bound on a spinner (about 1.3 s of spinning) is shorter than the round
        # trips take at two intervals each; a spinner that stopped early left the rest of them
        # unloaded (microseconds). CPython's spinners run until the responder is done; so do
        # these, with a bound far past that (they stop on the responder's flag).
        rep = bench_report(tool, runner, ["--workloads", "latency.echo_under_load", "--param",
                                          "cpu_workers=%d" % k, "--param",
                                          "round_trips=%d" % trips, "--param",
                                          "max_cpu_units=%d" % SPINNER_BOUND] + common)
        cell = rep["results"][0]
        mm = cell["repetitions"][0]["model_metrics"] if cell["repetitions"] else {}
        interval_ns = mm.get("switch_interval_us", 5000) * 1e3
        cost = mm.get("interpreter_cost", cost)
        # A run whose spinners ran out is not a run beside CPU-bound threads: left out.
        runs_by_k[k] = [{"cpu_threads": k, "round_trips_per_s": r["metrics"].get("round_trips_per_s"),
                         "rtt_p50_ns": r["metrics"].get("rtt_p50_ns")}
                        for r in cell["repetitions"]
                        if r["verified"] and not r["metrics"].get("spinners_out_of_units")]
    race = {}
    for name, extra in (("plain", []), ("call_between", ["--param", "call_between=1"])):
        rep = bench_report(tool, runner, ["--workloads", "cpu.counter_race", "--workers", "2"] +
                           common + extra)
        race[name] = reps(rep, "lost_updates")
    n = min([len(v) for v in runs_by_k.values()] + [len(v) for v in race.values()])
    samples = [{"speedup": {"speedup": speedup},
                "echo": [runs_by_k[k][i] for k in sorted(runs_by_k)],
                "race": {name: {"lost_updates": race[name][i]} for name in race}}
               for i in range(n)]
    return samples, interval_ns, cost, spin["context"]


def gil_threads_side(policy, samples, interval_ns, cost, context, speedups):
    summary = summarize(samples, interval_ns or 5e6)
    # One figure an invocation: the cell's median-based speedup.
    summary["speedup"] = spread(speedups)
    return {"policy": policy, "interpreter": (cost or {}).get("interpreter"), "summary": summary,
            "interpreter_cost": cost, "context": context}


def calibrate_from(exe):
    """The interpreter our side calibrates from for CPython `exe`: itself where it runs here."""
    return exe if exe and os.path.isabs(exe) and os.access(exe, os.X_OK) else None


def cpython_entry(exe, samples):
    good = [s for s in samples if "error" not in s]
    info = good[0]["python"] if good else {"executable": exe}
    interval_ns = info.get("switch_interval_s", 0.005) * 1e9
    return {"python": info, "summary": summarize(samples, interval_ns), "samples": samples}


def by_version(side):
    side.sort(key=lambda c: tuple(int(x) for x in c["python"].get("version", "0").split(".")
                                  if x.isdigit()))
    return side


def interleaved(runner, runs, quick):
    """Both sides in rounds, A B A B: each round probes every interpreter once, then runs each
    one's emulation once, so a drift of the machine's speed over the minutes the script takes
    (round trips per second moved by a third within an hour here) reaches both sides alike
    instead of one. Our side is keyed by the interpreter it stands beside."""
    pythons = find_pythons()
    theirs = {exe: [] for exe in pythons}
    ours = {}
    for _ in range(runs):
        for exe in pythons:
            theirs[exe].append(probe(exe, quick))
        for c in by_version([cpython_entry(e, s) for e, s in theirs.items()]):
            exe, version = c["python"]["executable"], c["python"].get("version")
            if not version:
                continue  # it has not run here yet: nothing to stand beside
            policy = policy_for(version)
            got = ours.setdefault(exe, {"policy": policy, "samples": [], "speedups": []})
            samples, interval_ns, cost, context = gil_threads_samples(runner, policy, 1, quick,
                                                                      calibrate_from(exe))
            got["samples"] += samples
            got["speedups"].append(samples[0]["speedup"]["speedup"] if samples else None)
            got.update(interval_ns=interval_ns or got.get("interval_ns"),
                       cost=cost or got.get("cost"), context=context)
    cpython = by_version([cpython_entry(e, s) for e, s in theirs.items()])
    return cpython, {e: gil_threads_side(g["policy"], g["samples"], g.get("interval_ns"),
                                         g.get("cost"), g["context"], g["speedups"])
                     for e, g in ours.items()}


def gates(cpython, ours):
    out = []
    for c in cpython:
        version = c["python"].get("version")
        if not version or not c["summary"]["runs"]:
            continue
        policy = policy_for(version)
        mine = ours.get(c["python"]["executable"])
        if not mine:
            continue
        t, m = c["summary"], mine["summary"]

        def gate(what, theirs, value, window, holds):
            out.append({"version": version, "interpreter": c["python"]["executable"],
                        "policy": policy, "what": what, "cpython": theirs,
                        "gil_threads": value, "window": window, "holds": bool(holds)})

        for k in ("1", "2"):
            a = t["echo"][k]["round_trips_per_s"]["median"]
            b = m["echo"][k]["round_trips_per_s"]["median"]
            ratio = b / a if a and b else None
            gate("round trips/s, %s CPU thread%s" % (k, "s" if k != "1" else ""), a, b,
                 "within %.2fx (ratio %s)" % (RT_WINDOW, "-" if ratio is None else "%.2f" % ratio),
                 ratio is not None and 1 / RT_WINDOW <= ratio <= RT_WINDOW)
            gate("p50 mode, %s CPU thread%s" % (k, "s" if k != "1" else ""), t["echo"][k]["mode"],
                 m["echo"][k]["mode"], "the same", t["echo"][k]["mode"] == m["echo"][k]["mode"])
        for name, what in (("plain", "lost updates, x += 1"), ("call_between",
                                                                "lost updates, x += one()")):
            lo, hi = t["race"][name]["min"], t["race"][name]["max"]
            v = m["race"][name]["median"]
            gate(what, "-" if lo is None else "{:,}..{:,}".format(lo, hi), v,
                 "in the version's range",
                 v is not None and lo is not None and lo <= v <= hi)
        a, b = t["speedup"]["median"], m["speedup"]["median"]
        gate("speedup at 2 threads", a, b, "within %.1f" % SPEEDUP_WINDOW,
             a is not None and b is not None and abs(a - b) <= SPEEDUP_WINDOW)
    return out


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.3g" % v if abs(v) < 10 else "%.0f" % v
    return str(v)


def print_table(report):
    rows = [("interpreter", "policy", "what", "CPython", "gil_threads", "gate", "")]
    for g in report["gates"]:
        rows.append(("CPython " + g["version"] + (" (system)" if g["interpreter"] == "/usr/bin/python3"
                                                  else ""), g["policy"], g["what"],
                     fmt(g["cpython"]), fmt(g["gil_threads"]), g["window"],
                     "holds" if g["holds"] else "MISSES"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    held = sum(g["holds"] for g in report["gates"])
    print("%d of %d gates hold (%d runs a side)" % (held, len(report["gates"]), report["runs"]))


def load(path):
    try:
        with open(path) as f:
            r = json.load(f)
    except OSError as e:
        die("%s: cannot read: %s" % (path, e.strerror))
    except json.JSONDecodeError as e:
        die("%s: not valid JSON (%s)" % (path, str(e).splitlines()[0]))
    if not isinstance(r, dict) or r.get("kind") != KIND or r.get("schema_version") != SCHEMA:
        die("%s: not a gil validation report of schema %d" % (path, SCHEMA))
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench-runner", default=os.path.join(ROOT, "build", "bench_runner"))
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "gil_validation.json"))
    ap.add_argument("--runs", type=int, default=5, help="runs a side per scenario (at least 5)")
    ap.add_argument("--quick", action="store_true", help="fewer round trips and iterations")
    ap.add_argument("--reference", help="the CPython side from this report, not run here")
    ap.add_argument("--check", help="gate this report's sides and run nothing")
    a = ap.parse_args()
    if a.runs < 5:
        die("--runs: at least 5, to measure each version's spread")
    reference = load(a.reference) if a.reference else None
    if a.check:
        report = load(a.check)
        if reference:
            report["cpython"] = reference["cpython"]
        report["gates"] = gates(report["cpython"], report["gil_threads"])
        report["holds"] = bool(report["gates"]) and all(g["holds"] for g in report["gates"])
        print_table(report)
        return 0 if report["holds"] else 1
    if not os.access(a.bench_runner, os.X_OK):
        die("no bench_runner at %s (build first)" % a.bench_runner)

    if reference:
        cpython = reference["cpython"]
        ours = {}
        for c in cpython:
            exe, version = c["python"].get("executable"), c["python"].get("version")
            if not exe or not version:
                continue
            p = policy_for(version)
            samples, interval_ns, cost, context = gil_threads_samples(a.bench_runner, p, a.runs,
                                                                      a.quick, calibrate_from(exe))
            speedup = samples[0]["speedup"]["speedup"] if samples else None
            ours[exe] = gil_threads_side(p, samples, interval_ns, cost, context, [speedup])
    else:
        cpython, ours = interleaved(a.bench_runner, a.runs, a.quick)
    report = {
        "kind": KIND,
        "schema_version": SCHEMA,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": a.quick,
        "runs": a.runs,
        "reference": a.reference,
        "interleaved": not a.reference,
        "context": next(iter(ours.values()))["context"] if ours else None,
        "cpython": cpython,
        "gil_threads": ours,
    }
    report["gates"] = gates(cpython, ours)
    report["holds"] = bool(report["gates"]) and all(g["holds"] for g in report["gates"])
    write_json_atomic(a.out, report)
    print_table(report)
    print("report: " + a.out)
    return 0 if report["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
