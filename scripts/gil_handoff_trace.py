#!/usr/bin/env python3
"""How the GIL changes hands in ccbench's echo test, real CPython beside gil_threads, recorded
with one instrument on both sides (libconcbench_gil_handoff_trace.so, LD_PRELOADed).

validate_gil.py says whether round trips per second agree; this says why they do not. Behind
two CPU-bound threads a round trip's cost is decided by races at the lock: when a spinner's
timed wait runs out and it asks the holder to drop the lock, the holder's signal wakes either the
IO thread (which has waited longer) or the spinner that asked, if the signal comes while that
spinner is still on its way back into the wait. The script reports, per side:

  * round trips per second, as each side measures them;
  * of the hand-overs a spinner asked for while the responder was waiting too, how many the
    asking spinner won ("stolen"), split by whether holder and asker were on one CPU;
  * the holder's lag: its call to lock the GIL's mutex, and its signal, less the asker's return
    into the wait, and its wait for the mutex, with the share stolen in each band (the race
    itself: a signal within about a microsecond of the asker's return finds it still awake);
  * the responder's waits for the lock after each receive and after each send.

Every recorded call costs two clock reads and a sched_getcpu; the script prints that cost, and
both sides pay it alike. Figures from it are diagnostics, not results: nothing here goes into a
report.

  scripts/gil_handoff_trace.py --python /root/.pyenv/versions/3.11.7/bin/python3 --runs 3
"""
import argparse
import collections
import ctypes
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Event kinds, as bench/gil_handoff_trace/gil_handoff_trace.cpp writes them.
WAIT_IN, WAIT_OUT, SIGNAL, BROADCAST, IO, TWAIT_IN, TWAIT_OUT, LOCK_IN, LOCK_OUT = range(1, 10)
RECV, READ, SEND, WRITE = 1, 2, 3, 4
ETIMEDOUT = 110
# A signal this soon after a waiter's timeout answers that waiter's drop request.
REQUEST_WINDOW_NS = 1_000_000
LAG_BANDS_US = (0, 0.5, 1, 2, 5)

PROBE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import cpython_gil_probe as p
print(json.dumps(p.echo(int(sys.argv[2]), int(sys.argv[3]))))
"""


def die(message):
    sys.stderr.write("gil_handoff_trace.py: %s\n" % message)
    sys.exit(2)


class Event(collections.namedtuple("Event", "ns tid op obj rc cpu mutex")):
    __slots__ = ()


def load(path):
    events = []
    with open(path) as f:
        for line in f:
            ns, tid, op, obj, rc, cpu, mutex = line.split()
            events.append(Event(int(ns), int(tid), int(op), obj, int(rc), int(cpu), mutex))
    events.sort()
    return events


def responders(events):
    """Threads that receive and send 64-byte messages and wait on a condition with a timeout:
    the echo's responder (one per batch the run made)."""
    io = collections.defaultdict(set)
    timed = set()
    for e in events:
        if e.op == IO:
            io[e.tid].add("in" if e.rc in (RECV, READ) else "out")
        elif e.op == TWAIT_IN:
            timed.add(e.tid)
    return sorted(t for t, k in io.items() if k == {"in", "out"} and t in timed)


def band(lag_us):
    label = "<%g" % LAG_BANDS_US[0]
    for lo, hi in zip(LAG_BANDS_US, LAG_BANDS_US[1:] + (None,)):
        if lag_us >= lo:
            label = ("%g-%g" % (lo, hi)) if hi is not None else (">=%g" % lo)
    return label


def analyze(events, resp):
    """The hand-over figures of one batch whose responder is thread `resp`."""
    io_ns = [e.ns for e in events if e.tid == resp and e.op == IO]
    window = [e for e in events if io_ns[0] <= e.ns <= io_ns[-1]]
    conds = collections.Counter(e.obj for e in window if e.tid == resp and e.op == TWAIT_IN)
    if not conds:
        return None
    gil = conds.most_common(1)[0][0]
    gil_mutex = next(e.mutex for e in window if e.op == TWAIT_IN and e.obj == gil)
    waiting, entered, lock_in, lock_out = {}, {}, {}, {}
    last_timeout = None
    pending = None
    handoffs = []
    for e in window:
        if e.op in (LOCK_IN, LOCK_OUT) and e.obj == gil_mutex:
            (lock_in if e.op == LOCK_IN else lock_out)[e.tid] = e.ns
            continue
        if e.obj != gil:
            continue
        if e.op in (WAIT_IN, TWAIT_IN):
            waiting[e.tid] = e.ns
            entered[e.tid] = e.ns
        elif e.op in (WAIT_OUT, TWAIT_OUT):
            waiting.pop(e.tid, None)
            if e.rc == ETIMEDOUT:
                last_timeout = e
        elif e.op == SIGNAL:
            # Only a holder signals the GIL's condition (drop_gil; take_gil signals the switch
            # condition), so whoever signals next is whoever won the last hand-over. (The first
            # waiter to return 0 may not be: glibc lets a waiter return early and wait again.)
            if pending is not None:
                pending["woken"] = e.tid
                handoffs.append(pending)
                pending = None
            asker = last_timeout
            if (asker is None or e.ns - asker.ns > REQUEST_WINDOW_NS or asker.tid == resp or
                    asker.tid not in waiting or resp not in waiting):
                continue  # not a spinner's request answered while the responder waited
            locked_at = lock_in.get(e.tid, e.ns)
            pending = {"asker": asker.tid, "same_cpu": e.cpu == asker.cpu,
                       "lag_ns": locked_at - entered[asker.tid],
                       "signal_ns": e.ns - entered[asker.tid],
                       "mutex_wait_ns": lock_out.get(e.tid, locked_at) - locked_at,
                       "reentry_ns": entered[asker.tid] - asker.ns,
                       "lock_call_ns": locked_at - asker.ns}
    out = {"handoffs": len(handoffs), "stolen": 0, "same_cpu": [0, 0], "cross_cpu": [0, 0],
           "lag": {}, "signal": {}, "mutex_wait": {},
           "reentry_ns": sorted(h["reentry_ns"] for h in handoffs),
           "lock_call_ns": sorted(h["lock_call_ns"] for h in handoffs)}
    for h in handoffs:
        stolen = h["woken"] == h["asker"]
        out["stolen"] += stolen
        where = out["same_cpu" if h["same_cpu"] else "cross_cpu"]
        where[0] += stolen
        where[1] += 1
        for key in ("lag", "signal", "mutex_wait"):
            b = out[key].setdefault(band(h[key + "_ns"] / 1e3), [0, 0])
            b[0] += stolen
            b[1] += 1
    out["responder_waits"] = responder_waits(window, resp, gil)
    return out


def responder_waits(window, resp, gil):
    """Timed waits per acquisition, after each receive and after each send. Consecutive
    receive calls (ours reads, finds nothing, polls and reads again) are one receive."""
    tokens = []
    for e in window:
        if e.tid != resp:
            continue
        if e.op == IO:
            tok = "r" if e.rc in (RECV, READ) else "w"
            if tokens and tok == "r" and tokens[-1] == "r":
                continue
            tokens.append(tok)
        elif e.op == TWAIT_IN and e.obj == gil:
            tokens.append("t")
    counts = {"r": collections.Counter(), "w": collections.Counter()}
    cur, n = None, 0
    for tok in tokens:
        if tok in "rw":
            if cur:
                counts[cur][n] += 1
            cur, n = tok, 0
        else:
            n += 1
    res = {}
    for k, name in (("r", "after_receive"), ("w", "after_send")):
        c = counts[k]
        total = sum(c.values())
        res[name] = {"acquisitions": total,
                     "no_wait": c[0] / total if total else None,
                     "mean_waits": sum(a * b for a, b in c.items()) / total if total else None}
    return res


def merge(parts):
    out = {"handoffs": 0, "stolen": 0, "same_cpu": [0, 0], "cross_cpu": [0, 0], "lag": {},
           "signal": {}, "mutex_wait": {}, "responder_waits": {}, "reentry_ns": [],
           "lock_call_ns": []}
    waits = collections.defaultdict(list)
    for p in parts:
        out["handoffs"] += p["handoffs"]
        out["stolen"] += p["stolen"]
        for k in ("same_cpu", "cross_cpu"):
            out[k] = [a + b for a, b in zip(out[k], p[k])]
        for key in ("lag", "signal", "mutex_wait"):
            for b, (s, n) in p[key].items():
                cur = out[key].setdefault(b, [0, 0])
                cur[0] += s
                cur[1] += n
        for key in ("reentry_ns", "lock_call_ns"):
            out[key] = sorted(out[key] + p[key])
        for k, v in p["responder_waits"].items():
            waits[k].append(v)
    for k, vs in waits.items():
        n = sum(v["acquisitions"] for v in vs)
        out["responder_waits"][k] = {
            "acquisitions": n,
            "no_wait": sum(v["no_wait"] * v["acquisitions"] for v in vs if v["acquisitions"]) / n
            if n else None,
            "mean_waits": sum(v["mean_waits"] * v["acquisitions"] for v in vs
                              if v["acquisitions"]) / n if n else None}
    return out


def traced_env(lib, prefix):
    env = dict(os.environ)
    env["LD_PRELOAD"] = lib
    env["CONCBENCH_HANDOFF_OUT"] = prefix
    return env


def batches(prefix):
    """Every responder's figures in the trace files under `prefix`."""
    parts = []
    for path in sorted(glob.glob(prefix + ".*")):
        events = load(path)
        for resp in responders(events):
            got = analyze(events, resp)
            if got:
                parts.append(got)
    return parts


def run_cpython(python, lib, prefix, cpu_threads, trips):
    scripts = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([python, "-c", PROBE, scripts, str(cpu_threads), str(trips)],
                       env=traced_env(lib, prefix), stdout=subprocess.PIPE, check=True)
    return json.loads(r.stdout)["round_trips_per_s"], batches(prefix)


def run_ours(runner, python, policy, lib, prefix, cpu_threads, trips, workdir):
    out = os.path.join(workdir, "ours.json")
    subprocess.run([runner, "run", "--workloads", "latency.echo_under_load", "--models",
                    "gil_threads", "--gil-policy", policy, "--param", "interpreter=" + python,
                    "--param", "cpu_workers=%d" % cpu_threads, "--param",
                    "round_trips=%d" % trips, "--param", "max_cpu_units=1000000000",
                    "--repetitions", "1", "--min-time", "0", "--out", out, "--overwrite"],
                   env=traced_env(lib, prefix), stdout=subprocess.DEVNULL, check=True)
    with open(out) as f:
        report = json.load(f)
    reps = report["results"][0]["repetitions"]
    rate = reps[0]["metrics"].get("round_trips_per_s") if reps else None
    return rate, batches(prefix)


def pct(a, b):
    return "%d of %d (%.0f%%)" % (a, b, 100.0 * a / b) if b else "none"


def print_side(name, side):
    m = side["merged"]
    rates = sorted(r for r in side["rates"] if r is not None)
    # bench_runner's warm-up batch has a responder too: its hand-overs count with the rest.
    print("%s: round trips/s %s (median %.1f); %d traced batches" % (
        name, " ".join("%.0f" % r for r in side["rates"] if r is not None),
        rates[len(rates) // 2] if rates else float("nan"), len(side["parts"])))
    print("  a spinner asked, the responder waiting too: %d hand-overs, the asker won %s"
          % (m["handoffs"], pct(m["stolen"], m["handoffs"])))
    print("    holder and asker on one CPU: asker won %s; on two: %s"
          % (pct(*m["same_cpu"]), pct(*m["cross_cpu"])))
    order = ["<0"] + ["%g-%g" % (a, b) for a, b in zip(LAG_BANDS_US, LAG_BANDS_US[1:])] + \
        [">=%g" % LAG_BANDS_US[-1]]
    for key, what in (("lag", "holder's lock call less the asker's return into the wait"),
                      ("signal", "holder's signal less the asker's return into the wait"),
                      ("mutex_wait", "holder's wait for the GIL's mutex")):
        print("    %s (us), asker won:" % what)
        print("      " + "  ".join("%s: %s" % (b, "%d/%d" % tuple(m[key][b])) for b in order
                                   if b in m[key]))
    for key, what in (("reentry_ns", "asker's return into the wait"),
                      ("lock_call_ns", "holder's lock call")):
        v = m[key]
        if v:
            q = lambda f: v[min(len(v) - 1, int(f * len(v)))] / 1e3
            print("    %s after the asker's timeout (us): p10 %.2f p50 %.2f p90 %.2f"
                  % (what, q(0.1), q(0.5), q(0.9)))
    for k, v in m["responder_waits"].items():
        if v["acquisitions"]:
            print("  responder %s: %d acquisitions, %.0f%% without a wait, %.2f waits each"
                  % (k.replace("_", " "), v["acquisitions"], 100 * v["no_wait"],
                     v["mean_waits"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", required=True, help="the CPython to set beside gil_threads")
    ap.add_argument("--runs", type=int, default=3, help="runs a side, alternating (default 3)")
    ap.add_argument("--cpu-threads", type=int, default=2, help="spinners (default 2)")
    ap.add_argument("--round-trips", type=int, default=150, help="per run (default 150)")
    ap.add_argument("--build-dir", default=os.environ.get("CONCBENCH_BUILD_DIR", "build"))
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    if args.runs < 1 or args.cpu_threads < 1 or args.round_trips < 1:
        die("--runs, --cpu-threads and --round-trips must be at least 1")
    python = os.path.abspath(args.python)
    if not os.access(python, os.X_OK):
        die("--python %s: not an executable" % args.python)
    lib = os.path.abspath(os.path.join(args.build_dir, "libconcbench_gil_handoff_trace.so"))
    runner = os.path.abspath(os.path.join(args.build_dir, "bench_runner"))
    for path in (lib, runner):
        if not os.path.exists(path):
            die("%s: not built (cmake --build %s)" % (path, args.build_dir))
    import validate_gil  # the version-to-policy map validation uses
    r = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                       stdout=subprocess.PIPE, universal_newlines=True)
    if r.returncode != 0:
        die("--python %s: does not run" % args.python)
    version = r.stdout.strip()
    policy = validate_gil.policy_for(version)
    if policy is None:
        die("--python %s: CPython %s has no gil_threads policy" % (args.python, version))
    cost = ctypes.CDLL(lib).concbench_handoff_event_cost_ns
    cost.restype = ctypes.c_double
    sides = {"CPython " + version: {"rates": [], "parts": []},
             "gil_threads " + policy: {"rates": [], "parts": []}}
    work = tempfile.mkdtemp(prefix="gil_handoff_")
    try:
        for i in range(args.runs):
            for name, side in sides.items():
                prefix = os.path.join(work, "%s-%d" % (name.split()[0], i))
                if name.startswith("CPython"):
                    rate, parts = run_cpython(python, lib, prefix, args.cpu_threads,
                                              args.round_trips)
                else:
                    rate, parts = run_ours(runner, python, policy, lib, prefix,
                                           args.cpu_threads, args.round_trips, work)
                side["rates"].append(rate)
                side["parts"] += parts
    except subprocess.CalledProcessError as e:
        die("a traced run failed: %s" % e)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("each recorded wait or lock costs about %.0f ns (two events, each a clock read and a "
          "sched_getcpu; a signal, one), on both sides; %d CPU threads, %d round trips a run, "
          "%d runs a side" % (2 * cost(), args.cpu_threads, args.round_trips, args.runs))
    for name, side in sides.items():
        side["merged"] = merge(side["parts"])
        print_side(name, side)
    if args.json:
        tmp = args.json + ".tmp.%d" % os.getpid()
        with open(tmp, "w") as f:
            json.dump({n: {"rates": s["rates"], "merged": s["merged"]} for n, s in sides.items()},
                      f, indent=1)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
