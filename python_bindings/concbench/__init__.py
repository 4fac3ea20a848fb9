"""concbench from Python: run the suite, measure real CPython beside the C++ models, and count
what a block of your own code does.

    import concbench
    report = concbench.run({"workloads": ["cpu.spin"], "models": ["cpython.threading"],
                            "workers": [1, 2], "repetitions": 3})
    with concbench.counters() as c:
        ...
    print(c.values["context_switches"])
    concbench.kernels.spin(100_000, release_gil=True)
    report = concbench.bench(my_function, my_inputs, workers=(1, 2, 4))

run() returns the same report bench_runner writes (schema_version, context, results[],
benchmarks[]); `python3 -m concbench run ...` is the command line.
"""

import json
import os
import platform
import sys
import sysconfig
import time

from . import _concbench
from . import kernels
from . import models as _models
from ._concbench import ReportError, UsageError

__version__ = "0.1.0"
SCHEMA_VERSION = 1

_models.register_all()

# The verb needs run(), defined below, only when called. The name `bench` is the function; the
# models it runs by default are BENCH_MODELS.
from .bench import bench, DEFAULT_MODELS as BENCH_MODELS  # noqa: E402


def python_context():
    """context.python of a report: the interpreter the cpython.* models ran on."""
    gil = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
    try:
        import uvloop
        uvloop_version = uvloop.__version__
    except ImportError:
        uvloop_version = None
    return {
        "version": platform.python_version(),
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "compiler": platform.python_compiler(),
        "build": list(platform.python_build()),
        "config_args": sysconfig.get_config_var("CONFIG_ARGS") or "",
        "debug_build": bool(sysconfig.get_config_var("Py_DEBUG")),
        "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": bool(gil),
        "switch_interval_s": sys.getswitchinterval(),
        "uvloop": uvloop_version,
        "models": _models.names(),
        "models_unavailable": _models.unavailable(),
    }


def run(config=None, out=None, progress=False, overwrite=False, trace=None, _context=None):
    """Runs `config` (keys as bench_runner's flags: suite, workloads, models, workers,
    repetitions, min_time, timeout, params, scaling, seed, trace, trace_cap, ...) and returns the
    report as a dict. C++ models and cpython.* models may be mixed; the GIL is released while C++
    runs. With `out` the report is also written there (atomically, after every cell); an
    existing file is replaced only with overwrite=True. With `trace` (a path) the first measured
    repetition of each cell is written there as a Chrome trace (bench_runner run --trace).
    Bad input raises UsageError."""
    request = dict(config or {})
    if trace is not None:
        request["trace"] = os.fspath(trace)
    ctx = python_context()
    if _context:
        ctx.update(_context)
    text = _concbench.run(json.dumps(request), json.dumps(ctx),
                          os.fspath(out) if out else "", bool(progress), bool(overwrite))
    return json.loads(text)


def validate(config):
    """The resolved configuration, or UsageError naming the first problem."""
    return json.loads(_concbench.validate(json.dumps(dict(config))))


def catalog():
    """Workloads, models (cpython.* included), their parameters and the suites."""
    return json.loads(_concbench.list())


def _report_text(report):
    """(label, JSON text) of a report given as a path or as a dict."""
    if isinstance(report, dict):
        return "report", json.dumps(report)
    path = os.fspath(report)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ReportError(f"{path}: cannot open: {e.strerror}") from None
    try:
        return path, data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ReportError(f"{path}: not valid UTF-8 at byte {e.start}") from None


def load_report(path):
    """Reads and checks a report (bench_runner's or run()'s) against the schema; ReportError
    names the first problem."""
    label, text = _report_text(path)
    try:
        _concbench.validate_report(text)
    except ReportError as e:
        raise ReportError(f"{label}: {e}") from None
    return json.loads(text)


def _compare(reports, normalize, fail_on_regression, alpha, fmt, min_effect=None,
             fail_on_broken=False):
    """(text in fmt: json, text or md; the CLI's exit code)."""
    texts = [_report_text(r) for r in reports]
    return _concbench.compare(texts, bool(normalize), fail_on_regression, float(alpha), fmt,
                              None if min_effect is None else float(min_effect),
                              bool(fail_on_broken))


def compare(base, new, *more, normalize=False, fail_on_regression=None, alpha=0.05,
            min_effect=None, fail_on_broken=False):
    """bench_runner compare from Python: each report (a path or a dict) after the first against
    the first. Returns the comparison as a dict (per-cell ratios of medians, Mann-Whitney U,
    geometric means, context diff, conclusions); result["exit_code"] is what the CLI would exit
    with (1 when fail_on_regression fired, or fail_on_broken: a cell that verified in base
    fails or is missing, timings not gated). ReportError for a malformed report."""
    if min_effect is not None and not 0 <= min_effect <= 1000:
        raise UsageError("compare: min_effect must be in [0, 1000] percent")
    text, code = _compare((base, new) + more, normalize, fail_on_regression, alpha, "json",
                          min_effect, fail_on_broken)
    result = json.loads(text)
    result["exit_code"] = code
    return result


def verdict(report, format="json"):
    """Which model wins each workload of a report (a path or a dict), by how much and why:
    a dict for format="json", the text ("text") or Markdown ("md") otherwise. ReportError for
    a malformed report."""
    if format not in ("json", "text", "md"):
        raise ValueError("format: expected json, text or md, got %r" % (format,))
    label, text = _report_text(report)
    try:
        out = _concbench.verdict(text, format)
    except ReportError as e:
        raise ReportError(f"{label}: {e}") from None
    return json.loads(out) if format == "json" else out


def format_table(report):
    return _concbench.format_table(json.dumps(report))


def write_report(path, report):
    """Writes through a temporary file and rename(2): the old file or the new, never half."""
    _concbench.write_report(os.fspath(path), json.dumps(report))


COUNTER_NAMES = (
    "context_switches", "voluntary_context_switches", "involuntary_context_switches",
    "cpu_migrations", "page_faults", "task_clock_ns", "cycles", "instructions",
    "cache_references", "cache_misses", "l1d_load_misses", "llc_load_misses",
)


class counters:
    """Measures a block with the suite's counters, for every thread of the process (those that
    exist at entry and whatever they start, child processes included):

        with concbench.counters() as c:
            work()
        c.values    # {"context_switches": 12, "cycles": None, ...}; None: not countable here
        c.unavailable  # counter -> why not
        c.wall_ns, c.cpu_user_ns, c.cpu_sys_ns
    """

    def __enter__(self):
        self._counters = _concbench.ProcessCounters()
        self.threads_attached = self._counters.threads_attached()
        self.values = None
        self.unavailable = dict(_concbench.counter_unavailable())
        self._t0 = time.perf_counter_ns()
        self._cpu0 = os.times()
        self._start = self._counters.read()
        return self

    def __exit__(self, *exc):
        end = self._counters.read()
        self.wall_ns = time.perf_counter_ns() - self._t0
        cpu = os.times()
        self.cpu_user_ns = int((cpu.user - self._cpu0.user) * 1e9)
        self.cpu_sys_ns = int((cpu.system - self._cpu0.system) * 1e9)
        self.values = {
            k: (end[k] - self._start[k] if end[k] is not None and self._start[k] is not None
                else None)
            for k in COUNTER_NAMES
        }
        del self._counters
        return False

    def __getitem__(self, name):
        return self.values[name]


__all__ = ["run", "bench", "BENCH_MODELS", "validate", "catalog", "counters", "kernels",
           "format_table", "write_report", "compare", "load_report", "verdict", "ReportError",
           "python_context", "UsageError", "COUNTER_NAMES", "SCHEMA_VERSION"]
