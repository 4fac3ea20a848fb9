// What crossing a process boundary costs, piece by piece: the floors under process_pool.
//   BM_Codec_RoundTrip/<codec>/<payload bytes>: encode a request, decode it, encode the
//     response that echoes its payload, decode that: the serialization cost of one task.
//   BM_SocketpairPingPong_Processes/<bytes>: one framed message (u32 length + bytes) to a forked
//     echo child over a socketpair and back: the floor under a synchronous process_pool round
//     trip, without any codec.
//   BM_ForkExit: fork + child _exit(0) + waitpid (lmbench lat_proc "fork"). The cost grows with
//     the parent's mapped memory (page tables are copied), so it depends on the binary it runs in.
//   BM_SpawnExit: posix_spawn of /bin/true + waitpid (lmbench lat_proc "exec").
// Every process benchmark uses real time: the child's work is not on the parent's CPU clock.
#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "concbench/wire.hpp"

extern char** environ;

namespace concbench {
namespace {

// ---- codecs ------------------------------------------------------------------------------------

TaskRequest codec_request(size_t payload) {
  TaskRequest r;
  r.item = 12345;
  r.seed = 0x9e3779b97f4a7c15ull;
  Step cpu;
  cpu.kind = StepKind::cpu;
  cpu.kernel = 1;
  cpu.units = 1000;
  Step sleep;
  sleep.kind = StepKind::sleep;
  sleep.duration_ns = 50'000;
  r.steps = {cpu, sleep};
  r.payload.bytes.resize(payload);
  for (size_t i = 0; i < payload; ++i) r.payload.bytes[i] = static_cast<std::byte>(i * 131u);
  r.payload.length = payload;
  return r;
}

std::span<const std::byte> frame_body(const std::vector<std::byte>& frame) {
  return std::span<const std::byte>(frame).subspan(4);
}

void BM_Codec_RoundTrip(benchmark::State& state, Codec codec) {
  const auto payload = static_cast<size_t>(state.range(0));
  const TaskRequest req = codec_request(payload);
  CounterValues counters;  // a typical worker: software counters only
  counters.set(Counter::context_switches, 3);
  counters.set(Counter::voluntary_context_switches, 2);
  counters.set(Counter::involuntary_context_switches, 1);
  counters.set(Counter::page_faults, 17);
  counters.set(Counter::task_clock_ns, 123456);
  std::vector<std::byte> buf;
  size_t request_frame = 0, response_frame = 0;
  // As the pool does: one message of each kind per side, decoded into, buffers kept.
  TaskRequest got;
  TaskResponse resp, back;
  try {
    for (auto _ : state) {
      buf.clear();
      encode_request(codec, req, buf);
      request_frame = buf.size();
      decode_request(codec, frame_body(buf), got);
      resp.item = got.item;
      resp.ok = true;
      resp.checksum = got.seed ^ got.steps.size();
      std::swap(resp.payload, got.payload);
      resp.counters = counters;
      resp.has_cpu = true;
      resp.cpu_user_ns = 1500;
      resp.cpu_sys_ns = 500;
      resp.decode_ns = 100;
      resp.exec_ns = 2000;
      resp.encode_ns = 100;
      buf.clear();
      encode_response(codec, resp, buf);
      response_frame = buf.size();
      decode_response(codec, frame_body(buf), back);
      benchmark::DoNotOptimize(back.checksum);
      benchmark::DoNotOptimize(back.payload.bytes.data());
    }
  } catch (const WireError& e) {
    state.SkipWithError((std::string("wire error: ") + e.what()).c_str());
    return;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(2 * payload));
  state.counters["request_frame_B"] = static_cast<double>(request_frame);
  state.counters["response_frame_B"] = static_cast<double>(response_frame);
}

#define CONCBENCH_CODEC_ARGS Arg(0)->Arg(1024)->Arg(64 * 1024)->Arg(1024 * 1024)
BENCHMARK_CAPTURE(BM_Codec_RoundTrip, json, Codec::json)->CONCBENCH_CODEC_ARGS;
BENCHMARK_CAPTURE(BM_Codec_RoundTrip, cbor, Codec::cbor)->CONCBENCH_CODEC_ARGS;
BENCHMARK_CAPTURE(BM_Codec_RoundTrip, msgpack, Codec::msgpack)->CONCBENCH_CODEC_ARGS;
BENCHMARK_CAPTURE(BM_Codec_RoundTrip, raw, Codec::raw)->CONCBENCH_CODEC_ARGS;
#undef CONCBENCH_CODEC_ARGS

// ---- processes ---------------------------------------------------------------------------------

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

bool send_all(int fd, const std::byte* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool recv_all(int fd, std::byte* p, size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;  // EOF or error
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Waits for `pid`; returns its wait status, or -1 (errno set) when waitpid fails.
int wait_for(pid_t pid) {
  int status = 0;
  for (;;) {
    if (::waitpid(pid, &status, 0) == pid) return status;
    if (errno != EINTR) return -1;
  }
}

bool exited_cleanly(int status) {
  return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// A forked child that echoes every byte it receives on a socketpair, and _exit(0)s on EOF.
// The destructor closes the parent's end (the child's EOF) and reaps the child.
class EchoChild {
 public:
  EchoChild() = default;
  EchoChild(const EchoChild&) = delete;
  EchoChild& operator=(const EchoChild&) = delete;
  ~EchoChild() { stop(); }

  // Returns an error message, or "" on success.
  std::string start() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      return errno_text("socketpair");
    const pid_t pid = ::fork();
    if (pid < 0) {
      const std::string err = errno_text("fork");
      ::close(sv[0]);
      ::close(sv[1]);
      return err;
    }
    if (pid == 0) {
      // Child: only async-signal-safe calls from here on (the parent may have threads).
      ::close(sv[0]);  // else the parent's close would never reach us as EOF
      serve(sv[1]);
    }
    ::close(sv[1]);
    fd_ = sv[0];
    pid_ = pid;
    return {};
  }

  int fd() const { return fd_; }

  // Closes the socket and reaps the child; returns false if it did not exit with status 0.
  bool stop() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (pid_ <= 0) return true;
    const int status = wait_for(pid_);
    pid_ = -1;
    return exited_cleanly(status);
  }

 private:
  [[noreturn]] static void serve(int fd) {
    static std::byte buf[64 * 1024];  // static: the child's copy, not a large stack frame
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0) ::_exit(0);
      if (n < 0) {
        if (errno == EINTR) continue;
        ::_exit(1);
      }
      if (!send_all(fd, buf, static_cast<size_t>(n))) ::_exit(1);
    }
  }

  int fd_ = -1;
  pid_t pid_ = -1;
};

// The parent writes the whole message before it reads the echo, so a message must fit in the
// socket's buffering (about 200 KiB for AF_UNIX by default); 64 KiB does.
void BM_SocketpairPingPong_Processes(benchmark::State& state) {
  const auto bytes = static_cast<size_t>(state.range(0));
  std::vector<std::byte> msg(4 + bytes), in(4 + bytes);
  const auto len = static_cast<uint32_t>(bytes);
  for (int i = 0; i < 4; ++i) msg[static_cast<size_t>(i)] = static_cast<std::byte>(len >> (8 * i));
  for (size_t i = 0; i < bytes; ++i) msg[4 + i] = static_cast<std::byte>(i);

  EchoChild child;
  if (const std::string err = child.start(); !err.empty()) {
    state.SkipWithError(err.c_str());
    return;
  }
  for (auto _ : state) {
    if (!send_all(child.fd(), msg.data(), msg.size())) {
      state.SkipWithError(errno_text("send to the echo child").c_str());
      break;
    }
    if (!recv_all(child.fd(), in.data(), in.size())) {
      state.SkipWithError("the echo child closed or failed");
      break;
    }
  }
  if (!state.error_occurred() && in != msg) state.SkipWithError("echo differs from the message");
  if (!child.stop() && !state.error_occurred()) state.SkipWithError("the echo child failed");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(2 * msg.size()));
}
BENCHMARK(BM_SocketpairPingPong_Processes)->Arg(0)->Arg(1024)->Arg(64 * 1024)->UseRealTime();

void BM_ForkExit(benchmark::State& state) {
  for (auto _ : state) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      state.SkipWithError(errno_text("fork").c_str());
      break;
    }
    if (pid == 0) ::_exit(0);
    const int status = wait_for(pid);
    if (!exited_cleanly(status)) {
      state.SkipWithError(status < 0 ? errno_text("waitpid").c_str() : "child did not exit 0");
      break;
    }
  }
}
BENCHMARK(BM_ForkExit)->UseRealTime();

void BM_SpawnExit(benchmark::State& state) {
  static const char kPath[] = "/bin/true";
  if (::access(kPath, X_OK) != 0) {
    state.SkipWithError(errno_text(kPath).c_str());
    return;
  }
  char arg0[] = "true";
  char* argv[] = {arg0, nullptr};
  for (auto _ : state) {
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, kPath, nullptr, nullptr, argv, environ);
    if (rc != 0) {
      state.SkipWithError((std::string("posix_spawn: ") + std::strerror(rc)).c_str());
      break;
    }
    const int status = wait_for(pid);
    if (!exited_cleanly(status)) {
      state.SkipWithError(status < 0 ? errno_text("waitpid").c_str() : "/bin/true did not exit 0");
      break;
    }
  }
}
BENCHMARK(BM_SpawnExit)->UseRealTime();

}  // namespace
}  // namespace concbench
