// The emulated GIL's own costs: what one take/drop, one hand-over between two threads and one
// checkpoint with no request pending cost. These bound the overhead gil_threads adds per
// switch and per unit of work.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "concbench/exec_context.hpp"
#include "concbench/gil.hpp"

namespace concbench {
namespace {

void BM_GilTakeDropUncontended(benchmark::State& state) {
  std::atomic<uint32_t> breaker{0};
  Gil gil(breaker, std::chrono::microseconds(5000));
  GilThread t;
  for (auto _ : state) {
    gil.take(t);
    gil.drop(t);
    if (t.wait_ns.size() > 4096) t.wait_ns.clear();  // keep the record from growing
  }
}
BENCHMARK(BM_GilTakeDropUncontended);

// Two threads pass the GIL back and forth: each asks for a switch and drops, and the
// FORCE_SWITCHING wait makes the other take it before it can be taken back. One iteration is
// main's take plus its hand-over (two switches in all); it measures the mechanism (condition
// variables, wake-ups), not the switch interval.
void BM_GilHandoff(benchmark::State& state) {
  std::atomic<uint32_t> breaker{0};
  Gil gil(breaker, std::chrono::microseconds(5000));
  std::atomic<bool> done{false};
  GilThread main_t, other_t;
  auto pass = [&](GilThread& t) {
    gil.take(t);
    breaker.fetch_or(kBreakDropRequest);
    gil.drop(t);
    if (t.wait_ns.size() > 4096) t.wait_ns.clear();  // keep the record from growing
  };
  std::thread other([&] {
    while (!done.load()) pass(other_t);
  });
  const uint64_t start = gil.switch_number();
  for (auto _ : state) pass(main_t);
  const uint64_t switches = gil.switch_number() - start;
  done.store(true);
  breaker.fetch_or(kBreakCancel);  // releases a forced-switch wait nobody will answer
  other.join();
  state.counters["switches_per_iter"] =
      static_cast<double>(switches) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_GilHandoff)->UseRealTime();

void BM_CheckpointNoRequest(benchmark::State& state) {
  std::atomic<uint32_t> breaker{0};
  ExecContext ctx(breaker, no_lock_hooks(), nullptr, 0);
  for (auto _ : state) {
    ctx.checkpoint();
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_CheckpointNoRequest);

}  // namespace
}  // namespace concbench
