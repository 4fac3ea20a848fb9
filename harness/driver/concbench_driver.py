# concbench's driver for other Python interpreters (bench_runner run --python PATH).
#
# Pure Python, standard library only; runs unchanged on Python 2.7 (Jython), PyPy and CPython
# 3.6 and later, free-threaded or not. It never imports concbench: the C++ model
# (harness/models/foreign_python.cpp) starts it as `PATH concbench_driver.py` and speaks to it
# over its stdin and stdout.
#
# Protocol: newline-delimited JSON, one ASCII object per line, each side answering in turn.
# 64-bit values (seeds, nonces, checksums) travel as decimal strings: a JSON number loses
# precision beyond 2^53.
#   driver -> {"op": "hello", "protocol": 1, "label", "implementation", "version", "pid",
#              "models": ["asyncio", "process_pool", "serial", "threading"] (asyncio on 3.7
#              and later, process_pool where multiprocessing and fork exist: not Jython),
#              "gil_disabled", "gil_enabled", "python_gil_env", "cpu_source"}
#   runner -> {"op": "setup", "model": "threading", "workers": N}  (asyncio: one loop, a lane
#              per task of the list; serial: the main thread)      driver -> {"op": "ok"}
#   runner -> {"op": "tasks", "key": K, "tasks": [[id, seed, payload_hex,
#              [[kind, native, kernel, bytes, units, duration_ns, arg], ...]], ...]}
#                                                                      driver -> {"op": "ok"}
#   runner -> {"op": "run", "key": K, "rounds": R, "nonce": "N", "stride": S}
#   driver -> {"op": "result", "checksums": ["..."], "done": "0101..", "latency_ns": [...],
#              "failures": [[k, reason]], "wall_ns", "cpu": [user_ns, sys_ns] or null,
#              "attribution": [{worker, kind, active_ns, run_ns, runqueue_ns, timeslices,
#                               io_wait_ns, gil_wait_ns, idle_ns, io_waits, tasks, note}]}
#             wall_ns is measured here, from handing out the first item to the last result;
#             attribution is each worker's time in it (harness attribution.hpp, and below).
#   runner -> {"op": "quit"}                                           (the driver exits 0)
# Any message the driver cannot serve is answered {"op": "error", "reason": "..."}.
# The steps mirror python_bindings/concbench/workloads.py (cpu.spin, io.sleep, overhead.noop);
# checksums are bit-identical to the C++ predictions.
import binascii
import json
import os
import sys
import threading
import time

PROTOCOL = 1
ITERATIONS_PER_UNIT = 1000
WAIT_SLICE_S = 0.05


def _clock():
    f = getattr(time, "perf_counter_ns", None)
    if f is not None:
        return f
    if sys.platform.startswith("java"):
        try:
            from java.lang import System  # Jython

            return System.nanoTime
        except ImportError:
            pass
    f = getattr(time, "perf_counter", None) or getattr(time, "monotonic", None) or time.time
    return lambda: int(f() * 1e9)


now_ns = _clock()


def _cpu_reader():
    try:
        import resource

        def cpu():
            r = resource.getrusage(resource.RUSAGE_SELF)
            return [int(r.ru_utime * 1e9), int(r.ru_stime * 1e9)]

        cpu()
        return cpu, "getrusage"
    except Exception:
        pass
    return None, "none"


cpu_times, CPU_SOURCE = _cpu_reader()

# The checksums: pure_checksum.py beside this file, also the worker source of
# cpython.interpreters. Its directory is put first explicitly: sys.path[0] is not the script's
# directory under -I or PYTHONSAFEPATH. No bytecode is written beside it (Jython's $py.class,
# CPython's __pycache__): the source tree, or an installed copy, may be read-only.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pure_checksum import (LCG_INC, LCG_MUL, MASK64, fold, hash_bytes,  # noqa: E402
                           round_nonce, seal, step_seed)

# --- steps ---


class Cancelled(Exception):
    pass


class State(object):
    cancelled = False


STATE = State()

# --- attribution (harness attribution.hpp): where each worker's time went ---
#
# A worker thread reads its schedstat (/proc/thread-self/schedstat: run and run-queue ns, no root
# needed) at the start and end of its part of the batch, and times its sleeps (the IO wait) into
# its clock, a thread-local. What it spent off the CPU outside those is inferred: its GIL wait
# where the interpreter has a GIL, idle (the batch's claim lock, the only other place it blocks)
# where it has none; a loop's is its IO wait; a dispatcher's its wait for the workers.
CLOCK = threading.local()
GIL_ENABLED = None  # set by main() from gil_info()


def read_schedstat(path="/proc/thread-self/schedstat"):
    try:
        with open(path) as f:
            run, rq, slices = f.read().split()
        return int(run), int(rq), int(slices)
    except (IOError, OSError, ValueError):
        return None


def _thread_cpu_reader():
    """The calling thread's CPU clock in ns, or None (Python 2.7, Jython): schedstat's run time
    lags a running thread by up to a tick, so the clock is preferred where there is one."""
    f = getattr(time, "thread_time_ns", None)  # 3.7+
    if f is not None:
        return f
    g, cid = getattr(time, "clock_gettime", None), getattr(time, "CLOCK_THREAD_CPUTIME_ID", None)
    if g is not None and cid is not None:
        return lambda: int(g(cid) * 1e9)
    return None


thread_cpu_ns = _thread_cpu_reader()


class WorkerClock(object):
    def __init__(self, worker, kind="thread"):
        self.worker, self.kind = worker, kind
        self.io_wait_ns = 0
        self.io_waits = 0
        self.tasks = 0
        self.s0 = read_schedstat()
        self.c0 = thread_cpu_ns() if thread_cpu_ns else None
        self.t0 = now_ns()
        CLOCK.clock = self

    def close(self):
        active = now_ns() - self.t0
        c1 = thread_cpu_ns() if thread_cpu_ns else None
        s1 = read_schedstat()
        CLOCK.clock = None
        rec = {"worker": self.worker, "kind": self.kind, "active_ns": active,
               "io_wait_ns": self.io_wait_ns, "io_waits": self.io_waits, "tasks": self.tasks,
               "idle_ns": 0}
        if self.s0 is None or s1 is None:
            rec["sched_unavailable"] = "no /proc/thread-self/schedstat in this interpreter"
            return rec
        run = c1 - self.c0 if c1 is not None else s1[0] - self.s0[0]
        rq = s1[1] - self.s0[1]
        rec.update(run_ns=run, runqueue_ns=rq, timeslices=s1[2] - self.s0[2])
        off = max(0, active - run - rq - self.io_wait_ns)
        if self.kind == "loop":
            rec["io_wait_ns"] += off
        elif self.kind == "parent":
            rec["idle_ns"] = off
        elif GIL_ENABLED:
            rec["gil_wait_ns"] = off
            rec["note"] = ("gil_wait inferred: the thread's time off the CPU outside its sleeps "
                           "(the interpreter does not time its GIL)")
        else:
            rec["idle_ns"] = off
            rec["note"] = ("no GIL: the thread's time off the CPU outside its sleeps is its wait "
                           "for the batch's claim lock (idle)")
        return rec


def spin(units, seed):
    x = seed
    for _ in range(units):
        for _ in range(ITERATIONS_PER_UNIT):
            x = (x * LCG_MUL + LCG_INC) & MASK64
        if STATE.cancelled:
            raise Cancelled("cancelled")
    return x


def sleep_ns(duration_ns):
    clk = getattr(CLOCK, "clock", None)
    c0 = thread_cpu_ns() if clk is not None and thread_cpu_ns else 0
    start = now_ns()
    deadline = start + duration_ns
    now = start
    while now < deadline:
        if STATE.cancelled:
            raise Cancelled("cancelled")
        time.sleep(min(WAIT_SLICE_S, (deadline - now) / 1e9))
        now = now_ns()
    if clk is not None:  # its time off the CPU (without a CPU clock: all of it)
        cpu = thread_cpu_ns() - c0 if thread_cpu_ns else 0
        clk.io_wait_ns += max(0, now - start - cpu)
        clk.io_waits += 1
    return duration_ns if now - start >= duration_ns else 0


def execute(task, nonce):
    _, seed, payload, steps = task
    h = hash_bytes(payload, seed)
    for i, step in enumerate(steps):
        s = step_seed(seed, i)
        kind, native, kernel, _nbytes, units, duration_ns, _arg = step
        if kind == "cpu" and kernel == "spin":
            v = spin(units, s)
        elif kind == "sleep":
            v = sleep_ns(duration_ns)
        else:
            raise ValueError("the driver has no version of step %s/%s" % (kind, kernel))
        h = fold(h, v)
    return seal(h, nonce)


# --- batches ---


class Batch(object):
    def __init__(self, tasks, rounds, nonce, stride):
        self.tasks = tasks
        self.items = len(tasks) * rounds
        self.nonce = nonce
        self.stride = stride
        self.next = 0
        self.lock = threading.Lock()
        self.checksums = [0] * self.items
        self.done = [0] * self.items
        self.latency = [-1] * ((self.items + stride - 1) // stride)
        self.failures = []
        self.attribution = []

    def claim(self):
        with self.lock:
            k = self.next
            if k >= self.items:
                return -1
            self.next = k + 1
            return k

    def run_item(self, k):
        n = len(self.tasks)
        sampled = k % self.stride == 0
        t0 = now_ns() if sampled else 0
        try:
            v = execute(self.tasks[k % n], round_nonce(self.nonce, k // n))
        except Cancelled:
            return
        except Exception as e:
            with self.lock:
                self.failures.append([k, "%s: %s" % (type(e).__name__, e)])
            return
        self.checksums[k] = v
        self.done[k] = 1
        if sampled:
            self.latency[k // self.stride] = now_ns() - t0

    def drain(self, worker=0):
        clk = WorkerClock(worker)
        try:
            while True:
                k = self.claim()
                if k < 0:
                    return
                self.run_item(k)
                clk.tasks += 1
        finally:
            rec = clk.close()
            with self.lock:
                self.attribution.append(rec)


class Serial(object):
    def __init__(self, workers):
        pass

    def run(self, batch):
        batch.drain()

    def close(self):
        pass


class Threading(object):
    """`workers` threads started once; each batch wakes them all and waits for all."""

    def __init__(self, workers):
        self.batch = None
        self.go = [threading.Semaphore(0) for _ in range(workers)]
        self.finished = threading.Semaphore(0)
        self.threads = []
        for i in range(workers):
            t = threading.Thread(target=self.loop, args=(i,))
            t.daemon = True
            t.start()
            self.threads.append(t)

    def loop(self, i):
        while True:
            self.go[i].acquire()
            b = self.batch
            if b is None:
                return
            try:
                b.drain(i)
            finally:
                self.finished.release()

    def run(self, batch):
        self.batch = batch
        for g in self.go:
            g.release()
        for _ in self.go:
            self.finished.acquire()

    def close(self):
        self.batch = None
        for g in self.go:
            g.release()
        for t in self.threads:
            t.join()


MODELS = {"serial": Serial, "threading": Threading}

# multiprocessing (CPython, PyPy; not Jython): a Pool of `workers` processes started at setup,
# each batch cut into chunks (about four per process) that are pickled to the workers and whose
# results are pickled back: what pool.map costs a program.
try:
    import multiprocessing
except ImportError:
    multiprocessing = None

try:
    CLK_TCK = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):
    CLK_TCK = None


class _ChunkClock(object):
    def __init__(self):
        self.io_wait_ns = self.io_waits = 0


def _run_chunk(chunk):
    """(pid, its sleeps' ns, the results) of one chunk in a pool worker."""
    out = []
    clk = CLOCK.clock = _ChunkClock()
    for k, task, nonce in chunk:
        try:
            out.append((k, True, execute(task, nonce)))
        except Exception as e:
            out.append((k, False, "%s: %s" % (type(e).__name__, e)))
    CLOCK.clock = None
    return os.getpid(), clk.io_wait_ns, out


def _ping(_):
    return os.getpid()


def proc_cpu(pids):
    """[user ns, sys ns] of live processes from /proc/PID/stat (clock ticks), or None."""
    if CLK_TCK is None:
        return None
    user = system = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (IOError, OSError):
            return None
        user += int(fields[11])
        system += int(fields[12])
    scale = 1e9 / CLK_TCK
    return [int(user * scale), int(system * scale)]


class ProcessPool(object):
    def __init__(self, workers):
        self.workers = workers
        self.pool = multiprocessing.Pool(workers)
        # Every worker answers once now, outside the measured batches; the pool's own list of
        # processes names them all (a map of pings may be served by one fast worker alone).
        self.pool.map(_ping, range(workers * 4))
        procs = getattr(self.pool, "_pool", None) or []
        self.pids = sorted(p.pid for p in procs if p.pid)

    def run(self, batch):
        n = len(batch.tasks)
        size = max(1, batch.items // (4 * self.workers))
        chunks = [[(k, batch.tasks[k % n], round_nonce(batch.nonce, k // n))
                   for k in range(i, min(batch.items, i + size))]
                  for i in range(0, batch.items, size)]
        # Each worker process read from outside (its schedstat): run and run-queue time, its
        # sleeps from its chunks; the rest of its time off the CPU is idle, waiting for a chunk.
        # Its CPU includes multiprocessing's pickling (not told apart). This thread dispatches.
        s0 = dict((pid, read_schedstat("/proc/%d/task/%d/schedstat" % (pid, pid)))
                  for pid in self.pids)
        inside = dict((pid, [0, 0]) for pid in self.pids)  # tasks, sleeps' ns
        clk = WorkerClock(-1, "parent")
        t0 = now_ns()
        for pid, io_ns, part in self.pool.imap_unordered(_run_chunk, chunks):
            if pid in inside:
                inside[pid][0] += len(part)
                inside[pid][1] += io_ns
            for k, ok, v in part:
                if ok:
                    batch.checksums[k] = v
                    batch.done[k] = 1
                else:
                    batch.failures.append([k, v])
        wall = now_ns() - t0
        batch.attribution.append(clk.close())
        for i, pid in enumerate(self.pids):
            s1 = read_schedstat("/proc/%d/task/%d/schedstat" % (pid, pid))
            rec = {"worker": i, "kind": "process", "active_ns": wall, "tasks": inside[pid][0],
                   "io_wait_ns": inside[pid][1], "io_waits": inside[pid][0],
                   "note": "a pool process, read from outside: its CPU includes "
                           "multiprocessing's pickling; idle is its wait for a chunk"}
            if s0[pid] is None or s1 is None:
                rec["sched_unavailable"] = "no schedstat for pool process %d" % pid
            else:
                run, rq = s1[0] - s0[pid][0], s1[1] - s0[pid][1]
                rec.update(run_ns=run, runqueue_ns=rq, timeslices=s1[2] - s0[pid][2],
                           idle_ns=max(0, wall - run - rq - inside[pid][1]))
            batch.attribution.append(rec)

    def close(self):
        self.pool.terminate()
        self.pool.join()


if multiprocessing is not None and hasattr(os, "fork"):
    MODELS["process_pool"] = ProcessPool

# asyncio (Python 3.7 and later): one event loop, one lane per task of the list, each awaiting
# its items' sleeps; CPU steps run inline and block the loop. Compiled from a string so that the
# file still parses on Python 2.7.
ASYNCIO_SOURCE = """
import asyncio


async def sleep_ns_async(duration_ns):
    start = now_ns()
    deadline = start + duration_ns
    now = start
    while now < deadline:
        await asyncio.sleep(min(WAIT_SLICE_S, (deadline - now) / 1e9))
        now = now_ns()
    return duration_ns if now - start >= duration_ns else 0


async def execute_async(task, nonce):
    _, seed, payload, steps = task
    h = hash_bytes(payload, seed)
    for i, step in enumerate(steps):
        s = step_seed(seed, i)
        kind, native, kernel, _nbytes, units, duration_ns, _arg = step
        if kind == "cpu" and kernel == "spin":
            v = spin(units, s)
        elif kind == "sleep":
            v = await sleep_ns_async(duration_ns)
        else:
            raise ValueError("the driver has no version of step %s/%s" % (kind, kernel))
        h = fold(h, v)
    return seal(h, nonce)


class Asyncio(object):
    def __init__(self, workers):
        self.loop = asyncio.new_event_loop()

    def run(self, batch):
        clk = WorkerClock(0, "loop")
        try:
            self.loop.run_until_complete(self._batch(batch))
        finally:
            rec = clk.close()
            rec["tasks"] = sum(batch.done)
            batch.attribution.append(rec)

    async def _batch(self, b):
        n = len(b.tasks)

        async def lane():
            while True:
                k = b.claim()
                if k < 0:
                    return
                sampled = k % b.stride == 0
                t0 = now_ns() if sampled else 0
                try:
                    v = await execute_async(b.tasks[k % n], round_nonce(b.nonce, k // n))
                except Exception as e:
                    b.failures.append([k, "%s: %s" % (type(e).__name__, e)])
                    continue
                b.checksums[k] = v
                b.done[k] = 1
                if sampled:
                    b.latency[k // b.stride] = now_ns() - t0

        await asyncio.gather(*[lane() for _ in range(min(n, b.items))])

    def close(self):
        self.loop.close()


MODELS["asyncio"] = Asyncio
"""

if sys.version_info >= (3, 7):
    try:
        exec(compile(ASYNCIO_SOURCE, "<concbench_driver asyncio>", "exec"), globals())
    except ImportError:
        pass


def gil_info():
    disabled = None
    try:
        import sysconfig

        v = sysconfig.get_config_var("Py_GIL_DISABLED")
        disabled = bool(v) if v is not None else False
    except Exception:
        pass
    enabled = None
    f = getattr(sys, "_is_gil_enabled", None)
    if f is not None:
        enabled = bool(f())
    elif sys.platform.startswith("java"):
        enabled = False  # the JVM has no interpreter lock
    elif disabled is not None:
        enabled = not disabled
    return disabled, enabled


def hello():
    impl = getattr(sys, "implementation", None)
    name = impl.name if impl is not None else None
    if not name:
        import platform

        name = platform.python_implementation().lower()
    if sys.platform.startswith("java"):
        name = "jython"
    disabled, enabled = gil_info()
    label = "%s-%d.%d%s" % (name, sys.version_info[0], sys.version_info[1], "t" if disabled else "")
    return {
        "op": "hello",
        "protocol": PROTOCOL,
        "label": label,
        "implementation": name,
        "version": sys.version.split()[0],
        "version_full": " ".join(sys.version.split()),
        "pid": os.getpid(),
        "models": sorted(MODELS),
        "gil_disabled": disabled,
        "gil_enabled": enabled,
        "python_gil_env": os.environ.get("PYTHON_GIL"),
        "cpu_source": CPU_SOURCE,
    }


def decode_tasks(raw):
    out = []
    for t in raw:
        tid, seed, payload, steps = t
        steps = [tuple(s) for s in steps]
        out.append((int(tid), int(seed), binascii.unhexlify(payload.encode("ascii")), steps))
    return out


def main():
    out = sys.stdout
    inp = sys.stdin

    def send(obj):
        out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        out.flush()

    global GIL_ENABLED
    fault = os.environ.get("CONCBENCH_DRIVER_FAULT", "")
    GIL_ENABLED = gil_info()[1]
    send(hello())
    model = None
    tasks = {}
    while True:
        line = inp.readline()
        if not line:
            break
        try:
            msg = json.loads(line)
        except ValueError as e:
            send({"op": "error", "reason": "bad message: %s" % e})
            continue
        op = msg.get("op")
        try:
            if op == "quit":
                break
            elif op == "setup":
                if model is not None:
                    model.close()
                    model = None
                cls = MODELS.get(msg["model"])
                if cls is None:
                    send({"op": "error", "reason": "no model %s here" % msg["model"]})
                    continue
                model = cls(int(msg["workers"]))
                tasks = {}
                send({"op": "ok", "pids": getattr(model, "pids", [])})
            elif op == "tasks":
                tasks = {msg["key"]: decode_tasks(msg["tasks"])}
                send({"op": "ok"})
            elif op == "run":
                if fault == "exit_in_run":
                    sys.stderr.write("injected fault: exiting in run\n")
                    sys.stderr.flush()
                    os._exit(3)
                if fault == "hang_in_run":
                    while True:
                        time.sleep(1)
                b = Batch(tasks[msg["key"]], int(msg["rounds"]), int(msg["nonce"]),
                          int(msg["stride"]))
                pids = getattr(model, "pids", [])
                w0 = proc_cpu(pids) if pids else None
                c0 = cpu_times() if cpu_times else None
                t0 = now_ns()
                model.run(b)
                wall = now_ns() - t0
                c1 = cpu_times() if cpu_times else None
                w1 = proc_cpu(pids) if pids else None
                cpu = [c1[0] - c0[0], c1[1] - c0[1]] if c0 else None
                if cpu is not None and pids:
                    # A pool's workers: their CPU too, or no figure rather than a partial one.
                    cpu = ([cpu[0] + w1[0] - w0[0], cpu[1] + w1[1] - w0[1]]
                           if w0 is not None and w1 is not None else None)
                send({
                    "op": "result",
                    "checksums": [str(v) for v in b.checksums],
                    "done": "".join("1" if d else "0" for d in b.done),
                    "latency_ns": b.latency,
                    "failures": b.failures,
                    "wall_ns": wall,
                    "cpu": cpu,
                    "pids": pids,
                    "attribution": b.attribution,
                })
            else:
                send({"op": "error", "reason": "unknown op %r" % (op,)})
        except Exception as e:
            send({"op": "error", "reason": "%s: %s" % (type(e).__name__, e)})
    if model is not None:
        model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
