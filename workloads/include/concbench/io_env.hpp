// The IO peers that IO steps talk to: one echo server thread (socketpairs and a TCP loopback
// listener, multiplexed with epoll) and a scratch file for reads. A model creates one IoEnv per
// run and hands every worker an ExecContext pointing at it; a worker process builds its own.
//
// Client descriptors are non-blocking, so the same descriptor serves blocking execution (which
// waits in poll() with a timeout so cancellation is noticed) and an event loop (which awaits
// readiness).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace concbench {

class IoEnv {
 public:
  IoEnv();
  ~IoEnv();
  IoEnv(const IoEnv&) = delete;
  IoEnv& operator=(const IoEnv&) = delete;

  // The client end of worker `worker`'s socketpair to the echo server, created on first use.
  // Each worker has its own, so round trips of different workers never interleave.
  int pipe_fd(int worker);
  // The client end of worker `worker`'s TCP loopback connection to the echo server.
  int tcp_fd(int worker);
  // A read-only descriptor of a scratch file of at least `bytes` bytes (grown on demand).
  int scratch_fd(uint64_t bytes);
  // Bytes echoed so far (a cheap sanity figure for tests).
  uint64_t bytes_echoed() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The seed the scratch file's contents are generated from (fill_bytes), so a file_read step's
// checksum can be predicted.
uint64_t scratch_file_seed();

}  // namespace concbench
