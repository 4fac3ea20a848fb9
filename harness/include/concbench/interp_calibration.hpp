// What an emulated CPython version costs, measured from that version when it is installed.
//
// gil_threads emulates a CPython version range (a GilPolicy); the Python-level work its tasks
// stand in for should cost what it costs in that interpreter on this machine. The calibration
// runs the installed interpreter once per process and policy (a subprocess, before any timed
// region). It times a pure-Python `x += 1` loop (ns per bytecode), `x += one()` less it (a
// call's cost), and the responder loop of ccbench's latency test over a socketpair whose peer has
// the messages queued already, so no round waits; the same recv and send from C++ are timed
// beside it, and its cost per round less theirs is its Python-level work (InterpreterCost). The
// client's figure is the unloaded cycle's (a Python responder against a Python client process,
// less the same cycle from C++ threads and the responder's work): it is the time the responder
// waits in recv with the GIL let go, and a client process wakes slower than a thread.
// Where no interpreter of the range is installed (3.1 never is), a per-version default measured
// on the Intel Xeon VM stands in, and the calibration says so.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "concbench/exec_context.hpp"
#include "concbench/gil.hpp"

namespace concbench {

struct InterpCalibration {
  InterpreterCost cost;
  std::string source;             // "measured" or "default"
  std::string interpreter;        // the executable measured, or empty
  std::string version;            // its version, or the range of the default
  std::string note;               // why a default stands in, or how it was measured
  uint64_t syscall_round_ns = 0;  // the C++ recv and send subtracted (measured runs only)
  uint64_t cycle_ns = 0;          // the unloaded Python responder/client-process cycle per round
  uint64_t cpp_cycle_ns = 0;      // the same cycle from C++, subtracted from it
  nlohmann::json to_json() const;
};

// The calibration for `policy`, measured on first use and cached for the process (thread-safe).
// measure=false gives the default without looking for an interpreter. `interpreter`, when not
// empty, is the one executable to measure (an absolute path): validate_gil.py sets each installed
// CPython beside an emulation calibrated from that very build. Throws UsageError when
// it is not an executable file, fails the script, or is not a version of the policy's range.
const InterpCalibration& interp_calibration(const GilPolicy& policy, bool measure = true,
                                            const std::string& interpreter = "");

}  // namespace concbench
