"""concbench.bench: your Python function under every real CPython model, and a verdict.

    import concbench
    report = concbench.bench(parse, inputs, workers=(1, 2, 4))
    print(concbench.verdict(report, format="text"))

fn(x) runs for every x in `inputs` under cpython.serial, cpython.threading, cpython.thread_pool,
cpython.process_pool, cpython.asyncio (fn called on the loop, or async_fn awaited when given) and
cpython.asyncio_to_thread, with the runner's warm-up, calibration, repetitions, counters (every
thread and child process of the cell) and report. `python3 -m concbench bench MODULE:FUNCTION`
is the command line.
"""

import inspect

from . import user_workload as uw

# What bench() runs by default: every model that calls a Python function (cpython.*).
DEFAULT_MODELS = ("cpython.serial", "cpython.threading", "cpython.thread_pool",
                  "cpython.process_pool", "cpython.asyncio", "cpython.asyncio_to_thread")
DEFAULT_TASKS = 100
DEFAULT_MIN_TIME = 0.2


def _materialize(inputs, tasks):
    """The inputs as a list: an iterable is read once; a callable gives the i-th input for i in
    range(tasks). Built before any measurement, as a program has its data before it works."""
    if callable(inputs) and not isinstance(inputs, (list, tuple, dict, str, bytes)):
        n = DEFAULT_TASKS if tasks is None else int(tasks)
        if n < 1:
            raise ValueError("bench: tasks must be at least 1")
        return [inputs(i) for i in range(n)]
    try:
        out = list(inputs)
    except TypeError:
        raise ValueError("bench: inputs must be an iterable or a callable giving the i-th input, "
                         "not %s" % type(inputs).__name__) from None
    if not out:
        raise ValueError("bench: inputs is empty")
    return out


def _python_models():
    from . import _concbench
    import json
    return {m["name"] for m in json.loads(_concbench.list())["models"]
            if m["name"].startswith("cpython.")}


def bench(fn, inputs, *, models=None, workers=(1, 2, 4), repetitions=5, min_time=None,
          check=None, async_fn=None, out=None, tasks=None, timeout=None, name=None, seed=None,
          progress=False, overwrite=False):
    """Runs fn(x) for every x in inputs under each model at each worker count and returns the
    report (the same as concbench.run's).

    models: cpython.* model names (default: all of them). Only models that call a Python
    function can run it; C++ models (free_threads, ...) cannot.
    min_time: seconds each repetition lasts at least; the inputs are passed over again until it
    does (default 0.2; 0: exactly one pass over the inputs per repetition).
    check(x, result) -> bool verifies a result instead of == against cpython.serial's (floats,
    objects without a useful ==).
    async_fn: a coroutine function that does what fn does, awaited by cpython.asyncio.
    tasks: with a callable `inputs`, how many inputs it gives (default 100).
    name: the workload's name in the report (default module:qualname of fn).
    Bad arguments raise ValueError (UsageError for bad run settings)."""
    from . import run  # the package's run(); imported here, as the package imports this module
    if not callable(fn):
        raise ValueError("bench: fn must be callable, not %s" % type(fn).__name__)
    if inspect.iscoroutinefunction(fn):
        raise ValueError("bench: fn is a coroutine function; pass a plain function as fn and "
                         "the coroutine function as async_fn")
    if async_fn is not None and not inspect.iscoroutinefunction(async_fn):
        raise ValueError("bench: async_fn must be a coroutine function (async def)")
    if check is not None and not callable(check):
        raise ValueError("bench: check must be callable: check(x, result) -> bool")
    values = _materialize(inputs, tasks)
    chosen = list(DEFAULT_MODELS if models is None else
                  ([models] if isinstance(models, str) else models))
    known = _python_models()
    for m in chosen:
        if m not in known:
            raise ValueError("bench: model %r cannot call a Python function (bench runs the "
                             "cpython.* models: %s)" % (m, ", ".join(sorted(known))))
    work = uw.UserWorkload(name or uw.default_name(fn), fn, values, check=check,
                           async_fn=async_fn)
    work.run_reference()
    work.measure_pickling()
    uw.register(work)
    config = {"workloads": [work.name], "models": chosen,
              "workers": [workers] if isinstance(workers, int) else list(workers),
              "repetitions": repetitions,
              "min_time": DEFAULT_MIN_TIME if min_time is None else min_time}
    if timeout is not None:
        config["timeout"] = timeout
    if seed is not None:
        config["seed"] = seed
    about = {"function": uw.default_name(fn), "inputs": len(values),
             "async_fn": uw.default_name(async_fn) if async_fn is not None else None,
             "check": uw.default_name(check) if check is not None else None,
             "reference_errors": sum(e is not None for e in work.reference_error),
             "pickled_input_bytes": work.pickled_input_bytes,
             "pickled_result_bytes": work.pickled_result_bytes,
             # multiprocessing pickles fn and every input: what cannot be pickled needs code of
             # its own there (a module-level function, state rebuilt in each worker).
             "not_picklable": work.pickle_error}
    return run(config, out=out, progress=progress, overwrite=overwrite,
               _context={"bench": about})


__all__ = ["bench", "DEFAULT_MODELS"]
