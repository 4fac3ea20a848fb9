// Dispatch cost: how much a model adds to each task before any work happens. Every benchmark here
// runs with 2 threads; each iteration dispatches one batch of empty tasks and waits for all of
// them. The per_index / per_task counter is the iteration's wall time divided by the batch size.
//
// Like for like (BM_Dispatch_Index_*): one batch of 1000 empty indices, spread over 2 threads
// that each claim one index at a time (no chunking: grain 1 everywhere).
//   Dispatch_Index_ThreadPool: ThreadPool::for_each_index; the calling thread plus 1 pool thread
//     claim indices one by one from a shared atomic counter (fetch_add) and call the function
//     directly (a template, no std::function); between batches the pool thread spins a bounded
//     while, then sleeps on a futex. Unpinned.
//   Dispatch_Index_PinnedPool: the same, with the pool thread and the calling thread each bound to
//     its own PU ("compact" placement) for the duration of the benchmark.
//   Dispatch_Index_TbbParallelFor: tbb::parallel_for over blocked_range<uint64_t>(0, 1000, 1) with
//     simple_partitioner (the range is split recursively down to single indices, which the caller
//     and oneTBB's worker run and steal from each other), inside a 2-thread task_arena (one slot
//     for the benchmark thread, one for a oneTBB worker) that the benchmark thread has entered
//     once. Only when oneTBB is found.
//   Dispatch_Index_OmpDynamic1: `#pragma omp parallel for schedule(dynamic, 1) num_threads(2)`: a
//     parallel region per batch (libgomp's team is reused; with the default wait policy its team
//     thread spins a while, then sleeps, between regions), the caller and 1 team thread claim
//     iterations one at a time from a shared counter. Only when OpenMP is found.
//   Dispatch_Index_ThreadPoolCallerWaits: ThreadPool::run_on_all with 2 pool threads that claim
//     indices from a shared counter while the caller waits; this is how the thread_pool and
//     pinned_pool models hand a batch to their workers (harness/models/pool_model.cpp).
//
// Different work (BM_Dispatch_TaskPerIndex_*): a separate task is created for each index.
//   Dispatch_TaskPerIndex_TbbTaskGroup: 1000 tasks spawned with tbb::task_group::run from the
//     caller in a 2-thread task_arena, then task_group::wait.
//   Dispatch_TaskPerIndex_StdAsync: std::async(std::launch::async) per index (a thread each, in
//     libstdc++), 100 per batch.
//   Dispatch_TaskPerIndex_ThreadPerTask: a std::thread created and joined per index, 100 per batch.
#include <benchmark/benchmark.h>

#include <atomic>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "concbench/thread_pool.hpp"
#include "concbench/topology.hpp"

#ifdef CONCBENCH_HAVE_TBB
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#endif
#ifdef CONCBENCH_HAVE_OPENMP
#include <omp.h>
#endif

namespace concbench {
namespace {

constexpr int kThreads = 2;
constexpr int kIndices = 1000;

benchmark::Counter per_item(uint64_t batch) {
  // Seconds per index, shown in the table as a time.
  return benchmark::Counter(
      static_cast<double>(batch),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void empty_task(uint64_t i) {
  benchmark::DoNotOptimize(i);
}

// ----- like for like: 1000 indices, 2 threads, one index per claim -----

void BM_Dispatch_Index_ThreadPool(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  ThreadPool pool(kThreads - 1);  // + the calling thread
  for (auto _ : state) pool.for_each_index(batch, empty_task);
  state.counters["per_index"] = per_item(batch);
}
BENCHMARK(BM_Dispatch_Index_ThreadPool)->Arg(kIndices)->UseRealTime();

void BM_Dispatch_Index_PinnedPool(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  const Topology topo = Topology::host();
  const std::vector<unsigned> pus = topo.place(Placement::parse("compact"), kThreads);
  // The calling thread takes pus[0], the pool thread pus[1].
  std::vector<std::string> errors(kThreads);
  errors[0] = topo.bind_thread(pus[0]);
  {
    ThreadPool pool(kThreads - 1, [&](int w) {
      const auto i = static_cast<size_t>(w) + 1;
      errors[i] = topo.bind_thread(pus[i]);
    });
    bool bound = true;
    for (const auto& e : errors)
      if (!e.empty() && bound) {
        state.SkipWithError(("binding refused: " + e).c_str());
        bound = false;
      }
    if (bound)
      for (auto _ : state) pool.for_each_index(batch, empty_task);
  }
  topo.unbind_thread();  // later benchmarks must not inherit the pin
  state.counters["per_index"] = per_item(batch);
}
BENCHMARK(BM_Dispatch_Index_PinnedPool)->Arg(kIndices)->UseRealTime();

void BM_Dispatch_Index_ThreadPoolCallerWaits(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  ThreadPool pool(kThreads);
  std::atomic<uint64_t> next{0};
  const std::function<void(int)> body = [&](int) {
    for (uint64_t i = next.fetch_add(1, std::memory_order_relaxed); i < batch;
         i = next.fetch_add(1, std::memory_order_relaxed))
      empty_task(i);
  };
  for (auto _ : state) {
    next.store(0, std::memory_order_relaxed);  // published by run_on_all's hand-off
    pool.run_on_all(body);
  }
  state.counters["per_index"] = per_item(batch);
}
BENCHMARK(BM_Dispatch_Index_ThreadPoolCallerWaits)->Arg(kIndices)->UseRealTime();

#ifdef CONCBENCH_HAVE_TBB
void BM_Dispatch_Index_TbbParallelFor(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  tbb::task_arena arena(kThreads);
  // The benchmark thread enters the arena once and stays: each batch is then only the
  // parallel_for, as each of our batches is only for_each_index.
  arena.execute([&] {
    for (auto _ : state) {
      tbb::parallel_for(
          tbb::blocked_range<uint64_t>(0, batch, 1),
          [](const tbb::blocked_range<uint64_t>& r) {
            for (uint64_t i = r.begin(); i != r.end(); ++i) empty_task(i);
          },
          tbb::simple_partitioner());
    }
  });
  state.counters["per_index"] = per_item(batch);
}
BENCHMARK(BM_Dispatch_Index_TbbParallelFor)->Arg(kIndices)->UseRealTime();
#endif

#ifdef CONCBENCH_HAVE_OPENMP
void BM_Dispatch_Index_OmpDynamic1(benchmark::State& state) {
  const auto batch = static_cast<int64_t>(state.range(0));
  for (auto _ : state) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(kThreads)
    for (int64_t i = 0; i < batch; ++i) empty_task(static_cast<uint64_t>(i));
  }
  state.counters["per_index"] = per_item(static_cast<uint64_t>(batch));
}
BENCHMARK(BM_Dispatch_Index_OmpDynamic1)->Arg(kIndices)->UseRealTime();
#endif

// ----- different work: a task created per index -----

#ifdef CONCBENCH_HAVE_TBB
void BM_Dispatch_TaskPerIndex_TbbTaskGroup(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  tbb::task_arena arena(kThreads);
  for (auto _ : state) {
    arena.execute([&] {
      tbb::task_group tg;
      for (uint64_t i = 0; i < batch; ++i) tg.run([i] { empty_task(i); });
      tg.wait();
    });
  }
  state.counters["per_task"] = per_item(batch);
}
BENCHMARK(BM_Dispatch_TaskPerIndex_TbbTaskGroup)->Arg(kIndices)->UseRealTime();
#endif

void BM_Dispatch_TaskPerIndex_StdAsync(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  std::vector<std::future<void>> fs;
  fs.reserve(batch);
  for (auto _ : state) {
    for (uint64_t i = 0; i < batch; ++i)
      fs.push_back(std::async(std::launch::async, empty_task, i));
    for (auto& f : fs) f.get();
    fs.clear();
  }
  state.counters["per_task"] = per_item(batch);
}
BENCHMARK(BM_Dispatch_TaskPerIndex_StdAsync)->Arg(100)->UseRealTime();

void BM_Dispatch_TaskPerIndex_ThreadPerTask(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    for (uint64_t i = 0; i < batch; ++i) std::thread(empty_task, i).join();
  }
  state.counters["per_task"] = per_item(batch);
}
BENCHMARK(BM_Dispatch_TaskPerIndex_ThreadPerTask)->Arg(100)->UseRealTime();

}  // namespace
}  // namespace concbench
