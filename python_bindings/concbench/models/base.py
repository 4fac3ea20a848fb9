"""What every cpython.* model shares: the contract with the C++ runner and a batch's bookkeeping.

The runner (C++) calls, on its cell thread with the GIL taken for the call:
  setup(workers, params, seed, cancel)  once; `cancel` is a CancelFlag the runner sets on timeout
  run(tasks, rounds, nonce, stride)     any number of times; item k is tasks[k % len(tasks)],
                                        executed with the nonce _c.round_nonce(nonce, k // n)
  teardown()                            once
run() returns (checksums, done, latency_ns, failures, model_metrics_json, shared_counter, rtts,
companions, span, spins): per-item checksums and done flags, latencies of the items sampled one in
`stride`, (item, reason) pairs for failures, what the batch observed
(workloads.BatchState.observations), and the model's own timed region (begin_work to end_work) as
(wall_ns, cpu_user_ns, cpu_sys_ns[, child_user_ns, child_sys_ns]), or None; spins holds (seed,
units, state) per spinner. A process-based model lists its live workers' pids under
model_metrics["worker_pids"]; the bridge takes them out, and the runner reads their memory. Checksums are verified by the runner against the
workload's predictions, which the model never sees.
"""

import json
import resource
import threading
import time

from .. import _concbench as _c
from .. import user_workload as uw
from .. import workloads as wl


def _schedstat():
    """(run-queue ns, timeslices) of the calling thread, or None (no schedstat here)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            _run, rq, slices = f.read().split()
        return int(rq), int(slices)
    except (OSError, ValueError):
        return None


def _wait_timing_cost_ns():
    """What timing one wait costs in Python here (two clock and two CPU-clock reads and the
    arithmetic), the median of a few trials of 500."""
    trials = []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(500):
            a, b = time.monotonic_ns(), time.thread_time_ns()
            max(0, (time.monotonic_ns() - a) - (time.thread_time_ns() - b))
        trials.append((time.perf_counter_ns() - t0) / 500)
    return sorted(trials)[2]


# Measured once, at import: never inside a batch.
_WAIT_COST_NS = _wait_timing_cost_ns()


def task_schedstat(pid, tid=None):
    """(run ns, run-queue ns, timeslices) of thread `tid` of process `pid` (its main thread when
    tid is None), read from outside it; None where it cannot be read (gone, no schedstat). The
    run time lags a thread on a CPU by up to a tick, so it is read of threads that are waiting."""
    try:
        with open("/proc/%d/task/%d/schedstat" % (pid, pid if tid is None else tid), "rb") as f:
            run, rq, slices = f.read().split()
        return int(run), int(rq), int(slices)
    except (OSError, ValueError):
        return None


class OutsideClock:
    """Threads that keep no clock of their own (a pool's worker processes, multiprocessing's
    feeder and manager threads, a subinterpreter's thread), read from outside through their
    schedstat just before the timed region and just after it, while they wait: their run and
    run-queue time over the batch. What each did off the CPU is said by its model: `off` names
    the part (idle for a thread that waits for work, io_wait for a loop), and the model adds the
    waits and the serializing it timed inside the thread."""

    def __init__(self, threads):
        # threads: (worker, kind, pid, tid or None, note)
        self.threads = list(threads)
        self.s0 = [task_schedstat(pid, tid) for _, _, pid, tid, _ in self.threads]

    def close(self, active_ns, inside=None, off="idle"):
        """One record per thread, in WorkerClock's form. inside[i], where given, is a dict of
        what thread i timed itself (io_wait_ns, io_waits, tasks, serialize_ns, deserialize_ns,
        gil_wait_ns); its time off the CPU outside those goes to `off`."""
        out = []
        for i, ((worker, kind, pid, tid, note), s0) in enumerate(zip(self.threads, self.s0)):
            s1 = task_schedstat(pid, tid)
            rec = {"worker": worker, "kind": kind, "active_ns": active_ns, "io_wait_ns": 0,
                   "idle_ns": 0, "io_waits": 0, "tasks": 0, "wait_timing_cost_ns": _WAIT_COST_NS}
            if inside and inside[i]:
                rec.update(inside[i])
            if note:
                rec["note"] = note
            if s0 is None or s1 is None:
                rec["sched_unavailable"] = ("no schedstat for %s %d%s" % (
                    "process" if tid is None else "thread", pid if tid is None else tid,
                    "" if s1 is not None else " (it exited or cannot be read)"))
            else:
                run, rq = max(0, s1[0] - s0[0]), max(0, s1[1] - s0[1])
                rec.update(run_ns=run, runqueue_ns=rq, timeslices=max(0, s1[2] - s0[2]))
                waited = sum(rec.get(k, 0) for k in ("io_wait_ns", "idle_ns", "gil_wait_ns"))
                # The serializing is on the CPU: inside run, not beside it.
                rec[off + "_ns"] = rec.get(off + "_ns", 0) + max(0, active_ns - run - rq - waited)
            out.append(rec)
        return out


class TraceTrack:
    """One worker's timeline in the traced batch (bench_runner run --trace): (kind, t0, t1, item)
    events in ns of time.perf_counter_ns or time.monotonic_ns (both CLOCK_MONOTONIC on Linux,
    the runner's clock), bounded by the cell's
    share of the cap; past it, events are counted, not kept. kind is one of the runner's
    (trace_buffer.hpp): task, task_async (a task on an event loop, overlapping others), io_wait,
    idle, in_flight, serialize, deserialize."""

    __slots__ = ("events", "cap", "dropped")

    def __init__(self, cap):
        self.events, self.cap, self.dropped = [], cap, 0

    def add(self, kind, t0, t1, arg=0):
        if len(self.events) < self.cap:
            self.events.append((kind, t0, t1, arg))
        else:
            self.dropped += 1


class Tracer:
    """The traced batch's tracks, per worker (-1: the dispatcher, the runner's "own thread")."""

    def __init__(self, cap):
        self.cap = cap
        self.tracks = {}
        self.lock = threading.Lock()

    def track(self, worker):
        with self.lock:
            t = self.tracks.get(worker)
            if t is None:
                t = self.tracks[worker] = TraceTrack(self.cap)
            return t

    def export(self):
        return [(w, t.events, t.dropped) for w, t in sorted(self.tracks.items())]


# The traced batch's Tracer, between PyModel.begin_trace() and end_trace() (the bridge calls
# both around run(), from the cell's thread: one batch at a time); None when not tracing.
_TRACER = None


def tracer():
    return _TRACER


def track_of_thread():
    """The calling thread's track: its WorkerClock's, when tracing; None otherwise."""
    clk = getattr(wl.clock, "clock", None)
    return getattr(clk, "trace", None)


class WorkerClock:
    """One worker thread's attribution (harness attribution.hpp), opened and closed on the thread
    itself around its work in the batch: its CPU time (time.thread_time_ns), run-queue delay
    (schedstat), the time off the CPU in IO and idle waits (workloads.py times them through
    workloads.clock), and tasks. CPython says nothing of its GIL, so a thread's remaining time
    off the CPU is inferred to be its GIL wait (or a lock's: the claim lock of cpython.threading);
    for an event loop's thread (kind "loop") it is its IO wait, as a loop blocks only in its
    selector; for a dispatcher (kind "parent": the thread that submits and collects) it is idle,
    its wait for the workers. Its serialize_ns and deserialize_ns are what the model timed on it
    (CPU time, inside its run time). The record goes to the runner in
    model_metrics["attribution"]."""

    def __init__(self, worker, kind="thread", attach=True):
        # attach=False: the thread's steps do not time their waits into it (greenlets of one
        # thread would time overlapping waits).
        self.worker, self.kind, self.attach = worker, kind, attach
        self.io_wait_ns = self.idle_ns = self.io_waits = self.tasks = 0
        self.serialize_ns = self.deserialize_ns = 0
        self.trace = _TRACER.track(worker) if _TRACER is not None else None
        self.s0 = _schedstat()
        self.c0 = time.thread_time_ns()
        self.t0 = time.monotonic_ns()
        if attach:
            wl.clock.clock = self
        self.record = None

    def close(self):
        t1 = time.monotonic_ns()
        c1 = time.thread_time_ns()
        s1 = _schedstat()
        if self.attach:
            wl.clock.clock = None
        active = t1 - self.t0
        rec = {"worker": self.worker, "kind": self.kind, "active_ns": active,
               "io_wait_ns": self.io_wait_ns, "idle_ns": self.idle_ns, "io_waits": self.io_waits,
               "tasks": self.tasks, "wait_timing_cost_ns": _WAIT_COST_NS,
               "serialize_ns": self.serialize_ns, "deserialize_ns": self.deserialize_ns}
        if self.s0 is None or s1 is None:
            rec["sched_unavailable"] = "no /proc/thread-self/schedstat"
        else:
            run, rq = c1 - self.c0, s1[0] - self.s0[0]
            rec.update(run_ns=run, runqueue_ns=rq, timeslices=s1[1] - self.s0[1])
            off = max(0, active - run - rq - self.io_wait_ns - self.idle_ns)
            if self.kind == "loop":
                rec["io_wait_ns"] += off
            elif self.kind == "parent":
                rec["idle_ns"] += off
                rec["note"] = ("a dispatcher's time off the CPU is idle: its wait for the "
                               "workers (in CPython its waits for the GIL too, not told apart)")
            else:
                rec["gil_wait_ns"] = off
                rec["note"] = ("gil_wait inferred: the thread's time off the CPU outside its IO "
                               "and idle waits (CPython does not time its GIL)")
        self.t1 = t1
        self.record = rec
        return rec

    def clip(self, lo, hi):
        """For a clock opened before the timed region [lo, hi] and closed after it: the time
        outside it, spent waiting (a barrier, the executor's queue), leaves its active and idle
        time alike."""
        rec = self.record
        if rec is None:
            return
        over = max(0, lo - self.t0) + max(0, self.t1 - hi)
        rec["active_ns"] = max(0, rec["active_ns"] - over)
        rec["idle_ns"] = max(0, rec["idle_ns"] - over)


class PoolClocks:
    """A WorkerClock on each thread of a concurrent.futures.ThreadPoolExecutor, opened and closed
    on the thread itself by one job per thread (a barrier keeps them on distinct threads), just
    outside the timed region. A thread's time between items, waiting on the executor's queue, is
    its idle time: timed per item by wrap() (two clock and two CPU-clock reads, counted in the
    cell's instrument cost as an IO wait's)."""

    def __init__(self, executor, threads, index):
        # index(): the calling pool thread's worker number
        self.executor, self.threads, self.index = executor, threads, index
        self.clocks = []
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(threads)

    def _open(self, _):
        clk = WorkerClock(self.index())
        clk.gap_from = (time.monotonic_ns(), time.thread_time_ns())
        with self.lock:
            self.clocks.append(clk)
        self.barrier.wait()

    def _close(self, _):
        clk = wl.clock.clock
        _idle_gap(clk)  # after its last item: waiting for work that did not come
        self.barrier.wait()
        if clk is not None:
            clk.close()

    def open(self):
        self.clocks = []
        list(self.executor.map(self._open, range(self.threads)))

    @staticmethod
    def wrap(fn, span=False):
        """fn, with the time since the thread's previous item counted as idle, and the item;
        span: with --trace, the call is a task span on the thread's track (fn does not record
        one itself, as Results.record does)."""
        def item(*args):
            clk = wl.clock.clock
            _idle_gap(clk)
            t0 = time.perf_counter_ns() if span and clk is not None and clk.trace else 0
            try:
                return fn(*args)
            finally:
                if clk is not None:
                    clk.gap_from = (time.monotonic_ns(), time.thread_time_ns())
                    clk.tasks += 1
                    if t0:
                        clk.trace.add("task", t0, time.perf_counter_ns())
        return item

    def close(self, begin, wall):
        """The records, after the timed region [begin, begin + wall]."""
        list(self.executor.map(self._close, range(self.threads)))
        for clk in self.clocks:  # opened before the timed region and closed after it
            clk.clip(begin, begin + wall)
        return [c.record for c in self.clocks if c.record]


def _idle_gap(clk):
    if clk is not None:
        t0, c0 = clk.gap_from
        t1 = time.monotonic_ns()
        clk.idle_ns += max(0, (t1 - t0) - (time.thread_time_ns() - c0))
        clk.io_waits += 1  # two clock and two CPU-clock reads, as an IO wait costs
        if clk.trace is not None:
            clk.trace.add("idle", t0, t1)


def param_integer(name, help, default, lo, hi):
    return {"name": name, "kind": "integer", "help": help, "default": int(default), "min": lo,
            "max": hi}


def param_choice(name, help, default, choices):
    return {"name": name, "kind": "choice", "help": help, "default": default,
            "choices": list(choices)}


class Results:
    """Per-item outcome of one batch, filled by whichever thread ran the item."""

    def __init__(self, items, n=1, nonce=0, stride=1):
        self.checksums = [0] * items
        self.done = bytearray(items)
        self.latency_ns = []
        self.failures = []
        self.n = n
        self.batch_nonce = nonce
        self.stride = stride
        self.span = None
        self._begin = None
        self.tracer = _TRACER

    def nonce(self, item):
        """The nonce work item `item` must be executed with (sealed into its checksum)."""
        return _c.round_nonce(self.batch_nonce, item // self.n)

    def sampled(self, item):
        return item % self.stride == 0

    def record(self, item, fn):
        """Runs fn(nonce) -> checksum for work item `item`, timing it when it is sampled; a
        failure is recorded, and a cancellation leaves the item not done."""
        sampled = item % self.stride == 0
        tr = track_of_thread() if self.tracer is not None else None
        t0 = time.perf_counter_ns() if sampled or tr is not None else 0
        try:
            checksum = fn(_c.round_nonce(self.batch_nonce, item // self.n))
        except wl.Cancelled:
            return
        except BaseException as e:  # noqa: BLE001 - a task's failure is a result, not a crash
            self.failures.append((item, "%s: %s" % (type(e).__name__, e)))
            return
        if sampled or tr is not None:
            t1 = time.perf_counter_ns()
            if sampled:
                self.latency_ns.append(t1 - t0)
            if tr is not None:
                tr.add("task", t0, t1, item)
        self.checksums[item] = checksum
        self.done[item] = 1

    def record_call(self, item, call):
        """record() for a user function's call: call() -> the result, which verify() compares
        with the reference after the batch (user_workload.py)."""
        sampled = item % self.stride == 0
        tr = track_of_thread() if self.tracer is not None else None
        t0 = time.perf_counter_ns() if sampled or tr is not None else 0
        try:
            result = call()
        except BaseException as e:  # noqa: BLE001 - the user's exception is a result
            self.failures.append((item, uw.one_line(e)))
            return
        if sampled or tr is not None:
            t1 = time.perf_counter_ns()
            if sampled:
                self.latency_ns.append(t1 - t0)
            if tr is not None:
                tr.add("task", t0, t1, item)
        self.checksums[item] = result
        self.done[item] = 1

    def begin_work(self):
        """Opens the timed region: right before the first item is handed out."""
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self._begin = (time.monotonic_ns(), ru.ru_utime, ru.ru_stime)

    def begin_ns(self):
        """When the timed region began (time.monotonic_ns), or None before begin_work()."""
        return self._begin[0] if self._begin else None

    def end_work(self):
        """Closes it: right after the last result is in hand."""
        t1 = time.monotonic_ns()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        t0, u0, s0 = self._begin
        self.span = (t1 - t0, int((ru.ru_utime - u0) * 1e9), int((ru.ru_stime - s0) * 1e9))

    def as_tuple(self, metrics, observations):
        counter, rtts, companions, spins, one_way = observations
        return (self.checksums, bytes(self.done), self.latency_ns, self.failures,
                json.dumps(metrics), counter & ((1 << 64) - 1), rtts, companions, self.span,
                spins, one_way)


class PyModel:
    name = ""
    description = ""
    single_worker = False
    separate_processes = False
    params = ()
    workloads = wl.SUPPORTED
    latency_means = "the task's run time on its thread, time waiting for the GIL included"

    python_callables = True  # every cpython.* model can run concbench.bench's functions

    def setup(self, workers, params, seed, cancel, workload=None):
        self.workers = workers
        self.params = params
        self.seed = seed
        self.cancel = cancel
        self.env = _c.IoEnv()
        self.state = wl.BatchState(cancel, self.env)
        # A user function (concbench.bench) when the cell's workload is one; None otherwise.
        self.user = uw.find(workload) if workload else None
        self._calls_for = None

    def user_calls(self, tasks):
        """Per task, the call of the user's function on its input (built once per task list,
        outside the timed region); None for the suite's own workloads."""
        if self.user is None:
            return None
        if self._calls_for is not tasks:
            self._calls = self.user.calls(tasks)
            self._calls_for = tasks
        return self._calls

    def finish(self, res, tasks, metrics):
        """After end_work(): a user function's results are compared with the reference and
        sealed (user_workload.verify), and its pickled sizes recorded beside the cell."""
        if self.user is not None:
            self.user.verify(res, tasks, self.name)
            metrics.update(self.user.metrics())
        return metrics

    def run(self, tasks, rounds, nonce, stride):
        raise NotImplementedError

    def begin_trace(self, cap):
        """Before the traced batch's run(): its events go to a Tracer of `cap` per track."""
        global _TRACER
        _TRACER = Tracer(cap)

    def end_trace(self):
        """After it: [(worker, [(kind, t0, t1, item)], dropped)], and tracing stops."""
        global _TRACER
        t, _TRACER = _TRACER, None
        return t.export() if t is not None else []

    def teardown(self):
        wl.forget_sockets(self.env)
        self.env = None


def shutdown(executor, wait=True):
    """Shuts a concurrent.futures executor down, dropping queued work (3.9+ can say so)."""
    try:
        executor.shutdown(wait=wait, cancel_futures=True)
    except TypeError:  # Python 3.8
        executor.shutdown(wait=wait)
