// Dispatch cost per empty task: how much a model adds to each task before any work happens.
// Each iteration dispatches a batch of kBatch empty tasks and waits for all of them; the
// per_task counter is the iteration time divided by kBatch.
//   Dispatch_ThreadPool / Dispatch_PinnedPool: ThreadPool::for_each_index, 2 workers
//   Dispatch_TbbTaskGroup: oneTBB's task_group in a 2-thread arena (when TBB is found)
//   Dispatch_StdAsync: std::async(std::launch::async) per task (a thread each, in libstdc++)
//   Dispatch_ThreadPerTask: a std::thread created and joined per task
#include <benchmark/benchmark.h>

#include <future>
#include <thread>
#include <vector>

#include "concbench/thread_pool.hpp"
#include "concbench/topology.hpp"

#ifdef CONCBENCH_HAVE_TBB
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#endif

namespace concbench {
namespace {

constexpr int kWorkers = 2;

benchmark::Counter per_task(uint64_t batch) {
  // Seconds per task, shown in the table as a time.
  return benchmark::Counter(
      static_cast<double>(batch),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void empty_task(uint64_t i) {
  benchmark::DoNotOptimize(i);
}

void BM_Dispatch_ThreadPool(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  ThreadPool pool(kWorkers);
  for (auto _ : state) pool.for_each_index(batch, empty_task);
  state.counters["per_task"] = per_task(batch);
}
BENCHMARK(BM_Dispatch_ThreadPool)->Arg(1000)->UseRealTime();

void BM_Dispatch_PinnedPool(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  const Topology topo = Topology::host();
  const std::vector<unsigned> pus = topo.place(Placement::parse("compact"), kWorkers);
  std::vector<std::string> errors(kWorkers);
  ThreadPool pool(kWorkers, [&](int w) {
    errors[static_cast<size_t>(w)] = topo.bind_thread(pus[static_cast<size_t>(w)]);
  });
  for (const auto& e : errors)
    if (!e.empty()) state.SkipWithError(("binding refused: " + e).c_str());
  for (auto _ : state) pool.for_each_index(batch, empty_task);
  state.counters["per_task"] = per_task(batch);
}
BENCHMARK(BM_Dispatch_PinnedPool)->Arg(1000)->UseRealTime();

#ifdef CONCBENCH_HAVE_TBB
void BM_Dispatch_TbbTaskGroup(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  tbb::task_arena arena(kWorkers);
  for (auto _ : state) {
    arena.execute([&] {
      tbb::task_group tg;
      for (uint64_t i = 0; i < batch; ++i) tg.run([i] { empty_task(i); });
      tg.wait();
    });
  }
  state.counters["per_task"] = per_task(batch);
}
BENCHMARK(BM_Dispatch_TbbTaskGroup)->Arg(1000)->UseRealTime();
#endif

void BM_Dispatch_StdAsync(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  std::vector<std::future<void>> fs;
  fs.reserve(batch);
  for (auto _ : state) {
    for (uint64_t i = 0; i < batch; ++i)
      fs.push_back(std::async(std::launch::async, empty_task, i));
    for (auto& f : fs) f.get();
    fs.clear();
  }
  state.counters["per_task"] = per_task(batch);
}
BENCHMARK(BM_Dispatch_StdAsync)->Arg(100)->UseRealTime();

void BM_Dispatch_ThreadPerTask(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    for (uint64_t i = 0; i < batch; ++i) std::thread(empty_task, i).join();
  }
  state.counters["per_task"] = per_task(batch);
}
BENCHMARK(BM_Dispatch_ThreadPerTask)->Arg(100)->UseRealTime();

}  // namespace
}  // namespace concbench
