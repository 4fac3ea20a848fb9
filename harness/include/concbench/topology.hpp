// The machine's processing-unit topology, through hwloc.
//
// Every hwloc call in the project lives in topology.cpp (as oneTBB keeps them in tbbbind), and
// every hwloc return code is checked there: a failure becomes a TopologyError with the call's
// name, never a silently half-filled summary.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace concbench {

class TopologyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CacheInfo {
  int level = 0;     // 1, 2, 3...
  std::string type;  // "data", "instruction" or "unified"
  uint64_t size_bytes = 0;
  int count = 0;          // how many such caches the machine has
  int pus_per_cache = 0;  // PUs that share one of them
};

// Where pinned workers go. compact fills PUs in topology order, so neighbours share caches.
// scatter spreads workers across packages, then NUMA nodes, then L3 domains, then cores, and only
// then uses SMT siblings. list names OS PU indexes. With more workers than PUs, placement wraps
// around.
struct Placement {
  enum class Policy { compact, scatter, list };
  Policy policy = Policy::compact;
  std::vector<unsigned> list;  // OS indexes, for Policy::list

  // "compact", "scatter" or "list:0,2,4"; throws UsageError (params.hpp) otherwise.
  static Placement parse(const std::string& text);
  std::string to_string() const;
};

struct TopologySummary {
  int packages = 0;
  int numa_nodes = 0;
  int cores = 0;
  int pus = 0;
  std::vector<CacheInfo> caches;  // one entry per (level, type), data before instruction
};

class Topology {
 public:
  // The machine this process runs on.
  static Topology host();
  // A synthetic topology such as "pack:2 numa:2 l3:2 core:4 pu:2": nothing is bound with it;
  // it exists so placement logic can be tested on machines we do not have.
  static Topology synthetic(const std::string& description);

  Topology(Topology&&) noexcept;
  Topology& operator=(Topology&&) noexcept;
  ~Topology();

  TopologySummary summary() const;

  // OS indexes of the PUs, in topology (logical) order.
  std::vector<unsigned> pus() const;
  // The PU (OS index) of each of `workers` workers. Pure: computed from the topology object, so
  // it works on synthetic topologies. On the host only PUs the process may use (cgroup and
  // affinity, e.g. under taskset) are placed on. Throws UsageError when a listed PU does not
  // exist or is outside that set.
  std::vector<unsigned> place(const Placement& p, int workers) const;
  // The NUMA node (OS index) whose cpuset holds PU `pu`, or -1 if none does.
  int numa_node_of(unsigned pu) const;
  int numa_nodes() const;

  // Binds the calling thread to PU `pu`. Returns "" on success, else why binding was refused
  // (a synthetic topology always refuses: it is not this machine).
  std::string bind_thread(unsigned pu) const;
  // Lets the calling thread run on every PU the process may use again (undoes bind_thread).
  std::string unbind_thread() const;
  // Makes the calling thread's future allocations come from PU `pu`'s NUMA node, so the memory
  // a worker touches first is local to it. "" on success, else the reason.
  std::string bind_memory_near(unsigned pu) const;

 private:
  struct Impl;
  explicit Topology(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

void to_json(nlohmann::json& j, const TopologySummary& s);

}  // namespace concbench
