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
