// The event-loop engine behind `async` (one loop thread: asyncio's world) and `async_mt` (one
// io_context run by N threads, which Python's asyncio cannot do). Internal to harness/models;
// the two models are thin files beside it, as thread_pool and pinned_pool are beside pool_model.
#pragma once

#include <memory>
#include <vector>

#include "concbench/model.hpp"

namespace concbench::detail {

// `multi_thread` false: one loop thread whatever cfg.workers says; true: cfg.workers threads.
std::unique_ptr<Model> make_async_loop_model(bool multi_thread);
std::vector<ParamSpec> async_loop_params();
// What both models' task latency measures (ModelInfo::latency_means).
inline constexpr const char* kLoopLatencyMeans =
    "from a lane taking the task to its result, time spent awaiting IO and waiting for the loop "
    "included";

}  // namespace concbench::detail
