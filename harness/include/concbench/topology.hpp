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

 private:
  struct Impl;
  explicit Topology(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

void to_json(nlohmann::json& j, const TopologySummary& s);

}  // namespace concbench
