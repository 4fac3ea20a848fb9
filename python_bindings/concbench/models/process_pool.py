"""cpython.process_pool: concurrent.futures.ProcessPoolExecutor, one submit() per task: every task
is pickled to a worker process and its result pickled back (multiprocessing's world).

start_method picks fork, spawn or forkserver (default: this Python's default). Each worker builds
its own IO peers and batch state, so processes share nothing but the task; cpu.counter_race has no
shared counter to race on and is left out. The process-wide counters see the workers because they
were opened, with inheritance, before the pool started (a forkserver already running is stopped
first, so that the one the pool starts is counted too)."""

import concurrent.futures
import functools
import multiprocessing
import os
import time
import warnings

from .. import _concbench as _c
from .. import user_workload as uw
from .. import workloads as wl
from .base import OutsideClock, PyModel, Results, WorkerClock, param_choice, shutdown

START_METHODS = ("default", "fork", "spawn", "forkserver")

# Worker-process state, built by the initializer.
_worker_state = None


class NotPicklable(Exception):
    """The user's function, an input or a result cannot cross a process boundary."""


class _NeverCancelled:
    """Workers are stopped by the parent (the pool is shut down), never from inside a task."""

    @staticmethod
    def is_set():
        return False


# What each worker process times itself, for the attribution: one slot per process in shared
# memory (a RawArray made with the pool), taken at start, written after each task with a few
# stores (one writer per slot: no lock), read by the parent outside the timed region.
SLOT_PID, SLOT_TASKS, SLOT_TASK_CPU, SLOT_IO_WAIT, SLOT_IO_WAITS, SLOT_IDLE = range(6)
SLOT_FIELDS = 6
_slots = None
_slot_base = None


class _TaskClock:
    """The worker's wl.clock: the IO and idle waits its tasks' steps time (workloads.py)."""

    __slots__ = ("io_wait_ns", "idle_ns", "io_waits", "tasks")

    def __init__(self):
        self.io_wait_ns = self.idle_ns = self.io_waits = self.tasks = 0


def _init_worker(slots=None, slot_lock=None, slot_next=None):
    global _worker_state, _slots, _slot_base
    _worker_state = wl.BatchState(_NeverCancelled(), _c.IoEnv())
    if slots is None:
        return
    with slot_lock:
        slot = slot_next.value
        slot_next.value += 1
    if (slot + 1) * SLOT_FIELDS <= len(slots):
        _slots, _slot_base = slots, slot * SLOT_FIELDS
        slots[_slot_base + SLOT_PID] = os.getpid()
        wl.clock.clock = _TaskClock()


def make_slots(ctx, processes):
    """The shared slots of a pool of `processes` (room for twice as many: a worker the pool
    replaces takes a fresh one), with the lock and counter its initializer takes one with."""
    return (ctx.RawArray("q", 2 * processes * SLOT_FIELDS), ctx.Lock(), ctx.RawValue("i", 0))


def slots_of(slots):
    """{pid: the slot's fields} of the processes that took a slot."""
    out = {}
    for b in range(0, len(slots), SLOT_FIELDS):
        if slots[b + SLOT_PID]:
            out[slots[b + SLOT_PID]] = slots[b:b + SLOT_FIELDS]
    return out


def timed_task(fn, *args):
    """Runs one task in a worker process, with its CPU time and waits added to its slot."""
    if _slots is None:
        return fn(*args)
    c0 = time.thread_time_ns()
    try:
        return fn(*args)
    finally:
        cpu = time.thread_time_ns() - c0
        s, b, clk = _slots, _slot_base, wl.clock.clock
        s[b + SLOT_TASKS] += 1
        s[b + SLOT_TASK_CPU] += cpu
        s[b + SLOT_IO_WAIT] = clk.io_wait_ns
        s[b + SLOT_IO_WAITS] = clk.io_waits
        s[b + SLOT_IDLE] = clk.idle_ns


class PoolProbe:
    """The attribution of a ProcessPoolExecutor's batch: opened just before the timed region and
    closed just after it. Each worker process: its run and run-queue time from outside (it waits,
    single-threaded, in multiprocessing's call queue at both ends), its tasks' CPU time and IO
    waits from its slot; its CPU outside its tasks is multiprocessing's loop (unpickling each
    call, pickling each result, the pipe's system calls), reported as serialize, the two not told
    apart; its time off the CPU outside its IO waits is idle, waiting for a call. The parent: the
    caller's thread (submitting, then waiting), the executor's manager thread (moving calls to the
    queue, reading and unpickling results, completing futures) and the call queue's feeder
    thread (pickling calls and writing them to the pipe: its CPU is serialize)."""

    MANAGER_NOTE = ("the executor's manager thread: its CPU moves calls to the call queue, reads "
                    "and unpickles results and completes futures (the three not told apart)")
    FEEDER_NOTE = ("the call queue's feeder thread: its CPU pickles each call and writes it to "
                   "the pipe (serialize)")
    WORKER_NOTE = ("serialize: the worker's CPU outside its tasks, multiprocessing's loop "
                   "unpickling each call and pickling each result (not told apart, so "
                   "deserialize is 0); idle: its time off the CPU outside its tasks' waits, from "
                   "schedstat read from outside")

    def __init__(self, pool, slots, user_calls, threads=None):
        """threads: the worker threads to read, as OutsideClock takes them; by default each
        worker process's main thread, with its slot."""
        self.slots = slots
        self.user_calls = user_calls
        self.before = slots_of(slots) if slots is not None else {}
        if threads is None:
            pids = sorted(getattr(pool, "_processes", None) or ())
            threads = [(i, "process", pid, None, self.WORKER_NOTE) for i, pid in enumerate(pids)]
        threads = list(threads)
        me = os.getpid()
        manager = (getattr(pool, "_executor_manager_thread", None)
                   or getattr(pool, "_queue_management_thread", None))  # 3.8
        feeder = getattr(getattr(pool, "_call_queue", None), "_thread", None)
        for worker, t, note in ((-2, manager, self.MANAGER_NOTE), (-3, feeder, self.FEEDER_NOTE)):
            tid = getattr(t, "native_id", None)
            if tid is not None:
                threads.append((worker, "parent", me, tid, note))
        self.outside = OutsideClock(threads)
        self.caller = WorkerClock(-1, kind="parent")

    def close(self, res, inside=None):
        """The records, after end_work(). inside: per thread, what it timed itself (OutsideClock)."""
        self.caller.close()
        begin = res.begin_ns()
        wall = res.span[0]
        self.caller.clip(begin, begin + wall)
        after = slots_of(self.slots) if self.slots is not None else {}
        recs = self.outside.close(wall, inside)
        for (_, kind, pid, tid, _), rec in zip(self.outside.threads, recs):
            if rec["worker"] == -3:
                rec["serialize_ns"] = rec.get("run_ns", 0)
            if tid is not None or self.slots is None:
                continue
            a, b = after.get(pid), self.before.get(pid)
            if a is None or self.user_calls:
                rec["tasks_known"] = False  # a user function runs as submitted, unwrapped
                rec["note"] = ("its CPU includes multiprocessing's pickling (a user function "
                               "is submitted as it is, with no clock around it)")
                continue
            b = b or [pid, 0, 0, 0, 0, 0]
            d = [x - y for x, y in zip(a, b)]
            rec["tasks"] = d[SLOT_TASKS]
            # Each task's two CPU-clock reads cost about one timed wait's.
            rec["io_waits"] = d[SLOT_IO_WAITS] + d[SLOT_TASKS]
            if "run_ns" in rec:
                off = rec["idle_ns"]  # OutsideClock put all its time off the CPU there
                rec["io_wait_ns"] = min(off, d[SLOT_IO_WAIT])
                rec["idle_ns"] = off - rec["io_wait_ns"]
                rec["serialize_ns"] = max(0, rec["run_ns"] - d[SLOT_TASK_CPU])
        return [self.caller.record] + recs


_TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else None


def _children_cpu(pool):
    """(user ns, sys ns, pids) of the pool's worker processes, from /proc/<pid>/stat (clock-tick
    resolution, 10 ms at 100 Hz per process and read: a batch of 0.2 s or more keeps that under
    a few per cent); None where /proc is not there. Read just outside the timed region."""
    procs = getattr(pool, "_processes", None)
    if not procs or _TICK_NS is None:
        return None
    user = system = 0
    pids = tuple(sorted(procs))
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            return None  # a worker that died: no figure rather than a wrong one
        user += int(fields[11])
        system += int(fields[12])
    return int(user * _TICK_NS), int(system * _TICK_NS), pids


def await_all(futures, cancel, pool):
    """Waits for every future at once, waking every WAIT_SLICE_S to notice the runner's cancel,
    which shuts the pool down and drops what is still queued."""
    pending = futures
    while pending:
        _, pending = concurrent.futures.wait(pending, timeout=wl.WAIT_SLICE_S)
        if cancel.is_set():
            shutdown(pool, wait=False)
            return


def add_children_cpu(res, cpu0, pool):
    """Appends the workers' CPU since cpu0 (_children_cpu before begin_work) to the span, when
    the same workers were there at both ends; otherwise the span stays this process's only."""
    cpu1 = _children_cpu(pool)
    if cpu0 is not None and cpu1 is not None and cpu0[2] == cpu1[2]:
        res.span = res.span + (max(0, cpu1[0] - cpu0[0]), max(0, cpu1[1] - cpu0[1]))


def _stamp(finished, k, _future):
    finished[k] = time.perf_counter_ns()


def _ping(_):
    return os.getpid()


def _run_task(task, nonce):
    st = _worker_state
    st.begin()
    return timed_task(wl.execute, task, 0, st, nonce)


class ProcessPool(PyModel):
    name = "cpython.process_pool"
    description = "concurrent.futures.ProcessPoolExecutor, pickle, one submit() per task"
    separate_processes = True
    latency_means = ("round trip: from submit() to the result in the parent's hands, pickling "
                     "and queueing behind other submitted tasks included")
    workloads = tuple(w for w in wl.SUPPORTED if w != "cpu.counter_race")
    params = (param_choice("start_method", "multiprocessing start method", "default",
                           START_METHODS),)

    def setup(self, workers, params, seed, cancel, workload=None):
        super().setup(workers, params, seed, cancel, workload)
        if self.user is not None and self.user.pickle_error:
            # What multiprocessing needs custom code for: the cell fails with the reason, and
            # every other model still runs.
            raise NotPicklable(self.user.pickle_error)
        method = params["start_method"]
        if method == "default":
            method = multiprocessing.get_start_method()
        self.method = method
        if method == "forkserver":
            from multiprocessing import forkserver
            server = getattr(forkserver, "_forkserver", None)
            if server is not None and hasattr(server, "_stop"):
                server._stop()
        self._start_pool()

    def _start_pool(self):
        ctx = multiprocessing.get_context(self.method)
        with warnings.catch_warnings():
            # 3.12+ warns that fork() in a multi-threaded process may deadlock the child: this
            # process has the runner's and the echo server's threads. The children only run Python
            # and build their own IO peers, which is what the warning's advice amounts to.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.slots = make_slots(ctx, self.workers)
            self.pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                initargs=self.slots)
            # Start every worker now, outside the measured batches.
            self.pids = set(self.pool.map(_ping, range(self.workers * 4)))
        self.restarts = getattr(self, "restarts", -1) + 1

    def run(self, tasks, rounds, nonce, stride):
        n = len(tasks)
        items = n * rounds
        res = Results(items, n, nonce, stride)
        if self.pool is None or getattr(self.pool, "_broken", False):
            self._start_pool()  # a worker died in an earlier batch
        submitted = [0] * items
        finished = [0] * items
        futures = []
        calls = self.user_calls(tasks)
        cpu0 = _children_cpu(self.pool)
        probe = PoolProbe(self.pool, self.slots[0], calls is not None)
        # --trace: every task's round trip, as an async span on the parent's track (they
        # overlap); only the traced batch stamps every item.
        tr = probe.caller.trace
        res.begin_work()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for k in range(items):
                if self.cancel.is_set():
                    break
                stamped = tr is not None or res.sampled(k)
                if stamped:
                    submitted[k] = time.perf_counter_ns()
                if calls is not None:
                    # What a user writes: submit(fn, x). The partial pickles as fn and x.
                    f = self.pool.submit(calls[k % n])
                else:
                    f = self.pool.submit(_run_task, tasks[k % n], res.nonce(k))
                if stamped:
                    # Latency is from submit() to the result in the parent's hands (the pool's
                    # result thread runs the callback as it sets the result): the round trip,
                    # pickling both ways included. Only sampled items carry a callback, and
                    # waiting is for all at once: a wait(FIRST_COMPLETED) per completion would
                    # cost the parent O(pending) each time, O(n^2) a batch, and that would be
                    # this harness's cost, not multiprocessing's.
                    f.add_done_callback(functools.partial(_stamp, finished, k))
                futures.append(f)
        await_all(futures, self.cancel, self.pool)
        res.end_work()
        attribution = probe.close(res)
        add_children_cpu(res, cpu0, self.pool)
        if tr is not None:
            for k in range(len(futures)):
                if finished[k]:
                    tr.add("task_async", submitted[k], finished[k], k)
        for k, f in enumerate(futures):
            if not f.done() or f.cancelled():
                continue
            err = f.exception()
            if err is not None:
                res.failures.append((k, uw.one_line(err)))
                continue
            res.checksums[k] = f.result()
            res.done[k] = 1
            if res.sampled(k):
                res.latency_ns.append(max(0, finished[k] - submitted[k]))
        metrics = {"start_method": self.method, "processes": self.workers,
                   "pool_restarts": self.restarts,
                   # Taken by the bridge: the runner reads these processes' USS and PSS.
                   "worker_pids": sorted(getattr(self.pool, "_processes", None) or ())}
        if self.cancel.is_set():
            metrics["attribution_unavailable"] = "cancelled: the pool was shut down mid-batch"
        else:
            metrics["attribution"] = attribution
        return res.as_tuple(self.finish(res, tasks, metrics), (0, [], 0, [], []))

    def teardown(self):
        if self.pool is not None:
            shutdown(self.pool)
            self.pool = None
        super().teardown()
