// Plugins: shared libraries that add kernels and workloads (user.hpp), loaded with --plugin.
#pragma once

#include <string>
#include <vector>

namespace concbench {

// Where load_plugin keeps the loaded paths (colon-separated, in load order): a spawned
// process_pool worker is a fresh exec of bench_runner and must load the same plugins in the same
// order before it runs a task, or its KernelIds would not match the parent's.
inline constexpr const char* kPluginsEnv = "CONCBENCH_PLUGINS";

// Loads the plugin at `path` (a file path; a bare name is looked up in the current directory, not
// on the library path) and runs its registration. Loading a file that is already loaded does
// nothing. Call it before a run starts. Throws UsageError, one line, when the file is missing or
// not a shared library, does not export concbench_plugin_register, was built for another
// CONCBENCH_PLUGIN_ABI, its registration throws, or this program cannot host plugins (it must
// export concbench's symbols, as bench_runner does; the Python module does not). A registration
// that fails leaves what it registered before failing (KernelIds are never reused).
void load_plugin(const std::string& path);
// The canonical paths of the loaded plugins, in load order.
std::vector<std::string> loaded_plugins();
// Loads the plugins kPluginsEnv names, in order (a spawned worker's start).
void load_plugins_from_env();

}  // namespace concbench
