#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "concbench/machine.hpp"

namespace concbench {
namespace {

using nlohmann::json;

class MachineContext : public ::testing::Test {
 protected:
  // Gathering the context times a few thousand counter reads; once per suite is plenty.
  static void SetUpTestSuite() { ctx_ = new json(machine_context()); }
  static void TearDownTestSuite() {
    delete ctx_;
    ctx_ = nullptr;
  }
  static const json& ctx() { return *ctx_; }

  static void expect_string_or_null(const char* key) {
    ASSERT_TRUE(ctx().contains(key)) << key;
    EXPECT_TRUE(ctx()[key].is_string() || ctx()[key].is_null()) << key << ": " << ctx()[key];
  }

 private:
  static json* ctx_;
};

json* MachineContext::ctx_ = nullptr;

TEST_F(MachineContext, IsAnObjectThatSerializes) {
  ASSERT_TRUE(ctx().is_object());
  EXPECT_NO_THROW((void)ctx().dump());
  EXPECT_FALSE(ctx().contains("context_errors")) << ctx()["context_errors"];
}

TEST_F(MachineContext, DescribesTheMachine) {
  ASSERT_TRUE(ctx()["date"].is_string());
  const std::string date = ctx()["date"];
  EXPECT_EQ(date.size(), 20u) << date;  // YYYY-MM-DDTHH:MM:SSZ
  EXPECT_EQ(date.back(), 'Z') << date;
  EXPECT_EQ(date[10], 'T') << date;

  expect_string_or_null("hostname");
  expect_string_or_null("cpu_model");
  ASSERT_TRUE(ctx()["logical_cpus"].is_number_integer());
  EXPECT_GE(ctx()["logical_cpus"].get<int>(), 1);
  ASSERT_TRUE(ctx()["kernel"].is_string());
  EXPECT_FALSE(ctx()["kernel"].get<std::string>().empty());
  expect_string_or_null("cpu_governor");
  ASSERT_TRUE(ctx()["load_average"].is_array());
  EXPECT_EQ(ctx()["load_average"].size(), 3u);
  for (const json& l : ctx()["load_average"]) EXPECT_TRUE(l.is_number());
}

TEST_F(MachineContext, TopologyOrItsError) {
  ASSERT_TRUE(ctx().contains("topology"));
  ASSERT_TRUE(ctx().contains("physical_cores"));
  if (ctx()["topology"].is_null()) {
    ASSERT_TRUE(ctx()["topology_error"].is_string());
    EXPECT_TRUE(ctx()["physical_cores"].is_null());
    return;
  }
  const json& t = ctx()["topology"];
  ASSERT_TRUE(t.is_object());
  for (const char* key : {"packages", "numa_nodes", "cores", "pus"}) {
    EXPECT_TRUE(t[key].is_number_integer()) << key;
  }
  EXPECT_TRUE(t["caches"].is_array());
  EXPECT_GE(t["pus"].get<int>(), 1);
  ASSERT_TRUE(ctx()["physical_cores"].is_number_integer());
  EXPECT_EQ(ctx()["physical_cores"], t["cores"]);
  EXPECT_LE(ctx()["physical_cores"].get<int>(), ctx()["logical_cpus"].get<int>());
}

TEST_F(MachineContext, DescribesTheBuild) {
  const json& c = ctx()["compiler"];
  ASSERT_TRUE(c.is_object());
  ASSERT_TRUE(c["id"].is_string());
  EXPECT_FALSE(c["id"].get<std::string>().empty());
  ASSERT_TRUE(c["version"].is_string());
  EXPECT_FALSE(c["version"].get<std::string>().empty());
  EXPECT_TRUE(c["flags"].is_string());
  expect_string_or_null("build_type");
  expect_string_or_null("git_revision");
  if (ctx()["git_revision"].is_string()) {
    EXPECT_FALSE(ctx()["git_revision"].get<std::string>().empty());
  }
}

TEST_F(MachineContext, VirtualizationAndContainer) {
  ASSERT_TRUE(ctx()["virtualized"].is_boolean());
  ASSERT_TRUE(ctx()["virtualization"].is_string());
  EXPECT_FALSE(ctx()["virtualization"].get<std::string>().empty());
  expect_string_or_null("container");
}

TEST_F(MachineContext, Counters) {
  const json& u = ctx()["counters_unavailable"];
  ASSERT_TRUE(u.is_object()) << u;
  for (const auto& [name, reason] : u.items()) {
    EXPECT_FALSE(name.empty());
    ASSERT_TRUE(reason.is_string()) << name;
    EXPECT_FALSE(reason.get<std::string>().empty()) << name;
  }
  const json& p = ctx()["perf_event_paranoid"];
  EXPECT_TRUE(p.is_number_integer() || p.is_null()) << p;
  ASSERT_TRUE(ctx()["counter_read_cost_ns"].is_number());
  EXPECT_GT(ctx()["counter_read_cost_ns"].get<double>(), 0.0);
  ASSERT_TRUE(ctx()["timer_cost_ns"].is_number());
  EXPECT_GE(ctx()["timer_cost_ns"].get<double>(), 0.0);
}

TEST_F(MachineContext, GoogleBenchmarkKeys) {
  ASSERT_TRUE(ctx()["num_cpus"].is_number_integer());
  EXPECT_EQ(ctx()["num_cpus"], ctx()["logical_cpus"]);
  ASSERT_TRUE(ctx()["mhz_per_cpu"].is_number_integer());
  EXPECT_GE(ctx()["mhz_per_cpu"].get<int>(), 0);
  ASSERT_TRUE(ctx()["cpu_scaling_enabled"].is_boolean());
  if (ctx()["cpu_governor"].is_null()) {
    EXPECT_FALSE(ctx()["cpu_scaling_enabled"].get<bool>());
  }
  ASSERT_TRUE(ctx()["caches"].is_array());
  for (const json& c : ctx()["caches"]) {
    ASSERT_TRUE(c["type"].is_string());
    const std::string type = c["type"];
    EXPECT_TRUE(type == "Data" || type == "Instruction" || type == "Unified") << type;
    EXPECT_TRUE(c["level"].is_number_integer());
    EXPECT_TRUE(c["size"].is_number_integer());
    EXPECT_TRUE(c["num_sharing"].is_number_integer());
  }
  if (ctx()["topology"].is_object()) {
    EXPECT_EQ(ctx()["caches"].size(), ctx()["topology"]["caches"].size());
  }
  ASSERT_TRUE(ctx()["library_build_type"].is_string());
  const std::string lbt = ctx()["library_build_type"];
  EXPECT_TRUE(lbt == "release" || lbt == "debug") << lbt;
}

}  // namespace
}  // namespace concbench
