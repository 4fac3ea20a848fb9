"""numpy operations for concbench.bench: numpy releases the GIL inside its C loops (a sort, an
elementwise ufunc on large arrays), so Python threads run them in parallel, where the same work
written in Python would not scale at all.

    python3 -m concbench bench numpy_ops:sort --inputs-fn numpy_ops:arrays --tasks 16 \
        --check numpy_ops:same_sum --models cpython.serial,cpython.threading --workers 1,2

Inputs are made before anything is measured (arrays(i)), so the timed work is numpy's alone.
"""

import numpy as np

N = 400_000


def arrays(i):
    """The i-th input: N random floats, from a seed of its own."""
    return np.random.default_rng(i).random(N)


def sort(a):
    """Sorts a copy (np.sort releases the GIL) and returns a sample of it."""
    return float(np.sort(a)[::1000].sum())


def same_sum(a, result):
    """A float from every model must equal the reference's to the last few bits."""
    return abs(result - float(np.sort(a)[::1000].sum())) <= 1e-9 * max(1.0, abs(result))
