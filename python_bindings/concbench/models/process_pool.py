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
from .base import PyModel, Results, param_choice, shutdown

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


def _init_worker():
    global _worker_state
    _worker_state = wl.BatchState(_NeverCancelled(), _c.IoEnv())


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
    return wl.execute(task, 0, st, nonce)


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
            self.pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=ctx, initializer=_init_worker)
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
        res.begin_work()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for k in range(items):
                if self.cancel.is_set():
                    break
                if res.sampled(k):
                    submitted[k] = time.perf_counter_ns()
                if calls is not None:
                    # What a user writes: submit(fn, x). The partial pickles as fn and x.
                    f = self.pool.submit(calls[k % n])
                else:
                    f = self.pool.submit(_run_task, tasks[k % n], res.nonce(k))
                if res.sampled(k):
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
        add_children_cpu(res, cpu0, self.pool)
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
        return res.as_tuple(self.finish(res, tasks, metrics), (0, [], 0, []))

    def teardown(self):
        if self.pool is not None:
            shutdown(self.pool)
            self.pool = None
        super().teardown()
