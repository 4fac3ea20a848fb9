"""cpython.gevent: greenlets on one hub, gevent's cooperative sleep and sockets (no
monkey-patching), registered only where gevent imports."""

import pytest

import concbench
from concbench import models

gevent = pytest.importorskip(
    "gevent", reason="gevent is not installed (scripts/setup.sh installs python3-gevent)")

MODEL = "cpython.gevent"
WORKLOADS = ["io.sleep", "io.pipe_echo", "cpu.spin", "mixed.cpu_io", "overhead.noop"]


def _run(workloads, workers=(1,), **params):
    return concbench.run({"suite": "smoke", "workloads": list(workloads), "models": [MODEL],
                          "workers": list(workers), "repetitions": 1, "params": params})


def test_registered_with_no_reason_given():
    assert MODEL in models.names()
    assert MODEL not in models.unavailable()
    assert concbench.python_context()["models_unavailable"] == models.unavailable()


def test_supported_workloads_verify():
    r = _run(WORKLOADS)
    assert {c["workload"] for c in r["results"]} == set(WORKLOADS)
    for c in r["results"]:
        assert c["status"] == "ok", (c["workload"], c["error"])
        mm = c["repetitions"][0]["model_metrics"]
        assert mm["monkey_patched"] is False and mm["hub_lag"]["samples"] >= 1


def test_single_worker_model_runs_one_worker_only():
    r = _run(["cpu.spin"], workers=(1, 2))
    assert [c["workers"] for c in r["results"]] == [1]


def test_sleeps_overlap_and_max_inflight_bounds_them():
    # Sleeping needs no CPU: 32 sleeps of 20 ms on one hub overlap however busy the machine is.
    r = _run(["io.sleep"], tasks=32, sleep_us=20000)
    (c,) = r["results"]
    assert c["status"] == "ok", c["error"]
    assert c["repetitions"][0]["wall_ns"] < 0.5 * 32 * 20e6
    r = _run(["io.sleep"], tasks=8, sleep_us=20000, max_inflight=2)
    (c,) = r["results"]
    assert c["status"] == "ok", c["error"]
    assert c["repetitions"][0]["wall_ns"] >= 4 * 20e6
    assert c["repetitions"][0]["model_metrics"]["max_inflight"] == 2


def test_a_cpu_step_blocks_the_hub():
    r = _run(["cpu.spin"], tasks=4, units=200)
    (c,) = r["results"]
    assert c["status"] == "ok", c["error"]
    lag = c["repetitions"][0]["model_metrics"]["hub_lag"]["max_ns"]
    assert lag > 0


def test_bad_params_are_refused():
    for bad in ("-1", "x"):
        with pytest.raises(concbench.UsageError):
            concbench.validate({"suite": "smoke", "workloads": ["io.sleep"], "models": [MODEL],
                                "params": {"max_inflight": bad}})


def arith(x):
    return sum(i * i for i in range(x))


def test_user_function_runs_in_greenlets():
    r = concbench.bench(arith, [100, 200, 300], models=[MODEL], workers=(1,), repetitions=1,
                        min_time=0)
    (c,) = r["results"]
    assert c["status"] == "ok", c["error"]
    assert "greenlet" in c["repetitions"][0]["model_metrics"]["runs"]


def test_the_runners_timeout_stops_the_batch():
    r = concbench.run({"suite": "smoke", "workloads": ["io.sleep"], "models": [MODEL],
                       "workers": [1], "repetitions": 1, "timeout": 0.5,
                       "params": {"tasks": "4", "sleep_us": "3000000"}})
    (c,) = r["results"]
    assert c["status"] == "timed_out" and "abandoned" not in c["error"], c["error"]


def test_patch_child_runs_the_blocking_code_monkey_patched():
    # A child process calls gevent.monkey.patch_all(), then runs workloads.execute unchanged.
    r = _run(WORKLOADS + ["latency.echo_under_load", "cpu.counter_race"], patch="child")
    for c in r["results"]:
        assert c["status"] == "ok", (c["workload"], c["error"])
        rep = c["repetitions"][0]
        assert rep["model_metrics"]["monkey_patched"] is True
        assert rep["cpu_covers_children"] is True  # the child's CPU is in the span
    r = _run(["io.sleep"], tasks=32, sleep_us=20000, patch="child")
    (c,) = r["results"]
    assert c["status"] == "ok", c["error"]
    assert c["repetitions"][0]["wall_ns"] < 0.5 * 32 * 20e6  # the patched time.sleep yields


def test_patch_child_is_stopped_by_the_runners_timeout():
    r = concbench.run({"suite": "smoke", "workloads": ["io.sleep"], "models": [MODEL],
                       "workers": [1], "repetitions": 1, "timeout": 0.5,
                       "params": {"tasks": "4", "sleep_us": "3000000", "patch": "child"}})
    (c,) = r["results"]
    assert c["status"] == "timed_out" and "abandoned" not in c["error"], c["error"]


def _user_run(fn, inputs, **params):
    # bench() has no params=: register the function as bench() does, then run with them.
    from concbench import user_workload as uw
    work = uw.UserWorkload("gevent_test:%s" % fn.__name__, fn, list(inputs))
    work.run_reference()
    work.measure_pickling()
    uw.register(work)
    return concbench.run({"workloads": [work.name], "models": [MODEL], "workers": [1],
                          "repetitions": 1, "min_time": 0, "params": params})


def test_patch_child_runs_user_functions_pickled():
    (c,) = _user_run(arith, [100, 200, 300], patch="child")["results"]
    assert c["status"] == "ok", c["error"]
    assert c["repetitions"][0]["model_metrics"]["pickled_input_bytes"] > 0
    (c,) = _user_run(lambda x: x, [1, 2], patch="child")["results"]
    assert c["status"] == "error" and "cannot be pickled" in c["error"], c["error"]
    assert "\n" not in c["error"]
