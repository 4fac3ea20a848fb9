// What the tasks of one run share. The IO peers that IO steps talk to: one echo server thread
// (socketpairs and a TCP loopback listener, multiplexed with epoll) and a scratch file for
// reads. And the state of workloads whose tasks interact within a batch: cpu.counter_race's
// shared counter, latency.echo_under_load's stop flag and round-trip samples. A model creates
// one IoEnv per run and hands every worker an ExecContext pointing at it; a worker process
// builds its own (so processes share no counter, exactly as with multiprocessing).
//
// Client descriptors are non-blocking, so the same descriptor serves blocking execution (which
// waits in poll() with a timeout so cancellation is noticed) and an event loop (which awaits
// readiness).
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace concbench {

// What one run-until-stopped spinner did: its seed, the units it completed, and the state its
// arithmetic reached. The workload checks the state against the units, outside the measured
// code, so a spinner that did no work (or a model that never ran it) cannot verify.
struct SpinRecord {
  uint64_t seed = 0, units = 0, state = 0;
};

// What a batch observed beyond its checksums; the runner hands it to Workload::metrics and
// Workload::verify_batch.
struct Observations {
  uint64_t shared_counter = 0;   // the shared counter's final value
  std::vector<uint64_t> rtt_ns;  // round trips measured by echo_respond clients
  // Paced pings (latency.paced_ping): from the client's send to the responder's code running
  // with the lock held, one per ping.
  std::vector<uint64_t> one_way_ns;
  uint64_t companions_started = 0;  // spinners that were running when the responder began
  std::vector<SpinRecord> spins;    // one per spinner that ran to its end
  // The emulated Python-level work per round of echo_respond's responder and client, in ns;
  // -1 where none was emulated (a real interpreter does its own).
  int64_t responder_work_ns = -1, client_work_ns = -1;
};

class IoEnv {
 public:
  IoEnv();
  // In a process forked from the one that made it (multiprocessing's fork start method copies
  // every live object), the IoEnv is a dead copy: its server thread exists only in the parent,
  // and its eventfd and epoll instance are the parent's own. Destroying it there leaves all of
  // that alone (it leaks the copy): joining a thread of another process is undefined, and the
  // stop signal would stop the parent's server.
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

  // Models call begin_batch() before a batch's first task and end_batch() after its last.
  void begin_batch();
  Observations end_batch();
  // Deliberately racy users (cpu.counter_race) load and store it with relaxed atomics.
  std::atomic<uint64_t>& shared_counter() { return counter_; }
  // Set when a batch's responder has finished, so its CPU-bound companions stop.
  std::atomic<bool>& stop_flag() { return stop_; }
  // Spinners count themselves in, so the responder can wait until the load is really there.
  std::atomic<uint64_t>& companions() { return companions_; }
  void set_companions_seen(uint64_t n) { companions_seen_ = n; }
  // Written by the responder before record_rtts(), which publishes them to end_batch().
  void set_echo_work(uint64_t responder_ns, uint64_t client_ns) {
    echo_work_[0] = static_cast<int64_t>(responder_ns);
    echo_work_[1] = static_cast<int64_t>(client_ns);
  }
  void record_rtts(const std::vector<uint64_t>& samples);
  void record_one_way(const std::vector<uint64_t>& samples);
  // Once per spinner, when it stops (not per unit).
  void record_spin(const SpinRecord& r);

  // A buffer that belongs to worker `worker` for the whole run, so threads a model creates per
  // batch (or per task) reuse what an earlier thread of the same worker first touched. The
  // caller sizes and fills it; the vector's address is stable.
  std::vector<uint64_t>& worker_buffer(int worker);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<uint64_t> counter_{0};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> companions_{0};
  uint64_t companions_seen_ = 0;  // written by the responder before end_batch() reads it
  int64_t echo_work_[2] = {-1, -1};
  std::mutex obs_mu_;  // guards rtt_ and spins_
  std::vector<uint64_t> rtt_;
  std::vector<uint64_t> one_way_;
  std::vector<SpinRecord> spins_;
  std::vector<std::unique_ptr<std::vector<uint64_t>>> buffers_;  // guarded by obs_mu_
};

// The client side of an echo_respond step (ccbench's latency client): a thread outside the model
// that sends `rounds` messages of `bytes` bytes over a fresh socketpair, waits for each echo and
// times the round trip. The event loops await responder_fd(), which is non-blocking; thread
// models serve blocking_responder_fd(), the same end made blocking as CPython's socket is. The
// destructor aborts and joins the client, so an abandoned step (cancelled, or its coroutine
// destroyed) never leaves the thread behind. A copy inherited by a forked child is left alone on
// destruction, as IoEnv's is.
class EchoClient {
 public:
  // work_steps: LCG steps (burn_lcg) the client does between two sends, untimed: the Python-level
  // work of ccbench's client loop.
  // pace_ns > 0: ccbench's paced pings, one sent every pace_ns (on an absolute schedule), each
  // send's time kept for sent_ns().
  EchoClient(uint64_t step_seed, uint64_t rounds, uint32_t bytes, uint64_t work_steps = 0,
             uint64_t pace_ns = 0);
  ~EchoClient();
  EchoClient(const EchoClient&) = delete;
  EchoClient& operator=(const EchoClient&) = delete;

  int responder_fd() const { return fds_[0]; }
  // The responder's end made blocking, with a receive and send timeout of one wait slice so a
  // blocked call still returns to look for cancellation (echo_read and echo_write do). Throws
  // std::system_error when the socket refuses.
  int blocking_responder_fd();
  // Joins the client and returns its round-trip times; rethrows whatever the client failed with.
  std::vector<uint64_t> finish();
  // After finish(): when each round's message was sent (monotonic_ns), paced clients only.
  const std::vector<uint64_t>& sent_ns() const { return sent_; }

 private:
  int fds_[2] = {-1, -1};
  std::atomic<bool> abort_{false};
  std::vector<uint64_t> rtts_;
  std::vector<uint64_t> sent_;
  std::exception_ptr error_;
  int owner_pid_;
  // Held by pointer so that a forked child's copy can be leaked: destroying a joinable
  // std::thread terminates, and joining the parent's thread from the child is undefined.
  std::unique_ptr<std::thread> thread_;
};

// The echo steps' reads and writes, for code outside the workloads that must do exactly what
// they do (the interpreter calibration's C++ cycle): all n bytes of blocking_responder_fd(),
// blocking in the kernel; throws TaskCancelled once `stop` returns true at the end of a wait
// slice, and std::system_error or std::runtime_error on a failed call or a closed peer.
void echo_read(int fd, std::byte* p, size_t n, const std::function<bool()>& stop);
void echo_write(int fd, const std::byte* p, size_t n, const std::function<bool()>& stop);

// The seed the scratch file's contents are generated from (fill_bytes), so a file_read step's
// checksum can be predicted.
uint64_t scratch_file_seed();

}  // namespace concbench
