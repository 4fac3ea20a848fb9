"""The cpython.* models: real CPython's threading, concurrent.futures and asyncio running the
suite's workloads under the C++ runner (one file per model). register_all() adds them to the
runner's registry; the package does so on import."""

import json


from .. import _concbench as _c
from .. import workloads as wl
from .asyncio_model import AsyncioModel
from .asyncio_to_thread import AsyncioToThread
from . import gevent_model
from . import interpreters
from .process_pool import ProcessPool
from .process_threads import ProcessThreads
from .serial import Serial
from .thread_pool import ThreadPool
from .threads import Threads

# Models whose module this interpreter lacks are left out of MODELS (and of the runner's
# registry): unavailable() says why, and python_context() records it.
_OPTIONAL = ((gevent_model.GeventModel, gevent_model.UNAVAILABLE),
             (interpreters.Interpreters, interpreters.UNAVAILABLE))

MODELS = (Serial, Threads, ThreadPool, ProcessPool, AsyncioModel, AsyncioToThread,
          ProcessThreads) + tuple(
    m for m, why in _OPTIONAL if why is None)


def unavailable():
    """{model name: one line saying why it cannot run on this interpreter}."""
    return {m.name: why for m, why in _OPTIONAL if why is not None}


def python_spin_units_per_ms():
    """cpu.spin units per millisecond in pure Python on this interpreter (the fastest of a few
    short trials), so mixed.cpu_io's cpu_us means CPU microseconds for the cpython.* models."""
    best = 0.0
    units = 8

    class _Never:
        @staticmethod
        def is_set():
            return False

    import time
    for trial in range(3):
        t0 = time.perf_counter_ns()
        wl.spin(units, trial + 1, _Never)
        dt = max(1, time.perf_counter_ns() - t0)
        best = max(best, units * 1e6 / dt)
    return max(1, round(best))


def workload_params():
    """Defaults the cpython.* models set for workloads: a pure-Python unit of cpu.spin costs
    about a hundred times the C++ one, so units are fewer and batches last about as long. Every
    cell records the parameters it ran with; --param overrides these."""
    rate = python_spin_units_per_ms()
    return {
        "cpu.spin": {"units": "50"},
        "cpu.pidigits": {"units": "100"},
        "latency.echo_under_load": {"max_cpu_units": "20000"},
        # Python units: a spinner's bound about twice the default 20 pings at 100 ms (on one
        # event loop a spinner runs to it). latency.echo_long_hold's spinners run the C++
        # kernel, whose units the C++ default bounds.
        "latency.paced_ping": {"max_cpu_units": str(4000 * rate)},
        "mixed.cpu_io": {"spin_units_per_ms": str(rate)},
    }


def register_all():
    known = set(_c.model_names())
    todo = [m for m in MODELS if m.name not in known]
    if not todo:
        return
    wp = workload_params()
    for m in todo:
        _c.register_model(m.name, m.description, m, m.single_worker, m.separate_processes,
                          json.dumps(list(m.params)), list(m.workloads),
                          {k: v for k, v in wp.items() if k in m.workloads},
                          m.latency_means, m.python_callables)


def names():
    return [m.name for m in MODELS]


__all__ = ["MODELS", "register_all", "names", "unavailable"]
