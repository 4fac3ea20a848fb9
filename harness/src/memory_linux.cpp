#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "concbench/memory.hpp"

namespace concbench {
namespace {

// A small /proc file, read whole with one read(2) loop: no iostream, no allocation beyond the
// string, so sampling it from the watchdog costs a few microseconds.
bool slurp(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

// The value of "Key:   123 kB" in /proc text, in bytes (or as a count without the unit).
std::optional<uint64_t> field(const std::string& text, const char* key) {
  const std::string k = std::string("\n") + key + ":";
  size_t at = text.rfind(key, 0) == 0 ? 0 : text.find(k);
  if (at == std::string::npos) return std::nullopt;
  at += (at == 0 ? 0 : 1) + std::strlen(key) + 1;
  unsigned long long v = 0;
  char unit[8] = {0};
  const int got = std::sscanf(text.c_str() + at, "%llu %7s", &v, unit);
  if (got < 1) return std::nullopt;
  return std::strcmp(unit, "kB") == 0 ? v * 1024ULL : v;
}

}  // namespace

ProcessMemory process_memory(int pid) {
  ProcessMemory m;
  const std::string dir = pid == 0 ? "/proc/self" : "/proc/" + std::to_string(pid);
  std::string text;
  if (slurp(dir + "/smaps_rollup", text)) {
    m.rss_bytes = field(text, "Rss");
    m.pss_bytes = field(text, "Pss");
    const auto pc = field(text, "Private_Clean"), pd = field(text, "Private_Dirty");
    if (pc && pd) m.uss_bytes = *pc + *pd;
  } else {
    m.unavailable = dir + "/smaps_rollup: " + std::strerror(errno);
  }
  if (slurp(dir + "/status", text)) {
    m.peak_rss_bytes = field(text, "VmHWM");
    if (!m.rss_bytes) m.rss_bytes = field(text, "VmRSS");
  } else if (m.unavailable.empty()) {
    m.unavailable = dir + "/status: " + std::strerror(errno);
  }
  if (m.unavailable.empty() && !(m.pss_bytes && m.uss_bytes && m.peak_rss_bytes))
    m.unavailable = dir + ": a field is missing from the kernel's accounting";
  return m;
}

bool reset_peak_rss() {
  const int fd = ::open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, "5", 1) == 1;
  ::close(fd);
  return ok;
}

std::optional<int> os_thread_count() {
  std::string text;
  if (!slurp("/proc/self/status", text)) return std::nullopt;
  const auto n = field(text, "Threads");
  if (!n) return std::nullopt;
  return static_cast<int>(*n);
}

}  // namespace concbench
