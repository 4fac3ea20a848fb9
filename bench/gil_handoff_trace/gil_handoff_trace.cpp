// An LD_PRELOAD library that records, with one instrument for both sides, how a GIL changes
// hands: real CPython's (its take_gil/drop_gil are pthread condition variables and a mutex) and
// gil_threads' (std::condition_variable and std::mutex, which are the same pthread calls).
// scripts/gil_handoff_trace.py runs ccbench's echo test under it on both sides and reads the
// files it writes. It is a diagnostic, not part of any measurement the suite reports: every
// recorded call costs two clock reads and a sched_getcpu (the script measures and prints it).
//
// Recorded: entry and return of pthread_cond_{wait,timedwait,clockwait} (with the condition,
// the mutex and the return code), pthread_cond_{signal,broadcast}, entry and return of
// pthread_mutex_lock, and the 64-byte-sized recv/read/send/write calls that mark the echo's
// rounds. Each thread appends to its own fixed buffer (nothing is allocated or locked on the
// recording path after a thread's first event); the process writes them all out at exit to
// $CONCBENCH_HANDOFF_OUT.<pid>, one event a line: ns tid op object rc cpu mutex.
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace {

enum Op : int16_t {
  kWaitIn = 1,
  kWaitOut = 2,
  kSignal = 3,
  kBroadcast = 4,
  kIo = 5,
  kTimedWaitIn = 6,
  kTimedWaitOut = 7,
  kLockIn = 8,
  kLockOut = 9,
};
// kIo's rc field says which call: the responder's receive and send, as each side spells them.
enum IoKind : int16_t { kRecv = 1, kRead = 2, kSend = 3, kWrite = 4 };

struct Event {
  uint64_t ns;
  const void* object;
  const void* mutex;
  int32_t tid;
  int16_t op;
  int16_t rc;
  int32_t cpu;
};

constexpr int kMaxThreads = 64;
constexpr int kCapacity = 1 << 18;  // events a thread: about 80 s of a busy hand-over

Event* g_buffers[kMaxThreads];
// Each slot's count is written only by its thread (release) and read at exit (acquire), so
// the events below a count are complete when the dump reads them.
std::atomic<int> g_counts[kMaxThreads];
std::atomic<int> g_threads{0};
thread_local int t_slot = -1;
thread_local int32_t t_tid = 0;

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void record(int16_t op, const void* object, int rc, const void* mutex = nullptr) {
  if (t_slot < 0) {
    t_slot = g_threads.fetch_add(1, std::memory_order_relaxed);
    if (t_slot < kMaxThreads)
      g_buffers[t_slot] = static_cast<Event*>(std::malloc(sizeof(Event) * kCapacity));
    t_tid = static_cast<int32_t>(syscall(SYS_gettid));
  }
  if (t_slot >= kMaxThreads || g_buffers[t_slot] == nullptr) return;
  const int i = g_counts[t_slot].load(std::memory_order_relaxed);
  if (i >= kCapacity) return;
  g_buffers[t_slot][i] = {now_ns(),      object, mutex, t_tid, op, static_cast<int16_t>(rc),
                          sched_getcpu()};
  g_counts[t_slot].store(i + 1, std::memory_order_release);
}

__attribute__((destructor)) void dump() {
  const char* prefix = std::getenv("CONCBENCH_HANDOFF_OUT");
  if (prefix == nullptr) return;
  char path[4096];
  std::snprintf(path, sizeof path, "%s.%d", prefix, static_cast<int>(getpid()));
  FILE* f = std::fopen(path, "w");
  if (f == nullptr) return;
  int n = g_threads.load(std::memory_order_relaxed);
  if (n > kMaxThreads) n = kMaxThreads;
  for (int s = 0; s < n; ++s) {
    const int m = g_counts[s].load(std::memory_order_acquire);
    for (int i = 0; i < m; ++i) {
      const Event& e = g_buffers[s][i];
      std::fprintf(f, "%llu %d %d %p %d %d %p\n", static_cast<unsigned long long>(e.ns), e.tid,
                   e.op, e.object, e.rc, e.cpu, e.mutex);
    }
  }
  std::fclose(f);
}

// The next definition of `name` after this library's: the real call.
template <class Fn>
Fn real(Fn& cache, const char* name) {
  if (cache == nullptr) cache = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
  return cache;
}

}  // namespace

extern "C" {

int pthread_cond_timedwait(pthread_cond_t* c, pthread_mutex_t* m, const timespec* at) {
  static int (*fn)(pthread_cond_t*, pthread_mutex_t*, const timespec*);
  record(kTimedWaitIn, c, 0, m);
  const int r = real(fn, "pthread_cond_timedwait")(c, m, at);
  record(kTimedWaitOut, c, r, m);
  return r;
}

int pthread_cond_clockwait(pthread_cond_t* c, pthread_mutex_t* m, clockid_t clock,
                           const timespec* at) {
  static int (*fn)(pthread_cond_t*, pthread_mutex_t*, clockid_t, const timespec*);
  record(kTimedWaitIn, c, 0, m);
  const int r = real(fn, "pthread_cond_clockwait")(c, m, clock, at);
  record(kTimedWaitOut, c, r, m);
  return r;
}

int pthread_cond_wait(pthread_cond_t* c, pthread_mutex_t* m) {
  static int (*fn)(pthread_cond_t*, pthread_mutex_t*);
  record(kWaitIn, c, 0, m);
  const int r = real(fn, "pthread_cond_wait")(c, m);
  record(kWaitOut, c, r, m);
  return r;
}

int pthread_cond_signal(pthread_cond_t* c) {
  static int (*fn)(pthread_cond_t*);
  record(kSignal, c, 0);
  return real(fn, "pthread_cond_signal")(c);
}

int pthread_cond_broadcast(pthread_cond_t* c) {
  static int (*fn)(pthread_cond_t*);
  record(kBroadcast, c, 0);
  return real(fn, "pthread_cond_broadcast")(c);
}

int pthread_mutex_lock(pthread_mutex_t* m) {
  static int (*fn)(pthread_mutex_t*);
  record(kLockIn, m, 0);
  const int r = real(fn, "pthread_mutex_lock")(m);
  record(kLockOut, m, r);
  return r;
}

// The echo's messages are 64 bytes (cpython_gil_probe.py and latency.echo_under_load's
// default); other sizes are someone else's IO and are not recorded.
ssize_t recv(int fd, void* buf, size_t n, int flags) {
  static ssize_t (*fn)(int, void*, size_t, int);
  if (n == 64) record(kIo, nullptr, kRecv);
  return real(fn, "recv")(fd, buf, n, flags);
}

ssize_t read(int fd, void* buf, size_t n) {
  static ssize_t (*fn)(int, void*, size_t);
  if (n == 64) record(kIo, nullptr, kRead);
  return real(fn, "read")(fd, buf, n);
}

ssize_t send(int fd, const void* buf, size_t n, int flags) {
  static ssize_t (*fn)(int, const void*, size_t, int);
  if (n == 64) record(kIo, nullptr, kSend);
  return real(fn, "send")(fd, buf, n, flags);
}

ssize_t write(int fd, const void* buf, size_t n) {
  static ssize_t (*fn)(int, const void*, size_t);
  if (n == 64) record(kIo, nullptr, kWrite);
  return real(fn, "write")(fd, buf, n);
}

// The cost of one recorded event, for the script to print beside what it measures.
double concbench_handoff_event_cost_ns() {
  constexpr int kN = 100000;
  const uint64_t t0 = now_ns();
  for (int i = 0; i < kN; ++i) {
    [[maybe_unused]] volatile uint64_t t = now_ns();
    [[maybe_unused]] volatile int cpu = sched_getcpu();
  }
  return static_cast<double>(now_ns() - t0) / kN;
}

}  // extern "C"
