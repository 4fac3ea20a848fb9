#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "concbench/params.hpp"
#include "concbench/topology.hpp"

namespace concbench {
namespace {

const CacheInfo* find_cache(const TopologySummary& s, int level, const std::string& type) {
  for (const CacheInfo& c : s.caches) {
    if (c.level == level && c.type == type) return &c;
  }
  return nullptr;
}

TEST(Topology, SyntheticTwoPackagesWithNumaAndL3) {
  // numa:2 under each package gives 4 nodes; l3:2 under each node gives 8 L3s of 4 cores x 2 PUs.
  const TopologySummary s = Topology::synthetic("pack:2 numa:2 l3:2 core:4 pu:2").summary();
  EXPECT_EQ(s.packages, 2);
  EXPECT_EQ(s.numa_nodes, 4);
  EXPECT_EQ(s.cores, 32);
  EXPECT_EQ(s.pus, 64);
  ASSERT_EQ(s.caches.size(), 1u);
  const CacheInfo* l3 = find_cache(s, 3, "unified");
  ASSERT_NE(l3, nullptr);
  EXPECT_EQ(l3->count, 8);
  EXPECT_EQ(l3->pus_per_cache, 8);
  EXPECT_GT(l3->size_bytes, 0u);
}

TEST(Topology, SyntheticTinyHasNoCaches) {
  const TopologySummary s = Topology::synthetic("pack:1 core:2 pu:1").summary();
  EXPECT_EQ(s.packages, 1);
  EXPECT_EQ(s.numa_nodes, 1);  // hwloc always adds one NUMA node to hold the memory
  EXPECT_EQ(s.cores, 2);
  EXPECT_EQ(s.pus, 2);
  EXPECT_TRUE(s.caches.empty());
}

TEST(Topology, SyntheticCacheLevelsAreSorted) {
  const TopologySummary s =
      Topology::synthetic("pack:1 l3:1 l2:2 l1d:1 l1i:1 core:1 pu:2").summary();
  ASSERT_EQ(s.caches.size(), 4u);
  EXPECT_EQ(s.caches[0].level, 1);
  EXPECT_EQ(s.caches[0].type, "data");
  EXPECT_EQ(s.caches[1].level, 1);
  EXPECT_EQ(s.caches[1].type, "instruction");
  EXPECT_EQ(s.caches[2].level, 2);
  EXPECT_EQ(s.caches[2].type, "unified");
  EXPECT_EQ(s.caches[3].level, 3);
  EXPECT_EQ(s.caches[3].type, "unified");
  EXPECT_EQ(s.caches[0].count, 2);
  EXPECT_EQ(s.caches[0].pus_per_cache, 2);
  EXPECT_EQ(s.caches[2].count, 2);
  EXPECT_EQ(s.caches[3].count, 1);
  EXPECT_EQ(s.caches[3].pus_per_cache, 4);
}

TEST(Topology, SyntheticBeyondOneBitmapWord) {
  // 256 PUs needs several bitmap words, which is where a 64-bit shortcut would break.
  const TopologySummary s = Topology::synthetic("pack:2 numa:2 l3:4 core:4 pu:4").summary();
  EXPECT_EQ(s.packages, 2);
  EXPECT_EQ(s.numa_nodes, 4);
  EXPECT_EQ(s.cores, 64);
  EXPECT_EQ(s.pus, 256);
  const CacheInfo* l3 = find_cache(s, 3, "unified");
  ASSERT_NE(l3, nullptr);
  EXPECT_EQ(l3->count, 16);
  EXPECT_EQ(l3->pus_per_cache, 16);
}

TEST(Topology, MalformedDescriptionThrows) {
  EXPECT_THROW(Topology::synthetic("pack:two core:banana"), TopologyError);
  EXPECT_THROW(Topology::synthetic("not a topology"), TopologyError);
  try {
    Topology::synthetic("pack:two");
    FAIL() << "expected TopologyError";
  } catch (const TopologyError& e) {
    EXPECT_NE(std::string(e.what()).find("hwloc_topology_set_synthetic"), std::string::npos)
        << e.what();
  }
}

TEST(Topology, HostMatchesTheOs) {
  const TopologySummary s = Topology::host().summary();
  EXPECT_GE(s.pus, 1);
  EXPECT_GE(s.cores, 1);
  EXPECT_LE(s.cores, s.pus);
  EXPECT_GE(s.numa_nodes, 1);
  // hwloc shows the PUs this process may use (cgroup cpuset), which lies between the affinity
  // mask and the online count; without restrictions all three agree.
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  ASSERT_GE(online, 1);
  EXPECT_LE(s.pus, online);
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    EXPECT_GE(s.pus, CPU_COUNT(&set));
  }
  for (const CacheInfo& c : s.caches) {
    EXPECT_GE(c.level, 1);
    EXPECT_GT(c.count, 0);
    EXPECT_GE(c.pus_per_cache, 1);
    EXPECT_LE(c.pus_per_cache, s.pus);
  }
}

TEST(Topology, MovedFromTopologyIsReplaced) {
  Topology a = Topology::synthetic("pack:1 core:2 pu:1");
  Topology b = Topology::synthetic("pack:2 core:2 pu:2");
  a = std::move(b);
  EXPECT_EQ(a.summary().pus, 8);
}

TEST(Topology, JsonHasAllFields) {
  const TopologySummary s = Topology::synthetic("pack:2 numa:2 l3:2 core:4 pu:2").summary();
  const nlohmann::json j = s;
  const nlohmann::json back = nlohmann::json::parse(j.dump());
  for (const char* key : {"packages", "numa_nodes", "cores", "pus", "caches"}) {
    EXPECT_TRUE(back.contains(key)) << key;
  }
  EXPECT_EQ(back["packages"], 2);
  EXPECT_EQ(back["numa_nodes"], 4);
  EXPECT_EQ(back["cores"], 32);
  EXPECT_EQ(back["pus"], 64);
  ASSERT_TRUE(back["caches"].is_array());
  ASSERT_EQ(back["caches"].size(), 1u);
  const nlohmann::json& c = back["caches"][0];
  EXPECT_EQ(c["level"], 3);
  EXPECT_EQ(c["type"], "unified");
  EXPECT_EQ(c["count"], 8);
  EXPECT_EQ(c["pus_per_cache"], 8);
  EXPECT_TRUE(c["size_bytes"].is_number_unsigned());
  EXPECT_EQ(c["size_bytes"].get<uint64_t>(), s.caches[0].size_bytes);
}

// ---- placement, computed on synthetic topologies (nothing is bound) ----
// In a synthetic topology PU OS indexes follow the logical order, so for
// "pack:2 numa:2 l3:2 core:4 pu:2" PU = pkg*32 + numa*16 + l3*8 + core*2 + smt.

TEST(Placement, ParsesPoliciesAndRefusesGarbage) {
  EXPECT_EQ(Placement::parse("compact").policy, Placement::Policy::compact);
  EXPECT_EQ(Placement::parse("scatter").policy, Placement::Policy::scatter);
  const Placement l = Placement::parse("list:0,2,4");
  EXPECT_EQ(l.policy, Placement::Policy::list);
  EXPECT_EQ(l.list, (std::vector<unsigned>{0, 2, 4}));
  EXPECT_EQ(l.to_string(), "list:0,2,4");
  for (const char* bad : {"", "spread", "list:", "list:1,,2", "list:-1", "list:a", "list:1.5"})
    EXPECT_THROW(Placement::parse(bad), UsageError) << bad;
}

TEST(Placement, CompactFillsPusInTopologyOrder) {
  const Topology t = Topology::synthetic("pack:2 numa:2 l3:2 core:4 pu:2");
  const auto p = t.place(Placement::parse("compact"), 5);
  EXPECT_EQ(p, (std::vector<unsigned>{0, 1, 2, 3, 4}));  // SMT siblings, then the next core
}

TEST(Placement, ScatterSpreadsPackagesThenNumaThenL3ThenCoresThenSmt) {
  const Topology t = Topology::synthetic("pack:2 numa:2 l3:2 core:4 pu:2");
  const auto p = t.place(Placement::parse("scatter"), 64);
  const std::vector<unsigned> first = {0, 32, 16, 48, 8, 40, 24, 56, 2, 34};
  EXPECT_EQ(std::vector<unsigned>(p.begin(), p.begin() + 10), first);
  // No SMT sibling (odd PU) before every core has one worker.
  for (int w = 0; w < 32; ++w) EXPECT_EQ(p[static_cast<size_t>(w)] % 2, 0u) << w;
  for (int w = 32; w < 64; ++w) EXPECT_EQ(p[static_cast<size_t>(w)] % 2, 1u) << w;
  std::set<unsigned> distinct(p.begin(), p.end());
  EXPECT_EQ(distinct.size(), 64u);
  // More workers than PUs wrap around.
  EXPECT_EQ(t.place(Placement::parse("scatter"), 65)[64], 0u);
}

TEST(Placement, TwoCoreMachine) {
  const Topology t = Topology::synthetic("pack:1 core:2 pu:1");
  EXPECT_EQ(t.place(Placement::parse("compact"), 2), (std::vector<unsigned>{0, 1}));
  EXPECT_EQ(t.place(Placement::parse("scatter"), 3), (std::vector<unsigned>{0, 1, 0}));
}

TEST(Placement, ScatterOn256Pus) {
  const Topology t = Topology::synthetic("pack:2 numa:2 l3:4 core:4 pu:4");
  ASSERT_EQ(t.summary().pus, 256);
  const auto p = t.place(Placement::parse("scatter"), 256);
  // PU = pkg*128 + numa*64 + l3*16 + core*4 + smt.
  auto pkg = [](unsigned pu) { return pu / 128; };
  auto numa = [](unsigned pu) { return pu / 64; };
  auto l3 = [](unsigned pu) { return pu / 16; };
  auto core = [](unsigned pu) { return pu / 4; };
  auto distinct = [&](int n, auto key) {
    std::set<unsigned> s;
    for (int w = 0; w < n; ++w) s.insert(key(p[static_cast<size_t>(w)]));
    return s.size();
  };
  EXPECT_EQ(distinct(2, pkg), 2u);
  EXPECT_EQ(distinct(4, numa), 4u);
  EXPECT_EQ(distinct(16, l3), 16u);
  EXPECT_EQ(distinct(64, core), 64u);  // every core before any SMT sibling
  EXPECT_EQ(std::set<unsigned>(p.begin(), p.end()).size(), 256u);
  // NUMA node of each worker's PU, as used for first-touch memory.
  EXPECT_EQ(t.numa_nodes(), 4);
  EXPECT_EQ(t.numa_node_of(p[1]), static_cast<int>(numa(p[1])));
}

TEST(Placement, ListNamesPusAndRefusesMissingOnes) {
  const Topology t = Topology::synthetic("pack:1 core:4 pu:1");
  EXPECT_EQ(t.place(Placement::parse("list:3,1"), 3), (std::vector<unsigned>{3, 1, 3}));
  EXPECT_THROW(t.place(Placement::parse("list:0,9"), 2), UsageError);
}

TEST(Placement, SyntheticTopologiesNeverBind) {
  const Topology t = Topology::synthetic("pack:1 core:2 pu:1");
  EXPECT_FALSE(t.bind_thread(0).empty());
  EXPECT_FALSE(t.bind_memory_near(0).empty());
}

TEST(Placement, HostBindingPinsTheCallingThread) {
  const Topology t = Topology::host();
  const unsigned last = t.pus().back();
  std::string err;
  int cpu = -1;
  std::thread th([&] {
    err = t.bind_thread(last);
    cpu = sched_getcpu();
  });
  th.join();
  if (!err.empty()) GTEST_SKIP() << "binding refused here: " << err;
  EXPECT_EQ(cpu, static_cast<int>(last));
}

// Under `taskset -c N` a pinned pool must stay on N: hwloc can bind a thread to any CPU of the
// cgroup, so placement has to honour the process's affinity itself. Checked in a forked child,
// which narrows its own affinity to the last CPU it may use.
TEST(Placement, HostPlacementStaysInsideTheProcessAffinity) {
  cpu_set_t mine;
  CPU_ZERO(&mine);
  ASSERT_EQ(sched_getaffinity(0, sizeof mine, &mine), 0);
  if (CPU_COUNT(&mine) < 2) GTEST_SKIP() << "needs two CPUs to narrow the affinity to one";
  int only = -1, other = -1;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &mine)) other = only, only = c;  // the last CPU, and one before it
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(only, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) _exit(10);
    const Topology t = Topology::host();
    const auto u = static_cast<unsigned>(only);
    if (t.place(Placement::parse("compact"), 3) != std::vector<unsigned>{u, u, u}) _exit(11);
    if (t.place(Placement::parse("scatter"), 2) != std::vector<unsigned>{u, u}) _exit(12);
    try {
      t.place(Placement::parse("list:" + std::to_string(other)), 1);
      _exit(13);
    } catch (const UsageError&) {
    }
    if (!t.bind_thread(u).empty() || !t.unbind_thread().empty()) _exit(14);
    cpu_set_t after;
    CPU_ZERO(&after);
    if (sched_getaffinity(0, sizeof after, &after) != 0 || CPU_COUNT(&after) != 1 ||
        !CPU_ISSET(only, &after))
      _exit(15);  // unbinding must not widen the affinity past what the process was given
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "10 setaffinity, 11 compact, 12 scatter, 13 list accepted, 14 bind, 15 unbind widened";
  // The parent's own topology still places on every CPU.
  EXPECT_EQ(Topology::host().place(Placement::parse("compact"), 2).size(), 2u);
}

}  // namespace
}  // namespace concbench
