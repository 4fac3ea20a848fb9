#include "concbench/workload.hpp"

#include <mutex>
#include <stdexcept>

#include "concbench/checksum.hpp"
#include "concbench/kernels.hpp"

namespace concbench {

// Each workload lives in workloads/<name>/ and exposes one accessor; this list is the registry.
const Workload& cpu_spin_workload();
const Workload& cpu_pidigits_workload();
const Workload& io_sleep_workload();
const Workload& io_pipe_echo_workload();
const Workload& overhead_noop_workload();
const Workload& cpu_counter_race_workload();
const Workload& cpu_sha256_workload();
const Workload& latency_echo_under_load_workload();
const Workload& latency_echo_long_hold_workload();
const Workload& latency_paced_ping_workload();
const Workload& cpu_stream_workload();
const Workload& cpu_false_sharing_workload();
const Workload& mixed_cpu_io_workload();
const Workload& cpu_refcount_workload();

nlohmann::json Workload::metrics(const Params&, uint64_t, uint64_t, const Observations&) const {
  return nlohmann::json::object();
}

std::vector<ParamSpec> common_params(int64_t default_tasks, int64_t default_payload_bytes) {
  return {
      ParamSpec::integer("tasks", "tasks per batch", default_tasks, 1, 100'000'000),
      ParamSpec::integer("payload_bytes", "bytes of payload each task carries",
                         default_payload_bytes, 0, 1LL << 30),
      ParamSpec::choice("fault", "inject a fault into task 0 (to test failure reporting)", "none",
                        {"none", "throw", "wrong_checksum"}),
  };
}

TaskSet Workload::make_tasks(const Params& p, uint64_t seed) const {
  TaskSet ts = generate(p, seed);
  const std::string& fault = p.get("fault");
  if (fault != "none" && !ts.tasks.empty()) {
    Step s;
    s.kind = StepKind::cpu;
    s.kernel = kernel_id("fault");
    s.units = 1;
    s.arg = fault == "throw" ? kFaultThrow : kFaultWrongResult;
    ts.tasks[0].steps.push_back(s);
  }
  return ts;
}

Task make_task(uint64_t id, uint64_t seed, int64_t payload_bytes) {
  Task t;
  t.id = id;
  t.seed = mix64(seed ^ mix64(id + 1));
  t.payload.resize(static_cast<size_t>(payload_bytes));
  fill_bytes(t.payload, t.seed ^ 0x7061796c6f6164ULL);
  return t;
}

TaskSet one_step_tasks(const Params& p, uint64_t seed, const Step& step,
                       const std::function<uint64_t(const Task&)>& predict) {
  TaskSet ts;
  const int64_t n = p.get_int("tasks");
  ts.tasks.reserve(static_cast<size_t>(n));
  ts.expected.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    Task t = make_task(static_cast<uint64_t>(i), seed, p.get_int("payload_bytes"));
    t.steps.push_back(step);
    ts.expected.push_back(fold(task_checksum_start(t), predict(t)));
    ts.tasks.push_back(std::move(t));
  }
  return ts;
}

namespace {

// The registry. Lock order: registry_mu is a leaf (nothing is called while holding it).
struct Registry {
  std::mutex mu;
  std::vector<const Workload*> all = {
      &cpu_spin_workload(),
      &cpu_pidigits_workload(),
      &io_sleep_workload(),
      &io_pipe_echo_workload(),
      &overhead_noop_workload(),
      &cpu_counter_race_workload(),
      &cpu_sha256_workload(),
      &latency_echo_under_load_workload(),
      &latency_echo_long_hold_workload(),
      &latency_paced_ping_workload(),
      &cpu_stream_workload(),
      &cpu_false_sharing_workload(),
      &mixed_cpu_io_workload(),
      &cpu_refcount_workload(),
  };
  // Owns what register_workload was given, replaced ones included (they may still be pointed at).
  std::vector<std::unique_ptr<Workload>> owned;
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

std::vector<const Workload*> all_workloads() {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  return r.all;
}

const Workload* find_workload(std::string_view name) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (const Workload* w : r.all)
    if (w->name() == name) return w;
  return nullptr;
}

void register_workload(std::unique_ptr<Workload> w) {
  if (!w) throw std::invalid_argument("register_workload: null workload");
  const std::string name(w->name());
  if (name.empty()) throw UsageError("a workload needs a name");
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (const Workload*& have : r.all) {
    if (have->name() != name) continue;
    if (!(have->python_callable() && w->python_callable()))
      throw UsageError("workload '" + name + "' is already defined (" +
                       std::string(have->origin()) + ")");
    have = w.get();
    r.owned.push_back(std::move(w));
    return;
  }
  r.all.push_back(w.get());
  r.owned.push_back(std::move(w));
}

}  // namespace concbench
