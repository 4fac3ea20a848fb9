"""cpython.process_threads: a ProcessPoolExecutor of `workers` processes, each hosting a
ThreadPoolExecutor of threads_per_process threads (the GIL per process, threads inside it).

Dispatch: the parent cuts the batch into chunks of consecutive items and submits one chunk per
submit(); the process that takes a chunk runs its items on its own thread pool and returns their
results together. What crosses per chunk: the chunk's (item, task, nonce) tuples (or, for a user
function, its functools.partial calls) one way, and per item (item, ok, checksum or error, run
time ns, pid, thread ident) back. A chunk holds at least threads_per_process items (so a
process's threads all get work) and at most the batch's share of one process, and there are about
four chunks per process where the batch is large enough, so a process that finishes early takes
another chunk. Latency is the task's run time on its worker thread.

Each worker process builds its own IO peers and batch state, as cpython.process_pool does;
cpu.counter_race has no shared counter across processes and is left out. Child CPU is read from
/proc (process_pool._children_cpu) just outside the timed region."""

import concurrent.futures
import multiprocessing
import os
import pickle
import threading
import time
import warnings

from .. import _concbench as _c
from .. import user_workload as uw
from .. import workloads as wl
from .base import PyModel, Results, param_choice, param_integer, shutdown
from .process_pool import (START_METHODS, NotPicklable, PoolProbe, _children_cpu,
                           _NeverCancelled, _TaskClock, add_children_cpu, await_all)

CHUNKS_PER_PROCESS = 4

_w = None  # worker-process state, built by the initializer


class _Worker:
    def __init__(self, threads):
        self.state = wl.BatchState(_NeverCancelled(), _c.IoEnv())
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads)
        self.local = threading.local()
        self.index_lock = threading.Lock()
        self.next_index = 0
        barrier = threading.Barrier(threads)
        # Start every thread now (and give each its index: its own echo connection, and its
        # clock of the IO waits its steps time, for the attribution).
        self.tids = sorted(self.pool.map(
            lambda _: (self.index(), barrier.wait(), threading.get_native_id())[2],
            range(threads)))

    def index(self):
        w = getattr(self.local, "w", None)
        if w is None:
            with self.index_lock:
                w = self.local.w = self.next_index
                self.next_index += 1
            wl.clock.clock = _TaskClock()
        return w


def _init_worker(threads):
    global _w
    _w = _Worker(threads)


def _ping(_):
    time.sleep(0.01)  # so that every process of the pool takes some
    return os.getpid(), tuple(_w.tids)


def _one(entry):
    """(item, ok, checksum or error, run ns, pid, thread's native id, and for the attribution its
    CPU ns, IO wait ns and idle ns) of one item on a pool thread."""
    k, what, nonce = entry
    w = _w.index()
    clk = wl.clock.clock
    io0, idle0 = clk.io_wait_ns, clk.idle_ns
    c0 = time.thread_time_ns()
    t0 = time.perf_counter_ns()
    try:
        if nonce is None:
            result = what()  # a user function's call
            pickle.dumps(result)  # an unpicklable result fails its item, not the chunk
        else:
            result = wl.execute(what, w, _w.state, nonce)
        ok, run = True, time.perf_counter_ns() - t0
    except BaseException as e:  # noqa: BLE001 - a task's failure is a result
        ok, result, run = False, uw.one_line(e), 0
    cpu = time.thread_time_ns() - c0
    return (k, ok, result, run, os.getpid(), threading.get_native_id(), cpu,
            clk.io_wait_ns - io0, clk.idle_ns - idle0)


def _run_chunk(entries):
    """The chunk's items, and the CPU the process's main thread spent dispatching them."""
    c0 = time.thread_time_ns()
    _w.state.begin()
    return time.thread_time_ns() - c0, list(_w.pool.map(_one, entries))


def chunk_size(items, processes, threads):
    share = -(-items // processes)
    return max(1, min(share, max(threads, -(-items // (processes * CHUNKS_PER_PROCESS)))))


class ProcessThreads(PyModel):
    name = "cpython.process_threads"
    description = ("ProcessPoolExecutor of `workers` processes, each running chunks of tasks on "
                   "a ThreadPoolExecutor of threads_per_process threads")
    separate_processes = True
    latency_means = "the task's run time on its thread in its worker process"
    workloads = tuple(w for w in wl.SUPPORTED if w != "cpu.counter_race")
    params = (param_integer("threads_per_process", "threads in each worker process", 2, 1, 256),
              param_choice("start_method", "multiprocessing start method", "default",
                           START_METHODS))

    def setup(self, workers, params, seed, cancel, workload=None):
        super().setup(workers, params, seed, cancel, workload)
        if self.user is not None and self.user.pickle_error:
            raise NotPicklable(self.user.pickle_error)
        self.threads = int(params["threads_per_process"])
        method = params["start_method"]
        self.method = multiprocessing.get_start_method() if method == "default" else method
        if self.method == "forkserver":
            from multiprocessing import forkserver
            server = getattr(forkserver, "_forkserver", None)
            if server is not None and hasattr(server, "_stop"):
                server._stop()
        self.pool = None
        self.restarts = -1
        self._start_pool()

    def _start_pool(self):
        ctx = multiprocessing.get_context(self.method)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # see process_pool.py
            self.pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                initargs=(self.threads,))
            # Each process's pool threads (their native ids), for the attribution.
            self.pool_threads = dict(self.pool.map(_ping, range(self.workers * 4)))
        self.restarts += 1

    def run(self, tasks, rounds, nonce, stride):
        n = len(tasks)
        items = n * rounds
        res = Results(items, n, nonce, stride)
        if self.pool is None or getattr(self.pool, "_broken", False):
            self._start_pool()
        calls = self.user_calls(tasks)
        size = chunk_size(items, self.workers, self.threads)
        futures = []
        cpu0 = _children_cpu(self.pool)
        pids = sorted(getattr(self.pool, "_processes", None) or ())
        threads = []  # (worker, kind, pid, tid, note) for OutsideClock
        for p, pid in enumerate(pids):
            tids = self.pool_threads.get(pid, ())
            threads.append((-4 - p, "parent", pid, pid, self.MAIN_NOTE))
            threads += [(p * self.threads + t, "thread", pid, tid, self.THREAD_NOTE)
                        for t, tid in enumerate(tids)]
        probe = PoolProbe(self.pool, None, False, threads)
        # --trace: each chunk's round trip, an async span on the parent's track.
        tr = probe.caller.trace
        spans = []
        res.begin_work()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for start in range(0, items, size):
                if self.cancel.is_set():
                    break
                ks = range(start, min(items, start + size))
                if calls is not None:
                    entries = [(k, calls[k % n], None) for k in ks]
                else:
                    entries = [(k, tasks[k % n], res.nonce(k)) for k in ks]
                futures.append(self.pool.submit(_run_chunk, entries))
                if tr is not None:
                    span = [start, time.perf_counter_ns(), 0]
                    spans.append(span)
                    futures[-1].add_done_callback(
                        lambda _f, span=span: span.__setitem__(2, time.perf_counter_ns()))
        await_all(futures, self.cancel, self.pool)
        res.end_work()
        add_children_cpu(res, cpu0, self.pool)
        for start, t0, t1 in spans:
            if t1:
                tr.add("task_async", t0, t1, start)
        used = set()
        # What each thread timed itself: tasks, CPU, IO and idle waits, and each process's main
        # thread the CPU it spent dispatching.
        at = {(pid, tid): i for i, (_, _, pid, tid, _) in enumerate(probe.outside.threads)}
        inside = [{"tasks": 0, "cpu": 0, "io_wait_ns": 0, "idle_ns": 0, "io_waits": 0,
                   "off": 0} for _ in probe.outside.threads]
        for i, f in enumerate(futures):
            if not f.done() or f.cancelled():
                continue
            err = f.exception()
            if err is not None:
                for k in range(i * size, min(items, (i + 1) * size)):
                    res.failures.append((k, uw.one_line(err)))
                continue
            dispatch_cpu, results = f.result()
            for k, ok, value, run_ns, pid, tid, cpu, io, idle in results:
                used.add((pid, tid))
                i = at.get((pid, tid))
                if i is not None:
                    w = inside[i]
                    w["tasks"] += 1
                    w["io_wait_ns"] += io
                    w["idle_ns"] += idle
                    w["io_waits"] += 1  # its two CPU-clock reads cost about one timed wait's
                    w["off"] += max(0, run_ns - cpu - io - idle) if ok else 0
                if not ok:
                    res.failures.append((k, value))
                    continue
                res.checksums[k] = value
                res.done[k] = 1
                if res.sampled(k):
                    res.latency_ns.append(run_ns)
            main = at.get((results[0][4], results[0][4])) if results else None
            if main is not None:  # the chunk's process: its main thread dispatched it
                inside[main]["cpu"] += dispatch_cpu
        metrics = {"start_method": self.method, "processes": self.workers,
                   "threads_per_process": self.threads, "chunk_items": size,
                   "chunks": len(futures), "pool_restarts": self.restarts,
                   "processes_used": len({p for p, _ in used}), "threads_used": len(used),
                   # Taken by the bridge: the runner reads these processes' USS and PSS.
                   "worker_pids": sorted(getattr(self.pool, "_processes", None) or ())}
        if self.cancel.is_set() or len(at) < len(pids) * (1 + self.threads):
            metrics["attribution_unavailable"] = (
                "cancelled" if self.cancel.is_set() else
                "a worker process did not name its threads (it started after setup)")
        else:
            metrics["attribution"] = self._attribute(probe, res, inside)
        return res.as_tuple(self.finish(res, tasks, metrics), (0, [], 0, [], []))

    MAIN_NOTE = ("a worker process's main thread, read from outside (schedstat): its CPU outside "
                 "dispatching chunks to its threads is multiprocessing's loop, unpickling each "
                 "chunk and pickling its results (serialize, the two not told apart)")
    THREAD_NOTE = ("a worker process's pool thread, read from outside (schedstat): gil_wait is "
                   "its time off the CPU inside its tasks outside their IO waits, less its "
                   "run-queue delay (inferred: CPython does not time its GIL); idle is the rest "
                   "of its time off the CPU")

    @staticmethod
    def _attribute(probe, res, inside):
        for (_, kind, pid, tid, _), w in zip(probe.outside.threads, inside):
            off, cpu = w.pop("off"), w.pop("cpu")
            w["cpu_in_tasks"] = cpu
            w["gil_off"] = off
            if kind == "parent":
                w.clear()  # a dispatcher: its idle time is what OutsideClock leaves
                w["dispatch_cpu"] = cpu
        recs = probe.close(res, [dict((k, v) for k, v in w.items()
                                      if k in ("tasks", "io_wait_ns", "idle_ns", "io_waits"))
                                 for w in inside])
        for w, rec in zip(inside, recs[1:]):
            if "run_ns" not in rec:
                continue
            if rec["worker"] <= -4:  # a worker process's main thread
                rec["serialize_ns"] = max(0, rec["run_ns"] - w["dispatch_cpu"])
                rec["tasks_known"] = False
            elif "gil_off" in w:
                # OutsideClock left every other nanosecond off the CPU in idle.
                gil = min(rec["idle_ns"], max(0, w["gil_off"] - rec["runqueue_ns"]))
                rec["gil_wait_ns"] = gil
                rec["idle_ns"] -= gil
        return recs

    def teardown(self):
        if self.pool is not None:
            shutdown(self.pool)
            self.pool = None
        super().teardown()
