"""concbench.kernels: C++ kernels from Python, with and without the GIL."""

import threading
import time

import pytest

import concbench
from concbench import workloads as wl


class _Never:
    @staticmethod
    def is_set():
        return False


def test_spin_returns_the_predicted_state():
    for seed in (0, 1, 12345):
        assert concbench.kernels.spin(300, seed=seed) == concbench.kernels.spin_state_after(seed, 300)
        assert concbench.kernels.spin(300, release_gil=False, seed=seed) == \
            concbench.kernels.spin_state_after(seed, 300)


def test_pure_python_kernels_agree_with_cpp():
    assert wl.spin(5, 77, _Never) == concbench.kernels.spin(5, seed=77)
    assert wl.pidigits(60, _Never) == concbench.kernels.pidigits(60)
    for nbytes in (16, 2048, 5000):
        assert wl.sha256(7, nbytes, 99, _Never) == concbench.kernels.sha256(7, nbytes, seed=99)


def test_only_standalone_kernels_are_callable():
    with pytest.raises(ValueError):
        concbench._concbench.run_kernel("counter_race", 10)


def test_cancel_flag_stops_a_native_kernel():
    flag = concbench._concbench.CancelFlag()
    flag.set()
    with pytest.raises(concbench._concbench.Cancelled):
        concbench._concbench.run_kernel("spin", 10**9, 0, 0, True, flag)


def _wall(threads, units, release):
    per = units // threads
    ts = [threading.Thread(target=concbench.kernels.spin, args=(per, release))
          for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0



def test_releasing_the_gil_runs_two_threads_in_parallel_and_holding_it_does_not(
        require_idle_cpus):
    # A ratio within one run, best of three, with a margin wide enough for a noisy shared VM
    # (the measured figures on the reference VM are 1.97x and 1.00x). Two idle cores are the
    # claim's premise: checked before and after, skipped (with the figure) otherwise.
    require_idle_cpus(2, wait=True)
    units = 100_000
    speedup = {}
    for release in (True, False):
        one = min(_wall(1, units, release) for _ in range(3))
        two = min(_wall(2, units, release) for _ in range(3))
        speedup[release] = one / two
    require_idle_cpus(2)
    assert speedup[False] < 1.25, speedup
    assert speedup[True] > 1.4, speedup
