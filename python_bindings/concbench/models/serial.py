"""cpython.serial: every task inline on one Python thread; the baseline of the cpython.* models."""

from .. import workloads as wl
from .base import PyModel, Results, WorkerClock


class Serial(PyModel):
    name = "cpython.serial"
    description = "every task inline on one CPython thread (the cpython.* baseline)"
    single_worker = True

    def run(self, tasks, rounds, nonce, stride):
        n = len(tasks)
        res = Results(n * rounds, n, nonce, stride)
        st = self.state
        st.begin()
        calls = self.user_calls(tasks)
        res.begin_work()
        clk = WorkerClock(0)
        try:
            if calls is not None:
                for k in range(n * rounds):
                    if self.cancel.is_set():
                        break
                    res.record_call(k, calls[k % n])
            else:
                for k in range(n * rounds):
                    if self.cancel.is_set():
                        break
                    task = tasks[k % n]
                    res.record(k, lambda nonce: wl.execute(task, 0, st, nonce))
        finally:
            clk.close()
        res.end_work()
        clk.record["tasks"] = sum(res.done)
        return res.as_tuple(self.finish(res, tasks, {"attribution": [clk.record]}),
                            st.observations())
