"""cpython.asyncio: every task a coroutine on one event loop on one thread (the cell's), IO
awaited, CPU steps inline: they block the loop. loop=uvloop runs the same on uvloop when it is
installed. Lanes, each with its own connection to the echo server, pull tasks from the batch;
max_inflight bounds them (0: every task of the batch at once), as in the C++ async model.

A monitor coroutine sleeps 1 ms at a time and records how late it wakes: loop_lag in the
report's model_metrics, which is how a CPU-bound task stalling the loop shows up."""

import asyncio
import time

from .. import user_workload as uw
from .. import workloads as wl
from .base import PyModel, Results, param_choice, param_integer, WorkerClock

try:  # uvloop is optional: the loop parameter only offers it when it can be imported
    import uvloop
except ImportError:
    uvloop = None

LOOPS = ("asyncio", "uvloop") if uvloop is not None else ("asyncio",)
LAG_INTERVAL_S = 0.001


def _percentile(sorted_values, q):
    if not sorted_values:
        return 0
    rank = int(q / 100.0 * len(sorted_values) + 0.999999)
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


class AsyncioModel(PyModel):
    name = "cpython.asyncio"
    description = "coroutines on one asyncio event loop (uvloop with loop=uvloop)"
    latency_means = ("from a lane taking the task to its result, time spent awaiting IO and "
                     "waiting for the loop included")
    single_worker = True
    params = (
        param_choice("loop", "event loop implementation", "asyncio", LOOPS),
        param_integer("max_inflight", "tasks in flight at once (0: every task of the batch)", 0,
                      0, 100_000_000),
    )

    def setup(self, workers, params, seed, cancel, workload=None):
        super().setup(workers, params, seed, cancel, workload)
        self.loop_kind = params["loop"]
        if self.loop_kind == "uvloop":
            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.lane_sockets = wl.LaneSockets(self.state)

    def item_runner(self, loop, tasks, st, res):
        """async f(k, lane) -> a user function's result for item k, or None for the suite's
        workloads (the lane awaits their steps). A user's
        async_fn is awaited; a plain fn is called on the loop, blocking it as it would in a
        program that calls it from a coroutine (the loop lag shows the stall)."""
        n = len(tasks)
        if self.user is None:
            return None  # the lane awaits the task's steps itself (no extra frame per item)
        if self.user.async_fn is not None:
            acalls = self.user.async_calls(tasks)

            async def run_async(k, lane):
                return await acalls[k % n]()
            return run_async
        calls = self.user_calls(tasks)

        async def run_inline(k, lane):
            return calls[k % n]()
        return run_inline

    # The loop thread's attribution: worker 0, a loop, whose time off the CPU is its IO wait.
    LOOP_CLOCK = (0, "loop")

    def open_worker_clocks(self):
        """Before the timed region: clocks on threads the loop hands work to (none here)."""

    def worker_records(self, res):
        """After it: their attribution records."""
        return []

    def metrics(self):
        sync = self.user is not None and self.user.async_fn is None
        return {"runs": "fn called on the loop (blocking it)" if sync else
                ("async_fn awaited" if self.user is not None else "the task's steps awaited")}

    def run(self, tasks, rounds, nonce, stride):
        return self.loop.run_until_complete(self._batch(tasks, rounds, nonce, stride))

    async def _batch(self, tasks, rounds, nonce, stride):
        loop = asyncio.get_running_loop()
        n = len(tasks)
        items = n * rounds
        res = Results(items, n, nonce, stride)
        st = self.state
        st.begin()
        limit = int(self.params["max_inflight"]) or n
        lanes = min(limit, items)
        nxt = [0]
        lags = []
        stop_monitor = [False]
        run_item = self.item_runner(loop, tasks, st, res)

        async def lane(i):
            while nxt[0] < items:
                k = nxt[0]
                nxt[0] = k + 1
                task = tasks[k % n]
                sampled = res.sampled(k)
                tr = clk.trace
                t0 = time.perf_counter_ns() if sampled or tr is not None else 0
                try:
                    if run_item is None:
                        checksum = await wl.execute_async(loop, task, i, st, self.lane_sockets,
                                                          res.nonce(k))
                    else:
                        checksum = await run_item(k, i)
                except (wl.Cancelled, asyncio.CancelledError):
                    raise
                except Exception as e:  # noqa: BLE001 - a task's failure is a result
                    res.failures.append((k, uw.one_line(e)))
                    continue
                if sampled or tr is not None:
                    t1 = time.perf_counter_ns()
                    if sampled:
                        res.latency_ns.append(t1 - t0)
                    if tr is not None:  # the loop's tasks overlap: an async span each
                        tr.add("task_async", t0, t1, k)
                res.checksums[k] = checksum
                res.done[k] = 1

        async def monitor():
            while not stop_monitor[0]:
                t0 = time.perf_counter_ns()
                await asyncio.sleep(LAG_INTERVAL_S)
                lags.append(max(0, time.perf_counter_ns() - t0 - int(LAG_INTERVAL_S * 1e9)))

        async def watchdog(work):
            # The runner's timeout sets the flag from another thread; cancel the lanes then.
            while not work.done():
                if self.cancel.is_set():
                    work.cancel()
                    return
                await asyncio.sleep(wl.WAIT_SLICE_S)

        self.open_worker_clocks()
        res.begin_work()
        clk = WorkerClock(*self.LOOP_CLOCK)
        mon = loop.create_task(monitor())
        work = asyncio.ensure_future(asyncio.gather(*(lane(i) for i in range(lanes))))
        dog = loop.create_task(watchdog(work))
        try:
            await work
        except (wl.Cancelled, asyncio.CancelledError):
            pass  # items not done stay not done
        finally:
            res.end_work()
            clk.close()
            stop_monitor[0] = True
            await mon
            dog.cancel()
        lags.sort()
        metrics = {
            "loop": self.loop_kind,
            "max_inflight": lanes,
            "loop_lag": {"samples": len(lags), "p50_ns": _percentile(lags, 50),
                         "p99_ns": _percentile(lags, 99), "max_ns": lags[-1] if lags else 0},
            "attribution": [dict(clk.record, tasks=sum(res.done), loop_lag_ns=sum(lags))]
            + self.worker_records(res),
        }
        metrics.update(self.metrics())
        return res.as_tuple(self.finish(res, tasks, metrics), st.observations())

    def teardown(self):
        self.lane_sockets.close()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()
        super().teardown()
