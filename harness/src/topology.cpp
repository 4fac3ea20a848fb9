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
#include <tuple>
#include <utility>

#include "concbench/params.hpp"

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
  // The PUs placement may use: for the host, the CPUs the OS allows (cgroup cpuset) and the
  // process's own affinity (taskset, numactl) both hold, so pinning never escapes what the user
  // confined the run to; for a synthetic topology, every PU. Null means every PU.
  hwloc_bitmap_t usable = nullptr;

  Impl() {
    // Binding code built against one hwloc ABI and run against another corrupts memory quietly;
    // the major-version check is the one hwloc documents for that.
    if ((hwloc_get_api_version() >> 16) != (HWLOC_API_VERSION >> 16)) {
      fail("hwloc_get_api_version", "runtime library does not match the headers");
    }
    check(hwloc_topology_init(&topo), "hwloc_topology_init");
  }
  ~Impl() {
    if (usable != nullptr) hwloc_bitmap_free(usable);
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

  // HWLOC_CPUBIND_PROCESS on Linux is the union of every thread's affinity, which is what
  // taskset sets. If it cannot be read, placement falls back to the allowed set; if the two do
  // not intersect (affinity outside the cgroup, which the kernel does not allow), likewise.
  void limit_to_process_binding() {
    hwloc_const_cpuset_t allowed = hwloc_topology_get_allowed_cpuset(topo);
    if (allowed == nullptr) return;
    usable = hwloc_bitmap_dup(allowed);
    if (usable == nullptr) fail("hwloc_bitmap_dup", "out of memory");
    hwloc_bitmap_t bound = hwloc_bitmap_alloc();
    if (bound == nullptr) fail("hwloc_bitmap_alloc", "out of memory");
    if (hwloc_get_cpubind(topo, bound, HWLOC_CPUBIND_PROCESS) == 0 &&
        hwloc_bitmap_intersects(usable, bound) == 1)
      check(hwloc_bitmap_and(usable, usable, bound), "hwloc_bitmap_and");
    hwloc_bitmap_free(bound);
  }

  bool is_usable(unsigned pu) const {
    return usable == nullptr || hwloc_bitmap_isset(usable, pu) == 1;
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
  if (impl->is_this_system) impl->limit_to_process_binding();
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

Placement Placement::parse(const std::string& text) {
  Placement p;
  if (text == "compact") return p;
  if (text == "scatter") {
    p.policy = Policy::scatter;
    return p;
  }
  if (text.rfind("list:", 0) == 0) {
    p.policy = Policy::list;
    std::string rest = text.substr(5);
    size_t start = 0;
    while (true) {
      const size_t comma = rest.find(',', start);
      const std::string item =
          rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      const int64_t v = parse_int(item, "--pin list");
      if (v < 0 || v > 1'000'000) throw UsageError("--pin list: " + item + " is not a PU index");
      p.list.push_back(static_cast<unsigned>(v));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return p;
  }
  throw UsageError("--pin: '" + text + "' is not compact, scatter or list:N,M,...");
}

std::string Placement::to_string() const {
  switch (policy) {
    case Policy::compact:
      return "compact";
    case Policy::scatter:
      return "scatter";
    case Policy::list: {
      std::string s = "list:";
      for (size_t i = 0; i < list.size(); ++i) {
        if (i) s += ',';
        s += std::to_string(list[i]);
      }
      return s;
    }
  }
  return "?";
}

namespace {

// Rank of `obj` among the objects of `type` that lie inside `container` (by cpuset), in logical
// order: "the second L3 of this NUMA node".
int rank_within(hwloc_topology_t topo, hwloc_const_cpuset_t container, hwloc_obj_t obj,
                hwloc_obj_type_t type) {
  if (obj == nullptr) return 0;
  int rank = 0;
  for (hwloc_obj_t o = hwloc_get_next_obj_by_type(topo, type, nullptr); o != nullptr;
       o = hwloc_get_next_obj_by_type(topo, type, o)) {
    if (o->logical_index >= obj->logical_index) break;
    if (container == nullptr || hwloc_bitmap_isincluded(o->cpuset, container)) ++rank;
  }
  return rank;
}

hwloc_obj_t numa_of(hwloc_topology_t topo, unsigned pu) {
  for (hwloc_obj_t n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, nullptr); n != nullptr;
       n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n))
    if (n->cpuset != nullptr && hwloc_bitmap_isset(n->cpuset, pu)) return n;
  return nullptr;
}

hwloc_obj_t pu_obj(hwloc_topology_t topo, unsigned os_index) {
  hwloc_obj_t pu = hwloc_get_pu_obj_by_os_index(topo, os_index);
  if (pu == nullptr)
    throw UsageError("PU " + std::to_string(os_index) + " does not exist on this topology");
  return pu;
}

struct Bitmap {
  hwloc_bitmap_t b = hwloc_bitmap_alloc();
  Bitmap() {
    if (b == nullptr) fail("hwloc_bitmap_alloc", "out of memory");
  }
  ~Bitmap() { hwloc_bitmap_free(b); }
  Bitmap(const Bitmap&) = delete;
  Bitmap& operator=(const Bitmap&) = delete;
};

}  // namespace

std::vector<unsigned> Topology::pus() const {
  std::vector<unsigned> out;
  for (hwloc_obj_t o = hwloc_get_next_obj_by_type(impl_->topo, HWLOC_OBJ_PU, nullptr); o != nullptr;
       o = hwloc_get_next_obj_by_type(impl_->topo, HWLOC_OBJ_PU, o))
    out.push_back(o->os_index);
  if (out.empty()) fail("hwloc_get_next_obj_by_type", "topology has no PUs");
  return out;
}

int Topology::numa_nodes() const {
  return impl_->count(HWLOC_OBJ_NUMANODE, "NUMA nodes");
}

int Topology::numa_node_of(unsigned pu) const {
  hwloc_obj_t n = numa_of(impl_->topo, pu);
  return n == nullptr ? -1 : static_cast<int>(n->os_index);
}

std::vector<unsigned> Topology::place(const Placement& p, int workers) const {
  hwloc_topology_t topo = impl_->topo;
  std::vector<unsigned> order;
  if (p.policy == Placement::Policy::list) {
    if (p.list.empty()) throw UsageError("--pin list: no PUs given");
    for (unsigned pu : p.list) {
      pu_obj(topo, pu);  // throws for a PU that does not exist
      if (!impl_->is_usable(pu))
        throw UsageError("--pin list: PU " + std::to_string(pu) +
                         " is outside the CPUs this process may use (taskset, cgroup)");
    }
    order = p.list;
  } else if (p.policy == Placement::Policy::compact) {
    order = pus();  // logical order: siblings, then cores of one cache, then the next cache...
  } else {
    // Scatter: sort PUs by their rank at each level, the outermost level varying fastest, so
    // consecutive workers land in different packages, then NUMA nodes, then L3 domains, then
    // cores; SMT siblings come last (rank 1 of every core after rank 0 of all of them).
    using Key = std::tuple<int, int, int, int, int, unsigned>;
    std::vector<std::pair<Key, unsigned>> keyed;
    for (unsigned os : pus()) {
      hwloc_obj_t pu = pu_obj(topo, os);
      hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, pu);
      hwloc_obj_t numa = numa_of(topo, os);
      hwloc_obj_t l3 = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_L3CACHE, pu);
      hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_CORE, pu);
      hwloc_const_cpuset_t pkg_set = pkg ? pkg->cpuset : nullptr;
      hwloc_const_cpuset_t numa_set = numa ? numa->cpuset : pkg_set;
      hwloc_const_cpuset_t l3_set = l3 ? l3->cpuset : numa_set;
      const int pkg_rank = pkg ? static_cast<int>(pkg->logical_index) : 0;
      const int numa_rank = rank_within(topo, pkg_set, numa, HWLOC_OBJ_NUMANODE);
      const int l3_rank = rank_within(topo, numa_set, l3, HWLOC_OBJ_L3CACHE);
      const int core_rank = rank_within(topo, l3_set, core, HWLOC_OBJ_CORE);
      const int smt_rank = rank_within(topo, core ? core->cpuset : nullptr, pu, HWLOC_OBJ_PU);
      keyed.push_back(
          {Key{smt_rank, core_rank, l3_rank, numa_rank, pkg_rank, pu->logical_index}, os});
    }
    std::sort(keyed.begin(), keyed.end());
    for (const auto& [k, os] : keyed) order.push_back(os);
  }
  // compact and scatter keep their order among the PUs this process may use.
  std::erase_if(order, [&](unsigned pu) { return !impl_->is_usable(pu); });
  if (order.empty()) fail("Topology::place", "no usable PU");
  std::vector<unsigned> out;
  for (int w = 0; w < workers; ++w) out.push_back(order[static_cast<size_t>(w) % order.size()]);
  return out;
}

std::string Topology::bind_thread(unsigned pu) const {
  if (!impl_->is_this_system) return "not this machine's topology (synthetic)";
  if (hwloc_get_pu_obj_by_os_index(impl_->topo, pu) == nullptr)
    return "PU " + std::to_string(pu) + " does not exist";
  Bitmap set;
  if (hwloc_bitmap_only(set.b, pu) < 0) return "hwloc_bitmap_only failed";
  errno = 0;
  if (hwloc_set_cpubind(impl_->topo, set.b, HWLOC_CPUBIND_THREAD | HWLOC_CPUBIND_STRICT) < 0)
    return std::string("hwloc_set_cpubind refused: ") + std::strerror(errno);
  return "";
}

std::string Topology::unbind_thread() const {
  if (!impl_->is_this_system) return "not this machine's topology (synthetic)";
  // Back to where the process was allowed to run, not to every PU of the machine.
  hwloc_const_cpuset_t all =
      impl_->usable ? impl_->usable : hwloc_topology_get_allowed_cpuset(impl_->topo);
  if (all == nullptr) return "hwloc_topology_get_allowed_cpuset returned nothing";
  errno = 0;
  if (hwloc_set_cpubind(impl_->topo, all, HWLOC_CPUBIND_THREAD) < 0)
    return std::string("hwloc_set_cpubind refused: ") + std::strerror(errno);
  return "";
}

std::string Topology::bind_memory_near(unsigned pu) const {
  if (!impl_->is_this_system) return "not this machine's topology (synthetic)";
  hwloc_obj_t node = numa_of(impl_->topo, pu);
  if (node == nullptr || node->nodeset == nullptr)
    return "PU " + std::to_string(pu) + " has no NUMA node";
  errno = 0;
  if (hwloc_set_membind(impl_->topo, node->nodeset, HWLOC_MEMBIND_BIND,
                        HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) < 0)
    return std::string("hwloc_set_membind refused: ") + std::strerror(errno);
  return "";
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
