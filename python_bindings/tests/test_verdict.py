"""concbench.verdict and `python3 -m concbench verdict`: the C++ verdict behind a Python face, on
a small report written by concbench.run (C++ and cpython.* models side by side)."""

import copy
import json
import os
import subprocess
import sys

import pytest

import concbench

PKG = os.path.dirname(os.path.dirname(concbench.__file__))


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=PKG)
    return subprocess.run([sys.executable, "-m", "concbench", *args], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def report():
    return concbench.run({"workloads": ["cpu.spin"],
                          "models": ["serial", "free_threads", "cpython.serial",
                                     "cpython.threading"],
                          "workers": [1, 2], "repetitions": 3,
                          "params": {"tasks": "4", "units": "20"}})


@pytest.fixture
def report_file(report, tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    return path


def test_json_verdict_names_a_winner_among_the_models(report):
    v = concbench.verdict(report)
    assert v["verdict_version"] == 1
    assert len(v["workloads"]) == 1  # every cell ran the same tasks: one comparison
    e = v["workloads"][0]
    models = {c["model"] for c in report["results"]}
    assert e["winner"] in models
    assert e["runner_up"] in models - {e["winner"]}
    assert e["line"].startswith("cpu.spin: ")
    lo, hi = e["margin_over_runner_up"]["ci95"]
    assert lo <= e["margin_over_runner_up"]["ratio"] <= hi
    assert {o["model"] for o in e["others"]} == models - {e["winner"]}
    # The same report gives the same verdict.
    assert concbench.verdict(report) == v


def test_text_and_markdown_from_a_path(report, report_file):
    text = concbench.verdict(report_file, "text")
    assert text == concbench.verdict(report)["workloads"][0]["line"] + "\n"
    md = concbench.verdict(str(report_file), "md")
    assert md.startswith("| workload")


def test_gil_bound_threads_say_gil(report):
    # cpython.threading at 2 threads with one CPU busy (set so, the run is too short to be sure
    # of it): the reason names the GIL.
    r = copy.deepcopy(report)
    r["results"] = [c for c in r["results"]
                    if c["model"] == "cpython.serial" or
                    (c["model"] == "cpython.threading" and c["workers"] == 2)]
    for c in r["results"]:
        for rep in c["repetitions"]:
            rep["cpu_user_ns"], rep["cpu_sys_ns"] = rep["wall_ns"], 0
        # Nor is its attribution: a run this short can end up mostly idle or with a GIL wait
        # figure, either of which the reason would name instead. Only the CPU figure is tested.
        c["attribution"] = {}
    e = concbench.verdict(r)["workloads"][0]
    reasons = {o["model"]: o.get("reason", "") for o in e["others"]}
    reasons[e["winner"]] = e["reason"]
    assert "CPU 1.00 of 2 threads busy: the GIL lets one thread run Python at a time" in \
        reasons["cpython.threading"], reasons


def test_a_failed_cell_never_wins(report):
    r = copy.deepcopy(report)
    winner = concbench.verdict(r)["workloads"][0]["winner"]
    for c in r["results"]:
        if c["model"] == winner:
            c["status"] = "failed"
            c["error"] = "synthetic failure\nsecond line"
            for rep in c["repetitions"]:
                rep["verified"] = False
    e = concbench.verdict(r)["workloads"][0]
    assert e["winner"] != winner
    assert winner + ": failed: synthetic failure" in e["line"] or \
        winner + " at " in e["line"] and "failed: synthetic failure" in e["line"]
    assert "second line" not in e["line"]


def test_bad_input():
    with pytest.raises(concbench.ReportError):
        concbench.verdict({"results": []})
    with pytest.raises(ValueError):
        concbench.verdict({}, format="xml")
    with pytest.raises(concbench.ReportError):
        concbench.verdict("/nonexistent/report.json")


def test_cli(report, report_file, tmp_path):
    p = _cli("verdict", str(report_file))
    assert p.returncode == 0, p.stderr
    assert p.stdout == concbench.verdict(report, "text")
    p = _cli("verdict", "--format", "json", str(report_file))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == concbench.verdict(report)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    p = _cli("verdict", str(bad))
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("concbench: verdict: "), p.stderr
    assert p.stdout == ""


def test_run_prints_the_verdict(tmp_path):
    out = tmp_path / "run.json"
    p = _cli("run", "--workloads", "cpu.spin", "--models", "serial,cpython.serial",
             "--repetitions", "2", "--param", "tasks=2", "--param", "units=5", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "\nverdict:\ncpu.spin: " in p.stdout
    assert p.stdout.index("verdict:") < p.stdout.index("report: ")
