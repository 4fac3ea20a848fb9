// The report's `context` block. Every probe here is best effort: a report without a CPU model is
// still worth keeping, a report that was never written because /proc looked odd is not. So each
// field is gathered on its own, a field that cannot be determined is null, and nothing escapes
// machine_context().
#include "concbench/machine.hpp"

#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "concbench/clock.hpp"
#include "concbench/counters.hpp"
#include "concbench/plugin.hpp"
#include "concbench/topology.hpp"

// CMake passes these as string literals (target_compile_definitions(... NAME="value")). The
// fallbacks keep the file compilable on its own, e.g. in a quick g++ test build.
#define CONCBENCH_STR2(x) #x
#define CONCBENCH_STR(x) CONCBENCH_STR2(x)

#ifndef CONCBENCH_COMPILER_ID
#if defined(__clang__)
#define CONCBENCH_COMPILER_ID "Clang"
#elif defined(__GNUC__)
#define CONCBENCH_COMPILER_ID "GNU"
#else
#define CONCBENCH_COMPILER_ID "unknown"
#endif
#endif

#ifndef CONCBENCH_COMPILER_VERSION
// Same "major.minor.patch" shape as CMAKE_CXX_COMPILER_VERSION, so reports compare equal no
// matter which way the file was built.
#if defined(__clang__)
#define CONCBENCH_COMPILER_VERSION \
  CONCBENCH_STR(__clang_major__)   \
  "." CONCBENCH_STR(__clang_minor__) "." CONCBENCH_STR(__clang_patchlevel__)
#elif defined(__GNUC__)
#define CONCBENCH_COMPILER_VERSION \
  CONCBENCH_STR(__GNUC__) "." CONCBENCH_STR(__GNUC_MINOR__) "." CONCBENCH_STR(__GNUC_PATCHLEVEL__)
#elif defined(__VERSION__)
#define CONCBENCH_COMPILER_VERSION __VERSION__
#else
#define CONCBENCH_COMPILER_VERSION "unknown"
#endif
#endif

#ifndef CONCBENCH_CXX_FLAGS
#define CONCBENCH_CXX_FLAGS ""
#endif

#ifndef CONCBENCH_BUILD_TYPE
#define CONCBENCH_BUILD_TYPE ""
#endif

namespace concbench {

// Defined in the build tree's generated/git_revision.cpp (cmake/git_revision.cmake), rewritten
// at every build so the revision is the built tree's, not the last configure's.
const char* built_git_revision();

namespace {

using nlohmann::json;

// Strings from /proc, /sys and uname are not guaranteed to be UTF-8, and nlohmann::json throws
// on invalid UTF-8 when the report is dumped - far from here and too late to recover.
std::string printable(std::string s) {
  for (char& c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) c = '?';
  }
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::optional<std::string> read_file(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return ss.str();
}

std::optional<std::string> read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return trim(line);
}

bool file_exists(const char* path) {
  return access(path, F_OK) == 0;
}

// /proc/cpuinfo lists one block per CPU; the first block is enough for model, MHz and flags
// because every field used here is the same on all CPUs of the machines we run on (and where it
// is not, e.g. hybrid cores, the first CPU is what Google Benchmark reports too).
class CpuInfo {
 public:
  CpuInfo() {
    if (auto text = read_file("/proc/cpuinfo")) text_ = std::move(*text);
  }

  std::optional<std::string> field(const std::string& key) const {
    std::istringstream in(text_);
    std::string line;
    while (std::getline(in, line)) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      if (trim(line.substr(0, colon)) == key) return trim(line.substr(colon + 1));
    }
    return std::nullopt;
  }

  bool has_flag(const std::string& flag) const {
    const auto flags = field("flags");
    if (!flags) return false;
    std::istringstream in(*flags);
    std::string f;
    while (in >> f) {
      if (f == flag) return true;
    }
    return false;
  }

 private:
  std::string text_;
};

// Runs one probe; on failure the key becomes null and the reason goes to `context_errors`, so a
// broken probe is visible in the report instead of silently absent.
void guarded(json& ctx, const char* key, const std::function<json()>& probe) {
  try {
    ctx[key] = probe();
  } catch (const std::exception& e) {
    ctx[key] = nullptr;
    ctx["context_errors"][key] = printable(e.what());
  } catch (...) {
    ctx[key] = nullptr;
    ctx["context_errors"][key] = "unknown exception";
  }
}

std::string iso8601_utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  if (gmtime_r(&now, &tm) == nullptr) throw std::runtime_error("gmtime_r failed");
  std::array<char, 32> buf{};
  if (std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
    throw std::runtime_error("strftime failed");
  }
  return buf.data();
}

json hostname() {
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0) return nullptr;
  return printable(buf.data());
}

json kernel() {
  utsname u{};
  if (uname(&u) != 0) return nullptr;
  return printable(std::string(u.sysname) + " " + u.release + " " + u.version + " " + u.machine);
}

int logical_cpus() {
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online >= 1) return static_cast<int>(online);
  const unsigned hc = std::thread::hardware_concurrency();
  return hc >= 1 ? static_cast<int>(hc) : 1;
}

// The CPUs this process may run on: smaller than logical_cpus under taskset or a cgroup cpuset,
// which changes what a "max threads" run means.
json cpus_allowed() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return nullptr;
  return CPU_COUNT(&set);
}

std::optional<std::string> governor() {
  auto g = read_first_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
  if (!g || g->empty()) return std::nullopt;
  return printable(*g);
}

int mhz_per_cpu(const CpuInfo& cpuinfo) {
  if (auto mhz = cpuinfo.field("cpu MHz")) {
    try {
      const double v = std::stod(*mhz);
      if (v > 0) return static_cast<int>(std::lround(v));
    } catch (const std::exception&) {
    }
  }
  // Non-x86 kernels often omit "cpu MHz"; cpufreq's maximum is the next best figure.
  if (auto khz = read_first_line("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")) {
    try {
      const long long v = std::stoll(*khz);
      if (v > 0) return static_cast<int>(v / 1000);
    } catch (const std::exception&) {
    }
  }
  return 0;  // Google Benchmark's schema wants a number; 0 reads as "unknown".
}

#if defined(__x86_64__) || defined(__i386__)
// The hypervisor CPUID leaf names the hypervisor even where DMI is absent (e.g. Firecracker).
std::optional<std::string> cpuid_hypervisor_vendor() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return std::nullopt;
  if ((c & (1u << 31)) == 0) return std::nullopt;  // the "hypervisor present" bit
  __cpuid(0x40000000, a, b, c, d);
  std::array<char, 13> vendor{};
  std::memcpy(vendor.data(), &b, 4);
  std::memcpy(vendor.data() + 4, &c, 4);
  std::memcpy(vendor.data() + 8, &d, 4);
  return printable(trim(vendor.data()));
}
#endif

struct Virtualization {
  bool virtualized = false;
  std::string evidence;
};

Virtualization detect_virtualization(const CpuInfo& cpuinfo) {
  std::vector<std::string> evidence;
  if (cpuinfo.has_flag("hypervisor")) evidence.push_back("cpuinfo flag 'hypervisor'");
#if defined(__x86_64__) || defined(__i386__)
  if (auto vendor = cpuid_hypervisor_vendor(); vendor && !vendor->empty()) {
    evidence.push_back("cpuid hypervisor vendor '" + *vendor + "'");
  }
#endif
  const std::string vendor = read_first_line("/sys/class/dmi/id/sys_vendor").value_or("");
  const std::string product = read_first_line("/sys/class/dmi/id/product_name").value_or("");
  const std::string v = lower(vendor), p = lower(product);
  // Vendors that also sell bare metal (Microsoft Surface, Amazon *.metal) only count when the
  // product says it is virtual.
  const bool dmi_virtual =
      contains(v, "qemu") || contains(p, "qemu") || contains(p, "kvm") || contains(v, "vmware") ||
      contains(p, "vmware") || contains(v, "xen") || contains(p, "hvm domu") ||
      contains(v, "innotek") || contains(p, "virtualbox") || contains(v, "parallels") ||
      contains(p, "bochs") || contains(v, "bhyve") || contains(v, "openstack") ||
      contains(p, "openstack") || contains(v, "google") ||
      (contains(v, "microsoft") && contains(p, "virtual machine")) ||
      (contains(v, "amazon") && !contains(p, "metal"));
  if (dmi_virtual) {
    evidence.push_back("dmi sys_vendor '" + printable(vendor) + "' product_name '" +
                       printable(product) + "'");
  }
  if (auto xen = read_first_line("/sys/hypervisor/type"); xen && !xen->empty()) {
    evidence.push_back("/sys/hypervisor/type '" + printable(*xen) + "'");
  }

  Virtualization result;
  result.virtualized = !evidence.empty();
  if (evidence.empty()) {
    result.evidence = "none found (cpuinfo, cpuid, dmi, /sys/hypervisor)";
  } else {
    for (size_t i = 0; i < evidence.size(); ++i) {
      if (i > 0) result.evidence += "; ";
      result.evidence += evidence[i];
    }
  }
  return result;
}

// Containers share the host kernel, so they do not make timings unrepresentative the way a VM
// does, but they often come with CPU quotas and cpusets; hence a separate field.
json detect_container() {
  std::vector<std::string> hints;
  if (file_exists("/.dockerenv")) hints.push_back("/.dockerenv");
  if (file_exists("/run/.containerenv")) hints.push_back("/run/.containerenv");
  if (const char* c = std::getenv("container"); c != nullptr && *c != '\0') {
    hints.push_back("$container='" + printable(c) + "'");
  }
  if (auto cg = read_file("/proc/1/cgroup")) {
    for (const char* word : {"docker", "kubepods", "containerd", "libpod", "crio", "lxc"}) {
      if (contains(*cg, word)) hints.push_back(std::string("/proc/1/cgroup mentions ") + word);
    }
  }
  if (hints.empty()) return nullptr;
  std::string s;
  for (size_t i = 0; i < hints.size(); ++i) {
    if (i > 0) s += "; ";
    s += hints[i];
  }
  return s;
}

json git_revision() {
  const std::string rev = built_git_revision();
  const std::string l = lower(rev);
  if (rev.empty() || l == "unknown" || contains(l, "notfound")) return nullptr;
  return rev;
}

json build_type() {
  const std::string bt = CONCBENCH_BUILD_TYPE;
  if (bt.empty()) return nullptr;
  return bt;
}

std::string library_build_type() {
  const std::string bt = lower(CONCBENCH_BUILD_TYPE);
  if (bt == "debug") return "debug";
  if (!bt.empty()) return "release";
#ifdef NDEBUG
  return "release";
#else
  return "debug";
#endif
}

// perf_event_paranoid = -1 is a real setting (no restrictions), and also the probe's "unreadable"
// marker, so -1 is only trusted once the file itself says so.
json perf_event_paranoid(const CounterProbe& probe) {
  if (probe.perf_event_paranoid != -1) return probe.perf_event_paranoid;
  if (auto s = read_first_line("/proc/sys/kernel/perf_event_paranoid")) {
    try {
      return std::stoi(*s);
    } catch (const std::exception&) {
    }
  }
  return nullptr;
}

double median(std::vector<int64_t> v) {
  if (v.empty()) return 0.0;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  if (v.size() % 2 == 1) return static_cast<double>(v[mid]);
  const int64_t hi = v[mid];
  const int64_t lo = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
  return (static_cast<double>(lo) + static_cast<double>(hi)) / 2.0;
}

constexpr int kCostSamples = 2000;
constexpr int kCostWarmup = 50;

// Back-to-back now() calls: their difference is the price of one call.
double timer_cost_ns() {
  using clock = std::chrono::steady_clock;
  std::vector<int64_t> samples;
  samples.reserve(kCostSamples);
  for (int i = 0; i < kCostWarmup + kCostSamples; ++i) {
    const auto t0 = clock::now();
    const auto t1 = clock::now();
    if (i >= kCostWarmup) {
      samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    }
  }
  return median(std::move(samples));
}

// The median, not the mean: one preemption during 2000 reads would otherwise dominate. Each
// sample includes one steady_clock::now(), whose price is reported as timer_cost_ns.
double counter_read_cost_ns() {
  using clock = std::chrono::steady_clock;
  ThreadCounters counters;
  std::vector<int64_t> samples;
  samples.reserve(kCostSamples);
  uint32_t sink = 0;
  for (int i = 0; i < kCostWarmup + kCostSamples; ++i) {
    const auto t0 = clock::now();
    const CounterValues v = counters.read();
    const auto t1 = clock::now();
    sink += v.has(Counter::task_clock_ns) ? 1u : 0u;
    if (i >= kCostWarmup) {
      samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    }
  }
  // Keeps the reads observable; read() is out of line anyway, this just removes the doubt.
  [[maybe_unused]] volatile uint32_t keep = sink;
  return median(std::move(samples));
}

const char* gbench_cache_type(const std::string& type) {
  if (type == "data") return "Data";
  if (type == "instruction") return "Instruction";
  return "Unified";
}

void fill_context(json& ctx) {
  const CpuInfo cpuinfo;

  guarded(ctx, "date", [] { return json(iso8601_utc_now()); });
  guarded(ctx, "hostname", [] { return hostname(); });
  guarded(ctx, "cpu_model", [&] {
    // "model name" is x86; some ARM kernels only give "Processor" or "Hardware".
    for (const char* key : {"model name", "Processor", "Hardware"}) {
      if (auto m = cpuinfo.field(key); m && !m->empty()) return json(printable(*m));
    }
    return json(nullptr);
  });
  guarded(ctx, "logical_cpus", [] { return json(logical_cpus()); });
  guarded(ctx, "cpus_allowed", [] { return cpus_allowed(); });
  guarded(ctx, "kernel", [] { return kernel(); });

  std::optional<TopologySummary> topo;
  try {
    topo = Topology::host().summary();
    ctx["topology"] = *topo;
  } catch (const std::exception& e) {
    ctx["topology"] = nullptr;
    ctx["topology_error"] = printable(e.what());
  } catch (...) {
    ctx["topology"] = nullptr;
    ctx["topology_error"] = "unknown exception";
  }
  ctx["physical_cores"] = (topo && topo->cores > 0) ? json(topo->cores) : json(nullptr);

  guarded(ctx, "compiler", [] {
    return json{{"id", CONCBENCH_COMPILER_ID},
                {"version", CONCBENCH_COMPILER_VERSION},
                {"flags", CONCBENCH_CXX_FLAGS}};
  });
  guarded(ctx, "build_type", [] { return build_type(); });
  guarded(ctx, "git_revision", [] { return git_revision(); });
  // Code the run executed that git_revision does not describe.
  guarded(ctx, "plugins", [] { return json(loaded_plugins()); });

  const std::optional<std::string> gov = governor();
  ctx["cpu_governor"] = gov ? json(*gov) : json(nullptr);

  try {
    const Virtualization virt = detect_virtualization(cpuinfo);
    ctx["virtualized"] = virt.virtualized;
    ctx["virtualization"] = virt.evidence;
  } catch (const std::exception& e) {
    ctx["virtualized"] = nullptr;
    ctx["virtualization"] = nullptr;
    ctx["context_errors"]["virtualized"] = printable(e.what());
  }
  guarded(ctx, "container", [] { return detect_container(); });
  guarded(ctx, "load_average", [] {
    std::array<double, 3> load{};
    if (getloadavg(load.data(), 3) != 3) return json(nullptr);
    return json(load);
  });

  guarded(ctx, "counters_unavailable", [] {
    json unavailable = json::object();
    for (const auto& [name, reason] : counter_probe().unavailable) {
      unavailable[printable(name)] = printable(reason);
    }
    return unavailable;
  });
  guarded(ctx, "perf_event_paranoid", [] { return perf_event_paranoid(counter_probe()); });
  guarded(ctx, "timer_cost_ns", [] { return json(timer_cost_ns()); });
  guarded(ctx, "counter_read_cost_ns", [] { return json(counter_read_cost_ns()); });

  // Google Benchmark's context keys, in its shapes.
  guarded(ctx, "num_cpus", [] { return json(logical_cpus()); });
  guarded(ctx, "mhz_per_cpu", [&] { return json(mhz_per_cpu(cpuinfo)); });
  // Unknown counts as "not scaling", as Google Benchmark does: it only warns on evidence.
  ctx["cpu_scaling_enabled"] = gov.has_value() && *gov != "performance";
  guarded(ctx, "caches", [&] {
    json caches = json::array();
    if (topo) {
      for (const CacheInfo& c : topo->caches) {
        caches.push_back({{"type", gbench_cache_type(c.type)},
                          {"level", c.level},
                          {"size", c.size_bytes},
                          {"num_sharing", c.pus_per_cache}});
      }
    }
    return caches;
  });
  guarded(ctx, "library_build_type", [] { return json(library_build_type()); });
}

}  // namespace

json machine_context() {
  json ctx = json::object();
  try {
    fill_context(ctx);
  } catch (const std::exception& e) {
    // Only reachable if the json library itself fails (e.g. out of memory); keep what we have.
    try {
      ctx["context_errors"]["machine_context"] = printable(e.what());
    } catch (...) {
    }
  } catch (...) {
  }
  return ctx;
}

namespace {

struct SpinRound {
  double cpu_per_wall = 0;
  uint64_t rounds = 0;  // summed over the threads
};

// `threads` threads run the same port-bound loop for `seconds`. Four independent multiply
// chains keep one core's multiplier busy, so two threads on the SMT siblings of one core (or on
// vCPUs the host runs on one core) do barely more rounds than one: CPU time alone cannot tell,
// since each sibling's time counts in full.
SpinRound spin_round(int threads, uint64_t span_ns) {
  std::atomic<bool> go{false};
  std::vector<uint64_t> rounds(static_cast<size_t>(threads) * 8, 0);  // a cache line apart
  std::vector<std::thread> ts;
  ts.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i)
    ts.emplace_back([&, i] {
      // Acquire: the start time the caller stored before setting go is visible here.
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      const uint64_t end = monotonic_ns() + span_ns;
      uint64_t a = 1, b = 2, c = 3, d = 4, n = 0;
      while (monotonic_ns() < end) {
        for (int k = 0; k < 1000; ++k) {
          a = a * 6364136223846793005ULL + 1;
          b = b * 2862933555777941757ULL + 3;
          c = c * 3202034522624059733ULL + 5;
          d = d * 3935559000370003845ULL + 7;
        }
        ++n;
      }
      [[maybe_unused]] const volatile uint64_t sink = a ^ b ^ c ^ d;  // the chains must run
      rounds[static_cast<size_t>(i) * 8] = n;
    });
  const CpuTimes c0 = process_cpu_times();
  const uint64_t t0 = monotonic_ns();
  go.store(true, std::memory_order_release);
  for (auto& t : ts) t.join();
  const uint64_t t1 = monotonic_ns();
  const CpuTimes c1 = process_cpu_times();
  SpinRound r;
  const double cpu = static_cast<double>((c1.user_ns - c0.user_ns) + (c1.sys_ns - c0.sys_ns));
  r.cpu_per_wall = t1 > t0 ? cpu / static_cast<double>(t1 - t0) : 0;
  for (uint64_t n : rounds) r.rounds += n;
  return r;
}

}  // namespace

double parallel_capacity(int threads, double seconds) {
  const auto span = static_cast<uint64_t>(seconds * 1e9);
  const SpinRound many = spin_round(threads, span);
  if (threads <= 1) return many.cpu_per_wall;
  // One thread alone right after: the rounds `threads` threads did over what one does is how
  // many cores' worth of work they really got.
  const SpinRound one = spin_round(1, span);
  const double scaling =
      one.rounds > 0 ? static_cast<double>(many.rounds) / static_cast<double>(one.rounds) : 0;
  return std::min(many.cpu_per_wall, scaling);
}

}  // namespace concbench
