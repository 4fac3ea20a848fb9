// The event loop's own costs, each beside its asyncio counterpart (scripts/compare_asyncio.py
// measures those in the same run):
//   Async_CoroutineCreate  spawn a no-op LoopTask on the loop and run it to completion, per task
//                          (asyncio: a gather of no-op coroutines, per task)
//   Async_Yield            one trip through the loop: post, then resume (asyncio.sleep(0))
//   Async_ZeroTimer        a timer of zero length, awaited (asyncio.sleep of a tiny delay)
// and, for reference, the same through Asio's own coroutine support (asio::awaitable and
// co_spawn), which the async models do not use because of what AsioAwaitable_Spawn shows.
// Every loop is one io_context driven by the benchmark's thread, as asyncio's loop is, and
// created with ASIO_CONCURRENCY_HINT_UNSAFE: like asyncio's call_soon, nothing is posted to it
// from another thread.
#include <benchmark/benchmark.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <cstdint>

#include "concbench/loop_task.hpp"

namespace concbench {
namespace {

using Executor = asio::io_context::executor_type;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;

benchmark::Counter per_op(uint64_t n) {
  return benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                        benchmark::Counter::kInvert);
}

// Spawns `batch` coroutines made by make(), then runs the loop until all are done.
template <class Spawn>
void run_batches(benchmark::State& state, uint64_t batch, uint64_t& done, Spawn spawn_one) {
  asio::io_context ioc(ASIO_CONCURRENCY_HINT_UNSAFE);
  for (auto _ : state) {
    for (uint64_t i = 0; i < batch; ++i) spawn_one(ioc);
    ioc.run();
    ioc.restart();
  }
  if (done != batch * static_cast<uint64_t>(state.iterations()))
    state.SkipWithError("a coroutine did not complete");
  state.counters["per_task"] = per_op(batch);
}

LoopTask<void> noop(uint64_t& done) {
  ++done;
  co_return;
}

void BM_Async_CoroutineCreate(benchmark::State& state) {
  uint64_t done = 0;
  run_batches(state, static_cast<uint64_t>(state.range(0)), done,
              [&](asio::io_context& ioc) { spawn(ioc.get_executor(), noop(done)); });
}
BENCHMARK(BM_Async_CoroutineCreate)->Arg(100)->Arg(1000)->UseRealTime();

LoopTask<void> yielder(uint64_t n, Executor ex) {
  for (uint64_t i = 0; i < n; ++i) co_await asio::post(ex, use_loop_task);
}

void BM_Async_Yield(benchmark::State& state) {
  const auto n = static_cast<uint64_t>(state.range(0));
  asio::io_context ioc(ASIO_CONCURRENCY_HINT_UNSAFE);
  for (auto _ : state) {
    spawn(ioc.get_executor(), yielder(n, ioc.get_executor()));
    ioc.run();
    ioc.restart();
  }
  state.counters["per_yield"] = per_op(n);
}
BENCHMARK(BM_Async_Yield)->Arg(1000)->UseRealTime();

LoopTask<void> zero_timers(uint64_t n, Executor ex) {
  Timer timer(ex);
  for (uint64_t i = 0; i < n; ++i) {
    timer.expires_after(std::chrono::nanoseconds(0));
    co_await timer.async_wait(use_loop_task);
  }
}

void BM_Async_ZeroTimer(benchmark::State& state) {
  const auto n = static_cast<uint64_t>(state.range(0));
  asio::io_context ioc(ASIO_CONCURRENCY_HINT_UNSAFE);
  for (auto _ : state) {
    spawn(ioc.get_executor(), zero_timers(n, ioc.get_executor()));
    ioc.run();
    ioc.restart();
  }
  state.counters["per_wait"] = per_op(n);
}
BENCHMARK(BM_Async_ZeroTimer)->Arg(100)->UseRealTime();

// Asio's own coroutines, with a concrete executor type (any_io_executor costs a third more).
// Asio enables them only where it recognizes the compiler's coroutine support (not clang 14 with
// libstdc++, the sanitizer build); the comparison is then left out, as oneTBB's is without TBB.
#if defined(ASIO_HAS_CO_AWAIT)
template <class T>
using Awaitable = asio::awaitable<T, Executor>;
constexpr asio::use_awaitable_t<Executor> kUseAwaitable;

Awaitable<void> asio_noop(uint64_t& done) {
  ++done;
  co_return;
}

void BM_AsioAwaitable_Spawn(benchmark::State& state) {
  uint64_t done = 0;
  run_batches(state, static_cast<uint64_t>(state.range(0)), done, [&](asio::io_context& ioc) {
    asio::co_spawn(ioc.get_executor(), asio_noop(done), asio::detached);
  });
}
BENCHMARK(BM_AsioAwaitable_Spawn)->Arg(1000)->UseRealTime();

Awaitable<void> asio_yielder(uint64_t n) {
  auto ex = co_await asio::this_coro::executor;
  for (uint64_t i = 0; i < n; ++i) co_await asio::post(ex, kUseAwaitable);
}

void BM_AsioAwaitable_Yield(benchmark::State& state) {
  const auto n = static_cast<uint64_t>(state.range(0));
  asio::io_context ioc(ASIO_CONCURRENCY_HINT_UNSAFE);
  for (auto _ : state) {
    asio::co_spawn(ioc.get_executor(), asio_yielder(n), asio::detached);
    ioc.run();
    ioc.restart();
  }
  state.counters["per_yield"] = per_op(n);
}
BENCHMARK(BM_AsioAwaitable_Yield)->Arg(1000)->UseRealTime();
#endif  // ASIO_HAS_CO_AWAIT

}  // namespace
}  // namespace concbench
