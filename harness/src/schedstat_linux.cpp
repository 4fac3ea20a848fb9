// schedstat on Linux: /proc/<pid>/task/<tid>/schedstat, three numbers the scheduler keeps per
// task (CONFIG_SCHED_INFO, on in every distribution kernel): ns on a CPU, ns waiting in a run
// queue, timeslices. Readable by the task's owner; no root, no PMU.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "concbench/attribution.hpp"
#include "concbench/clock.hpp"

namespace concbench {
namespace {

std::optional<SchedStat> read_file(const char* path) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[128];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return std::nullopt;
  return parse_schedstat(std::string_view(buf, static_cast<size_t>(n)));
}

}  // namespace

std::optional<SchedStat> own_schedstat() {
  return read_file("/proc/thread-self/schedstat");
}

std::optional<SchedStat> task_schedstat(int pid, int tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", pid, tid ? tid : pid);
  return read_file(path);
}

std::optional<uint64_t> machine_steal_ns() {
  const int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[512];
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  // "cpu  user nice system idle iowait irq softirq steal ..."
  unsigned long long v[8];
  if (std::sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                  &v[4], &v[5], &v[6], &v[7]) != 8)
    return std::nullopt;
  const long hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0) return std::nullopt;
  return static_cast<uint64_t>(v[7]) * (1'000'000'000ULL / static_cast<uint64_t>(hz));
}

const std::string& schedstat_unavailable() {
  static const std::string why = [] {
    const int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return std::string("/proc/thread-self/schedstat: ") + std::strerror(errno) +
             " (a kernel without CONFIG_SCHED_INFO, or no /proc)";
    close(fd);
    if (!own_schedstat()) return std::string("/proc/thread-self/schedstat: unexpected format");
    return std::string();
  }();
  return why;
}

double schedstat_read_cost_ns() {
  static const double cost = [] {
    if (!schedstat_unavailable().empty()) return 0.0;
    std::vector<uint64_t> t;
    for (int i = 0; i < 15; ++i) {
      const uint64_t t0 = monotonic_ns();
      (void)own_schedstat();
      t.push_back(monotonic_ns() - t0);
    }
    std::nth_element(t.begin(), t.begin() + 7, t.end());
    return static_cast<double>(t[7]);
  }();
  return cost;
}

}  // namespace concbench
