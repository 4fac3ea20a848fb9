// The execution context a task runs in. Kernels call checkpoint() at every unit of work (a
// "bytecode boundary"); what a checkpoint means is the model's business: nothing for free
// threads, an eval-breaker check for the emulated GIL. IO steps and native sections run inside
// blocking(), where an interpreter would release its lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <utility>

namespace concbench {

class ExecContext;
class IoEnv;

// Bits of a model's breaker word. Like CPython's eval_breaker, one relaxed load at each
// checkpoint covers every reason to interrupt a running task.
inline constexpr uint32_t kBreakDropRequest = 1u;  // a lock holder is asked to let go
inline constexpr uint32_t kBreakCancel = 2u;       // the runner wants the batch stopped

// Thrown out of a checkpoint or an IO wait once the model has been cancelled.
struct TaskCancelled : std::exception {
  const char* what() const noexcept override { return "cancelled"; }
};

class ExecHooks {
 public:
  virtual ~ExecHooks() = default;
  // Called from checkpoint() when the breaker word is non-zero. The default honours
  // kBreakCancel and ignores the rest.
  virtual void on_break(ExecContext& ctx);
  // Bracket blocking IO and native sections (Py_BEGIN/END_ALLOW_THREADS).
  virtual void release(ExecContext&) {}
  virtual void reacquire(ExecContext&) {}
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
  void set_per_instruction(bool on) { per_instruction_ = on; }
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
  void* model_data_ = nullptr;
};

// Hooks for models without a lock: checkpoints only honour cancellation.
inline ExecHooks& no_lock_hooks() {
  static ExecHooks hooks;
  return hooks;
}

}  // namespace concbench
