"""A Python function as a workload: what concbench.bench measures, under the cpython.* models.

Task i of a batch is the call fn(inputs[i % len(inputs)]). The C++ runner knows such a workload
only as "calls with no steps" (origin "python"); the models look the function up here by the
workload's name (PyModel.setup's `workload`) and call it the way a Python program would: a
thread pool submits fn with the input, a process pool pickles both, asyncio awaits async_fn.

Verification. Before any model runs, bench() calls fn once per input on the calling thread: the
reference, which is what cpython.serial returns. After a batch, outside the model's timed region,
verify() compares each item's result with the reference for its input (==, or check(x, result)
when one is given) and only then seals the item's checksum; a result that differs fails the item
with a message naming the input, and an item the model never ran has no checksum at all. So a
model that loses, duplicates into the wrong slot or corrupts a result fails its cell.
"""

import functools
import pickle

from . import _concbench as _c

# name -> UserWorkload; replaced by each bench() call of the same name.
_REGISTRY = {}

REPR_LIMIT = 80


def _short(value):
    text = repr(value)
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 3] + "..."


class _Injected(Exception):
    """The `fault=throw` parameter: task 0 raises, so a test sees failures reported."""


class _WrongResult:
    """The `fault=wrong_checksum` parameter: task 0 returns this, which equals nothing."""

    def __eq__(self, other):
        return False

    __hash__ = object.__hash__

    def __repr__(self):
        return "<injected wrong result>"


def _raise_injected():
    raise _Injected("injected fault")


def _wrong_result():
    return _WrongResult()


def one_line(exc):
    """An exception as one line, `Type: message`."""
    text = "%s: %s" % (type(exc).__name__, exc)
    return text.splitlines()[0] if text else type(exc).__name__


class UserWorkload:
    """fn, its inputs and what the reference run found, shared by every model of a bench()."""

    def __init__(self, name, fn, inputs, check=None, async_fn=None):
        self.name = name
        self.fn = fn
        self.inputs = inputs
        self.check = check
        self.async_fn = async_fn
        self.reference = [None] * len(inputs)
        self.reference_error = [None] * len(inputs)
        self.pickle_error = None  # why fn or an input cannot cross a process boundary
        self.pickled_input_bytes = None
        self.pickled_result_bytes = None

    def run_reference(self):
        """fn(x) for every input, on this thread: cpython.serial's results, which every model's
        are compared with (and a warm-up of whatever fn caches or imports)."""
        for i, x in enumerate(self.inputs):
            try:
                self.reference[i] = self.fn(x)
            except Exception as e:  # noqa: BLE001 - recorded: every model's item fails with it
                self.reference_error[i] = one_line(e)

    def measure_pickling(self):
        """Pickled bytes per input and per result (what a process pool sends each way), and the
        first reason fn or an input cannot be pickled."""
        try:
            pickle.dumps(self.fn)
        except Exception as e:  # noqa: BLE001 - any pickling failure is the reason
            self.pickle_error = ("fn %s cannot be pickled, and multiprocessing sends it to every "
                                 "worker process: %s" % (_qualname(self.fn), one_line(e)))
            return
        sizes_in, sizes_out = [], []
        for i, x in enumerate(self.inputs):
            try:
                sizes_in.append(len(pickle.dumps(x)))
            except Exception as e:  # noqa: BLE001
                self.pickle_error = ("input %d cannot be pickled, and multiprocessing sends each "
                                     "input to a worker process: %s" % (i, one_line(e)))
                return
            if self.reference_error[i] is None:
                try:
                    sizes_out.append(len(pickle.dumps(self.reference[i])))
                except Exception as e:  # noqa: BLE001
                    self.pickle_error = ("the result for input %d cannot be pickled, and "
                                         "multiprocessing sends it back: %s" % (i, one_line(e)))
                    return
        self.pickled_input_bytes = sum(sizes_in) / len(sizes_in)
        self.pickled_result_bytes = sum(sizes_out) / len(sizes_out) if sizes_out else 0

    def calls(self, tasks):
        """One zero-argument callable per task (task i calls fn on input i mod n), built before
        any batch so a model's loop only calls it. A task with the fault step gets the fault."""
        n = len(self.inputs)
        out = []
        for task in tasks:
            i = task[0]
            call = functools.partial(self.fn, self.inputs[i % n])
            for step in task[3]:
                if step[0] == "cpu" and step[2] == "fault":
                    call = _raise_injected if step[6] == 0 else _wrong_result
            out.append(call)
        return out

    def async_calls(self, tasks):
        """Like calls(), with async_fn: each callable returns a coroutine."""
        n = len(self.inputs)
        return [functools.partial(self.async_fn, self.inputs[task[0] % n]) for task in tasks]

    def metrics(self):
        return {"pickled_input_bytes": self.pickled_input_bytes,
                "pickled_result_bytes": self.pickled_result_bytes}

    def verify(self, res, tasks, model):
        """Turns res.checksums, which hold the results, into sealed checksums where a result
        agrees with the reference; an item that disagrees fails with the input named."""
        n = len(self.inputs)
        check = self.check
        # A call that raised: name its input (the runner names only the work item).
        res.failures = [(k, why if why.startswith("input ") else
                         "input %d: %s" % (tasks[k % len(tasks)][0] % n, why))
                        for k, why in res.failures]
        for k, done in enumerate(res.done):
            if not done:
                continue
            task = tasks[k % len(tasks)]
            i = task[0] % n
            result = res.checksums[k]
            res.checksums[k] = 0
            why = None
            if self.reference_error[i] is not None:
                why = "input %d: the reference call raised %s" % (i, self.reference_error[i])
            elif isinstance(result, _WrongResult):
                why = "input %d: injected wrong result" % i
            elif check is not None:
                try:
                    ok = check(self.inputs[i], result)
                except Exception as e:  # noqa: BLE001
                    ok, why = False, "input %d: check raised %s" % (i, one_line(e))
                if not ok and why is None:
                    why = "input %d: check(x, result) is false for %s's result %s" % (
                        i, model, _short(result))
            else:
                try:
                    same = result == self.reference[i]
                    same = bool(same)
                except Exception as e:  # noqa: BLE001 - numpy arrays and the like
                    same, why = False, ("input %d: results cannot be compared with == (%s); give "
                                        "check=" % (i, one_line(e)))
                if not same and why is None:
                    why = "input %d: %s returned %s, cpython.serial %s" % (
                        i, model, _short(result), _short(self.reference[i]))
            if why is not None:
                res.done[k] = 0
                res.failures.append((k, why))
                continue
            res.checksums[k] = _c.callable_checksum(task[1], res.nonce(k))


def _qualname(fn):
    mod = getattr(fn, "__module__", None) or "?"
    return "%s:%s" % (mod, getattr(fn, "__qualname__", None) or type(fn).__name__)


def default_name(fn):
    return _qualname(fn)


def register(work):
    """Makes `work` the workload of its name, for the C++ runner and for the models."""
    _c.register_callable_workload(work.name, "calls of %s on %d inputs" % (
        _qualname(work.fn), len(work.inputs)), len(work.inputs))
    _REGISTRY[work.name] = work


def find(name):
    return _REGISTRY.get(name)


__all__ = ["UserWorkload", "register", "find", "default_name", "one_line"]
