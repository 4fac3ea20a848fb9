#include "concbench/runner.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "concbench/attribution.hpp"
#include "concbench/checksum.hpp"
#include "concbench/clock.hpp"
#include "concbench/memory.hpp"
#include "concbench/model.hpp"
#include "concbench/trace.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

// Upper bound on calibration, so a batch of near-free tasks cannot ask for billions of items.
// 64 M items keep a batch's result slots under 600 MB.
constexpr uint64_t kMaxItemsPerBatch = 64'000'000;
constexpr size_t kFailureSamples = 5;
constexpr int kThreadSampleMs = 50;

// A workload's parameters for a cell: the suite's, then the model's own defaults for that
// workload, then the user's --param (last wins).
// `point` is the user's --param with each swept key at one of its values (sweep_points).
std::map<std::string, std::string> given_params(const RunConfig& cfg, const std::string& workload,
                                                const ModelInfo* model,
                                                const std::map<std::string, std::string>& point) {
  std::map<std::string, std::string> given;
  if (auto it = cfg.suite_params.find(workload); it != cfg.suite_params.end()) given = it->second;
  if (model) {
    if (auto it = model->workload_params.find(workload); it != model->workload_params.end())
      for (const auto& [k, v] : it->second) given[k] = v;
  }
  for (const auto& [k, v] : point) given[k] = v;
  return given;
}

const ParamSpec* find_spec(const std::vector<ParamSpec>& specs, const std::string& key) {
  for (const auto& s : specs)
    if (s.name == key) return &s;
  return nullptr;
}

// The values of a swept --param key=v1,v2 for a workload and a model, or nothing when the key
// is not swept for them: a key neither declares does not multiply their cells, and a text
// parameter (a placement such as list:0,2,4) keeps its commas.
std::vector<std::string> swept_values(const std::string& value, const ParamSpec* spec) {
  if (!spec || spec->kind == ParamSpec::Kind::text || value.find(',') == std::string::npos)
    return {};
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = value.find(',', start);
    std::string item =
        value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) throw UsageError("--param: empty value in '" + value + "'");
    if (std::find(out.begin(), out.end(), item) != out.end())
      throw UsageError("--param " + spec->name + ": '" + item + "' is given twice");
    out.push_back(std::move(item));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// The Cartesian product of the swept keys a (workload, model) pair declares: each point is the
// user's --param with every swept key at one value, in the order the values were given (the
// first key varying slowest).
std::vector<std::map<std::string, std::string>> sweep_points(const RunConfig& cfg,
                                                             const Workload* wl,
                                                             const ModelInfo* model) {
  std::vector<std::map<std::string, std::string>> points = {cfg.params};
  // params() returns by value: find_spec's pointer must point into a vector that outlives it.
  const std::vector<ParamSpec> wl_specs = wl ? wl->params() : std::vector<ParamSpec>{};
  for (const auto& [key, value] : cfg.params) {
    const ParamSpec* spec = find_spec(wl_specs, key);
    if (!spec && model) spec = find_spec(model->params, key);
    const std::vector<std::string> values = swept_values(value, spec);
    if (values.empty()) continue;
    std::vector<std::map<std::string, std::string>> next;
    for (const auto& p : points)
      for (const auto& v : values) {
        auto q = p;
        q[key] = v;
        next.push_back(std::move(q));
      }
    points = std::move(next);
  }
  return points;
}

// The swept keys' values at a point (what tells its cells apart).
std::map<std::string, std::string> sweep_of(const RunConfig& cfg,
                                            const std::map<std::string, std::string>& point) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : point)
    if (auto it = cfg.params.find(k); it != cfg.params.end() && it->second != v) out[k] = v;
  return out;
}

// A model takes a workload it lists (or every one, with an empty list), except that a task
// calling a Python function needs a model that can call one.
bool model_runs(const ModelInfo& info, const Workload& w) {
  if (w.python_callable()) return info.python_callables;
  return info.runs(w.name());
}

}  // namespace

std::vector<std::string> suite_names() {
  return {"smoke", "quick", "full"};
}

RunConfig suite_config(const std::string& name) {
  RunConfig c;
  c.suite = name;
  // The suites are the built-in workloads; a profile, plugin or Python function runs when named.
  for (const Workload* w : all_workloads())
    if (w->origin() == "builtin") c.workloads.emplace_back(w->name());
  c.models = {"serial",      "free_threads", "gil_threads", "thread_pool",
              "pinned_pool", "process_pool", "async",       "async_mt"};
  const int cpus = std::max(1u, std::thread::hardware_concurrency());
  if (name == "smoke") {
    // Seconds in all: enough to exercise every path, far too little to mean anything.
    c.workers = {1, 2};
    c.repetitions = 2;
    c.min_time_s = 0;
    c.timeout_s = 60;
    c.suite_params = {
        {"cpu.spin", {{"tasks", "8"}, {"units", "200"}}},
        {"cpu.pidigits", {{"tasks", "4"}, {"units", "50"}}},
        {"io.sleep", {{"tasks", "8"}, {"sleep_us", "200"}}},
        {"io.pipe_echo", {{"tasks", "8"}, {"round_trips", "4"}}},
        {"overhead.noop", {{"tasks", "200"}}},
        {"cpu.counter_race", {{"units", "20000"}}},
        {"cpu.sha256", {{"tasks", "4"}, {"units", "16"}}},
        {"latency.echo_under_load", {{"round_trips", "20"}, {"max_cpu_units", "300000"}}},
        {"latency.echo_long_hold",
         {{"round_trips", "10"}, {"hold_us", "2000"}, {"max_cpu_units", "300000"}}},
        {"latency.paced_ping",
         {{"round_trips", "3"}, {"pace_ms", "5"}, {"max_cpu_units", "300000"}}},
        {"cpu.stream", {{"tasks", "4"}, {"units", "2"}, {"buffer_bytes", "1048576"}}},
        {"cpu.false_sharing", {{"tasks", "4"}, {"units", "20000"}}},
        {"mixed.cpu_io", {{"tasks", "16"}, {"cpu_us", "50"}, {"io_us", "200"}}},
        {"cpu.refcount", {{"tasks", "8"}, {"units", "20"}}},
    };
  } else if (name == "quick") {
    c.workers = {1, 2, 4};
    c.repetitions = 5;
    c.min_time_s = 0.2;
    c.timeout_s = 120;
    // A spinner on one event loop runs to this bound (about 1.3 s here): enough to show the
    // stall, short enough for the suite.
    c.suite_params = {{"latency.echo_under_load", {{"max_cpu_units", "1000000"}}},
                      {"latency.echo_long_hold", {{"max_cpu_units", "1000000"}}},
                      {"latency.paced_ping",
                       {{"round_trips", "5"}, {"pace_ms", "50"}, {"max_cpu_units", "1000000"}}}};
  } else if (name == "full") {
    for (int w = 1; w <= 2 * cpus; w *= 2) c.workers.push_back(w);
    if (c.workers.back() != 2 * cpus) c.workers.push_back(2 * cpus);
    c.repetitions = 10;
    c.min_time_s = 0.5;
    c.timeout_s = 600;
    c.suite_params = {{"latency.echo_under_load", {{"max_cpu_units", "5000000"}}},
                      {"latency.echo_long_hold", {{"max_cpu_units", "5000000"}}},
                      {"latency.paced_ping", {{"max_cpu_units", "5000000"}}}};
  } else {
    throw UsageError("unknown suite '" + name + "' (smoke, quick, full)");
  }
  return c;
}

void validate(const RunConfig& cfg) {
  if (cfg.workloads.empty()) throw UsageError("no workloads selected");
  if (cfg.models.empty()) throw UsageError("no models selected");
  if (cfg.workers.empty()) throw UsageError("no worker counts selected");
  for (int w : cfg.workers)
    if (w < 1 || w > 4096)
      throw UsageError("workers: " + std::to_string(w) + " is outside [1, 4096]");
  if (cfg.repetitions < 1 || cfg.repetitions > 100000)
    throw UsageError("repetitions: " + std::to_string(cfg.repetitions) + " is outside [1, 100000]");
  if (!(cfg.min_time_s >= 0) || cfg.min_time_s > 3600)
    throw UsageError("min-time: must be between 0 and 3600 seconds");
  if (!(cfg.timeout_s > 0) || cfg.timeout_s > 86400)
    throw UsageError("timeout: must be more than 0 and at most 86400 seconds");
  std::set<std::string> declared;
  for (const auto& name : cfg.models)
    if (!find_model(name)) throw UsageError("unknown model '" + name + "' (see bench_runner list)");
  for (const auto& name : cfg.workloads) {
    const Workload* w = find_workload(name);
    if (!w) throw UsageError("unknown workload '" + name + "' (see bench_runner list)");
    for (const auto& s : w->params()) declared.insert(s.name);
    for (const auto& point : sweep_points(cfg, w, nullptr))
      Params::resolve(w->params(), given_params(cfg, name, nullptr, point), name);
    for (const auto& m : cfg.models)
      if (const ModelInfo* info = find_model(m); info && model_runs(*info, *w))
        for (const auto& point : sweep_points(cfg, w, info))
          Params::resolve(w->params(), given_params(cfg, name, info, point), name + " under " + m);
  }
  for (const auto& name : cfg.models) {
    const ModelInfo* m = find_model(name);
    for (const auto& s : m->params) declared.insert(s.name);
    for (const auto& point : sweep_points(cfg, nullptr, m)) {
      const Params mp = Params::resolve(m->params, point, name);
      if (m->validate) m->validate(mp);
    }
  }
  if (expand_matrix(cfg).empty())
    throw UsageError("nothing to run: the selected workloads cannot run under the selected models");
  for (const auto& [k, v] : cfg.params)
    if (!declared.count(k))
      throw UsageError("parameter '" + k + "' is not declared by any selected workload or model");
}

std::vector<CellSpec> expand_matrix(const RunConfig& cfg) {
  std::vector<CellSpec> cells;
  for (const auto& w : cfg.workloads) {
    const Workload* wl = find_workload(w);
    // Points of the workload's own swept keys outermost, so the cells of one point sit together;
    // a model's swept keys multiply that model's cells within each point.
    for (const auto& wpoint : sweep_points(cfg, wl, nullptr)) {
      for (const auto& m : cfg.models) {
        const ModelInfo* info = find_model(m);
        if (info && wl && !model_runs(*info, *wl)) continue;
        // A workload whose tasks share memory cannot run across processes: no such cell.
        if (info && wl && info->separate_processes && wl->needs_shared_memory()) continue;
        for (const auto& point : sweep_points(cfg, wl, info)) {
          bool same_workload_point = true;
          for (const auto& [k, v] : sweep_of(cfg, wpoint)) same_workload_point &= point.at(k) == v;
          if (!same_workload_point) continue;
          const auto sweep = sweep_of(cfg, point);
          const int fixed = wl ? wl->required_workers(Params::resolve(
                                     wl->params(), given_params(cfg, w, info, point), w))
                               : 0;
          if (info && info->single_worker) {
            cells.push_back({w, m, 1, sweep});
          } else if (fixed > 0) {
            cells.push_back({w, m, fixed, sweep});  // the workload's tasks must all run at once
          } else {
            for (int n : cfg.workers) cells.push_back({w, m, n, sweep});
          }
        }
      }
    }
  }
  return cells;
}

namespace {

// Shared between the cell's thread and the watchdog (the caller). Held by shared_ptr so an
// abandoned cell thread never touches freed memory.
struct CellState {
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  bool cancelled = false;
  // OS threads of this process, sampled by the watchdog while the cell runs and by the cell
  // thread after setup and after each repetition (persistent pools are seen even in a cell
  // shorter than the watchdog's period).
  int threads_max = 0, threads_min = 0, thread_samples = 0;
  void sample_threads() {  // with mu held
    if (const auto n = os_thread_count()) {
      threads_max = thread_samples ? std::max(threads_max, *n) : *n;
      threads_min = thread_samples ? std::min(threads_min, *n) : *n;
      ++thread_samples;
    }
  }
  std::unique_ptr<Model> model;  // set under mu once created
  CellResult result;             // written by the cell thread under mu
};

// A batch yields about this many latency samples; below it every item is timed.
constexpr uint64_t kLatencySamples = 8192;

uint64_t latency_stride_for(uint64_t items) {
  uint64_t stride = 1;
  while (items / stride > kLatencySamples) stride <<= 1;
  return stride;
}

// What one sampled item costs the worker beyond the task: two clock reads and a CPU sample.
// Measured once per process, the minimum of several trials (the cost with nothing in the way).
double sample_cost_ns() {
  static const double cost = [] {
    constexpr int kIters = 20000;
    double best = 1e300;
    for (int trial = 0; trial < 5; ++trial) {
      std::vector<int> seen;
      uint64_t sink = 0;
      const uint64_t t0 = monotonic_ns();
      for (int i = 0; i < kIters; ++i) {
        const uint64_t a = monotonic_ns();
        if (const int cpu = sched_getcpu(); cpu >= 0 && seen.empty()) seen.push_back(cpu);
        sink += monotonic_ns() - a;
      }
      const uint64_t t1 = monotonic_ns();
      if (sink == ~uint64_t{0}) seen.clear();  // keeps the loop from being optimised away
      best = std::min(best, static_cast<double>(t1 - t0) / kIters);
    }
    return best;
  }();
  return cost;
}

// A fresh nonce for every batch, unpredictable across processes: results cannot be carried from
// one batch (or run) to the next.
uint64_t next_nonce() {
  static std::atomic<uint64_t> counter{[] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }()};
  return mix64(counter.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed));
}

// What the runner itself knows about a cell's tasks, computed once, outside any timed region.
struct TaskFacts {
  std::vector<uint64_t> sleep_ns;  // per task: the sum of its sleep steps
  bool any_sleep = false;
};

TaskFacts task_facts(const TaskSet& ts) {
  TaskFacts f;
  f.sleep_ns.reserve(ts.tasks.size());
  for (const Task& t : ts.tasks) {
    uint64_t s = 0;
    for (const Step& st : t.steps)
      if (st.kind == StepKind::sleep) s += st.duration_ns;
    f.sleep_ns.push_back(s);
    f.any_sleep = f.any_sleep || s > 0;
  }
  return f;
}

// The worker processes' memory, summed: what their address spaces cost (USS alone, PSS with
// their share of what they share, peak RSS each, summed: an upper bound on the peak of the sum).
nlohmann::json workers_memory(const std::vector<int>& pids) {
  uint64_t uss = 0, pss = 0, peak = 0;
  std::string unavailable;
  bool all = true;
  for (const int pid : pids) {
    const ProcessMemory m = process_memory(pid);
    if (!m.uss_bytes || !m.pss_bytes || !m.peak_rss_bytes) {
      all = false;
      if (unavailable.empty()) unavailable = m.unavailable;
      continue;
    }
    uss += *m.uss_bytes;
    pss += *m.pss_bytes;
    peak += *m.peak_rss_bytes;
  }
  const auto or_null = [&](uint64_t v) {
    return all ? nlohmann::json(v) : nlohmann::json(nullptr);
  };
  return {
      {"workers", pids.size()},
      {"uss_bytes", or_null(uss)},
      {"pss_bytes", or_null(pss)},
      {"peak_rss_bytes", or_null(peak)},
      {"unavailable", unavailable.empty() ? nlohmann::json(nullptr) : nlohmann::json(unavailable)}};
}

RepetitionResult measure_repetition(Model& model, Batch& batch, const TaskSet& ts,
                                    const TaskFacts& facts, const Workload& workload,
                                    const Params& wparams, const ModelInfo& info, int workers) {
  RepetitionResult r;
  batch.nonce = next_nonce();
  batch.latency_stride = latency_stride_for(batch.items());
  r.rounds = batch.rounds;
  r.latency_stride = batch.latency_stride;
  const std::optional<uint64_t> steal0 = machine_steal_ns();
  const CpuTimes c0 = process_cpu_times();
  const uint64_t t0 = monotonic_ns();
  BatchResult b = model.run(batch);
  const uint64_t t1 = monotonic_ns();
  const CpuTimes c1 = process_cpu_times();
  const std::optional<uint64_t> steal1 = machine_steal_ns();
  r.outer_wall_ns = t1 - t0;
  if (b.span.set) {
    r.wall_ns = b.span.wall_ns;
    r.cpu_user_ns = b.span.cpu_user_ns;
    r.cpu_sys_ns = b.span.cpu_sys_ns;
  } else {
    r.wall_ns = r.outer_wall_ns;
    r.cpu_user_ns = c1.user_ns - c0.user_ns;
    r.cpu_sys_ns = c1.sys_ns - c0.sys_ns;
  }
  if (b.has_child_cpu) {
    r.cpu_user_ns += b.child_cpu_user_ns;
    r.cpu_sys_ns += b.child_cpu_sys_ns;
    r.cpu_covers_children = true;
  }

  const size_t n = ts.tasks.size();
  uint64_t slept = 0, longest = 0;
  for (uint64_t k = 0; k < b.done.size(); ++k) {
    if (!b.done[k]) continue;
    ++r.tasks;
    if (b.checksums[k] != seal(ts.expected[k % n], batch.item_nonce(k))) {
      if (r.wrong_checksums++ < kFailureSamples)
        r.failure_samples.push_back("item " + std::to_string(k) + ": checksum mismatch");
    }
    if (facts.any_sleep) {
      slept += facts.sleep_ns[k % n];
      longest = std::max(longest, facts.sleep_ns[k % n]);
    }
  }
  // A sleep lasts at least what it asked for, on the clock the runner reads: the batch cannot
  // have taken less than its longest task's sleeps, nor less than all sleeps spread over the
  // tasks the model can have in progress at once. The check lives here, apart from the code
  // being measured, so that a model that sleeps short cannot verify.
  if (slept > 0) {
    const uint64_t per_worker = info.in_flight_per_worker > 0
                                    ? static_cast<uint64_t>(info.in_flight_per_worker)
                                    : batch.items();
    const uint64_t concurrency =
        std::min<uint64_t>(batch.items(), static_cast<uint64_t>(workers) * per_worker);
    const uint64_t bound = std::max(longest, slept / std::max<uint64_t>(concurrency, 1));
    if (r.outer_wall_ns < bound) {
      ++r.wrong_checksums;
      r.failure_samples.insert(r.failure_samples.begin(),
                               "the batch slept " + std::to_string(slept) + " ns over at most " +
                                   std::to_string(concurrency) + " tasks at once, yet took " +
                                   std::to_string(r.outer_wall_ns) + " ns: sleeps ended early");
    }
  }
  r.failed_tasks = b.failures.size();
  for (size_t i = 0; i < b.failures.size() && r.failure_samples.size() < kFailureSamples; ++i)
    r.failure_samples.push_back("item " + std::to_string(b.failures[i].item) + ": " +
                                b.failures[i].reason);
  r.not_run = batch.items() - r.tasks - std::min<uint64_t>(r.failed_tasks, batch.items() - r.tasks);
  if (r.not_run == 0 && r.failed_tasks == 0) {
    if (std::string why = workload.verify_batch(wparams, ts, b.observations); !why.empty()) {
      ++r.wrong_checksums;
      r.failure_samples.insert(r.failure_samples.begin(), why);
    }
  }
  r.verified = r.wrong_checksums == 0 && r.failed_tasks == 0 && r.not_run == 0;
  r.throughput_per_s =
      r.wall_ns ? static_cast<double>(r.tasks) * 1e9 / static_cast<double>(r.wall_ns) : 0;
  std::vector<uint64_t> samples = std::move(b.latency_ns);
  std::erase(samples, BatchResult::kNoSample);
  if (!samples.empty() && r.tasks > 0)
    r.instrumentation_ns_per_item =
        sample_cost_ns() * static_cast<double>(samples.size()) / static_cast<double>(r.tasks);
  r.latency = latency_summary(std::move(samples));
  r.counters = b.counters;
  if (!b.worker_pids.empty()) r.memory = workers_memory(b.worker_pids);
  r.worker_pids = b.worker_pids;
  r.attribution = attribute_repetition(r.wall_ns, b.attribution, b.attribution_unavailable,
                                       steal0 && steal1 && *steal1 >= *steal0
                                           ? std::optional<uint64_t>(*steal1 - *steal0)
                                           : std::nullopt);
  r.metrics = workload.metrics(wparams, r.tasks, r.wall_ns, b.observations);
  r.model_metrics = std::move(b.model_metrics);
  return r;
}

// Like Google Benchmark's: grow the rounds until one batch lasts min-time, from the measured
// time of the last trial (aiming 20% above, so ordinary noise keeps repetitions over it), by at
// most 10x a step; a trial shorter than a tenth of min-time says little, so it only earns 10x.
uint64_t next_rounds(uint64_t rounds, uint64_t wall_ns, double min_time_s, uint64_t cap) {
  const double min_ns = min_time_s * 1e9;
  double mult = 10;
  if (wall_ns > 0 && static_cast<double>(wall_ns) > min_ns / 10)
    mult = std::min(10.0, 1.2 * min_ns / static_cast<double>(wall_ns));
  const auto grown = static_cast<uint64_t>(std::ceil(static_cast<double>(rounds) * mult));
  return std::clamp<uint64_t>(std::max(grown, rounds + 1), 1, cap);
}

void cell_body(const std::shared_ptr<CellState>& st, const CellSpec& spec, const RunConfig& cfg,
               const ProgressCallback& progress, size_t index, size_t total,
               uint64_t fixed_rounds) {
  auto phase = [&](const std::string& p) {
    if (progress) progress(spec, index, total, p);
  };
  const Workload& workload = *find_workload(spec.workload);
  const ModelInfo& info = *find_model(spec.model);
  std::map<std::string, std::string> point = cfg.params;
  for (const auto& [k, v] : spec.sweep) point[k] = v;
  auto given = given_params(cfg, spec.workload, &info, point);
  const auto declares = [&](const char* key) {
    for (const auto& ps : workload.params())
      if (ps.name == key) return true;
    return false;
  };
  if (cfg.weak_scaling && declares("tasks")) {
    const Params base = Params::resolve(workload.params(), given, spec.workload);
    given["tasks"] = std::to_string(base.get_int("tasks") * spec.workers);
  }
  const Params wparams = Params::resolve(workload.params(), given, spec.workload);
  ModelConfig mc;
  mc.workers = spec.workers;
  mc.params = Params::resolve(info.params, point, spec.model);
  mc.seed = cfg.seed;
  mc.workload = spec.workload;
  {
    std::lock_guard lock(st->mu);
    st->result.params = wparams.values();
    st->result.workload_params = wparams.values();
    st->result.workload_origin = std::string(workload.origin());
    for (const auto& [k, v] : mc.params.values()) st->result.params[k] = v;
  }
  const TaskSet ts = workload.make_tasks(wparams, cfg.seed);
  const TaskFacts facts = task_facts(ts);
  Batch batch{&ts.tasks, 1};

  std::unique_ptr<Model> model = info.create();
  Model* m = model.get();
  {
    std::lock_guard lock(st->mu);
    st->model = std::move(model);
    if (st->cancelled) return;
  }
  auto cancelled = [&] {
    std::lock_guard lock(st->mu);
    return st->cancelled;
  };
  // --trace: the first measured repetition records its timeline into buffers made (and
  // touched) before it; every other batch runs with none.
  std::unique_ptr<BatchTrace> trace;
  // --sched-trace: opened (per CPU) before the cell's first batch, enabled around the traced one.
  std::unique_ptr<SchedTrace> sched = cfg.sched_trace ? std::make_unique<SchedTrace>() : nullptr;
  auto measure = [&](bool traced = false) {
    if (traced && !cfg.trace_path.empty()) {
      trace = std::make_unique<BatchTrace>(spec.workers, cfg.trace_cap);
      batch.trace = trace.get();
    }
    if (traced && sched) sched->start();
    RepetitionResult r =
        measure_repetition(*m, batch, ts, facts, workload, wparams, info, spec.workers);
    if (traced && sched) {
      sched->stop();
      std::vector<int> pids = r.worker_pids;
      pids.push_back(static_cast<int>(getpid()));
      nlohmann::json s = sched->summarize(pids);
      std::lock_guard lock(st->mu);
      st->result.sched_trace = std::move(s);
    }
    batch.trace = nullptr;
    return r;
  };
  // The cell's peak RSS starts here (the tasks and the model's setup are the cell's).
  const bool peak_reset = reset_peak_rss();
  phase("setup");
  uint64_t t0 = monotonic_ns();
  m->setup(mc);
  const uint64_t setup_ns = monotonic_ns() - t0;
  {
    std::lock_guard lock(st->mu);
    st->sample_threads();
  }

  phase("warm-up");
  const RepetitionResult warm = measure();
  const uint64_t cap = std::max<uint64_t>(1, kMaxItemsPerBatch / ts.tasks.size());
  const bool calibrating = cfg.min_time_s > 0 && workload.calibrate();
  const auto min_ns = static_cast<uint64_t>(cfg.min_time_s * 1e9);
  int trials = 0;
  if (fixed_rounds > 0) {
    batch.rounds = fixed_rounds;
  } else if (calibrating && warm.verified) {
    uint64_t wall = warm.wall_ns;
    while (wall < min_ns && batch.rounds < cap && !cancelled()) {
      batch.rounds = next_rounds(batch.rounds, wall, cfg.min_time_s, cap);
      phase("calibrating: " + std::to_string(batch.rounds) + " rounds");
      const RepetitionResult trial = measure();
      ++trials;
      if (!trial.verified) break;  // the repetitions will say what went wrong
      wall = trial.wall_ns;
    }
  }
  {
    std::lock_guard lock(st->mu);
    st->result.setup_ns = setup_ns;
    st->result.warmup_wall_ns = warm.wall_ns;
    st->result.rounds = batch.rounds;
    st->result.tasks_per_round = ts.tasks.size();
    st->result.calibration_trials = trials;
    if (!warm.verified) {
      st->result.status = "failed";
      st->result.error = "warm-up did not verify: " + (warm.failure_samples.empty()
                                                           ? std::string("tasks did not complete")
                                                           : warm.failure_samples.front());
    }
  }
  // A repetition that comes in under min-time (the machine sped up, or calibration was near the
  // edge) is not kept: the rounds grow and it is measured again, a bounded number of times.
  constexpr int kMaxRetakes = 3;
  int retakes = 0;
  for (int rep = 0; rep < cfg.repetitions; ++rep) {
    if (cancelled()) break;
    phase("rep " + std::to_string(rep + 1) + "/" + std::to_string(cfg.repetitions));
    const bool traced = rep == 0;
    RepetitionResult r = measure(traced);
    while (calibrating && fixed_rounds == 0 && r.verified && r.wall_ns < min_ns &&
           batch.rounds < cap && retakes < kMaxRetakes && !cancelled()) {
      ++retakes;
      batch.rounds = next_rounds(batch.rounds, r.wall_ns, cfg.min_time_s, cap);
      r = measure(traced);
    }
    if (traced && trace) {
      CellTrace ct =
          cell_trace(*trace, info.separate_processes ? "worker process" : "worker", cfg.trace_cap);
      trace.reset();
      std::lock_guard lock(st->mu);
      st->result.trace = {{"events", std::move(ct.events)}, {"summary", std::move(ct.summary)}};
    }
    r.short_of_min_time = calibrating && r.wall_ns < min_ns;
    std::lock_guard lock(st->mu);
    if (st->cancelled && r.not_run > 0) break;  // cut short by the timeout: not a measurement
    if (!r.verified && st->result.status == "ok") {
      st->result.status = "failed";
      st->result.error =
          r.failure_samples.empty() ? "tasks did not complete" : r.failure_samples.front();
    }
    st->result.rounds = batch.rounds;
    st->result.short_repetitions_retaken = retakes;
    st->result.repetitions.push_back(std::move(r));
    st->sample_threads();
  }
  {
    const ProcessMemory self = process_memory(0);
    uint64_t workers_peak = 0;
    bool have_workers = false;
    for (const auto& rep : st->result.repetitions)
      if (rep.memory.is_object() && rep.memory["peak_rss_bytes"].is_number()) {
        workers_peak = std::max(workers_peak, rep.memory["peak_rss_bytes"].get<uint64_t>());
        have_workers = true;
      }
    nlohmann::json mem = {
        {"peak_rss_bytes", self.peak_rss_bytes ? nlohmann::json(*self.peak_rss_bytes + workers_peak)
                                               : nlohmann::json(nullptr)},
        {"process_peak_rss_bytes",
         self.peak_rss_bytes ? nlohmann::json(*self.peak_rss_bytes) : nlohmann::json(nullptr)},
        {"workers_peak_rss_bytes",
         have_workers ? nlohmann::json(workers_peak) : nlohmann::json(nullptr)},
        // Where the kernel refuses the reset, this process's peak is its lifetime's.
        {"process_peak_since", peak_reset ? "cell start" : "process start"}};
    if (!self.unavailable.empty()) mem["unavailable"] = self.unavailable;
    std::lock_guard lock(st->mu);
    st->result.memory = std::move(mem);
  }
  phase("teardown");
  t0 = monotonic_ns();
  m->teardown();
  std::lock_guard lock(st->mu);
  st->result.teardown_ns = monotonic_ns() - t0;
}

CellResult run_cell_impl(const CellSpec& spec, const RunConfig& cfg,
                         const ProgressCallback& progress, size_t index, size_t total,
                         uint64_t fixed_rounds = 0) {
  auto st = std::make_shared<CellState>();
  st->result.workload = spec.workload;
  st->result.model = spec.model;
  st->result.workers = spec.workers;

  std::thread worker([st, spec, cfg, progress, index, total, fixed_rounds] {
    try {
      cell_body(st, spec, cfg, progress, index, total, fixed_rounds);
    } catch (const std::exception& e) {
      std::lock_guard lock(st->mu);
      st->result.status = "error";
      st->result.error = e.what();
    } catch (...) {
      std::lock_guard lock(st->mu);
      st->result.status = "error";
      st->result.error = "unknown exception";
    }
    std::lock_guard lock(st->mu);
    st->finished = true;
    st->cv.notify_all();
  });

  std::unique_lock lock(st->mu);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(cfg.timeout_s));
  // The watchdog wakes every kThreadSampleMs to count this process's threads (one read of
  // /proc/self/status, a few microseconds): threads a model starts per batch are seen too.
  constexpr auto kThreadSample = std::chrono::milliseconds(kThreadSampleMs);
  while (!st->finished && std::chrono::steady_clock::now() < deadline) {
    st->cv.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + kThreadSample),
                      [&] { return st->finished; });
    if (!st->finished) st->sample_threads();
  }
  const auto record_threads = [&](CellResult& r) {
    r.memory["os_threads"] = {{"max", st->threads_max},
                              {"min", st->threads_min},
                              {"samples", st->thread_samples},
                              {"every_ms", kThreadSampleMs}};
  };
  if (!st->finished) {
    st->cancelled = true;
    if (st->model) st->model->cancel();
    // Cooperative cancellation reaches a running task at its next checkpoint or IO wait slice;
    // a cell that does not stop within the grace period is abandoned, never waited for.
    const auto grace = std::chrono::duration<double>(std::clamp(cfg.timeout_s, 2.0, 10.0));
    const bool stopped = st->cv.wait_for(lock, grace, [&] { return st->finished; });
    CellResult r = st->result;
    record_threads(r);
    r.status = "timed_out";
    r.error = "cell exceeded --timeout " + std::to_string(cfg.timeout_s) + " s" +
              (stopped ? "" : "; its workers did not stop and were abandoned");
    lock.unlock();
    if (stopped) {
      worker.join();
    } else {
      worker.detach();
    }
    return r;
  }
  CellResult r = st->result;
  record_threads(r);
  lock.unlock();
  worker.join();
  return r;
}

}  // namespace

CellResult run_cell(const CellSpec& spec, const RunConfig& cfg) {
  return run_cell_impl(spec, cfg, {}, 0, 1);
}

std::vector<CellResult> run_suite(const RunConfig& cfg, const CellCallback& on_cell,
                                  const ProgressCallback& progress) {
  validate(cfg);
  const std::vector<CellSpec> cells = expand_matrix(cfg);
  std::vector<CellResult> results;
  if (!cfg.interleave || cfg.repetitions == 1) {
    for (size_t i = 0; i < cells.size(); ++i) {
      results.push_back(run_cell_impl(cells[i], cfg, progress, i, cells.size()));
      if (on_cell) on_cell(results.back(), i, cells.size());
    }
    return results;
  }
  // Interleaved: pass r visits every cell for one repetition. Each visit sets the model up and
  // warms it afresh (untimed); the first calibrates and later ones reuse its rounds, so every
  // repetition of a cell measures the same batch.
  RunConfig one = cfg;
  one.repetitions = 1;
  results.resize(cells.size());
  for (int pass = 0; pass < cfg.repetitions; ++pass) {
    for (size_t i = 0; i < cells.size(); ++i) {
      CellResult& acc = results[i];
      const bool last = pass == cfg.repetitions - 1;
      if (pass > 0 && acc.status != "ok") {  // failed or timed out: no more visits
        if (on_cell && last) on_cell(acc, i, cells.size());
        continue;
      }
      CellResult r =
          run_cell_impl(cells[i], one, progress, i, cells.size(), pass == 0 ? 0 : acc.rounds);
      if (pass == 0) {
        acc = std::move(r);
      } else {
        for (auto& rep : r.repetitions) acc.repetitions.push_back(std::move(rep));
        if (r.status != "ok") {
          acc.status = r.status;
          acc.error = r.error;
        }
      }
      if (on_cell && last) on_cell(acc, i, cells.size());
    }
  }
  return results;
}

}  // namespace concbench
