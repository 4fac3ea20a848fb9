#!/usr/bin/python3
"""The models of the rest of Python's concurrency world, measured side by side: subinterpreters
(real on CPython 3.13, emulated in C++), processes of threads, fibers and gevent, the price of
an address space (USS, PSS), and what free threading costs a reference count. Writes
results/models/*.json and results/micro/switch.json; scripts/findings.py reads them.

    python3 scripts/models_matrix.py [--build-dir build] [--repetitions 5]

Run by `bash scripts/regenerate_results.sh models` at a committed revision. Bad input: one line
on stderr, exit 2; a run whose cells did not all verify: exit 1 (the report says which).
"""

import argparse
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "results", "models")


def die(msg):
    sys.stderr.write("models_matrix: %s\n" % msg)
    sys.exit(2)


def pyenv_python(minor):
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        root = os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", minor + ".*", "bin", "python3")))
    return found[-1] if found else None


def build_module(build, exe):
    """The module for another interpreter, beside the main build (target
    concbench_python_matrix); returns its package directory's parent."""
    subprocess.run(["cmake", "-S", ROOT, "-B", build,
                    "-DCONCBENCH_PYTHON_EXECUTABLES=" + exe], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "--target", "concbench_python_matrix", "-j", "2"],
                   check=True, stdout=subprocess.DEVNULL)
    minor = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return os.path.join(build, "python-" + minor)


def python_run(exe, pythonpath, config, out):
    """concbench.run(config) under `exe`, the report written to `out`; the exit status says
    whether every cell verified."""
    code = ("import concbench, json, sys\n"
            "r = concbench.run(json.loads(sys.argv[1]), out=sys.argv[2], overwrite=True)\n"
            "sys.exit(0 if all(c['status'] == 'ok' for c in r['results']) else 1)\n")
    env = dict(os.environ, PYTHONPATH=pythonpath)
    return subprocess.run([exe, "-c", code, json.dumps(config), out], env=env).returncode


def runner_run(build, args, out):
    return subprocess.run([os.path.join(build, "bench_runner"), "run", *args, "--overwrite",
                           "--out", out], stdout=subprocess.DEVNULL).returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--repetitions", default="5")
    a = ap.parse_args()
    build = os.path.abspath(a.build_dir)
    if not os.path.exists(os.path.join(build, "bench_runner")):
        die("%s/bench_runner is missing; run scripts/build.sh first" % build)
    os.makedirs(OUT, exist_ok=True)
    reps = a.repetitions
    failed = []

    # Subinterpreters: real ones on CPython 3.13 beside their C++ prediction and the GIL's
    # threads, in one run, so the ratios are measured side by side.
    py313 = pyenv_python("3.13")
    if py313 is None:
        sys.stderr.write("models_matrix: no CPython 3.13 under pyenv; interpreters skipped\n")
    else:
        path = build_module(build, py313)
        cfg = {"workloads": ["cpu.spin"], "workers": [1, 2], "repetitions": reps,
               "min_time": 0.2,
               "models": ["cpython.serial", "cpython.threading", "cpython.interpreters",
                          "serial", "gil_threads", "interpreters"]}
        if python_run(py313, path, cfg, os.path.join(OUT, "interpreters-3.13.json")):
            failed.append("interpreters-3.13")

    # The C++ models of this issue against their neighbours, on CPU, IO and a mix.
    if runner_run(build, ["--workloads", "cpu.spin,io.sleep,mixed.cpu_io", "--models",
                          "serial,free_threads,gil_threads,interpreters,process_pool,"
                          "process_threads,async,fibers", "--workers", "1,2",
                          "--repetitions", reps, "--min-time", "0.2"],
                  os.path.join(OUT, "cpp.json")):
        failed.append("cpp")
    # Where processes of threads win: a task's CPU share swept, the IO wait fixed.
    if runner_run(build, ["--workloads", "mixed.cpu_io", "--models",
                          "gil_threads,process_pool,process_threads", "--workers", "2",
                          "--param", "cpu_us=50,200,800", "--param", "io_us=800",
                          "--repetitions", reps, "--min-time", "0.2"],
                  os.path.join(OUT, "process_threads-mixed.json")):
        failed.append("process_threads-mixed")
    # What a reference count costs, three ways, alone and shared.
    if runner_run(build, ["--workloads", "cpu.refcount", "--models", "serial,free_threads",
                          "--workers", "1,2", "--param", "mode=plain,atomic,biased",
                          "--param", "sharing=private,shared", "--repetitions", reps,
                          "--min-time", "0.1"],
                  os.path.join(OUT, "refcount.json")):
        failed.append("refcount")
    # gevent beside asyncio and the process-based Python models, on this machine's python3.
    cfg = {"workloads": ["io.sleep", "mixed.cpu_io", "cpu.spin"], "workers": [1, 2],
           "repetitions": reps, "min_time": 0.2,
           "models": ["cpython.serial", "cpython.threading", "cpython.asyncio", "cpython.gevent",
                      "cpython.process_pool", "cpython.process_threads"]}
    if python_run("/usr/bin/python3", os.path.join(build, "python"), cfg,
                  os.path.join(OUT, "python-3.11.json")):
        failed.append("python-3.11")
    # Interpreters without a GIL (Jython) or with a JIT (PyPy), driven over a pipe, beside this
    # machine's CPython through the same driver. Each is skipped when it is not installed.
    pythons = [p for p in ("/usr/bin/jython", "/usr/bin/pypy3", "/usr/bin/python3")
               if os.path.exists(p)]
    if pythons:
        labels = {"/usr/bin/jython": "jython-2.7", "/usr/bin/pypy3": "pypy-3.9",
                  "/usr/bin/python3": "cpython-3.11"}
        args = []
        for p in pythons:
            args += ["--python", p]
        models = ",".join("py:%s.%s" % (labels[p], m) for p in pythons
                          for m in ("serial", "threading"))
        if runner_run(build, args + ["--workloads", "cpu.spin,io.sleep", "--models", models,
                                     "--workers", "1,2", "--repetitions", reps, "--min-time",
                                     "0.3"], os.path.join(OUT, "foreign.json")):
            failed.append("foreign")
    # Is uvloop multithreaded? The OS threads of the process while each cell ran, for asyncio's
    # loop and uvloop's, on socket IO and on a file read (which asyncio hands to its executor).
    # No sleeps: libuv's millisecond timers end short sleeps early, which fails verification
    # (test_models.py's test_a_sleep_cut_short_fails_verification).
    cfg = {"workloads": ["io.pipe_echo", "mixed.cpu_io"], "workers": [1], "repetitions": reps,
           "min_time": 0.2, "models": ["cpython.asyncio"],
           "params": {"loop": "asyncio,uvloop", "io": "pipe_echo,file_read"}}
    if python_run("/usr/bin/python3", os.path.join(build, "python"), cfg,
                  os.path.join(OUT, "uvloop-threads.json")):
        failed.append("uvloop-threads")
    # The cost of a switch: a stackful fiber, a stackless coroutine, an OS thread.
    os.makedirs(os.path.join(ROOT, "results", "micro"), exist_ok=True)
    if subprocess.run([os.path.join(build, "bench_runner"), "micro",
                       "--benchmark_filter=Switch", "--benchmark_repetitions=5",
                       "--benchmark_report_aggregates_only=true",
                       "--benchmark_out=" + os.path.join(ROOT, "results", "micro", "switch.json"),
                       "--benchmark_out_format=json"], stdout=subprocess.DEVNULL).returncode:
        failed.append("micro switch")
    if failed:
        sys.stderr.write("models_matrix: not every cell verified in: %s\n" % ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
