// The execution context a task runs in. Kernels call checkpoint() at every unit of work (a
// "bytecode boundary"); what a checkpoint means is the model's business: nothing for free
// threads, an eval-breaker check for the emulated GIL. IO steps and native sections run inside
// blocking(), where an interpreter would release its lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <utility>

#include "concbench/clock.hpp"
#include "concbench/trace_buffer.hpp"

namespace concbench {

class ExecContext;
class IoEnv;

// Bits of a model's breaker word. Like CPython's eval_breaker, one relaxed load at each
// checkpoint covers every reason to interrupt a running task.
inline constexpr uint32_t kBreakDropRequest = 1u;  // a lock holder is asked to let go
inline constexpr uint32_t kBreakCancel = 2u;       // the runner wants the batch stopped
// Set for good under CPython 3.1's ticker lock: every check is counted (gil.hpp), so every
// check takes the slow path, as 3.1's `--_Py_Ticker < 0` test ran at every instruction.
inline constexpr uint32_t kBreakTick = 4u;

// Thrown out of a checkpoint or an IO wait once the model has been cancelled.
struct TaskCancelled : std::exception {
  const char* what() const noexcept override { return "cancelled"; }
};

// One worker's clock-measured waits and side activities in one batch: each is an interval the
// worker spent not computing its task, timed with the monotonic clock (two vDSO reads) around the
// wait itself. Written only by the worker; read by the model once the worker is done. The
// attribution (harness attribution.hpp) adds the kernel's view (on-CPU and run-queue time) and
// checks that the parts add up to the worker's wall time.
struct WorkerTimes {
  uint64_t gil_wait_ns = 0;         // blocked acquiring an interpreter lock, or in a forced switch
  uint64_t gil_hold_ns = 0;         // holding it (overlaps the CPU time: reported beside the parts)
  uint64_t gil_wait_on_cpu_ns = 0;  // acquiring it on the CPU (in the CPU part, not gil_wait)
  uint64_t io_wait_ns = 0;    // inside an IO step (sleep, socket, pipe, file) with the lock let go
  uint64_t serialize_ns = 0;  // encoding tasks or results to cross a boundary
  uint64_t deserialize_ns = 0;   // decoding them
  uint64_t idle_ns = 0;          // waiting for work (an empty queue, a loop with nothing ready)
  uint64_t loop_lag_ns = 0;      // an event loop's ready work delayed by a CPU step (overlaps CPU)
  uint64_t tasks = 0;            // work items completed
  uint64_t io_waits = 0;         // IO waits timed (each costs two clock and two CPU-time reads)
  TraceBuffer* trace = nullptr;  // --trace: this worker's timeline, or nothing
};

// Times one wait into a WorkerTimes field (io_wait_ns unless told): its wall time less the CPU
// time the thread spent inside it (the syscalls, copying), which the CPU part already counts;
// what is left is time off the CPU, blocked or (overlapping the run-queue part) runnable.
// Nothing without a WorkerTimes.
class OffCpuWait {
 public:
  explicit OffCpuWait(WorkerTimes* t, uint64_t WorkerTimes::*field = &WorkerTimes::io_wait_ns)
      : t_(t), field_(field) {
    if (t_) {
      c0_ = thread_cpu_ns();
      t0_ = monotonic_ns();
    }
  }
  ~OffCpuWait() {
    if (!t_) return;
    const uint64_t t1 = monotonic_ns();
    const uint64_t wall = t1 - t0_;
    const uint64_t cpu = thread_cpu_ns() - c0_;
    t_->*field_ += wall > cpu ? wall - cpu : 0;
    ++t_->io_waits;
    if (t_->trace) [[unlikely]]
      t_->trace->add(field_ == &WorkerTimes::idle_ns ? TraceKind::idle : TraceKind::io_wait, t0_,
                     t1);
  }
  OffCpuWait(const OffCpuWait&) = delete;
  OffCpuWait& operator=(const OffCpuWait&) = delete;

 private:
  WorkerTimes* t_;
  uint64_t WorkerTimes::*field_;
  uint64_t t0_ = 0, c0_ = 0;
};

// What the interpreter a model emulates spends on its own, per round trip of ccbench's latency
// test, beyond the two system calls: the responder's Python-level work between its recv and its
// send (done with the lock held), and the Python client's between two sends. Measured from the
// installed interpreter where there is one (harness interp_calibration.hpp); otherwise the
// defaults below. The responder's is CPython's loop per round less the same system calls from
// C++; the client's is what the rest of an unloaded round costs CPython (a Python client in
// another process) beyond C++ threads: the time the responder waits in recv.
struct InterpreterCost {
  double bytecode_ns = 0;  // one simple bytecode: a pure-Python `x += 1` loop's, per bytecode
  uint64_t responder_round_ns = 0;  // the responder's Python work per round trip, lock held
  uint64_t client_round_ns = 0;     // the Python client process's extra time per round trip
  // Between two eval-breaker checks of a tight pure-Python loop (one `x += 1` iteration): how
  // often a CPU-bound kernel checks (cpu.spin's). 0: once per kernel unit, about a microsecond.
  double check_ns = 0;
  // What calling a trivial Python function costs: a `x += one()` iteration less a `x += 1` one
  // (cpu.counter_race's call_between: the call before the callee's eval-breaker check, the
  // return after it).
  double call_ns = 0;
};
// CPython 3.11's round costs, measured on the Intel Xeon VM (2 vCPUs) on 2026-12-01 with pyenv's
// 3.11.7: what a model that emulates no particular version uses. Its check_ns is 0: such a model
// has no eval breaker to look at that often.
const InterpreterCost& default_interpreter_cost();

class ExecHooks {
 public:
  virtual ~ExecHooks() = default;
  // Called from checkpoint() when the breaker word is non-zero. The default honours
  // kBreakCancel and ignores the rest.
  virtual void on_break(ExecContext& ctx);
  // Bracket blocking IO and native sections (Py_BEGIN/END_ALLOW_THREADS).
  virtual void release(ExecContext&) {}
  virtual void reacquire(ExecContext&) {}
  // The calling thread's time waiting for the model's lock so far (0 without one): a step that
  // times itself as a whole takes the lock's waits out of its own.
  virtual uint64_t lock_wait_ns(ExecContext&) { return 0; }
};

class ExecContext {
 public:
  ExecContext(std::atomic<uint32_t>& breaker, ExecHooks& hooks, IoEnv* io, int worker)
      : breaker_(&breaker), hooks_(&hooks), io_(io), worker_(worker) {}

  void checkpoint() {
    // Relaxed: the word is only a hint to look; on_break() synchronizes through whatever lock
    // or flag it acts on, exactly as CPython's eval breaker does.
    if ((breaker_->load(std::memory_order_relaxed) & mask_) != 0) [[unlikely]]
      hooks_->on_break(*this);
  }
  // A check between the "instructions" of one unit (a load, an add, a store). CPython 3.9 and
  // earlier looked at the eval breaker there; 3.10 and later only at back-edges and calls, which
  // is why `x += 1` stopped losing updates. The model picks the policy.
  void instruction_checkpoint() {
    if (per_instruction_) checkpoint();
  }
  // Where a call into Python code has returned, before the caller's next instruction. CPython
  // 3.10's CALL_FUNCTION checks there (CHECK_EVAL_BREAKER), as 3.9 and earlier do before every
  // instruction; 3.11 and later check only after calls into C, and their callee's RESUME.
  void after_call_checkpoint() {
    if (after_calls_) checkpoint();
  }
  void set_per_instruction(bool on) { per_instruction_ = on; }
  void set_after_calls(bool on) { after_calls_ = on; }
  bool per_instruction() const { return per_instruction_; }

  // Model-private per-thread state (the GIL model keeps its thread record here).
  void* model_data() const { return model_data_; }
  void set_model_data(void* p) { model_data_ = p; }

  // True inside blocking(): the thread holds no lock, so only cancellation may interrupt it.
  bool in_blocking_section() const { return mask_ == kBreakCancel; }

  bool cancel_requested() const {
    return (breaker_->load(std::memory_order_relaxed) & kBreakCancel) != 0;
  }
  void throw_if_cancelled() const {
    if (cancel_requested()) throw TaskCancelled{};
  }

  // Runs f() with the model's lock released (if it has one). Checkpoints inside f() (a native
  // kernel's) then see only cancellation, as native code never looks at the eval breaker.
  template <class F>
  decltype(auto) blocking(F&& f) {
    hooks_->release(*this);
    mask_ = kBreakCancel;
    struct Reacquire {
      ExecContext* c;
      ~Reacquire() {
        c->mask_ = ~0u;
        c->hooks_->reacquire(*c);
      }
    } guard{this};
    return std::forward<F>(f)();
  }

  // Where this worker's waits are timed (attribution), or nullptr.
  WorkerTimes* times() const { return times_; }
  void set_times(WorkerTimes* t) { times_ = t; }

  uint64_t lock_wait_ns() { return hooks_->lock_wait_ns(*this); }

  // The emulated interpreter's costs (a model emulating a CPython version sets its own).
  const InterpreterCost& interpreter_cost() const { return *cost_; }
  void set_interpreter_cost(const InterpreterCost* c) {
    cost_ = c ? c : &default_interpreter_cost();
  }

  IoEnv& io() const { return *io_; }
  bool has_io() const { return io_ != nullptr; }
  int worker() const { return worker_; }

 private:
  std::atomic<uint32_t>* breaker_;
  ExecHooks* hooks_;
  IoEnv* io_;
  int worker_;
  uint32_t mask_ = ~0u;  // breaker bits this context reacts to
  bool per_instruction_ = false;
  bool after_calls_ = false;
  void* model_data_ = nullptr;
  WorkerTimes* times_ = nullptr;
  const InterpreterCost* cost_ = &default_interpreter_cost();
};

// Hooks for models without a lock: checkpoints only honour cancellation.
inline ExecHooks& no_lock_hooks() {
  static ExecHooks hooks;
  return hooks;
}

}  // namespace concbench
