"""Where each worker's time went, for the cpython.* models (models/base.py: WorkerClock): the
parts the runner checks, the GIL wait a real CPython thread cannot time (inferred, and said so),
and a model without a clock saying why."""

import concbench

FAST = {"repetitions": 2, "min_time": 0.05}



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


def test_a_cpu_bound_thread_waits_for_the_gil_and_the_report_says_it_is_inferred(
        require_idle_cpus):
    require_idle_cpus(2, wait=True)
    r = concbench.run(dict(FAST, workloads=["cpu.spin"], models=["cpython.threading"],
                           workers=[2]))
    a = r["results"][0]["attribution"]
    assert 0.3 < a["total"]["share"]["gil_wait"] < 0.7, a
    assert any("inferred" in n for n in a["notes"]), a
    require_idle_cpus(2)


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


def _adds_up(key, a):
    assert "unavailable" not in a, (key, a)
    for w in a["workers"]:
        p = w["parts_ns"]
        assert p["cpu"] is not None, (key, w)
        assert abs(p["unattributed"]) <= 0.1 * w["wall_ns"] + p["runqueue"], (key, w)


def test_pools_of_processes_and_executor_threads_are_attributed_and_add_up():
    from concbench import models
    names = [m for m in ("cpython.process_pool", "cpython.process_threads",
                         "cpython.asyncio_to_thread", "cpython.gevent") if m in models.names()]
    r = concbench.run(dict(FAST, workloads=["cpu.spin", "io.sleep"], models=names,
                           workers=[2]))
    cells = _cells(r)
    for key, c in cells.items():
        a = c["attribution"]
        _adds_up(key, a)
        kinds = {w["kind"] for w in a["workers"]}
        if key[1] != "cpython.gevent":
            # The thread that submits and collects, and the pool's own helper threads, are
            # dispatchers: listed, totalled apart, and not in the workers' total.
            assert "parent" in kinds and a["dispatchers"]["wall_ns"] > 0, (key, kinds)
        want = {"cpython.process_pool": "process", "cpython.process_threads": "thread",
                "cpython.asyncio_to_thread": "thread", "cpython.gevent": "loop"}[key[1]]
        assert want in kinds, (key, kinds)
        workers = [w for w in a["workers"] if w["kind"] != "parent"]
        # Every task of the attributed repetitions, counted by the worker that ran it.
        done = sum(w["tasks"] for w in workers)
        assert done == sum(rep["tasks"] for rep in c["repetitions"]), (key, done)
        if key[0] == "io.sleep":
            assert a["dominant"] == "io_wait", (key, a["total"])
        else:
            # On a CPU, at most a half where process_threads runs 2 threads per process behind
            # one GIL each; how the rest splits depends on the machine's load.
            assert a["total"]["share"]["cpu"] > 0.2, (key, a["total"])


def test_a_process_pool_with_a_large_payload_shows_its_serialization():
    r = concbench.run(dict(FAST, workloads=["overhead.noop"], models=["cpython.process_pool"],
                           workers=[2], params={"payload_bytes": "1000000", "tasks": "8"}))
    a = r["results"][0]["attribution"]
    _adds_up("noop", a)
    ser = a["total"]["share"]["serialize"]
    assert ser > 0.02, a["total"]
    feeder = [w for w in a["workers"] if w["worker"] == -3]
    assert feeder and feeder[0]["parts_ns"]["serialize"] > 0, a["workers"]


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


def test_cpython_models_record_a_timeline_with_every_task(tmp_path):
    import json
    from concbench import models
    names = [m for m in ("cpython.threading", "cpython.thread_pool", "cpython.asyncio",
                         "cpython.asyncio_to_thread", "cpython.gevent", "cpython.process_pool",
                         "cpython.process_threads") if m in models.names()]
    path = tmp_path / "trace.json"
    r = concbench.run(dict(FAST, repetitions=1, workloads=["mixed.cpu_io"], models=names,
                           workers=[2], params={"tasks": "12"}), trace=path)
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    for pid, c in enumerate(r["results"], 1):
        assert c["status"] == "ok", c["error"]
        assert "note" not in c["trace"], (c["model"], c["trace"])
        mine = [e for e in events if e.get("pid") == pid]
        tasks = c["repetitions"][0]["tasks"]
        if c["model"] == "cpython.process_threads":
            tasks = c["repetitions"][0]["model_metrics"]["chunks"]  # a span per chunk
        if c["model"] == "cpython.asyncio_to_thread":
            tasks *= 2  # on its executor thread, and its life on the loop
        # A task span per item: on its thread's track, or (an event loop's, a process pool's
        # round trips) an async span on the loop's or the parent's, begun and ended once each.
        spans = [e for e in mine if e.get("name") == "task" and e["ph"] in ("X", "b")]
        ends = [e for e in mine if e.get("name") == "task" and e["ph"] == "e"]
        assert len(spans) == tasks, (c["model"], len(spans), tasks)
        assert len(ends) == sum(1 for e in spans if e["ph"] == "b"), c["model"]
        if c["model"] in ("cpython.threading", "cpython.thread_pool"):
            assert any(e.get("name") == "IO wait" for e in mine), c["model"]
