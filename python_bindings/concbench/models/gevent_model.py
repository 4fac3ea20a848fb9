"""cpython.gevent: every task a greenlet on one gevent hub on one thread (the cell's), IO through
gevent's cooperative sockets and sleep, CPU steps inline: they block the hub, as they block an
asyncio loop. Lanes, each with its own connection to the echo server, pull tasks from the batch;
max_inflight bounds them (0: every task of the batch at once).

patch=no (the default): no monkey-patching. gevent.monkey.patch_all() replaces socket,
time.sleep, threading and more for the whole process: the C++ runner's threads, the echo
server's Python-facing peers and every other model of the same run would then run on gevent's
primitives. Instead the task's steps call gevent's APIs explicitly (gevent.sleep, gevent.socket
over the IoEnv's descriptors), which is what patched blocking code ends up calling. The hub lives
on the cell's thread and is destroyed at teardown. A user function (concbench.bench) runs in a
greenlet; a plain fn that does not call gevent's APIs blocks the hub for its whole call (the hub
lag shows it).

patch=child: gevent as programs normally use it, patched first, then plain blocking code. A
child process (a fresh `python -c`, not multiprocessing, so that no __main__ is re-imported),
started in setup, calls gevent.monkey.patch_all() before anything else runs there and executes
each batch with the suite's blocking code (workloads.execute) unchanged, on max_inflight greenlet
lanes, time.sleep and the sockets being gevent's now. What crosses: the batch's task list (or a
user function's pickled calls) once per batch, and its results back; the child's CPU is the
span's child CPU (its own getrusage); the runner's cancel kills the child, and the next batch
starts a fresh one.

A monitor greenlet sleeps 1 ms at a time and records how late it wakes: hub_lag in the report's
model_metrics, as cpython.asyncio's loop_lag."""

import os
import resource
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection

from .. import _concbench as _c
from .. import user_workload as uw
from .. import workloads as wl
from .asyncio_model import _percentile
from .base import PyModel, Results, WorkerClock, param_choice, param_integer

try:
    import gevent
    import gevent.socket
    UNAVAILABLE = None
except ImportError as e:  # not registered then (models.unavailable() says why)
    gevent = None
    UNAVAILABLE = "gevent is not installed for this interpreter (%s; scripts/setup.sh installs " \
                  "python3-gevent)" % e

LAG_INTERVAL_S = 0.001


class _LaneSockets:
    def __init__(self, state):
        self.state = state
        self.socks = {}

    def get(self, kind, lane):
        s = self.socks.get((kind, lane))
        if s is None:
            env = self.state.env
            fd = env.pipe_fd(lane) if kind == "pipe_echo" else env.tcp_fd(lane)
            s = gevent.socket.socket(fileno=os.dup(fd))
            self.socks[(kind, lane)] = s
        return s

    def close(self):
        for s in self.socks.values():
            s.close()
        self.socks.clear()


def _recv_exact(sock, buf):
    view = memoryview(buf)
    while view:
        n = sock.recv_into(view)
        if n == 0:
            raise ConnectionError("echo peer closed the connection")
        view = view[n:]


def _echo(sock, step, seed):
    nbytes, units = step[3], step[4]
    inbuf = bytearray(nbytes)
    h = 0
    for r in range(units):
        out = _c.fill_bytes(nbytes, _c.echo_message_seed(seed, r))
        for off in range(0, nbytes, wl.ECHO_CHUNK):
            n = min(wl.ECHO_CHUNK, nbytes - off)
            sock.sendall(out[off : off + n])
            _recv_exact(sock, memoryview(inbuf)[off : off + n])
        h = wl.fold(h, _c.hash_bytes(inbuf))
    return h


def _respond(step, seed, state):
    _, _, pace_ns, nbytes, units, _, want = step
    start = time.monotonic()
    while state.companions < want and time.monotonic() - start < wl.COMPANION_WAIT_S:
        gevent.sleep(0.0002)
    state.companions_seen = state.companions
    client = _c.EchoClient(seed, units, nbytes, 0, pace_ns)
    sock = gevent.socket.socket(fileno=os.dup(client.responder_fd()))
    try:
        buf = bytearray(nbytes)
        h = 0
        received = [0] * (units if pace_ns else 0)  # paced pings: as workloads._respond
        for r in range(units):
            _recv_exact(sock, buf)
            if pace_ns:
                received[r] = time.monotonic_ns()
            h = wl.fold(h, _c.hash_bytes(buf))
            sock.sendall(buf)
        # The client's thread is done once the last reply is read: finish() only joins it.
        state.rtts.extend(client.finish())
        if pace_ns:
            state.one_way.extend(_c.one_way_delays(client.sent_ns(), received))
    finally:
        sock.close()
    state.stop = True
    return h


def execute_gevent(task, lane, state, socks, nonce):
    """workloads.execute with gevent's cooperative IO: runs in a greenlet."""
    _, seed, payload, steps = task
    h = _c.hash_bytes(payload, seed)
    for i, step in enumerate(steps):
        s = _c.step_seed(seed, i)
        kind = step[0]
        if kind == "cpu":
            v = wl.run_cpu_step(step, s, state)
        elif kind == "sleep":
            start = time.monotonic_ns()
            gevent.sleep(step[5] / 1e9)
            v = step[5] if time.monotonic_ns() - start >= step[5] else 0
        elif kind in ("pipe_echo", "tcp_echo"):
            v = _echo(socks.get(kind, lane), step, s)
        elif kind == "file_read":
            v = wl.run_io_step(step, s, lane, state)  # pread of a page-cached file: inline
        elif kind == "echo_respond":
            v = _respond(step, s, state)
        else:
            raise ValueError("unknown step kind %r" % kind)
        h = wl.fold(h, v)
    return _c.seal(h, nonce)


class _NeverCancelled:
    @staticmethod
    def is_set():
        return False


def _lag_stats(lags):
    lags.sort()
    return {"samples": len(lags), "p50_ns": _percentile(lags, 50),
            "p99_ns": _percentile(lags, 99), "max_ns": lags[-1] if lags else 0}


def _child_main(conn):
    """The patch=child process: patch first, then serve batches until told to stop."""
    from gevent import monkey
    monkey.patch_all()
    import gevent as g
    st = wl.BatchState(_NeverCancelled(), _c.IoEnv())
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            return
        tasks, calls, rounds, nonce, stride, limit = msg
        n = len(tasks) if calls is None else len(calls)
        items = n * rounds
        res = Results(items, n, nonce, stride)
        st.begin()
        lanes = min(limit or n, items)
        nxt = [0]
        lags = []
        stop = [False]

        def lane(i):
            while nxt[0] < items:
                k = nxt[0]
                nxt[0] = k + 1
                if calls is None:
                    task = tasks[k % n]
                    res.record(k, lambda nonce: wl.execute(task, i, st, nonce))
                else:
                    res.record_call(k, calls[k % n])

        def monitor():
            while not stop[0]:
                t0 = time.perf_counter_ns()
                g.sleep(LAG_INTERVAL_S)
                lags.append(max(0, time.perf_counter_ns() - t0 - int(LAG_INTERVAL_S * 1e9)))

        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        # The hub's thread is the worker: its time off the CPU is its IO wait. Not attached:
        # the lanes' blocking steps, greenlets of this thread, would time overlapping waits.
        clk = WorkerClock(0, kind="loop", attach=False)
        mon = g.spawn(monitor)
        g.joinall([g.spawn(lane, i) for i in range(lanes)])
        stop[0] = True
        mon.join()
        rec = clk.close()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (int((ru1.ru_utime - ru0.ru_utime) * 1e9), int((ru1.ru_stime - ru0.ru_stime) * 1e9))
        rec.update(tasks=sum(res.done), loop_lag_ns=sum(lags))
        conn.send((res.checksums, bytes(res.done), res.latency_ns, res.failures, lanes,
                   _lag_stats(lags), st.observations(), cpu, rec))


class GeventModel(PyModel):
    name = "cpython.gevent"
    description = "greenlets on one gevent hub, gevent's cooperative sleep and sockets"
    latency_means = ("from a lane greenlet taking the task to its result, time spent waiting on "
                     "the hub included")
    single_worker = True
    params = (param_integer("max_inflight", "greenlets in flight at once (0: every task of the "
                            "batch)", 0, 0, 100_000_000),
              param_choice("patch", "no: gevent's APIs called in this process; child: "
                           "monkey.patch_all() in a child process running the blocking code",
                           "no", ("no", "child")))

    def setup(self, workers, params, seed, cancel, workload=None):
        super().setup(workers, params, seed, cancel, workload)
        self.patch = params["patch"]
        self.hub = None
        self.child = None
        self.restarts = -1
        if self.patch == "child":
            if self.user is not None and self.user.pickle_error:
                from .process_pool import NotPicklable
                raise NotPicklable(self.user.pickle_error)
            self._start_child()
            return
        self.hub = gevent.get_hub()  # this thread's hub, created on first use
        self.socks = _LaneSockets(self.state)

    def _start_child(self):
        ours, theirs = socket.socketpair()
        pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in sys.path if p])
        code = ("import sys; from multiprocessing.connection import Connection; "
                "from concbench.models.gevent_model import _child_main; "
                "_child_main(Connection(int(sys.argv[1])))")
        self.child = subprocess.Popen([sys.executable, "-c", code, str(theirs.fileno())],
                                      pass_fds=(theirs.fileno(),), env=env)
        theirs.close()
        self.conn = Connection(ours.detach())
        if not self.conn.poll(60) or self.conn.recv() != "ready":
            self._stop_child(terminate=True)
            raise RuntimeError("the gevent child did not start")
        self.restarts += 1

    def _stop_child(self, terminate=False):
        if self.child is None:
            return
        try:
            if not terminate:
                self.conn.send(None)
                self.child.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.child.poll() is None:
            self.child.kill()
            self.child.wait(5)
        self.conn.close()
        self.child = None

    def _run_child(self, tasks, rounds, nonce, stride):
        if self.child is None or self.child.poll() is not None:
            self._stop_child(terminate=True)
            self._start_child()
        n = len(tasks)
        items = n * rounds
        res = Results(items, n, nonce, stride)
        calls = self.user_calls(tasks)
        limit = int(self.params["max_inflight"])
        caller = WorkerClock(-1, kind="parent")
        res.begin_work()
        t0 = time.thread_time_ns()
        self.conn.send((tasks if calls is None else None, calls, rounds, nonce, stride, limit))
        caller.serialize_ns = time.thread_time_ns() - t0
        reply = None
        while reply is None:
            if self.conn.poll(wl.WAIT_SLICE_S):
                t0 = time.thread_time_ns()
                reply = self.conn.recv()
                caller.deserialize_ns = time.thread_time_ns() - t0
            elif self.cancel.is_set() or self.child.poll() is not None:
                break
        res.end_work()
        caller.close()
        caller.clip(res.begin_ns(), res.begin_ns() + res.span[0])
        metrics = {"patch": "child", "monkey_patched": True, "gevent": gevent.__version__,
                   "child_restarts": self.restarts}
        if reply is None:
            self._stop_child(terminate=True)  # cancelled or died: items stay not done
            return res.as_tuple(self.finish(res, tasks, metrics), (0, [], 0, [], []))
        checksums, done, lat, failures, lanes, lag, observations, cpu, rec = reply
        res.checksums, res.done, res.latency_ns, res.failures = checksums, bytearray(done), lat, \
            failures
        res.span = res.span + cpu
        metrics.update({"max_inflight": lanes, "hub_lag": lag,
                        "worker_pids": [self.child.pid],  # the runner reads its USS and PSS
                        # The child's hub thread, and this process's thread sending the batch
                        # (pickling it: serialize) and receiving its results (deserialize).
                        "attribution": [rec, caller.record]})
        return res.as_tuple(self.finish(res, tasks, metrics), observations)

    def run(self, tasks, rounds, nonce, stride):
        if self.patch == "child":
            return self._run_child(tasks, rounds, nonce, stride)
        n = len(tasks)
        items = n * rounds
        res = Results(items, n, nonce, stride)
        st = self.state
        st.begin()
        limit = int(self.params["max_inflight"]) or n
        lanes = min(limit, items)
        nxt = [0]
        lags = []
        stop = [False]
        calls = self.user_calls(tasks)

        def lane(i):
            while nxt[0] < items and not self.cancel.is_set():
                k = nxt[0]
                nxt[0] = k + 1
                sampled = res.sampled(k)
                tr = clk.trace
                t0 = time.perf_counter_ns() if sampled or tr is not None else 0
                try:
                    if calls is None:
                        checksum = execute_gevent(tasks[k % n], i, st, self.socks, res.nonce(k))
                    else:
                        checksum = calls[k % n]()
                except wl.Cancelled:
                    return
                except Exception as e:  # noqa: BLE001 - a task's failure is a result
                    res.failures.append((k, uw.one_line(e)))
                    continue
                if sampled or tr is not None:
                    t1 = time.perf_counter_ns()
                    if sampled:
                        res.latency_ns.append(t1 - t0)
                    if tr is not None:  # the hub's greenlets overlap: an async span each
                        tr.add("task_async", t0, t1, k)
                res.checksums[k] = checksum
                res.done[k] = 1

        def monitor():
            while not stop[0]:
                t0 = time.perf_counter_ns()
                gevent.sleep(LAG_INTERVAL_S)
                lags.append(max(0, time.perf_counter_ns() - t0 - int(LAG_INTERVAL_S * 1e9)))

        res.begin_work()
        clk = WorkerClock(0, kind="loop")  # the hub's thread: its time off the CPU is its IO wait
        mon = gevent.spawn(monitor)
        work = [gevent.spawn(lane, i) for i in range(lanes)]
        try:
            while True:
                # The runner's timeout sets the flag from another thread: kill the lanes then.
                gevent.joinall(work, timeout=wl.WAIT_SLICE_S)
                if all(g.ready() for g in work):
                    break
                if self.cancel.is_set():
                    gevent.killall(work, block=True, timeout=1)
                    break
        finally:
            res.end_work()
            clk.close()
            stop[0] = True
            mon.join()
        lags.sort()
        metrics = {
            "max_inflight": lanes,
            "gevent": gevent.__version__,
            "patch": "no",
            "monkey_patched": False,
            "hub_lag": {"samples": len(lags), "p50_ns": _percentile(lags, 50),
                        "p99_ns": _percentile(lags, 99), "max_ns": lags[-1] if lags else 0},
            "runs": ("fn called in a greenlet (blocking the hub unless it calls gevent)"
                     if calls is not None else "the task's steps on gevent's sleep and sockets"),
            "attribution": [dict(clk.record, tasks=sum(res.done), loop_lag_ns=sum(lags))],
        }
        return res.as_tuple(self.finish(res, tasks, metrics), st.observations())

    def teardown(self):
        if self.patch == "child":
            self._stop_child()
            super().teardown()
            return
        self.socks.close()
        super().teardown()
        hub, self.hub = self.hub, None
        if hub is not None:
            hub.destroy(destroy_loop=True)  # the cell's thread may not be reused by the runner
