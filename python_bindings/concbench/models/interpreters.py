"""cpython.interpreters: `workers` subinterpreters (PEP 684: each with its own GIL), one thread
each, tasks sent and results returned through the interpreters' own queues or channels.

Found by feature, not version: concurrent.interpreters (3.14, PEP 734), else
test.support.interpreters (3.13, the same API before it went public) with its queues, else
_xxsubinterpreters with _xxinterpchannels (3.12's private modules). Where none is there the model
is not registered and models.unavailable() gives the one-line reason (3.11 and earlier).

What runs inside an interpreter is WORKER_SOURCE below, a self-contained pure-Python copy of the
steps it supports (cpu.spin, cpu.pidigits, io.sleep, overhead.noop) with the checksum helpers of
workloads/include/concbench/checksum.hpp and execute.cpp ported line for line: the pybind11
module _concbench need not import into an isolated interpreter, and the checksums must be
bit-identical to workloads.execute's (tests/test_interpreters.py checks the ports against
_concbench's functions). What crosses per task: marshal.dumps((item, task, nonce)) one way and
marshal.dumps((item, ok, checksum or error, run ns, worker crossing ns)) back, both as bytes
through the queues; model_metrics records their bytes and the time spent marshalling and
queueing, and each interpreter's start-up (create, imports, the worker source), which happens in
setup, outside the measured batches.

Cancellation: the runner's flag is not visible inside an interpreter. On cancel the parent takes
back the tasks not yet started and puts the batch number on each interpreter's control queue;
a running task checks that queue every 8 spin units, every pidigits round and every 50 ms of a
sleep, and stops; results of a cancelled batch that arrive later are ignored."""

import marshal
import os
import threading
import time

from .base import OutsideClock, PyModel, Results, WorkerClock


class _Pep734:
    """concurrent.interpreters (3.14) or test.support.interpreters (3.13): Interpreter objects,
    queues bound into __main__ with prepare_main()."""

    def __init__(self, interp_mod, queues_mod, api, queue_import):
        self.interp_mod, self.queues, self.api = interp_mod, queues_mod, api
        self.worker_prelude = queue_import + """
def q_get_nowait(q):
    try:
        return q.get_nowait()
    except queues.QueueEmpty:
        return None


def q_put(q, m):
    q.put(m)
"""

    def create_queue(self):
        try:
            return self.queues.create(syncobj=True)  # 3.13: bytes are shareable, no pickling
        except TypeError:
            return self.queues.create()  # 3.14: shareable objects cross as they are

    def put(self, q, m):
        q.put(m)

    def get_nowait(self, q):
        try:
            return q.get_nowait()
        except self.queues.QueueEmpty:
            return None

    def create(self, tasks_q, results_q, ctl_q, worker):
        interp = self.interp_mod.create()
        interp.exec("POLL_S = %r\nWORKER = %d\n" % (POLL_S, worker) + self.worker_prelude)
        interp.prepare_main(tasks_q=tasks_q, results_q=results_q, ctl_q=ctl_q)
        return interp

    def exec(self, interp, code):
        interp.exec(code)

    def close(self, interp):
        interp.close()


class _Xx312:
    """3.12's private _xxsubinterpreters (an interpreter created isolated, with its own GIL) and
    _xxinterpchannels: channel ids are shareable and passed to run_string()."""

    api = "_xxsubinterpreters+_xxinterpchannels"
    worker_prelude = """
import _xxinterpchannels as _ch


def q_get_nowait(q):
    return _ch.recv(q, None)


def q_put(q, m):
    _ch.send(q, m)
"""

    def __init__(self, subs, chans):
        self.subs, self.chans = subs, chans
        self.shared = {}

    def create_queue(self):
        return self.chans.create()

    def put(self, q, m):
        self.chans.send(q, m)

    def get_nowait(self, q):
        return self.chans.recv(q, None)

    def create(self, tasks_q, results_q, ctl_q, worker):
        interp = self.subs.create()
        # A float is not shareable on 3.12: POLL_S goes in as source.
        self.subs.run_string(interp, "POLL_S = %r\nWORKER = %d\n" % (POLL_S, worker)
                             + self.worker_prelude, {})
        self.shared[interp] = {"tasks_q": tasks_q, "results_q": results_q, "ctl_q": ctl_q}
        return interp

    def exec(self, interp, code):
        self.subs.run_string(interp, code, self.shared.get(interp, {}))

    def close(self, interp):
        self.subs.destroy(interp)


def _find_backend():
    """(backend, None) or (None, one line saying why not): by feature, not version."""
    try:
        from concurrent import interpreters as im  # 3.14+
        from concurrent.interpreters import _queues as qm
        return _Pep734(im, qm, "concurrent.interpreters",
                       "from concurrent.interpreters import _queues as queues"), None
    except ImportError:
        pass
    try:
        from test.support import interpreters as im  # 3.13
        from test.support.interpreters import queues as qm
        return _Pep734(im, qm, "test.support.interpreters",
                       "from test.support.interpreters import queues"), None
    except ImportError:
        pass
    import sys
    v = "%d.%d" % sys.version_info[:2]
    try:
        import _xxinterpchannels
        import _xxsubinterpreters
    except ImportError:
        return None, ("no subinterpreter module on CPython %s (needs 3.12+: _xxsubinterpreters "
                      "and _xxinterpchannels, or PEP 734's interpreters)" % v)
    if sys.version_info < (3, 12):  # 3.11's interpreters share one GIL: nothing to measure
        return None, "no subinterpreter with its own GIL on CPython %s (needs 3.12+)" % v
    return _Xx312(_xxsubinterpreters, _xxinterpchannels), None


BACKEND, UNAVAILABLE = _find_backend()
API = BACKEND.api if BACKEND is not None else None

POLL_S = 0.0005  # the PEP 734 queues' blocking get() polls; this often
CANCEL_GRACE_S = 1.0  # after a cancel, how long running tasks get to notice it

# Runs in each interpreter's __main__: no import of concbench. The checksum helpers come first,
# from pure_checksum.py (the same file the driver of other interpreters imports).
def _checksum_source():
    # The build and `cmake --install` copy harness/driver/pure_checksum.py into the package.
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "pure_checksum.py")
    with open(path) as f:
        return f.read()


WORKER_SOURCE = _checksum_source() + r'''
import marshal
import time


class Cancelled(Exception):
    pass


_batch = 0  # the batch of the task running now
_cancelled_batch = -1  # the latest batch the parent cancelled (its ctl_q says so)


def check_cancel():
    global _cancelled_batch
    m = q_get_nowait(ctl_q)
    while m is not None:
        _cancelled_batch = max(_cancelled_batch, int(m))
        m = q_get_nowait(ctl_q)
    if _cancelled_batch >= _batch:
        raise Cancelled()


def spin(units, seed):
    x = seed
    for u in range(units):
        for _ in range(1000):
            x = (x * LCG_MUL + LCG_INC) & MASK64
        if u & 7 == 7:
            check_cancel()
    return x


def pidigits(units):
    base = 10000
    c = 14 * units
    f = [base // 5] * (c + 1)
    h = 0
    e = 0
    while c > 0:
        d = 0
        g = c * 2
        b = c
        while True:
            d += f[b] * base
            g -= 1
            f[b] = d % g
            d //= g
            g -= 1
            b -= 1
            if b == 0:
                break
            d *= b
        h = fold(h, e + d // base)
        e = d % base
        c -= 14
        check_cancel()
    return h


_io_wait = 0  # this task's time off the CPU in its sleeps: its IO wait, for the attribution


def sleep_ns(duration_ns):
    global _io_wait
    c0 = time.thread_time_ns()
    start = time.monotonic_ns()
    deadline = start + duration_ns
    now = start
    while now < deadline:
        time.sleep(min(0.05, (deadline - now) / 1e9))
        check_cancel()
        now = time.monotonic_ns()
    _io_wait += max(0, (now - start) - (time.thread_time_ns() - c0))
    return duration_ns if now - start >= duration_ns else 0


def execute(task, nonce):
    _, seed, payload, steps = task
    h = hash_bytes(payload, seed)
    for i, step in enumerate(steps):
        s = step_seed(seed, i)
        kind, native, kernel, nbytes, units, duration_ns, arg = step
        if kind == "cpu" and native:
            raise ValueError("no native kernel inside a subinterpreter")
        if kind == "cpu" and kernel == "spin":
            v = spin(units, s)
        elif kind == "cpu" and kernel == "pidigits":
            v = pidigits(units)
        elif kind == "sleep":
            v = sleep_ns(duration_ns)
        else:
            raise ValueError("no subinterpreter version of step %r/%r" % (kind, kernel))
        h = fold(h, v)
    return seal(h, nonce)


def get(q):
    while True:
        m = q_get_nowait(q)
        if m is not None:
            return m
        time.sleep(POLL_S)


def serve(tasks_q, results_q):
    global _batch, _io_wait
    ser = 0  # the previous result's marshalling and queueing, sent with the next one
    while True:
        msg = get(tasks_q)
        if not msg:
            return
        t0 = time.perf_counter_ns()
        batch, k, task, nonce = marshal.loads(msg)
        t1 = time.perf_counter_ns()
        if batch != _batch:
            ser = 0  # not this batch's
        _batch = batch
        _io_wait = 0
        c1 = time.thread_time_ns()
        try:
            check_cancel()
            v = execute(task, nonce)
            ok = True
        except Cancelled:
            v, ok = 0, None  # not done
        except Exception as e:
            v = "%s: %s" % (type(e).__name__, e)
            ok = False
        t2 = time.perf_counter_ns()
        # This side's crossing time: the task's unmarshalling; and for the attribution, the
        # task's CPU time and IO wait, and the previous result's marshalling.
        out = marshal.dumps((_batch, k, ok, v, t2 - t1, t1 - t0, WORKER,
                             time.thread_time_ns() - c1, _io_wait, ser))
        q_put(results_q, out)
        ser = time.perf_counter_ns() - t2
'''


def worker_namespace():
    """WORKER_SOURCE run in a plain dict here: the tests compare its ports with _concbench."""
    ns = {"POLL_S": POLL_S, "ctl_q": None, "q_get_nowait": lambda q: None, "WORKER": 0}
    exec(compile(WORKER_SOURCE, "<concbench.interpreters worker>", "exec"), ns)
    return ns


class Interpreters(PyModel):
    name = "cpython.interpreters"
    description = ("subinterpreters with their own GIL (PEP 734), one thread each, tasks and "
                   "results crossing through the interpreters' queues")
    latency_means = "the task's run time inside its interpreter"
    python_callables = False
    workloads = ("cpu.spin", "cpu.pidigits", "io.sleep", "overhead.noop")
    THREAD_NOTE = ("an interpreter's thread, read from outside (schedstat): its CPU includes "
                   "polling its task queue; deserialize is its unmarshalling of each task, "
                   "serialize its marshalling and queueing of each result (the batch's last one "
                   "excepted: it would travel with the next); idle is its time off the CPU "
                   "outside its sleeps")

    def setup(self, workers, params, seed, cancel, workload=None):
        super().setup(workers, params, seed, cancel, workload)
        b = self.backend = BACKEND
        self.tasks_q = b.create_queue()
        self.results_q = b.create_queue()
        self.interps = []
        self.threads = []
        self.errors = []
        self.startup_ns = []
        self.ctl_qs = []
        self.batch = 0
        for _ in range(workers):
            t0 = time.perf_counter_ns()
            ctl = b.create_queue()
            interp = b.create(self.tasks_q, self.results_q, ctl, len(self.interps))
            self.ctl_qs.append(ctl)
            b.exec(interp, WORKER_SOURCE)
            self.startup_ns.append(time.perf_counter_ns() - t0)
            self.interps.append(interp)
        for interp in self.interps:
            t = threading.Thread(target=self._serve, args=(interp,), daemon=True,
                                 name="cpython.interpreters")
            t.start()
            self.threads.append(t)

    def _serve(self, interp):
        try:
            self.backend.exec(interp, "serve(tasks_q, results_q)")
        except BaseException as e:  # noqa: BLE001 - reported by the next batch
            self.errors.append(str(e).splitlines()[0] if str(e) else type(e).__name__)

    def run(self, tasks, rounds, nonce, stride):
        n = len(tasks)
        items = n * rounds
        res = Results(items, n, nonce, stride)
        cross_ns = 0
        bytes_in = bytes_out = 0
        got = 0
        # Per interpreter, what it timed itself: tasks, IO wait, unmarshalling, marshalling.
        inside = [{"tasks": 0, "io_wait_ns": 0, "io_waits": 0, "deserialize_ns": 0,
                   "serialize_ns": 0} for _ in self.threads]
        outside = OutsideClock((i, "interpreter", os.getpid(), t.native_id, self.THREAD_NOTE)
                               for i, t in enumerate(self.threads))
        caller = WorkerClock(-1, kind="parent")
        # --trace: each task from its put to its result, an async span on the caller's track.
        tr = caller.trace
        sent = [0] * items if tr is not None else None
        res.begin_work()
        for k in range(items):
            t0 = time.perf_counter_ns()
            msg = marshal.dumps((self.batch, k, tasks[k % n], res.nonce(k)))
            self.backend.put(self.tasks_q, msg)
            cross_ns += time.perf_counter_ns() - t0
            bytes_in += len(msg)
            if sent is not None:
                sent[k] = t0
        caller.serialize_ns = cross_ns
        outstanding = items
        cancel_at = None
        b = self.backend
        while outstanding:
            if cancel_at is None and self.cancel.is_set():
                # Tell every interpreter (its running task stops at its next check), and take
                # back the tasks not started.
                cancel_at = time.monotonic()
                for ctl in self.ctl_qs:
                    b.put(ctl, b"%d" % self.batch)
                while b.get_nowait(self.tasks_q) is not None:
                    outstanding -= 1
                continue
            if cancel_at is not None and time.monotonic() - cancel_at > CANCEL_GRACE_S:
                break
            t0 = time.perf_counter_ns()
            msg = b.get_nowait(self.results_q)
            if msg is None:
                if self.errors or not any(t.is_alive() for t in self.threads):
                    break
                time.sleep(POLL_S)
                continue
            batch, k, ok, v, run_ns, wcross, worker, _cpu, io_ns, ser_ns = marshal.loads(msg)
            if batch != self.batch:
                continue  # a late result of a cancelled batch
            got_ns = time.perf_counter_ns() - t0
            cross_ns += got_ns + wcross
            if tr is not None:
                tr.add("task_async", sent[k], t0 + got_ns, k)
            caller.deserialize_ns += got_ns
            w = inside[worker]
            w["tasks"] += ok is not None
            w["io_wait_ns"] += io_ns
            w["io_waits"] += 1  # its task's two clock reads cost about one timed wait's
            w["deserialize_ns"] += wcross
            w["serialize_ns"] += ser_ns
            bytes_out += len(msg)
            outstanding -= 1
            got += 1
            if ok is None:
                continue  # cancelled: not done
            if not ok:
                res.failures.append((k, v))
                continue
            res.checksums[k] = v
            res.done[k] = 1
            if res.sampled(k):
                res.latency_ns.append(run_ns)
        self.batch += 1
        res.end_work()
        caller.close()
        begin = res.begin_ns()
        caller.clip(begin, begin + res.span[0])
        if self.errors:
            done = set(k for k in range(items) if res.done[k])
            res.failures.extend((k, "interpreter failed: " + self.errors[0])
                                for k in range(items) if k not in done)
        metrics = {
            "api": API,
            "interpreters": self.workers,
            "startup_ns": list(self.startup_ns),
            "crossing": {"items": got, "bytes_in": bytes_in, "bytes_out": bytes_out,
                         "ns": cross_ns},
        }
        if cancel_at is not None or self.errors:
            metrics["attribution_unavailable"] = ("cancelled" if cancel_at is not None else
                                                  "an interpreter failed")
        else:
            metrics["attribution"] = [caller.record] + outside.close(res.span[0], inside)
        return res.as_tuple(metrics, (0, [], 0, [], []))

    def teardown(self):
        for _ in self.threads:
            self.backend.put(self.tasks_q, b"")
        for t in self.threads:
            t.join(timeout=10)
        for interp in self.interps:
            try:
                self.backend.close(interp)
            except Exception:  # noqa: BLE001 - one still running: left to the process's exit
                pass
        self.interps = []
        super().teardown()
