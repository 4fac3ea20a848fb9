// Plugins: the example loads into this program (a plugin host, like bench_runner), its workload
// verifies under threads and processes (spawned workers load it themselves), and every way a
// load can fail is one UsageError line.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "concbench/config.hpp"
#include "concbench/kernels.hpp"
#include "concbench/machine.hpp"
#include "concbench/plugin.hpp"
#include "concbench/runner.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

// What load_plugin refuses with, or "" when it loads.
std::string load_error(const std::string& path) {
  try {
    load_plugin(path);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

void expect_one_line_error(const std::string& path, const std::string& part) {
  const std::string err = load_error(path);
  EXPECT_NE(err.find(part), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
}

const Workload& example() {
  EXPECT_EQ(load_error(EXAMPLE_PLUGIN), "");
  const Workload* w = find_workload("example.collatz");
  if (w == nullptr) throw std::runtime_error("example.collatz is not registered");
  return *w;
}

TEST(Plugin, RegistersItsWorkloadAndKernel) {
  const Workload& w = example();
  EXPECT_EQ(w.origin(), "plugin");
  const KernelId id = kernel_id("example.collatz");
  EXPECT_GE(id, kernel_id("false_sharing"));  // after every built-in one
  EXPECT_EQ(kernel_table()[id].name, "example.collatz");
  ASSERT_EQ(loaded_plugins().size(), 1u);
  EXPECT_EQ(machine_context()["plugins"], nlohmann::json(loaded_plugins()));
  EXPECT_EQ(std::getenv(kPluginsEnv), loaded_plugins()[0]);
}

TEST(Plugin, LoadingTwiceIsANoOp) {
  example();
  const size_t kernels = kernel_table().size();
  EXPECT_EQ(load_error(EXAMPLE_PLUGIN), "");
  EXPECT_EQ(kernel_table().size(), kernels);
  EXPECT_EQ(loaded_plugins().size(), 1u);
}

TEST(Plugin, VerifiesUnderThreadsAndProcesses) {
  example();
  for (const char* start : {"fork", "spawn"}) {
    RunConfig c =
        config_from_request({{"plugins", {EXAMPLE_PLUGIN}},
                             {"workloads", "example.collatz"},
                             {"models", "serial,thread_pool,process_pool"},
                             {"workers", "1,2"},
                             {"repetitions", 1},
                             {"params", {{"tasks", 6}, {"units", 50}, {"start", start}}}});
    const auto cells = run_suite(c);
    ASSERT_EQ(cells.size(), 5u);
    for (const auto& cell : cells) {
      SCOPED_TRACE(cell.model + "/" + std::to_string(cell.workers) + " start=" + start);
      EXPECT_EQ(cell.status, "ok") << cell.error;
      EXPECT_EQ(cell.workload_origin, "plugin");
      ASSERT_EQ(cell.repetitions.size(), 1u);
      EXPECT_TRUE(cell.repetitions[0].verified);
      EXPECT_EQ(cell.repetitions[0].tasks, 6u);
    }
  }
}

// The other side of the test above: without the environment variable a spawned worker does not
// know the kernel, so the cell fails instead of verifying.
TEST(Plugin, ASpawnedWorkerNeedsThePluginList) {
  example();
  const std::string saved = std::getenv(kPluginsEnv);
  unsetenv(kPluginsEnv);
  RunConfig c = suite_config("smoke");
  c.workloads = {"example.collatz"};
  c.repetitions = 1;
  c.min_time_s = 0;
  c.params = {{"start", "spawn"}, {"tasks", "2"}, {"units", "10"}};
  const CellResult cell = run_cell({"example.collatz", "process_pool", 1}, c);
  setenv(kPluginsEnv, saved.c_str(), 1);
  EXPECT_NE(cell.status, "ok");
  ASSERT_EQ(cell.repetitions.size(), 1u) << cell.error;
  EXPECT_NE(cell.repetitions[0].failure_samples.at(0).find("bad kernel id"), std::string::npos)
      << cell.repetitions[0].failure_samples.at(0);
}

TEST(Plugin, AFaultFailsTheCell) {
  example();
  RunConfig c = suite_config("smoke");
  c.workloads = {"example.collatz"};
  c.repetitions = 1;
  c.min_time_s = 0;
  c.params = {{"fault", "wrong_checksum"}, {"units", "10"}};
  const CellResult cell = run_cell({"example.collatz", "serial", 1}, c);
  EXPECT_NE(cell.status, "ok");
}

TEST(Plugin, LoadErrorsAreOneLine) {
  expect_one_line_error("/nonexistent/libnothing.so", "no such file");
  expect_one_line_error("/etc/hostname", "--plugin");  // dlerror: not an ELF file
  expect_one_line_error(NO_SYMBOL_PLUGIN, "does not export concbench_plugin_register");
  expect_one_line_error(ABI_PLUGIN, "built for plugin ABI 2");
  expect_one_line_error(THROWS_PLUGIN, "registration failed: this plugin refuses to register");
  expect_one_line_error("", "empty path");
  for (const std::string& p : loaded_plugins())
    EXPECT_EQ(p.find("test_plugin_"), std::string::npos) << p;
}

TEST(Plugin, DuplicateKernelNamesAreRefused) {
  example();
  EXPECT_THROW(register_kernel("example.collatz", kernel_table()[0].fn), UsageError);
  EXPECT_THROW(register_kernel("spin", kernel_table()[0].fn), UsageError);
}

}  // namespace
}  // namespace concbench
