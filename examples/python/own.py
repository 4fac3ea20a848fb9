"""Two functions to try concbench.bench on (README, "Your own workload"):

    python3 -m concbench bench own:arith --inputs-fn own:sizes --tasks 16 \
        --models cpython.serial,cpython.threading,cpython.process_pool --workers 1,2

arith is pure-Python arithmetic, so it holds the GIL from start to end; native does its loop in
the suite's C++ kernel with the GIL released, as a C extension would. Which model wins each, and
why, is what the verdict says.
"""

import concbench


def arith(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def native(units):
    return concbench.kernels.spin(units, release_gil=True)


def sizes(i):
    """The i-th input of arith: about 10 ms of interpreter work each."""
    return 200_000


def units(i):
    """The i-th input of native: about 10 ms of C++ work each."""
    return 10_000
