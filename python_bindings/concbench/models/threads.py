"""cpython.threading: one threading.Thread per worker, started for each batch, pulling tasks from
a shared index: what `threading` gives a Python program, GIL and all.

The switch_interval_us parameter sets sys.setswitchinterval for the batch (and is the same
parameter gil_threads takes, so --switch-interval-us moves both)."""

import sys
import threading

from .. import workloads as wl
from .base import PyModel, Results, WorkerClock, param_integer


class Threads(PyModel):
    name = "cpython.threading"
    description = "threading.Thread per worker, real CPython GIL"
    params = (param_integer("switch_interval_us", "sys.setswitchinterval for the batch, in us",
                            5000, 1, 10_000_000),)

    def run(self, tasks, rounds, nonce, stride):
        n = len(tasks)
        items = n * rounds
        res = Results(items, n, nonce, stride)
        st = self.state
        st.begin()
        lock = threading.Lock()
        nxt = [0]
        cancel = self.cancel
        calls = self.user_calls(tasks)

        clocks = [None] * self.workers

        def worker(w):
            clk = clocks[w] = WorkerClock(w)
            try:
                while True:
                    with lock:  # a lock, not a bare `+=`, so free-threaded builds agree
                        k = nxt[0]
                        if k >= items or cancel.is_set():
                            return
                        nxt[0] = k + 1
                    if calls is not None:
                        res.record_call(k, calls[k % n])
                    else:
                        task = tasks[k % n]
                        res.record(k, lambda nonce: wl.execute(task, w, st, nonce))
                    clk.tasks += 1
            finally:
                clk.close()

        threads = [threading.Thread(target=worker, args=(w,), name="cpython.threading-%d" % w)
                   for w in range(self.workers)]
        old = sys.getswitchinterval()
        interval = int(self.params["switch_interval_us"]) / 1e6
        sys.setswitchinterval(interval)
        try:
            res.begin_work()  # starting the threads is this model's work
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            res.end_work()
        finally:
            sys.setswitchinterval(old)
        return res.as_tuple(self.finish(res, tasks, {
            "threads": self.workers, "switch_interval_s": interval,
            "attribution": [c.record for c in clocks if c is not None and c.record]}),
            st.observations())
