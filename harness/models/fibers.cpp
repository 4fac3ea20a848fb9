// fibers: stackful cooperative user-space threads, greenlets under gevent's hub. Each task runs
// on a fiber of its own (Boost.Context, boost::context::fiber), and a fiber gives up its worker
// thread only at an IO step, where it waits on its worker's event loop; everything else (every
// CPU step) runs inline and holds the worker, as a greenlet holds the hub until it does IO.
//
// Against async (stackless C++20 coroutines): the same loop, the same IO, the same rule that CPU
// work blocks the loop, but the task's whole call stack is suspended, not one frame chain, so
// any function at any depth may wait; the cost is a stack per task in flight (stack_kb) and a
// full register switch per suspension (bench/micro bm_fibers.cpp measures it against a
// coroutine's resume and an OS thread switch).
//
// Workers: --workers N gives N scheduler threads (worker 0 is the caller's; the others start per
// batch, as async_mt's do), each with its own Asio io_context (epoll) and its own pool of fibers.
// Items are handed out through one atomic counter: a worker claims one whenever it has an idle
// fiber. workers = 1 is gevent's picture.
//
// The fiber pool: a fiber is created (its stack mmapped, with a guard page) once and reused for
// task after task and batch after batch. A fiber runs one item, reports it, and parks; the
// scheduler resumes it with the next item. Pool size per worker: its share of max_inflight
// (0: of the batch's task set), allocated in setup or before a batch's timed region, never
// while timed. Fibers in flight never exceed max_inflight (or the task-set size).
//
// IO steps (the values and checks shared with async through loop_io.hpp):
//   sleep          a steady_timer wait on the loop; the step's value checks it lasted;
//   pipe/tcp echo  the fiber's own connection to the echo server as a non-blocking Asio
//                  stream_descriptor, each chunk written and read back while the fiber waits
//                  for readiness on epoll;
//   file_read      blocking pread on the worker thread, inline, as gevent does for regular files
//                  (they are not pollable; gevent offloads them only if asked to): the whole
//                  worker waits, which a file-heavy workload shows;
//   echo_respond   latency.echo_under_load's responder, its reads and writes waited on the loop.
//
// Cancellation: cancel() sets the breaker (a CPU step throws TaskCancelled at its next
// checkpoint) and posts to each worker's loop a handler that cancels every pending wait; each
// waiting fiber then resumes, throws TaskCancelled out of its wait, unwinds its task normally
// and parks. run() returns once every fiber is parked: no stack is left suspended mid-task, no
// stack leaks, and the next batch runs (unlike async, a cancelled fibers model is still usable:
// the cancel applies to the batch it interrupted, or to the next one if none was running).
//
// Threads: a fiber, its pool and its loop belong to one worker thread for the batch; the item
// counter is atomic, result slots are per item. A fiber lets only TaskCancelled and
// std::exception out of a task (reported as failures); anything else terminates, because
// Boost.Context's own stack unwinding (forced_unwind) must never be caught.
#include <sched.h>

#include <algorithm>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>
#include <boost/context/stack_traits.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "concbench/checksum.hpp"
#include "concbench/clock.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "concbench/model.hpp"
#include "concbench/stats.hpp"
#include "loop_io.hpp"
#include "worker_loop.hpp"

namespace concbench::detail {
namespace {

namespace bctx = boost::context;
using Executor = asio::io_context::executor_type;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;
using Stream = asio::posix::basic_stream_descriptor<Executor>;

struct Worker;

// What a batch shares between its workers.
struct BatchState {
  BatchState(const Batch& b, BatchResult& r) : batch(b), result(r) {}
  const Batch& batch;
  BatchResult& result;
  alignas(64) std::atomic<uint64_t> next{0};  // relaxed: it only hands out distinct indices
};

// One pooled fiber and everything its task's IO needs. Never moves (its body points at it).
struct Fiber {
  Fiber(std::atomic<uint32_t>& breaker, IoEnv* io, int index, Worker& w)
      : ctx(breaker, no_lock_hooks(), io, index), worker(&w) {}
  ExecContext ctx;  // its worker index is the fiber's global index: its own connections
  Worker* worker;
  bctx::fiber self;  // the fiber while it is parked or waiting; empty while it runs
  bctx::fiber back;  // while it runs: whoever resumed it (the scheduler, or a loop handler)
  BatchState* st = nullptr;
  uint64_t item = 0;
  uint64_t completed = 0;  // items it completed this batch
  bool parked = true;      // no item: in its worker's idle list
  bool waiting = false;    // suspended on a loop wait (cancellation aborts it)
  bool stop = false;       // teardown: return from the body
  std::optional<Timer> timer;
  std::optional<Stream> pipe, tcp, responder;
  std::vector<std::byte> out, in;

  // Back to whoever resumed this fiber; returns when resumed again.
  void suspend() { back = std::move(back).resume(); }

  // Starts an Asio operation with a handler that resumes this fiber, and suspends until it has
  // completed. start(handler) initiates the operation; the handler never runs inside it (Asio
  // posts every completion), so the fiber is always suspended when it is resumed.
  template <class Start>
  void wait(Start&& start);

  uint64_t run_task(const Task& task);
  uint64_t sleep_step(const Step& s);
  uint64_t echo_step(const Step& s, uint64_t seed, bool tcp);
  uint64_t respond_step(const Step& s, uint64_t seed);
  void run_item();
  void body();
};

struct Worker {
  Worker() : ioc(1), lag_timer(ioc.get_executor()) {}
  asio::io_context ioc;  // one thread runs it: Asio keeps its queue unlocked for that thread
  std::vector<std::unique_ptr<Fiber>> fibers;  // the pool; every one created at setup or
                                               // before a batch is timed
  std::vector<Fiber*> idle;
  size_t share = 0;  // fibers of the pool this batch uses
  size_t in_flight = 0;
  uint64_t resumes = 0;     // fiber resumes this batch: one to start each task, one per wait
  uint64_t generation = 0;  // batch number: a stale cancellation handler does nothing
  std::vector<TaskFailure> failures;
  WorkerLog log;
  Timer lag_timer;
  uint64_t lag_due = 0;
  bool lag_stop = false;
  std::vector<uint64_t> lag_ns;

  // Switches to `f` until it suspends again (waits or parks); puts it back in the pool if it
  // parked. Called by the scheduler to start an item and by loop handlers to end a wait.
  void resume(Fiber& f) {
    ++resumes;
    f.self = std::move(f.self).resume();
    if (f.parked) {
      --in_flight;
      idle.push_back(&f);
    }
  }
  // Aborts every pending wait of this worker's fibers (on the worker's thread).
  void cancel_waits() {
    for (auto& f : fibers) {
      if (!f->waiting) continue;
      if (f->timer) f->timer->cancel();
      if (f->pipe) f->pipe->cancel();
      if (f->tcp) f->tcp->cancel();
      if (f->responder) f->responder->cancel();
    }
  }
};

template <class Start>
void Fiber::wait(Start&& start) {
  ctx.throw_if_cancelled();  // a cancellation already seen by this worker waits for nothing
  std::error_code ec;
  std::forward<Start>(start)([this, &ec](std::error_code e, auto&&...) {
    ec = e;
    worker->resume(*this);
  });
  waiting = true;
  suspend();
  waiting = false;
  ctx.throw_if_cancelled();
  if (ec) throw std::system_error(ec);
}

uint64_t Fiber::sleep_step(const Step& s) {
  if (!timer) timer.emplace(worker->ioc.get_executor());
  const auto due = sleep_deadline(s);
  timer->expires_at(due);
  wait([&](auto handler) { timer->async_wait(std::move(handler)); });
  return sleep_value(s, due);
}

uint64_t Fiber::echo_step(const Step& s, uint64_t seed, bool tcp_kind) {
  auto& slot = tcp_kind ? tcp : pipe;
  if (!slot) slot.emplace(worker->ioc.get_executor(), dup_echo_connection(ctx, tcp_kind));
  Stream& stream = *slot;
  out.resize(s.bytes);
  in.resize(s.bytes);
  uint64_t h = 0;
  for (uint64_t r = 0; r < s.units; ++r) {
    fill_bytes(out, echo_message_seed(seed, r));
    for (size_t off = 0; off < out.size(); off += kEchoChunk) {
      const size_t len = std::min(kEchoChunk, out.size() - off);
      wait([&](auto handler) {
        asio::async_write(stream, asio::buffer(out.data() + off, len), std::move(handler));
      });
      wait([&](auto handler) {
        asio::async_read(stream, asio::buffer(in.data() + off, len), std::move(handler));
      });
    }
    h = fold(h, hash_bytes(in));
  }
  return h;
}

// latency.echo_under_load's responder, as async's: it does not wait for its CPU-bound
// companions, because on one worker a companion that starts holds the worker until it is done,
// which is the stall to be shown.
uint64_t Fiber::respond_step(const Step& s, uint64_t seed) {
  IoEnv& io = ctx.io();
  const EchoWork work = echo_work(s, ctx.interpreter_cost());
  io.set_echo_work(work.responder_ns, work.client_ns);
  const uint64_t pace_ns = echo_pace_ns(s);
  std::vector<uint64_t> received(pace_ns > 0 ? s.units : 0);  // fixed size: nothing grows timed
  EchoClient client(seed, s.units, s.bytes, work.client_steps, pace_ns);
  responder.emplace(worker->ioc.get_executor(),
                    dup_descriptor(client.responder_fd(), "dup(responder)"));
  struct Close {
    std::optional<Stream>& s;
    ~Close() { s.reset(); }
  } close{responder};
  std::vector<std::byte> buf(s.bytes);
  uint64_t h = 0, burnt = seed;
  for (uint64_t r = 0; r < s.units; ++r) {
    wait(
        [&](auto handler) { asio::async_read(*responder, asio::buffer(buf), std::move(handler)); });
    if (pace_ns > 0) received[r] = monotonic_ns();  // the fiber runs again: the ping is seen
    if (r == 0) io.set_companions_seen(io.companions().load(std::memory_order_relaxed));
    h = fold(h, hash_bytes(buf));                   // touching the data is CPU work on the worker
    burnt = burn_lcg(burnt, work.responder_steps);  // and so is the rest of the Python round
    wait([&](auto handler) {
      asio::async_write(*responder, asio::buffer(buf), std::move(handler));
    });
  }
  sink_value(burnt);
  io.record_rtts(client.finish());
  if (pace_ns > 0) io.record_one_way(one_way_delays(client.sent_ns(), received));
  // Relaxed: a hint for spinning companions; nothing is published through it.
  io.stop_flag().store(true, std::memory_order_relaxed);
  return h;
}

uint64_t Fiber::run_task(const Task& task) {
  uint64_t h = task_checksum_start(task);
  for (size_t i = 0; i < task.steps.size(); ++i) {
    const Step& s = task.steps[i];
    const uint64_t seed = step_seed(task.seed, i);
    uint64_t v = 0;
    switch (s.kind) {
      case StepKind::cpu:
        if (TraceBuffer* trace = worker->log.attr.times.trace) [[unlikely]] {
          // --trace: the step holds the worker's thread, so its span is that thread's.
          const uint64_t t0 = monotonic_ns();
          const int cpu = sched_getcpu();
          v = run_cpu_step(s, task.seed, i, ctx);
          trace->add(TraceKind::cpu, t0, t0, static_cast<uint64_t>(cpu < 0 ? 0 : cpu));
          trace->add(TraceKind::loop_step, t0, monotonic_ns(), item);
          break;
        }
        v = run_cpu_step(s, task.seed, i, ctx);  // inline: the worker is held
        break;
      case StepKind::sleep:
        v = sleep_step(s);
        break;
      case StepKind::pipe_echo:
      case StepKind::tcp_echo:
        v = echo_step(s, seed, s.kind == StepKind::tcp_echo);
        break;
      case StepKind::file_read:
        v = run_blocking_io_step(s, task.seed, i, ctx);  // blocking, inline (see the top)
        break;
      case StepKind::echo_respond:
        v = respond_step(s, seed);
        break;
    }
    h = fold(h, v);
  }
  return h;
}

void Fiber::run_item() {
  const Batch& b = st->batch;
  const uint64_t k = item;
  const bool sampled = b.sampled(k);
  TraceBuffer* const trace = worker->log.attr.times.trace;
  const uint64_t t0 = sampled || trace ? monotonic_ns() : 0;
  try {
    const uint64_t h = run_task((*b.tasks)[k % b.tasks->size()]);
    st->result.checksums[k] = seal(h, b.item_nonce(k));
    st->result.done[k] = 1;
    ++completed;
    if (sampled || trace) [[unlikely]] {
      const uint64_t t1 = monotonic_ns();
      if (sampled) st->result.latency_ns[k / b.latency_stride] = t1 - t0;
      if (trace) trace->add(TraceKind::task_async, t0, t1, k);  // fibers of a thread overlap
    }
  } catch (const TaskCancelled&) {
  } catch (const std::exception& e) {
    worker->failures.push_back({k, std::string("task threw: ") + e.what()});
  }
}

// The fiber's whole life: an item per resumption from the pool, until teardown stops it.
void Fiber::body() {
  while (!stop) {
    run_item();
    parked = true;
    suspend();
  }
}

class Fibers final : public Model {
 public:
  void setup(const ModelConfig& cfg) override {
    Model::setup(cfg);
    workers_ = std::max(1, cfg.workers);
    max_inflight_ = static_cast<uint64_t>(cfg.params.get_int("max_inflight"));
    lag_interval_ns_ = static_cast<uint64_t>(cfg.params.get_int("lag_interval_us")) * 1000;
    stack_bytes_ = static_cast<size_t>(cfg.params.get_int("stack_kb")) * 1024;
    io_ = std::make_unique<IoEnv>();
    // Before any worker thread starts: worker 0 is the caller, the others inherit it.
    counters_ = std::make_unique<InheritedCounters>();
    for (int w = 0; w < workers_; ++w) workers_v_.push_back(std::make_unique<Worker>());
    if (max_inflight_ > 0) grow_pools(max_inflight_);
  }

  BatchResult run(const Batch& batch) override {
    BatchResult result = BatchResult::for_batch(batch);
    const uint64_t items = batch.items();
    if (items == 0 || workers_v_.empty()) return result;
    const uint64_t set = batch.tasks->size();
    const uint64_t fibers = std::min<uint64_t>(items, max_inflight_ ? max_inflight_ : set);
    grow_pools(fibers);  // outside the timed region; a no-op once the pools are big enough
    BatchState st(batch, result);
    if (batch.trace) batch.trace->recorded = true;
    for (size_t w = 0; w < workers_v_.size(); ++w) {
      Worker& wk = *workers_v_[w];
      wk.share = share_of(fibers, w);
      wk.idle.clear();
      for (size_t i = wk.share; i-- > 0;) wk.idle.push_back(wk.fibers[i].get());
      wk.in_flight = 0;
      wk.resumes = 0;
      wk.failures.clear();
      wk.log = WorkerLog{};
      wk.log.attr.times.trace = batch.trace ? batch.trace->worker(static_cast<int>(w)) : nullptr;
      wk.lag_ns.clear();
      wk.lag_ns.reserve(lag_reserve_);
      wk.lag_stop = false;
      ++wk.generation;
      wk.ioc.restart();
      for (size_t i = 0; i < wk.share; ++i) {
        wk.fibers[i]->st = &st;
        wk.fibers[i]->completed = 0;
      }
    }
    {
      std::lock_guard lock(mu_);
      live_ = true;
    }

    io_->begin_batch();
    const CounterValues counters_start = counters_->read();
    result.begin_work();
    std::vector<std::thread> extra;
    try {
      for (int w = 1; w < workers_; ++w)
        extra.emplace_back([this, &st, w] { schedule(*workers_v_[static_cast<size_t>(w)], st); });
    } catch (...) {
      breaker_.fetch_or(kBreakCancel, std::memory_order_relaxed);
      for (auto& th : extra) th.join();
      end_batch();
      throw;
    }
    schedule(*workers_v_[0], st);
    for (auto& th : extra) th.join();
    result.end_work();

    SwitchCount switches;
    uint64_t resumes = 0, started = 0;
    std::vector<WorkerLog> logs;
    std::vector<uint64_t> lag;
    for (size_t w = 0; w < workers_v_.size(); ++w) {
      auto& wk = workers_v_[w];
      // Each worker's thread runs its own loop (its file reads block it: part of its off-CPU
      // time, so not timed by the clock as well).
      WorkerAttribution a = wk->log.attr;
      a.worker = static_cast<int>(w);
      attribute_loop_thread(a);
      for (size_t i = 0; i < wk->share; ++i) a.times.tasks += wk->fibers[i]->completed;
      uint64_t lag_total = 0;
      for (uint64_t l : wk->lag_ns) lag_total += l;
      a.times.loop_lag_ns = lag_total;
      result.attribution.push_back(std::move(a));
      switches += wk->log.switches;
      resumes += wk->resumes;
      for (auto& f : wk->failures) result.failures.push_back(std::move(f));
      lag.insert(lag.end(), wk->lag_ns.begin(), wk->lag_ns.end());
      lag_reserve_ = std::max<size_t>(lag_reserve_, 4 * wk->lag_ns.size() + 64);
      logs.push_back(std::move(wk->log));
    }
    result.counters = detail::with_switches(counters_->read().since(counters_start), switches);
    result.observations = io_->end_batch();
    started = std::min<uint64_t>(st.next.load(std::memory_order_relaxed), items);
    end_batch();

    std::sort(lag.begin(), lag.end());
    size_t pool = 0;
    for (auto& wk : workers_v_) pool += wk->fibers.size();
    auto& m = result.model_metrics;
    m["scheduler_threads"] = workers_;
    m["max_inflight"] = fibers;
    m["fibers_created"] = pool;
    m["stack_bytes"] = stack_bytes_;
    m["fiber_resumes"] = resumes;
    m["tasks_started"] = started;
    m["resumes_per_task"] =
        started ? static_cast<double>(resumes) / static_cast<double>(started) : 0.0;
    m["file_reads"] = "blocking, inline on the worker";
    m["loop_lag"] = lag_json(lag);
    m["workers"] = detail::workers_json(logs);
    return result;
  }

  void teardown() override {
    // Every fiber is parked between batches: resume each started one once with `stop` so its
    // body returns, and its stack is freed with the fiber object.
    for (auto& wk : workers_v_)
      for (auto& f : wk->fibers) {
        f->stop = true;
        if (f->self) f->self = std::move(f->self).resume();
      }
    workers_v_.clear();
    io_.reset();
    counters_.reset();
  }

  void cancel() override {
    breaker_.fetch_or(kBreakCancel, std::memory_order_relaxed);
    std::lock_guard lock(mu_);
    if (!live_) return;  // the breaker stays set: the next batch returns at once
    for (auto& wk : workers_v_) {
      Worker* w = wk.get();
      asio::post(w->ioc, [w, gen = w->generation] {
        if (w->generation == gen) w->cancel_waits();
      });
    }
  }

 private:
  // Worker w's part of n fibers.
  size_t share_of(uint64_t n, size_t w) const {
    const uint64_t W = workers_v_.size();
    return static_cast<size_t>(n / W + (w < n % W ? 1 : 0));
  }

  void grow_pools(uint64_t fibers) {
    for (size_t w = 0; w < workers_v_.size(); ++w) {
      Worker& wk = *workers_v_[w];
      const size_t want = share_of(fibers, w);
      wk.fibers.reserve(want);
      wk.idle.reserve(want);
      while (wk.fibers.size() < want) {
        auto f = std::make_unique<Fiber>(breaker_, io_.get(), next_index_++, wk);
        Fiber* p = f.get();
        f->self = bctx::fiber(std::allocator_arg, bctx::protected_fixedsize_stack(stack_bytes_),
                              [p](bctx::fiber&& caller) {
                                p->back = std::move(caller);
                                p->body();
                                return std::move(p->back);
                              });
        wk.fibers.push_back(std::move(f));
      }
    }
  }

  // One worker thread's batch: start items on idle fibers, run the loop's handlers (each ends a
  // fiber's wait by resuming it), until every item is claimed and every fiber parked.
  void schedule(Worker& w, BatchState& st) {
    detail::note_cpu(w.log.cpus_seen);
    const detail::SwitchCount s0 = detail::SwitchCount::now();
    const ActiveInterval active;
    const uint64_t items = st.batch.items();
    auto guard = asio::make_work_guard(w.ioc);
    if (lag_interval_ns_ > 0) arm_lag(w);
    bool exhausted = false;
    for (;;) {
      const bool cancelled = (breaker_.load(std::memory_order_relaxed) & kBreakCancel) != 0;
      while (!exhausted && !cancelled && !w.idle.empty()) {
        const uint64_t k = st.next.fetch_add(1, std::memory_order_relaxed);
        if (k >= items) {
          exhausted = true;
          break;
        }
        Fiber& f = *w.idle.back();
        w.idle.pop_back();
        f.item = k;
        f.parked = false;
        ++w.in_flight;
        w.resume(f);
      }
      // A worker whose share is no fiber (fewer fibers than workers) has nothing to run.
      if (w.in_flight == 0 && (exhausted || cancelled || w.share == 0)) break;
      w.ioc.run_one();
    }
    // Every fiber is parked; stop the lag monitor and run what is left (its cancelled wait).
    w.lag_stop = true;
    w.lag_timer.cancel();
    guard.reset();
    w.ioc.run();
    active.finish(w.log.attr);
    w.log.switches = detail::SwitchCount::now().since(s0);
    detail::note_cpu(w.log.cpus_seen);
  }

  // How late a periodic timer fires while the tasks run: a CPU step holding the worker
  // stretches it to its own length. A plain handler on the loop, not a fiber.
  void arm_lag(Worker& w) {
    w.lag_due = monotonic_ns() + lag_interval_ns_;
    w.lag_timer.expires_after(std::chrono::nanoseconds(lag_interval_ns_));
    w.lag_timer.async_wait([this, &w](std::error_code ec) {
      if (ec || w.lag_stop) return;
      const uint64_t now = monotonic_ns();
      w.lag_ns.push_back(now > w.lag_due ? now - w.lag_due : 0);
      arm_lag(w);
    });
  }

  void end_batch() {
    std::lock_guard lock(mu_);
    live_ = false;
    // A cancellation ends with the batch it stopped.
    breaker_.fetch_and(~kBreakCancel, std::memory_order_relaxed);
  }

  static nlohmann::json lag_json(const std::vector<uint64_t>& sorted) {
    if (sorted.empty()) return {{"samples", 0}};
    return {{"samples", sorted.size()},
            {"p50_ns", percentile_sorted(sorted, 50)},
            {"p99_ns", percentile_sorted(sorted, 99)},
            {"max_ns", sorted.back()}};
  }

  int workers_ = 1;
  uint64_t max_inflight_ = 0;
  uint64_t lag_interval_ns_ = 0;
  size_t stack_bytes_ = 0;
  size_t lag_reserve_ = 4096;
  int next_index_ = 0;
  std::atomic<uint32_t> breaker_{0};
  std::unique_ptr<IoEnv> io_;
  std::unique_ptr<InheritedCounters> counters_;
  std::vector<std::unique_ptr<Worker>> workers_v_;
  std::mutex mu_;  // guards live_ against cancel()
  bool live_ = false;
};

}  // namespace
}  // namespace concbench::detail

namespace concbench {

ModelInfo fibers_model_info() {
  ModelInfo info{
      "fibers",
      "stackful fibers (Boost.Context) on one event loop per worker, as greenlets under gevent: "
      "switch only at IO, CPU blocks the worker",
      {
          ParamSpec::integer("max_inflight",
                             "fibers (tasks) in flight at once (0: every task of the batch)", 0, 0,
                             100'000'000),
          ParamSpec::integer("stack_kb", "stack size of each fiber, KiB (a guard page below it)",
                             256, 16, 65536),
          ParamSpec::integer("lag_interval_us", "period of the loop-lag timer (0: no monitor)",
                             1000, 0, 10'000'000),
      },
      false,
      [] { return std::make_unique<detail::Fibers>(); },
      {}};
  info.in_flight_per_worker = 0;  // every fiber it holds overlaps its IO
  info.latency_means =
      "from a fiber taking the task to its result, time spent waiting for IO and for the worker "
      "included";
  return info;
}

}  // namespace concbench
