// Helpers shared by the model tests: a workload's tasks from given parameters, and a model set
// up with given workers and parameters.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONCBENCH_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CONCBENCH_TEST_ASAN 1
#endif
#ifdef CONCBENCH_TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

#include "concbench/machine.hpp"
#include "concbench/model.hpp"
#include "concbench/workload.hpp"

namespace concbench::testing_helpers {

inline TaskSet tasks_of(const char* workload, const std::map<std::string, std::string>& given,
                        uint64_t seed = 3) {
  const Workload& w = *find_workload(workload);
  return w.make_tasks(Params::resolve(w.params(), given, workload), seed);
}

// What item k of `batch` must return: the workload's prediction sealed with the item's nonce.
inline uint64_t expected_item(const TaskSet& ts, const Batch& batch, uint64_t k) {
  return seal(ts.expected[k % ts.tasks.size()], batch.item_nonce(k));
}
// The same for a batch left at nonce 0 (the nonce then depends on the item's round only).
inline uint64_t expected_item(const TaskSet& ts, uint64_t k) {
  return expected_item(ts, Batch{&ts.tasks, 1}, k);
}

// Skips the calling test unless this process can run `threads` threads at once right now, each
// on a core of its own (parallel_capacity). Call it before and after a measurement whose claim
// needs idle cores.
#define CONCBENCH_REQUIRE_IDLE_CPUS(threads)                                                \
  do {                                                                                      \
    const double got_ = ::concbench::parallel_capacity((threads), 0.05);                    \
    if (got_ < 0.9 * (threads))                                                             \
      GTEST_SKIP() << "needs " << (threads) << " idle CPUs; the machine gave this process " \
                   << got_ << " (another process is using them, or they share a core)";     \
  } while (0)

// The same before a measurement: the host's dips (measured_on_idle_cores, below) last up to
// about half a second, so this waits up to 20 checks (about 2 s) for the cores and skips only
// when they never come. After a measurement, CONCBENCH_REQUIRE_IDLE_CPUS: a dip then may have
// been during it.
#define CONCBENCH_AWAIT_IDLE_CPUS(threads)                                                     \
  do {                                                                                         \
    double got_ = 0;                                                                           \
    for (int try_ = 0; try_ < 20 && got_ < 0.9 * (threads); ++try_)                            \
      got_ = ::concbench::parallel_capacity((threads), 0.05);                                  \
    if (got_ < 0.9 * (threads))                                                                \
      GTEST_SKIP() << "needs " << (threads) << " idle CPUs; after 20 checks the machine gave " \
                   << "this process " << got_ << " (another process is using them, or "        \
                   << "they share a core)";                                                    \
  } while (0)

// Calls `measure` (one figure a call) until `want` of its calls ran between two checks that
// this process had `threads` cores of its own (parallel_capacity), making at most `tries`
// calls, and returns the figures of those calls: fewer than `want` when the machine never gave
// the cores for long enough. On the 2-vCPU VMs here the host now and then gives two threads one
// core's work for up to half a second, with their CPU time still counted in full (seen in a
// tenth of 50 ms probes on an idle Intel VM): a claim that needs two cores keeps only the
// figures measured between two good checks. check_after = false checks before each call only,
// for a measured process whose own threads stay busy after it (a JVM's compiler and collector)
// and so would fail the check after: a figure that can only be slowed by a dip, kept as the best
// of several, tolerates it.
template <class Measure>
std::vector<double> measured_on_idle_cores(int threads, size_t want, int tries,
                                           const Measure& measure, bool check_after = true) {
  std::vector<double> kept;
  auto idle = [threads] { return ::concbench::parallel_capacity(threads, 0.05) >= 0.9 * threads; };
  for (int i = 0; i < tries && kept.size() < want; ++i) {
    if (!idle()) continue;
    const double v = measure();
    if (!check_after || idle()) kept.push_back(v);
  }
  return kept;
}

inline double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// True under ASan with detect_stack_use_after_return=1: locals then live on ASan's per-thread
// fake stack, which Boost.Context's default stack switch (fcontext: Debian's libboost-context is
// built without the ucontext variant that BOOST_USE_ASAN annotates) does not know about, so a
// fiber writes through a fake frame of another stack and crashes inside Boost: a false report
// about the tool, not the model. The fibers model is not run then (scripts/sanitize.sh runs its
// tests again with detect_stack_use_after_return=0, where they are clean).
inline bool asan_fake_stacks() {
#ifdef CONCBENCH_TEST_ASAN
  return __asan_get_current_fake_stack() != nullptr;
#else
  return false;
#endif
}

inline std::unique_ptr<Model> start(const char* name, int workers,
                                    const std::map<std::string, std::string>& params = {}) {
  auto m = find_model(name)->create();
  ModelConfig cfg;
  cfg.workers = workers;
  cfg.params = Params::resolve(find_model(name)->params, params, name);
  m->setup(cfg);
  return m;
}

}  // namespace concbench::testing_helpers
