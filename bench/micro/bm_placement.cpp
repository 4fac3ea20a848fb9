// What placement costs when threads talk: an lmbench lat_ctx-style token ping-pong through two
// pipes between two threads pinned to the same PU (every hand-off is a context switch), to two
// PUs (every hand-off is a cross-core wake-up), and unpinned; and a cache line bounced between two
// threads pinned to different PUs (the hardware cost of sharing one line). Times are per round
// trip.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "concbench/topology.hpp"

namespace concbench {
namespace {

// -1: leave the thread unpinned.
void pipe_ping_pong(benchmark::State& state, int pu_a, int pu_b) {
  const Topology topo = Topology::host();
  const auto pus = topo.pus();
  auto pu = [&](int i) { return pus[static_cast<size_t>(i) % pus.size()]; };
  if (pu_b >= 0 && pus.size() < 2 && pu_a != pu_b) {
    state.SkipWithError("needs two PUs");
    return;
  }
  int to_b[2], to_a[2];
  if (pipe(to_b) != 0 || pipe(to_a) != 0) {
    state.SkipWithError("pipe failed");
    return;
  }
  std::string err;
  if (pu_a >= 0) err = topo.bind_thread(pu(pu_a));
  std::thread b([&] {
    if (pu_b >= 0) {
      const std::string e = topo.bind_thread(pu(pu_b));
      if (!e.empty()) err = e;
    }
    char c;
    while (read(to_b[0], &c, 1) == 1 && c != 'q') {
      if (write(to_a[1], &c, 1) != 1) break;
    }
  });
  char c = 't';
  for (auto _ : state) {
    if (write(to_b[1], &c, 1) != 1 || read(to_a[0], &c, 1) != 1) {
      state.SkipWithError("pipe IO failed");
      break;
    }
  }
  const char q = 'q';
  if (write(to_b[1], &q, 1) != 1) {
  }
  b.join();
  for (int fd : {to_b[0], to_b[1], to_a[0], to_a[1]}) close(fd);
  if (pu_a >= 0) topo.unbind_thread();  // later benchmarks must not inherit the pin
  if (!err.empty()) state.SkipWithError(("binding refused: " + err).c_str());
}

void BM_PingPong_SamePu(benchmark::State& state) {
  pipe_ping_pong(state, 0, 0);
}
void BM_PingPong_TwoPus(benchmark::State& state) {
  pipe_ping_pong(state, 0, 1);
}
void BM_PingPong_Unpinned(benchmark::State& state) {
  pipe_ping_pong(state, -1, -1);
}

void BM_CacheLinePingPong(benchmark::State& state) {
  const Topology topo = Topology::host();
  const auto pus = topo.pus();
  if (pus.size() < 2) {
    state.SkipWithError("needs two PUs");
    return;
  }
  struct alignas(64) Line {
    std::atomic<uint64_t> turn{0};
  } line;
  std::atomic<bool> stop{false};
  std::string err = topo.bind_thread(pus[0]);
  std::thread b([&] {
    const std::string e = topo.bind_thread(pus[1]);
    if (!e.empty()) err = e;
    uint64_t expect = 1;
    while (!stop.load(std::memory_order_relaxed)) {
      // Acquire/release: each side's write of the line is what the other waits to see.
      if (line.turn.load(std::memory_order_acquire) == expect) {
        line.turn.store(expect + 1, std::memory_order_release);
        expect += 2;
      }
    }
  });
  uint64_t next = 0;
  for (auto _ : state) {
    line.turn.store(next + 1, std::memory_order_release);
    while (line.turn.load(std::memory_order_acquire) != next + 2) {
    }
    next += 2;
  }
  stop.store(true);
  b.join();
  topo.unbind_thread();
  if (!err.empty()) state.SkipWithError(("binding refused: " + err).c_str());
}

}  // namespace

BENCHMARK(BM_PingPong_SamePu)->UseRealTime();
BENCHMARK(BM_PingPong_TwoPus)->UseRealTime();
BENCHMARK(BM_PingPong_Unpinned)->UseRealTime();
BENCHMARK(BM_CacheLinePingPong)->UseRealTime();

}  // namespace concbench
