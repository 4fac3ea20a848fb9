// Blocking implementations of IO steps, as a thread performs them: the calling thread waits in
// the kernel. Waits are sliced (poll timeouts, sleep slices) so a cancelled run is noticed within
// kWaitSlice even when a peer never answers.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <exception>
#include <system_error>
#include <thread>
#include <vector>

#include "concbench/checksum.hpp"
#include "concbench/clock.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"

namespace concbench {
namespace {

constexpr int kWaitSliceMs = 50;

// `stop` returns true when the wait should give up (cancellation, or an aborted client).
template <class Stop>
void wait_fd(int fd, short events, const Stop& stop) {
  pollfd p{fd, events, 0};
  for (;;) {
    if (stop()) throw TaskCancelled{};
    int r = ::poll(&p, 1, kWaitSliceMs);
    if (r > 0) {
      if (p.revents & (POLLERR | POLLNVAL)) throw std::runtime_error("echo peer socket error");
      return;  // POLLHUP with data pending still lets read() drain it
    }
    if (r < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
  }
}

template <class Stop>
void write_all(int fd, const std::byte* p, size_t n, const Stop& stop) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
    } else if (w < 0 && errno == EAGAIN) {
      wait_fd(fd, POLLOUT, stop);
    } else if (w < 0 && errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "write to echo peer");
    }
  }
}

template <class Stop>
void read_all(int fd, std::byte* p, size_t n, const Stop& stop) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
    } else if (r == 0) {
      throw std::runtime_error("echo peer closed the connection");
    } else if (errno == EAGAIN) {
      wait_fd(fd, POLLIN, stop);
    } else if (errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "read from echo peer");
    }
  }
}

// The client's end blocks, as ccbench's Python client's socket does (no timeout: recv() and
// send() block in the kernel), and that is not a detail: a blocking recv() sleeps on the socket's
// wait queue unfiltered, so the responder's every read and write of the pair wakes it, which
// lengthens the responder's system calls (by tens of microseconds across cores here) and lets
// it be preempted after its send; a poll(POLLIN) sleeper is not woken for the space a read
// frees. Those microseconds decide whether a CPU-bound thread takes the lock during the call.
// An abort shuts the responder's end down, which ends a blocked call with EOF or EPIPE.
template <class Aborted>
void client_send(int fd, const std::byte* p, size_t n, const Aborted& aborted) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
    } else if (aborted()) {
      throw TaskCancelled{};
    } else if (w < 0 && errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "send to echo responder");
    }
  }
}

template <class Aborted>
void client_recv(int fd, std::byte* p, size_t n, const Aborted& aborted) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
    } else if (aborted()) {
      throw TaskCancelled{};
    } else if (r == 0) {
      throw std::runtime_error("echo responder closed the connection");
    } else if (errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "recv from echo responder");
    }
  }
}

// The responder's end, as CPython's responder socket is: blocking, so recv() sleeps in the
// kernel on the socket's wait queue and send() returns straight into the interpreter, with no
// poll() beside them. That is what real CPython's hand-overs were seen to depend on: with poll()
// then read() on a non-blocking end, a CPU-bound thread asking for the lock won it about half
// as often as beside CPython's responder (gil_handoff_trace.py, 19% against 37%), and as often
// once the end blocked. A receive timeout of one wait slice stands in for CPython's "no
// timeout", so that a cancelled run is noticed within a slice; the call sleeps as a blocking one
// does until then.
void block_responder_end(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
    throw std::system_error(errno, std::generic_category(), "fcntl(echo responder)");
  const timeval slice{0, kWaitSliceMs * 1000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof slice) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &slice, sizeof slice) != 0)
    throw std::system_error(errno, std::generic_category(), "setsockopt(echo responder)");
}

// A timed-out call (EAGAIN on the blocking end) is the wait slice ending: look at `stop`, then
// block again.
template <class Stop>
void responder_recv(int fd, std::byte* p, size_t n, const Stop& stop) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
    } else if (r == 0) {
      throw std::runtime_error("echo client closed the connection");
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (stop()) throw TaskCancelled{};
    } else if (errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "recv from echo client");
    }
  }
}

template <class Stop>
void responder_send(int fd, const std::byte* p, size_t n, const Stop& stop) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (stop()) throw TaskCancelled{};
    } else if (w < 0 && errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "send to echo client");
    }
  }
}

// A step that releases the lock around each of its system calls is timed as a whole, not per
// call: two CPU-clock reads per call would lengthen the very calls it makes (a round trip by
// about a tenth, here). Its time off the CPU less its waits for the lock is its IO wait.
class WholeStepWait {
 public:
  explicit WholeStepWait(ExecContext& ctx) : ctx_(ctx), t_(ctx.times()) {
    if (!t_) return;
    g0_ = ctx.lock_wait_ns();
    c0_ = thread_cpu_ns();
    w0_ = monotonic_ns();
  }
  ~WholeStepWait() {
    if (!t_) return;
    const uint64_t w1 = monotonic_ns();
    const uint64_t wall = w1 - w0_, cpu = thread_cpu_ns() - c0_, lock = ctx_.lock_wait_ns() - g0_;
    const uint64_t off = wall > cpu ? wall - cpu : 0;
    t_->io_wait_ns += off > lock ? off - lock : 0;
    ++t_->io_waits;
    if (t_->trace) t_->trace->add(TraceKind::io_wait, w0_, w1);
  }
  WholeStepWait(const WholeStepWait&) = delete;
  WholeStepWait& operator=(const WholeStepWait&) = delete;

 private:
  ExecContext& ctx_;
  WorkerTimes* t_;
  uint64_t g0_ = 0, c0_ = 0, w0_ = 0;
};

// The responder's side of ccbench's latency test. The client is a plain thread outside the
// model (ccbench uses another process): it sends, waits for the echo and times the round trip.
// The responder reads and writes with the model's lock released, one release per system call as
// socket calls release the GIL, and between them does the Python-level work of CPython's
// responder loop with the lock held: it touches the data (hashes it) and burns the interpreter's
// per-round cost (InterpreterCost::responder_round_ns, or the step's own), then checks the eval
// breaker as the loop's back edge does. So the time a CPU-bound thread keeps the lock shows up
// in the client's round-trip times, and whether a round trip waits for it once or twice depends
// on the same hold times as in CPython.
uint64_t respond_rounds(const Step& s, uint64_t seed, ExecContext& ctx) {
  // Start timing only once the CPU-bound companions (s.arg of them) are running, as ccbench
  // starts its CPU threads first. A model that cannot run them beside the responder (serial)
  // gives up after kCompanionWait and measures an unloaded responder; the report says how many
  // companions were running.
  constexpr uint64_t kCompanionWaitNs = 200'000'000;
  const uint64_t wait_start = monotonic_ns();
  ctx.blocking([&] {
    OffCpuWait idle(ctx.times(), &WorkerTimes::idle_ns);
    while (ctx.io().companions().load(std::memory_order_relaxed) < s.arg &&
           monotonic_ns() - wait_start < kCompanionWaitNs) {
      ctx.throw_if_cancelled();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  ctx.io().set_companions_seen(ctx.io().companions().load(std::memory_order_relaxed));
  const EchoWork work = echo_work(s, ctx.interpreter_cost());
  ctx.io().set_echo_work(work.responder_ns, work.client_ns);
  const uint64_t pace_ns = echo_pace_ns(s);
  // Paced pings: when the responder's code runs again with the lock held, one per ping; a
  // fixed-size buffer, so nothing grows while timed.
  std::vector<uint64_t> received(pace_ns > 0 ? s.units : 0);
  EchoClient client(seed, s.units, s.bytes, work.client_steps, pace_ns);
  const int fd = client.blocking_responder_fd();
  std::vector<std::byte> buf(s.bytes);
  auto cancelled = [&] { return ctx.cancel_requested(); };
  uint64_t h = 0, burnt = seed;
  {
    WholeStepWait io(ctx);
    for (uint64_t r = 0; r < s.units; ++r) {
      ctx.blocking([&] { responder_recv(fd, buf.data(), buf.size(), cancelled); });
      if (pace_ns > 0) received[r] = monotonic_ns();
      ctx.throw_if_cancelled();
      h = fold(h, hash_bytes(buf));
      // CPython's responder runs about half its Python code between the recv and the send
      // (appending the data, the length test, looking up sendall) and half between the send
      // and the next recv (the for loop, resetting the buffer, looking up recv), with an
      // eval-breaker check at each loop's back edge.
      burnt = burn_lcg(burnt, work.responder_steps / 2);
      ctx.checkpoint();  // the while loop's back edge
      ctx.blocking([&] { responder_send(fd, buf.data(), buf.size(), cancelled); });
      burnt = burn_lcg(burnt, work.responder_steps - work.responder_steps / 2);
      ctx.checkpoint();  // the for loop's back edge
    }
  }
  sink_value(burnt);
  ctx.io().record_rtts(client.finish());
  if (pace_ns > 0) ctx.io().record_one_way(one_way_delays(client.sent_ns(), received));
  // Relaxed: a hint for spinning companions; nothing is published through it.
  ctx.io().stop_flag().store(true, std::memory_order_relaxed);
  return h;
}

// pipe_echo and tcp_echo, as a Python thread does them: each write and each read releases the
// lock, and building the message and hashing the echo (Python-level work) hold it.
uint64_t echo_rounds(int fd, const Step& s, uint64_t seed, ExecContext& ctx) {
  // Even full round trips: for large messages the peer echoes while we still write, and both
  // socket buffers would fill if we did not interleave. Writing in chunks bounded by what the
  // socket buffers hold keeps the exchange deadlock-free.
  thread_local std::vector<std::byte> out, in;
  out.resize(s.bytes);
  in.resize(s.bytes);
  uint64_t h = 0;
  constexpr size_t kChunk = 64 * 1024;
  auto cancelled = [&] { return ctx.cancel_requested(); };
  WholeStepWait io(ctx);
  for (uint64_t r = 0; r < s.units; ++r) {
    fill_bytes(out, echo_message_seed(seed, r));
    for (size_t off = 0; off < out.size(); off += kChunk) {
      size_t len = std::min(kChunk, out.size() - off);
      ctx.blocking([&] { write_all(fd, out.data() + off, len, cancelled); });
      ctx.blocking([&] { read_all(fd, in.data() + off, len, cancelled); });
    }
    ctx.throw_if_cancelled();
    h = fold(h, hash_bytes(in));
    ctx.checkpoint();  // the loop's back edge
  }
  return h;
}

}  // namespace

uint64_t blocking_step(const Step& s, uint64_t task_seed, size_t step_index, ExecContext& ctx);

EchoClient::EchoClient(uint64_t step_seed, uint64_t rounds, uint32_t bytes, uint64_t work_steps,
                       uint64_t pace_ns)
    : owner_pid_(getpid()) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds_) < 0)
    throw std::system_error(errno, std::generic_category(), "socketpair");
  try {
    const int flags = fcntl(fds_[1], F_GETFL);  // the client's end blocks (client_recv says why)
    if (flags < 0 || fcntl(fds_[1], F_SETFL, flags & ~O_NONBLOCK) < 0)
      throw std::system_error(errno, std::generic_category(), "fcntl(echo client)");
    rtts_.reserve(rounds);
    if (pace_ns > 0) sent_.reserve(rounds);
    thread_ = std::make_unique<std::thread>([this, step_seed, rounds, bytes, work_steps, pace_ns] {
      try {
        auto aborted = [this] { return abort_.load(); };
        std::vector<std::byte> out(bytes), in(bytes);
        uint64_t burnt = step_seed;
        const uint64_t start = monotonic_ns();
        for (uint64_t r = 0; r < rounds; ++r) {
          fill_bytes(out, echo_message_seed(step_seed, r));
          // ccbench's client is a Python loop: its own work between two sends, untimed.
          burnt = burn_lcg(burnt, work_steps);
          if (pace_ns > 0) {
            // The next ping on the schedule, in slices so an abort is noticed.
            const uint64_t due = start + (r + 1) * pace_ns;
            for (uint64_t now = monotonic_ns(); now < due && !abort_.load(); now = monotonic_ns()) {
              const uint64_t until = std::min<uint64_t>(due, now + kWaitSliceMs * 1'000'000ULL);
              timespec ts{static_cast<time_t>(until / 1'000'000'000ULL),
                          static_cast<long>(until % 1'000'000'000ULL)};
              clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
            }
          }
          const uint64_t t0 = monotonic_ns();
          if (pace_ns > 0) sent_.push_back(t0);
          client_send(fds_[1], out.data(), out.size(), aborted);
          client_recv(fds_[1], in.data(), in.size(), aborted);
          rtts_.push_back(monotonic_ns() - t0);
        }
        sink_value(burnt);
      } catch (...) {
        error_ = std::current_exception();
      }
    });
  } catch (...) {
    close(fds_[0]);
    close(fds_[1]);
    throw;
  }
}

EchoClient::~EchoClient() {
  if (getpid() == owner_pid_) {
    abort_.store(true);
    // Ends a blocked recv() with EOF and a blocked send() with EPIPE; the client then sees abort_.
    shutdown(fds_[0], SHUT_RDWR);
    if (thread_ && thread_->joinable()) thread_->join();
  } else {
    (void)thread_.release();  // a forked child's copy: the thread is the parent's
  }
  close(fds_[0]);
  close(fds_[1]);
}

int EchoClient::blocking_responder_fd() {
  block_responder_end(fds_[0]);
  return fds_[0];
}

std::vector<uint64_t> EchoClient::finish() {
  thread_->join();  // the join publishes rtts_ and error_
  if (error_) std::rethrow_exception(error_);
  return std::move(rtts_);
}

void echo_read(int fd, std::byte* p, size_t n, const std::function<bool()>& stop) {
  responder_recv(fd, p, n, stop);
}

void echo_write(int fd, const std::byte* p, size_t n, const std::function<bool()>& stop) {
  responder_send(fd, p, n, stop);
}

std::vector<uint64_t> one_way_delays(const std::vector<uint64_t>& sent,
                                     const std::vector<uint64_t>& received) {
  std::vector<uint64_t> d;
  d.reserve(std::min(sent.size(), received.size()));
  for (size_t i = 0; i < sent.size() && i < received.size(); ++i)
    d.push_back(received[i] > sent[i] ? received[i] - sent[i] : 0);
  return d;
}

EchoWork echo_work(const Step& s, const InterpreterCost& cost) {
  const uint32_t rw = echo_responder_work(s.duration_ns), cw = echo_client_work(s.duration_ns);
  EchoWork w;
  w.responder_ns = rw == kEchoWorkInterpreter ? cost.responder_round_ns : rw;
  w.client_ns = cw == kEchoWorkInterpreter ? cost.client_round_ns : cw;
  w.responder_steps = lcg_steps_for_ns(w.responder_ns);
  w.client_steps = lcg_steps_for_ns(w.client_ns);
  return w;
}

uint64_t echo_message_seed(uint64_t step_seed, uint64_t round) {
  return mix64(step_seed ^ (round * 0x2545f4914f6cdd1dULL));
}

uint64_t run_blocking_io_step(const Step& s, uint64_t task_seed, size_t step_index,
                              ExecContext& ctx) {
  const uint64_t seed = step_seed(task_seed, step_index);
  switch (s.kind) {
    case StepKind::echo_respond:
      return respond_rounds(s, seed, ctx);
    case StepKind::pipe_echo:
      return echo_rounds(ctx.io().pipe_fd(ctx.worker()), s, seed, ctx);
    case StepKind::tcp_echo:
      return echo_rounds(ctx.io().tcp_fd(ctx.worker()), s, seed, ctx);
    default:
      break;
  }
  // Every other IO step blocks from start to end with the lock released.
  return ctx.blocking([&] {
    OffCpuWait io(ctx.times());
    return blocking_step(s, task_seed, step_index, ctx);
  });
}

uint64_t blocking_step(const Step& s, uint64_t, size_t, ExecContext& ctx) {
  switch (s.kind) {
    case StepKind::sleep: {
      // An absolute deadline, so slicing the wait for cancellation adds no drift.
      const uint64_t start = monotonic_ns();
      const uint64_t deadline = start + s.duration_ns;
      for (uint64_t t = start; t < deadline; t = monotonic_ns()) {
        ctx.throw_if_cancelled();
        uint64_t until = std::min<uint64_t>(deadline, t + kWaitSliceMs * 1'000'000ULL);
        timespec ts{static_cast<time_t>(until / 1'000'000'000ULL),
                    static_cast<long>(until % 1'000'000'000ULL)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
      }
      // The step's value is the duration only if the full wait really happened.
      return monotonic_ns() - start >= s.duration_ns ? s.duration_ns : 0;
    }
    case StepKind::file_read: {
      int fd = ctx.io().scratch_fd(s.bytes);
      thread_local std::vector<std::byte> buf;
      buf.resize(s.bytes);
      size_t off = 0;
      while (off < buf.size()) {
        ssize_t n = pread(fd, buf.data() + off, buf.size() - off, static_cast<off_t>(off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw std::system_error(errno, std::generic_category(), "pread(scratch)");
        off += static_cast<size_t>(n);
      }
      return hash_bytes(buf);
    }
    case StepKind::cpu:
    case StepKind::pipe_echo:
    case StepKind::tcp_echo:
    case StepKind::echo_respond:
      break;
  }
  throw std::logic_error("run_blocking_io_step: not a blocking IO step");
}

}  // namespace concbench
