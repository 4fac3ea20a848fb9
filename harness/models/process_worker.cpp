// The worker process of process_pool (see process_worker.hpp). Single-threaded apart from the
// IoEnv's echo server: it reads whatever frames have arrived, answers them all, and writes the
// answers in one go, so a pipelining parent costs one read and one write per burst, not per task.
#include "concbench/process_worker.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "concbench/attribution.hpp"
#include "concbench/clock.hpp"
#include "concbench/exec_context.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "concbench/plugin.hpp"
#include "concbench/process_settings.hpp"
#include "gil_hooks.hpp"

namespace concbench {
namespace {

bool write_all(int fd, const std::byte* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// The worker's view of the shared region; remapped when the parent has grown it.
class ShmView {
 public:
  explicit ShmView(int fd) : fd_(fd) {}
  ~ShmView() {
    if (base_ != nullptr) munmap(base_, size_);
  }
  std::span<std::byte> at(uint64_t offset, uint64_t length) {
    if (fd_ < 0) throw WireError("shared-memory payload but no region");
    if (offset + length < offset) throw WireError("shared-memory reference overflows");
    if (offset + length > size_) remap();
    if (offset + length > size_) throw WireError("shared-memory reference beyond the region");
    return {static_cast<std::byte*>(base_) + offset, static_cast<size_t>(length)};
  }

 private:
  void remap() {
    struct stat st {};
    if (fstat(fd_, &st) != 0) throw WireError("fstat(shm) failed");
    if (base_ != nullptr) munmap(base_, size_);
    base_ = nullptr;
    size_ = 0;
    if (st.st_size == 0) return;
    // MAP_POPULATE: map every page now (once per growth of the region) rather than fault each
    // slot in the first time the parent's ring reaches it.
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, fd_, 0);
    if (p == MAP_FAILED) throw WireError("mmap(shm) failed");
    base_ = p;
    size_ = static_cast<uint64_t>(st.st_size);
  }
  int fd_;
  void* base_ = nullptr;
  uint64_t size_ = 0;
};

// This process's CPU time (every thread), or false when getrusage fails.
bool read_cpu(CpuTimes& out) {
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return false;
  auto ns = [](const timeval& tv) {
    return static_cast<uint64_t>(tv.tv_sec) * 1'000'000'000ULL +
           static_cast<uint64_t>(tv.tv_usec) * 1000ULL;
  };
  out = {ns(ru.ru_utime), ns(ru.ru_stime)};
  return true;
}

// What a response carries of the worker's counters and CPU time: the deltas since the last
// response that carried them, read at most every kCounterPeriodNs (and on a flush), so a short
// task does not pay two reads. One failed CPU read leaves this delta and the next unavailable
// (has_cpu = false) rather than folding the gap into a later one.
template <class Counters>
struct UsageSampler {
  Counters& counters;
  CounterValues last;
  CpuTimes last_cpu;
  bool cpu_ok;
  uint64_t last_read_ns;
  explicit UsageSampler(Counters& c)
      : counters(c), last(c.read()), cpu_ok(read_cpu(last_cpu)), last_read_ns(monotonic_ns()) {}
  void fill(TaskResponse& resp, bool flush, uint64_t t_end) {
    if (!flush && t_end - last_read_ns < kCounterPeriodNs) {
      resp.counters = CounterValues::zero_all();  // counted in a later response's delta
      resp.has_cpu = true;                        // likewise: nothing to add here
      resp.cpu_user_ns = resp.cpu_sys_ns = 0;
      return;
    }
    const CounterValues now = counters.read();
    resp.counters = now.since(last);
    last = now;
    last_read_ns = t_end;
    CpuTimes cpu;
    const bool ok = read_cpu(cpu);
    resp.has_cpu = ok && cpu_ok;
    resp.cpu_user_ns = resp.has_cpu ? cpu.user_ns - last_cpu.user_ns : 0;
    resp.cpu_sys_ns = resp.has_cpu ? cpu.sys_ns - last_cpu.sys_ns : 0;
    if (ok) last_cpu = cpu;
    cpu_ok = ok;
  }
};

// kFaultCorrupt: the answer the parent must catch by comparing what came back with what it sent.
void corrupt_echo(PayloadRef& p, ShmView& shm) {
  if (p.in_shm) {
    if (p.length == 0) {
      p.length = 1;  // claims a byte it was never sent
      return;
    }
    std::span<std::byte> b = shm.at(p.offset, p.length);
    b[b.size() / 2] ^= std::byte{0xff};
  } else if (p.bytes.empty()) {
    p.bytes.push_back(std::byte{0x5a});
    p.length = 1;
  } else {
    p.bytes[p.bytes.size() / 2] ^= std::byte{0xff};
  }
}

void misbehave(uint8_t fault, int fd, Codec codec) {
  switch (fault) {
    case kFaultKill:
      raise(SIGKILL);
      break;
    case kFaultSegv: {
      // A genuine invalid access, not a raise(SIGSEGV): the parent must see what a crash is.
      // The default action first: a sanitizer's handler would turn the crash into an exit code.
      std::signal(SIGSEGV, SIG_DFL);
      volatile int* p = nullptr;
      *p = 1;
      break;
    }
    case kFaultHang:
      for (;;) pause();
    case kFaultGarble: {
      const char junk[] = "\x07not a frame body at all\xff\xfe";
      std::vector<std::byte> out(4 + sizeof junk);
      const uint32_t n = sizeof junk;
      std::memcpy(out.data(), &n, 4);
      std::memcpy(out.data() + 4, junk, sizeof junk);
      write_all(fd, out.data(), out.size());
      return;  // stays alive: only this task is lost
    }
    case kFaultTruncate: {
      TaskResponse r;
      r.ok = true;
      std::vector<std::byte> out;
      encode_response(codec, r, out);
      write_all(fd, out.data(), out.size() / 2);
      _exit(4);
    }
    default:
      break;
  }
  _exit(3);  // kFaultExit, and anything unknown
}

// One request in a threaded worker, from its decoding to its response.
struct Job {
  TaskRequest req;
  TaskResponse resp;
  bool flush = false, done = false;
};

struct ThreadStats {
  long tid = 0;
  uint64_t tasks = 0;
  GilThread gil;            // cleared of wait samples as they are summed
  uint64_t wait_total = 0;  // summed wait_ns since the start
  uint64_t exec_total = 0;  // time running tasks, GIL waits included
  WorkerTimes times;        // its IO waits (the context times them)
  SchedStat sched;          // at the previous report (schedstat; run time is exact for a thread
                            // blocked between batches, as these are when a flush is answered)
};

int run_threaded_worker(int fd, int shm_fd, Codec codec, int nthreads, int interval_us,
                        const InterpreterCost& cost) {
  IoEnv io;
  std::atomic<uint32_t> breaker{0};
  Gil gil(breaker, std::chrono::microseconds(interval_us));
  detail::GilHooks hooks(gil);
  // Opened before the task threads start, so it counts them all.
  InheritedCounters counters;
  UsageSampler usage(counters);
  ShmView shm(shm_fd);
  std::mutex mu;                    // guards everything below
  std::condition_variable work_cv;  // a job to run, or stop
  std::condition_variable done_cv;  // a job finished, or stop
  std::deque<Job*> to_run;
  std::deque<Job*> in_order;  // every request, in arrival order, until its response is written
  std::vector<std::unique_ptr<Job>> pool;
  std::vector<Job*> free_jobs;
  bool stop = false;
  std::vector<ThreadStats> stats(static_cast<size_t>(nthreads));
  std::vector<ThreadStats> reported(static_cast<size_t>(nthreads));
  {
    std::vector<std::byte> out;
    TaskResponse hello;
    hello.item = kHelloItem;
    hello.ok = true;
    encode_response(codec, hello, out);
    if (!write_all(fd, out.data(), out.size())) return 1;
  }
  io.begin_batch();
  auto runner = [&](size_t i) {
    ThreadStats& st = stats[i];
    {
      std::lock_guard l(mu);
      st.tid = static_cast<long>(syscall(SYS_gettid));
    }
    ExecContext ctx(breaker, hooks, &io, static_cast<int>(i));
    ctx.set_interpreter_cost(&cost);
    GilThread& gt = st.gil;
    ctx.set_model_data(&gt);
    ctx.set_times(&st.times);
    for (;;) {
      Job* j;
      {
        std::unique_lock l(mu);
        work_cv.wait(l, [&] { return stop || !to_run.empty(); });
        if (stop) return;
        j = to_run.front();
        to_run.pop_front();
      }
      if (j->req.fault != kFaultNone && j->req.fault != kFaultCorrupt &&
          j->req.fault != kFaultGarble && j->req.fault != kFaultTruncate)
        misbehave(j->req.fault, fd, codec);  // kill, segv, exit, hang: the whole process
      const uint64_t t1 = monotonic_ns();
      TaskResponse& resp = j->resp;
      try {
        std::span<const std::byte> payload;
        if (j->req.payload.in_shm) {
          payload = shm.at(j->req.payload.offset, j->req.payload.length);
        } else {
          payload = j->req.payload.bytes;
        }
        gil.take(gt);  // a Python thread runs the task with its process's GIL
        resp.checksum =
            execute_steps(j->req.seed, j->req.steps, payload, ctx, j->req.nonce).checksum;
        gil.drop(gt, /*force_switch=*/false);
        std::swap(resp.payload, j->req.payload);
        if (j->req.fault == kFaultCorrupt) corrupt_echo(resp.payload, shm);
        resp.ok = true;
      } catch (const std::exception& e) {
        if (gil.held_by(gt)) gil.drop(gt, false);
        resp.ok = false;
        resp.error = e.what();
      }
      resp.exec_ns = monotonic_ns() - t1;
      {
        std::lock_guard l(mu);
        ++st.tasks;
        st.exec_total += resp.exec_ns;
        for (uint64_t w : gt.wait_ns) st.wait_total += w;
        gt.wait_ns.clear();
        j->done = true;
      }
      done_cv.notify_all();
    }
  };
  auto report = [&]() {
    // Called with mu held: the threads' records since the previous report.
    nlohmann::json threads = nlohmann::json::array();
    for (size_t i = 0; i < stats.size(); ++i) {
      const ThreadStats& a = stats[i];
      ThreadStats& b = reported[i];
      nlohmann::json th = {{"tid", a.tid},
                           {"tasks", a.tasks - b.tasks},
                           {"gil_acquisitions", a.gil.acquisitions - b.gil.acquisitions},
                           {"gil_switches", a.gil.switches - b.gil.switches},
                           {"gil_drop_requests", a.gil.drop_requests - b.gil.drop_requests},
                           {"gil_forced_switches", a.gil.forced_switches - b.gil.forced_switches},
                           {"gil_hold_ns", a.gil.hold_ns - b.gil.hold_ns},
                           {"gil_wait_ns", a.wait_total - b.wait_total},
                           {"gil_forced_wait_ns", a.gil.forced_wait_ns - b.gil.forced_wait_ns},

                           {"exec_ns", a.exec_total - b.exec_total},
                           {"io_wait_ns", a.times.io_wait_ns - b.times.io_wait_ns},
                           {"io_waits", a.times.io_waits - b.times.io_waits}};
      if (const auto ss = task_schedstat(static_cast<int>(getpid()), static_cast<int>(a.tid))) {
        th["run_ns"] = ss->run_ns - b.sched.run_ns;
        th["runqueue_ns"] = ss->runqueue_ns - b.sched.runqueue_ns;
        th["timeslices"] = ss->timeslices - b.sched.timeslices;
        b.sched = *ss;
      } else {
        th["sched_unavailable"] = schedstat_unavailable();
      }
      threads.push_back(std::move(th));
      b.exec_total = a.exec_total;
      b.times = a.times;
      b.gil.forced_wait_ns = a.gil.forced_wait_ns;

      b.tid = a.tid;
      b.tasks = a.tasks;
      b.gil.acquisitions = a.gil.acquisitions;
      b.gil.switches = a.gil.switches;
      b.gil.drop_requests = a.gil.drop_requests;
      b.gil.forced_switches = a.gil.forced_switches;
      b.gil.hold_ns = a.gil.hold_ns;
      b.wait_total = a.wait_total;
    }
    // The costs this process's threads run with, so the parent's report shows they arrived.
    const nlohmann::json emulated = {{"bytecode_ns", cost.bytecode_ns},
                                     {"responder_round_ns", cost.responder_round_ns},
                                     {"client_round_ns", cost.client_round_ns},
                                     {"check_ns", cost.check_ns},
                                     {"call_ns", cost.call_ns}};
    return nlohmann::json{{"pid", static_cast<long>(getpid())},
                          {"threads", std::move(threads)},
                          {"interpreter_cost", emulated}}
        .dump();
  };
  // The writer: each response in request order, once its task is done.
  auto writer = [&]() {
    std::vector<std::byte> out;
    uint64_t prev_encode_ns = 0;
    for (;;) {
      std::unique_lock l(mu);
      done_cv.wait(l, [&] { return stop || (!in_order.empty() && in_order.front()->done); });
      if (stop) return;
      while (!in_order.empty() && in_order.front()->done) {
        Job* j = in_order.front();
        in_order.pop_front();
        TaskResponse& resp = j->resp;
        if (j->req.fault == kFaultGarble || j->req.fault == kFaultTruncate) {
          if (!out.empty()) write_all(fd, out.data(), out.size());
          out.clear();
          misbehave(j->req.fault, fd, codec);  // garble returns; truncate exits
          free_jobs.push_back(j);
          continue;
        }
        usage.fill(resp, j->flush, monotonic_ns());
        if (j->flush) resp.error = report();
        resp.encode_ns = prev_encode_ns;
        const uint64_t t2 = monotonic_ns();
        encode_response(codec, resp, out);
        prev_encode_ns = monotonic_ns() - t2;
        free_jobs.push_back(j);
      }
      l.unlock();
      if (!out.empty()) {
        if (!write_all(fd, out.data(), out.size())) _exit(1);
        out.clear();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < nthreads; ++i) threads.emplace_back(runner, static_cast<size_t>(i));
  std::thread writer_thread(writer);
  // This thread reads and decodes requests (outside the GIL: the connection's plumbing).
  FrameReader in;
  int rc = 0;
  for (;;) {
    std::span<std::byte> space = in.prepare(256 * 1024);
    const ssize_t n = ::read(fd, space.data(), space.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the parent closed us
    in.commit(static_cast<size_t>(n));
    std::span<const std::byte> body;
    while (in.next(body)) {
      Job* j;
      {
        std::lock_guard l(mu);
        if (free_jobs.empty()) {
          pool.push_back(std::make_unique<Job>());
          free_jobs.push_back(pool.back().get());
        }
        j = free_jobs.back();
        free_jobs.pop_back();
      }
      TaskResponse& resp = j->resp;
      resp.item = 0;
      resp.ok = false;
      resp.checksum = 0;
      resp.error.clear();
      resp.payload.in_shm = false;
      resp.payload.offset = resp.payload.length = 0;
      resp.payload.bytes.clear();
      resp.decode_ns = resp.exec_ns = 0;
      j->done = j->flush = false;
      const uint64_t t0 = monotonic_ns();
      bool run = false;
      try {
        decode_request(codec, body, j->req);
        resp.item = j->req.item;
        j->flush = j->req.item == kFlushItem;
        run = !j->flush;
        if (j->flush) resp.ok = true;
      } catch (const std::exception& e) {
        resp.error = e.what();
        j->req.fault = kFaultNone;
      }
      resp.decode_ns = monotonic_ns() - t0;
      {
        std::lock_guard l(mu);
        in_order.push_back(j);
        if (run) {
          to_run.push_back(j);
        } else {
          j->done = true;
        }
      }
      if (run) {
        work_cv.notify_one();
      } else {
        done_cv.notify_all();
      }
    }
  }
  {
    std::lock_guard l(mu);
    stop = true;
  }
  breaker.fetch_or(kBreakCancel, std::memory_order_relaxed);
  work_cv.notify_all();
  done_cv.notify_all();
  for (auto& t : threads) t.join();
  writer_thread.join();
  return rc;
}

}  // namespace

int run_process_worker(int fd, int shm_fd, Codec codec, int threads, int switch_interval_us,
                       const InterpreterCost* cost) {
  if (threads > 0) {
    apply_process_settings();
    return run_threaded_worker(fd, shm_fd, codec, threads, switch_interval_us,
                               cost ? *cost : default_interpreter_cost());
  }
  // A forked worker inherits its parent's settings, but its parent may be any program (a test);
  // a spawned one has applied them in main already. Idempotent either way.
  apply_process_settings();
  IoEnv io;  // this process's own echo server and scratch file: processes share nothing
  std::atomic<uint32_t> breaker{0};
  ExecContext ctx(breaker, no_lock_hooks(), &io, 0);
  // Its IO waits, for the parent's attribution: reported (since the previous flush) in each
  // flush's response, as the threaded worker reports its threads.
  WorkerTimes times, times_reported;
  ctx.set_times(&times);
  SchedStat sched_reported = own_schedstat().value_or(SchedStat{});
  uint64_t cpu_reported = thread_cpu_ns();
  ThreadCounters counters;
  UsageSampler usage(counters);
  ShmView shm(shm_fd);
  // Every buffer lives as long as the worker, so in steady state a task allocates nothing and
  // touches no fresh page: the receive buffer, the decoded request, the response (whose payload
  // buffer trades places with the request's, below) and the send buffer.
  FrameReader in;
  std::vector<std::byte> out;
  TaskRequest req;
  TaskResponse resp;
  uint64_t prev_encode_ns = 0;  // a response cannot carry its own encoding time: the next one does

  {
    TaskResponse hello;
    hello.item = kHelloItem;
    hello.ok = true;
    encode_response(codec, hello, out);
    if (!write_all(fd, out.data(), out.size())) return 1;
    out.clear();
  }
  io.begin_batch();
  for (;;) {
    std::span<std::byte> space = in.prepare(256 * 1024);
    const ssize_t n = ::read(fd, space.data(), space.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;  // EOF: the parent closed us
    in.commit(static_cast<size_t>(n));
    std::span<const std::byte> body;
    while (in.next(body)) {
      resp.item = 0;
      resp.ok = false;
      resp.checksum = 0;
      resp.error.clear();
      resp.payload.in_shm = false;
      resp.payload.offset = resp.payload.length = 0;
      resp.payload.bytes.clear();  // keeps its capacity for the swap below
      resp.decode_ns = resp.exec_ns = 0;
      const uint64_t t0 = monotonic_ns();
      bool flush = false;
      try {
        decode_request(codec, body, req);
        resp.item = req.item;
        flush = req.item == kFlushItem;
        const uint64_t t1 = monotonic_ns();
        resp.decode_ns = t1 - t0;
        if (req.fault != kFaultNone && req.fault != kFaultCorrupt) {
          if (!out.empty()) write_all(fd, out.data(), out.size());  // answers already due
          out.clear();
          misbehave(req.fault, fd, codec);
          continue;
        }
        if (!flush) {
          std::span<const std::byte> payload;
          if (req.payload.in_shm) {
            payload = shm.at(req.payload.offset, req.payload.length);
          } else {
            payload = req.payload.bytes;
          }
          resp.checksum = execute_steps(req.seed, req.steps, payload, ctx, req.nonce).checksum;
          // The payload goes back: by reference in shared memory, by value through the socket. A
          // swap rather than a move: the request keeps a buffer (the previous response's) for the
          // next decode to fill, so neither side allocates again.
          std::swap(resp.payload, req.payload);
          if (req.fault == kFaultCorrupt) corrupt_echo(resp.payload, shm);
        }
        resp.ok = true;
        resp.exec_ns = monotonic_ns() - t1;
      } catch (const std::exception& e) {
        resp.ok = false;
        resp.error = e.what();
      }
      usage.fill(resp, flush, monotonic_ns());
      if (flush) {
        // Since the previous flush: between batches the worker blocks in read(), so the deltas
        // are the batch's. Run time from the CPU clock (schedstat's lags a running thread).
        nlohmann::json rep = {{"pid", static_cast<long>(getpid())},
                              {"io_wait_ns", times.io_wait_ns - times_reported.io_wait_ns},
                              {"io_waits", times.io_waits - times_reported.io_waits}};
        const uint64_t cpu = thread_cpu_ns();
        if (const auto ss = own_schedstat()) {
          rep["run_ns"] = cpu - cpu_reported;
          rep["runqueue_ns"] = ss->runqueue_ns - sched_reported.runqueue_ns;
          rep["timeslices"] = ss->timeslices - sched_reported.timeslices;
          sched_reported = *ss;
        } else {
          rep["sched_unavailable"] = schedstat_unavailable();
        }
        cpu_reported = cpu;
        resp.error = rep.dump();
        times_reported = times;
      }
      resp.encode_ns = prev_encode_ns;
      const uint64_t t2 = monotonic_ns();
      encode_response(codec, resp, out);
      prev_encode_ns = monotonic_ns() - t2;
    }
    if (!out.empty()) {
      if (!write_all(fd, out.data(), out.size())) return 1;
      out.clear();
    }
  }
}

std::vector<std::string> interpreter_cost_args(const InterpreterCost& c) {
  auto num = [](double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  return {num(c.bytecode_ns), std::to_string(c.responder_round_ns),
          std::to_string(c.client_round_ns), num(c.check_ns), num(c.call_ns)};
}

std::optional<InterpreterCost> parse_interpreter_cost_args(const char* const* args, int n) {
  if (n != 5) return std::nullopt;
  double v[5];
  for (int i = 0; i < 5; ++i) {
    char* end = nullptr;
    errno = 0;
    v[i] = std::strtod(args[i], &end);
    if (end == args[i] || *end != '\0' || errno != 0 || !std::isfinite(v[i]) || v[i] < 0)
      return std::nullopt;
  }
  InterpreterCost c;
  c.bytecode_ns = v[0];
  c.responder_round_ns = static_cast<uint64_t>(v[1]);
  c.client_round_ns = static_cast<uint64_t>(v[2]);
  c.check_ns = v[3];
  c.call_ns = v[4];
  return c;
}

int process_worker_main(int argc, char** argv) {
  if (argc < 3) return 2;
  Codec codec;
  try {
    codec = parse_codec(argv[2]);
  } catch (const WireError&) {
    return 2;
  }
  // Before the first task: the parent's KernelIds include its plugins' kernels.
  try {
    load_plugins_from_env();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_runner __worker: %s\n", e.what());
    return 2;
  }
  int threads = 0, interval_us = 5000;
  std::optional<InterpreterCost> cost;
  if (argc >= 5) {
    threads = std::atoi(argv[3]);
    interval_us = std::atoi(argv[4]);
    if (threads < 1 || interval_us < 1) return 2;
    if (argc > 5) {
      cost = parse_interpreter_cost_args(argv + 5, argc - 5);
      if (!cost) return 2;
    }
  }
  struct stat st {};
  const int shm = fstat(kWorkerShmFd, &st) == 0 ? kWorkerShmFd : -1;
  return run_process_worker(kWorkerSocketFd, shm, codec, threads, interval_us,
                            cost ? &*cost : nullptr);
}

}  // namespace concbench
