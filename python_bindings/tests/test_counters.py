"""concbench.counters(): the suite's counters for a block of Python code, all threads."""

import threading
import time

import concbench


def test_same_names_as_the_report_and_null_with_a_reason():
    with concbench.counters() as c:
        sum(range(100_000))
    assert set(c.values) == set(concbench.COUNTER_NAMES)
    for name, value in c.values.items():
        if value is None:
            assert c.unavailable.get(name), name  # unavailable, and why
        else:
            assert isinstance(value, int) and value >= 0
    assert c.wall_ns > 0


def test_threads_started_inside_the_block_are_counted():
    def sleeper():
        for _ in range(20):
            time.sleep(0.001)

    with concbench.counters() as c:
        ts = [threading.Thread(target=sleeper) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    if c.values["context_switches"] is not None:
        # 40 sleeps in threads that did not exist at entry: each blocks at least once.
        assert c.values["context_switches"] >= 40
    if c.values["voluntary_context_switches"] is not None:
        assert c.values["voluntary_context_switches"] >= 40


def test_task_clock_sees_native_work_in_another_thread():
    with concbench.counters() as c:
        t = threading.Thread(target=concbench.kernels.spin, args=(30_000,))
        t.start()
        t.join()
    if c.values["task_clock_ns"] is not None:
        # The thread's CPU time is in the block's count, whichever thread did it.
        assert c.values["task_clock_ns"] >= 0.5 * c.wall_ns * 0.5
