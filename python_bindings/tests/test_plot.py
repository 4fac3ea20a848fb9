"""scripts/plot.py and scripts/sweep_payload.py on real reports: the module's run() writes the
report (the same schema bench_runner writes), the scripts draw and sweep from it."""

import json
import os
import subprocess
import sys

import pytest

import concbench

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLOT = os.path.join(ROOT, "scripts", "plot.py")
SWEEP = os.path.join(ROOT, "scripts", "sweep_payload.py")
BUILD = os.path.abspath(os.environ.get("CONCBENCH_BUILD_DIR", os.path.join(ROOT, "build")))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("plot")
    report = concbench.run({
        "workloads": ["cpu.spin", "cpu.counter_race", "latency.echo_under_load"],
        "models": ["serial", "free_threads", "gil_threads", "process_pool", "async"],
        "workers": [1, 2], "repetitions": 2,
        "params": {"tasks": "4", "units": "50", "round_trips": "10", "max_cpu_units": "20000"},
    })
    path = d / "report.json"
    path.write_text(json.dumps(report))
    return path


def run_plot(*args):
    return subprocess.run([sys.executable, PLOT, *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_draws_pngs_and_svgs_from_one_report(report_path, tmp_path):
    out = tmp_path / "plots"
    r = run_plot(report_path, "--out-dir", out)
    assert r.returncode == 0, r.stderr
    names = sorted(os.listdir(out))
    for stem in ("speedup-report", "counters-report", "attribution-report", "latency_under_load",
                 "counter_race"):
        for ext in ("png", "svg"):
            assert f"{stem}.{ext}" in names, names
    for n in names:
        data = (out / n).read_bytes()
        assert data.startswith(PNG_MAGIC) if n.endswith(".png") else b"<svg" in data[:2000], n
    # One report: nothing to compare across machines, no payload sweep; both are said, not drawn.
    assert "cross_machine" in r.stderr and "payload" in r.stderr


def test_cross_machine_needs_two_reports(report_path, tmp_path):
    other = json.loads(report_path.read_text())
    other["context"]["hostname"] = "elsewhere"
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other))
    r = run_plot(report_path, other_path, "--out-dir", tmp_path / "p", "--formats", "png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p" / "cross_machine.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("content, message", [
    ('{"schema_version": 1, "results": [', "not valid JSON"),
    ('{"benchmarks": [], "context": {}}', "not a concbench report"),
    ('{"schema_version": 7, "results": [], "context": {}}', "schema version 7"),
    ('[1, 2]', "not a concbench report"),
])
def test_bad_reports_get_one_line_and_exit_2(tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    r = run_plot(bad, "--out-dir", tmp_path / "p")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "p").exists() or not os.listdir(tmp_path / "p")


def test_bad_formats_and_missing_files(report_path, tmp_path):
    r = run_plot(report_path, "--formats", "gif", "--out-dir", tmp_path)
    assert r.returncode == 2 and "--formats" in r.stderr
    r = run_plot(tmp_path / "absent.json", "--out-dir", tmp_path)
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_payload_sweep_writes_reports_the_plot_reads(tmp_path):
    runner = os.path.join(BUILD, "bench_runner")
    assert os.access(runner, os.X_OK), f"build first: no {runner}"
    out = tmp_path / "sweep"
    r = subprocess.run([sys.executable, SWEEP, "--build", BUILD, "--sizes", "0,65536",
                        "--tasks", "4", "--units", "20", "--repetitions", "2", "--out-dir", out],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [row["payload_bytes"] for row in summary["rows"]] == [0, 65536]
    assert all(row["serial@1"] > 0 and row["process_pool/shm@2"] > 0 for row in summary["rows"])
    reports = sorted(out.glob("payload-*.json"))
    assert len(reports) == 4
    p = run_plot(*reports, "--out-dir", tmp_path / "p", "--formats", "png")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "p" / "payload.png").read_bytes().startswith(PNG_MAGIC)
    bad = subprocess.run([sys.executable, SWEEP, "--build", BUILD, "--sizes", "x"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


PLOT_TRACE = os.path.join(ROOT, "scripts", "plot_trace.py")


def test_plot_trace_draws_each_traced_cell_and_refuses_what_is_not_a_trace(tmp_path):
    trace = tmp_path / "trace.json"
    concbench.run({"workloads": ["latency.echo_under_load"], "models": ["gil_threads"],
                   "workers": [2], "repetitions": 1, "params": {"round_trips": "20"}},
                  trace=trace)
    out = tmp_path / "plots"
    r = subprocess.run([sys.executable, PLOT_TRACE, trace, "--out-dir", out, "--window-ms", "50"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (png,) = os.listdir(out)
    assert png == "trace-gil-threads-latency-echo-under-load-2-workers.png"
    assert (out / png).read_bytes().startswith(PNG_MAGIC)
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a trace"}')
    r = subprocess.run([sys.executable, PLOT_TRACE, bad], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a concbench trace" in r.stderr


def test_plot_trace_has_a_colour_for_every_span_a_trace_holds(tmp_path):
    # Spans of the GIL, IO, the process pool and an event loop: a span without a colour of its
    # own would be drawn black, indistinguishable from another.
    import importlib.util
    trace = tmp_path / "trace.json"
    concbench.run({"workloads": ["latency.echo_under_load", "mixed.cpu_io"],
                   "models": ["gil_threads", "process_pool", "async"], "workers": [1, 2],
                   "repetitions": 1, "min_time": 0.01, "params": {"round_trips": "20"}},
                  trace=trace)
    with open(trace) as f:
        events = json.load(f)["traceEvents"]
    spec = importlib.util.spec_from_file_location("plot_trace", PLOT_TRACE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = {e["name"] + ("/" + e["args"]["ended"] if e["name"] == "GIL wait" else "")
             for e in events if e.get("ph") == "X"}
    assert {"task", "GIL held", "CPU step (holds the loop)"} <= names, names
    assert names <= set(mod.COLOURS), names - set(mod.COLOURS)
