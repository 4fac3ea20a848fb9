// async_mt: the same coroutines on one io_context run by N threads (--workers): what Python's
// asyncio cannot do. A CPU step still blocks the thread it runs on, but the other N-1 threads
// keep serving timers and sockets (see async_loop.cpp).
#include "async_loop.hpp"

namespace concbench {

ModelInfo async_mt_model_info() {
  ModelInfo info{"async_mt",
                 "coroutines on one event loop run by N threads (what asyncio cannot do)",
                 detail::async_loop_params(),
                 false,
                 [] { return detail::make_async_loop_model(true); },
                 {}};
  info.in_flight_per_worker = 0;  // every task it holds overlaps its IO
  info.latency_means = detail::kLoopLatencyMeans;
  return info;
}

}  // namespace concbench
