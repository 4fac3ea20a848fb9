#!/usr/bin/python3
"""Print the figures behind README.md's "Findings" from the reference reports, so every number
there can be regenerated with one command.

Usage: scripts/findings.py [--suite results/reference/full.json]
                           [--payload results/payload/summary.json]
                           [--matrix results/cpython/matrix.json]
Bad input: one line on stderr, exit 2.
"""
import argparse
import json
import sys

from reportlib import BadInput, load_report, median


def load(path):
    try:
        if path.endswith("summary.json") or path.endswith("matrix.json"):
            with open(path) as f:
                return json.load(f)
        return load_report(path)
    except (OSError, ValueError, BadInput) as e:
        sys.stderr.write(f"findings: {e if isinstance(e, BadInput) else f'{path}: {e}'}\n")
        sys.exit(2)


class Suite:
    def __init__(self, report):
        self.r = report
        self.cells = {(c["workload"], c["model"], c["workers"]): c for c in report["results"]}
        self.workers = sorted({c["workers"] for c in report["results"]})

    def cell(self, wl, model, w):
        c = self.cells.get((wl, model, w))
        return c if c and c["status"] == "ok" else None

    def vs_serial(self, wl, model, w):
        c = self.cell(wl, model, w)
        return c["summary"]["speedup_vs_serial"] if c else None

    def reps(self, wl, model, w):
        c = self.cell(wl, model, w)
        return [r for r in c["repetitions"] if r["verified"]] if c else []

    def metric(self, wl, model, w, name):
        return median([r["metrics"].get(name) for r in self.reps(wl, model, w)])

    def per_task(self, wl, model, w, counter):
        return median([r["counters"][counter] / r["tasks"] for r in self.reps(wl, model, w)
                       if r["counters"].get(counter) is not None and r["tasks"]])

    def time_per_task(self, wl, model, w):
        c = self.cell(wl, model, w)
        return c["summary"]["wall_ns_per_task"]["median"] if c else None


def fmt(v, spec=".2f", unit=""):
    return "-" if v is None else f"{v:{spec}}{unit}"


def us(ns):
    return "-" if ns is None else (f"{ns / 1e3:.1f} us" if ns < 1e6 else f"{ns / 1e6:.2f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="results/reference/full.json")
    ap.add_argument("--payload", default="results/payload/summary.json")
    ap.add_argument("--matrix", default="results/cpython/matrix.json")
    a = ap.parse_args()
    s = Suite(load(a.suite))
    ctx = s.r["context"]
    print(f"# {a.suite}: {ctx.get('cpu_model')}, {ctx.get('cpus_allowed')} CPUs, "
          f"suite {s.r['config']['suite']}, {s.r['config']['repetitions']} repetitions, "
          f"revision {ctx.get('git_revision')}")
    wmax = max(s.workers)

    print("\n## CPU-bound speedup against serial (median throughput ratio)")
    models = ["free_threads", "gil_threads", "thread_pool", "pinned_pool", "process_pool", "async_mt"]
    for wl in ("cpu.spin", "cpu.pidigits", "cpu.sha256"):
        for w in s.workers:
            print(f"{wl:14} {w}w  " + "  ".join(f"{m} {fmt(s.vs_serial(wl, m, w))}" for m in models))

    print("\n## IO overlap: io.sleep and mixed.cpu_io against serial")
    for wl in ("io.sleep", "mixed.cpu_io"):
        row = [f"async {fmt(s.vs_serial(wl, 'async', 1))}"]
        for m in ("async_mt", "free_threads", "gil_threads", "thread_pool", "process_pool"):
            row.append(f"{m}@{wmax} {fmt(s.vs_serial(wl, m, wmax))}")
        print(f"{wl:14} " + "  ".join(row))

    print("\n## Echo under load (a client's round trips while every other worker spins)")
    for m in ("serial", "free_threads", "gil_threads", "thread_pool", "pinned_pool", "process_pool",
              "async", "async_mt"):
        for w in s.workers:
            p50 = s.metric("latency.echo_under_load", m, w, "rtt_p50_ns")
            if p50 is None:
                continue
            print(f"{m:13} {w}w  p50 {us(p50):>9}  p99 "
                  f"{us(s.metric('latency.echo_under_load', m, w, 'rtt_p99_ns')):>9}  "
                  f"{fmt(s.metric('latency.echo_under_load', m, w, 'round_trips_per_s'), '.0f')} rt/s")

    print("\n## Placement: migrations per task and echo round trips (io.pipe_echo)")
    for m in ("thread_pool", "pinned_pool", "free_threads"):
        for w in s.workers:
            rt = s.metric("io.pipe_echo", m, w, "round_trip_ns")
            print(f"{m:13} {w}w  round trip {us(rt):>9}  migrations/task "
                  f"{fmt(s.per_task('io.pipe_echo', m, w, 'cpu_migrations'), '.4f')}  "
                  f"cpu.spin migrations/task {fmt(s.per_task('cpu.spin', m, w, 'cpu_migrations'), '.4f')}  "
                  f"ctxsw/task {fmt(s.per_task('io.pipe_echo', m, w, 'context_switches'), '.2f')}")

    print("\n## x += 1 (cpu.counter_race): lost updates")
    for m in ("serial", "free_threads", "gil_threads", "thread_pool", "pinned_pool", "process_pool",
              "async", "async_mt"):
        for w in s.workers:
            lost = s.metric("cpu.counter_race", m, w, "lost_updates")
            inc = s.metric("cpu.counter_race", m, w, "increments")
            if lost is not None and inc:
                print(f"{m:13} {w}w  {lost:.0f} of {inc:.0f} ({100 * lost / inc:.1f}%)")

    print("\n## Payload sweep (scripts/sweep_payload.py)")
    p = load(a.payload)
    keys = [k for k in p["rows"][0] if k not in ("payload_bytes", "serial@1")]
    for row in p["rows"]:
        base = row.get("serial@1")
        print(f"{row['payload_bytes']:>9} B  " + "  ".join(
            f"{k} {fmt(row[k] / base if row.get(k) and base else None)}" for k in keys))
    print("process_pool no faster than serial from:", p["process_pool_no_faster_than_serial_from_bytes"])

    print("\n## CPython matrix (scripts/python_matrix.py)")
    m = load(a.matrix)
    for v in m["versions"]:
        print(f"{v['version']:>13}  lost {v['counter_race_lost_updates_2_threads']:>7} of "
              f"{v['counter_race_increments']}  echo p50 {us(v['echo_under_load_rtt_p50_ns']):>9} "
              f"{v['echo_under_load_round_trips_per_s']:.0f} rt/s  threading "
              f"{v['cpu_spin_speedup_2_workers_threading']:.2f}x  process_pool "
              f"{v['cpu_spin_speedup_2_workers_process_pool']:.2f}x")


if __name__ == "__main__":
    main()
