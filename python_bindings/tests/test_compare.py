"""concbench.compare, concbench.load_report and `python3 -m concbench compare`: the C++
compare behind a Python face, on reports written by concbench.run."""

import copy
import json
import os
import subprocess
import sys

import pytest

import concbench


@pytest.fixture(scope="module")
def report():
    return concbench.run({"workloads": ["cpu.spin"], "models": ["serial", "free_threads"],
                          "workers": [1, 2], "repetitions": 5,
                          "params": {"tasks": "4", "units": "20"}})


@pytest.fixture
def report_file(report, tmp_path):
    path = tmp_path / "base.json"
    path.write_text(json.dumps(report))
    return path


def test_a_report_against_itself(report, report_file):
    cmp = concbench.compare(report_file, report, fail_on_regression=10)
    assert cmp["exit_code"] == 0
    cells = cmp["comparisons"][0]["cells"]
    assert len(cells) == 3 and all(c["state"] == "compared" for c in cells)
    assert all(c["time"]["ratio"] == 1 and c["significance"] == "not significant" for c in cells)
    assert cmp["comparisons"][0]["context_diff"] == []


def test_a_slower_report_gates(report):
    slow = copy.deepcopy(report)
    for cell in slow["results"]:
        for rep in cell["repetitions"]:
            rep["wall_ns"] *= 3
            rep["throughput_per_s"] /= 3
    cmp = concbench.compare(report, slow, fail_on_regression=50)
    assert cmp["exit_code"] == 1
    # Usually all 3 cells; on a busy machine a cell whose own repetitions spread over 3x is not
    # significant, and that is the test doing its job.
    assert 1 <= len(cmp["comparisons"][0]["gating"]) <= 3
    # Against their own serial baseline nothing changed.
    norm = concbench.compare(report, slow, normalize=True, fail_on_regression=50)
    assert norm["exit_code"] == 0
    assert concbench.compare(report, slow)["exit_code"] == 0  # no gate, no failure


def test_bad_reports_raise_report_error(report, tmp_path):
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps(report)[:500])
    with pytest.raises(concbench.ReportError, match="truncated.json"):
        concbench.load_report(truncated)
    with pytest.raises(concbench.ReportError, match="schema version 9"):
        concbench.compare(report, dict(report, schema_version=9))
    with pytest.raises(concbench.ReportError, match="cannot open"):
        concbench.load_report(tmp_path / "absent.json")
    assert isinstance(concbench.ReportError("x"), ValueError)
    assert concbench.load_report(_write(tmp_path / "ok.json", report))["schema_version"] == 1


def _write(path, report):
    path.write_text(json.dumps(report))
    return path


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", "concbench", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_compare(report_file, tmp_path):
    r = _cli("compare", "--fail-on-regression", "10", report_file, report_file)
    assert r.returncode == 0, r.stderr
    assert "geometric mean over 3 cell(s)" in r.stdout
    md = _cli("compare", "--format", "md", report_file, report_file)
    assert md.returncode == 0 and "| cpu.spin" in md.stdout
    truncated = tmp_path / "t.json"
    truncated.write_text(report_file.read_text()[:300])
    bad = _cli("compare", report_file, truncated)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "t.json" in bad.stderr, bad.stderr
    for args in (["compare", report_file], ["compare", "--alpha", "2", report_file, report_file],
                 ["compare", "--format", "xml", report_file, report_file]):
        r = _cli(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (args, r.stderr)


def test_a_cell_missing_from_new_gates(report, report_file):
    fewer = copy.deepcopy(report)
    gone = fewer["results"].pop()
    cmp = concbench.compare(report, fewer, fail_on_regression=1000)
    assert cmp["exit_code"] == 1
    name = "%s/%s/workers:%d" % (gone["workload"], gone["model"], gone["workers"])
    assert cmp["comparisons"][0]["gating"] == [name]
    # Only in NEW: listed, not gating.
    assert concbench.compare(fewer, report, fail_on_regression=1000)["exit_code"] == 0
    assert concbench.compare(report, fewer, fail_on_broken=True)["exit_code"] == 1
    assert concbench.compare(fewer, report, fail_on_broken=True)["exit_code"] == 0
    r = _cli("compare", "--fail-on-broken", "--format", "json", report_file, report_file)
    assert r.returncode == 0 and json.loads(r.stdout)["options"]["fail_on_broken"], r.stderr


def test_conclusions_carry_an_interval_and_a_verdict(report):
    cmp = concbench.compare(report, report, normalize=True)
    assert cmp["conclusions"]
    for k in cmp["conclusions"]:
        assert k["verdict"] in ("holds", "within noise")  # a report never differs from itself
        for r in k["reports"]:
            low, high = r["ci"]
            assert low <= r["ratio"] <= high
            assert r["relation"] in ("beats", "loses to", "within noise")


def test_min_effect_reaches_the_conclusions(report):
    assert concbench.compare(report, report)["options"]["min_effect_pct"] == 10
    assert concbench.compare(report, report, min_effect=25)["options"]["min_effect_pct"] == 25
    with pytest.raises(concbench.UsageError, match="min_effect"):
        concbench.compare(report, report, min_effect=-1)
