#!/usr/bin/env python3
"""Measures real CPython's GIL behaviour, for scripts/validate_gil.py to set beside gil_threads.

Runs under any CPython 3.6+ with only the standard library and prints one JSON object:
  speedup:  a pure-Python CPU loop, 1 thread vs 2 threads doing the same total work
  echo:     ccbench's latency test: a responder thread serves round trips for a client in another
            process while 0, 1 and 2 CPU-bound threads run; round trips per second and RTT
            percentiles
  race:     lost updates of `x += 1` and `x += one()` with 2 threads x N increments
"""
import json
import socket
import subprocess
import sys
import sysconfig
import threading
import time

CLIENT = r"""
import os, socket, sys, time, struct
fd, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(fileno=fd)
msg = b"x" * size
rtts = []
for _ in range(n):
    t0 = time.perf_counter_ns() if hasattr(time, "perf_counter_ns") else int(time.perf_counter() * 1e9)
    s.sendall(msg)
    got = 0
    while got < size:
        got += len(s.recv(size - got))
    t1 = time.perf_counter_ns() if hasattr(time, "perf_counter_ns") else int(time.perf_counter() * 1e9)
    rtts.append(t1 - t0)
sys.stdout.write(" ".join(map(str, rtts)))
"""


def now():
    return time.perf_counter()


def cpu_loop(n):
    x = 0
    for i in range(n):
        x += i
    return x


def speedup(n):
    t0 = now()
    cpu_loop(2 * n)
    serial = now() - t0
    ts = [threading.Thread(target=cpu_loop, args=(n,)) for _ in range(2)]
    t0 = now()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    threaded = now() - t0
    return {"serial_s": serial, "two_threads_s": threaded, "speedup": serial / threaded}


def echo(cpu_threads, round_trips, size=64):
    stop = [False]

    def spinner():
        x = 0
        while not stop[0]:
            x += 1

    a, b = socket.socketpair()
    spinners = [threading.Thread(target=spinner) for _ in range(cpu_threads)]
    for t in spinners:
        t.start()
    time.sleep(0.05)  # let the spinners own the GIL, as ccbench does

    def responder():
        for _ in range(round_trips):
            got = b""
            while len(got) < size:
                got += a.recv(size - len(got))
            a.sendall(got)

    r = threading.Thread(target=responder)
    r.start()
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(b.fileno()), str(round_trips), str(size)],
                              pass_fds=(b.fileno(),), stdout=subprocess.PIPE)
    out, _ = client.communicate()
    r.join()
    stop[0] = True
    for t in spinners:
        t.join()
    a.close()
    b.close()
    rtts = sorted(int(x) for x in out.split())
    pct = lambda q: rtts[min(len(rtts), max(1, -(-len(rtts) * q // 100))) - 1]
    return {"cpu_threads": cpu_threads, "round_trips": len(rtts),
            "round_trips_per_s": len(rtts) * 1e9 / sum(rtts),
            "rtt_p50_ns": pct(50), "rtt_p99_ns": pct(99), "rtt_max_ns": rtts[-1]}


counter = 0


def one():
    return 1


def add_plain(n):
    global counter
    for _ in range(n):
        counter += 1


def add_call(n):
    global counter
    for _ in range(n):
        counter += one()


def race(fn, n):
    global counter
    counter = 0
    ts = [threading.Thread(target=fn, args=(n,)) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return {"increments": 2 * n, "final": counter, "lost_updates": 2 * n - counter}


def main():
    quick = "--quick" in sys.argv
    loop_n = 2_000_000 if quick else 10_000_000
    trips = {0: 2000, 1: 100, 2: 50} if quick else {0: 10000, 1: 300, 2: 150}
    race_n = 1_000_000
    result = {
        "python": {
            "executable": sys.executable,
            "version": sys.version.split()[0],
            "implementation": sys.implementation.name,
            "switch_interval_s": sys.getswitchinterval(),
            "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
            "config_args": sysconfig.get_config_var("CONFIG_ARGS"),
        },
        "speedup": speedup(loop_n),
        "echo": [echo(k, v) for k, v in sorted(trips.items())],
        "race": {"plain": race(add_plain, race_n), "call_between": race(add_call, race_n)},
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
