// A Python function as a workload (concbench.bench): task i is a call of the function on input
// i (mod the number of inputs). The tasks carry no steps; a model that can call Python
// (ModelInfo::python_callables) runs them, and compares every result with what cpython.serial
// returned for the same input before it seals the item's checksum (callable_checksum). The
// comparison lives in concbench/user_workload.py, outside every model's timed region.
#pragma once

#include <cstdint>
#include <string>

namespace concbench::python {

// Registers (or replaces) the workload `name` with `inputs` inputs.
void register_callable_workload(const std::string& name, const std::string& description,
                                uint64_t inputs);

// The checksum of a work item whose result matched the reference: what the workload predicted
// for the task with seed `task_seed`, sealed with the item's nonce.
uint64_t callable_checksum(uint64_t task_seed, uint64_t nonce);

}  // namespace concbench::python
