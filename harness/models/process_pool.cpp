// process_pool: N worker processes, multiprocessing's world. Every task crosses the process
// boundary: its steps and payload are encoded (--param codec), framed and sent over a socketpair
// (or, with transport=shm, the payload is placed in shared memory and only a reference is sent);
// the worker runs it and sends back the checksum, the payload, its own counters and CPU time.
//
// The parent is one thread running an event loop over the workers' sockets. It keeps up to
// `inflight` tasks outstanding per worker (pipelining, as ProcessPoolExecutor does), so a worker
// finds its next task already waiting when it finishes one.
//
// Faults: a worker that dies (a signal, an exit, a hang past task_timeout_ms, a truncated frame)
// is reaped with waitpid, the task it was running is recorded as failed with the reason, the
// tasks queued behind it are sent again, and a replacement worker starts. A malformed response
// fails that task only. No zombie and no descriptor outlives teardown().
//
// Measurement: the batch's span (BatchResult::begin_work/end_work) runs from just before the first
// task is sent to just after the last result is in; counter flushes and metrics lie outside it.
// The workers' CPU time comes back with their counters (child CPU: a parent's getrusage never
// sees live children). The echoed payload is compared with what was sent: it is the result.
//
// Invariant: a worker answers its requests in order (it runs them one at a time), so the head of
// `outstanding` is the task it is running and responses are matched to requests FIFO.
#include "process_pool.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "concbench/checksum.hpp"
#include "concbench/gil.hpp"
#include "concbench/interp_calibration.hpp"
#include "concbench/process_worker.hpp"
#include "worker_loop.hpp"

extern char** environ;

namespace concbench {
namespace {

constexpr uint64_t kStartTimeoutNs = 20'000'000'000ULL;  // a worker that is not ready by then
constexpr int kPollSliceMs = 50;                         // how often cancellation is looked at

uint64_t timeval_ns(const timeval& tv) {
  return static_cast<uint64_t>(tv.tv_sec) * 1'000'000'000ULL +
         static_cast<uint64_t>(tv.tv_usec) * 1000ULL;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return "worker killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  if (WIFEXITED(status)) return "worker exited with status " + std::to_string(WEXITSTATUS(status));
  return "worker ended (status " + std::to_string(status) + ")";
}

// Where spawned workers come from: bench_runner in its hidden worker mode.
std::string worker_executable() {
  if (const char* env = std::getenv("CONCBENCH_WORKER_EXE"); env && *env) return env;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec && self.filename() == "bench_runner") return self.string();
#ifdef CONCBENCH_BENCH_RUNNER_PATH
  return CONCBENCH_BENCH_RUNNER_PATH;
#else
  return "bench_runner";
#endif
}

struct Injection {
  uint8_t fault = kFaultNone;
  double probability = 0;
};

Injection parse_injection(const std::string& text) {
  if (text == "none") return {};
  const size_t colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  Injection inj;
  if (kind == "kill")
    inj.fault = kFaultKill;
  else if (kind == "segv")
    inj.fault = kFaultSegv;
  else if (kind == "exit")
    inj.fault = kFaultExit;
  else if (kind == "hang")
    inj.fault = kFaultHang;
  else if (kind == "garble")
    inj.fault = kFaultGarble;
  else if (kind == "truncate")
    inj.fault = kFaultTruncate;
  else if (kind == "corrupt")
    inj.fault = kFaultCorrupt;
  else
    throw UsageError("inject: '" + text +
                     "' is not none or kill|segv|exit|hang|garble|truncate|corrupt:PROBABILITY");
  if (colon == std::string::npos) throw UsageError("inject: '" + text + "' needs :PROBABILITY");
  const double p = parse_seconds(text.substr(colon + 1), "inject probability");
  if (p > 1) throw UsageError("inject: probability " + text.substr(colon + 1) + " is above 1");
  inj.probability = p;
  return inj;
}

struct Outstanding {
  uint64_t item;
  uint64_t sent_ns;     // a sampled item only (see latency_stride); 0 otherwise
  uint64_t shm_offset;  // where its payload was placed (transport=shm)
  uint64_t traced_ns;   // --trace: when it was sent, for every item; 0 otherwise
};

struct Worker {
  pid_t pid = -1;
  int fd = -1;
  int shm_fd = -1;
  std::byte* shm = nullptr;
  size_t shm_size = 0;
  size_t next_slot = 0;
  FrameReader in;
  std::vector<std::byte> out;
  size_t out_off = 0;
  std::deque<Outstanding> outstanding;
  uint64_t head_since_ns = 0;  // when the head of `outstanding` started running (roughly)
  // CPU time this worker has reported over its life, and its total from wait4() once reaped: the
  // difference is what a worker that died mid-batch never got to report.
  CpuTimes reported_cpu;
  CpuTimes final_cpu;
  bool have_final_cpu = false;
  // This batch, from its responses: the time it spent decoding, running and encoding tasks (its
  // own clock's figures, which every response carries) and the tasks it completed.
  uint64_t batch_dec_ns = 0, batch_exec_ns = 0, batch_enc_ns = 0, batch_tasks = 0;
};

class ProcessPool final : public Model {
 public:
  // threaded: process_threads (each worker runs threads_per_process threads behind its own GIL).
  explicit ProcessPool(bool threaded = false) : threaded_(threaded) {}
  void setup(const ModelConfig& cfg) override {
    Model::setup(cfg);
    if (threaded_) {
      threads_ = static_cast<int>(cfg.params.get_int("threads_per_process"));
      switch_interval_us_ = static_cast<int>(cfg.params.get_int("switch_interval_us"));
      // The Python-level costs its threads' work emulates (IO rounds, eval-breaker spacing),
      // measured here once per process from the default policy's CPython, as gil_threads does,
      // and handed to every worker at its start: a worker never runs an interpreter itself.
      const GilPolicy* policy = find_gil_policy(kDefaultGilPolicy);
      if (!policy) throw std::logic_error("process_threads: no default GIL policy");
      calibration_ = &interp_calibration(*policy, cfg.params.get("interpreter_cost") == "measured");
    }
    spawn_ = cfg.params.get("start") == "spawn";
    codec_ = parse_codec(cfg.params.get("codec"));
    shm_ = cfg.params.get("transport") == "shm";
    inflight_ = static_cast<size_t>(cfg.params.get_int("inflight"));
    // A threaded worker needs a task per thread in hand to keep every thread busy.
    inflight_ = std::max(inflight_, static_cast<size_t>(threads_));
    task_timeout_ns_ = static_cast<uint64_t>(cfg.params.get_int("task_timeout_ms")) * 1'000'000ULL;
    injection_ = parse_injection(cfg.params.get("inject"));
    workers_.resize(static_cast<size_t>(cfg.workers));
    for (size_t w = 0; w < workers_.size(); ++w) startup_ns_ += start_worker(w);
  }

  BatchResult run(const Batch& batch) override;

  void teardown() override {
    for (size_t w = 0; w < workers_.size(); ++w) stop_worker(w, /*graceful=*/true);
  }
  ~ProcessPool() override {
    for (size_t w = 0; w < workers_.size(); ++w) stop_worker(w, /*graceful=*/false);
  }
  void cancel() override { cancelled_.store(true, std::memory_order_relaxed); }

 private:
  uint64_t start_worker(size_t w);
  void stop_worker(size_t w, bool graceful);
  std::string reap(size_t w);
  void ensure_shm(Worker& wk, size_t bytes);
  struct Flush {
    bool ok = false;
    nlohmann::json report;  // a threaded worker's (process_worker.hpp)
    CounterValues counters;
    CpuTimes cpu;
    bool has_cpu = false;
  };
  Flush flush_worker(size_t w);
  // Worker w's attribution for the batch, from its responses and its flush report (null when the
  // flush went unanswered: then the worker has none, and the cell says so).
  void attribute_worker(size_t w, const nlohmann::json& report, uint64_t wall_ns,
                        std::vector<WorkerAttribution>& out) const;
  ThreadCounters& parent_counters();

  bool threaded_ = false;
  int threads_ = 0;  // 0: process_pool's single-threaded worker
  int switch_interval_us_ = 5000;
  const InterpCalibration* calibration_ = nullptr;  // threaded only; cached for the process
  bool spawn_ = false;
  Codec codec_ = Codec::raw;
  bool shm_ = false;
  size_t inflight_ = 16;
  uint64_t task_timeout_ns_ = 0;
  Injection injection_;
  std::vector<Worker> workers_;
  // The parent's message buffers, reused for every task of every batch (with each worker's
  // receive and send buffers): in steady state a task allocates nothing and faults in no page,
  // whatever its payload.
  TaskRequest req_;
  TaskResponse resp_;
  std::vector<pollfd> pfds_;
  std::unique_ptr<ThreadCounters> parent_counters_;  // opened by the thread that runs batches
  std::thread::id parent_thread_;
  uint64_t startup_ns_ = 0;  // all workers' start-up, setup's share
  std::atomic<bool> cancelled_{false};
};

uint64_t ProcessPool::start_worker(size_t w) {
  Worker& wk = workers_[w];
  wk = Worker{};
  const uint64_t t0 = monotonic_ns();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw std::runtime_error(std::string("socketpair: ") + std::strerror(errno));
  if (shm_) {
    wk.shm_fd = static_cast<int>(syscall(SYS_memfd_create, "concbench-payloads", MFD_CLOEXEC));
    if (wk.shm_fd < 0) {
      close(sv[0]);
      close(sv[1]);
      throw std::runtime_error(std::string("memfd_create: ") + std::strerror(errno));
    }
  }
  // High-numbered copies first: moving them onto 3 and 4 in the child must not clobber one with
  // the other, whatever numbers the originals happen to have.
  const int sock_hi = fcntl(sv[1], F_DUPFD_CLOEXEC, 100);
  const int shm_hi = wk.shm_fd >= 0 ? fcntl(wk.shm_fd, F_DUPFD_CLOEXEC, 100) : -1;
  close(sv[1]);
  if (sock_hi < 0 || (wk.shm_fd >= 0 && shm_hi < 0)) {
    close(sv[0]);
    if (sock_hi >= 0) close(sock_hi);
    if (shm_hi >= 0) close(shm_hi);
    throw std::runtime_error(std::string("fcntl(F_DUPFD): ") + std::strerror(errno));
  }
  pid_t pid = -1;
  if (spawn_) {
    // A fresh exec: the child starts from main() with nothing of ours but fds 3 and 4.
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sock_hi, kWorkerSocketFd);
    if (shm_hi >= 0) posix_spawn_file_actions_adddup2(&fa, shm_hi, kWorkerShmFd);
    posix_spawn_file_actions_addclosefrom_np(&fa, wk.shm_fd >= 0 ? kWorkerShmFd + 1 : kWorkerShmFd);
    const std::string exe = worker_executable();
    const std::string codec = codec_name(codec_);
    const std::string threads = std::to_string(threads_);
    const std::string interval = std::to_string(switch_interval_us_);
    std::vector<std::string> cost =
        calibration_ ? interpreter_cost_args(calibration_->cost) : std::vector<std::string>{};
    std::vector<char*> argv = {const_cast<char*>(exe.c_str()), const_cast<char*>("__worker"),
                               const_cast<char*>(codec.c_str())};
    if (threads_ > 0) {
      argv.push_back(const_cast<char*>(threads.c_str()));
      argv.push_back(const_cast<char*>(interval.c_str()));
      for (std::string& c : cost) argv.push_back(c.data());
    }
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) pid = -1, errno = rc;
  } else {
    pid = fork();
    if (pid == 0) {
      // The child: keep only its socket (and region) at the well-known numbers, then serve.
      if (dup2(sock_hi, kWorkerSocketFd) < 0) _exit(120);
      if (shm_hi >= 0 && dup2(shm_hi, kWorkerShmFd) < 0) _exit(121);
      syscall(SYS_close_range, shm_hi >= 0 ? kWorkerShmFd + 1 : kWorkerShmFd, ~0U, 0);
      _exit(run_process_worker(kWorkerSocketFd, shm_hi >= 0 ? kWorkerShmFd : -1, codec_, threads_,
                               switch_interval_us_, calibration_ ? &calibration_->cost : nullptr));
    }
  }
  const int start_errno = errno;
  close(sock_hi);
  if (shm_hi >= 0) close(shm_hi);
  if (pid < 0) {
    close(sv[0]);
    if (wk.shm_fd >= 0) close(wk.shm_fd);
    wk.shm_fd = -1;
    throw std::runtime_error(std::string(spawn_ ? "posix_spawn " + worker_executable() : "fork") +
                             ": " + std::strerror(start_errno));
  }
  wk.pid = pid;
  wk.fd = sv[0];
  // Wait for the hello frame: start-up ends when the worker can take a task.
  pollfd p{wk.fd, POLLIN, 0};
  for (;;) {
    const uint64_t elapsed = monotonic_ns() - t0;
    if (elapsed > kStartTimeoutNs) {
      const std::string why = reap(w);
      throw std::runtime_error("worker did not start: " + why);
    }
    const int r = poll(&p, 1, kPollSliceMs);
    if (r < 0 && errno != EINTR) throw std::runtime_error("poll during start-up failed");
    if (r <= 0) continue;
    std::span<std::byte> space = wk.in.prepare(4096);
    const ssize_t n = read(wk.fd, space.data(), space.size());
    if (n <= 0) {
      const std::string why = reap(w);
      throw std::runtime_error("worker died while starting: " + why);
    }
    wk.in.commit(static_cast<size_t>(n));
    std::span<const std::byte> body;
    if (wk.in.next(body)) {
      const TaskResponse hello = decode_response(codec_, body);
      if (hello.item != kHelloItem) throw std::runtime_error("worker sent no hello");
      break;
    }
  }
  fcntl(wk.fd, F_SETFL, fcntl(wk.fd, F_GETFL) | O_NONBLOCK);
  return monotonic_ns() - t0;
}

// Waits for the worker's exit (killing it first) and closes what it held. Returns its fate.
std::string ProcessPool::reap(size_t w) {
  Worker& wk = workers_[w];
  std::string fate = "worker gone";
  if (wk.pid > 0) {
    int status = 0;
    rusage ru{};
    // wait4 rather than waitpid: the dead worker's rusage covers the CPU time it never reported.
    pid_t r = wait4(wk.pid, &status, WNOHANG, &ru);
    if (r == 0) {
      // Still running (it closed its socket, or is being replaced): it must not linger.
      kill(wk.pid, SIGKILL);
      do {
        r = wait4(wk.pid, &status, 0, &ru);
      } while (r < 0 && errno == EINTR);
    }
    if (r == wk.pid) {
      fate = describe_status(status);
      wk.final_cpu = {timeval_ns(ru.ru_utime), timeval_ns(ru.ru_stime)};
      wk.have_final_cpu = true;
    }
    wk.pid = -1;
  }
  if (wk.fd >= 0) close(wk.fd);
  wk.fd = -1;
  if (wk.shm != nullptr) munmap(wk.shm, wk.shm_size);
  wk.shm = nullptr;
  wk.shm_size = 0;
  if (wk.shm_fd >= 0) close(wk.shm_fd);
  wk.shm_fd = -1;
  return fate;
}

void ProcessPool::stop_worker(size_t w, bool graceful) {
  Worker& wk = workers_[w];
  if (wk.pid <= 0 && wk.fd < 0) return;
  if (graceful && wk.fd >= 0) {
    // EOF asks the worker to leave; give it a moment before reap() insists.
    shutdown(wk.fd, SHUT_WR);
    for (int i = 0; i < 100 && wk.pid > 0; ++i) {
      int status;
      if (waitpid(wk.pid, &status, WNOHANG) == wk.pid) {
        wk.pid = -1;
        break;
      }
      usleep(1000);
    }
  }
  reap(w);
}

void ProcessPool::ensure_shm(Worker& wk, size_t bytes) {
  if (bytes <= wk.shm_size) return;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t size = (bytes + page - 1) / page * page;
  if (ftruncate(wk.shm_fd, static_cast<off_t>(size)) != 0)
    throw std::runtime_error(std::string("ftruncate(shm): ") + std::strerror(errno));
  if (wk.shm != nullptr) munmap(wk.shm, wk.shm_size);
  // MAP_POPULATE: the slots are written round-robin, so without it a batch would fault in a
  // slot's pages whenever it reaches one not used before (inflight x payload bytes per worker),
  // long after the first batch. Growing happens before a batch's timed region.
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, wk.shm_fd, 0);
  if (p == MAP_FAILED) {
    wk.shm = nullptr;
    wk.shm_size = 0;
    throw std::runtime_error(std::string("mmap(shm): ") + std::strerror(errno));
  }
  wk.shm = static_cast<std::byte*>(p);
  wk.shm_size = size;
}

// Asks an idle worker for the counts and CPU time it has not reported yet (see kFlushItem). A
// worker that does not answer within a second contributes nothing, and the counters and CPU time
// become unavailable rather than undercounted.
ProcessPool::Flush ProcessPool::flush_worker(size_t w) {
  Worker& wk = workers_[w];
  Flush none;
  if (wk.fd < 0 || !wk.outstanding.empty()) return none;
  TaskRequest req;
  req.item = kFlushItem;
  std::vector<std::byte> frame;
  encode_request(codec_, req, frame);
  if (send(wk.fd, frame.data(), frame.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(frame.size()))
    return none;
  const uint64_t deadline = monotonic_ns() + 1'000'000'000ULL;
  pollfd p{wk.fd, POLLIN, 0};
  while (monotonic_ns() < deadline) {
    const int r = poll(&p, 1, kPollSliceMs);
    if (r < 0 && errno != EINTR) return none;
    if (r <= 0) continue;
    std::span<std::byte> space = wk.in.prepare(4096);
    const ssize_t n = read(wk.fd, space.data(), space.size());
    if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) return none;
    if (n > 0) wk.in.commit(static_cast<size_t>(n));
    std::span<const std::byte> body;
    if (wk.in.next(body)) {
      try {
        TaskResponse resp = decode_response(codec_, body);
        if (resp.item != kFlushItem) return none;
        Flush f;
        f.ok = true;
        f.counters = resp.counters;
        f.has_cpu = resp.has_cpu;
        f.cpu = {resp.cpu_user_ns, resp.cpu_sys_ns};
        f.report = nlohmann::json::parse(resp.error, nullptr, /*allow_exceptions=*/false);
        if (f.report.is_discarded()) f.report = nullptr;
        return f;
      } catch (const WireError&) {
      }
      return none;
    }
  }
  return none;
}

void ProcessPool::attribute_worker(size_t w, const nlohmann::json& report, uint64_t wall_ns,
                                   std::vector<WorkerAttribution>& out) const {
  const Worker& wk = workers_[w];
  auto sched_of = [](const nlohmann::json& j, WorkerAttribution& a) {
    if (j.contains("run_ns")) {
      a.sched = SchedStat{j["run_ns"].get<uint64_t>(), j["runqueue_ns"].get<uint64_t>(),
                          j["timeslices"].get<uint64_t>()};
    } else {
      a.sched_unavailable = j.value("sched_unavailable", std::string("no schedstat reported"));
    }
    a.times.io_wait_ns = j.value("io_wait_ns", uint64_t{0});
    a.times.io_waits = j.value("io_waits", uint64_t{0});
  };
  if (!report.is_object()) {
    WorkerAttribution a;
    a.worker = static_cast<int>(w);
    a.kind = "process";
    a.sched_unavailable = "the worker did not answer its flush";
    out.push_back(std::move(a));
    return;
  }
  if (threads_ == 0) {
    // The worker blocks only in read(), waiting for its next request, or inside an IO step
    // (timed): its time off the CPU outside IO steps is its idle time, as a loop's is its IO
    // wait (the kernel's figure: the batch less its CPU, run-queue and IO time; so its parts
    // add up by construction). Its decoding and encoding are its clock's, per task.
    WorkerAttribution a;
    a.worker = static_cast<int>(w);
    a.kind = "process";
    a.active_ns = wall_ns;
    a.times.deserialize_ns = wk.batch_dec_ns;
    a.times.serialize_ns = wk.batch_enc_ns;
    a.times.tasks = wk.batch_tasks;
    sched_of(report, a);
    if (a.sched) {
      const uint64_t busy = a.sched->run_ns + a.sched->runqueue_ns + a.times.io_wait_ns;
      a.times.idle_ns = wall_ns > busy ? wall_ns - busy : 0;
    }
    out.push_back(std::move(a));
    return;
  }
  // Processes of threads: each task thread is a worker (its process's reader and writer threads
  // decode and encode; their time is in the process's CPU, not here).
  int i = 0;
  for (const auto& t : report["threads"]) {
    WorkerAttribution a;
    a.worker = static_cast<int>(w) * threads_ + i++;
    a.kind = "thread";
    a.active_ns = t.value("exec_ns", uint64_t{0});
    a.times.gil_wait_ns =
        t.value("gil_wait_ns", uint64_t{0}) + t.value("gil_forced_wait_ns", uint64_t{0});
    a.times.gil_hold_ns = t.value("gil_hold_ns", uint64_t{0});
    a.times.tasks = t.value("tasks", uint64_t{0});
    sched_of(t, a);
    out.push_back(std::move(a));
  }
}

ThreadCounters& ProcessPool::parent_counters() {
  // ThreadCounters counts the thread that opened it, and the runner may call run() from another
  // thread than setup(): opened on first use by the running thread, and again if that changes.
  if (!parent_counters_ || parent_thread_ != std::this_thread::get_id()) {
    parent_counters_ = std::make_unique<ThreadCounters>();
    parent_thread_ = std::this_thread::get_id();
  }
  return *parent_counters_;
}

BatchResult ProcessPool::run(const Batch& batch) {
  // Everything up to begin_work() is the harness's: the zero-filled result vectors, the reserved
  // latency samples, the parent's counter read, growing the shared-memory regions.
  BatchResult result(batch.items());
  const std::vector<Task>& tasks = *batch.tasks;
  const uint64_t items = batch.items();
  // One item in batch.latency_stride has its round trip timed (and its encoding and decoding),
  // the same items as every model samples: a process pool reads no clock per task
  // (ProcessPoolExecutor does not), so neither does this one's hot path.
  const uint64_t stride = batch.latency_stride;
  result.latency_ns.reserve(static_cast<size_t>(items / stride + 1));
  ThreadCounters& parent = parent_counters();
  const CounterValues parent_before = parent.read();
  CounterValues worker_counts = CounterValues::zero_all();
  CpuTimes child_cpu;
  bool child_cpu_ok = true;
  // Parent-side timings come from the sampled items only and are scaled up (see the metrics).
  uint64_t enc_ns = 0, dec_ns = 0, enc_samples = 0, dec_samples = 0, lat_sum = 0;
  uint64_t w_dec_ns = 0, w_exec_ns = 0, w_enc_ns = 0;
  uint64_t bytes_out = 0, bytes_in = 0, replacements = 0, replace_ns = 0, sent = 0, decoded = 0;

  size_t slot_bytes = 0;
  for (const Task& t : tasks) slot_bytes = std::max(slot_bytes, t.payload.size());
  slot_bytes = std::max<size_t>(slot_bytes, 64);
  for (size_t w = 0; shm_ && w < workers_.size(); ++w)
    ensure_shm(workers_[w], slot_bytes * inflight_);

  std::deque<uint64_t> retry;  // items that were queued behind a worker that died: never ran
  uint64_t next = 0, finished = 0;
  auto fail = [&](uint64_t item, std::string reason) {
    result.failures.push_back({item, std::move(reason)});
    ++finished;
  };

  auto replace = [&](size_t w, const std::string& cause) {
    Worker& wk = workers_[w];
    const std::string fate = reap(w);
    // What the dead worker ran since its last report: its total from wait4 less what it reported.
    if (wk.have_final_cpu) {
      child_cpu.user_ns += wk.final_cpu.user_ns > wk.reported_cpu.user_ns
                               ? wk.final_cpu.user_ns - wk.reported_cpu.user_ns
                               : 0;
      child_cpu.sys_ns += wk.final_cpu.sys_ns > wk.reported_cpu.sys_ns
                              ? wk.final_cpu.sys_ns - wk.reported_cpu.sys_ns
                              : 0;
    } else {
      child_cpu_ok = false;
    }
    if (!wk.outstanding.empty()) {
      fail(wk.outstanding.front().item, cause.empty() ? fate : cause + "; " + fate);
      wk.outstanding.pop_front();
      for (const auto& o : wk.outstanding) retry.push_back(o.item);
      wk.outstanding.clear();
    }
    ++replacements;
    replace_ns += start_worker(w);  // a stall the batch really suffers, so it stays timed
    if (shm_) ensure_shm(workers_[w], slot_bytes * inflight_);
  };

  // The echoed payload is the task's result as far as the parent is concerned: it must be the
  // bytes that were sent. One pass over them, as unpickling a result is.
  auto echo_intact = [&](const Worker& wk, const Outstanding& o, const Task& t) {
    const PayloadRef& p = resp_.payload;
    if (p.length != t.payload.size()) return false;
    if (t.payload.empty()) return true;
    if (shm_) {
      return p.in_shm && p.offset == o.shm_offset && wk.shm != nullptr &&
             std::memcmp(wk.shm + o.shm_offset, t.payload.data(), t.payload.size()) == 0;
    }
    return !p.in_shm && p.bytes.size() == t.payload.size() &&
           std::memcmp(p.bytes.data(), t.payload.data(), t.payload.size()) == 0;
  };

  TaskRequest& req = req_;
  TaskResponse& resp = resp_;
  std::vector<pollfd>& pfds = pfds_;
  for (Worker& wk : workers_)
    wk.batch_dec_ns = wk.batch_exec_ns = wk.batch_enc_ns = wk.batch_tasks = 0;
  // The parent is a worker of its own in the attribution: it encodes, decodes and waits in poll.
  // --trace: the parent's encodes and decodes, and each worker's tasks from the parent's side
  // (what runs inside a worker process is not traced).
  TraceBuffer* const ptrace = batch.trace ? batch.trace->parent() : nullptr;
  if (batch.trace) batch.trace->recorded = true;
  const ActiveInterval parent_active;
  result.begin_work();
  uint64_t now = monotonic_ns();
  while (finished < items && !cancelled_.load(std::memory_order_relaxed)) {
    // Fill the pipelines one level at a time across workers, so a batch smaller than
    // workers x inflight is still spread over every worker instead of queueing behind one.
    for (size_t depth = 1; depth <= inflight_ && (next < items || !retry.empty()); ++depth)
      for (size_t w = 0; w < workers_.size(); ++w) {
        Worker& wk = workers_[w];
        if (wk.outstanding.size() < depth && (next < items || !retry.empty())) {
          uint64_t item;
          if (!retry.empty()) {
            item = retry.front();
            retry.pop_front();
          } else {
            item = next++;
          }
          const bool sampled = item % stride == 0;
          const Task& t = tasks[item % tasks.size()];
          const uint64_t t0 = sampled || ptrace ? monotonic_ns() : 0;
          req.item = item;
          req.seed = t.seed;
          req.nonce = batch.item_nonce(item);
          req.steps = t.steps;
          req.fault = kFaultNone;
          if (injection_.fault != kFaultNone) {
            const double roll =
                static_cast<double>(mix64(t.seed ^ mix64(item + 0x1f)) >> 11) * 0x1p-53;
            if (roll < injection_.probability) req.fault = injection_.fault;
          }
          size_t off = 0;
          if (shm_) {
            // The one copy of the payload: into this worker's slot of the shared region.
            off = wk.next_slot * slot_bytes;
            wk.next_slot = (wk.next_slot + 1) % inflight_;
            if (!t.payload.empty()) std::memcpy(wk.shm + off, t.payload.data(), t.payload.size());
            req.payload.in_shm = true;
            req.payload.offset = off;
            req.payload.length = t.payload.size();
            req.payload.bytes.clear();
          } else {
            req.payload.in_shm = false;
            req.payload.bytes.assign(t.payload.begin(), t.payload.end());
          }
          const size_t before = wk.out.size();
          encode_request(codec_, req, wk.out);
          bytes_out += wk.out.size() - before;
          ++sent;
          uint64_t sent_ns = 0, traced_ns = 0;
          if (sampled) {
            sent_ns = monotonic_ns();
            enc_ns += sent_ns - t0;
            ++enc_samples;
          }
          if (ptrace) [[unlikely]] {
            traced_ns = sent_ns ? sent_ns : monotonic_ns();
            ptrace->add(TraceKind::serialize, t0, traced_ns, item);
          }
          if (wk.outstanding.empty()) wk.head_since_ns = now;
          wk.outstanding.push_back({item, sent_ns, off, traced_ns});
        }
      }
    // Write what is pending, poll, read what arrived.
    pfds.resize(workers_.size());
    for (size_t w = 0; w < workers_.size(); ++w) {
      Worker& wk = workers_[w];
      while (wk.out_off < wk.out.size()) {
        // MSG_NOSIGNAL: a dead worker must cost an EPIPE here, not a SIGPIPE for the parent.
        const ssize_t n =
            send(wk.fd, wk.out.data() + wk.out_off, wk.out.size() - wk.out_off, MSG_NOSIGNAL);
        if (n > 0) {
          wk.out_off += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else {
          break;  // EAGAIN, or a dead worker (EPIPE): poll tells
        }
      }
      if (wk.out_off == wk.out.size()) {
        wk.out.clear();
        wk.out_off = 0;
      }
      pfds[w] = {wk.fd, static_cast<short>(POLLIN | (wk.out.empty() ? 0 : POLLOUT)), 0};
    }
    int timeout_ms = kPollSliceMs;
    for (const Worker& wk : workers_) {
      if (wk.outstanding.empty()) continue;
      const uint64_t deadline = wk.head_since_ns + task_timeout_ns_;
      const int64_t left_ms =
          deadline > now ? static_cast<int64_t>((deadline - now) / 1'000'000) + 1 : 0;
      timeout_ms = static_cast<int>(std::min<int64_t>(timeout_ms, left_ms));
    }
    const int r = poll(pfds.data(), pfds.size(), timeout_ms);
    if (r < 0 && errno != EINTR)
      throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    now = monotonic_ns();  // one clock read per burst, for the timeouts
    for (size_t w = 0; w < workers_.size(); ++w) {
      Worker& wk = workers_[w];
      if (pfds[w].revents & (POLLIN | POLLHUP | POLLERR)) {
        bool dead = false;
        std::string why;
        for (;;) {
          std::span<std::byte> space = wk.in.prepare(256 * 1024);
          const ssize_t n = read(wk.fd, space.data(), space.size());
          if (n > 0) {
            wk.in.commit(static_cast<size_t>(n));
            bytes_in += static_cast<uint64_t>(n);
            // A short read drained the socket: skip the read that would only say EAGAIN.
            if (static_cast<size_t>(n) < space.size()) break;
            continue;
          }
          if (n < 0 && errno == EINTR) continue;
          if (n < 0 && errno == EAGAIN) break;
          dead = true;  // EOF or a socket error: the worker is gone
          break;
        }
        try {
          std::span<const std::byte> body;
          while (wk.in.next(body)) {
            if (wk.outstanding.empty()) throw WireError("a response nobody asked for");
            const Outstanding o = wk.outstanding.front();
            wk.outstanding.pop_front();
            wk.head_since_ns = now;
            const bool sampled = o.sent_ns != 0;
            const uint64_t t0 = sampled || o.traced_ns ? monotonic_ns() : 0;
            try {
              decode_response(codec_, body, resp);
            } catch (const WireError& e) {
              fail(o.item, std::string("malformed response frame: ") + e.what());
              continue;
            }
            ++decoded;
            if (o.traced_ns) [[unlikely]] {
              const uint64_t t1 = monotonic_ns();
              // The worker's track, from the parent's side: its task out, sent to answered.
              if (TraceBuffer* wt = batch.trace->worker(static_cast<int>(w)))
                wt->add(TraceKind::in_flight, o.traced_ns, t0, o.item);
              ptrace->add(TraceKind::deserialize, t0, t1, o.item);
            }
            if (sampled) {
              const uint64_t t1 = monotonic_ns();
              dec_ns += t1 - t0;
              ++dec_samples;
              result.latency_ns.push_back(t1 - o.sent_ns);
              lat_sum += t1 - o.sent_ns;
            }
            if (resp.item != o.item) {
              fail(o.item, "response for item " + std::to_string(resp.item) + " out of order");
              continue;
            }
            worker_counts.accumulate(resp.counters);
            if (resp.has_cpu) {
              child_cpu.user_ns += resp.cpu_user_ns;
              child_cpu.sys_ns += resp.cpu_sys_ns;
              wk.reported_cpu.user_ns += resp.cpu_user_ns;
              wk.reported_cpu.sys_ns += resp.cpu_sys_ns;
            } else {
              child_cpu_ok = false;
            }
            w_dec_ns += resp.decode_ns;
            w_exec_ns += resp.exec_ns;
            w_enc_ns += resp.encode_ns;
            wk.batch_dec_ns += resp.decode_ns;
            wk.batch_exec_ns += resp.exec_ns;
            wk.batch_enc_ns += resp.encode_ns;
            if (!resp.ok) {
              fail(o.item, "task failed in the worker: " + resp.error);
              continue;
            }
            if (!echo_intact(wk, o, tasks[o.item % tasks.size()])) {
              fail(o.item, "the payload echoed back differs from the one sent");
              continue;
            }
            result.checksums[o.item] = resp.checksum;
            result.done[o.item] = 1;
            ++wk.batch_tasks;
            ++finished;
          }
        } catch (const WireError& e) {
          dead = true;  // the stream cannot be trusted any more
          why = std::string("protocol error: ") + e.what();
          kill(wk.pid, SIGKILL);
        }
        if (dead) {
          if (why.empty() && wk.in.buffered() > 0) why = "truncated frame";
          replace(w, why);
          continue;
        }
      }
      if (!wk.outstanding.empty() && now - wk.head_since_ns > task_timeout_ns_) {
        kill(wk.pid, SIGKILL);
        replace(w, "task exceeded task_timeout_ms=" + std::to_string(task_timeout_ns_ / 1'000'000) +
                       "; worker killed");
      }
    }
  }
  result.end_work();
  WorkerAttribution parent_attr;
  parent_active.finish(parent_attr);

  // Outside the timed region from here on. The parent's own counts first, so that the flush's
  // syscalls are not among them.
  CounterValues total = parent.read().since(parent_before);
  // Cancelled: what is still outstanding is not done (the runner counts it as not run). The
  // workers keep running it; teardown ends them, and their counts and CPU time are lost.
  nlohmann::json per_process = nlohmann::json::array();
  if (!cancelled_.load(std::memory_order_relaxed)) {
    for (size_t w = 0; w < workers_.size(); ++w) {
      const Flush f = flush_worker(w);
      attribute_worker(w, f.report, result.span.wall_ns, result.attribution);
      if (threads_ > 0) per_process.push_back(f.report);
      if (!f.ok) {
        worker_counts = CounterValues{};  // an undercount must not look like a total
        child_cpu_ok = false;
        continue;
      }
      worker_counts.accumulate(f.counters);
      if (f.has_cpu) {
        child_cpu.user_ns += f.cpu.user_ns;
        child_cpu.sys_ns += f.cpu.sys_ns;
        workers_[w].reported_cpu.user_ns += f.cpu.user_ns;
        workers_[w].reported_cpu.sys_ns += f.cpu.sys_ns;
      } else {
        child_cpu_ok = false;
      }
    }
  } else {
    worker_counts = CounterValues{};
    child_cpu_ok = false;
    result.attribution_unavailable = "cancelled: the workers' records were not collected";
  }
  total.accumulate(worker_counts);
  result.counters = total;
  result.has_child_cpu = child_cpu_ok;
  result.child_cpu_user_ns = child_cpu_ok ? child_cpu.user_ns : 0;
  result.child_cpu_sys_ns = child_cpu_ok ? child_cpu.sys_ns : 0;

  // Sampled parent timings scaled to every item (exact when stride is 1).
  auto scaled = [](uint64_t sum, uint64_t samples, uint64_t of) {
    return samples ? static_cast<uint64_t>(static_cast<double>(sum) * static_cast<double>(of) /
                                           static_cast<double>(samples))
                   : 0;
  };
  const uint64_t p_enc = scaled(enc_ns, enc_samples, sent);
  const uint64_t p_dec = scaled(dec_ns, dec_samples, decoded);
  const uint64_t lat_total = scaled(lat_sum, dec_samples, decoded);
  const uint64_t overhead = p_enc + p_dec + w_dec_ns + w_exec_ns + w_enc_ns;
  if (!result.attribution.empty()) {
    // The parent blocks only in poll(): its time off the CPU is its wait for the workers. Its
    // encoding and decoding are timed on the sampled items and scaled, as in the metrics.
    attribute_loop_thread(parent_attr);
    parent_attr.kind = "parent";
    parent_attr.worker = -1;
    parent_attr.times.serialize_ns = p_enc;
    parent_attr.times.deserialize_ns = p_dec;
    parent_attr.tasks_known = false;
    result.attribution.push_back(std::move(parent_attr));
  }
  for (const Worker& wk : workers_)
    if (wk.pid > 0) result.worker_pids.push_back(static_cast<int>(wk.pid));
  result.model_metrics = {
      {"start", spawn_ ? "spawn" : "fork"},
      {"codec", codec_name(codec_)},
      {"transport", shm_ ? "shm" : "pipe"},
      {"inflight", inflight_},
      {"processes", workers_.size()},
      {"startup_ns", startup_ns_},
      {"serialize_ns", p_enc + w_enc_ns},
      {"deserialize_ns", p_dec + w_dec_ns},
      {"parent_serialize_ns", p_enc},
      {"parent_deserialize_ns", p_dec},
      {"worker_deserialize_ns", w_dec_ns},
      {"worker_serialize_ns", w_enc_ns},
      {"worker_exec_ns", w_exec_ns},
      // Round trips minus what both sides spent encoding, decoding and running: the transport,
      // the wake-ups and (with inflight > 1) queueing in the worker.
      {"ipc_ns", lat_total > overhead ? lat_total - overhead : 0},
      // latency_ns and the parent_* timings (hence serialize_ns, deserialize_ns, ipc_ns) come
      // from one item in `every`, scaled to all items: the parent reads no clock per task.
      {"latency_sampling",
       {{"every", stride}, {"samples", result.latency_ns.size()}, {"items", items}}},
      {"bytes_sent", bytes_out},
      {"bytes_received", bytes_in},
      {"bytes_per_task",
       decoded ? static_cast<double>(bytes_out + bytes_in) / static_cast<double>(decoded) : 0.0},
      {"worker_replacements", replacements},
      {"replacement_startup_ns", replace_ns},
  };
  if (threads_ > 0) {
    // Each process's threads since the previous batch (from the flush; null for a process that
    // did not answer it). A worker replaced mid-batch reports only its replacement's threads.
    uint64_t acq = 0, wait = 0, req = 0, forced = 0, sw = 0, hold = 0;
    for (const auto& p : per_process) {
      if (!p.is_object()) continue;
      for (const auto& t : p["threads"]) {
        acq += t.value("gil_acquisitions", uint64_t{0});
        wait += t.value("gil_wait_ns", uint64_t{0});
        req += t.value("gil_drop_requests", uint64_t{0});
        forced += t.value("gil_forced_switches", uint64_t{0});
        sw += t.value("gil_switches", uint64_t{0});
        hold += t.value("gil_hold_ns", uint64_t{0});
      }
    }
    result.model_metrics["threads_per_process"] = threads_;
    result.model_metrics["threads"] = threads_ * static_cast<int>(workers_.size());
    result.model_metrics["switch_interval_us"] = switch_interval_us_;
    if (calibration_) result.model_metrics["interpreter_cost"] = calibration_->to_json();
    result.model_metrics["gil_acquisitions"] = acq;
    result.model_metrics["gil_switches"] = sw;
    result.model_metrics["gil_drop_requests"] = req;
    result.model_metrics["gil_forced_switches"] = forced;
    result.model_metrics["gil_wait_ns"] = {{"total", wait}};
    result.model_metrics["gil_hold_ns"] = hold;
    result.model_metrics["per_process"] = std::move(per_process);
  }
  return result;
}

}  // namespace

std::vector<ParamSpec> process_pool_params() {
  return {
      ParamSpec::choice("start", "fork, or spawn (a fresh exec of bench_runner)", "fork",
                        {"fork", "spawn"}),
      ParamSpec::choice("codec", "how tasks and results are encoded", "raw",
                        {"json", "cbor", "msgpack", "raw"}),
      ParamSpec::choice("transport", "pipe: payload through the socket; shm: shared memory", "pipe",
                        {"pipe", "shm"}),
      ParamSpec::integer("inflight", "tasks outstanding per worker (pipelining; 32 measured best)",
                         32, 1, 4096),
      ParamSpec::integer("task_timeout_ms", "a task running longer gets its worker killed", 60000,
                         1, 86'400'000),
      ParamSpec::text("inject", "none, or kill|segv|exit|hang|garble|truncate|corrupt:PROBABILITY",
                      "none")};
}

std::unique_ptr<Model> make_process_pool(bool threaded) {
  return std::make_unique<ProcessPool>(threaded);
}

void validate_process_pool(const Params& p) {
  parse_injection(p.get("inject"));
}

ModelInfo process_pool_model_info() {
  ModelInfo info{
      "process_pool",
      "N worker processes; every task and result crosses the boundary, encoded and framed",
      process_pool_params(),
      false,
      [] { return make_process_pool(false); },
      validate_process_pool,
      /*separate_processes=*/true};
  info.latency_means =
      "round trip: from sending the task to its result back in the parent, encoding, the "
      "worker's queue of pipelined tasks and decoding included";
  info.shares_only_cpus = true;
  return info;
}

}  // namespace concbench
