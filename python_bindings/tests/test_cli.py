"""python3 -m concbench: bench_runner's flags, the same report, exit code 2 for bad input."""

import json
import os
import subprocess
import sys

import pytest

import concbench

PKG = os.path.dirname(os.path.dirname(concbench.__file__))


def _cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=PKG)
    return subprocess.run([sys.executable, "-m", "concbench", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_run_writes_a_report(tmp_path):
    out = tmp_path / "r.json"
    p = _cli("run", "--suite", "smoke", "--workloads", "cpu.spin,io.sleep", "--workers", "1,2",
             "--repetitions", "1", "--out", str(out))
    assert p.returncode == 0, p.stderr
    with open(out) as f:
        r = json.load(f)
    models = {c["model"] for c in r["results"]}
    assert models == set(m.name for m in concbench.models.MODELS)  # default: the cpython ones
    assert "report: " + str(out) in p.stdout


def test_cpp_models_can_be_named(tmp_path):
    out = tmp_path / "r.json"
    p = _cli("run", "--suite", "smoke", "--workloads", "cpu.spin", "--models",
             "free_threads,cpython.threading", "--workers", "2", "--repetitions", "1",
             "--param", "units=20", "--out", str(out))
    assert p.returncode == 0, p.stderr
    with open(out) as f:
        r = json.load(f)
    assert {c["model"] for c in r["results"]} == {"free_threads", "cpython.threading"}
    assert all(c["params"]["units"] == "20" for c in r["results"])


def test_interleave_is_recorded_and_every_cell_gets_every_repetition(tmp_path):
    out = tmp_path / "r.json"
    p = _cli("run", "--suite", "smoke", "--workloads", "cpu.spin", "--models",
             "serial,free_threads", "--workers", "1", "--repetitions", "3", "--interleave",
             "--out", str(out))
    assert p.returncode == 0, p.stderr
    with open(out) as f:
        r = json.load(f)
    assert r["config"]["interleave"] is True
    assert [len(c["repetitions"]) for c in r["results"]] == [3, 3]


@pytest.mark.parametrize("args, fragment", [
    (["run", "--workers", "0"], "--workers"),
    (["run", "--workers", ""], "--workers"),
    (["run", "--repetitions", "-1"], "--repetitions"),
    (["run", "--models", "nope"], "unknown model"),
    (["run", "--param", "novalue"], "key=value"),
    (["run", "--frobnicate"], "unrecognized arguments"),
    (["run", "--out", "/nonexistent-dir/x.json", "--workloads", "cpu.spin"], "nonexistent"),
])
def test_bad_input_is_one_line_and_exit_2(args, fragment, tmp_path):
    p = _cli(*args, cwd=tmp_path)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert fragment in lines[0]


def test_list_names_the_cpython_models():
    p = _cli("list")
    assert p.returncode == 0
    for m in concbench.models.MODELS:
        assert m.name in p.stdout
