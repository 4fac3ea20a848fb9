// The event loop behind async and async_mt: each task runs as a C++20 coroutine (a LoopTask,
// concbench/loop_task.hpp) on a standalone Asio io_context (Debian's libasio-dev).
//
// IO steps are awaited without blocking the loop:
//   sleep         a steady_timer;
//   pipe/tcp echo the lane's own connection to the echo server, as a stream_descriptor;
//   file_read     pread on a small thread pool, awaited, as libuv does (regular files are not
//                 pollable, so there is nothing to wait on);
//   echo_respond  the responder coroutine of latency.echo_under_load.
// CPU steps run inline on whichever loop thread resumed the coroutine, and block it for their
// whole length: a CPU-bound coroutine that never awaits stalls every other task on its loop.
// That is what this model exists to measure, so nothing here hides it.
//
// A batch: L lanes, each a coroutine that claims items one at a time (so at most L tasks are in
// flight; L = max_inflight, or every task of the set when it is 0), a loop-lag monitor, and 1
// (async) or N (async_mt) threads running the io_context. Each batch gets a fresh io_context,
// so the coroutines a cancelled batch leaves suspended are destroyed with it and can never
// resume into the next one.
//
// Ownership and threads: a lane's state (its ExecContext, descriptors, buffers, log) is touched
// only by its own coroutine, which one thread at a time runs (it may resume on another thread
// after each await under async_mt). The item counter is atomic. The lag monitor runs on a
// strand, and its timer is touched only there. Per-thread records (counters, CPUs seen) are
// found through a thread_local set while a thread runs the loop.
#include "async_loop.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/thread_pool.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <thread>

#include "concbench/checksum.hpp"
#include "concbench/clock.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "concbench/loop_task.hpp"
#include "concbench/stats.hpp"
#include "loop_io.hpp"
#include "worker_loop.hpp"

namespace concbench::detail {
namespace {

// Concrete executor types: no type erasure on the hot path.
using Executor = asio::io_context::executor_type;
using Strand = asio::strand<Executor>;
template <class Ex>
using TimerOn = asio::basic_waitable_timer<std::chrono::steady_clock,
                                           asio::wait_traits<std::chrono::steady_clock>, Ex>;
using Timer = TimerOn<Executor>;
using Stream = asio::posix::basic_stream_descriptor<Executor>;

// The record of the loop thread running on this OS thread, while it runs the loop. Read only
// through a call the compiler cannot inline: a coroutine may resume on another thread, and a
// thread_local's address must not be carried across the suspension.
thread_local WorkerLog* tl_thread_log = nullptr;
[[gnu::noinline]] WorkerLog* current_thread_log() {
  return tl_thread_log;
}

struct Lane {
  Lane(std::atomic<uint32_t>& breaker, IoEnv* io, int index, Executor e)
      : ctx(breaker, no_lock_hooks(), io, index), ex(e) {}
  ExecContext ctx;  // its worker index is the lane's: it selects the lane's own connections
  Executor ex;
  std::optional<Timer> timer;
  std::optional<Stream> pipe, tcp;
  std::vector<std::byte> out, in;
  std::vector<TaskFailure> failures;
};

struct BatchState {
  BatchState(asio::io_context& ioc, const Batch& b, BatchResult& r)
      : batch(b), result(r), lag_strand(asio::make_strand(ioc)), lag_timer(lag_strand) {}
  const Batch& batch;
  BatchResult& result;
  std::span<Lane> lanes;
  // Relaxed: it only hands out distinct indices; results reach the caller through the loop
  // threads' exit and join.
  std::atomic<uint64_t> next{0};
  std::atomic<size_t> lanes_live{0};
  std::atomic<uint64_t> offloads{0};  // file reads sent to the pool
  // Strand-only: the monitor's timer, its samples and its stop flag.
  Strand lag_strand;
  TimerOn<Strand> lag_timer;
  bool lag_stop = false;
  std::vector<uint64_t> lag_ns;
  std::mutex escaped_mu;
  std::vector<std::string> escaped;  // errors that left a lane coroutine (a bug if any)
};

// Runs a blocking file read on `pool` and resumes the awaiting task on the loop. `pending`
// counts reads still on the pool: a cancelled batch waits for it to reach zero before its
// io_context is destroyed, since each read ends by posting to that io_context.
class FileReadAwaiter {
 public:
  FileReadAwaiter(asio::thread_pool& pool, std::atomic<int>& pending, const Step& s,
                  uint64_t task_seed, size_t index, Lane& lane)
      : pool_(pool), pending_(pending), s_(s), seed_(task_seed), index_(index), lane_(lane) {}
  bool await_ready() noexcept { return false; }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    pending_.fetch_add(1, std::memory_order_relaxed);
    // The work guard keeps the loop's run() from returning while the read is away.
    asio::post(pool_, [this, r = ResumeHandle(h, root_of(h)),
                       work = asio::make_work_guard(lane_.ex)]() mutable {
      try {
        value_ = run_blocking_io_step(s_, seed_, index_, lane_.ctx);
      } catch (...) {
        error_ = std::current_exception();
      }
      std::atomic<int>& pending = pending_;  // `this` may be gone once the task resumes
      asio::post(work.get_executor(), [r = std::move(r)]() mutable { r.resume(); });
      work.reset();
      // Release: everything this job did to the io_context happens before the count drops.
      pending.fetch_sub(1, std::memory_order_release);
    });
  }
  uint64_t await_resume() {
    if (error_) std::rethrow_exception(error_);
    return value_;
  }

 private:
  asio::thread_pool& pool_;
  std::atomic<int>& pending_;
  const Step& s_;
  uint64_t seed_;
  size_t index_;
  Lane& lane_;
  uint64_t value_ = 0;
  std::exception_ptr error_;
};

LoopTask<uint64_t> sleep_step(const Step& s, Lane& lane) {
  if (!lane.timer) lane.timer.emplace(lane.ex);
  const auto due = sleep_deadline(s);
  lane.timer->expires_at(due);
  co_await lane.timer->async_wait(use_loop_task);
  co_return sleep_value(s, due);
}

// The lane's connection of the given kind: a duplicate of the IoEnv descriptor, so the Stream
// may own (and close) it while IoEnv keeps its own.
Stream& lane_stream(Lane& lane, bool tcp) {
  auto& slot = tcp ? lane.tcp : lane.pipe;
  if (!slot) slot.emplace(lane.ex, dup_echo_connection(lane.ctx, tcp));
  return *slot;
}

LoopTask<uint64_t> echo_step(const Step& s, uint64_t seed, Lane& lane, bool tcp) {
  Stream& stream = lane_stream(lane, tcp);
  lane.out.resize(s.bytes);
  lane.in.resize(s.bytes);
  uint64_t h = 0;
  for (uint64_t r = 0; r < s.units; ++r) {
    fill_bytes(lane.out, echo_message_seed(seed, r));
    for (size_t off = 0; off < lane.out.size(); off += kEchoChunk) {
      const size_t len = std::min(kEchoChunk, lane.out.size() - off);
      co_await asio::async_write(stream, asio::buffer(lane.out.data() + off, len), use_loop_task);
      co_await asio::async_read(stream, asio::buffer(lane.in.data() + off, len), use_loop_task);
    }
    h = fold(h, hash_bytes(lane.in));
  }
  co_return h;
}

// latency.echo_under_load's responder as a coroutine. The client thread starts first and sends
// at once; the responder does not wait for its CPU-bound companions as the threaded one does,
// because on one loop a companion that starts never gives the loop back until it is done: the
// first round trip then waits for all of it, which is exactly the stall to be shown. The
// companions counted are those that had started by the time the first message was read.
LoopTask<uint64_t> respond_step(const Step& s, uint64_t seed, Lane& lane) {
  IoEnv& io = lane.ctx.io();
  const EchoWork work = echo_work(s, lane.ctx.interpreter_cost());
  io.set_echo_work(work.responder_ns, work.client_ns);
  const uint64_t pace_ns = echo_pace_ns(s);
  std::vector<uint64_t> received(pace_ns > 0 ? s.units : 0);  // fixed size: nothing grows timed
  EchoClient client(seed, s.units, s.bytes, work.client_steps, pace_ns);
  Stream stream(lane.ex, dup_descriptor(client.responder_fd(), "dup(responder)"));
  std::vector<std::byte> buf(s.bytes);
  uint64_t h = 0, burnt = seed;
  for (uint64_t r = 0; r < s.units; ++r) {
    co_await asio::async_read(stream, asio::buffer(buf), use_loop_task);
    if (pace_ns > 0) received[r] = monotonic_ns();  // the coroutine runs again: the ping is seen
    if (r == 0) io.set_companions_seen(io.companions().load(std::memory_order_relaxed));
    lane.ctx.throw_if_cancelled();
    h = fold(h, hash_bytes(buf));                   // touching the data is CPU work on the loop
    burnt = burn_lcg(burnt, work.responder_steps);  // and so is the rest of the Python round
    co_await asio::async_write(stream, asio::buffer(buf), use_loop_task);
  }
  sink_value(burnt);
  io.record_rtts(client.finish());
  if (pace_ns > 0) io.record_one_way(one_way_delays(client.sent_ns(), received));
  // Relaxed: a hint for spinning companions; nothing is published through it.
  io.stop_flag().store(true, std::memory_order_relaxed);
  co_return h;
}

class AsyncLoop final : public Model {
 public:
  explicit AsyncLoop(bool multi_thread) : multi_thread_(multi_thread) {}

  void setup(const ModelConfig& cfg) override {
    Model::setup(cfg);
    threads_ = multi_thread_ ? std::max(1, cfg.workers) : 1;
    max_inflight_ = static_cast<uint64_t>(cfg.params.get_int("max_inflight"));
    lag_interval_ns_ = static_cast<uint64_t>(cfg.params.get_int("lag_interval_us")) * 1000;
    file_threads_ = static_cast<int>(cfg.params.get_int("file_threads"));
    io_ = std::make_unique<IoEnv>();
    pool_ = std::make_unique<asio::thread_pool>(static_cast<size_t>(file_threads_));
    // After the file pool has started, so it counts loop threads only: the caller's (loop
    // thread 0) and those async_mt starts per batch, which inherit it.
    counters_ = std::make_unique<InheritedCounters>();
    // One thread: tell Asio so, and it keeps work posted from the loop thread in a private
    // queue without locking. Posting from the file pool stays safe: the scheduler still locks.
    ioc_ = std::make_unique<asio::io_context>(threads_ == 1 ? 1 : threads_);
  }

  BatchResult run(const Batch& batch) override {
    BatchResult result = BatchResult::for_batch(batch);
    const uint64_t items = batch.items();
    if (items == 0) return result;
    // The io_context, the lanes and their timers and connections persist across batches: a
    // batch that ran to the end leaves no frame behind. A cancelled one does, which is why a
    // cancelled model runs no further batch; teardown destroys those frames with the io_context.
    {
      std::lock_guard lock(mu_);
      if (cancelled_ || !ioc_) return result;  // cancelled, or run after teardown
      live_ = ioc_.get();
    }
    asio::io_context& ioc = *ioc_;
    ioc.restart();
    std::vector<WorkerLog> thread_logs(static_cast<size_t>(threads_));
    if (batch.trace) {
      batch.trace->recorded = true;
      for (size_t t = 0; t < thread_logs.size(); ++t)
        thread_logs[t].attr.times.trace = batch.trace->worker(static_cast<int>(t));
    }
    uint64_t offloads = 0;
    {
      BatchState st(ioc, batch, result);
      const uint64_t set = batch.tasks->size();
      const uint64_t lanes = std::min<uint64_t>(items, max_inflight_ ? max_inflight_ : set);
      if (lanes_.size() < lanes) {
        lanes_.reserve(lanes);  // may move lanes: no frame refers to them between batches
        while (lanes_.size() < lanes)
          lanes_.emplace_back(breaker_, io_.get(), static_cast<int>(lanes_.size()),
                              ioc.get_executor());
      }
      st.lanes = std::span<Lane>(lanes_.data(), lanes);
      for (Lane& lane : st.lanes) lane.failures.clear();
      // The lag monitor ticks every lag_interval_ns_ at most: room for a batch four times as long
      // as the warm-up, so that samples are appended without growing the vector while timed.
      st.lag_ns.reserve(lag_reserve_);
      st.lanes_live.store(lanes, std::memory_order_relaxed);

      io_->begin_batch();
      const CounterValues counters_start = counters_->read();
      result.begin_work();
      if (lag_interval_ns_ > 0) spawn(st.lag_strand, lag_monitor(st), &note_escape, &st);
      // Spawned from the loop itself, so the posts go to the loop thread's private queue.
      spawn(ioc.get_executor(), start_lanes(st), &note_escape, &st);

      auto loop_thread = [&](int t) {
        WorkerLog& log = thread_logs[static_cast<size_t>(t)];
        tl_thread_log = &log;
        note_cpu(log.cpus_seen);
        const SwitchCount s0 = SwitchCount::now();
        const ActiveInterval active;
        ioc.run();
        active.finish(log.attr);
        log.switches = SwitchCount::now().since(s0);
        note_cpu(log.cpus_seen);
        tl_thread_log = nullptr;
      };
      // Loop thread 0 is the caller's, so async costs no thread creation; async_mt starts the
      // other N-1 for each batch, as free_threads does.
      std::vector<std::thread> extra;
      try {
        for (int t = 1; t < threads_; ++t) extra.emplace_back(loop_thread, t);
      } catch (...) {
        ioc.stop();
        for (auto& th : extra) th.join();
        finish_batch();
        throw;
      }
      loop_thread(0);
      for (auto& th : extra) th.join();
      // After a cancellation run() returns with reads still on the pool; each ends by posting to
      // ioc, so ioc must outlive them.
      while (pending_.load(std::memory_order_acquire) != 0)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      result.end_work();
      SwitchCount switches;
      for (const auto& l : thread_logs) switches += l.switches;
      result.counters = with_switches(counters_->read().since(counters_start), switches);
      result.observations = io_->end_batch();
      lag_reserve_ = std::max<size_t>(lag_reserve_, 4 * st.lag_ns.size() + 64);
      for (Lane& lane : st.lanes)
        for (auto& f : lane.failures) result.failures.push_back(std::move(f));
      for (const auto& e : st.escaped) result.failures.push_back({items, e});
      // Per loop thread: where its time went. Tasks are counted per thread only with one
      // thread (a count per task on the thread that finished it is a thread_local read per
      // task); the loop's lag is put beside thread 0, the loop's own under async.
      uint64_t lag_total = 0;
      for (uint64_t l : st.lag_ns) lag_total += l;
      for (size_t t = 0; t < thread_logs.size(); ++t) {
        WorkerAttribution a = thread_logs[t].attr;
        a.worker = static_cast<int>(t);
        attribute_loop_thread(a);
        if (threads_ == 1) {
          for (uint64_t k = 0; k < items; ++k) a.times.tasks += result.done[k];
        } else {
          a.tasks_known = false;
        }
        if (t == 0) a.times.loop_lag_ns = lag_total;
        result.attribution.push_back(std::move(a));
      }
      std::sort(st.lag_ns.begin(), st.lag_ns.end());
      result.model_metrics["loop_lag"] = lag_json(st.lag_ns);
      offloads = st.offloads.load(std::memory_order_relaxed);
    }
    finish_batch();
    result.model_metrics["loop_threads"] = threads_;
    result.model_metrics["max_inflight"] =
        std::min<uint64_t>(items, max_inflight_ ? max_inflight_ : batch.tasks->size());
    result.model_metrics["file_reads_offloaded"] = offloads;
    result.model_metrics["file_threads"] = file_threads_;
    result.model_metrics["workers"] = workers_json(thread_logs);
    return result;
  }

  void teardown() override {
    // Order: file reads end by posting to the io_context; lanes' timers and connections belong
    // to it; destroying it destroys the frames a cancelled batch left suspended.
    if (pool_) pool_->join();
    pool_.reset();
    lanes_.clear();
    ioc_.reset();
    io_.reset();
    counters_.reset();
  }

  void cancel() override {
    breaker_.fetch_or(kBreakCancel, std::memory_order_relaxed);
    std::lock_guard lock(mu_);
    cancelled_ = true;
    if (live_) live_->stop();  // thread-safe; CPU steps see the breaker at their next unit
  }

 private:
  void finish_batch() {
    std::lock_guard lock(mu_);
    live_ = nullptr;
  }

  static void note_escape(void* ctx, std::exception_ptr e) {
    if (!e) return;
    BatchState& st = *static_cast<BatchState*>(ctx);
    std::string what = "a lane coroutine failed";
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      what += std::string(": ") + ex.what();
    } catch (...) {
    }
    std::lock_guard lock(st.escaped_mu);
    st.escaped.push_back(std::move(what));
  }

  static nlohmann::json lag_json(const std::vector<uint64_t>& sorted) {
    if (sorted.empty()) return {{"samples", 0}};
    return {{"samples", sorted.size()},
            {"p50_ns", percentile_sorted(sorted, 50)},
            {"p99_ns", percentile_sorted(sorted, 99)},
            {"max_ns", sorted.back()}};
  }

  LoopTask<uint64_t> run_task(const Task& task, uint64_t k, Lane& lane, BatchState& st) {
    uint64_t h = task_checksum_start(task);
    for (size_t i = 0; i < task.steps.size(); ++i) {
      const Step& s = task.steps[i];
      const uint64_t seed = step_seed(task.seed, i);
      uint64_t v = 0;
      switch (s.kind) {
        case StepKind::cpu:
          if (st.batch.trace) [[unlikely]] {
            v = traced_cpu_step(s, task.seed, i, k, lane);
            break;
          }
          v = run_cpu_step(s, task.seed, i, lane.ctx);  // inline: this loop thread is blocked
          break;
        case StepKind::sleep:
          v = co_await sleep_step(s, lane);
          break;
        case StepKind::pipe_echo:
        case StepKind::tcp_echo:
          v = co_await echo_step(s, seed, lane, s.kind == StepKind::tcp_echo);
          break;
        case StepKind::file_read:
          st.offloads.fetch_add(1, std::memory_order_relaxed);
          v = co_await FileReadAwaiter(*pool_, pending_, s, task.seed, i, lane);
          break;
        case StepKind::echo_respond:
          v = co_await respond_step(s, seed, lane);
          break;
      }
      h = fold(h, v);
    }
    co_return h;
  }

  // --trace: a CPU step holds its loop thread, so its span is that thread's (spans on a thread
  // never overlap), with a sample of the CPU the thread is on.
  static uint64_t traced_cpu_step(const Step& s, uint64_t task_seed, size_t i, uint64_t k,
                                  Lane& lane) {
    TraceBuffer* const trace = current_thread_log()->attr.times.trace;
    const uint64_t t0 = monotonic_ns();
    const int cpu = sched_getcpu();
    const uint64_t v = run_cpu_step(s, task_seed, i, lane.ctx);
    if (trace) {
      trace->add(TraceKind::cpu, t0, t0, static_cast<uint64_t>(cpu < 0 ? 0 : cpu));
      trace->add(TraceKind::loop_step, t0, monotonic_ns(), k);
    }
    return v;
  }

  LoopTask<void> start_lanes(BatchState& st) {
    for (Lane& lane : st.lanes) spawn(lane.ex, lane_loop(st, lane), &note_escape, &st);
    co_return;
  }

  LoopTask<void> lane_loop(BatchState& st, Lane& lane) {
    const std::vector<Task>& tasks = *st.batch.tasks;
    const uint64_t items = st.batch.items();
    for (;;) {
      if (lane.ctx.cancel_requested()) break;
      const uint64_t k = st.next.fetch_add(1, std::memory_order_relaxed);
      if (k >= items) break;
      const bool sampled = st.batch.sampled(k);
      const bool traced = st.batch.trace != nullptr;
      const uint64_t t0 = sampled || traced ? monotonic_ns() : 0;
      bool cancelled = false;
      try {
        const uint64_t h = co_await run_task(tasks[k % tasks.size()], k, lane, st);
        st.result.checksums[k] = seal(h, st.batch.item_nonce(k));
        st.result.done[k] = 1;
        if (sampled || traced) [[unlikely]] {
          const uint64_t t1 = monotonic_ns();
          if (sampled) st.result.latency_ns[k / st.batch.latency_stride] = t1 - t0;
          // On the thread it ended on (under async_mt it may have begun on another).
          if (traced)
            if (TraceBuffer* trace = current_thread_log()->attr.times.trace)
              trace->add(TraceKind::task_async, t0, t1, k);
        }
      } catch (const TaskCancelled&) {
        cancelled = true;
      } catch (const std::exception& e) {
        lane.failures.push_back({k, std::string("task threw: ") + e.what()});
      } catch (...) {
        lane.failures.push_back({k, "task threw a non-standard exception"});
      }
      if (cancelled) break;
    }
    // acq_rel: the last lane out sees every other lane's exit before stopping the monitor.
    if (st.lanes_live.fetch_sub(1, std::memory_order_acq_rel) == 1)
      asio::post(st.lag_strand, [&st] {
        st.lag_stop = true;
        st.lag_timer.cancel();
      });
  }

  // How late a periodic timer fires while the tasks run: the time a ready callback waits for the
  // loop, which a CPU step holding the loop stretches to its own length.
  LoopTask<void> lag_monitor(BatchState& st) {
    while (!st.lag_stop) {
      const uint64_t due = monotonic_ns() + lag_interval_ns_;
      st.lag_timer.expires_after(std::chrono::nanoseconds(lag_interval_ns_));
      try {
        co_await st.lag_timer.async_wait(use_loop_task);
      } catch (const std::system_error&) {
        break;  // cancelled: the lanes are done
      }
      if (st.lag_stop) break;
      // Where loop threads run is sampled here and when each starts and stops, not per task:
      // a clock-like read per task is a cost that 10,000 tiny tasks notice.
      if (WorkerLog* log = current_thread_log()) note_cpu(log->cpus_seen);
      const uint64_t now = monotonic_ns();
      st.lag_ns.push_back(now > due ? now - due : 0);
    }
  }

  const bool multi_thread_;
  int threads_ = 1;
  uint64_t max_inflight_ = 0;
  uint64_t lag_interval_ns_ = 0;
  int file_threads_ = 4;
  size_t lag_reserve_ = 4096;
  std::unique_ptr<InheritedCounters> counters_;
  std::atomic<uint32_t> breaker_{0};
  std::unique_ptr<IoEnv> io_;
  std::unique_ptr<asio::thread_pool> pool_;
  std::unique_ptr<asio::io_context> ioc_;
  std::vector<Lane> lanes_;
  std::atomic<int> pending_{0};  // file reads on the pool, see offload_file_read
  std::mutex mu_;                // guards live_ and cancelled_
  asio::io_context* live_ = nullptr;
  bool cancelled_ = false;
};

}  // namespace

std::unique_ptr<Model> make_async_loop_model(bool multi_thread) {
  return std::make_unique<AsyncLoop>(multi_thread);
}

std::vector<ParamSpec> async_loop_params() {
  return {
      ParamSpec::integer("max_inflight", "tasks in flight at once (0: every task of the batch)", 0,
                         0, 100'000'000),
      ParamSpec::integer("lag_interval_us", "period of the loop-lag timer (0: no monitor)", 1000, 0,
                         10'000'000),
      ParamSpec::integer("file_threads", "threads that perform file reads (libuv's default: 4)", 4,
                         1, 256),
  };
}

}  // namespace concbench::detail
