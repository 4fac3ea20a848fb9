// Linux implementation of counters.hpp: perf_event_open groups per thread, plus
// getrusage(RUSAGE_THREAD) for the voluntary/involuntary context-switch split.
//
// Layout of the work:
//   * counter_probe() runs once per process (function-local static) on whichever thread first
//     asks. It opens every event on that thread to learn what the machine can count and why
//     not, then works out a Plan: whether kernel mode must be excluded, and which members can
//     share a group with their leader.
//   * ThreadCounters opens only what the Plan says is available, so a machine without a PMU
//     pays no syscalls for hardware events, and it never throws: an open that fails at runtime
//     just leaves that counter unavailable in this object's reads.
//   * ThreadCounters::read() costs one read() per open group plus one getrusage(): normally
//     three groups (task-clock alone, the other software events, the hardware events; see the
//     event table for why task-clock is alone), two on a machine without a PMU. Reads keep each
//     event's raw (value, enabled, running); CounterValues::since() scales per interval.
//   * InheritedCounters opens each event once with inherit=1 on the calling thread: one read()
//     per event, covering the threads it creates later.
#include <dirent.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <new>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "concbench/counters.hpp"

namespace concbench {

using nlohmann::json;

namespace {

// ---------------------------------------------------------------------------------------------
// Event table

struct EventSpec {
  Counter counter;
  uint32_t type;
  uint64_t config;
  const char* type_name;   // for reasons: "PERF_TYPE_HARDWARE"
  const char* event_name;  // for reasons: perf(1)'s spelling of the event
};

constexpr uint64_t hw_cache_config(uint64_t cache, uint64_t op, uint64_t result) {
  // Encoding documented in perf_event_open(2) for PERF_TYPE_HW_CACHE.
  return cache | (op << 8) | (result << 16);
}

// Which events share a group, leader first. A group is read with a single read() and its
// members are scheduled onto the PMU together, so ratios between them (IPC, miss rates) are
// coherent even under multiplexing.
//
// task-clock is deliberately NOT the leader of the software events, although that would save a
// read() per sample: it is served by a different kernel PMU (perf_task_clock) than
// context-switches/cpu-migrations/page-faults (perf_swevent), and on current kernels (measured
// on Linux 6.18) siblings from another PMU are not started when the group is opened on the
// running thread, only at its next sched-in. A task-clock-led group therefore silently lost
// every page fault until the thread first blocked. Software events are never multiplexed, so
// grouping them buys nothing but the saved read(); correctness wins.
constexpr std::array<EventSpec, 1> kTaskClockGroup = {{
    {Counter::task_clock_ns, PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK, "PERF_TYPE_SOFTWARE",
     "task-clock"},
}};
constexpr std::array<EventSpec, 3> kSoftwareGroup = {{
    {Counter::context_switches, PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES,
     "PERF_TYPE_SOFTWARE", "context-switches"},
    {Counter::cpu_migrations, PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_MIGRATIONS,
     "PERF_TYPE_SOFTWARE", "cpu-migrations"},
    {Counter::page_faults, PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS, "PERF_TYPE_SOFTWARE",
     "page-faults"},
}};
// Ordered by value: when the group does not fit on the PMU the probe drops members from the
// back (see compute_plan), so cycles/instructions are the last to lose their shared schedule.
// These are the generic PERF_TYPE_HARDWARE/HW_CACHE encodings; on hybrid x86 (P + E cores) the
// kernel binds them to one core type's PMU, so time spent on the other type shows up as
// time_running < time_enabled and is extrapolated (multiplexed = true) rather than lost silently.
constexpr std::array<EventSpec, 6> kHardwareGroup = {{
    {Counter::cycles, PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, "PERF_TYPE_HARDWARE", "cycles"},
    {Counter::instructions, PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS, "PERF_TYPE_HARDWARE",
     "instructions"},
    {Counter::cache_references, PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_REFERENCES,
     "PERF_TYPE_HARDWARE", "cache-references"},
    {Counter::cache_misses, PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES, "PERF_TYPE_HARDWARE",
     "cache-misses"},
    {Counter::l1d_load_misses, PERF_TYPE_HW_CACHE,
     hw_cache_config(PERF_COUNT_HW_CACHE_L1D, PERF_COUNT_HW_CACHE_OP_READ,
                     PERF_COUNT_HW_CACHE_RESULT_MISS),
     "PERF_TYPE_HW_CACHE", "L1-dcache-load-misses"},
    {Counter::llc_load_misses, PERF_TYPE_HW_CACHE,
     hw_cache_config(PERF_COUNT_HW_CACHE_LL, PERF_COUNT_HW_CACHE_OP_READ,
                     PERF_COUNT_HW_CACHE_RESULT_MISS),
     "PERF_TYPE_HW_CACHE", "LLC-load-misses"},
}};

constexpr int kMaxGroupSize = static_cast<int>(kHardwareGroup.size());
constexpr int kMaxEvents =
    static_cast<int>(kTaskClockGroup.size() + kSoftwareGroup.size() + kHardwareGroup.size());
// Worst case every event ends up standalone, i.e. a "group" of its own.
constexpr int kMaxGroups = kMaxEvents;

// PERF_FORMAT_GROUP | TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING | ID read layout:
//   u64 nr; u64 time_enabled; u64 time_running; { u64 value; u64 id; } values[nr];
constexpr uint64_t kReadFormat = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED |
                                 PERF_FORMAT_TOTAL_TIME_RUNNING | PERF_FORMAT_ID;
constexpr size_t kReadBufferWords = 3 + 2 * kMaxGroupSize;

uint32_t bit(Counter c) {
  return 1u << static_cast<int>(c);
}

// ---------------------------------------------------------------------------------------------
// Syscall wrappers

// Returns an fd, or -errno.
int open_event(const EventSpec& spec, int group_fd, bool exclude_kernel) {
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.type = spec.type;
  attr.config = spec.config;
  attr.read_format = kReadFormat;
  // Enabled from the open on: the header promises cumulative values since construction and
  // callers take deltas, so an explicit IOC_ENABLE would only add a syscall per event.
  attr.disabled = 0;
  // No inherit: the counts must belong to this thread only (see counters.hpp), and inherited
  // counters cannot be read with PERF_FORMAT_GROUP on older kernels anyway.
  attr.inherit = 0;
  attr.exclude_kernel = exclude_kernel ? 1 : 0;
  attr.exclude_hv = exclude_kernel ? 1 : 0;
  // pid = 0, cpu = -1: the calling thread, on whatever CPU it runs. FD_CLOEXEC so that a
  // workload that fork()s/exec()s does not leak our descriptors into the child.
  const long fd = syscall(SYS_perf_event_open, &attr, 0, -1, group_fd, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) return -errno;
  return static_cast<int>(fd);
}

// Returns the kernel's id for the event (to match PERF_FORMAT_ID entries), or false.
bool event_id(int fd, uint64_t* id) {
  return ioctl(fd, PERF_EVENT_IOC_ID, id) == 0;
}

struct GroupRead {
  uint64_t nr = 0;
  uint64_t enabled = 0;
  uint64_t running = 0;
  const uint64_t* entries = nullptr;  // nr pairs of {value, id}
};

bool read_group(int leader_fd, std::array<uint64_t, kReadBufferWords>& buf, GroupRead* out) {
  const ssize_t n = ::read(leader_fd, buf.data(), sizeof(buf));
  if (n < static_cast<ssize_t>(3 * sizeof(uint64_t))) return false;
  const uint64_t nr = buf[0];
  if (nr > kMaxGroupSize || static_cast<size_t>(n) < (3 + 2 * nr) * sizeof(uint64_t)) {
    return false;
  }
  out->nr = nr;
  out->enabled = buf[1];
  out->running = buf[2];
  out->entries = buf.data() + 3;
  return true;
}

// value * enabled / running without overflowing 64 bits in the intermediate product.
uint64_t scale(uint64_t value, uint64_t enabled, uint64_t running) {
#ifdef __SIZEOF_INT128__
  __extension__ typedef unsigned __int128 u128;  // __extension__: quiet under -Wpedantic
  return static_cast<uint64_t>(static_cast<u128>(value) * enabled / running);
#else
  return static_cast<uint64_t>(static_cast<long double>(value) * enabled / running);
#endif
}

int read_paranoid() {
  std::FILE* f = std::fopen("/proc/sys/kernel/perf_event_paranoid", "re");
  if (!f) return -1;
  int v = -1;
  if (std::fscanf(f, "%d", &v) != 1) v = -1;
  std::fclose(f);
  return v;
}

// Burns CPU for about `us` microseconds so that a freshly opened event has a chance to run.
void spin_for_us(int us) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  volatile uint64_t sink = 0;
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 256; ++i) sink = sink + static_cast<uint64_t>(i);
  }
}

// ---------------------------------------------------------------------------------------------
// Reasons

const char* errno_name(int e) {
  switch (e) {
    case ENOENT:
      return "ENOENT";
    case EACCES:
      return "EACCES";
    case EPERM:
      return "EPERM";
    case EINVAL:
      return "EINVAL";
    case ENODEV:
      return "ENODEV";
    case EOPNOTSUPP:
      return "EOPNOTSUPP";
    case ENOSYS:
      return "ENOSYS";
    case EMFILE:
      return "EMFILE";
    case ENFILE:
      return "ENFILE";
    case EBUSY:
      return "EBUSY";
    case E2BIG:
      return "E2BIG";
    case ENOSPC:
      return "ENOSPC";
    case EFAULT:
      return "EFAULT";
    default:
      return nullptr;
  }
}

std::string paranoid_hint(int paranoid) {
  std::string s = "/proc/sys/kernel/perf_event_paranoid is ";
  s += paranoid == -1 ? std::string("-1 or unreadable") : std::to_string(paranoid);
  s += " (2 allows unprivileged processes to count their own user-space code only; 3 and above, "
       "a Debian/Ubuntu/Android patch, forbids perf_event_open to them entirely; lower it or grant "
       "CAP_PERFMON), or a seccomp filter such as a container runtime's default profile blocks "
       "perf_event_open";
  return s;
}

std::string describe_failure(const EventSpec& spec, int err, int paranoid, bool exclude_kernel) {
  const bool pmu = spec.type != PERF_TYPE_SOFTWARE;
  std::string r = "perf_event_open(";
  r += spec.type_name;
  r += ", ";
  r += spec.event_name;
  r += ") failed: ";
  const char* name = errno_name(err);
  r += name ? name : ("errno " + std::to_string(err));
  // std::generic_category().message() is strerror() without its thread-safety caveats.
  r += " (" + std::generic_category().message(err) + ")";
  std::string hint;
  switch (err) {
    case ENOENT:
    case EOPNOTSUPP:
      hint = pmu ? "the CPU or hypervisor exposes no such event (typical of virtual machines "
                   "without a virtual PMU)"
                 : "this kernel does not provide this software event";
      break;
    case ENODEV:
      hint = "no PMU handles this event type (typical of virtual machines without a virtual PMU)";
      break;
    case EACCES:
    case EPERM:
      hint = "not permitted: " + paranoid_hint(paranoid);
      break;
    case ENOSYS:
      hint =
          "the kernel has no perf_event_open (built without CONFIG_PERF_EVENTS) or a seccomp "
          "filter blocks it";
      break;
    case EINVAL:
      hint = "the kernel or PMU rejected the event attributes (event not supported here)";
      break;
    case EMFILE:
    case ENFILE:
      hint = "out of file descriptors";
      break;
    case EBUSY:
      hint = "the PMU is held exclusively by another user";
      break;
    default:
      break;
  }
  if (!hint.empty()) r += ": " + hint;
  if (exclude_kernel) {
    r += " (tried with exclude_kernel=1 because perf_event_paranoid forbids kernel-mode counting)";
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// The plan: probe result plus how ThreadCounters should open things

struct Plan {
  CounterProbe probe;
  // True when perf_event_paranoid (without CAP_PERFMON) rejects kernel-mode counting: every
  // event is then opened with exclude_kernel=1, exclude_hv=1 and counts user space only.
  // (CounterProbe has no field for this; it shows in the reasons of the counters it disables.)
  bool exclude_kernel = false;
  // Non-leader events that joined their group's leader during the probe. The others are
  // opened standalone, each as its own single-event group. (The leader is whichever event of
  // the group is the first available one, so it needs no bit.)
  uint32_t join_mask = 0;
};

void mark_unavailable(Plan& plan, Counter c, std::string reason) {
  plan.probe.available_mask &= ~bit(c);
  plan.probe.unavailable[std::string(counter_name(c))] = std::move(reason);
}

// Decides whether kernel mode must be excluded, using task-clock: it exists on every kernel
// with perf events, so its failure mode is purely about permission. paranoid is a single
// system-wide knob (perf_allow_kernel() applies to every event type), so one decision serves
// all events and keeps them comparable (user+kernel cycles next to user-only instructions would
// make IPC meaningless).
bool needs_exclude_kernel() {
  const int fd = open_event(kTaskClockGroup[0], -1, false);
  if (fd >= 0) {
    close(fd);
    return false;
  }
  if (fd != -EACCES && fd != -EPERM) return false;
  const int fd2 = open_event(kTaskClockGroup[0], -1, true);
  if (fd2 < 0) return false;  // blocked altogether; each event records the real error below
  close(fd2);
  return true;
}

// Tries one event standalone on the calling thread and records the outcome in the probe.
void probe_event(Plan& plan, const EventSpec& spec) {
  const int fd = open_event(spec, -1, plan.exclude_kernel);
  if (fd >= 0) {
    uint64_t id = 0;
    const bool has_id = event_id(fd, &id);
    close(fd);
    if (has_id) {
      plan.probe.available_mask |= bit(spec.counter);
    } else {
      // Without an id the PERF_FORMAT_ID entries cannot be matched, so the event is useless.
      mark_unavailable(plan, spec.counter,
                       std::string("ioctl(PERF_EVENT_IOC_ID) failed for ") + spec.event_name +
                           ": kernel too old (needs Linux 3.12+)");
    }
    return;
  }
  mark_unavailable(
      plan, spec.counter,
      describe_failure(spec, -fd, plan.probe.perf_event_paranoid, plan.exclude_kernel));
}

// Opens the group on the calling thread: the first event in `allowed` as leader, then every
// other event in `allowed` that the kernel lets join. Returns the number of fds (leader first)
// in `fds` and, in `joined`, the non-leaders that made it into the group.
template <size_t N>
int open_probe_group(const Plan& plan, const std::array<EventSpec, N>& group, uint32_t allowed,
                     std::array<int, kMaxGroupSize>& fds, uint32_t* joined) {
  int n = 0;
  *joined = 0;
  for (const EventSpec& e : group) {
    if (!(allowed & bit(e.counter))) continue;
    const int fd = open_event(e, n == 0 ? -1 : fds[0], plan.exclude_kernel);
    if (fd < 0) {
      // A failed leader: let the next event lead. A failed member (e.g. EINVAL from x86
      // validate_group(), which rejects groups larger than the PMU): it goes standalone.
      continue;
    }
    if (n > 0) *joined |= bit(e.counter);
    fds[static_cast<size_t>(n++)] = fd;
  }
  return n;
}

void close_all(std::array<int, kMaxGroupSize>& fds, int n) {
  // Members first, leader last: closing the leader first would promote each member to a
  // singleton group for nothing.
  for (int i = n - 1; i >= 0; --i) close(fds[static_cast<size_t>(i)]);
}

// Whether a freshly opened group ever gets onto the PMU. The kernel's open-time check
// (validate_group) only knows the PMU's counter count, not that e.g. the NMI watchdog pins one
// counter; such a group opens fine but is never scheduled (perf stat's "<not counted>"). We spin
// a little and look at time_running.
bool group_gets_scheduled(int leader_fd) {
  std::array<uint64_t, kReadBufferWords> buf{};
  // Up to ~5 ms: a group that fits is scheduled the moment it is opened on the running thread,
  // so the first check normally succeeds; the retries only cover another tool's CPU-wide events
  // holding the PMU for a multiplexing interval (4 ms by default).
  for (int attempt = 0; attempt < 20; ++attempt) {
    spin_for_us(250);
    GroupRead g;
    if (!read_group(leader_fd, buf, &g)) return false;
    if (g.running > 0) return true;
  }
  return false;
}

Plan compute_plan() {
  Plan plan;
  plan.probe.perf_event_paranoid = read_paranoid();

  // getrusage(RUSAGE_THREAD) exists since Linux 2.6.26; check anyway rather than assume.
  rusage ru;
  if (getrusage(RUSAGE_THREAD, &ru) == 0) {
    plan.probe.available_mask |=
        bit(Counter::voluntary_context_switches) | bit(Counter::involuntary_context_switches);
  } else {
    const int e = errno;
    const std::string r = "getrusage(RUSAGE_THREAD) failed: " + std::generic_category().message(e);
    mark_unavailable(plan, Counter::voluntary_context_switches, r);
    mark_unavailable(plan, Counter::involuntary_context_switches, r);
  }

  plan.exclude_kernel = needs_exclude_kernel();

  for (const EventSpec& e : kTaskClockGroup) probe_event(plan, e);
  for (const EventSpec& e : kSoftwareGroup) {
    if (plan.exclude_kernel &&
        (e.counter == Counter::context_switches || e.counter == Counter::cpu_migrations)) {
      // Measured on Linux 6.18, not assumed: with exclude_kernel=1 these two open fine and
      // always read 0, because the scheduler raises them with the kernel's own registers
      // (perf_sw_event_sched), which exclude_kernel filters out. A silent 0 is exactly what
      // "unavailable" exists to prevent. page-faults (raised with the faulting user registers)
      // and task-clock keep working.
      mark_unavailable(
          plan, e.counter,
          std::string("perf_event_paranoid=") + std::to_string(plan.probe.perf_event_paranoid) +
              " forbids kernel-mode counting, so events are opened with exclude_kernel=1; the " +
              e.event_name +
              " event is raised in kernel mode and would always read 0 (lower "
              "/proc/sys/kernel/perf_event_paranoid to 1 or grant CAP_PERFMON; "
              "voluntary/involuntary_context_switches still come from getrusage)");
      continue;
    }
    probe_event(plan, e);
  }
  for (const EventSpec& e : kHardwareGroup) probe_event(plan, e);

  const uint32_t avail = plan.probe.available_mask;
  std::array<int, kMaxGroupSize> fds{};
  uint32_t joined = 0;

  // Software group. Software events never compete for PMU slots, so joining is all it takes.
  {
    const int n = open_probe_group(plan, kSoftwareGroup, avail, fds, &joined);
    plan.join_mask |= joined;
    close_all(fds, n);
  }

  // Hardware group. Keep the group as large as it can be while still being scheduled; each
  // member dropped from it is opened standalone instead (counted, multiplexed and scaled on its
  // own, which is less coherent with the others but far better than never counted).
  {
    uint32_t allowed = avail;
    for (;;) {
      const int n = open_probe_group(plan, kHardwareGroup, allowed, fds, &joined);
      const bool ok = n <= 1 || group_gets_scheduled(fds[0]);
      close_all(fds, n);
      if (ok) {
        plan.join_mask |= joined;
        break;
      }
      // Drop the last joined member (the table lists the most valuable events first). n > 1,
      // so there is one; the loop ends after at most kHardwareGroup.size() rounds.
      for (size_t i = kHardwareGroup.size(); i-- > 0;) {
        if (joined & bit(kHardwareGroup[i].counter)) {
          allowed &= ~bit(kHardwareGroup[i].counter);
          break;
        }
      }
    }
  }
  return plan;
}

const Plan& plan() {
  // C++11 guarantees thread-safe, exactly-once initialisation of a function-local static.
  static const Plan p = compute_plan();
  return p;
}

}  // namespace

const CounterProbe& counter_probe() {
  return plan().probe;
}

// ---------------------------------------------------------------------------------------------
// ThreadCounters

struct ThreadCounters::Impl {
  struct Group {
    int leader_fd = -1;
    bool hardware = false;
    int n = 0;
    std::array<Counter, kMaxGroupSize> counters{};
    std::array<uint64_t, kMaxGroupSize> ids{};
  };
  // Fixed-size storage: no further allocation after the Impl itself, and read() walks a short
  // contiguous array.
  std::array<Group, kMaxGroups> groups{};
  int n_groups = 0;
  std::array<int, kMaxEvents> fds{};  // every fd we own, in open order
  int n_fds = 0;
  bool use_rusage = false;

  // Opens `spec` into `g` (joining g.leader_fd if set); returns false if it could not be opened.
  bool add(Group& g, const EventSpec& spec, bool exclude_kernel) {
    const int fd = open_event(spec, g.leader_fd, exclude_kernel);
    if (fd < 0) return false;
    uint64_t id = 0;
    if (!event_id(fd, &id)) {
      close(fd);
      return false;
    }
    fds[static_cast<size_t>(n_fds++)] = fd;
    if (g.leader_fd < 0) g.leader_fd = fd;
    g.counters[static_cast<size_t>(g.n)] = spec.counter;
    g.ids[static_cast<size_t>(g.n)] = id;
    ++g.n;
    return true;
  }

  void add_standalone(const EventSpec& spec, bool hardware, bool exclude_kernel) {
    Group& g = groups[static_cast<size_t>(n_groups)];
    g = Group{};
    g.hardware = hardware;
    if (add(g, spec, exclude_kernel)) ++n_groups;
    // else: stays unavailable in this object's reads (EMFILE, a PMU taken away, ...).
  }

  // Opens what the plan says is available: the first event that opens leads, events the probe
  // saw joining try to join, and anything that cannot join is counted standalone rather than
  // not at all.
  template <size_t N>
  void open_group(const Plan& plan, const std::array<EventSpec, N>& group, bool hardware) {
    const uint32_t avail = plan.probe.available_mask;
    const bool ek = plan.exclude_kernel;
    int gi = -1;  // index of this group's entry in `groups`, once its leader is open
    for (const EventSpec& e : group) {
      if (!(avail & bit(e.counter))) continue;  // the probe said no: do not even try
      if (gi >= 0 && (plan.join_mask & bit(e.counter)) &&
          add(groups[static_cast<size_t>(gi)], e, ek)) {
        continue;
      }
      const int before = n_groups;
      add_standalone(e, hardware, ek);
      // The first event to open becomes the leader the rest try to join.
      if (gi < 0 && n_groups > before) gi = before;
    }
  }

  ~Impl() {
    // Reverse open order: members close before their leader.
    for (int i = n_fds - 1; i >= 0; --i) close(fds[static_cast<size_t>(i)]);
  }
};

ThreadCounters::ThreadCounters() : impl_(new (std::nothrow) Impl) {
  // nothrow: the contract is that construction never fails; without an Impl every read is
  // simply empty (all counters unavailable).
  if (!impl_) return;
  const Plan& p = plan();
  impl_->use_rusage = p.probe.available(Counter::voluntary_context_switches);
  impl_->open_group(p, kTaskClockGroup, /*hardware=*/false);
  impl_->open_group(p, kSoftwareGroup, /*hardware=*/false);
  impl_->open_group(p, kHardwareGroup, /*hardware=*/true);
}

ThreadCounters::~ThreadCounters() {
  delete impl_;
}

CounterValues ThreadCounters::read() const {
  CounterValues out;
  if (!impl_) return out;
  std::array<uint64_t, kReadBufferWords> buf;
  for (int gi = 0; gi < impl_->n_groups; ++gi) {
    const Impl::Group& g = impl_->groups[static_cast<size_t>(gi)];
    GroupRead r;
    if (!read_group(g.leader_fd, buf, &r)) continue;  // its counters stay unavailable
    // The raw triple, not a scaled value: since() scales each interval by its own
    // enabled/running (a group that never got a PMU slot in an interval is unavailable for that
    // interval, never 0), so the ratio over the whole life of the counter does not matter.
    for (uint64_t e = 0; e < r.nr; ++e) {
      const uint64_t value = r.entries[2 * e];
      const uint64_t id = r.entries[2 * e + 1];
      for (int k = 0; k < g.n; ++k) {
        if (g.ids[static_cast<size_t>(k)] != id) continue;
        out.set_raw(g.counters[static_cast<size_t>(k)], {value, r.enabled, r.running});
        break;
      }
    }
  }
  if (impl_->use_rusage) {
    rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) == 0) {
      out.set(Counter::voluntary_context_switches, static_cast<uint64_t>(ru.ru_nvcsw));
      out.set(Counter::involuntary_context_switches, static_cast<uint64_t>(ru.ru_nivcsw));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// InheritedCounters

namespace {

// Defined with ProcessCounters below; tid 0 is the calling thread.
int open_inherited_event(const EventSpec& spec, pid_t tid, bool exclude_kernel);

}  // namespace

struct InheritedCounters::Impl {
  struct Event {
    int fd;
    Counter counter;
  };
  std::array<Event, kMaxEvents> events{};
  int n = 0;
  std::map<std::string, std::string> unavailable;

  ~Impl() {
    for (int i = n - 1; i >= 0; --i) close(events[static_cast<size_t>(i)].fd);
  }
};

InheritedCounters::InheritedCounters() : impl_(new (std::nothrow) Impl) {
  if (!impl_) return;
  const Plan& p = plan();
  // getrusage cannot follow a thread's children (see counters.hpp): unavailable, with why.
  const std::string rusage_reason =
      "getrusage cannot count a thread's children: RUSAGE_THREAD covers the calling thread "
      "only and RUSAGE_SELF every thread of the process; context_switches (perf, inherited) "
      "covers them";
  impl_->unavailable[std::string(counter_name(Counter::voluntary_context_switches))] =
      rusage_reason;
  impl_->unavailable[std::string(counter_name(Counter::involuntary_context_switches))] =
      rusage_reason;
  auto open_all = [&](const auto& group) {
    for (const EventSpec& e : group) {
      const std::string name(counter_name(e.counter));
      if (!p.probe.available(e.counter)) {
        const auto it = p.probe.unavailable.find(name);
        impl_->unavailable[name] = it != p.probe.unavailable.end() ? it->second : "unavailable";
        continue;
      }
      const int fd = open_inherited_event(e, 0, p.exclude_kernel);
      if (fd < 0) {
        impl_->unavailable[name] =
            describe_failure(e, -fd, p.probe.perf_event_paranoid, p.exclude_kernel) +
            " (with inherit=1)";
        continue;
      }
      impl_->events[static_cast<size_t>(impl_->n++)] = {fd, e.counter};
    }
  };
  open_all(kTaskClockGroup);
  open_all(kSoftwareGroup);
  open_all(kHardwareGroup);
}

InheritedCounters::~InheritedCounters() {
  delete impl_;
}

const std::map<std::string, std::string>& InheritedCounters::unavailable() const {
  static const std::map<std::string, std::string> all = [] {
    std::map<std::string, std::string> m;
    for (int i = 0; i < kCounterCount; ++i)
      m[std::string(counter_name(static_cast<Counter>(i)))] = "out of memory opening counters";
    return m;
  }();
  return impl_ ? impl_->unavailable : all;
}

CounterValues InheritedCounters::read() const {
  CounterValues out;
  if (!impl_) return out;
  for (int i = 0; i < impl_->n; ++i) {
    const Impl::Event& e = impl_->events[static_cast<size_t>(i)];
    uint64_t buf[3];
    // A failed or short read leaves the counter unavailable in this read.
    if (::read(e.fd, buf, sizeof buf) != static_cast<ssize_t>(sizeof buf)) continue;
    out.set_raw(e.counter, {buf[0], buf[1], buf[2]});
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ProcessCounters

namespace {

// Returns an fd counting `spec` for thread `tid` and whatever it starts later, or -errno.
int open_inherited_event(const EventSpec& spec, pid_t tid, bool exclude_kernel) {
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.type = spec.type;
  attr.config = spec.config;
  // No PERF_FORMAT_GROUP: older kernels refuse it together with inherit.
  attr.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
  attr.disabled = 0;
  // inherit: every thread (and process) `tid` creates from now on gets a child event, and
  // reading this one sums them (an exited child's total is folded in at its exit).
  attr.inherit = 1;
  attr.exclude_kernel = exclude_kernel ? 1 : 0;
  attr.exclude_hv = exclude_kernel ? 1 : 0;
  const long fd = syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) return -errno;
  return static_cast<int>(fd);
}

std::vector<pid_t> process_threads() {
  std::vector<pid_t> tids;
  DIR* d = opendir("/proc/self/task");
  if (!d) return tids;
  while (const dirent* e = readdir(d)) {
    char* end = nullptr;
    const long v = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && v > 0) tids.push_back(static_cast<pid_t>(v));
  }
  closedir(d);
  return tids;
}

}  // namespace

struct ProcessCounters::Impl {
  struct Event {
    int fd;
    Counter counter;
    bool hardware;
  };
  std::vector<Event> events;
  uint32_t broken = 0;  // counters that could not be opened on some thread
  int threads = 0;
  bool use_rusage = false;

  ~Impl() {
    for (const Event& e : events) close(e.fd);
  }
};

ProcessCounters::ProcessCounters() : impl_(new (std::nothrow) Impl) {
  if (!impl_) return;
  const Plan& p = plan();
  impl_->use_rusage = p.probe.available(Counter::voluntary_context_switches);
  std::vector<std::pair<const EventSpec*, bool>> specs;
  for (const EventSpec& e : kTaskClockGroup) specs.emplace_back(&e, false);
  for (const EventSpec& e : kSoftwareGroup) specs.emplace_back(&e, false);
  for (const EventSpec& e : kHardwareGroup) specs.emplace_back(&e, true);
  for (const pid_t tid : process_threads()) {
    bool attached = false;
    for (const auto& [spec, hardware] : specs) {
      if (!p.probe.available(spec->counter)) continue;
      const int fd = open_inherited_event(*spec, tid, p.exclude_kernel);
      if (fd == -ESRCH) break;  // the thread exited since the listing: nothing of it to count
      if (fd < 0) {
        impl_->broken |= bit(spec->counter);
        continue;
      }
      impl_->events.push_back({fd, spec->counter, hardware});
      attached = true;
    }
    impl_->threads += attached ? 1 : 0;
  }
}

ProcessCounters::~ProcessCounters() {
  delete impl_;
}

int ProcessCounters::threads_attached() const {
  return impl_ ? impl_->threads : 0;
}

CounterValues ProcessCounters::read() const {
  CounterValues out;
  if (!impl_) return out;
  std::array<uint64_t, kCounterCount> sum{};
  uint32_t seen = 0, bad = impl_->broken;
  for (const Impl::Event& e : impl_->events) {
    uint64_t buf[3];
    if (::read(e.fd, buf, sizeof buf) != static_cast<ssize_t>(sizeof buf)) {
      bad |= bit(e.counter);
      continue;
    }
    const uint64_t value = buf[0], enabled = buf[1], running = buf[2];
    uint64_t v = value;
    if (e.hardware && running < enabled) {
      // Ran but never on the PMU: nothing to extrapolate from (see ThreadCounters::read).
      if (running == 0) {
        bad |= bit(e.counter);
        continue;
      }
      v = scale(value, enabled, running);
      out.multiplexed = true;
    }
    sum[static_cast<size_t>(e.counter)] += v;
    seen |= bit(e.counter);
  }
  for (int i = 0; i < kCounterCount; ++i) {
    const auto c = static_cast<Counter>(i);
    if ((seen & bit(c)) && !(bad & bit(c))) out.set(c, sum[static_cast<size_t>(i)]);
  }
  if (impl_->use_rusage) {
    rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
      out.set(Counter::voluntary_context_switches, static_cast<uint64_t>(ru.ru_nvcsw));
      out.set(Counter::involuntary_context_switches, static_cast<uint64_t>(ru.ru_nivcsw));
    }
  }
  return out;
}

// --- SchedTrace: sched:sched_switch and sched:sched_wakeup on every CPU -----------------------
namespace {

// A tracepoint's id and the offsets of the fields we read, from tracefs's format file.
struct TracepointFormat {
  int id = -1;
  std::map<std::string, int> offset;
};

const char* tracefs_root() {
  for (const char* root : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
    const std::string probe = std::string(root) + "/events/sched/sched_switch/id";
    if (access(probe.c_str(), R_OK) == 0) return root;
  }
  return nullptr;
}

bool read_format(const std::string& dir, TracepointFormat& f) {
  FILE* idf = std::fopen((dir + "/id").c_str(), "r");
  if (!idf) return false;
  const int got = std::fscanf(idf, "%d", &f.id);
  std::fclose(idf);
  if (got != 1) return false;
  FILE* ff = std::fopen((dir + "/format").c_str(), "r");
  if (!ff) return false;
  char line[512];
  while (std::fgets(line, sizeof line, ff)) {
    // "\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;"
    const char* field = std::strstr(line, "field:");
    const char* off = std::strstr(line, "offset:");
    if (!field || !off) continue;
    const char* semi = std::strchr(field, ';');
    if (!semi) continue;
    const char* name = semi;
    while (name > field && name[-1] != ' ' && name[-1] != '*') --name;
    f.offset[std::string(name, semi)] = std::atoi(off + 7);
  }
  std::fclose(ff);
  return true;
}

constexpr size_t kRingPages = 256;  // data pages per CPU (1 MiB with 4 KiB pages)

}  // namespace

struct SchedTrace::Impl {
  std::string why;
  TracepointFormat sw, wk;
  struct Cpu {
    int switch_fd = -1, wakeup_fd = -1;
    void* ring = nullptr;
    size_t ring_bytes = 0;
  };
  std::vector<Cpu> cpus;
  size_t page = 4096;

  ~Impl() {
    for (Cpu& c : cpus) {
      if (c.ring) munmap(c.ring, c.ring_bytes);
      if (c.wakeup_fd >= 0) close(c.wakeup_fd);
      if (c.switch_fd >= 0) close(c.switch_fd);
    }
  }

  int open_tp(int id, int cpu, int group) {
    perf_event_attr attr{};
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.config = static_cast<uint64_t>(id);
    attr.sample_period = 1;
    attr.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_RAW;
    attr.disabled = 1;
    attr.use_clockid = 1;
    attr.clockid = CLOCK_MONOTONIC;
    return static_cast<int>(
        syscall(SYS_perf_event_open, &attr, -1, cpu, group, PERF_FLAG_FD_CLOEXEC));
  }

  void open_all() {
    const char* root = tracefs_root();
    if (!root) {
      why =
          "tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing, as root), so the "
          "sched tracepoints' ids cannot be read";
      return;
    }
    const std::string dir = std::string(root) + "/events/sched/";
    if (!read_format(dir + "sched_switch", sw) || !read_format(dir + "sched_wakeup", wk) ||
        !sw.offset.count("next_pid") || !sw.offset.count("prev_pid") || !wk.offset.count("pid")) {
      why = std::string("cannot read the sched_switch and sched_wakeup formats under ") + root +
            " (not root?)";
      return;
    }
    page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    for (long c = 0; c < ncpu; ++c) {
      Cpu cpu;
      cpu.switch_fd = open_tp(sw.id, static_cast<int>(c), -1);
      if (cpu.switch_fd < 0) {
        const int e = errno;
        if (e == ENODEV || e == ENOENT) continue;  // an offline CPU
        why = std::string("perf_event_open(sched:sched_switch, every task, cpu ") +
              std::to_string(c) + "): " + std::strerror(e) +
              (e == EACCES || e == EPERM ? " (system-wide tracepoints need root or CAP_PERFMON, or "
                                           "kernel.perf_event_paranoid -1; it is " +
                                               std::to_string(read_paranoid()) + ")"
                                         : "");
        cpus.push_back(cpu);
        return;
      }
      cpu.wakeup_fd = open_tp(wk.id, static_cast<int>(c), -1);
      cpu.ring_bytes = (kRingPages + 1) * page;
      cpu.ring =
          mmap(nullptr, cpu.ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, cpu.switch_fd, 0);
      if (cpu.ring == MAP_FAILED) {
        cpu.ring = nullptr;
        why = std::string("mmap of the perf ring buffer: ") + std::strerror(errno);
        cpus.push_back(cpu);
        return;
      }
      if (cpu.wakeup_fd < 0 ||
          ioctl(cpu.wakeup_fd, PERF_EVENT_IOC_SET_OUTPUT, cpu.switch_fd) != 0) {
        why = std::string("perf_event_open(sched:sched_wakeup): ") + std::strerror(errno);
        cpus.push_back(cpu);
        return;
      }
      cpus.push_back(cpu);
    }
    if (cpus.empty()) why = "no CPU accepted the sched tracepoints";
  }
};

SchedTrace::SchedTrace() : impl_(new Impl) {
  impl_->open_all();
}

SchedTrace::~SchedTrace() {
  delete impl_;
}

bool SchedTrace::available() const {
  return impl_->why.empty();
}

const std::string& SchedTrace::unavailable() const {
  return impl_->why;
}

void SchedTrace::start() {
  if (!available()) return;
  for (auto& c : impl_->cpus) {
    auto* meta = static_cast<perf_event_mmap_page*>(c.ring);
    // Everything written before this batch is skipped.
    __atomic_store_n(&meta->data_tail, __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE),
                     __ATOMIC_RELEASE);
    ioctl(c.switch_fd, PERF_EVENT_IOC_ENABLE, 0);
    ioctl(c.wakeup_fd, PERF_EVENT_IOC_ENABLE, 0);
  }
}

void SchedTrace::stop() {
  if (!available()) return;
  for (auto& c : impl_->cpus) {
    ioctl(c.switch_fd, PERF_EVENT_IOC_DISABLE, 0);
    ioctl(c.wakeup_fd, PERF_EVENT_IOC_DISABLE, 0);
  }
}

json SchedTrace::summarize(const std::vector<int>& pids) const {
  if (!available()) return {{"available", false}, {"reason", impl_->why}};
  struct Rec {
    uint64_t t;
    uint32_t pid, tid;  // the task running when the event fired
    bool wakeup;
    int32_t a, b;  // switch: prev_pid, next_pid; wakeup: the woken tid
  };
  std::vector<Rec> recs;
  uint64_t lost = 0;
  const size_t data_bytes = kRingPages * impl_->page;
  for (const auto& c : impl_->cpus) {
    auto* meta = static_cast<perf_event_mmap_page*>(c.ring);
    const auto* data = static_cast<const unsigned char*>(c.ring) + impl_->page;
    const uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
    uint64_t tail = meta->data_tail;
    std::vector<unsigned char> buf;
    while (tail < head) {
      perf_event_header h;
      for (size_t k = 0; k < sizeof h; ++k)
        reinterpret_cast<unsigned char*>(&h)[k] = data[(tail + k) % data_bytes];
      if (h.size < sizeof h) break;
      buf.resize(h.size);
      for (size_t k = 0; k < h.size; ++k) buf[k] = data[(tail + k) % data_bytes];
      tail += h.size;
      if (h.type == PERF_RECORD_LOST) {
        uint64_t n = 0;
        if (buf.size() >= sizeof h + 16) std::memcpy(&n, buf.data() + sizeof h + 8, 8);
        lost += n;
        continue;
      }
      if (h.type != PERF_RECORD_SAMPLE) continue;
      // PERF_SAMPLE_TID | TIME | RAW, in that order.
      const unsigned char* p = buf.data() + sizeof h;
      const unsigned char* end = buf.data() + buf.size();
      if (end - p < 20) continue;
      Rec r{};
      std::memcpy(&r.pid, p, 4);
      std::memcpy(&r.tid, p + 4, 4);
      std::memcpy(&r.t, p + 8, 8);
      uint32_t raw_size = 0;
      std::memcpy(&raw_size, p + 16, 4);
      const unsigned char* raw = p + 20;
      if (raw + raw_size > end || raw_size < 8) continue;
      uint16_t type = 0;
      std::memcpy(&type, raw, 2);
      auto field = [&](const TracepointFormat& f, const char* name) {
        int32_t v = 0;
        const int off = f.offset.at(name);
        if (off >= 0 && static_cast<uint32_t>(off) + 4 <= raw_size) std::memcpy(&v, raw + off, 4);
        return v;
      };
      if (type == impl_->sw.id) {
        r.wakeup = false;
        r.a = field(impl_->sw, "prev_pid");
        r.b = field(impl_->sw, "next_pid");
      } else if (type == impl_->wk.id) {
        r.wakeup = true;
        r.a = field(impl_->wk, "pid");
      } else {
        continue;
      }
      recs.push_back(r);
    }
    __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
  }
  std::sort(recs.begin(), recs.end(), [](const Rec& x, const Rec& y) { return x.t < y.t; });
  // Our threads: every task that ran (was current at an event) in one of `pids`.
  std::set<int32_t> ours;
  const std::set<uint32_t> want(pids.begin(), pids.end());
  for (const Rec& r : recs)
    if (want.count(r.pid)) ours.insert(static_cast<int32_t>(r.tid));
  std::map<int32_t, uint64_t> woken;  // tid -> its pending wakeup's time
  std::vector<uint64_t> lat;
  uint64_t wakeups = 0, switches_in = 0;
  for (const Rec& r : recs) {
    if (r.wakeup) {
      if (!ours.count(r.a)) continue;
      ++wakeups;
      woken.emplace(r.a, r.t);  // the first wakeup of a sleep counts
    } else if (ours.count(r.b)) {
      ++switches_in;
      if (auto it = woken.find(r.b); it != woken.end()) {
        lat.push_back(r.t - it->second);
        woken.erase(it);
      }
    }
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double q) {
    return lat.empty() ? json(nullptr)
                       : json(lat[std::min(lat.size() - 1, static_cast<size_t>(q * lat.size()))]);
  };
  return {{"available", true},
          {"threads", ours.size()},
          {"wakeups", wakeups},
          {"switches_in", switches_in},
          {"wakeup_latency_ns",
           {{"n", lat.size()},
            {"p50", pct(0.5)},
            {"p99", pct(0.99)},
            {"max", lat.empty() ? json(nullptr) : json(lat.back())}}},
          {"lost_records", lost}};
}

}  // namespace concbench
