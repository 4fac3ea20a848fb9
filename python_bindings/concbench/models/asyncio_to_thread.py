"""cpython.asyncio_to_thread: coroutines on one asyncio event loop, each task's work handed to
asyncio.to_thread, which runs it on the loop's default executor: a ThreadPoolExecutor of
`workers` threads here. It is what a program does with blocking or CPU-bound code it must call
from async code, so the loop stays responsive (loop_lag) while the work queues for the threads
and, in Python code, for the GIL."""

import asyncio
import concurrent.futures
import functools
import itertools
import threading

from .. import workloads as wl
from .asyncio_model import AsyncioModel
from .base import PoolClocks


def _to_thread(loop, fn):
    if hasattr(asyncio, "to_thread"):  # 3.9+
        return asyncio.to_thread(fn)
    return loop.run_in_executor(None, fn)


class AsyncioToThread(AsyncioModel):
    name = "cpython.asyncio_to_thread"
    description = "asyncio loop, each task's work in asyncio.to_thread on `workers` threads"
    single_worker = False
    latency_means = ("from a lane taking the task to its result back on the loop: queueing for "
                     "an executor thread and the GIL included")

    def setup(self, workers, params, seed, cancel, workload=None):
        super().setup(workers, params, seed, cancel, workload)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="cpython.to_thread")
        self.loop.set_default_executor(self.executor)
        # Start every thread now, outside the measured batches.
        barrier = threading.Barrier(workers)
        list(self.executor.map(lambda _: barrier.wait(), range(workers)))
        self.local = threading.local()
        self.indexes = itertools.count()
        self.clocks = PoolClocks(self.executor, workers, self._thread_index)

    def _thread_index(self):
        w = getattr(self.local, "w", None)
        if w is None:
            w = self.local.w = next(self.indexes)  # the GIL makes next() atomic
        return w

    # The loop hands each task to the executor and awaits it: a dispatcher, whose time off the
    # CPU is its wait for results (idle); the executor's threads are the workers.
    LOOP_CLOCK = (-1, "parent")

    def open_worker_clocks(self):
        self.clocks.open()

    def worker_records(self, res):
        return self.clocks.close(res.begin_ns(), res.span[0])

    def item_runner(self, loop, tasks, st, res):
        n = len(tasks)
        if self.user is None:
            execute = self.clocks.wrap(wl.execute, span=True)

            async def run_steps(k, lane):
                # The task's steps, blocking, on an executor thread (lane picks its sockets).
                return await _to_thread(loop, functools.partial(
                    execute, tasks[k % n], lane, st, res.nonce(k)))
            return run_steps
        calls = self.user_calls(tasks)
        call = self.clocks.wrap(lambda f: f(), span=True)

        async def run_call(k, lane):
            return await _to_thread(loop, functools.partial(call, calls[k % n]))
        return run_call

    def metrics(self):
        return {"runs": "asyncio.to_thread on %d threads" % self.workers,
                "threads": self.workers}

    def teardown(self):
        super().teardown()
        self.executor.shutdown(wait=True)
