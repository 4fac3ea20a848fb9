// The worker side of process_pool: a loop that reads task frames from a socket, runs each task
// and writes a response frame. A forked child calls it directly; a spawned one reaches it through
// `bench_runner __worker <codec>` (a fresh exec, as Python's spawn starts a new interpreter).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "concbench/exec_context.hpp"
#include "concbench/wire.hpp"

namespace concbench {

// Fault codes a request may carry (TaskRequest::fault): the worker misbehaves in that way
// instead of answering, so tests can watch the parent survive it.
enum WorkerFault : uint8_t {
  kFaultNone = 0,
  kFaultKill = 1,      // raise(SIGKILL)
  kFaultSegv = 2,      // a real segmentation fault
  kFaultExit = 3,      // _exit(3) mid-task
  kFaultHang = 4,      // never answer (the parent's per-task timeout must act)
  kFaultGarble = 5,    // answer with a well-framed but malformed body
  kFaultTruncate = 6,  // write half a frame, then exit
  kFaultCorrupt = 7,   // answer normally, but with one byte of the echoed payload flipped
};

// The descriptors a worker is started with.
inline constexpr int kWorkerSocketFd = 3;
inline constexpr int kWorkerShmFd = 4;  // -1 (absent) when the transport is pipe

// Serves requests on `fd` until EOF; `shm_fd` (or -1) is the shared-memory region payloads may
// live in. Sends one response with item = kHelloItem first, when ready. Returns an exit status.
inline constexpr uint64_t kHelloItem = ~0ULL;
// A request with item = kFlushItem runs nothing: the worker answers with the counts it has not
// yet reported (counters and CPU time). Workers read their counters at most every kCounterPeriodNs
// (each read is three syscalls, as much as the round trip itself), attaching the delta to the next
// response; the parent flushes at the end of every batch, so the batch's totals are exact.
inline constexpr uint64_t kFlushItem = ~0ULL - 1;
inline constexpr uint64_t kCounterPeriodNs = 200'000;
//
// `threads` > 0 (process_threads): the worker runs that many threads behind one emulated GIL of
// its own (switch interval `switch_interval_us`), fed by a reader thread; responses still go out
// in request order (a writer thread waits for each in turn), so the parent's FIFO matching holds.
// Its flush response carries, in `error` (unused when ok), a JSON report of the threads since the
// previous flush: {"pid", "threads": [{"tid", "tasks", "gil_acquisitions", "gil_wait_ns", ...}]}.
// `threads` == 0 is process_pool's single-threaded loop.
// `cost` (threaded only; nullptr: default_interpreter_cost()) is what its threads' Python-level
// work costs, as the parent calibrated it.
int run_process_worker(int fd, int shm_fd, Codec codec, int threads = 0,
                       int switch_interval_us = 5000, const InterpreterCost* cost = nullptr);

// An InterpreterCost as the worker's command-line arguments (exact: "%.17g" per field), and back;
// nullopt for arguments that are not five finite, non-negative numbers.
std::vector<std::string> interpreter_cost_args(const InterpreterCost& cost);
std::optional<InterpreterCost> parse_interpreter_cost_args(const char* const* args, int n);

// bench_runner's hidden worker mode: `argv[1] == "__worker"`, argv[2] the codec name, and for a
// threaded worker argv[3] the thread count, argv[4] the switch interval in microseconds and
// argv[5..9] the interpreter cost (interpreter_cost_args).
int process_worker_main(int argc, char** argv);

}  // namespace concbench
