// "Not supported" implementation of counters.hpp for platforms other than Linux.
//
// Every counter is unavailable. In particular getrusage(RUSAGE_SELF) is deliberately not used
// for the context-switch counters: it sums all threads of the process, and the model adds up
// per-thread deltas, so every thread would report the whole process and the sum would be
// multiplied by the thread count. Unavailable is honest; a wrong number is not.
#include <map>
#include <string>

#include "concbench/counters.hpp"

namespace concbench {

namespace {

CounterProbe make_probe() {
  CounterProbe p;
  p.available_mask = 0;
  p.perf_event_paranoid = -1;  // no such knob here
  for (int i = 0; i < kCounterCount; ++i) {
    p.unavailable[std::string(counter_name(static_cast<Counter>(i)))] =
        "not supported on this platform";
  }
  return p;
}

}  // namespace

const CounterProbe& counter_probe() {
  static const CounterProbe p = make_probe();  // thread-safe one-time initialisation
  return p;
}

// Nothing to hold; impl_ stays null.
struct ThreadCounters::Impl {};

ThreadCounters::ThreadCounters() : impl_(nullptr) {}

ThreadCounters::~ThreadCounters() {
  delete impl_;
}

CounterValues ThreadCounters::read() const {
  return CounterValues{};
}

struct InheritedCounters::Impl {};

InheritedCounters::InheritedCounters() : impl_(nullptr) {}

InheritedCounters::~InheritedCounters() {
  delete impl_;
}

CounterValues InheritedCounters::read() const {
  return CounterValues{};
}

const std::map<std::string, std::string>& InheritedCounters::unavailable() const {
  return counter_probe().unavailable;  // every counter, "not supported on this platform"
}

struct ProcessCounters::Impl {};

ProcessCounters::ProcessCounters() : impl_(nullptr) {}

ProcessCounters::~ProcessCounters() {
  delete impl_;
}

CounterValues ProcessCounters::read() const {
  return CounterValues{};
}

int ProcessCounters::threads_attached() const {
  return 0;
}

struct SchedTrace::Impl {};

SchedTrace::SchedTrace() : impl_(nullptr) {}
SchedTrace::~SchedTrace() {
  delete impl_;
}
bool SchedTrace::available() const {
  return false;
}
const std::string& SchedTrace::unavailable() const {
  static const std::string why = "scheduler tracepoints need Linux perf_event_open";
  return why;
}
void SchedTrace::start() {}
void SchedTrace::stop() {}
nlohmann::json SchedTrace::summarize(const std::vector<int>&) const {
  return {{"available", false}, {"reason", unavailable()}};
}

}  // namespace concbench
