"""What every cpython.* model shares: the contract with the C++ runner and a batch's bookkeeping.

The runner (C++) calls, on its cell thread with the GIL taken for the call:
  setup(workers, params, seed, cancel)  once; `cancel` is a CancelFlag the runner sets on timeout
  run(tasks, rounds) -> tuple           any number of times; item k is tasks[k % len(tasks)]
  teardown()                            once
run() returns (checksums, done, latency_ns, failures, model_metrics_json, shared_counter, rtts,
companions): per-item checksums and done flags, per completed item latencies, (item, reason)
pairs for failures, and what the batch observed (workloads.BatchState.observations). Checksums are
verified by the runner against the workload's predictions, which the model never sees.
"""

import json
import time

from .. import _concbench as _c
from .. import workloads as wl


def param_integer(name, help, default, lo, hi):
    return {"name": name, "kind": "integer", "help": help, "default": int(default), "min": lo,
            "max": hi}


def param_choice(name, help, default, choices):
    return {"name": name, "kind": "choice", "help": help, "default": default,
            "choices": list(choices)}


class Results:
    """Per-item outcome of one batch, filled by whichever thread ran the item."""

    def __init__(self, items):
        self.checksums = [0] * items
        self.done = bytearray(items)
        self.latency_ns = []
        self.failures = []

    def record(self, item, fn):
        """Runs fn() -> checksum for work item `item`, timing it; a failure is recorded, and a
        cancellation leaves the item not done."""
        t0 = time.perf_counter_ns()
        try:
            checksum = fn()
        except wl.Cancelled:
            return
        except BaseException as e:  # noqa: BLE001 - a task's failure is a result, not a crash
            self.failures.append((item, "%s: %s" % (type(e).__name__, e)))
            return
        self.latency_ns.append(time.perf_counter_ns() - t0)
        self.checksums[item] = checksum
        self.done[item] = 1

    def as_tuple(self, metrics, observations):
        counter, rtts, companions = observations
        return (self.checksums, bytes(self.done), self.latency_ns, self.failures,
                json.dumps(metrics), counter & ((1 << 64) - 1), rtts, companions)


class PyModel:
    name = ""
    description = ""
    single_worker = False
    separate_processes = False
    params = ()
    workloads = wl.SUPPORTED

    def setup(self, workers, params, seed, cancel):
        self.workers = workers
        self.params = params
        self.seed = seed
        self.cancel = cancel
        self.env = _c.IoEnv()
        self.state = wl.BatchState(cancel, self.env)

    def run(self, tasks, rounds):
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
