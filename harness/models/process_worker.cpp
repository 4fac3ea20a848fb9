// The worker process of process_pool (see process_worker.hpp). Single-threaded apart from the
// IoEnv's echo server: it reads whatever frames have arrived, answers them all, and writes the
// answers in one go, so a pipelining parent costs one read and one write per burst, not per task.
#include "concbench/process_worker.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "concbench/clock.hpp"
#include "concbench/exec_context.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "concbench/plugin.hpp"
#include "concbench/process_settings.hpp"

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

}  // namespace

int run_process_worker(int fd, int shm_fd, Codec codec) {
  // A forked worker inherits its parent's settings, but its parent may be any program (a test);
  // a spawned one has applied them in main already. Idempotent either way.
  apply_process_settings();
  IoEnv io;  // this process's own echo server and scratch file: processes share nothing
  std::atomic<uint32_t> breaker{0};
  ExecContext ctx(breaker, no_lock_hooks(), &io, 0);
  ThreadCounters counters;
  CounterValues last = counters.read();
  CpuTimes last_cpu;
  bool cpu_ok = read_cpu(last_cpu);
  ShmView shm(shm_fd);
  // Every buffer lives as long as the worker, so in steady state a task allocates nothing and
  // touches no fresh page: the receive buffer, the decoded request, the response (whose payload
  // buffer trades places with the request's, below) and the send buffer.
  FrameReader in;
  std::vector<std::byte> out;
  TaskRequest req;
  TaskResponse resp;
  uint64_t prev_encode_ns = 0;
  uint64_t last_read_ns =
      monotonic_ns();  // a response cannot carry its own encoding time: the next one does

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
      const uint64_t t_end = monotonic_ns();
      if (flush || t_end - last_read_ns >= kCounterPeriodNs) {
        const CounterValues now = counters.read();
        resp.counters = now.since(last);
        last = now;
        last_read_ns = t_end;
        // The CPU time over the same interval. One failed read leaves this delta and the next
        // unavailable (has_cpu = false) rather than folding the gap into a later one.
        CpuTimes cpu;
        const bool ok = read_cpu(cpu);
        resp.has_cpu = ok && cpu_ok;
        resp.cpu_user_ns = resp.has_cpu ? cpu.user_ns - last_cpu.user_ns : 0;
        resp.cpu_sys_ns = resp.has_cpu ? cpu.sys_ns - last_cpu.sys_ns : 0;
        if (ok) last_cpu = cpu;
        cpu_ok = ok;
      } else {
        resp.counters = CounterValues::zero_all();  // counted in a later response's delta
        resp.has_cpu = true;                        // likewise: nothing to add here
        resp.cpu_user_ns = resp.cpu_sys_ns = 0;
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
  struct stat st {};
  const int shm = fstat(kWorkerShmFd, &st) == 0 ? kWorkerShmFd : -1;
  return run_process_worker(kWorkerSocketFd, shm, codec);
}

}  // namespace concbench
