"""cpython.thread_pool: a concurrent.futures.ThreadPoolExecutor that lives for the whole cell,
one submit() per task, as Python programs use it."""

import concurrent.futures
import itertools
import threading
import time

from .. import workloads as wl
from .base import PyModel, Results, WorkerClock, shutdown


class ThreadPool(PyModel):
    name = "cpython.thread_pool"
    description = "concurrent.futures.ThreadPoolExecutor, one submit() per task"

    def setup(self, workers, params, seed, cancel, workload=None):
        super().setup(workers, params, seed, cancel, workload)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                          thread_name_prefix="cpython.pool")
        # Each pool thread takes a worker index on first use: its own echo connection.
        self.local = threading.local()
        self.indexes = itertools.count()
        self.index_lock = threading.Lock()
        # Start every thread now, outside the measured batches.
        barrier = threading.Barrier(workers)
        list(self.pool.map(lambda _: barrier.wait(), range(workers)))

    def _worker_index(self):
        w = getattr(self.local, "w", None)
        if w is None:
            with self.index_lock:
                w = self.local.w = next(self.indexes)
        return w

    def run(self, tasks, rounds, nonce, stride):
        n = len(tasks)
        items = n * rounds
        res = Results(items, n, nonce, stride)
        st = self.state
        st.begin()
        cancel = self.cancel
        calls = self.user_calls(tasks)

        # Each pool thread's attribution clock, opened and closed on the thread itself by one job
        # per thread (a barrier keeps them on distinct threads), outside the timed region. Its
        # time between items, waiting on the executor's queue, is idle: timed per item (two
        # clock reads and two CPU-clock reads), which the cell's instrument cost includes.
        clocks = []
        lock = threading.Lock()

        def open_clock(_):
            clk = WorkerClock(self._worker_index())
            clk.gap_from = (time.monotonic_ns(), time.thread_time_ns())
            with lock:
                clocks.append(clk)
            barrier.wait()

        def close_clock(_):
            clk = wl.clock.clock
            idle_gap(clk)  # after its last item: waiting for work that did not come
            barrier.wait()
            if clk is not None:
                clk.close()

        def idle_gap(clk):
            if clk is not None:
                t0, c0 = clk.gap_from
                clk.idle_ns += max(0, (time.monotonic_ns() - t0) - (time.thread_time_ns() - c0))
                clk.io_waits += 1  # two clock and two CPU-clock reads, as an IO wait costs

        def gap_start(clk):
            if clk is not None:
                clk.gap_from = (time.monotonic_ns(), time.thread_time_ns())
                clk.tasks += 1

        def item(k):
            clk = wl.clock.clock
            idle_gap(clk)
            if not cancel.is_set():
                task = tasks[k % n]
                w = self._worker_index()
                res.record(k, lambda nonce: wl.execute(task, w, st, nonce))
            gap_start(clk)

        def call(k):
            clk = wl.clock.clock
            idle_gap(clk)
            if not cancel.is_set():
                res.record_call(k, calls[k % n])
            gap_start(clk)

        barrier = threading.Barrier(self.workers)
        list(self.pool.map(open_clock, range(self.workers)))
        res.begin_work()
        futures = [self.pool.submit(item if calls is None else call, k) for k in range(items)]
        concurrent.futures.wait(futures)
        res.end_work()
        list(self.pool.map(close_clock, range(self.workers)))
        begin = res.begin_ns()
        for clk in clocks:  # opened before the timed region and closed after it
            clk.clip(begin, begin + res.span[0])
        return res.as_tuple(self.finish(res, tasks, {
            "threads": self.workers,
            "attribution": [c.record for c in clocks if c.record]}), st.observations())

    def teardown(self):
        shutdown(self.pool)
        super().teardown()
