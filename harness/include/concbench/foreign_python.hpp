// Other Python interpreters (Jython, PyPy, any CPython), driven over a socket by a pure-Python
// driver (harness/driver/concbench_driver.py, whose header documents the protocol): `bench_runner
// run --python PATH` registers py:<label>.threading and py:<label>.serial for the interpreter at
// PATH, the label its own (jython-2.7, pypy-3.9, cpython-3.11, cpython-3.13t).
#pragma once

#include <string>

namespace concbench {

// The driver script: $CONCBENCH_DRIVER if set, else the one in the source tree.
std::string foreign_driver_path();

// Starts `interpreter` with the driver once, reads its hello and registers py:<label>.<model> for
// every model the driver offers; returns the label. The same path given again registers nothing.
// Throws UsageError (one line) when the interpreter does not start or does not say hello.
std::string register_foreign_python(const std::string& interpreter);

}  // namespace concbench
