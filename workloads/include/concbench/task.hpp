// Tasks as data. A task is a list of steps; a step is CPU work (a named kernel times a number of
// units) or an IO operation. Because steps are plain data, every model runs exactly the same
// task: thread models perform the IO blocking, the async model awaits it, the process pool
// serializes the task and runs it in another process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace concbench {

enum class StepKind : uint8_t {
  cpu,        // kernel(units); `native` marks a section that would release the GIL
  sleep,      // a timer wait of duration_ns
  pipe_echo,  // `units` round trips of a `bytes`-byte message through a socketpair echo peer
  file_read,  // read `bytes` bytes of a scratch file
  tcp_echo,   // like pipe_echo, over a TCP loopback connection
  // Serve `units` round trips of `bytes`-byte messages sent by a client thread outside the
  // model, which records each round trip's latency (ccbench's latency test); then tell the
  // run's CPU-bound tasks to stop.
  echo_respond,
};

const char* step_kind_name(StepKind k);

// echo_respond's per-round works, packed into its duration_ns: the responder's Python-level work
// between its recv and its send (low 32 bits) and the client's between two sends (high 32
// bits), in nanoseconds. kEchoWorkInterpreter asks for the emulated interpreter's own
// (ExecContext::interpreter_cost()).
inline constexpr uint32_t kEchoWorkInterpreter = 0xffffffffu;
inline constexpr uint64_t echo_work_ns(uint32_t responder, uint32_t client) {
  return uint64_t{responder} | (uint64_t{client} << 32);
}
inline constexpr uint32_t echo_responder_work(uint64_t packed) {
  return static_cast<uint32_t>(packed);
}
inline constexpr uint32_t echo_client_work(uint64_t packed) {
  return static_cast<uint32_t>(packed >> 32);
}

using KernelId = uint16_t;

struct Step {
  StepKind kind = StepKind::cpu;
  bool native = false;       // cpu only: runs as native code outside the interpreter lock
  KernelId kernel = 0;       // cpu: index into the kernel table; echo_respond: pace_ms
  uint32_t bytes = 0;        // message or read size
  uint64_t units = 0;        // cpu: units of work; echo: round trips
  uint64_t duration_ns = 0;  // sleep: the wait; echo_respond: two works (echo_work_ns)
  uint64_t arg = 0;          // kernel-specific argument (e.g. a buffer size)
};

struct Task {
  uint64_t id = 0;
  uint64_t seed = 0;
  std::vector<Step> steps;
  std::vector<std::byte> payload;  // carried by the task (and across process boundaries)
};

// What executing a task produces. The checksum covers the payload and every step's result; the
// runner compares it with the checksum the workload predicted, which models never see.
struct TaskOutcome {
  uint64_t checksum = 0;
};

}  // namespace concbench
