// IO-step pieces shared by the models that wait for IO on an event loop instead of blocking:
// async and async_mt (coroutines, async_loop.cpp) and fibers (stackful, fibers.cpp). Each model
// waits its own way; what a step must do around the wait, and what value it yields, is here, so
// the models cannot drift apart. Internal to harness/models.
#pragma once

#include <fcntl.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include "concbench/exec_context.hpp"
#include "concbench/io_env.hpp"
#include "concbench/task.hpp"

namespace concbench::detail {

// Echo steps are written and read back in chunks of this size, as the blocking version does,
// so both socket buffers never fill at once.
inline constexpr size_t kEchoChunk = 64 * 1024;

// A sleep step's absolute deadline: one clock read to start and one to check (sleep_value). On
// a VM each costs tens of nanoseconds, which 10,000 concurrent sleeps notice.
inline std::chrono::steady_clock::time_point sleep_deadline(const Step& s) {
  return std::chrono::steady_clock::now() + std::chrono::nanoseconds(s.duration_ns);
}
// As for threads: a sleep step's value is its duration only if the wait really lasted that long.
inline uint64_t sleep_value(const Step& s, std::chrono::steady_clock::time_point due) {
  return std::chrono::steady_clock::now() >= due ? s.duration_ns : 0;
}

// A close-on-exec duplicate of `fd`, for an Asio descriptor to own (and close) while the IoEnv
// keeps its own.
inline int dup_descriptor(int fd, const char* what) {
  const int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw std::system_error(errno, std::generic_category(), what);
  return copy;
}
// The context's own connection to the echo server of the given kind, duplicated.
inline int dup_echo_connection(ExecContext& ctx, bool tcp) {
  const int fd = tcp ? ctx.io().tcp_fd(ctx.worker()) : ctx.io().pipe_fd(ctx.worker());
  return dup_descriptor(fd, "dup(echo connection)");
}

}  // namespace concbench::detail
