"""cpython.process_threads: worker processes, each running chunks of tasks on its own thread
pool."""

import gc
import os
import signal
import socket
import threading
import time

import pytest

import concbench
from concbench import workloads as wl
from concbench.models import process_threads as pt

MODEL = "cpython.process_threads"


def _run(workloads, workers=(1, 2), **params):
    return concbench.run({"suite": "smoke", "workloads": list(workloads), "models": [MODEL],
                          "workers": list(workers), "repetitions": 1, "params": params})


def test_supported_workloads_verify_at_1_and_2_processes():
    r = _run(wl.SUPPORTED)
    assert {c["workload"] for c in r["results"]} <= set(pt.ProcessThreads.workloads)
    assert "cpu.counter_race" not in {c["workload"] for c in r["results"]}
    for c in r["results"]:
        assert c["status"] == "ok", (c["workload"], c["workers"], c["error"])


@pytest.mark.parametrize("processes,threads", [(2, 3), (1, 4), (2, 1)])
def test_every_process_and_every_thread_takes_tasks(processes, threads):
    # Sleeping tasks keep a thread busy without CPU, so the batch spreads over all of them.
    r = _run(["io.sleep"], workers=[processes], tasks=8 * processes * threads, sleep_us=20000,
             threads_per_process=threads)
    (c,) = r["results"]
    assert c["status"] == "ok", c["error"]
    mm = c["repetitions"][0]["model_metrics"]
    assert mm["threads_per_process"] == threads
    assert mm["processes_used"] == processes, mm
    assert mm["threads_used"] == processes * threads, mm
    assert mm["chunk_items"] >= threads
    # The workers' CPU is reported as the children's.
    assert c["repetitions"][0]["wall_ns"] < 8 * 20e6 * 3


def test_chunks_feed_every_thread_and_spread_over_processes():
    assert pt.chunk_size(4, 2, 2) == 2
    assert pt.chunk_size(32, 2, 2) == 4
    assert pt.chunk_size(3, 4, 8) == 1
    assert pt.chunk_size(1000, 2, 2) == 125
    for items in range(1, 60):
        for p in (1, 2, 3):
            for t in (1, 2, 5):
                s = pt.chunk_size(items, p, t)
                assert 1 <= s <= -(-items // p)
                assert s >= min(t, -(-items // p))


@pytest.mark.parametrize("bad", ["0", "257", "two"])
def test_bad_threads_per_process_is_refused(bad):
    with pytest.raises(concbench.UsageError):
        concbench.validate({"suite": "smoke", "workloads": ["io.sleep"], "models": [MODEL],
                            "params": {"threads_per_process": bad}})


def arith(x):
    return sum(i * i for i in range(x))


def test_user_function_crosses_pickled():
    r = concbench.bench(arith, [100, 200, 300, 400], models=[MODEL], workers=(1, 2),
                        repetitions=1, min_time=0)
    for c in r["results"]:
        assert c["status"] == "ok", c["error"]
        mm = c["repetitions"][0]["model_metrics"]
        assert mm["pickled_input_bytes"] > 0 and mm["pickled_result_bytes"] > 0


def test_an_unpicklable_function_fails_with_one_line():
    r = concbench.bench(lambda x: x + 1, [1, 2], models=[MODEL, "cpython.serial"],
                        workers=(1,), repetitions=1, min_time=0)
    cells = {c["model"]: c for c in r["results"]}
    assert cells["cpython.serial"]["status"] == "ok"
    err = cells[MODEL]["error"]
    assert cells[MODEL]["status"] == "error" and "cannot be pickled" in err and "\n" not in err


def test_the_runners_timeout_stops_the_batch():
    r = concbench.run({"suite": "smoke", "workloads": ["io.sleep"], "models": [MODEL],
                       "workers": [1], "repetitions": 1, "timeout": 0.5,
                       "params": {"tasks": "4", "sleep_us": "3000000"}})
    (c,) = r["results"]
    assert c["status"] == "timed_out" and "abandoned" not in c["error"], c["error"]


def _echo(sock, data):
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        got += sock.recv(len(data) - len(got))
    return got


@pytest.mark.parametrize("what", ["IoEnv", "EchoClient"])
def test_a_forked_child_dropping_an_inherited_peer_leaves_the_parents_alone(what):
    # multiprocessing's fork start method copies every live object into its workers; a worker's
    # garbage collector may then destroy a copy. That once wrote the parent's stop signal (its
    # echo server went silent) or joined a thread that exists only in the parent (an abort).
    env = concbench._concbench.IoEnv()
    sock = socket.socket(fileno=os.dup(env.pipe_fd(0)))
    sock.setblocking(True)
    sock.settimeout(10)
    assert _echo(sock, b"before") == b"before"
    inherited = env
    if what == "EchoClient":
        inherited = concbench._concbench.EchoClient(1, 1, 8, 0)
        responder = socket.socket(fileno=os.dup(inherited.responder_fd()))
        responder.setblocking(True)
        responder.settimeout(10)
        assert len(responder.recv(8)) == 8  # its thread runs, waiting for the echo
    pid = os.fork()
    if pid == 0:
        # A thread of the child's own, which may take the stack (and thread descriptor) the
        # parent's thread had: a join of the inherited copy's thread would then reach this one.
        started = threading.Event()
        threading.Thread(target=started.set, daemon=True).start()
        started.wait()
        inherited = None
        if what == "IoEnv":
            env = None
        gc.collect()
        os._exit(0)
    deadline = time.monotonic() + 10
    done, status = os.waitpid(pid, os.WNOHANG)
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
        done, status = os.waitpid(pid, os.WNOHANG)
    if not done:  # a child stuck joining a thread it does not have
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert done and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert _echo(sock, b"after") == b"after"
    sock.close()
    if what == "EchoClient":
        responder.sendall(b"12345678")  # abort would end it too; this ends it as it should
        inherited.finish()
        responder.close()
