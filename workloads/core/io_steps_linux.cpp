// Blocking implementations of IO steps, as a thread performs them: the calling thread waits in
// the kernel. Waits are sliced (poll timeouts, sleep slices) so a cancelled run is noticed within
// kWaitSlice even when a peer never answers.
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <system_error>
#include <vector>

#include "concbench/checksum.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"

namespace concbench {
namespace {

constexpr int kWaitSliceMs = 50;

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

void wait_fd(int fd, short events, ExecContext& ctx) {
  pollfd p{fd, events, 0};
  for (;;) {
    ctx.throw_if_cancelled();
    int r = ::poll(&p, 1, kWaitSliceMs);
    if (r > 0) {
      if (p.revents & (POLLERR | POLLNVAL)) throw std::runtime_error("echo peer socket error");
      return;  // POLLHUP with data pending still lets read() drain it
    }
    if (r < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
  }
}

void write_all(int fd, const std::byte* p, size_t n, ExecContext& ctx) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
    } else if (w < 0 && errno == EAGAIN) {
      wait_fd(fd, POLLOUT, ctx);
    } else if (w < 0 && errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "write to echo peer");
    }
  }
}

void read_all(int fd, std::byte* p, size_t n, ExecContext& ctx) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
    } else if (r == 0) {
      throw std::runtime_error("echo peer closed the connection");
    } else if (errno == EAGAIN) {
      wait_fd(fd, POLLIN, ctx);
    } else if (errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "read from echo peer");
    }
  }
}

uint64_t echo_rounds(int fd, const Step& s, uint64_t seed, ExecContext& ctx) {
  // Even full round trips: for large messages the peer echoes while we still write, and both
  // socket buffers would fill if we did not interleave. Writing in chunks bounded by what the
  // socket buffers hold keeps the exchange deadlock-free.
  thread_local std::vector<std::byte> out, in;
  out.resize(s.bytes);
  in.resize(s.bytes);
  uint64_t h = 0;
  constexpr size_t kChunk = 64 * 1024;
  for (uint64_t r = 0; r < s.units; ++r) {
    fill_bytes(out, echo_message_seed(seed, r));
    for (size_t off = 0; off < out.size(); off += kChunk) {
      size_t len = std::min(kChunk, out.size() - off);
      write_all(fd, out.data() + off, len, ctx);
      read_all(fd, in.data() + off, len, ctx);
    }
    h = fold(h, hash_bytes(in));
  }
  return h;
}

}  // namespace

uint64_t echo_message_seed(uint64_t step_seed, uint64_t round) {
  return mix64(step_seed ^ (round * 0x2545f4914f6cdd1dULL));
}

uint64_t run_blocking_io_step(const Step& s, uint64_t task_seed, size_t step_index,
                              ExecContext& ctx) {
  const uint64_t seed = step_seed(task_seed, step_index);
  switch (s.kind) {
    case StepKind::sleep: {
      // An absolute deadline, so slicing the wait for cancellation adds no drift.
      const uint64_t start = now_ns();
      const uint64_t deadline = start + s.duration_ns;
      for (uint64_t t = start; t < deadline; t = now_ns()) {
        ctx.throw_if_cancelled();
        uint64_t until = std::min<uint64_t>(deadline, t + kWaitSliceMs * 1'000'000ULL);
        timespec ts{static_cast<time_t>(until / 1'000'000'000ULL),
                    static_cast<long>(until % 1'000'000'000ULL)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
      }
      // The step's value is the duration only if the full wait really happened.
      return now_ns() - start >= s.duration_ns ? s.duration_ns : 0;
    }
    case StepKind::pipe_echo:
      return echo_rounds(ctx.io().pipe_fd(ctx.worker()), s, seed, ctx);
    case StepKind::tcp_echo:
      return echo_rounds(ctx.io().tcp_fd(ctx.worker()), s, seed, ctx);
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
      break;
  }
  throw std::logic_error("run_blocking_io_step: not an IO step");
}

}  // namespace concbench
