"""The suite's workloads in pure Python: what a task's steps do when CPython runs them.

The tasks themselves come from the C++ workloads (the same generator, seeds and parameters), and
so do the checksums they must produce: the runner compares every result with the workload's own
prediction, which the Python side never sees. A step done in Python therefore has to do the same
work as its C++ kernel, bit for bit, or the cell fails verification.

What is Python here and what is not:
  * cpu.spin, cpu.pidigits, latency.echo_under_load's and latency.paced_ping's spinners: plain
    Python loops (the interpreter's work, holding the GIL). latency.echo_long_hold's spinners
    call the C++ spin kernel with the GIL held, hold_us units a call: a long C call. A step
    marked `native` calls the C++ kernel with the GIL released instead: an extension that does
    the work in C.
  * cpu.sha256: hashlib, which releases the GIL for buffers of 2048 bytes or more.
  * cpu.counter_race: `x += 1` on a module global, the textbook race. The C++ kernel also burns
    an interpreter's cost per bytecode and call (instruction_work=-1), or does `instruction_work`
    LCG steps per instruction; CPython pays that cost for real, so the emulation is not repeated
    and any LCG state is computed in closed form for the checksum.
  * IO: sockets and os.pread from Python, against the C++ echo server and scratch file
    (_concbench.IoEnv), which run outside the interpreter as a real server would.
  * Checksums of bytes (hash_bytes) and generated messages (fill_bytes) are the C++ functions:
    bookkeeping that must agree with the predictions, not the work being measured.
"""

import asyncio
import hashlib
import os
import socket
import threading
import time

from . import _concbench as _c

MASK64 = (1 << 64) - 1
LCG_MUL = 6364136223846793005
LCG_INC = 1442695040888963407
ITERATIONS_PER_UNIT = 1000  # cpu.spin: a unit is 1000 LCG steps, as in C++
WAIT_SLICE_S = 0.05  # blocking waits wake this often to notice cancellation

# The calling thread's attribution clock (models.base.WorkerClock), where its model keeps one:
# IO steps add their time off the CPU to it.
clock = threading.local()


def _off_cpu_since(t0, c0, clk=None, kind="io_wait"):
    """A wait's time off the CPU since (t0, c0); with --trace, also a span on clk's track."""
    t1 = time.monotonic_ns()
    off = max(0, (t1 - t0) - (time.thread_time_ns() - c0))
    tr = getattr(clk, "trace", None)
    if tr is not None:
        tr.add(kind, t0, t1)
    return off
ECHO_CHUNK = 64 * 1024  # echo exchanges in chunks, as the C++ step does (see io_steps_linux.cpp)
COMPANION_WAIT_S = 0.2  # echo_respond waits this long at most for its spinners

# The workloads the pure-Python side implements; cpu.stream and cpu.false_sharing measure memory
# layout, which Python code does not control, so they have no Python version.
SUPPORTED = (
    "cpu.spin",
    "cpu.pidigits",
    "cpu.sha256",
    "cpu.counter_race",
    "io.sleep",
    "io.pipe_echo",
    "overhead.noop",
    "latency.echo_under_load",
    "latency.echo_long_hold",
    "latency.paced_ping",
    "mixed.cpu_io",
)

fold = _c.fold
Cancelled = _c.Cancelled


class BatchState:
    """What the tasks of one batch share (one per process): the racy counter lives in a module
    global, the rest here."""

    def __init__(self, cancel, env):
        self.cancel = cancel
        self.env = env
        self.stop = False  # set when the responder is done: spinners stop
        self.companions = 0
        self.companions_seen = 0
        self.rtts = []
        self.one_way = []
        self.spins = []
        self.lock = threading.Lock()

    def begin(self):
        global _counter
        _counter = 0
        self.stop = False
        self.companions = 0
        self.companions_seen = 0
        self.rtts = []
        self.one_way = []
        self.spins = []

    def observations(self):
        return (_counter, list(self.rtts), self.companions_seen, list(self.spins),
                list(self.one_way))


# ---------------------------------------------------------------------------------------------
# CPU kernels, pure Python. Each returns what its C++ kernel returns.


def spin(units, seed, cancel):
    x = seed
    for _ in range(units):
        for _ in range(ITERATIONS_PER_UNIT):
            x = (x * LCG_MUL + LCG_INC) & MASK64
        if cancel.is_set():
            raise Cancelled("cancelled")
    return x


def spin_until_stop(units, seed, state, hold=0):
    with state.lock:  # `+=` from several threads must not itself lose a count
        state.companions += 1
    x = seed
    u = 0
    cancel = state.cancel
    if hold > 0:
        # latency.echo_long_hold: `hold` units of the C++ spin kernel in one call that keeps the
        # GIL, as a big-integer multiplication or a regex match does; the eval loop, and so a
        # waiter's drop request, comes back only between calls. The same LCG chain as the loop
        # below, so the state still verifies against the units.
        while u < units and not state.stop:
            n = min(hold, units - u)
            x = _c.run_kernel("spin", n, 0, x, False, None)
            u += n
            if cancel.is_set():
                raise Cancelled("cancelled")
    else:
        while u < units and not state.stop:
            for _ in range(ITERATIONS_PER_UNIT):
                x = (x * LCG_MUL + LCG_INC) & MASK64
            u += 1
            if cancel.is_set():
                raise Cancelled("cancelled")
    # The runner checks x against u (the workload's verify_batch), not this code.
    with state.lock:
        state.spins.append((seed, u, x))
    return _c.SPIN_OK_TOKEN


def pidigits(units, cancel):
    # Winter's four-digit spigot, line for line the C++ kernel (cpu_pidigits.cpp).
    base = 10000
    c = 14 * units
    f = [base // 5] * (c + 1)
    h = 0
    e = 0
    while c > 0:
        d = 0
        g = c * 2
        b = c
        while True:
            d += f[b] * base
            g -= 1
            f[b] = d % g
            d //= g
            g -= 1
            b -= 1
            if b == 0:
                break
            d *= b
        h = fold(h, e + d // base)
        e = d % base
        c -= 14
        if cancel.is_set():
            raise Cancelled("cancelled")
    return h


def sha256(units, nbytes, seed, cancel):
    buf = bytearray(_c.fill_bytes(nbytes, seed))
    k = min(32, nbytes)
    d = bytes(32)
    h = 0
    for _ in range(units):
        buf[:k] = d[:k]
        d = hashlib.sha256(buf).digest()  # releases the GIL from 2048 bytes on
        h = fold(h, int.from_bytes(d[:8], "little"))
        if cancel.is_set():
            raise Cancelled("cancelled")
    return h


_counter = 0


def _one():
    return 1


def counter_race(units, arg, seed):
    global _counter
    if arg & 1:
        for _ in range(units):
            _counter += _one()  # a call between load and store checks the eval breaker
    else:
        for _ in range(units):
            _counter += 1
    work = arg >> 2  # bit 1: the interpreter's cost (instruction_work=-1), which CPython pays
    return fold(units, _c.lcg_advance(seed, 3 * work * units))


def fault(arg):
    if arg == 0:
        raise RuntimeError("injected fault")
    return 0xBADC0FFEE0DDF00D


NATIVE_KERNELS = ("spin", "pidigits", "sha256")


def run_cpu_step(step, seed, state):
    _, native, kernel, nbytes, units, _, arg = step
    cancel = state.cancel
    if native and kernel in NATIVE_KERNELS:
        return _c.run_kernel(kernel, units, arg, seed, True, cancel)
    if kernel == "spin":
        return spin(units, seed, cancel)
    if kernel == "pidigits":
        return pidigits(units, cancel)
    if kernel == "sha256":
        return sha256(units, arg, seed, cancel)
    if kernel == "counter_race":
        return counter_race(units, arg, seed)
    if kernel == "spin_until_stop":
        return spin_until_stop(units, seed, state, arg)
    if kernel == "fault":
        return fault(arg)
    raise ValueError("no Python version of kernel %r" % kernel)


# ---------------------------------------------------------------------------------------------
# Blocking IO, as a thread does it (the GIL is released inside every socket call and sleep).

_sockets = {}  # (kind, worker, pid) -> socket over the IoEnv's descriptor


def _socket_for(kind, worker, state):
    key = (kind, worker, id(state.env), os.getpid())
    s = _sockets.get(key)
    if s is None:
        fd = state.env.pipe_fd(worker) if kind == "pipe_echo" else state.env.tcp_fd(worker)
        s = socket.socket(fileno=os.dup(fd))
        s.settimeout(WAIT_SLICE_S)
        _sockets[key] = s
    return s


def forget_sockets(env):
    for key in [k for k in _sockets if k[2] == id(env)]:
        _sockets.pop(key).close()


def _send_all(sock, data, cancel):
    view = memoryview(data)
    while view:
        try:
            n = sock.send(view)
        except socket.timeout:
            if cancel.is_set():
                raise Cancelled("cancelled")
            continue
        view = view[n:]


def _recv_exact(sock, buf, cancel):
    view = memoryview(buf)
    while view:
        try:
            n = sock.recv_into(view)
        except socket.timeout:
            if cancel.is_set():
                raise Cancelled("cancelled")
            continue
        if n == 0:
            raise ConnectionError("echo peer closed the connection")
        view = view[n:]


def _echo(sock, step, seed, cancel):
    nbytes, units = step[3], step[4]
    inbuf = bytearray(nbytes)
    h = 0
    for r in range(units):
        out = _c.fill_bytes(nbytes, _c.echo_message_seed(seed, r))
        for off in range(0, nbytes, ECHO_CHUNK):
            n = min(ECHO_CHUNK, nbytes - off)
            _send_all(sock, out[off : off + n], cancel)
            _recv_exact(sock, memoryview(inbuf)[off : off + n], cancel)
        h = fold(h, _c.hash_bytes(inbuf))
    return h


def _sleep(duration_ns, cancel):
    start = time.monotonic_ns()
    deadline = start + duration_ns
    now = start
    while now < deadline:
        if cancel.is_set():
            raise Cancelled("cancelled")
        time.sleep(min(WAIT_SLICE_S, (deadline - now) / 1e9))
        now = time.monotonic_ns()
    return duration_ns if now - start >= duration_ns else 0


def _file_read(nbytes, state):
    fd = state.env.scratch_fd(nbytes)
    parts = []
    off = 0
    while off < nbytes:
        chunk = os.pread(fd, nbytes - off, off)
        if not chunk:
            raise OSError("short read of the scratch file")
        parts.append(chunk)
        off += len(chunk)
    return _c.hash_bytes(b"".join(parts))


def _wait_for_companions(want, state):
    start = time.monotonic()
    while state.companions < want and time.monotonic() - start < COMPANION_WAIT_S:
        if state.cancel.is_set():
            raise Cancelled("cancelled")
        time.sleep(0.0002)
    state.companions_seen = state.companions


def _respond(step, seed, state):
    _, _, pace_ns, nbytes, units, work, want = step
    clk = getattr(clock, "clock", None)
    t0, c0 = time.monotonic_ns(), time.thread_time_ns()
    _wait_for_companions(want, state)
    if clk is not None:
        clk.idle_ns += _off_cpu_since(t0, c0, clk, "idle")
    # The responder here is real Python and does its own work; the client is C++ and stands in
    # for ccbench's Python client, whose work per round it burns (echo_respond's client work).
    client = _c.EchoClient(seed, units, nbytes, _c.echo_client_work_steps(work), pace_ns)
    sock = socket.socket(fileno=os.dup(client.responder_fd()))
    # Timed as a whole, not per round trip (which the timing would lengthen): its time off the
    # CPU is its IO wait, the GIL's waits included, as every wait of a CPython thread is in the
    # call it waits in.
    t0, c0 = time.monotonic_ns(), time.thread_time_ns()
    try:
        sock.settimeout(WAIT_SLICE_S)
        buf = bytearray(nbytes)
        h = 0
        if pace_ns:
            # latency.paced_ping: when this code runs again, GIL held, after each ping arrives
            # (the one-way delay's end); a list of fixed size, so nothing grows while timed.
            received = [0] * units
            for r in range(units):
                _recv_exact(sock, buf, state.cancel)
                received[r] = time.monotonic_ns()
                h = fold(h, _c.hash_bytes(buf))
                _send_all(sock, buf, state.cancel)
        else:
            for _ in range(units):
                _recv_exact(sock, buf, state.cancel)
                h = fold(h, _c.hash_bytes(buf))  # touching the data: Python work, GIL held
                _send_all(sock, buf, state.cancel)
        state.rtts.extend(client.finish())
        if pace_ns:
            state.one_way.extend(_c.one_way_delays(client.sent_ns(), received))
    finally:
        sock.close()
        if clk is not None:
            clk.io_wait_ns += _off_cpu_since(t0, c0, clk)
            clk.io_waits += 1
    state.stop = True
    return h


def run_io_step(step, seed, worker, state):
    clk = getattr(clock, "clock", None)
    if clk is None or step[0] == "echo_respond":  # the responder times its own waits
        return _run_io_step(step, seed, worker, state)
    t0, c0 = time.monotonic_ns(), time.thread_time_ns()
    try:
        return _run_io_step(step, seed, worker, state)
    finally:
        clk.io_wait_ns += _off_cpu_since(t0, c0, clk)
        clk.io_waits += 1


def _run_io_step(step, seed, worker, state):
    kind = step[0]
    if kind == "sleep":
        return _sleep(step[5], state.cancel)
    if kind in ("pipe_echo", "tcp_echo"):
        return _echo(_socket_for(kind, worker, state), step, seed, state.cancel)
    if kind == "file_read":
        return _file_read(step[3], state)
    if kind == "echo_respond":
        return _respond(step, seed, state)
    raise ValueError("unknown step kind %r" % kind)


def execute(task, worker, state, nonce):
    """Runs every step of `task` on the calling thread; returns the task's checksum, sealed with
    the work item's nonce."""
    _, seed, payload, steps = task
    h = _c.hash_bytes(payload, seed)
    for i, step in enumerate(steps):
        s = _c.step_seed(seed, i)
        if step[0] == "cpu":
            v = run_cpu_step(step, s, state)
        else:
            v = run_io_step(step, s, worker, state)
        h = fold(h, v)
    return _c.seal(h, nonce)


# ---------------------------------------------------------------------------------------------
# The same steps awaited on an asyncio loop: IO overlaps, CPU steps run inline and block the loop
# (a native one releases the GIL but still blocks the loop thread).


class LaneSockets:
    """Each lane (a task slot of the loop) has its own connection, as in the C++ async model."""

    def __init__(self, state):
        self.state = state
        self.socks = {}

    def get(self, kind, lane):
        s = self.socks.get((kind, lane))
        if s is None:
            env = self.state.env
            fd = env.pipe_fd(lane) if kind == "pipe_echo" else env.tcp_fd(lane)
            s = socket.socket(fileno=os.dup(fd))
            s.setblocking(False)
            self.socks[(kind, lane)] = s
        return s

    def close(self):
        for s in self.socks.values():
            s.close()
        self.socks.clear()


async def _recv_exact_async(loop, sock, buf):
    view = memoryview(buf)
    while view:
        n = await loop.sock_recv_into(sock, view)
        if n == 0:
            raise ConnectionError("echo peer closed the connection")
        view = view[n:]


async def _echo_async(loop, sock, step, seed):
    nbytes, units = step[3], step[4]
    inbuf = bytearray(nbytes)
    h = 0
    for r in range(units):
        out = _c.fill_bytes(nbytes, _c.echo_message_seed(seed, r))
        for off in range(0, nbytes, ECHO_CHUNK):
            n = min(ECHO_CHUNK, nbytes - off)
            await loop.sock_sendall(sock, out[off : off + n])
            await _recv_exact_async(loop, sock, memoryview(inbuf)[off : off + n])
        h = fold(h, _c.hash_bytes(inbuf))
    return h


async def _respond_async(loop, step, seed, state):
    _, _, pace_ns, nbytes, units, work, want = step
    start = time.monotonic()
    while state.companions < want and time.monotonic() - start < COMPANION_WAIT_S:
        await asyncio.sleep(0.0002)
    state.companions_seen = state.companions
    client = _c.EchoClient(seed, units, nbytes, _c.echo_client_work_steps(work), pace_ns)
    sock = socket.socket(fileno=os.dup(client.responder_fd()))
    try:
        sock.setblocking(False)
        buf = bytearray(nbytes)
        h = 0
        received = [0] * (units if pace_ns else 0)  # as in _respond
        for r in range(units):
            await _recv_exact_async(loop, sock, buf)
            if pace_ns:
                received[r] = time.monotonic_ns()
            h = fold(h, _c.hash_bytes(buf))
            await loop.sock_sendall(sock, buf)
        state.rtts.extend(await loop.run_in_executor(None, client.finish))
        if pace_ns:
            state.one_way.extend(_c.one_way_delays(client.sent_ns(), received))
    finally:
        sock.close()
    state.stop = True
    return h


async def execute_async(loop, task, lane, state, lane_sockets, nonce):
    _, seed, payload, steps = task
    h = _c.hash_bytes(payload, seed)
    for i, step in enumerate(steps):
        s = _c.step_seed(seed, i)
        kind = step[0]
        if kind == "cpu":
            v = run_cpu_step(step, s, state)
        elif kind == "sleep":
            start = time.monotonic_ns()
            await asyncio.sleep(step[5] / 1e9)
            v = step[5] if time.monotonic_ns() - start >= step[5] else 0
        elif kind in ("pipe_echo", "tcp_echo"):
            v = await _echo_async(loop, lane_sockets.get(kind, lane), step, s)
        elif kind == "file_read":
            # asyncio has no asynchronous file IO: the default executor's threads do it (as
            # aiofiles does).
            v = await loop.run_in_executor(None, _file_read, step[3], state)
        elif kind == "echo_respond":
            v = await _respond_async(loop, step, s, state)
        else:
            raise ValueError("unknown step kind %r" % kind)
        h = fold(h, v)
    return _c.seal(h, nonce)
