"""A real extension that releases the GIL: numpy's sort under concbench.bench, beside the
pure-Python and concbench.kernels functions of test_bench.py. Skipped where numpy is missing."""

import os
import sys

import pytest

import concbench
from concbench import _concbench as _c

np = pytest.importorskip("numpy", reason="numpy is not installed for this interpreter")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python"))
import numpy_ops  # noqa: E402


def test_numpy_sort_verifies_under_every_model():
    inputs = [numpy_ops.arrays(i)[:20_000] for i in range(4)]
    r = concbench.bench(numpy_ops.sort, inputs, check=numpy_ops.same_sum, workers=(1, 2),
                        repetitions=1, min_time=0)
    for c in r["results"]:
        assert c["status"] == "ok", (c["model"], c["workers"], c["error"])
    # Pickled arrays are what a process pool pays for: 20,000 float64 and a header.
    mm = [c for c in r["results"] if c["model"] == "cpython.process_pool"][0]
    assert mm["repetitions"][0]["model_metrics"]["pickled_input_bytes"] > 160_000


def test_threads_run_numpy_in_parallel():
    got = _c.parallel_capacity(2, 0.05)
    if got < 1.8:
        pytest.skip("needs 2 idle CPUs; the machine gave this process %.2f" % got)
    inputs = [numpy_ops.arrays(i) for i in range(8)]
    r = concbench.bench(numpy_ops.sort, inputs, check=numpy_ops.same_sum,
                        models=["cpython.serial", "cpython.threading"], workers=(1, 2),
                        repetitions=3, min_time=0.3)
    s = {(c["model"], c["workers"]): c["summary"]["speedup_vs_serial"] for c in r["results"]}
    assert s[("cpython.threading", 2)] > 1.4, s
