#!/usr/bin/python3
"""Print README.md's "Findings" from the files under results/, so every figure there regenerates.

Usage: scripts/findings.py [--results results]            print the Findings block (Markdown)
       scripts/findings.py --write README.md              replace the block in README.md
       scripts/findings.py --check README.md              exit 1 when README.md's block differs

The block sits between the markers <!-- findings:begin --> and <!-- findings:end -->. Every
figure in it is computed here from a report under results/ whose context names a committed
revision: a file measured on a tree with uncommitted changes ("-dirty") is refused, so the
README cannot cite what nobody can rebuild. scripts/regenerate_results.sh makes the files.
Bad input (a missing or malformed file, a dirty revision): one line on stderr, exit 2.
"""
import argparse
import glob
import json
import os
import sys

from reportlib import BadInput, load_report, median

BEGIN, END = "<!-- findings:begin -->", "<!-- findings:end -->"
# README's "Your own workload" shows real verdicts, from results/own/ (regenerate_results.sh own).
OWN_BEGIN, OWN_END = "<!-- own:begin -->", "<!-- own:end -->"
OWN_RUNS = (
    ("arith", "python3 -m concbench bench own:arith --inputs-fn own:sizes --tasks 16 "
              "--models cpython.serial,cpython.threading,cpython.process_pool --workers 1,2",
     "in examples/python: pure-Python arithmetic, about 10 ms a call"),
    ("native", "python3 -m concbench bench own:native --inputs-fn own:units --tasks 16 "
               "--models cpython.serial,cpython.threading,cpython.process_pool --workers 1,2",
     "the same loop in C++ with the GIL released, as a C extension runs it"),
    ("handler", "bench_runner run --workload-file examples/profiles/handler.json --workers 1,2",
     "a request handler described as data, under every C++ model"),
    ("plugin", "bench_runner run --plugin build/examples/plugin/libconcbench_example_plugin.so "
               "--workloads example.collatz --workers 1,2",
     "a C++ workload of your own, loaded from a shared library"),
)


def die(msg):
    sys.stderr.write(f"findings: {msg}\n")
    sys.exit(2)


def revision_of(path, data, allow_dirty=False):
    ctx = data.get("context", {})
    if not ctx and isinstance(data.get("gil_threads"), dict):
        ctx = data["gil_threads"].get("context", {})  # gil_validation.json: the C++ side's run
    rev = ctx.get("git_revision") or ctx.get("concbench_git_revision")
    if not isinstance(rev, str) or not rev:
        raise BadInput(f"{path}: no git_revision in its context")
    if rev.endswith("-dirty") and not allow_dirty:
        raise BadInput(f"{path}: measured on an uncommitted tree ({rev}); commit, rebuild, rerun")
    return rev


class Results:
    """The files under results/ the Findings cite, each loaded once, with their revisions."""

    def __init__(self, root, allow_dirty=False):
        self.root = root
        self.allow_dirty = allow_dirty
        self.revisions = {}
        self.cache = {}

    def path(self, rel):
        return os.path.join(self.root, rel)

    def report(self, rel):
        if rel not in self.cache:
            p = self.path(rel)
            try:
                self.cache[rel] = r = load_report(p)
            except BadInput as e:
                die(str(e))
            try:
                self.revisions[rel] = revision_of(rel, r, self.allow_dirty)
            except BadInput as e:
                die(str(e))
        return self.cache[rel]

    def matrix(self):
        """results/cpython/matrix.json, with the revisions of the per-version reports it sums."""
        m = self.json("cpython/matrix.json", revision_from=[])
        for v in m["versions"]:
            self.report(os.path.relpath(os.path.join(os.path.dirname(self.root), v["report"]),
                                        self.root))
        return m

    def json(self, rel, revision_from=None):
        """A non-report file (a summary, a comparison, a micro-benchmark run). Its revision is its
        own context's, or that of the report(s) it summarises (revision_from)."""
        if rel not in self.cache:
            p = self.path(rel)
            try:
                with open(p) as f:
                    self.cache[rel] = d = json.load(f)
            except OSError as e:
                die(f"{rel}: cannot read: {e.strerror}")
            except ValueError as e:
                die(f"{rel}: not valid JSON ({e})")
            if revision_from is None:
                try:
                    self.revisions[rel] = revision_of(rel, d, self.allow_dirty)
                except BadInput as e:
                    die(str(e))
            else:
                for r in revision_from:
                    self.report(r)
        return self.cache[rel]


class Suite:
    def __init__(self, report):
        self.r = report
        self.cells = {}
        for c in report["results"]:
            self.cells.setdefault((c["workload"], c["model"], c["workers"]), c)
        self.workers = sorted({c["workers"] for c in report["results"]})

    def cell(self, wl, model, w):
        c = self.cells.get((wl, model, w))
        return c if c and c["status"] == "ok" else None

    def vs_serial(self, wl, model, w):
        c = self.cell(wl, model, w)
        return c["summary"].get("speedup_vs_serial") if c else None

    def reps(self, wl, model, w):
        c = self.cell(wl, model, w)
        return [r for r in c["repetitions"] if r["verified"]] if c else []

    def metric(self, wl, model, w, name):
        return median([r["metrics"].get(name) for r in self.reps(wl, model, w)])

    def per_task(self, wl, model, w, counter):
        return median([r["counters"][counter] / r["tasks"] for r in self.reps(wl, model, w)
                       if r["counters"].get(counter) is not None and r["tasks"]])

    def ns_per_task(self, wl, model, w):
        c = self.cell(wl, model, w)
        return c["summary"]["wall_ns_per_task"]["median"] if c else None

    def instrumentation(self, wl, model, w):
        return median([r.get("latency_sampling", {}).get("instrumentation_ns_per_item")
                       for r in self.reps(wl, model, w)])

    def cpu_over_wall(self, wl, model, w):
        return median([(r["cpu_user_ns"] + r["cpu_sys_ns"]) / r["wall_ns"]
                       for r in self.reps(wl, model, w) if r["wall_ns"]])


def x(v, spec=".2f"):
    return "-" if v is None else f"{v:{spec}}x"


def pct(v):
    return "-" if v is None else f"{100 * v:.1f}%"


def t(ns):
    if ns is None:
        return "-"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def num(v, spec=",.0f"):
    return "-" if v is None else f"{v:{spec}}"


def size(b):
    if b == 0:
        return "0"
    if b < 1 << 20:
        return f"{b >> 10} KiB"
    return f"{b >> 20} MiB"


def machine(rep):
    c = rep["context"]
    virt = "a VM" if c.get("virtualized") else "bare metal"
    kernel = " ".join(str(c.get("kernel", "")).split(" ")[:2])
    return f"{c.get('cpu_model')}, {c.get('cpus_allowed')} of {c.get('logical_cpus')} CPUs, {virt}, {kernel}"


def machines_cited(res):
    """Which machine each cited file came from: sessions land on different VMs of one kind."""
    where = {}
    for rel, data in res.cache.items():
        if not isinstance(data, dict) or "cpu_model" not in data.get("context", {}):
            continue
        top = rel.split("/")[0] + "/" if "/" in rel else rel
        where.setdefault(machine(data), set()).add(top)
    parts = [f"{m} ({', '.join(f'`results/{t}`' for t in sorted(tops))})"
             for m, tops in sorted(where.items())]
    return "; ".join(parts)


def section_cpu(res, out):
    full = Suite(res.report("reference/full.json"))
    cp = res.matrix()
    models = ["free_threads", "gil_threads", "thread_pool", "pinned_pool", "process_pool"]
    out.append("**GIL threads do not speed up CPU-bound work; free threads, pools and processes do.**"
               " Throughput against `serial`, 2 workers, `results/reference/full.json`:")
    out.append("")
    out.append("| workload | " + " | ".join(models) + " |")
    out.append("|---|" + "---|" * len(models))
    for wl in ("cpu.spin", "cpu.pidigits", "cpu.sha256"):
        out.append(f"| {wl} | " + " | ".join(x(full.vs_serial(wl, m, 2)) for m in models) + " |")
    wmax = max(full.workers)
    out.append("")
    thr = [v["cpu_spin_speedup_2_workers_threading"] for v in cp["versions"]]
    pp = [v["cpu_spin_speedup_2_workers_process_pool"] for v in cp["versions"]]
    vers = sorted((v["version"] for v in cp["versions"]),
                  key=lambda s: [int(p) for p in s.replace("debian-", "").split(".") if p.isdigit()])
    out.append(f"- At {wmax} workers on these CPUs nothing gains more: cpu.spin free_threads "
               f"{x(full.vs_serial('cpu.spin', 'free_threads', wmax))}, gil_threads "
               f"{x(full.vs_serial('cpu.spin', 'gil_threads', wmax))}.")
    out.append("- cpu.sha256 hashes buffers of 2048 bytes or more with the GIL released, as hashlib "
               "does, so gil_threads overlaps the native sections there and nowhere else.")
    out.append(f"- Real CPython agrees: on cpu.spin with 2 workers `cpython.threading` gets "
               f"{min(thr):.2f} to {max(thr):.2f}x and `cpython.process_pool` {min(pp):.2f} to "
               f"{max(pp):.2f}x, on {', '.join(vers)} (`results/cpython/matrix.json`).")
    sub = [(v["version"], v["cpu_spin_speedup_2_workers_interpreters"]) for v in cp["versions"]
           if v.get("cpu_spin_speedup_2_workers_interpreters") is not None]
    if sub:
        out.append("- Subinterpreters, each with its own GIL, scale like processes: "
                   "`cpython.interpreters` gets " +
                   ", ".join(f"{x(s)} on {ver}" for ver, s in sorted(sub)) +
                   " on cpu.spin at 2 workers, in the same runs.")
    cw = full.cpu_over_wall("cpu.spin", "process_pool", 2)
    out.append(f"- process_pool's CPU time covers its worker processes: CPU over wall "
               f"{num(cw, '.2f')} for cpu.spin at 2 workers (`cpu_covers_children` in each "
               f"repetition), against {num(full.cpu_over_wall('cpu.spin', 'serial', 1), '.2f')} "
               f"for serial.")
    out.append("")


def section_payload(res, out):
    s = res.json("payload/summary.json", revision_from=[
        os.path.relpath(p, res.root) for p in sorted(glob.glob(res.path("payload/*payload-*.json")))])
    w = s["workers"]
    rows = s["rows"]
    out.append(f"**What the process pool's serialization costs.** cpu.spin, {s['tasks']} tasks of "
               f"{s['units']} units (about 1 ms) carrying `payload_bytes` each, {w} workers, "
               f"throughput against serial (`scripts/sweep_payload.py`, `results/payload/`):")
    out.append("")
    out.append("| payload per task | " + " | ".join(size(r["payload_bytes"]) for r in rows) + " |")
    out.append("|---|" + "---|" * len(rows))
    for key, label in ((f"process_pool/pipe@{w}", "process_pool, pipe"),
                       (f"process_pool/shm@{w}", "process_pool, shm"),
                       (f"free_threads@{w}", "free_threads")):
        vals = []
        for r in rows:
            b, v = r.get("serial@1"), r.get(key)
            vals.append(x(v / b if v and b else None))
        out.append(f"| {label} | " + " | ".join(vals) + " |")
    out.append("")
    cross = s.get("process_pool_no_faster_than_serial_from_bytes", {})
    for key, label in ((f"process_pool/pipe@{w}", "through the socket"),
                       (f"process_pool/shm@{w}", "through shared memory")):
        where = cross.get(key)
        out.append(f"- {label.capitalize()}, the pool is "
                   + (f"no faster than serial from {size(where)} per task on."
                      if where is not None else "faster than serial at every payload swept."))
    big = [r for r in rows if r["payload_bytes"] in (2 << 20, 4 << 20)]
    if big and f"python:process_pool/pipe@{w} ns/task" in big[0]:
        parts = []
        for r in big:
            b = r.get(f"process_pool/pipe@{w} ns/task")
            p = r.get(f"python:process_pool/pipe@{w} ns/task")
            fb = r.get(f"process_pool/pipe@{w} faults/task")
            fp = r.get(f"python:process_pool/pipe@{w} faults/task")
            parts.append(f"{size(r['payload_bytes'])}: {t(b)} per task from bench_runner and "
                         f"{t(p)} from Python ({x(b / p if b and p else None)}), "
                         f"{num(fb, '.1f')} and {num(fp, '.1f')} page faults per task")
        out.append("- The entry point does not change the figure (one allocator policy, "
                   "`apply_process_settings()`, and receive buffers that persist per worker): "
                   + "; ".join(parts) + ".")
    out.append("- Threads pass a pointer, so free_threads keeps its speedup at every size.")
    out.append("")


def section_io(res, out):
    full = Suite(res.report("reference/full.json"))
    wmax = max(full.workers)
    out.append("**async overlaps IO in one thread, and one CPU-bound task stalls its loop.** "
               "(`results/reference/full.json`)")
    out.append(f"- io.sleep: one `async` thread is {x(full.vs_serial('io.sleep', 'async', 1), '.1f')} "
               f"faster than serial; thread models reach "
               f"{x(full.vs_serial('io.sleep', 'free_threads', 2), '.1f')} at 2 workers and "
               f"{x(full.vs_serial('io.sleep', 'free_threads', wmax), '.1f')} at {wmax} (free_threads): "
               f"one sleep per thread.")
    out.append(f"- mixed.cpu_io: async {x(full.vs_serial('mixed.cpu_io', 'async', 1), '.1f')}, "
               f"async_mt {x(full.vs_serial('mixed.cpu_io', 'async_mt', wmax), '.1f')} with {wmax} "
               f"loop threads, free_threads {x(full.vs_serial('mixed.cpu_io', 'free_threads', wmax), '.1f')} "
               f"and gil_threads {x(full.vs_serial('mixed.cpu_io', 'gil_threads', wmax), '.1f')} at "
               f"{wmax}.")
    out.append("")
    out.append("latency.echo_under_load: a responder serves round trips while one CPU-bound "
               "spinner runs beside it (2 workers; `serial` runs the responder alone):")
    out.append("")
    out.append("| model | round trips/s | median | p99 | spinner units |")
    out.append("|---|---|---|---|---|")
    for m in ("serial", "free_threads", "gil_threads", "thread_pool", "pinned_pool", "async",
              "async_mt"):
        w = 1 if m in ("serial", "async") else 2
        if not full.cell("latency.echo_under_load", m, w):
            continue
        out.append(f"| {m} | {num(full.metric('latency.echo_under_load', m, w, 'round_trips_per_s'))} | "
                   f"{t(full.metric('latency.echo_under_load', m, w, 'rtt_p50_ns'))} | "
                   f"{t(full.metric('latency.echo_under_load', m, w, 'rtt_p99_ns'))} | "
                   f"{num(full.metric('latency.echo_under_load', m, w, 'spinner_units'))} |")
    out.append("")
    out.append("- Under `async` the responder gets the loop only when the spinner returns, after "
               "its `max_cpu_units` bound; behind the GIL every round trip that finds the spinner "
               "holding it waits out the switch interval (the convoy effect).")
    quick2 = Suite(res.report("reference/quick-2cpu.json"))
    quick1 = Suite(res.report("reference/quick-1cpu.json"))
    r2 = quick2.metric("latency.echo_under_load", "gil_threads", 2, "round_trips_per_s")
    r1 = quick1.metric("latency.echo_under_load", "gil_threads", 2, "round_trips_per_s")
    out.append(f"- The convoy needs two cores: confined to one CPU (`taskset -c 0`), gil_threads "
               f"serves {num(r1)} round trips/s; on both CPUs {num(r2)}/s, "
               f"{x(r1 / r2 if r1 and r2 else None, '.1f')} fewer (quick suite, "
               f"`results/reference/quick-*.json`).")
    cp = res.matrix()
    rts = [v["echo_under_load_round_trips_per_s"] for v in cp["versions"]]
    out.append(f"- CPython's threading, same test: {min(rts):,.0f} to {max(rts):,.0f} round "
               f"trips/s across the versions of the matrix.")
    out.append("")


def section_mixed(res, out):
    m = res.json("mixed_sweep.json")
    keys = ["async", "async_mt@2", "free_threads@2", "thread_pool@2", "free_threads@64",
            "gil_threads@64", "thread_pool@64", "process_pool@2"]
    out.append(f"**Where async stops winning.** mixed.cpu_io, {m['tasks']} tasks of "
               f"{m['cycle_us']} µs split between CPU work and a sleep; tasks/s per model@workers "
               f"(`scripts/sweep_mixed.py`, `results/mixed_sweep.json`):")
    out.append("")
    out.append("| CPU share | " + " | ".join(keys) + " | winner |")
    out.append("|---|" + "---|" * (len(keys) + 1))
    for r in m["rows"]:
        tps = r["tasks_per_s"]
        out.append(f"| {r['cpu_percent']}% | " + " | ".join(num(tps.get(k)) for k in keys)
                   + f" | {r['winner']} |")
    out.append("")
    lose = m.get("async_loses_from_cpu_percent")
    lose_gil = m.get("async_loses_to_gil_threads_from_cpu_percent")
    out.append("- One loop loses its lead " + (f"from a {lose}% CPU share on" if lose is not None
                                             else "nowhere in the sweep")
               + "; to threads behind the GIL it loses "
               + (f"from {lose_gil}% on." if lose_gil is not None else "at no share swept."))
    out.append("")


def section_gil(res, out):
    g = res.json("gil_validation.json")
    runs = g.get("runs")
    out.append("**gil_threads against real CPython on this machine** (`scripts/validate_gil.py"
               + (" --quick" if g.get("quick") else "") + "`, `results/gil_validation.json`: "
               f"{runs} runs a side; medians, lost updates out of 2 × 1,000,000 increments as "
               "the version's range over its runs; each interpreter against the policy that "
               "emulates it, calibrated from that interpreter):")
    out.append("")
    out.append("| CPython | policy | round trips/s, 1 / 2 CPU threads: CPython | gil_threads | "
               "p50 mode, 1 / 2: CPython | gil_threads | lost, `x += 1`: CPython | gil_threads "
               "| lost, `x += one()`: CPython | gil_threads | gates held |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    by_version = {}
    for gate in g["gates"]:
        by_version.setdefault((gate["version"], gate["interpreter"]), []).append(gate)

    def version_key(item):
        return tuple(int(p) for p in item[0][0].split(".")[:3] if p.isdigit())

    for (version, exe), gs in sorted(by_version.items(), key=version_key):
        w = {x["what"]: x for x in gs}

        def pair(what, side):
            vals = [w.get(f"{what}, {k}", {}).get(side) for k in ("1 CPU thread", "2 CPU threads")]
            return " / ".join(v if isinstance(v, str) else num(v) for v in vals)

        def lost(what, side):
            v = w.get(what, {}).get(side)
            return v if isinstance(v, str) else num(v)

        debian = " (Debian)" if exe.startswith("/usr/bin/") else ""
        held = sum(x["holds"] for x in gs)
        out.append(f"| {version}{debian} | {gs[0]['policy']} | {pair('round trips/s', 'cpython')} | "
                   f"{pair('round trips/s', 'gil_threads')} | {pair('p50 mode', 'cpython')} | "
                   f"{pair('p50 mode', 'gil_threads')} | {lost('lost updates, x += 1', 'cpython')} "
                   f"| {lost('lost updates, x += 1', 'gil_threads')} | "
                   f"{lost('lost updates, x += one()', 'cpython')} | "
                   f"{lost('lost updates, x += one()', 'gil_threads')} | {held} of {len(gs)} |")
    out.append("")
    held = sum(x["holds"] for x in g["gates"])
    missed = sorted({x["what"] for x in g["gates"] if not x["holds"]})
    out.append(f"- {held} of {len(g['gates'])} gates hold, so validate_gil.py exits "
               f"{0 if g['holds'] else 1} here. Gates missed somewhere: "
               + ("; ".join(missed) if missed else "none") + ".")
    for k in ("1 CPU thread", "2 CPU threads"):
        ratios = [x["gil_threads"] / x["cpython"] for x in g["gates"]
                  if x["what"] == f"round trips/s, {k}" and x["cpython"] and x["gil_threads"]]
        if ratios:
            out.append(f"- Round trips/s beside {k}, gil_threads over CPython: "
                       f"{min(ratios):.2f}x to {max(ratios):.2f}x across the interpreters.")
    # Each side's own spread over its runs: what a 1.25x window on two medians is up against.
    for key, k in (("1", "1 CPU thread"), ("2", "2 CPU threads")):
        spans = {}
        for side, entries in (("CPython", g["cpython"]), ("gil_threads",
                                                          list(g["gil_threads"].values()))):
            folds = []
            for e in entries:
                rt = e["summary"]["echo"][key]["round_trips_per_s"]
                if rt.get("min") and rt.get("max"):
                    folds.append(rt["max"] / rt["min"])
            if folds:
                spans[side] = (min(folds), max(folds))
        if len(spans) == 2:
            out.append(f"- Beside {k}, one interpreter's fastest run over its slowest: "
                       f"{spans['CPython'][0]:.1f}x to {spans['CPython'][1]:.0f}x under CPython, "
                       f"{spans['gil_threads'][0]:.1f}x to {spans['gil_threads'][1]:.0f}x under "
                       "gil_threads.")
    out.append("")


def section_placement(res, out):
    full = Suite(res.report("reference/full.json"))
    out.append("**Pinning and placement.** io.pipe_echo's 1 KiB round trips through a socketpair "
               "to an echo thread (`results/reference/full.json`):")
    out.append("")
    out.append("| model | workers | round trip | migrations per task | context switches per task |")
    out.append("|---|---|---|---|---|")
    for m, w in (("pinned_pool", 2), ("thread_pool", 2), ("free_threads", 2), ("serial", 1),
                 ("free_threads", 1)):
        out.append(f"| {m} | {w} | {t(full.metric('io.pipe_echo', m, w, 'round_trip_ns'))} | "
                   f"{num(full.per_task('io.pipe_echo', m, w, 'cpu_migrations'), '.3f')} | "
                   f"{num(full.per_task('io.pipe_echo', m, w, 'context_switches'), '.1f')} |")
    out.append("")
    out.append("- A round trip's cost here is mostly where the scheduler put the two ends: waking "
               "the other vCPU is what costs, so the 1-worker rows measure placement, not the model.")
    out.append("")


def section_race(res, out):
    full = Suite(res.report("reference/full.json"))
    cp = res.matrix()
    out.append("**`x += 1` loses updates wherever two workers run it truly at once.** "
               "cpu.counter_race (`results/reference/full.json`):")
    out.append("")
    ws = [w for w in full.workers if w > 1]
    out.append("| model | " + " | ".join(f"lost, {w} workers" for w in ws) + " |")
    out.append("|---|" + "---|" * len(ws))
    for m in ("free_threads", "thread_pool", "pinned_pool", "async_mt", "gil_threads",
              "process_pool"):
        vals = []
        for w in ws:
            lost = full.metric("cpu.counter_race", m, w, "lost_updates")
            inc = full.metric("cpu.counter_race", m, w, "increments")
            vals.append(pct(lost / inc) if lost is not None and inc else "-")
        out.append(f"| {m} | " + " | ".join(vals) + " |")
    out.append("")
    out.append("- gil_threads checks the eval breaker at back edges, as CPython 3.10 and later do, "
               "so it loses none. process_pool loses them all: each worker increments its own "
               "copy.")
    out.append("")
    out.append("The CPython version matrix (`scripts/python_matrix.py`, one report per interpreter "
               "under `results/cpython/`): `x += 1` on a global under 2 threads, "
               "latency.echo_under_load under cpython.threading (one IO thread beside one "
               "spinner), and cpu.spin at 2 workers:")
    out.append("")
    out.append("| CPython | lost updates | round trips/s | rtt p50 | rtt p99 | threading speedup | "
               "process_pool speedup | process_threads speedup | interpreters speedup |")
    out.append("|---|---|---|---|---|---|---|---|---|")

    def key(v):
        nums = [int(p) for p in v["version"].replace("debian-", "").split(".") if p.isdigit()]
        return (nums, v["version"])

    for v in sorted(cp["versions"], key=key):
        out.append(f"| {v['version']} | {num(v['counter_race_lost_updates_2_threads'])} of "
                   f"{num(v['counter_race_increments'])} | "
                   f"{num(v['echo_under_load_round_trips_per_s'])} | "
                   f"{t(v['echo_under_load_rtt_p50_ns'])} | "
                   f"{t(v.get('echo_under_load_rtt_p99_ns'))} | "
                   f"{x(v['cpu_spin_speedup_2_workers_threading'])} | "
                   f"{x(v['cpu_spin_speedup_2_workers_process_pool'])} | "
                   f"{x(v.get('cpu_spin_speedup_2_workers_process_threads'))} | "
                   f"{x(v.get('cpu_spin_speedup_2_workers_interpreters'))} |")
    out.append("")
    # Where a version lacks subinterpreters the cell is "-" and its reason is printed once.
    missing = [(v["version"], v["models_unavailable"]["cpython.interpreters"])
               for v in sorted(cp["versions"], key=key)
               if "cpython.interpreters" in v.get("models_unavailable", {})]
    if missing:
        out.append(f"- No cpython.interpreters on {', '.join(v for v, _ in missing)}; the reason "
                   f"each records is like {missing[0][0]}'s: \"{missing[0][1]}\".")
    p50 = [v["echo_under_load_rtt_p50_ns"] for v in cp["versions"]
           if v.get("echo_under_load_rtt_p50_ns") is not None]
    p99 = [v["echo_under_load_rtt_p99_ns"] for v in cp["versions"]
           if v.get("echo_under_load_rtt_p99_ns") is not None]
    if p50 and p99:
        out.append(f"- latency.echo_under_load's round trips under cpython.threading: p50 "
                   f"{t(min(p50))} to {t(max(p50))}, p99 {t(min(p99))} to {t(max(p99))}, with a "
                   f"switch interval of 5 ms.")
    gev = [(v["version"], v["io_sleep_vs_serial_gevent"], v.get("io_sleep_vs_serial_asyncio"))
           for v in sorted(cp["versions"], key=key) if v.get("io_sleep_vs_serial_gevent") is not None]
    for ver, g, a in gev:
        out.append(f"- cpython.gevent, where Debian's python3-gevent is installed ({ver}): io.sleep "
                   f"{x(g)} against cpython.serial, where cpython.asyncio gets {x(a)} (one loop "
                   f"each).")
    if missing or gev:
        out.append("")


def section_dispatch(res, out):
    micro = res.json("micro/dispatch.json")
    med = {}
    for b in micro["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"].split("/")[0].replace("BM_Dispatch_", "")
        v = b.get("per_index", b.get("per_task"))
        if v is not None:
            med[name] = v * 1e9
    out.append("**Dispatch: our pools against oneTBB and OpenMP, like for like.** One batch of "
               "1000 empty indices, 2 threads (the caller and one more), one index per claim, "
               "median of 5 repetitions (`bench_runner micro --benchmark_filter=Dispatch_`, "
               "`results/micro/dispatch.json`; `bench/micro/bm_dispatch.cpp` says exactly what each "
               "side does):")
    out.append("")
    out.append("| per index | time |")
    out.append("|---|---|")
    rows = (("Index_ThreadPool", "ThreadPool::for_each_index, unpinned"),
            ("Index_PinnedPool", "ThreadPool::for_each_index, pinned"),
            ("Index_ThreadPoolCallerWaits", "ThreadPool::run_on_all, 2 pool threads (the models' path)"),
            ("Index_TbbParallelFor", "tbb::parallel_for, simple_partitioner, 2-thread arena"),
            ("Index_OmpDynamic1", "OpenMP schedule(dynamic,1), 2 threads"))
    for key, label in rows:
        if key in med:
            out.append(f"| {label} | {t(med[key])} |")
    out.append("")
    tbb, pin = med.get("Index_TbbParallelFor"), med.get("Index_PinnedPool")
    if tbb and pin:
        out.append(f"- The pinned pool costs {x(pin / tbb)} of `tbb::parallel_for` per index in the "
                   f"same run.")
    per = [(k.replace("TaskPerIndex_", ""), v) for k, v in med.items() if k.startswith("TaskPerIndex_")]
    if per:
        out.append("- A task created per index is different work: "
                   + ", ".join(f"{k} {t(v)}" for k, v in per) + " per task.")
    quick = Suite(res.report("reference/quick-2cpu.json"))
    cells = []
    for m, w in (("serial", 1), ("free_threads", 2), ("thread_pool", 2), ("pinned_pool", 2),
                 ("async", 1), ("process_pool", 2)):
        ns = quick.ns_per_task("overhead.noop", m, w)
        if ns is None:
            continue
        inst = quick.instrumentation("overhead.noop", m, w)
        cells.append(f"{m}@{w} {t(ns)} (sampling {num(inst, '.2f')} ns)")
    out.append("- overhead.noop, time per empty task through each model with the harness's "
               "latency sampling cost beside it (quick suite): " + ", ".join(cells) + ".")
    out.append("")


def section_calibration(res, out):
    quick = res.report("reference/quick-2cpu.json")
    want = quick["config"]["min_time_s"] * 1e9
    reps = [r for c in quick["results"] for r in c["repetitions"] if r["verified"]]
    calibrated = [c for c in quick["results"] if c["rounds"] > 1 or c["calibration_trials"] > 0]
    short = [r for r in reps if r.get("short_of_min_time")]
    shortest = min((r["wall_ns"] for c in quick["results"] if c["workload"] != "latency.echo_under_load"
                    for r in c["repetitions"] if r["verified"]), default=None)
    retaken = sum(c.get("short_repetitions_retaken", 0) for c in quick["results"])
    out.append(f"**Calibration holds.** In the quick suite (`--min-time {want / 1e9:g}`), "
               f"{len(calibrated)} cells were calibrated; the shortest verified repetition of a "
               f"calibrated workload lasted {t(shortest)}, {len(short)} of {len(reps)} repetitions "
               f"came in short, and {retaken} were retaken with more rounds "
               f"(`results/reference/quick-2cpu.json`).")
    out.append("")


def verdicts(cmp):
    counts = {}
    for c in cmp["conclusions"]:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    return counts


def section_compare(res, out):
    cmp = res.json("reference/compare-2cpu-vs-1cpu.json",
                   revision_from=["reference/quick-2cpu.json", "reference/quick-1cpu.json"])
    n = verdicts(cmp)
    total = sum(n.values())
    geo = cmp["comparisons"][0]["geomean"]
    out.append("**Across machines: which conclusions hold.** No second machine was lent to this "
               "work, so the example compares this VM with itself confined to one CPU "
               "(`taskset -c 0`), and says so: `bench_runner compare --normalize "
               "results/reference/quick-2cpu.json results/reference/quick-1cpu.json` "
               "(`results/reference/compare-2cpu-vs-1cpu.md`).")
    out.append(f"- Of {total} model-versus-model conclusions, {n.get('holds', 0)} hold, "
               f"{n.get('differs', 0)} differ and {n.get('within noise', 0)} are within noise "
               f"(an interval that includes 1 without fitting a tie, the grey zone, or too few "
               f"repetitions).")
    differ = [c for c in cmp["conclusions"] if c["verdict"] == "differs"]
    if differ:
        parallel = [c for c in differ if c["reports"][0]["relation"] == "beats"
                    and c["reports"][1]["relation"] == "ties"]
        ex = ", ".join(f"{c['workload']} {c['model']} against {c['other']} "
                       f"({c['reports'][0]['ratio']:.2f}x, then {c['reports'][1]['ratio']:.2f}x)"
                       for c in differ[:4])
        out.append(f"- {len(parallel)} of the {len(differ)} that differ are a clear win on two "
                   f"CPUs that is a clear tie on one; for example {ex}.")
    out.append(f"- The geometric mean of time per task over {geo['cells']} matched cells is "
               f"x{geo['time_ratio']:.2f}.")
    b2b = res.json("reference/backtoback-compare.json",
                   revision_from=["reference/backtoback-a.json", "reference/backtoback-b.json"])
    nb = verdicts(b2b)
    out.append(f"- The same small matrix run twice back to back on this machine (interleaved, "
               f"`results/reference/backtoback-*.json`): {nb.get('differs', 0)} of "
               f"{sum(nb.values())} conclusions differ ({nb.get('holds', 0)} hold, "
               f"{nb.get('within noise', 0)} within noise).")
    out.append("")


def section_sample(res, out):
    quick = Suite(res.report("reference/quick-2cpu.json"))
    out.append("**A sample of the quick suite** (`results/reference/quick-2cpu.json`; the full "
               "table is what `bench_runner run` prints):")
    out.append("")
    out.append("| workload | model | workers | time/task | vs serial | p99 latency | ctxsw/task |")
    out.append("|---|---|---|---|---|---|---|")
    for wl, cells in (("cpu.spin", [("serial", 1), ("free_threads", 2), ("gil_threads", 2),
                                    ("process_pool", 2)]),
                      ("io.sleep", [("serial", 1), ("free_threads", 4), ("async", 1)]),
                      ("overhead.noop", [("serial", 1), ("thread_pool", 2)])):
        for m, w in cells:
            c = quick.cell(wl, m, w)
            if not c:
                continue
            p99 = median([r["task_latency_ns"].get("p99") for r in quick.reps(wl, m, w)])
            out.append(f"| {wl} | {m} | {w} | {t(quick.ns_per_task(wl, m, w))} | "
                       f"{x(quick.vs_serial(wl, m, w))} | {t(p99)} | "
                       f"{num(quick.per_task(wl, m, w, 'context_switches'), '.3g')} |")
    out.append("")
    out.append("p99 latency means what each model's `latency_means` says (the table printed by "
               "`bench_runner run` lists it): a thread's task run time, the process pool's round "
               "trip, an event loop's time from taking a task to its result.")
    out.append("")


def _by_params(report, workload, model, workers, **params):
    """The verified repetitions of the cell of a sweep whose params include `params`."""
    for c in report["results"]:
        if (c["workload"], c["model"], c["workers"]) != (workload, model, workers):
            continue
        if c["status"] != "ok" or any(c["params"].get(k) != v for k, v in params.items()):
            continue
        return c
    return None


def _per_task(c):
    return c["summary"]["wall_ns_per_task"]["median"] if c else None


def _mem(suite, wl, model, w, key):
    return median([r["memory"][key] for r in suite.reps(wl, model, w)
                   if isinstance(r.get("memory"), dict) and r["memory"].get(key) is not None])


def section_models(res, out):
    """Issue 17's models: subinterpreters, processes of threads, fibers, gevent, reference
    counts, the price of an address space, the cost of a switch."""
    out.append("**The rest of Python's concurrency world** (`results/models/`, "
               "`bash scripts/regenerate_results.sh models`).")
    out.append("")
    it = res.report("models/interpreters-3.13.json")
    s = Suite(it)
    py = it["context"].get("python", {}).get("version", "?")
    out.append(f"- *Subinterpreters, each with its own GIL* (CPython {py}, {machine(it)}): on "
               f"cpu.spin at 2 workers `cpython.interpreters` runs "
               f"{x(s.vs_serial('cpu.spin', 'cpython.interpreters', 2))} the throughput of "
               f"`cpython.serial` where `cpython.threading` runs "
               f"{x(s.vs_serial('cpu.spin', 'cpython.threading', 2))}. The C++ prediction, in "
               f"the same run: `interpreters` {x(s.vs_serial('cpu.spin', 'interpreters', 2))} "
               f"against `serial`, `gil_threads` {x(s.vs_serial('cpu.spin', 'gil_threads', 2))}.")
    cpp = res.report("models/cpp.json")
    c = Suite(cpp)
    out.append(f"- *Fibers and coroutines* ({machine(cpp)}): io.sleep at 1 worker, against "
               f"`serial`: `fibers` {x(c.vs_serial('io.sleep', 'fibers', 1))} (stackful, "
               f"switching only at IO), `async` {x(c.vs_serial('io.sleep', 'async', 1))} "
               f"(stackless); on cpu.spin a fiber holds its thread until it is done, so "
               f"`fibers` gains only from more scheduler threads: "
               f"{x(c.vs_serial('cpu.spin', 'fibers', 1))} at 1 worker, "
               f"{x(c.vs_serial('cpu.spin', 'fibers', 2))} at 2.")
    sw = res.json("micro/switch.json")
    per = {}
    for b in sw.get("benchmarks", []):
        if b.get("aggregate_name") == "median" and "per_switch" in b:
            per[b["run_name"].split("/")[0]] = b["per_switch"] * 1e9
    out.append(f"- *One switch* (`bench_runner micro --benchmark_filter=Switch`, "
               f"`results/micro/switch.json`): a Boost.Context fiber {t(per.get('BM_Switch_Fiber'))},"
               f" a C++20 coroutine {t(per.get('BM_Switch_Coroutine'))}, two OS threads on one "
               f"CPU {t(per.get('BM_Switch_OsThreads'))}.")
    mix = res.report("models/process_threads-mixed.json")
    rows = []
    for cpu in ("50", "200", "800"):
        times = {m: _per_task(_by_params(mix, "mixed.cpu_io", m, 2, cpu_us=cpu))
                 for m in ("gil_threads", "process_pool", "process_threads")}
        best = min((v, m) for m, v in times.items() if v is not None)[1]
        rows.append(f"cpu_us={cpu}: " + ", ".join(f"{m} {t(v)}" for m, v in times.items())
                    + f" (fastest: {best})")
    out.append("- *Processes of threads* (2 processes of 2 threads against 2 GIL threads and 2 "
               "processes, mixed.cpu_io with io_us=800, time per task): " + "; ".join(rows) + ".")
    out.append(f"- *The price of an address space* (cpu.spin at 2 workers, summed over the "
               f"workers at the end of a batch): `process_pool` USS "
               f"{size(_mem(c, 'cpu.spin', 'process_pool', 2, 'uss_bytes') or 0)}, PSS "
               f"{size(_mem(c, 'cpu.spin', 'process_pool', 2, 'pss_bytes') or 0)}; "
               f"`process_threads` USS "
               f"{size(_mem(c, 'cpu.spin', 'process_threads', 2, 'uss_bytes') or 0)}, PSS "
               f"{size(_mem(c, 'cpu.spin', 'process_threads', 2, 'pss_bytes') or 0)}.")
    py11 = res.report("models/python-3.11.json")
    p = Suite(py11)
    out.append(f"- *gevent and asyncio* (CPython "
               f"{py11['context'].get('python', {}).get('version', '?')}): io.sleep against "
               f"`cpython.serial`, `cpython.gevent` "
               f"{x(p.vs_serial('io.sleep', 'cpython.gevent', 1))}, `cpython.asyncio` "
               f"{x(p.vs_serial('io.sleep', 'cpython.asyncio', 1))}; the process-based Python "
               f"models' workers at 2: `cpython.process_pool` PSS "
               f"{size(_mem(p, 'cpu.spin', 'cpython.process_pool', 2, 'pss_bytes') or 0)}, "
               f"`cpython.process_threads` PSS "
               f"{size(_mem(p, 'cpu.spin', 'cpython.process_threads', 2, 'pss_bytes') or 0)}.")
    fo = res.report("models/foreign.json")
    f = Suite(fo)

    def fx(label, w):
        return f.vs_serial("cpu.spin", f"py:{label}.threading", w)
    out.append(f"- *Other interpreters over a pipe* (`--python`; cpu.spin, 2 threads against one "
               f"thread of the same interpreter): Jython 2.7 (on the JVM, no GIL) "
               f"{x(fx('jython-2.7', 2))}, PyPy 3.9 (a GIL and a JIT) {x(fx('pypy-3.9', 2))}, "
               f"CPython 3.11 {x(fx('cpython-3.11', 2))}; one PyPy thread does a cpu.spin task in "
               f"{t(f.ns_per_task('cpu.spin', 'py:pypy-3.9.serial', 1))} where one CPython "
               f"thread takes {t(f.ns_per_task('cpu.spin', 'py:cpython-3.11.serial', 1))} and "
               f"one Jython thread {t(f.ns_per_task('cpu.spin', 'py:jython-2.7.serial', 1))}.")
    uv = res.report("models/uvloop-threads.json")

    def threads(workload, loop, **params):
        cell = _by_params(uv, workload, "cpython.asyncio", 1, loop=loop, **params)
        return cell["memory"]["os_threads"]["max"] if cell else None
    out.append(f"- *Is uvloop multithreaded?* The most OS threads this process had while a "
               f"`cpython.asyncio` cell ran (the runner's own two included): io.pipe_echo "
               f"asyncio {threads('io.pipe_echo', 'asyncio')}, uvloop "
               f"{threads('io.pipe_echo', 'uvloop')}; a file read (mixed.cpu_io io=file_read, "
               f"which the loop hands to an executor) asyncio "
               f"{threads('mixed.cpu_io', 'asyncio', io='file_read')}, uvloop "
               f"{threads('mixed.cpu_io', 'uvloop', io='file_read')}.")
    rc = res.report("models/refcount.json")

    def ns_ref(mode, sharing, model, w):
        cell = _by_params(rc, "cpu.refcount", model, w, mode=mode, sharing=sharing)
        if not cell:
            return None
        return median([r["metrics"]["ns_per_ref"] for r in cell["repetitions"] if r["verified"]])
    plain, atomic, biased = (ns_ref(m, "private", "serial", 1) for m in ("plain", "atomic", "biased"))
    out.append(f"- *What free threading costs a reference count* (cpu.refcount, one thread, a "
               f"private object, per incref or decref): plain {num(plain, '.2f')} ns, atomic "
               f"{num(atomic, '.2f')} ns, biased {num(biased, '.2f')} ns; on one object shared by "
               f"2 free threads: atomic {num(ns_ref('atomic', 'shared', 'free_threads', 2), '.2f')}"
               f" ns, biased {num(ns_ref('biased', 'shared', 'free_threads', 2), '.2f')} ns (the "
               f"wall time of 2 threads over their references). A reference-count operation is a "
               f"small part of what an interpreter does, which is why PEP 703's whole-interpreter "
               f"figure is 5 to 8 percent, not this ratio.")
    out.append("")


WHY_PARTS = ("cpu", "runqueue", "gil_wait", "io_wait", "serialize", "deserialize", "idle",
             "unattributed")


def section_why(res, out):
    """Issue 18: where each worker's time went (each cell's attribution), the convoy in a trace,
    and fairness."""
    q = res.report("why/quick.json")
    cp = res.report("why/cpython.json")
    cv = res.report("why/convoy.json")
    pp = res.report("why/process-pool.json")
    trace = res.json("why/convoy-trace.json", revision_from=["why/convoy.json"])
    out.append(f"**Where the workers' time went** (`results/why/`, `bash scripts/regenerate_results.sh "
               f"why`; {machine(q)}). Each cell's `attribution` splits every worker's wall time "
               f"into CPU, run queue, GIL wait, IO wait, serializing, deserializing and idle, and "
               f"reports what is left as unattributed (share of worker time, summed over the "
               f"workers and the verified repetitions):")
    out.append("")
    out.append("| cell | " + " | ".join(WHY_PARTS) + " | dominant |")
    out.append("|---|" + "---|" * (len(WHY_PARTS) + 1))

    def row(rep, wl, model, w, label=None):
        c = Suite(rep).cell(wl, model, w)
        if not c or "total" not in (c.get("attribution") or {}):
            return
        a = c["attribution"]
        sh = a["total"]["share"]
        out.append(f"| {label or wl} {model}@{w} | " +
                   " | ".join(pct(sh.get(p)) for p in WHY_PARTS) + f" | {a['dominant']} |")

    for wl, m, w in (("cpu.spin", "serial", 1), ("cpu.spin", "free_threads", 2),
                     ("cpu.spin", "gil_threads", 2), ("cpu.spin", "process_pool", 2),
                     ("cpu.spin", "async_mt", 2), ("io.sleep", "gil_threads", 2),
                     ("io.sleep", "async", 1), ("io.pipe_echo", "thread_pool", 2),
                     ("latency.echo_under_load", "gil_threads", 2)):
        row(q, wl, m, w)
    row(pp, "cpu.spin", "process_pool", 2, label="cpu.spin 64 KiB payload")
    for wl, m, w in (("cpu.spin", "cpython.threading", 2), ("io.sleep", "cpython.asyncio", 1),
                     ("latency.echo_under_load", "cpython.threading", 2),
                     ("cpu.spin", "cpython.process_pool", 2),
                     ("cpu.spin", "cpython.process_threads", 2),
                     ("cpu.spin", "cpython.asyncio_to_thread", 2),
                     ("io.sleep", "cpython.gevent", 1)):
        row(cp, wl, m, w)
    out.append("")
    cells = [c for c in q["results"] if c["status"] == "ok" and "total" in c["attribution"]]
    within = [c for c in cells if c["attribution"]["check"]["within_tolerance"]]
    worst = max(abs(c["attribution"]["total"]["share"]["unattributed"]) for c in cells)
    ic = max(cells, key=lambda c: c["attribution"].get("instrument_share", 0))
    instr = ic["attribution"]["instrument_share"]
    outside = [f"{c['workload']} under {c['model']}@{c['workers']} "
               f"({pct(c['attribution']['check']['worst_unattributed_share'])} at worst)"
               for c in cells if not c["attribution"]["check"]["within_tolerance"]]
    out.append(f"- Every cell of the quick run is attributed; {len(within)} of {len(cells)} have "
               f"every worker of every repetition within 5% of its wall time" +
               (f" (not: {', '.join(outside)}; under gil_threads a contended hand-over's CPU is "
                f"in both its GIL wait and its CPU)" if outside else "") +
               f", and the largest unattributed share of a cell's total is {pct(worst)}. Knowing "
               f"the parts costs at "
               f"most {pct(instr)} of worker time ({ic['workload']} under {ic['model']}@"
               f"{ic['workers']}: two CPU-clock and two clock reads per IO wait, two schedstat "
               f"reads per worker per batch, measured and reported per cell).")
    out.append("- The totals are the workers' time: a dispatcher (a process pool's parent, "
               "multiprocessing's feeder and manager threads, asyncio_to_thread's loop) is "
               "listed apart, in `dispatchers`. A thread's time before its first item (thread "
               "start, and for cpython.threading its first wait for the GIL) is idle.")
    ppc = Suite(cp).cell("cpu.spin", "cpython.process_pool", 2)
    if ppc and "total" in (ppc.get("attribution") or {}):
        d = ppc["attribution"].get("dispatchers") or {}
        out.append(f"- cpython.process_pool on cpu.spin at 2 workers: its worker processes spent "
                   f"{pct(ppc['attribution']['total']['share']['serialize'])} of their time in "
                   f"multiprocessing's loop (unpickling calls, pickling results), its "
                   f"dispatchers {pct((d.get('share') or {}).get('idle'))} idle, waiting for "
                   f"them.")
    out.append("- A real CPython does not time its GIL, so cpython.threading's GIL wait is "
               "inferred: a thread's time off the CPU outside its IO and idle waits (each cell "
               "says so in `attribution.notes`).")
    # The convoy, as the trace shows it: the responder's waits for the GIL.
    pids = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"]
            if e.get("ph") == "M" and e.get("name") == "process_name"}
    for pid, name in sorted(pids.items()):
        waits = [e for e in trace["traceEvents"] if e.get("pid") == pid and e.get("tid") == 1
                 and e.get("name") == "GIL wait"]
        hard = sorted(e["dur"] for e in waits
                      if e["args"]["ended"] not in ("free", "slipped_through"))
        timed = sum(1 for e in waits if e["args"]["ended"] == "timed_out_set_drop_request")
        if not hard:
            continue
        out.append(f"- The convoy in the trace ({name}, `results/why/convoy-trace.json`): of the "
                   f"responder's {len(waits)} GIL acquisitions, {len(hard)} found the GIL taken; "
                   f"those waited a median {hard[len(hard) // 2] / 1e3:.2f} ms (the switch "
                   f"interval is 5 ms), and {timed} ended by timing out and setting a drop "
                   f"request.")
    flagged = [f"{c['model']}@{c['workers']} (rtt p50 {t(c['convoy']['rtt_p50_ns'])}, "
               f"p99 {t(c['convoy']['rtt_p99_ns'])})"
               for c in cv["results"] if c.get("convoy") and c["convoy"]["flag"]]
    if flagged:
        out.append(f"- Cells flagged `convoy` (a round trip at half the switch interval or more, in a model with a lock or loop to wait behind): "
                   f"{', '.join(flagged)}.")
    starved = [f"{c['model']}@{c['workers']} on {c['workload']}" for c in cells
               if c["attribution"]["fairness"]["starved"]]
    spread = [(c["attribution"]["fairness"]["tasks"] or {}).get("max_over_min") for c in cells]
    spread = [s for s in spread if s]
    out.append(f"- Fairness: {len(starved)} of {len(cells)} cells had a worker that did fewer "
               f"than half a fair share of the tasks" + (f" ({', '.join(starved[:6])})" if starved
                                                         else "") +
               (f"; the largest max/min of tasks per worker was {max(spread):.2f}." if spread
                else "."))
    out.append("")
    out.append("![where the time went](results/plots/attribution-quick.png)")
    out.append("")
    out.append("![the convoy: gil_threads, one responder beside one CPU-bound thread]"
               "(results/plots/trace-gil-threads-latency-echo-under-load-2-workers.png)")
    out.append("")
    out.append("![the convoy with two CPU-bound threads]"
               "(results/plots/trace-gil-threads-latency-echo-under-load-3-workers.png)")
    out.append("")
    out.append("![a process pool: the parent's encodes and decodes, each worker's tasks]"
               "(results/plots/trace-process-pool-cpu-spin-2-workers.png)")
    out.append("")


def render(root, allow_dirty=False):
    res = Results(root, allow_dirty)
    body = []
    section_sample(res, body)
    section_cpu(res, body)
    section_payload(res, body)
    section_io(res, body)
    section_mixed(res, body)
    section_placement(res, body)
    section_race(res, body)
    section_gil(res, body)
    section_dispatch(res, body)
    section_calibration(res, body)
    section_compare(res, body)
    section_models(res, body)
    section_why(res, body)
    ref = res.report("reference/full.json")
    head = [BEGIN,
            "<!-- Generated by scripts/findings.py from results/; edit that script, not this "
            "block. -->",
            "",
            f"Measured with {ref['context'].get('compiler', {}).get('id', '')} "
            f"{ref['context'].get('compiler', {}).get('version', '')} "
            f"{ref['context'].get('build_type', '')} on {machines_cited(res)}. Compare figures "
            f"only within one machine. Revisions of the files cited: "
            + ", ".join(sorted(set(res.revisions.values()))) + ".",
            ""]
    return "\n".join(head + body + [END]) + "\n"


def render_own(root, allow_dirty=False):
    """The verdicts README's "Your own workload" prints: each as `verdict` printed it, from the
    verdict file made beside its report (both at the report's revision)."""
    res = Results(root, allow_dirty)
    out = [OWN_BEGIN,
           "<!-- Generated by scripts/findings.py from results/own/; edit that script, not this "
           "block. -->", ""]
    for name, command, what in OWN_RUNS:
        rep = res.report(f"own/{name}.json")
        v = res.json(f"own/{name}.verdict.json", revision_from=[f"own/{name}.json"])
        out.append(f"`{command}` ({what}; {machine(rep)}, revision "
                   f"{res.revisions[f'own/{name}.json']}):")
        out.append("")
        out.append("```")
        out.append("verdict:")
        for w in v["workloads"]:
            out.append(w["line"])
        out.append("```")
        out.append("")
    return "\n".join(out + [OWN_END]) + "\n"


def splice(readme, block, begin=BEGIN, end=END, text=None):
    if text is None:
        try:
            with open(readme) as f:
                text = f.read()
        except OSError as e:
            die(f"{readme}: cannot read: {e.strerror}")
    if begin not in text or end not in text:
        die(f"{readme}: no {begin} ... {end} block")
    a = text.index(begin)
    b = text.index(end) + len(end) + 1
    return text, text[:a] + block + text[b:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.path.join(os.path.dirname(__file__), "..", "results"))
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--write", metavar="README")
    g.add_argument("--check", metavar="README")
    ap.add_argument("--allow-dirty", action="store_true",
                    help="print (never --write or --check) from files measured on uncommitted trees")
    a = ap.parse_args()
    if a.allow_dirty and (a.write or a.check):
        die("--allow-dirty only prints: the README cites committed revisions only")
    block = render(os.path.normpath(a.results), a.allow_dirty)
    own = render_own(os.path.normpath(a.results), a.allow_dirty)
    if a.write:
        text, new = splice(a.write, block)
        _, new = splice(a.write, own, OWN_BEGIN, OWN_END, text=new)
        tmp = a.write + ".tmp"
        with open(tmp, "w") as f:
            f.write(new)
        os.replace(tmp, a.write)
    elif a.check:
        old, new = splice(a.check, block)
        _, new = splice(a.check, own, OWN_BEGIN, OWN_END, text=new)
        if old != new:
            sys.stderr.write(f"findings: {a.check}'s Findings differ from what results/ gives; "
                             f"run scripts/findings.py --write {a.check}\n")
            sys.exit(1)
    else:
        sys.stdout.write(own + "\n" + block)


if __name__ == "__main__":
    main()
