// The bridge that lets a model written in Python (the package's cpython.* models) run under the
// C++ runner: same matrix, warm-up, calibration, timeouts, checksum verification against the
// workload's predictions (which the Python side never sees) and the same report.
//
// Threads: the runner calls setup/run/teardown on its cell thread, which holds no GIL, and
// cancel() from the watchdog (the thread that called concbench.run, GIL released). Every
// touch of a Python object happens with the GIL acquired; cancel() only sets an atomic flag
// that the Python tasks poll, so it can never wait for the GIL behind a task that ignores it.
#pragma once

#include <pybind11/pybind11.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "concbench/exec_context.hpp"
#include "concbench/model.hpp"

namespace concbench::python {

namespace py = pybind11;

// What Python tasks poll to notice cancellation (a timeout); shared with the adapter.
// Its word doubles as the breaker of an ExecContext, so a native kernel called from a task stops
// at its next unit too.
struct CancelFlag {
  std::atomic<uint32_t> breaker{0};
  // Relaxed: a hint polled between units of work; nothing is published through it.
  bool is_set() const { return (breaker.load(std::memory_order_relaxed) & kBreakCancel) != 0; }
  void cancel() { breaker.fetch_or(kBreakCancel, std::memory_order_relaxed); }
};

// A Python model class is registered with its factory (a callable returning an object with
// setup(workers, params, seed, cancel_flag), run(tasks, rounds) -> tuple, teardown()); see
// concbench/models/base.py for the contract of run's result.
ModelInfo python_model_info(
    std::string name, std::string description, py::object factory, bool single_worker,
    bool separate_processes, std::vector<ParamSpec> params, std::vector<std::string> workloads,
    std::map<std::string, std::map<std::string, std::string>> workload_params);

// A task as the Python side sees it: (id, seed, payload: bytes, steps), each step a tuple
// (kind, native, kernel, bytes, units, duration_ns, arg). Needs the GIL.
py::tuple task_to_python(const Task& t);

}  // namespace concbench::python
