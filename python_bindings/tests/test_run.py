"""concbench.run: the same report as bench_runner, C++ and cpython.* models side by side."""

import json
import os
import subprocess
import sys

import pytest

import concbench

SMOKE = {"suite": "smoke", "repetitions": 2}


def _run(**kw):
    cfg = dict(SMOKE)
    cfg.update(kw)
    return concbench.run(cfg)


def test_one_report_holds_cpp_and_cpython_models():
    r = _run(workloads=["cpu.spin"], models=["serial", "cpython.serial", "cpython.threading"],
             workers=[1, 2])
    assert r["schema_version"] == concbench.SCHEMA_VERSION
    py = r["context"]["python"]
    for key in ("version", "implementation", "gil_enabled", "switch_interval_s",
                "free_threaded_build", "config_args"):
        assert key in py
    assert py["gil_enabled"] is True  # no free-threaded CPython on this machine
    cells = {(c["model"], c["workers"]): c for c in r["results"]}
    assert set(cells) == {("serial", 1), ("cpython.serial", 1), ("cpython.threading", 1),
                          ("cpython.threading", 2)}
    for c in cells.values():
        assert c["status"] == "ok", c["error"]
        assert all(rep["verified"] for rep in c["repetitions"])
        assert set(c["repetitions"][0]["counters"]) >= set(concbench.COUNTER_NAMES)
    # cpython.* models default to fewer units of pure-Python work; the cell says so.
    assert cells[("cpython.serial", 1)]["params"]["units"] == "50"
    assert cells[("serial", 1)]["params"]["units"] == "200"
    # Their serial baseline is cpython.serial, which ran the same parameters.
    t = cells[("cpython.threading", 2)]["summary"]
    base = cells[("cpython.serial", 1)]["summary"]["throughput_per_s"]["median"]
    assert t["speedup_vs_serial"] == pytest.approx(t["throughput_per_s"]["median"] / base)
    assert len({b["run_name"] for b in r["benchmarks"]}) == 4


def test_a_wrong_checksum_from_python_fails_the_cell():
    r = _run(workloads=["cpu.spin"], models=["cpython.serial"],
             params={"fault": "wrong_checksum"})
    (cell,) = r["results"]
    assert cell["status"] == "failed"
    assert "checksum mismatch" in cell["error"]


def test_a_task_that_throws_is_recorded_as_failed():
    r = _run(workloads=["io.sleep"], models=["cpython.threading", "cpython.asyncio"],
             workers=[2], params={"fault": "throw"})
    for cell in r["results"]:
        assert cell["status"] == "failed"
        assert "injected fault" in cell["error"]
        assert cell["repetitions"][0]["failed_tasks"] == 1


def test_a_cell_past_its_timeout_is_recorded_and_the_run_goes_on():
    r = _run(workloads=["io.sleep", "cpu.spin"], models=["cpython.threading"], workers=[1],
             timeout=1, params={"sleep_us": "400000", "tasks": "20"})
    status = {c["workload"]: c["status"] for c in r["results"]}
    assert status["io.sleep"] == "timed_out"
    assert status["cpu.spin"] == "ok"


@pytest.mark.parametrize("config, fragment", [
    ({"models": ["cpython.nope"]}, "unknown model"),
    ({"workloads": ["cpu.spin"], "workers": [0]}, "workers"),
    ({"workloads": ["cpu.spin"], "repetitions": "x"}, "repetitions"),
    ({"bogus": 1}, "unknown key 'bogus'"),
    ({"workloads": ["cpu.spin"], "params": {"units": "-3"}}, "units"),
    ({"workloads": ["cpu.spin"], "models": ["cpython.process_pool"],
      "params": {"start_method": "teleport"}}, "start_method"),
    ({"plugins": ["/nonexistent/libplugin.so"]}, "no such file"),
    # Any existing file: the module cannot host plugins (it exports none of the symbols a plugin
    # resolves against), and says so before it loads anything.
    ({"plugins": [concbench._concbench.__file__]}, "plugins load into bench_runner only"),
])
def test_bad_config_raises_usage_error(config, fragment):
    with pytest.raises(concbench.UsageError, match=fragment):
        concbench.run(config)


def test_cpython_models_have_no_cell_for_workloads_without_a_python_version():
    r = _run(workloads=["cpu.stream", "cpu.spin"], models=["cpython.serial"])
    assert [c["workload"] for c in r["results"]] == ["cpu.spin"]
    with pytest.raises(concbench.UsageError, match="nothing to run"):
        concbench.run({"workloads": ["cpu.stream"], "models": ["cpython.serial"]})


def test_out_is_written_and_matches_the_returned_report(tmp_path):
    out = tmp_path / "r.json"
    r = concbench.run(dict(SMOKE, workloads=["overhead.noop"], models=["cpython.serial"]),
                      out=out)
    with open(out) as f:
        on_disk = json.load(f)
    assert on_disk["complete"] is True
    assert on_disk["results"] == r["results"]
    assert not [p for p in os.listdir(tmp_path) if p != "r.json"]  # no temporary left behind


def test_report_has_the_same_shape_as_bench_runners(tmp_path):
    exe = os.path.join(os.path.dirname(concbench.__file__), "..", "..", "bench_runner")
    if not os.path.exists(exe):
        pytest.skip("bench_runner is not beside this package (an installed copy)")
    cpp = tmp_path / "cpp.json"
    subprocess.run([exe, "run", "--suite", "smoke", "--workloads", "cpu.spin", "--models",
                    "serial", "--out", str(cpp)], check=True, stdout=subprocess.DEVNULL)
    py = concbench.run(dict(SMOKE, workloads=["cpu.spin"], models=["cpython.serial"]))
    with open(cpp) as f:
        ref = json.load(f)
    assert py["schema_version"] == ref["schema_version"]
    assert set(py) == set(ref)
    assert set(py["results"][0]) == set(ref["results"][0])
    assert set(py["results"][0]["summary"]) == set(ref["results"][0]["summary"])
    assert set(py["context"]) - set(ref["context"]) == {"python"}


def test_module_import_does_not_need_a_working_directory(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(concbench.__file__)))
    out = subprocess.run([sys.executable, "-c", "import concbench; print(len(concbench.catalog()['models']))"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) >= 13
