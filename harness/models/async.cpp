// async: every task is a C++20 coroutine on one event-loop thread, as in asyncio. IO steps are
// awaited, so IO overlaps across every task in flight; CPU steps run inline and block the loop
// for their whole length, which is the lesson to measure (see async_loop.cpp).
#include "async_loop.hpp"

namespace concbench {

ModelInfo async_model_info() {
  ModelInfo info{
      "async",
      "coroutines on one event-loop thread (asyncio's world): IO awaited, CPU blocks the loop",
      detail::async_loop_params(),
      true,  // one loop thread, always
      [] { return detail::make_async_loop_model(false); },
      {}};
  info.in_flight_per_worker = 0;  // every task it holds overlaps its IO
  info.latency_means = detail::kLoopLatencyMeans;
  return info;
}

}  // namespace concbench
