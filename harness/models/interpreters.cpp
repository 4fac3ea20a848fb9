// interpreters: what CPython's subinterpreters measure (PEP 684: a GIL per interpreter; PEP 734:
// concurrent.interpreters). N interpreters, each one OS thread behind its OWN emulated GIL
// (gil.hpp), so one interpreter's Python-level work never waits for another's. What an
// interpreter cannot do is share objects: a task reaches it through its queue and its result comes
// back the same way, each a copy.
//
// What crosses, per task:
//   in:  the payload bytes, copied into a buffer the interpreter owns (a cross-interpreter send of
//        bytes pickles, i.e. copies, them). The task's steps, seed and nonce are not counted: they
//        stand for the code and constants each interpreter imported once, at start-up.
//   out: the 8-byte checksum and the payload bytes, copied from the interpreter's buffer into one
//        the parent owns (the task returns its data, as a process_pool worker echoes it). The
//        parent compares them with what it sent, as it would unpickle them.
// So bytes_in_per_task = payload_bytes and bytes_out_per_task = payload_bytes + 8.
//
// The handoff is real: one mutex + condition variable queue per interpreter (the parent keeps up to
// `inflight` tasks queued on each, so an interpreter finds its next task waiting), and one
// completion queue back to the parent. An interpreter takes its GIL when it takes a task and drops
// it when it goes back to waiting on its queue (a blocking get releases the GIL), so every
// acquisition finds its GIL free: gil_wait_ns stays near zero and no drop request is ever made.
//
// Not shared: Python-level state. cpu.counter_race (a module global every task increments) and the
// workloads that declare needs_shared_memory() have no cell. Shared: the process's OS resources
// (the IoEnv's echo server and scratch file), as interpreters share their process's.
//
// Interpreter start-up (creating the thread, its GIL, its queue and buffers) happens in setup(),
// which the runner times as the model's setup; model_metrics also record it per interpreter.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "concbench/gil.hpp"
#include "concbench/interp_calibration.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"
#include "gil_hooks.hpp"
#include "worker_loop.hpp"

namespace concbench {
namespace {

// Subinterpreters with a GIL each are 3.12's (PEP 684); the interpreters module is 3.13's.
constexpr const char* kInterpretersPolicy = "3.13+";

// A growable byte buffer whose capacity survives reuse, so a warm batch allocates nothing.
struct Bytes {
  std::unique_ptr<std::byte[]> data;
  size_t capacity = 0, size = 0;
  void reserve(size_t n) {
    if (n <= capacity) return;
    data = std::make_unique<std::byte[]>(n);
    capacity = n;
  }
};

// One message through an interpreter's queue: a task going in, then its result coming out.
struct Slot {
  enum Kind : uint8_t { task, report } kind = task;
  size_t interp = 0;
  uint64_t item = 0, nonce = 0;
  const Task* t = nullptr;
  bool sampled = false;
  Bytes in;   // the interpreter's own copy of the payload
  Bytes out;  // the result's bytes, as the parent received them
  uint64_t checksum = 0;
  bool ok = false, cancelled = false;
  std::string error;
  uint64_t latency_ns = 0, copy_in_ns = 0, copy_out_ns = 0;  // sampled items only
  // report: the interpreter thread's context switches so far; reset_gil clears its GIL record.
  detail::SwitchCount switches;
  bool reset_gil = false;
  // report: the thread's run-queue delay so far (schedstat) and CPU time (its clock), or nothing.
  std::optional<SchedStat> sched;
  // report with reset_gil: where the interpreter's thread records the next batch (--trace).
  TraceBuffer* trace = nullptr;
};

struct Interp {
  std::thread thread;
  std::atomic<uint32_t> breaker{0};  // this interpreter's eval breaker
  std::unique_ptr<Gil> gil;
  std::unique_ptr<detail::GilHooks> hooks;
  GilThread gt;       // its one thread's view of its GIL
  WorkerTimes times;  // its thread's waits this batch (written by it; read after its report)
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Slot*> inbox;
  bool stop = false;
  bool ready = false;
  // The parent's side (only its thread touches these).
  std::vector<std::unique_ptr<Slot>> slots;
  std::vector<Slot*> free;
  size_t outstanding = 0;
  uint64_t done_items = 0;                             // this batch
  uint64_t copy_in_sampled = 0, copy_out_sampled = 0;  // this batch, sampled items only
  uint64_t startup_ns = 0;
  detail::WorkerLog log;
  Slot report_slot;
};

class Interpreters final : public Model {
 public:
  void setup(const ModelConfig& cfg) override {
    Model::setup(cfg);
    io_ = std::make_unique<IoEnv>();
    interval_ = std::chrono::microseconds(cfg.params.get_int("switch_interval_us"));
    inflight_ = static_cast<size_t>(cfg.params.get_int("inflight"));
    // What an interpreter's Python-level work costs (IO rounds, eval-breaker spacing), measured
    // here in setup, once per process, from the CPython whose subinterpreters this emulates
    // (3.13, the first with the interpreters module), as gil_threads calibrates.
    const GilPolicy* policy = find_gil_policy(kInterpretersPolicy);
    if (!policy)
      throw std::logic_error("interpreters: no GIL policy " + std::string(kInterpretersPolicy));
    calibration_ = &interp_calibration(*policy, cfg.params.get("interpreter_cost") == "measured");
    // Opened before any interpreter thread exists: they all inherit it.
    counters_ = std::make_unique<InheritedCounters>();
    interps_.clear();
    for (int w = 0; w < cfg.workers; ++w) interps_.push_back(std::make_unique<Interp>());
    for (size_t w = 0; w < interps_.size(); ++w) {
      Interp& iv = *interps_[w];
      const uint64_t t0 = monotonic_ns();
      iv.gil = std::make_unique<Gil>(iv.breaker, interval_);
      iv.hooks = std::make_unique<detail::GilHooks>(*iv.gil);
      for (size_t s = 0; s < inflight_; ++s) {
        iv.slots.push_back(std::make_unique<Slot>());
        iv.slots.back()->interp = w;
        iv.free.push_back(iv.slots.back().get());
      }
      iv.report_slot.interp = w;
      iv.report_slot.kind = Slot::report;
      iv.thread = std::thread([this, w] { serve(w); });
      std::unique_lock l(iv.mu);
      iv.cv.wait(l, [&] { return iv.ready; });
      iv.startup_ns = monotonic_ns() - t0;
      startup_ns_ += iv.startup_ns;
    }
    // Baselines for the per-batch switch counts.
    report_all(/*reset_gil=*/true);
  }

  BatchResult run(const Batch& batch) override;

  void teardown() override {
    for (auto& p : interps_) {
      {
        std::lock_guard l(p->mu);
        p->stop = true;
      }
      p->cv.notify_all();
    }
    for (auto& p : interps_)
      if (p->thread.joinable()) p->thread.join();
    interps_.clear();
    io_.reset();
    counters_.reset();
  }
  ~Interpreters() override { teardown(); }

  void cancel() override {
    cancelled_.store(true, std::memory_order_relaxed);
    for (auto& p : interps_) p->breaker.fetch_or(kBreakCancel, std::memory_order_relaxed);
    std::lock_guard l(done_mu_);
    done_cv_.notify_all();
  }

 private:
  void serve(size_t w);
  void send(Interp& iv, Slot* s) {
    {
      std::lock_guard l(iv.mu);
      iv.inbox.push_back(s);
    }
    iv.cv.notify_one();
  }
  // Waits for at least one returned slot (or cancellation) and moves them into `got`.
  // `stop_on_cancel` false: wait for returns even after cancel() (they come promptly: a cancelled
  // interpreter's task throws at its next checkpoint or IO wait).
  void collect(std::vector<Slot*>& got, bool stop_on_cancel = true) {
    got.clear();
    std::unique_lock l(done_mu_);
    done_cv_.wait(l, [&] {
      return !done_.empty() || (stop_on_cancel && cancelled_.load(std::memory_order_relaxed));
    });
    got.swap(done_);
  }
  // Every interpreter reports its thread's switch count (outside the timed region).
  void report_all(bool reset_gil) {
    for (auto& p : interps_) {
      p->report_slot.reset_gil = reset_gil;
      send(*p, &p->report_slot);
    }
    size_t back = 0;
    std::vector<Slot*> got;
    while (back < interps_.size()) {
      got.clear();
      {
        std::unique_lock l(done_mu_);
        done_cv_.wait(l, [&] { return !done_.empty(); });
        got.swap(done_);
      }
      back += got.size();  // only report slots are outstanding here
    }
  }
  void give_back(Slot* s) {
    {
      std::lock_guard l(done_mu_);
      done_.push_back(s);
    }
    done_cv_.notify_one();
  }

  std::unique_ptr<IoEnv> io_;
  const InterpCalibration* calibration_ = nullptr;  // cached for the process; never freed
  std::unique_ptr<InheritedCounters> counters_;
  std::chrono::microseconds interval_{5000};
  size_t inflight_ = 2;
  std::vector<std::unique_ptr<Interp>> interps_;
  uint64_t startup_ns_ = 0;
  std::atomic<bool> cancelled_{false};
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::vector<Slot*> done_;
};

void Interpreters::serve(size_t w) {
  Interp& iv = *interps_[w];
  ExecContext ctx(iv.breaker, *iv.hooks, io_.get(), static_cast<int>(w));
  ctx.set_interpreter_cost(&calibration_->cost);
  ctx.set_model_data(&iv.gt);
  ctx.set_times(&iv.times);
  {
    std::lock_guard l(iv.mu);
    iv.ready = true;
  }
  iv.cv.notify_all();
  for (;;) {
    Slot* s;
    {
      std::unique_lock l(iv.mu);
      if (!iv.stop && iv.inbox.empty()) {
        // Idle: nothing sent to it yet. Timed only when it really waits.
        OffCpuWait idle(&iv.times, &WorkerTimes::idle_ns);
        iv.cv.wait(l, [&] { return iv.stop || !iv.inbox.empty(); });
      }
      if (iv.inbox.empty()) return;  // stop, and nothing left
      s = iv.inbox.front();
      iv.inbox.pop_front();
    }
    if (s->kind == Slot::report) {
      s->switches = detail::SwitchCount::now();
      s->sched = own_schedstat();
      if (s->sched) s->sched->run_ns = thread_cpu_ns();
      if (s->reset_gil) {
        iv.gt = GilThread{};
        iv.times = WorkerTimes{};
        detail::note_cpu(iv.log.cpus_seen);
      }
      // The batch's trace buffer from the report before it; none after it (the runner has read
      // the buffer by the next batch, and may have freed it).
      iv.gt.trace = iv.times.trace = s->reset_gil ? s->trace : nullptr;
      give_back(s);
      continue;
    }
    const uint64_t t0 = s->sampled || iv.times.trace ? monotonic_ns() : 0;
    if (s->sampled) detail::note_cpu(iv.log.cpus_seen);
    s->ok = s->cancelled = false;
    try {
      ctx.throw_if_cancelled();
      iv.gil->take(iv.gt);
      const Task& t = *s->t;
      s->checksum =
          execute_steps(t.seed, t.steps, std::span<const std::byte>(s->in.data.get(), s->in.size),
                        ctx, s->nonce)
              .checksum;
      // The return crossing: the result's bytes into the parent's buffer.
      const uint64_t c0 = s->sampled ? monotonic_ns() : 0;
      s->out.size = s->in.size;
      if (s->in.size) std::memcpy(s->out.data.get(), s->in.data.get(), s->in.size);
      if (s->sampled) s->copy_out_ns = monotonic_ns() - c0;
      s->ok = true;
    } catch (const TaskCancelled&) {
      s->cancelled = true;
    } catch (const std::exception& e) {
      s->error = std::string("task threw: ") + e.what();
    } catch (...) {
      s->error = "task threw a non-standard exception";
    }
    if (iv.gil->held_by(iv.gt)) iv.gil->drop(iv.gt, /*force_switch=*/false);
    if (s->sampled || iv.times.trace) [[unlikely]] {
      const uint64_t t1 = monotonic_ns();
      if (s->sampled) s->latency_ns = t1 - t0;
      if (iv.times.trace) iv.times.trace->add(TraceKind::task, t0, t1, s->item);
    }
    give_back(s);
  }
}

BatchResult Interpreters::run(const Batch& batch) {
  BatchResult result = BatchResult::for_batch(batch);
  const std::vector<Task>& tasks = *batch.tasks;
  const uint64_t items = batch.items();
  size_t max_payload = 0;
  for (const Task& t : tasks) max_payload = std::max(max_payload, t.payload.size());
  for (auto& p : interps_)
    for (auto& s : p->slots) {
      s->in.reserve(max_payload);
      s->out.reserve(max_payload);
    }
  for (auto& p : interps_) {
    p->log = detail::WorkerLog{};
    p->done_items = p->copy_in_sampled = p->copy_out_sampled = 0;
  }
  if (batch.trace) batch.trace->recorded = true;
  std::vector<detail::SwitchCount> before;
  std::vector<std::optional<SchedStat>> sched_before;
  before.reserve(interps_.size());
  sched_before.reserve(interps_.size());
  const detail::SwitchCount caller_start = detail::SwitchCount::now();
  io_->begin_batch();
  const CounterValues c_start = counters_->read();

  uint64_t copy_ns = 0, copy_samples = 0, copy_in_total = 0, copy_out_total = 0;
  uint64_t next = 0, returned = 0, sent = 0;
  std::vector<Slot*> got;
  got.reserve(interps_.size() * inflight_);
  auto outstanding = [&] {
    size_t n = 0;
    for (auto& p : interps_) n += p->outstanding;
    return n;
  };
  // The interpreters report (and reset their records) right before the timed region and right
  // after it, so that their idle waits, which a report ends, lie within it.
  for (size_t w = 0; w < interps_.size(); ++w)
    interps_[w]->report_slot.trace =
        batch.trace ? batch.trace->worker(static_cast<int>(w)) : nullptr;
  report_all(/*reset_gil=*/true);
  for (auto& p : interps_) {
    before.push_back(p->report_slot.switches);
    sched_before.push_back(p->report_slot.sched);
  }
  const ActiveInterval parent_active;
  result.begin_work();
  while (!cancelled_.load(std::memory_order_relaxed)) {
    // Fill the queues a level at a time, so a small batch still spreads over every interpreter.
    for (size_t depth = 1; depth <= inflight_ && next < items; ++depth)
      for (auto& p : interps_) {
        Interp& iv = *p;
        if (iv.outstanding >= depth || next >= items) continue;
        Slot* s = iv.free.back();
        iv.free.pop_back();
        const uint64_t k = next++;
        s->kind = Slot::task;
        s->item = k;
        s->t = &tasks[k % tasks.size()];
        s->nonce = batch.item_nonce(k);
        s->sampled = batch.sampled(k);
        // The send crossing: the payload into the interpreter's own buffer.
        const uint64_t c0 = s->sampled ? monotonic_ns() : 0;
        s->in.size = s->t->payload.size();
        if (s->in.size) std::memcpy(s->in.data.get(), s->t->payload.data(), s->in.size);
        if (s->sampled) s->copy_in_ns = monotonic_ns() - c0;
        ++iv.outstanding;
        ++sent;
        send(iv, s);
      }
    if (outstanding() == 0) break;  // everything is back
    collect(got);
    for (Slot* s : got) {
      Interp& iv = *interps_[s->interp];
      --iv.outstanding;
      ++returned;
      iv.free.push_back(s);
      if (s->cancelled) continue;  // not done: the runner counts it as not run
      if (!s->ok) {
        iv.log.failures.push_back({s->item, std::move(s->error)});
        s->error.clear();
        continue;
      }
      // The result as the parent receives it: the bytes must be those that were sent.
      const std::vector<std::byte>& p = s->t->payload;
      if (s->out.size != p.size() ||
          (!p.empty() && std::memcmp(s->out.data.get(), p.data(), p.size()) != 0)) {
        iv.log.failures.push_back({s->item, "the payload returned differs from the one sent"});
        continue;
      }
      result.checksums[s->item] = s->checksum;
      result.done[s->item] = 1;
      ++iv.done_items;
      if (s->sampled) {
        iv.copy_in_sampled += s->copy_in_ns;
        iv.copy_out_sampled += s->copy_out_ns;
        result.latency_ns[s->item / batch.latency_stride] = s->latency_ns;
        copy_in_total += s->copy_in_ns;
        copy_out_total += s->copy_out_ns;
        copy_ns += s->copy_in_ns + s->copy_out_ns;
        ++copy_samples;
      }
    }
  }
  result.end_work();
  WorkerAttribution parent_attr;
  parent_active.finish(parent_attr);
  const bool reported = !cancelled_.load(std::memory_order_relaxed);
  if (reported) report_all(/*reset_gil=*/false);
  // Cancelled: the slots still out must come back before the batch's tasks go away.
  while (outstanding() > 0) {
    collect(got, /*stop_on_cancel=*/false);
    for (Slot* s : got) {
      --interps_[s->interp]->outstanding;
      interps_[s->interp]->free.push_back(s);
    }
  }

  const CounterValues c_delta = counters_->read().since(c_start);
  result.observations = io_->end_batch();
  detail::SwitchCount switches = detail::SwitchCount::now().since(caller_start);
  // Sampled copy timings scaled to every item (exact when the stride is 1).
  const double scale = copy_samples ? static_cast<double>(returned) / copy_samples : 0.0;
  if (reported) {
    uint64_t copy_in_all = 0;
    for (size_t w = 0; w < interps_.size(); ++w) {
      Interp& iv = *interps_[w];
      switches += iv.report_slot.switches.since(before[w]);
      // Each interpreter's thread: its GIL (its own, uncontended: a wait here is a hand-back
      // after IO), its IO and idle waits, and the copy of each result out (sampled, scaled).
      WorkerAttribution a;
      a.worker = static_cast<int>(w);
      a.kind = "interpreter";
      a.active_ns = result.span.wall_ns;
      a.times = iv.times;
      detail::add_gil_times(a.times, iv.gt);
      a.times.tasks = iv.done_items;
      a.times.serialize_ns =
          static_cast<uint64_t>(static_cast<double>(iv.copy_out_sampled) * scale);
      copy_in_all += iv.copy_in_sampled;
      const auto& s0 = sched_before[w];
      const auto& s1 = iv.report_slot.sched;
      if (s0 && s1 && s1->run_ns >= s0->run_ns) {
        a.sched = SchedStat{s1->run_ns - s0->run_ns, s1->runqueue_ns - s0->runqueue_ns,
                            s1->timeslices - s0->timeslices};
      } else {
        a.sched_unavailable = schedstat_unavailable().empty() ? "schedstat could not be read"
                                                              : schedstat_unavailable();
      }
      result.attribution.push_back(std::move(a));
    }
    // The caller hands tasks out and waits for results: its wait is idle, its copies in (sampled,
    // scaled) are its serializing.
    attribute_loop_thread(parent_attr, &WorkerTimes::idle_ns);
    parent_attr.kind = "parent";
    parent_attr.worker = -1;
    parent_attr.tasks_known = false;
    parent_attr.times.serialize_ns =
        static_cast<uint64_t>(static_cast<double>(copy_in_all) * scale);
    result.attribution.push_back(std::move(parent_attr));
  } else {
    result.attribution_unavailable = "cancelled: the interpreters did not report";
  }
  std::vector<detail::WorkerLog> logs;
  std::vector<GilThread> gts;
  nlohmann::json per = nlohmann::json::array();
  for (size_t w = 0; w < interps_.size(); ++w) {
    Interp& iv = *interps_[w];
    logs.push_back(std::move(iv.log));
    gts.push_back(iv.gt);
    nlohmann::json j = detail::gil_metrics({iv.gt});
    j["interpreter"] = w;
    j["gil_threads"] = 1;  // its GIL's only thread: nobody else ever takes it
    j["startup_ns"] = iv.startup_ns;
    per.push_back(std::move(j));
  }
  result.model_metrics["workers"] = detail::workers_json(logs);
  detail::merge_logs(result, logs);
  result.counters = detail::with_switches(c_delta, switches);

  uint64_t payload_sum = 0;
  for (uint64_t k = 0; k < sent; ++k) payload_sum += tasks[k % tasks.size()].payload.size();
  const double per_task_in = sent ? static_cast<double>(payload_sum) / sent : 0.0;
  result.model_metrics.update(detail::gil_metrics(gts));
  result.model_metrics["interpreters"] = interps_.size();
  result.model_metrics["gils"] = interps_.size();
  result.model_metrics["per_interpreter"] = std::move(per);
  result.model_metrics["startup_ns"] = startup_ns_;
  result.model_metrics["startup_ns_per_interpreter"] =
      interps_.empty() ? 0 : startup_ns_ / interps_.size();
  result.model_metrics["inflight"] = inflight_;
  result.model_metrics["switch_interval_us"] = interval_.count();
  result.model_metrics["interpreter_cost"] = calibration_->to_json();
  result.model_metrics["bytes_in"] = payload_sum;
  result.model_metrics["bytes_out"] = payload_sum + 8 * sent;
  result.model_metrics["bytes_in_per_task"] = per_task_in;
  result.model_metrics["bytes_out_per_task"] = sent ? per_task_in + 8.0 : 0.0;
  const auto crossing = static_cast<uint64_t>(static_cast<double>(copy_ns) * scale);
  result.model_metrics["crossing_ns"] = crossing;
  result.model_metrics["crossing_in_ns"] =
      static_cast<uint64_t>(static_cast<double>(copy_in_total) * scale);
  result.model_metrics["crossing_out_ns"] =
      static_cast<uint64_t>(static_cast<double>(copy_out_total) * scale);
  result.model_metrics["crossing_ns_per_task"] =
      copy_samples ? static_cast<double>(copy_ns) / copy_samples : 0.0;
  result.model_metrics["crossing_sampling"] = {
      {"every", batch.latency_stride}, {"samples", copy_samples}, {"items", returned}};
  return result;
}

// Every workload that needs no Python-level state shared between interpreters (see above).
std::vector<std::string> isolated_workloads() {
  std::vector<std::string> out;
  for (const Workload* w : all_workloads()) {
    const std::string name(w->name());
    if (name == "cpu.counter_race" || w->needs_shared_memory()) continue;
    out.push_back(name);
  }
  return out;
}

}  // namespace

ModelInfo interpreters_model_info() {
  ModelInfo info{
      "interpreters",
      "N subinterpreters (PEP 684/734), each a thread behind its own GIL; payloads and results "
      "are copied across",
      {ParamSpec::integer("switch_interval_us", "each GIL's switch interval", 5000, 1, 10'000'000),
       ParamSpec::integer("inflight", "tasks queued per interpreter", 2, 1, 1024),
       ParamSpec::choice("interpreter_cost",
                         "what an interpreter's Python-level work costs: measured from CPython "
                         "3.13+ when installed (else its default), or the default",
                         "measured", {"measured", "default"})},
      false,
      [] { return std::make_unique<Interpreters>(); },
      {}};
  info.workloads = isolated_workloads();
  info.latency_means =
      "the task's run on its interpreter, from taking it off its queue to its result copied back "
      "(GIL acquisition and the return copy included, the wait in the queue not)";
  return info;
}

}  // namespace concbench
