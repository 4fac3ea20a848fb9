"""The package is found through PYTHONPATH=<build dir>/python (scripts/test.sh sets it); when it is
not set, the default build directory is tried."""

import os
import sys

_build = os.environ.get("CONCBENCH_BUILD_DIR",
                        os.path.join(os.path.dirname(__file__), "..", "..", "build"))
_pkg = os.path.abspath(os.path.join(_build, "python"))
if os.path.isdir(_pkg) and _pkg not in sys.path:
    sys.path.insert(0, _pkg)
