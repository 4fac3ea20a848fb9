// gil_threads: N OS threads per batch, as threading.Thread starts them, behind an emulated
// CPython GIL (gil.hpp). A thread holds the GIL while it runs kernel code; at each checkpoint it
// yields if another thread has asked for the lock (one switch interval after it started
// waiting); it releases the lock around IO and native sections. So threads are concurrent but
// not parallel, exactly where CPython's are.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "concbench/gil.hpp"
#include "concbench/interp_calibration.hpp"
#include "concbench/io_env.hpp"
#include "gil_hooks.hpp"
#include "worker_loop.hpp"

namespace concbench {
namespace {

using detail::gil_metrics;
using detail::GilHooks;

// --param interpreter: an executable, or empty for "newest" (the calibration's own search).
std::string chosen_interpreter(const Params& p) {
  const std::string v = p.get("interpreter");
  return v == "newest" ? std::string() : v;
}

class GilThreads final : public Model {
 public:
  void setup(const ModelConfig& cfg) override {
    Model::setup(cfg);
    io_ = std::make_unique<IoEnv>();
    const auto us = std::chrono::microseconds(cfg.params.get_int("switch_interval_us"));
    policy_ = find_gil_policy(cfg.params.get("gil_policy"));
    if (!policy_) throw std::invalid_argument("gil_policy: unknown policy");  // the choice checks
    check_interval_ = static_cast<uint64_t>(cfg.params.get_int("check_interval"));
    cpython_start_ = cfg.params.get("thread_start") == "cpython";
    // Measured here, in setup, from the emulated version's interpreter (a subprocess, once per
    // process and policy): never inside a timed region.
    calibration_ = &interp_calibration(*policy_, cfg.params.get("interpreter_cost") == "measured",
                                       chosen_interpreter(cfg.params));
    gil_ = std::make_unique<Gil>(breaker_, us, policy_->algorithm);
    hooks_ = std::make_unique<GilHooks>(*gil_, check_interval_);
    // --checkpoint is the finer knob: it overrides where the policy checks.
    const std::string checkpoint = cfg.params.get("checkpoint");
    per_instruction_ =
        checkpoint == "policy" ? policy_->per_instruction : checkpoint == "per_instruction";
    after_calls_ = policy_->after_calls || per_instruction_;
    // The ticker counts every check: the bit keeps every check on the slow path.
    if (policy_->algorithm == GilAlgorithm::ticker)
      breaker_.fetch_or(kBreakTick, std::memory_order_relaxed);
    // 3.13+: a breaker word per thread, fixed for the model's life (cancel() reaches them all).
    if (policy_->per_thread_breaker) {
      words_n_ = static_cast<size_t>(cfg.workers);
      words_ = std::make_unique<std::atomic<uint32_t>[]>(words_n_);
    }
    // Opened on the thread that will start every batch's threads: they inherit it.
    counters_ = std::make_unique<InheritedCounters>();
  }

  BatchResult run(const Batch& batch) override {
    BatchResult result = BatchResult::for_batch(batch);
    const auto n = static_cast<size_t>(cfg_.workers);
    std::vector<detail::WorkerLog> logs(n);
    // Reused across batches, never reallocated: the GIL remembers its last holder by address.
    threads_.resize(n);
    for (GilThread& t : threads_) t = GilThread{};
    detail::attach_trace(batch, logs);
    for (size_t i = 0; i < n; ++i) {
      threads_[i].trace = logs[i].attr.times.trace;
      threads_[i].ticks = check_interval_;
      if (words_) {
        // A fresh word, with the cancellation the model's may already carry.
        words_[i].store(breaker_.load(std::memory_order_relaxed) & kBreakCancel,
                        std::memory_order_relaxed);
        threads_[i].breaker = &words_[i];
      }
    }
    std::vector<GilThread>& threads = threads_;
    detail::BatchQueue queue(batch, result);
    // threading.Thread.start (thread_start=cpython): the caller is a Python thread holding the
    // GIL. It starts one thread, lets the GIL go while it waits for the thread's "started"
    // event (the new thread sets it with the GIL held), takes the GIL back and starts the
    // next; beside threads already running Python, each start waits for the GIL twice.
    // started[w] is set by thread w under start_mu_ and read by the caller under it.
    std::vector<char> started(n, 0);
    starter_ = GilThread{};
    starter_.ticks = check_interval_;
    uint64_t start_wait_ns = 0;
    auto signal_started = [&](size_t i) {
      {
        std::lock_guard lock(start_mu_);
        started[i] = 1;
      }
      start_cv_.notify_all();
    };
    std::function<void(int)> after_start;
    if (cpython_start_) {
      after_start = [&](int w) {
        const uint64_t t0 = monotonic_ns();
        gil_->drop(starter_);
        {
          std::unique_lock lock(start_mu_);
          // Timed, so a cancelled run never leaves the caller waiting for a thread that ended.
          while (!started[static_cast<size_t>(w)] &&
                 (breaker_.load(std::memory_order_relaxed) & kBreakCancel) == 0)
            start_cv_.wait_for(lock, std::chrono::milliseconds(50));
        }
        // The caller takes the GIL back to start the next thread; after the last it joins,
        // which waits with the GIL let go.
        if (w + 1 < cfg_.workers) gil_->take(starter_);
        start_wait_ns += monotonic_ns() - t0;
      };
    }
    io_->begin_batch();
    const CounterValues start = counters_->read();
    const detail::SwitchCount caller_start = detail::SwitchCount::now();
    result.begin_work();
    // The caller holds the GIL from the batch's start, as the Python thread calling start().
    if (cpython_start_) gil_->take(starter_);
    detail::run_on_threads(
        cfg_.workers,
        [&](int w) {
          const auto i = static_cast<size_t>(w);
          const detail::SwitchCount s0 = detail::SwitchCount::now();
          ExecContext ctx(words_ ? words_[i] : breaker_, *hooks_, io_.get(), w);
          ctx.set_model_data(&threads[i]);
          ctx.set_per_instruction(per_instruction_);
          ctx.set_after_calls(after_calls_);
          ctx.set_interpreter_cost(&calibration_->cost);
          // A Python thread runs with the GIL from its first bytecode to its last; its first
          // wait for it is the worker's time too.
          logs[i].active.emplace();
          gil_->take(threads[i]);
          if (cpython_start_) signal_started(i);
          queue.drain(ctx, logs[i]);
          gil_->drop(threads[i], /*force_switch=*/false);
          detail::add_gil_times(logs[i].attr.times, threads[i]);
          logs[i].switches = detail::SwitchCount::now().since(s0);
        },
        [&] {
          cancel();
          // A thread that could not be started: the caller must not keep the GIL the started
          // ones need to finish.
          if (cpython_start_ && gil_->held_by(starter_)) gil_->drop(starter_, false);
        },
        after_start);
    result.end_work();
    detail::SwitchCount switches = detail::SwitchCount::now().since(caller_start);
    for (const auto& l : logs) switches += l.switches;
    result.observations = io_->end_batch();
    result.model_metrics["workers"] = detail::workers_json(logs);
    detail::merge_logs(result, logs);
    result.counters = detail::with_switches(counters_->read().since(start), switches);
    if (cpython_start_) {
      // The caller's acquisitions are the GIL's too.
      std::vector<GilThread> all = threads;
      all.push_back(starter_);
      result.model_metrics.update(gil_metrics(all));
    } else {
      result.model_metrics.update(gil_metrics(threads));
    }
    result.model_metrics["threads_started"] = cfg_.workers;
    result.model_metrics["thread_start"] = cpython_start_ ? "cpython" : "direct";
    if (cpython_start_) result.model_metrics["thread_start_wait_ns"] = start_wait_ns;
    result.model_metrics["switch_interval_us"] = gil_->interval().count();
    result.model_metrics["checkpoint"] = per_instruction_ ? "per_instruction" : "backedge";
    result.model_metrics["checks_after_calls"] = after_calls_;
    result.model_metrics["gil_policy"] = policy_->name;
    result.model_metrics["gil_algorithm"] =
        policy_->algorithm == GilAlgorithm::ticker ? "ticker" : "interval";
    result.model_metrics["eval_breaker"] = words_ ? "per_thread" : "shared";
    result.model_metrics["checks"] = policy_->checks;
    result.model_metrics["interpreter_cost"] = calibration_->to_json();
    if (policy_->algorithm == GilAlgorithm::ticker)
      result.model_metrics["check_interval"] = check_interval_;
    return result;
  }

  void teardown() override {
    io_.reset();
    counters_.reset();
  }
  void cancel() override {
    breaker_.fetch_or(kBreakCancel, std::memory_order_relaxed);
    for (size_t i = 0; i < words_n_; ++i)
      words_[i].fetch_or(kBreakCancel, std::memory_order_relaxed);
  }

 private:
  std::atomic<uint32_t> breaker_{0};
  std::unique_ptr<InheritedCounters> counters_;
  std::unique_ptr<IoEnv> io_;
  std::unique_ptr<Gil> gil_;
  std::unique_ptr<GilHooks> hooks_;
  bool per_instruction_ = false;
  bool after_calls_ = false;
  const GilPolicy* policy_ = nullptr;
  const InterpCalibration* calibration_ = nullptr;
  uint64_t check_interval_ = 3;
  std::unique_ptr<std::atomic<uint32_t>[]> words_;  // 3.13+: one per thread
  size_t words_n_ = 0;
  std::vector<GilThread> threads_;
  bool cpython_start_ = false;
  GilThread starter_;  // the caller's GIL record under thread_start=cpython
  std::mutex start_mu_;
  std::condition_variable start_cv_;
};

std::vector<std::string> policy_names() {
  std::vector<std::string> out;
  for (const GilPolicy& p : gil_policies()) out.push_back(p.name);
  return out;
}

}  // namespace

ModelInfo gil_threads_model_info() {
  ModelInfo info{
      "gil_threads",
      "N threads per batch behind an emulated CPython GIL (--gil-policy: 3.1 to 3.13+)",
      {ParamSpec::integer("switch_interval_us", "GIL switch interval (sys.setswitchinterval)", 5000,
                          1, 10'000'000),
       ParamSpec::choice("gil_policy",
                         "the CPython versions whose GIL to emulate: lock algorithm, where the "
                         "eval breaker is checked, whose breaker a drop request sets",
                         kDefaultGilPolicy, policy_names()),
       ParamSpec::choice("checkpoint",
                         "eval-breaker checks: policy (the policy's), backedge (3.10+) or "
                         "per_instruction (<= 3.9)",
                         "policy", {"policy", "backedge", "per_instruction"}),
       ParamSpec::choice("thread_start",
                         "direct: threads take the GIL as they start; cpython: the caller holds "
                         "the GIL and starts them one at a time, each start waiting for the "
                         "thread's started event, as threading.Thread.start does",
                         "direct", {"direct", "cpython"}),
       ParamSpec::choice("interpreter_cost",
                         "what the Python-level work of IO rounds costs: measured from the "
                         "policy's CPython when installed (else its default), or the default",
                         "measured", {"measured", "default"}),
       ParamSpec::text("interpreter",
                       "the CPython executable to measure those costs from (an absolute path, "
                       "a version of the policy's range), or newest: the policy's newest installed",
                       "newest"),
       // 3.1's sys.setcheckinterval was 100 instructions. A check here is a kernel's unit: a
       // cpu.spin unit is about a microsecond, some 33 instructions of 3.1 (about 30 ns each),
       // so 3 checks stand for its 100. 3.1 is not installed to measure; pyenv starts at 3.6.
       ParamSpec::integer("check_interval",
                          "the 3.1 ticker lock's checks between releases (3 checks: about the "
                          "100 instructions of sys.setcheckinterval)",
                          3, 1, 1'000'000'000)},
      false,
      [] { return std::make_unique<GilThreads>(); },
      [](const Params& p) {
        // An interpreter that cannot be measured is refused before anything runs; the
        // calibration is cached, so setup finds it done.
        const std::string exe = chosen_interpreter(p);
        if (exe.empty()) return;
        if (p.get("interpreter_cost") != "measured")
          throw UsageError("interpreter: needs interpreter_cost=measured");
        if (const GilPolicy* policy = find_gil_policy(p.get("gil_policy")))
          interp_calibration(*policy, true, exe);
      }};
  info.latency_means = "the task's run time on its thread, time waiting for the GIL included";
  return info;
}

}  // namespace concbench
