#include <dlfcn.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "concbench/plugin.hpp"
#include "concbench/user.hpp"

namespace concbench {
namespace {

namespace fs = std::filesystem;

std::mutex g_mu;  // guards g_loaded and serializes loads
std::vector<std::string> g_loaded;

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

class Registry final : public PluginRegistry {
 public:
  KernelId kernel(std::string name, KernelFn fn) override {
    return register_kernel(std::move(name), fn);
  }
  void workload(std::unique_ptr<Workload> w) override {
    if (!w) throw UsageError("a null workload");
    if (w->origin() != "plugin")
      throw UsageError("workload '" + std::string(w->name()) +
                       "' does not derive from concbench::PluginWorkload");
    register_workload(std::move(w));
  }
  void fail(const char* message) noexcept override {
    try {
      error = message ? message : "";
    } catch (...) {
    }
  }
  std::string error;
};

using EntryFn = int (*)(PluginRegistry*, int);

}  // namespace

void load_plugin(const std::string& path) {
  const std::string what = "--plugin " + path;
  if (path.empty()) throw UsageError("--plugin: empty path");
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) throw UsageError(what + ": no such file");
  if (!fs::is_regular_file(st)) throw UsageError(what + ": not a file");
  const std::string canon = fs::canonical(path, ec).string();
  if (ec) throw UsageError(what + ": " + ec.message());
  // The list crosses to spawned workers colon-separated.
  if (canon.find(':') != std::string::npos) throw UsageError(what + ": a path with ':'");

  std::lock_guard lock(g_mu);
  if (std::find(g_loaded.begin(), g_loaded.end(), canon) != g_loaded.end()) return;
  if (dlsym(RTLD_DEFAULT, "concbench_plugin_host_abi") == nullptr)
    throw UsageError(what +
                     ": this program does not export concbench's symbols (plugins load into "
                     "bench_runner only)");
  // RTLD_NOW: an unresolved symbol fails here, with its name, not in the middle of a run.
  // RTLD_LOCAL: one plugin's symbols cannot satisfy, or collide with, another's.
  void* handle = dlopen(canon.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    throw UsageError("--plugin: " + one_line(err ? err : canon + ": cannot load"));
  }
  void* sym = dlsym(handle, "concbench_plugin_register");
  if (sym == nullptr) {
    dlclose(handle);
    throw UsageError(what +
                     ": does not export concbench_plugin_register (did you use CONCBENCH_PLUGIN?)");
  }
  const auto entry = reinterpret_cast<EntryFn>(sym);
  Registry reg;
  const int rc = entry(&reg, CONCBENCH_PLUGIN_ABI);
  if (rc > 0) {
    dlclose(handle);  // it registered nothing
    throw UsageError(what + ": built for plugin ABI " + std::to_string(rc) +
                     ", this program has ABI " + std::to_string(CONCBENCH_PLUGIN_ABI) +
                     " (rebuild it against this build)");
  }
  // From here on the library stays loaded, even on failure: a kernel it registered points into
  // it, and the kernel table never forgets an entry.
  if (rc < 0) throw UsageError(what + ": registration failed: " + one_line(reg.error));
  g_loaded.push_back(canon);
  std::string joined;
  for (const std::string& p : g_loaded) joined += (joined.empty() ? "" : ":") + p;
  // Not thread-safe against getenv elsewhere; loads happen before a run starts any thread.
  setenv(kPluginsEnv, joined.c_str(), 1);
}

std::vector<std::string> loaded_plugins() {
  std::lock_guard lock(g_mu);
  return g_loaded;
}

void load_plugins_from_env() {
  const char* env = std::getenv(kPluginsEnv);
  if (env == nullptr) return;
  const std::string list = env;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t colon = std::min(list.find(':', start), list.size());
    if (colon > start) load_plugin(list.substr(start, colon - start));
    start = colon + 1;
  }
}

}  // namespace concbench
