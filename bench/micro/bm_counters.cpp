// Cost of the measurement primitives themselves, so that a report can say how much of a short
// interval is instrumentation. Linked into a binary that provides main(); no BENCHMARK_MAIN.
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

#include "concbench/counters.hpp"

#if defined(__linux__)
#include <sys/resource.h>
#endif

namespace concbench {
namespace {

// Baseline: the clock every timed section reads twice.
void BM_TimerNow(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(std::chrono::steady_clock::now());
  }
}
BENCHMARK(BM_TimerNow);

// One ThreadCounters::read(): one read() per perf group plus one getrusage(). The label lists
// how many counters that read produced, since the cost depends on what the machine exposes.
void BM_CounterGroupRead(benchmark::State& state) {
  ThreadCounters counters;  // opened once, outside the timed loop, as a worker would
  int available = 0;
  {
    const CounterValues v = counters.read();
    for (int i = 0; i < kCounterCount; ++i) available += v.has(static_cast<Counter>(i)) ? 1 : 0;
  }
  for (auto _ : state) {
    CounterValues v = counters.read();
    benchmark::DoNotOptimize(v);
  }
  state.SetLabel(std::to_string(available) + "/" + std::to_string(kCounterCount) +
                 " counters available");
}
BENCHMARK(BM_CounterGroupRead);

// One InheritedCounters::read(): one read() per event (inherited events cannot be read as a
// group), what a model whose threads start per batch pays twice per batch.
void BM_InheritedCountersRead(benchmark::State& state) {
  InheritedCounters counters;
  for (auto _ : state) {
    CounterValues v = counters.read();
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_InheritedCountersRead);

// since() over two reads with raw triples: the per-interval scaling a worker does per report.
void BM_CounterSince(benchmark::State& state) {
  CounterValues a, b;
  for (int i = 0; i < kCounterCount; ++i) {
    a.set_raw(static_cast<Counter>(i), {1000, 2000, 1500});
    b.set_raw(static_cast<Counter>(i), {5000, 9000, 4000});
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(a);
    CounterValues d = b.since(a);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_CounterSince);

// The getrusage(RUSAGE_THREAD) part of read() alone.
void BM_GetrusageThread(benchmark::State& state) {
#if defined(__linux__)
  for (auto _ : state) {
    rusage ru;
    benchmark::DoNotOptimize(getrusage(RUSAGE_THREAD, &ru));
    benchmark::DoNotOptimize(ru);
  }
#else
  // Skip before the loop: the library then runs no iterations.
  state.SkipWithError("getrusage(RUSAGE_THREAD) is Linux-only");
  for (auto _ : state) {
  }
#endif
}
BENCHMARK(BM_GetrusageThread);

}  // namespace
}  // namespace concbench
