// The one header a plugin includes: what a kernel and a workload are made of, and the entry point
// bench_runner calls when it loads the plugin (`bench_runner run --plugin libmine.so`).
//
//   #include <concbench/user.hpp>
//
//   namespace {
//   concbench::KernelId g_mine;  // ids are handed out at registration, not fixed
//
//   uint64_t mine_kernel(concbench::ExecContext& ctx, const concbench::KernelArgs& a) {
//     uint64_t x = a.seed;
//     for (uint64_t u = 0; u < a.units; ++u) {
//       x = concbench::mix64(x);
//       ctx.checkpoint();  // once per unit: where a model may switch, cancel or time a task
//     }
//     return x;
//   }
//
//   class Mine final : public concbench::PluginWorkload {
//     // name(), description(), params() (start from common_params), generate(): make_task per
//     // task, its steps, and expected[i] = fold(task_checksum_start(t), <each step's result,
//     // computed another way than the kernel computes it>)
//   };
//   }  // namespace
//
//   CONCBENCH_PLUGIN(reg) {
//     g_mine = reg.kernel("mine.kernel", &mine_kernel);
//     reg.workload(std::make_unique<Mine>());
//   }
//
// A plugin is a shared library built against this header only: the concbench functions it calls
// (make_task, common_params, task_checksum_start, spin_state_after, ...) are resolved against the
// bench_runner that loads it, which exports them. Build it with the same compiler and flags as
// that bench_runner (examples/plugin/CMakeLists.txt shows how, against a build tree).
//
// The rules the built-in workloads follow hold for a plugin's too: a task is plain data (steps
// naming kernels by KernelId), because process_pool ships it to another process; the predicted
// checksum must not come from running the kernel, or a model that skips work would verify.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concbench/checksum.hpp"      // mix64, fold, hash_bytes, fill_bytes
#include "concbench/exec_context.hpp"  // ExecContext: checkpoint(), blocking()
#include "concbench/kernels.hpp"       // KernelArgs, KernelFn, step_seed, task_checksum_start...
#include "concbench/params.hpp"        // ParamSpec, Params, UsageError
#include "concbench/task.hpp"          // Task, Step, StepKind, KernelId
#include "concbench/workload.hpp"      // Workload, TaskSet, common_params, make_task

// The version of this interface. A plugin records the one it was compiled with; a bench_runner
// refuses a plugin of another version instead of calling into a layout it does not share.
#define CONCBENCH_PLUGIN_ABI 1

namespace concbench {

// The base of a plugin's workloads: reports record origin "plugin" beside their cells.
class PluginWorkload : public Workload {
 public:
  std::string_view origin() const override { return "plugin"; }
};

// What a plugin registers through. Implemented by the loader (harness/src/plugin_linux.cpp).
class PluginRegistry {
 public:
  // Adds a kernel and returns its KernelId, the one steps name it by. The name must be new
  // (prefix it with the plugin's name); registration order fixes the id, so register the same
  // kernels in the same order every time.
  virtual KernelId kernel(std::string name, KernelFn fn) = 0;
  // Adds a workload; it must derive from PluginWorkload and have a new name.
  virtual void workload(std::unique_ptr<Workload> w) = 0;
  // For CONCBENCH_PLUGIN: why the registration failed (an exception's message).
  virtual void fail(const char* message) noexcept = 0;

 protected:
  ~PluginRegistry() = default;
};

}  // namespace concbench

// The entry point the loader looks up. It returns 0 when registered, -1 when the body threw (the
// message went to reg.fail), and its own ABI version when the loader's differs: then it touches
// nothing, as the registry may not be what it was compiled against.
#define CONCBENCH_PLUGIN_ENTRY concbench_plugin_register

#define CONCBENCH_PLUGIN(registry_var)                                          \
  static void concbench_plugin_body(::concbench::PluginRegistry& registry_var); \
  extern "C" __attribute__((visibility("default"))) int CONCBENCH_PLUGIN_ENTRY( \
      ::concbench::PluginRegistry* reg, int abi_version) {                      \
    if (abi_version != CONCBENCH_PLUGIN_ABI) return CONCBENCH_PLUGIN_ABI;       \
    try {                                                                       \
      concbench_plugin_body(*reg);                                              \
      return 0;                                                                 \
    } catch (const std::exception& e) {                                         \
      reg->fail(e.what());                                                      \
    } catch (...) {                                                             \
      reg->fail("an exception that is not a std::exception");                   \
    }                                                                           \
    return -1;                                                                  \
  }                                                                             \
  static void concbench_plugin_body(::concbench::PluginRegistry& registry_var)
