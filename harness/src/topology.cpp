// The only file that talks to hwloc. Every call's result is checked: a topology we could not read
// completely is reported as an error, because a silently wrong core count would mislabel every
// scaling curve the harness produces.
#include "concbench/topology.hpp"

#include <hwloc.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

namespace concbench {

namespace {

[[noreturn]] void fail(const std::string& call, const std::string& detail = {}) {
  std::string msg = "hwloc: " + call + " failed";
  if (!detail.empty()) msg += ": " + detail;
  throw TopologyError(msg);
}

// hwloc reports most failures as -1 with errno set, so the errno text is usually the only clue.
void check(int rc, const char* call) {
  if (rc < 0) {
    const int err = errno;
    fail(call, err != 0 ? std::strerror(err) : std::string("returned ") + std::to_string(rc));
  }
}

// Data and unified caches first: they are the ones a reader compares working-set sizes against.
int cache_type_rank(hwloc_obj_cache_type_t t) {
  switch (t) {
    case HWLOC_OBJ_CACHE_DATA:
      return 0;
    case HWLOC_OBJ_CACHE_UNIFIED:
      return 1;
    case HWLOC_OBJ_CACHE_INSTRUCTION:
      return 2;
  }
  return 3;
}

const char* cache_type_name(hwloc_obj_cache_type_t t) {
  switch (t) {
    case HWLOC_OBJ_CACHE_DATA:
      return "data";
    case HWLOC_OBJ_CACHE_UNIFIED:
      return "unified";
    case HWLOC_OBJ_CACHE_INSTRUCTION:
      return "instruction";
  }
  return "unknown";
}

}  // namespace

// Owns one loaded hwloc topology for the object's whole lifetime. Placement and thread binding
// will be added next to summary() and need the same handle, so nothing here is summary-specific.
struct Topology::Impl {
  hwloc_topology_t topo = nullptr;
  // Only a topology loaded from this machine may be used to bind threads; a synthetic one
  // describes hardware we do not have.
  bool is_this_system = false;

  Impl() {
    // Binding code built against one hwloc ABI and run against another corrupts memory quietly;
    // the major-version check is the one hwloc documents for that.
    if ((hwloc_get_api_version() >> 16) != (HWLOC_API_VERSION >> 16)) {
      fail("hwloc_get_api_version", "runtime library does not match the headers");
    }
    check(hwloc_topology_init(&topo), "hwloc_topology_init");
  }
  ~Impl() {
    if (topo != nullptr) hwloc_topology_destroy(topo);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void load() {
    // Instruction caches are filtered out by default in hwloc 2; the summary promises them.
    check(hwloc_topology_set_icache_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_ALL),
          "hwloc_topology_set_icache_types_filter");
    check(hwloc_topology_load(topo), "hwloc_topology_load");
    check(hwloc_topology_abi_check(topo), "hwloc_topology_abi_check");
  }

  // hwloc answers -1 when a type sits at several depths; summing across them would double-count
  // nested objects, so that case is an error rather than a guess.
  int count(hwloc_obj_type_t type, const char* what) const {
    const int n = hwloc_get_nbobjs_by_type(topo, type);
    if (n < 0) fail("hwloc_get_nbobjs_by_type", std::string(what) + " found at several depths");
    return n;
  }
};

Topology::Topology(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Topology::Topology(Topology&&) noexcept = default;
Topology& Topology::operator=(Topology&&) noexcept = default;
Topology::~Topology() = default;

Topology Topology::host() {
  auto impl = std::make_unique<Impl>();
  impl->load();
  const int this_system = hwloc_topology_is_thissystem(impl->topo);
  check(this_system, "hwloc_topology_is_thissystem");
  impl->is_this_system = this_system == 1;
  return Topology(std::move(impl));
}

Topology Topology::synthetic(const std::string& description) {
  auto impl = std::make_unique<Impl>();
  errno = 0;
  if (hwloc_topology_set_synthetic(impl->topo, description.c_str()) < 0) {
    fail("hwloc_topology_set_synthetic", "invalid description \"" + description + "\"");
  }
  impl->load();
  impl->is_this_system = false;
  return Topology(std::move(impl));
}

TopologySummary Topology::summary() const {
  const Impl& im = *impl_;
  TopologySummary s;
  s.packages = im.count(HWLOC_OBJ_PACKAGE, "packages");
  s.numa_nodes = im.count(HWLOC_OBJ_NUMANODE, "NUMA nodes");
  s.cores = im.count(HWLOC_OBJ_CORE, "cores");
  s.pus = im.count(HWLOC_OBJ_PU, "PUs");
  if (s.pus <= 0) fail("hwloc_get_nbobjs_by_type", "topology has no PUs");

  // Per (level, type): how often each (size, sharing) shape occurs. Hybrid CPUs give one level
  // caches of different sizes (P-core vs E-core L2); the summary reports the most common shape,
  // since a single number per level is what reports and Google Benchmark's context carry.
  using Key = std::pair<int, int>;  // level, type rank
  struct Level {
    hwloc_obj_cache_type_t type{};
    int count = 0;
    std::map<std::pair<uint64_t, int>, int> shapes;
  };
  std::map<Key, Level> levels;

  const int depth = hwloc_topology_get_depth(im.topo);
  if (depth < 1) fail("hwloc_topology_get_depth", "returned " + std::to_string(depth));
  for (int d = 0; d < depth; ++d) {
    const hwloc_obj_type_t type = hwloc_get_depth_type(im.topo, d);
    if (type == static_cast<hwloc_obj_type_t>(-1)) {
      fail("hwloc_get_depth_type", "depth " + std::to_string(d) + " is invalid");
    }
    if (!hwloc_obj_type_is_cache(type)) continue;
    const unsigned n = hwloc_get_nbobjs_by_depth(im.topo, d);
    for (unsigned i = 0; i < n; ++i) {
      const hwloc_obj_t obj = hwloc_get_obj_by_depth(im.topo, d, i);
      if (obj == nullptr || obj->attr == nullptr) {
        fail("hwloc_get_obj_by_depth",
             "no cache object at depth " + std::to_string(d) + " index " + std::to_string(i));
      }
      if (obj->cpuset == nullptr) fail("hwloc_get_obj_by_depth", "cache object has no cpuset");
      const int sharing = hwloc_bitmap_weight(obj->cpuset);
      if (sharing < 0) fail("hwloc_bitmap_weight", "cache cpuset is infinite");
      const auto& attr = obj->attr->cache;
      Level& lv = levels[{static_cast<int>(attr.depth), cache_type_rank(attr.type)}];
      lv.type = attr.type;
      ++lv.count;
      ++lv.shapes[{static_cast<uint64_t>(attr.size), sharing}];
    }
  }

  // std::map already orders by (level, type rank), which is the order the header promises.
  for (const auto& [key, lv] : levels) {
    const auto most_common =
        std::max_element(lv.shapes.begin(), lv.shapes.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; });
    CacheInfo c;
    c.level = key.first;
    c.type = cache_type_name(lv.type);
    c.size_bytes = most_common->first.first;
    c.count = lv.count;
    c.pus_per_cache = most_common->first.second;
    s.caches.push_back(std::move(c));
  }
  return s;
}

void to_json(nlohmann::json& j, const TopologySummary& s) {
  nlohmann::json caches = nlohmann::json::array();
  for (const CacheInfo& c : s.caches) {
    caches.push_back({{"level", c.level},
                      {"type", c.type},
                      {"size_bytes", c.size_bytes},
                      {"count", c.count},
                      {"pus_per_cache", c.pus_per_cache}});
  }
  j = nlohmann::json{{"packages", s.packages},
                     {"numa_nodes", s.numa_nodes},
                     {"cores", s.cores},
                     {"pus", s.pus},
                     {"caches", std::move(caches)}};
}

}  // namespace concbench
