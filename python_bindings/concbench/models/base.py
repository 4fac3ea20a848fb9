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


class WorkerClock:
    """One worker thread's attribution (harness attribution.hpp), opened and closed on the thread
    itself around its work in the batch: its CPU time (time.thread_time_ns), run-queue delay
    (schedstat), the time off the CPU in IO and idle waits (workloads.py times them through
    workloads.clock), and tasks. CPython says nothing of its GIL, so a thread's remaining time
    off the CPU is inferred to be its GIL wait (or a lock's: the claim lock of cpython.threading);
    for an event loop's thread (kind "loop") it is its IO wait, as a loop blocks only in its
    selector. The record goes to the runner in model_metrics["attribution"]."""

    def __init__(self, worker, kind="thread"):
        self.worker, self.kind = worker, kind
        self.io_wait_ns = self.idle_ns = self.io_waits = self.tasks = 0
        self.s0 = _schedstat()
        self.c0 = time.thread_time_ns()
        self.t0 = time.monotonic_ns()
        wl.clock.clock = self
        self.record = None

    def close(self):
        t1 = time.monotonic_ns()
        c1 = time.thread_time_ns()
        s1 = _schedstat()
        wl.clock.clock = None
        active = t1 - self.t0
        rec = {"worker": self.worker, "kind": self.kind, "active_ns": active,
               "io_wait_ns": self.io_wait_ns, "idle_ns": self.idle_ns, "io_waits": self.io_waits,
               "tasks": self.tasks, "wait_timing_cost_ns": _WAIT_COST_NS}
        if self.s0 is None or s1 is None:
            rec["sched_unavailable"] = "no /proc/thread-self/schedstat"
        else:
            run, rq = c1 - self.c0, s1[0] - self.s0[0]
            rec.update(run_ns=run, runqueue_ns=rq, timeslices=s1[1] - self.s0[1])
            off = max(0, active - run - rq - self.io_wait_ns - self.idle_ns)
            if self.kind == "loop":
                rec["io_wait_ns"] += off
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

    def nonce(self, item):
        """The nonce work item `item` must be executed with (sealed into its checksum)."""
        return _c.round_nonce(self.batch_nonce, item // self.n)

    def sampled(self, item):
        return item % self.stride == 0

    def record(self, item, fn):
        """Runs fn(nonce) -> checksum for work item `item`, timing it when it is sampled; a
        failure is recorded, and a cancellation leaves the item not done."""
        sampled = item % self.stride == 0
        t0 = time.perf_counter_ns() if sampled else 0
        try:
            checksum = fn(_c.round_nonce(self.batch_nonce, item // self.n))
        except wl.Cancelled:
            return
        except BaseException as e:  # noqa: BLE001 - a task's failure is a result, not a crash
            self.failures.append((item, "%s: %s" % (type(e).__name__, e)))
            return
        if sampled:
            self.latency_ns.append(time.perf_counter_ns() - t0)
        self.checksums[item] = checksum
        self.done[item] = 1

    def record_call(self, item, call):
        """record() for a user function's call: call() -> the result, which verify() compares
        with the reference after the batch (user_workload.py)."""
        sampled = item % self.stride == 0
        t0 = time.perf_counter_ns() if sampled else 0
        try:
            result = call()
        except BaseException as e:  # noqa: BLE001 - the user's exception is a result
            self.failures.append((item, uw.one_line(e)))
            return
        if sampled:
            self.latency_ns.append(time.perf_counter_ns() - t0)
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
        counter, rtts, companions, spins = observations
        return (self.checksums, bytes(self.done), self.latency_ns, self.failures,
                json.dumps(metrics), counter & ((1 << 64) - 1), rtts, companions, self.span,
                spins)


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

    def teardown(self):
        wl.forget_sockets(self.env)
        self.env = None


def shutdown(executor, wait=True):
    """Shuts a concurrent.futures executor down, dropping queued work (3.9+ can say so)."""
    try:
        executor.shutdown(wait=wait, cancel_futures=True)
    except TypeError:  # Python 3.8
        executor.shutdown(wait=wait)
