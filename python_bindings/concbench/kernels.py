"""The suite's C++ CPU kernels, callable from Python.

release_gil=True drops the GIL around the C++ loop (Py_BEGIN_ALLOW_THREADS), so Python threads
calling it run in parallel; release_gil=False keeps it, and they take turns. The return value is
the kernel's checksum (cpu.spin's: the LCG state after units * 1000 steps), so the work cannot be
skipped."""

from . import _concbench as _c


def spin(units, release_gil=True, seed=0):
    """units of cpu.spin (about a microsecond each here): 1000 dependent multiply-adds."""
    return _c.run_kernel("spin", int(units), 0, int(seed), bool(release_gil))


def pidigits(units, release_gil=True):
    """cpu.pidigits: `units` groups of four digits of pi by a spigot (O(units^2))."""
    return _c.run_kernel("pidigits", int(units), 0, 0, bool(release_gil))


def sha256(units, buffer_bytes=4096, release_gil=True, seed=0):
    """cpu.sha256: `units` chained SHA-256 hashes of a buffer_bytes buffer (OpenSSL)."""
    return _c.run_kernel("sha256", int(units), int(buffer_bytes), int(seed), bool(release_gil))


def spin_state_after(seed, units):
    """What spin(units, seed=seed) returns, computed by jump-ahead: a check that needs no loop."""
    return _c.spin_state_after(int(seed), int(units))


__all__ = ["spin", "pidigits", "sha256", "spin_state_after"]
