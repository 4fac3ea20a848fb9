"""cpython.thread_pool: a concurrent.futures.ThreadPoolExecutor that lives for the whole cell,
one submit() per task, as Python programs use it."""

import concurrent.futures
import itertools
import threading

from .. import workloads as wl
from .base import PoolClocks, PyModel, Results, shutdown


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

        # Each pool thread's attribution clock (base.PoolClocks); a cancelled item still counts
        # as one, as the executor ran it.
        clocks = PoolClocks(self.pool, self.workers, self._worker_index)

        def item(k):
            if not cancel.is_set():
                task = tasks[k % n]
                w = self._worker_index()
                res.record(k, lambda nonce: wl.execute(task, w, st, nonce))

        def call(k):
            if not cancel.is_set():
                res.record_call(k, calls[k % n])

        job = clocks.wrap(item if calls is None else call)
        clocks.open()
        res.begin_work()
        futures = [self.pool.submit(job, k) for k in range(items)]
        concurrent.futures.wait(futures)
        res.end_work()
        records = clocks.close(res.begin_ns(), res.span[0])
        return res.as_tuple(self.finish(res, tasks, {
            "threads": self.workers, "attribution": records}), st.observations())

    def teardown(self):
        shutdown(self.pool)
        super().teardown()
