// Blocking implementations of IO steps, as a thread performs them: the calling thread waits in
// the kernel. Waits are sliced (poll timeouts, sleep slices) so a cancelled run is noticed within
// kWaitSlice even when a peer never answers.
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <exception>
#include <new>
#include <string>
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
  const int fd = client.responder_fd();
  std::vector<std::byte> buf(s.bytes);
  auto cancelled = [&] { return ctx.cancel_requested(); };
  uint64_t h = 0, burnt = seed;
  {
    WholeStepWait io(ctx);
    for (uint64_t r = 0; r < s.units; ++r) {
      ctx.blocking([&] { read_all(fd, buf.data(), buf.size(), cancelled); });
      if (pace_ns > 0) received[r] = monotonic_ns();
      ctx.throw_if_cancelled();
      h = fold(h, hash_bytes(buf));
      // CPython's responder runs about half its Python code between the recv and the send
      // (appending the data, the length test, looking up sendall) and half between the send
      // and the next recv (the for loop, resetting the buffer, looking up recv), with an
      // eval-breaker check at each loop's back edge.
      burnt = burn_lcg(burnt, work.responder_steps / 2);
      ctx.checkpoint();  // the while loop's back edge
      ctx.blocking([&] { write_all(fd, buf.data(), buf.size(), cancelled); });
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

namespace {

enum EchoClientError : uint32_t {
  kClientOk = 0,
  kClientWrite,
  kClientRead,
  kClientClosed,
  kClientPoll,
  kClientAborted,
  kClientSetup,
};

// The client process's send or receive of n bytes. It runs in a child forked from a threaded
// process, where another thread may have held the allocator's or a library's lock at the fork:
// so no allocation, no exception, no library state, only system calls and arithmetic.
uint32_t client_io(int fd, std::byte* p, size_t n, bool out, const std::atomic<uint32_t>& abort,
                   int32_t& err) {
  while (n > 0) {
    // MSG_NOSIGNAL: a responder gone away is an error to report, not a SIGPIPE.
    const ssize_t r = out ? ::send(fd, p, n, MSG_NOSIGNAL) : ::recv(fd, p, n, 0);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return kClientClosed;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      err = errno;
      return out ? kClientWrite : kClientRead;
    }
    pollfd pf{fd, static_cast<short>(out ? POLLOUT : POLLIN), 0};
    for (;;) {
      // Relaxed: the parent's request to stop needs no ordering, only to be seen in a slice.
      if (abort.load(std::memory_order_relaxed)) return kClientAborted;
      const int pr = ::poll(&pf, 1, kWaitSliceMs);
      if (pr > 0) break;
      if (pr < 0 && errno != EINTR) {
        err = errno;
        return kClientPoll;
      }
    }
  }
  return kClientOk;
}

const char* client_error_text(uint32_t e) {
  switch (e) {
    case kClientWrite:
      return "echo client: send to the responder failed";
    case kClientRead:
      return "echo client: receive from the responder failed";
    case kClientClosed:
      return "echo client: the responder closed the connection";
    case kClientPoll:
      return "echo client: poll failed";
    case kClientAborted:
      return "echo client: aborted";
    case kClientSetup:
      return "echo client: could not set itself up";
    default:
      return "echo client: failed";
  }
}

}  // namespace

EchoClient::EchoClient(uint64_t step_seed, uint64_t rounds, uint32_t bytes, uint64_t work_steps,
                       uint64_t pace_ns)
    : rounds_(rounds), paced_(pace_ns > 0) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds_) < 0)
    throw std::system_error(errno, std::generic_category(), "socketpair");
  // Everything the child touches exists before the fork: its buffers, and the shared mapping
  // its results come back in (the round-trip times, and the send times of paced pings).
  map_bytes_ = sizeof(Shared) + rounds * sizeof(uint64_t) * (paced_ ? 2 : 1);
  void* m = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    const int e = errno;
    close(fds_[0]);
    close(fds_[1]);
    throw std::system_error(e, std::generic_category(), "mmap for the echo client");
  }
  map_ = m;
  auto* shared = new (map_) Shared;
  auto* rtts = reinterpret_cast<uint64_t*>(static_cast<char*>(map_) + sizeof(Shared));
  uint64_t* sent = paced_ ? rtts + rounds : nullptr;
  std::vector<std::byte> out(bytes), in(bytes);
  if (paced_) sent_.reserve(rounds);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) {
    const int e = errno;
    munmap(map_, map_bytes_);
    close(fds_[0]);
    close(fds_[1]);
    throw std::system_error(e, std::generic_category(), "fork the echo client");
  }
  if (pid_ == 0) {
    // The child: it dies with the parent, and holds only its own end of the socketpair, so a
    // parent that closes the responder's end ends it too.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(kClientSetup);
    close(fds_[0]);
    const int fd = fds_[1];
    uint64_t burnt = step_seed;
    const uint64_t start = monotonic_ns();
    uint32_t e = kClientOk;
    for (uint64_t r = 0; r < rounds && e == kClientOk; ++r) {
      fill_bytes(out, echo_message_seed(step_seed, r));
      // ccbench's client is a Python loop: its own work between two sends, untimed.
      burnt = burn_lcg(burnt, work_steps);
      if (pace_ns > 0) {
        // The next ping on the schedule, in slices so an abort is noticed.
        const uint64_t due = start + (r + 1) * pace_ns;
        for (uint64_t now = monotonic_ns(); now < due; now = monotonic_ns()) {
          if (shared->abort.load(std::memory_order_relaxed)) {
            e = kClientAborted;
            break;
          }
          const uint64_t until = std::min<uint64_t>(due, now + kWaitSliceMs * 1'000'000ULL);
          timespec ts{static_cast<time_t>(until / 1'000'000'000ULL),
                      static_cast<long>(until % 1'000'000'000ULL)};
          clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
        }
        if (e != kClientOk) break;
      }
      const uint64_t t0 = monotonic_ns();
      if (sent) sent[r] = t0;
      e = client_io(fd, out.data(), out.size(), true, shared->abort, shared->error_errno);
      if (e == kClientOk)
        e = client_io(fd, in.data(), in.size(), false, shared->abort, shared->error_errno);
      if (e != kClientOk) break;
      rtts[r] = monotonic_ns() - t0;
      shared->rounds_done = r + 1;
    }
    sink_value(burnt);
    shared->error = e;
    _exit(e == kClientOk ? 0 : 1);
  }
}

void EchoClient::reap() {
  if (pid_ <= 0) return;
  // The child polls in slices of kWaitSliceMs; past a few of them it is stuck, and killed.
  const uint64_t deadline = monotonic_ns() + 20ULL * kWaitSliceMs * 1'000'000ULL;
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) break;
    if (monotonic_ns() > deadline) {
      kill(pid_, SIGKILL);
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  pid_ = -1;
}

EchoClient::~EchoClient() {
  if (pid_ > 0) {
    static_cast<Shared*>(map_)->abort.store(1, std::memory_order_relaxed);
    reap();
  }
  munmap(map_, map_bytes_);
  close(fds_[0]);
  close(fds_[1]);
}

std::vector<uint64_t> EchoClient::finish() {
  int status = 0;
  pid_t r;
  while ((r = waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  if (r != pid_) throw std::system_error(errno, std::generic_category(), "wait for echo client");
  pid_ = -1;
  // waitpid orders the child's writes to the mapping before these reads.
  const auto* shared = static_cast<const Shared*>(map_);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (WIFSIGNALED(status))
      throw std::runtime_error("echo client: killed by signal " + std::to_string(WTERMSIG(status)));
    const std::string what = client_error_text(shared->error);
    if (shared->error_errno != 0)
      throw std::system_error(shared->error_errno, std::generic_category(), what);
    throw std::runtime_error(what);
  }
  const auto* rtts =
      reinterpret_cast<const uint64_t*>(static_cast<const char*>(map_) + sizeof(Shared));
  const uint64_t n = std::min(shared->rounds_done, rounds_);
  if (paced_) sent_.assign(rtts + rounds_, rtts + rounds_ + n);
  return std::vector<uint64_t>(rtts, rtts + n);
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
