"""Each cpython.* model runs each workload it supports and verifies; and what each is known to do
on this interpreter."""

import sys

import pytest

import concbench
from concbench import models
from concbench import workloads as wl

MODELS = [m.name for m in models.MODELS]


def _run(workloads, models_, workers=(1, 2), **params):
    return concbench.run({"suite": "smoke", "workloads": list(workloads), "models": list(models_),
                          "workers": list(workers), "repetitions": 1, "params": params})


@pytest.mark.parametrize("model", MODELS)
def test_every_supported_workload_verifies(model):
    r = _run(wl.SUPPORTED, [model])
    assert r["results"], model
    for c in r["results"]:
        assert c["status"] == "ok", (c["workload"], c["workers"], c["error"])


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_process_pool_start_methods(method):
    r = _run(["cpu.spin", "io.pipe_echo"], ["cpython.process_pool"], workers=[2],
             start_method=method)
    for c in r["results"]:
        assert c["status"] == "ok", c["error"]
        assert c["repetitions"][0]["model_metrics"]["start_method"] == method
        # The workers are other processes: their CPU time is in the inherited task clock.
        tc = c["repetitions"][0]["counters"]["task_clock_ns"]
        if tc is not None and c["workload"] == "cpu.spin":
            assert tc > 0


def test_process_pool_has_no_counter_race():
    r = _run(["cpu.counter_race", "cpu.spin"], ["cpython.process_pool"], workers=[1])
    assert {c["workload"] for c in r["results"]} == {"cpu.spin"}


@pytest.mark.skipif(sys.version_info < (3, 10), reason="3.9 and earlier do lose updates")
def test_x_plus_equals_one_loses_no_update_behind_the_310_gil():
    # CPython 3.10+ only switches threads at back-edges and calls, never between the load and
    # the store of `x += 1`; scripts/python_matrix.py shows 3.8 and 3.9 losing them.
    r = _run(["cpu.counter_race"], ["cpython.threading"], workers=[2], units=300000,
             switch_interval_us=100)
    (c,) = r["results"]
    m = c["repetitions"][0]["metrics"]
    assert m["increments"] == 600000
    assert m["lost_updates"] == 0


def test_a_cpu_bound_task_stalls_the_asyncio_loop_but_not_threads():
    # On one loop the responder cannot run until the spinner returns, so the spinner always runs
    # to its bound and the loop lags for all of it. Threads interleave at the switch interval, so
    # the responder finishes first and stops the spinner early. Counted in units, not timed.
    r = _run(["latency.echo_under_load"], ["cpython.asyncio"], round_trips=20,
             max_cpu_units=2000)
    (a,) = r["results"]
    assert a["status"] == "ok", a["error"]
    lag = a["repetitions"][0]["model_metrics"]["loop_lag"]["max_ns"]
    spin_ns = 2000 / concbench._concbench.spin_units_per_us() * 1e3  # far less than the spin
    assert lag > spin_ns
    assert a["repetitions"][0]["metrics"]["spinner_units"] == 2000
    bound = 200_000  # seconds of pure-Python spinning: the responder is done long before
    r = _run(["latency.echo_under_load"], ["cpython.threading"], round_trips=20,
             max_cpu_units=bound)
    (t,) = r["results"]
    assert t["status"] == "ok", t["error"]
    for rep in t["repetitions"]:
        assert rep["metrics"]["round_trips"] == 20
        assert 0 < rep["metrics"]["spinner_units"] < bound


@pytest.mark.parametrize("model", ["cpython.threading", "cpython.asyncio"])
def test_paced_pings_give_one_way_delays(model):
    # ccbench's latency test: each ping's delay from the client's send to the responder's code
    # running again, one per ping. Counted, not timed.
    r = _run(["latency.paced_ping"], [model], workers=[2], round_trips=4, pace_ms=5,
             max_cpu_units=2000)
    (c,) = r["results"]
    assert c["status"] == "ok", c["error"]
    m = c["repetitions"][0]["metrics"]
    assert m["pings"] == 4
    assert 0 < m["one_way_p50_ns"] <= m["one_way_max_ns"]
    assert m["round_trips"] == 4


def test_a_long_hold_spinner_verifies_its_work_in_whole_calls():
    # latency.echo_long_hold's spinner makes calls of hold_us units that keep the GIL; the units
    # it reports verify against its state (the runner's check), and come in whole calls unless
    # the bound cut the last one short.
    bound = 10_000_000
    r = _run(["latency.echo_long_hold"], ["cpython.threading"], workers=[2], round_trips=5,
             hold_us=700, max_cpu_units=bound)
    (c,) = r["results"]
    assert c["status"] == "ok", c["error"]
    m = c["repetitions"][0]["metrics"]
    assert m["round_trips"] == 5
    assert 0 < m["spinner_units"] < bound
    assert m["spinner_units"] % 700 == 0


def test_asyncio_overlaps_sleeps_and_max_inflight_bounds_it():
    r = _run(["io.sleep"], ["cpython.asyncio"], tasks=40, sleep_us=20000)
    (c,) = r["results"]
    assert c["status"] == "ok"
    assert c["repetitions"][0]["wall_ns"] < 40 * 20e6 / 4  # 40 sleeps overlap
    r = _run(["io.sleep"], ["cpython.asyncio"], tasks=8, sleep_us=20000, max_inflight=2)
    (c,) = r["results"]
    assert c["repetitions"][0]["wall_ns"] >= 4 * 20e6  # 8 sleeps, 2 at a time
    assert c["repetitions"][0]["model_metrics"]["max_inflight"] == 2


def test_switch_interval_is_set_for_the_batch_and_restored():
    before = sys.getswitchinterval()
    r = _run(["cpu.spin"], ["cpython.threading"], workers=[2], switch_interval_us=1000)
    (c,) = r["results"]
    assert c["repetitions"][0]["model_metrics"]["switch_interval_s"] == pytest.approx(0.001)
    assert sys.getswitchinterval() == before


@pytest.mark.skipif(models.asyncio_model.uvloop is None,
                    reason="uvloop is not installed (scripts/setup.sh installs python3-uvloop)")
def test_uvloop_runs_the_same_tasks():
    # Not io.sleep: libuv's millisecond timers end sleeps early (see the next test).
    r = _run(["io.pipe_echo", "cpu.spin", "overhead.noop"], ["cpython.asyncio"], loop="uvloop")
    for c in r["results"]:
        assert c["status"] == "ok", c["error"]
        assert c["repetitions"][0]["model_metrics"]["loop"] == "uvloop"


@pytest.mark.skipif(models.asyncio_model.uvloop is None,
                    reason="uvloop is not installed (scripts/setup.sh installs python3-uvloop)")
def test_a_sleep_cut_short_fails_verification():
    # libuv's timers count whole milliseconds: uvloop's asyncio.sleep(0.0002) returns after a
    # few microseconds. A sleep step is worth its duration only if the wait really happened, so
    # the cell fails rather than looking fast.
    r = _run(["io.sleep"], ["cpython.asyncio"], loop="uvloop", sleep_us=200)
    (c,) = r["results"]
    assert c["status"] == "failed"
    assert "checksum mismatch" in c["error"]
