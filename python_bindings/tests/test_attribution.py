"""Where each worker's time went, for the cpython.* models (models/base.py: WorkerClock): the
parts the runner checks, the GIL wait a real CPython thread cannot time (inferred, and said so),
and a model without a clock saying why."""

import pytest

import concbench
from concbench import _concbench as _c

FAST = {"repetitions": 2, "min_time": 0.05}


def _require_idle_cpus(n):
    got = _c.parallel_capacity(n, 0.05)
    if got < 0.9 * n:
        pytest.skip("needs %d idle CPUs; the machine gave this process %.2f" % (n, got))


def _cells(report):
    return {(c["workload"], c["model"], c["workers"]): c for c in report["results"]}


def test_threads_serial_and_the_loop_are_attributed_and_add_up():
    r = concbench.run(dict(FAST, workloads=["cpu.spin", "io.sleep"],
                           models=["cpython.serial", "cpython.threading", "cpython.asyncio"],
                           workers=[1, 2]))
    for key, c in _cells(r).items():
        a = c["attribution"]
        assert "unavailable" not in a, (key, a)
        assert a["total"]["parts_ns"]["cpu"] is not None, key
        for w in a["workers"]:
            p = w["parts_ns"]
            # Whatever the machine's load, the parts and the wall agree up to the overlap the
            # runner allows (the run-queue delay of a wake-up is in a wait and in runqueue).
            assert abs(p["unattributed"]) <= 0.1 * w["wall_ns"] + p["runqueue"], (key, w)
    sleep = _cells(r)[("io.sleep", "cpython.threading", 2)]["attribution"]
    assert sleep["dominant"] == "io_wait", sleep
    loop = _cells(r)[("cpu.spin", "cpython.asyncio", 1)]["attribution"]
    assert loop["workers"][0]["kind"] == "loop"


def test_a_cpu_bound_thread_waits_for_the_gil_and_the_report_says_it_is_inferred():
    _require_idle_cpus(2)
    r = concbench.run(dict(FAST, workloads=["cpu.spin"], models=["cpython.threading"],
                           workers=[2]))
    a = r["results"][0]["attribution"]
    assert 0.3 < a["total"]["share"]["gil_wait"] < 0.7, a
    assert any("inferred" in n for n in a["notes"]), a
    _require_idle_cpus(2)


def test_a_pool_threads_wait_for_work_is_idle_and_the_parts_add_up():
    r = concbench.run(dict(FAST, workloads=["io.sleep", "cpu.spin"],
                           models=["cpython.thread_pool"], workers=[2]))
    for c in r["results"]:
        a = c["attribution"]
        assert "unavailable" not in a, a
        assert len(a["workers"]) == 2, a
        for w in a["workers"]:
            p = w["parts_ns"]
            assert abs(p["unattributed"]) <= 0.1 * w["wall_ns"] + p["runqueue"], w
    sleep = next(c for c in r["results"] if c["workload"] == "io.sleep")["attribution"]
    assert sleep["dominant"] == "io_wait", sleep


def test_a_model_without_a_clock_says_why():
    r = concbench.run(dict(FAST, workloads=["cpu.spin"], models=["cpython.process_pool"],
                           workers=[2]))
    a = r["results"][0]["attribution"]
    assert "WorkerClock" in a["unavailable"], a


def test_run_writes_a_trace_with_a_track_per_thread(tmp_path):
    path = tmp_path / "trace.json"
    r = concbench.run(dict(FAST, workloads=["io.sleep"], models=["gil_threads"], workers=[2]),
                      trace=path)
    import json
    with open(path) as f:
        t = json.load(f)
    names = {e["args"]["name"] for e in t["traceEvents"] if e.get("name") == "thread_name"}
    assert names == {"worker 0", "worker 1"}, names
    assert r["results"][0]["trace"]["events"] > 0
