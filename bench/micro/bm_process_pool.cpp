// process_pool's synchronous round trip (one worker, inflight=1) versus payload size, for every
// codec and transport: BM_ProcessPool_RoundTrip/<codec>/<transport>/<bytes>. Set it beside
// BM_SocketpairPingPong_Processes (bm_ipc.cpp), the bare floor under the same placement. With shm
// the payload's cost should stop growing beyond the one copy into the shared region (and the
// hash the workload itself makes).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <string>

#include "concbench/model.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

void round_trip(benchmark::State& state, const std::string& codec, const std::string& transport) {
  const auto bytes = state.range(0);
  const Workload& w = *find_workload("overhead.noop");
  const TaskSet ts = w.make_tasks(
      Params::resolve(w.params(), {{"tasks", "1"}, {"payload_bytes", std::to_string(bytes)}},
                      "overhead.noop"),
      1);
  const ModelInfo& info = *find_model("process_pool");
  auto m = info.create();
  ModelConfig cfg;
  cfg.workers = 1;
  cfg.params = Params::resolve(
      info.params, {{"codec", codec}, {"transport", transport}, {"inflight", "1"}}, "process_pool");
  m->setup(cfg);
  // Several sequential round trips per batch, so the batch's own fixed costs (opening the
  // parent's counters, the end-of-batch counter flush) do not pass for round-trip time.
  const uint64_t rounds =
      std::max<uint64_t>(1, std::min<uint64_t>(64, (64ULL << 20) / std::max<int64_t>(bytes, 1)));
  for (auto _ : state) {
    const BatchResult r = m->run(Batch{&ts.tasks, rounds});
    for (uint64_t k = 0; k < rounds; ++k) {
      if (!r.done[k] || r.checksums[k] != ts.expected[0]) {
        state.SkipWithError("task did not verify");
        break;
      }
    }
  }
  m->teardown();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * rounds) * bytes * 2);
  state.counters["round_trip"] = benchmark::Counter(
      static_cast<double>(rounds),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void register_all() {
  for (const char* codec : {"raw", "msgpack", "cbor", "json"}) {
    for (const char* transport : {"pipe", "shm"}) {
      const std::string name = std::string("BM_ProcessPool_RoundTrip/") + codec + "/" + transport;
      auto* b = benchmark::RegisterBenchmark(name.c_str(), [codec, transport](benchmark::State& s) {
        round_trip(s, codec, transport);
      });
      // JSON writes each byte as a number: stop it at 1 MiB, or one iteration takes seconds.
      const int64_t max = std::string(codec) == "json" ? (1 << 20) : (64 << 20);
      for (int64_t size : {int64_t{0}, int64_t{1024}, int64_t{64 << 10}, int64_t{1 << 20},
                           int64_t{16 << 20}, int64_t{64 << 20}})
        if (size <= max) b->Arg(size);
      b->UseRealTime();
    }
  }
}

const bool registered = (register_all(), true);

}  // namespace
}  // namespace concbench
