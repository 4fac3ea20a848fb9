"""scripts/gil_handoff_trace.py: its reading of hand-overs on events whose outcome is known, and
a traced run on both sides whose counts follow from the run's own shape (no timing is checked)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "gil_handoff_trace.py")
BUILD = os.path.abspath(os.environ.get("CONCBENCH_BUILD_DIR", os.path.join(ROOT, "build")))
LIB = os.path.join(BUILD, "libconcbench_gil_handoff_trace.so")

spec = importlib.util.spec_from_file_location("gil_handoff_trace", SCRIPT)
ght = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ght)

R, A, B = 1, 2, 3  # the responder, the holding spinner, the asking spinner
GIL, MU = "0xc0", "0xm0"


def ev(ns, tid, op, rc=0, cpu=0, obj=GIL, mutex=MU):
    return ght.Event(ns, tid, op, obj, rc, cpu, mutex)


def handover(t, winner, lag_ns, holder_cpu=1):
    """B's wait runs out (a drop request), B waits again; A, the holder, locks the GIL's mutex
    lag_ns after B's return into the wait and signals; `winner` consumes the signal."""
    return [ev(t, B, ght.TWAIT_OUT, ght.ETIMEDOUT, cpu=0),
            ev(t + 300, B, ght.TWAIT_IN, cpu=0),
            ev(t + 300 + lag_ns, A, ght.LOCK_IN, obj=MU, mutex="0x0", cpu=holder_cpu),
            ev(t + 400 + lag_ns, A, ght.SIGNAL, cpu=holder_cpu, mutex="0x0"),
            ev(t + 5000 + lag_ns, winner, ght.TWAIT_OUT, 0)]


def test_hand_overs_are_read_as_they_happened():
    events = [ev(0, R, ght.IO, ght.READ),
              ev(10, B, ght.TWAIT_IN),
              ev(20, R, ght.TWAIT_IN)]
    events += handover(1_000, winner=B, lag_ns=200)  # B stole it: R waits on
    # The next hand-over: B holds now and A, forced out, asks; it is R that wakes.
    events += [ev(30_000, A, ght.TWAIT_IN),
               ev(40_000, A, ght.TWAIT_OUT, ght.ETIMEDOUT, cpu=0),
               ev(40_100, A, ght.TWAIT_IN, cpu=0),
               ev(43_100, B, ght.LOCK_IN, obj=MU, mutex="0x0", cpu=1),
               ev(43_200, B, ght.SIGNAL, cpu=1, mutex="0x0"),
               # A returns first but waits again (glibc's early return): R is the one that
               # got the lock, as its own release (the next signal) shows.
               ev(43_300, A, ght.TWAIT_OUT, 0, cpu=0),
               ev(43_400, A, ght.TWAIT_IN, cpu=0),
               ev(50_000, R, ght.TWAIT_OUT, 0),
               ev(55_000, R, ght.SIGNAL, mutex="0x0"),
               ev(60_000, R, ght.IO, ght.WRITE),
               ev(70_000, R, ght.IO, ght.READ)]
    events.sort()
    assert ght.responders(events) == [R]
    got = ght.analyze(events, R)
    assert got["handoffs"] == 2
    assert got["stolen"] == 1
    assert got["same_cpu"] == [0, 0] and got["cross_cpu"] == [1, 2]
    assert got["lag"] == {"0-0.5": [1, 1], "2-5": [0, 1]}
    assert got["signal"] == {"0-0.5": [1, 1], "2-5": [0, 1]}  # 100 ns after the lock call
    # One timed wait (R's) between the receive and the send; none between the send and the
    # next receive.
    waits = got["responder_waits"]
    assert waits["after_receive"] == {"acquisitions": 1, "no_wait": 0.0, "mean_waits": 1.0}
    assert waits["after_send"] == {"acquisitions": 1, "no_wait": 1.0, "mean_waits": 0.0}


def test_a_signal_nobody_asked_for_is_not_a_hand_over():
    # The holder signals on a release of its own (no waiter timed out just before): not a
    # spinner's request, so it says nothing about who wins one.
    events = [ev(0, R, ght.IO, ght.READ), ev(10, B, ght.TWAIT_IN), ev(20, R, ght.TWAIT_IN),
              ev(5_000_000, A, ght.SIGNAL), ev(5_001_000, R, ght.TWAIT_OUT, 0),
              ev(5_002_000, R, ght.IO, ght.WRITE)]
    assert ght.analyze(events, R)["handoffs"] == 0


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    for args in (["--python", "/nonexistent/python3"],
                 ["--python", sys.executable, "--runs", "0"],
                 ["--python", sys.executable, "--build-dir", str(tmp_path)]):
        r = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def _cpython():
    # Debian's own 3.11 is always there; any CPython with a gil_threads policy would do.
    return "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else None


def test_a_traced_run_counts_every_round_on_both_sides(tmp_path):
    python = _cpython()
    if python is None or not os.path.exists(LIB):
        pytest.skip("needs /usr/bin/python3 and the built trace library")
    trips = 20
    out = tmp_path / "f.json"
    r = subprocess.run([sys.executable, SCRIPT, "--python", python, "--runs", "1",
                        "--cpu-threads", "1", "--round-trips", str(trips), "--build-dir", BUILD,
                        "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    figures = json.loads(out.read_text())
    assert len(figures) == 2
    for name, side in figures.items():
        # Each batch's responder receives `trips` times and sends after each receive: every
        # receive is one acquisition; the last send has no receive after it.
        waits = side["merged"]["responder_waits"]
        batches = waits["after_receive"]["acquisitions"] // trips
        assert batches >= 1, name
        assert waits["after_receive"]["acquisitions"] == batches * trips, name
        assert waits["after_send"]["acquisitions"] == batches * (trips - 1), name
        assert side["rates"][0] > 0, name
