// What process_threads shares with process_pool (process_pool.cpp): the parameters, and the pool
// itself, which with `threaded` starts workers that run threads_per_process threads behind a GIL
// of their own (process_worker.hpp). Internal to harness/models.
#pragma once

#include <memory>
#include <vector>

#include "concbench/model.hpp"

namespace concbench {

std::vector<ParamSpec> process_pool_params();
std::unique_ptr<Model> make_process_pool(bool threaded);
void validate_process_pool(const Params& p);

}  // namespace concbench
