"""The package is found through PYTHONPATH=<build dir>/python (scripts/test.sh sets it); when it is
not set, the default build directory is tried."""

import os
import sys

_build = os.environ.get("CONCBENCH_BUILD_DIR",
                        os.path.join(os.path.dirname(__file__), "..", "..", "build"))
_pkg = os.path.abspath(os.path.join(_build, "python"))
if os.path.isdir(_pkg) and _pkg not in sys.path:
    sys.path.insert(0, _pkg)


import pytest  # noqa: E402


@pytest.fixture
def require_idle_cpus():
    """require_idle_cpus(n, wait=False) skips the calling test unless this process can run n
    threads at once right now, each on a core of its own (concbench's parallel_capacity counts
    their work as well as their CPU time). Before a measurement, wait=True waits up to 20 checks
    (about 2 s) for the cores, since the host of these VMs takes one away for up to about half
    a second now and then; after it, a single check, for a dip then may have been during it."""
    from concbench import _concbench as _c

    def check(n, wait=False):
        got = 0.0
        for _ in range(20 if wait else 1):
            got = _c.parallel_capacity(n, 0.05)
            if got >= 0.9 * n:
                return
        pytest.skip("needs %d idle CPUs; the machine gave this process %.2f (another process "
                    "is using them, or they share a core)" % (n, got))

    return check
