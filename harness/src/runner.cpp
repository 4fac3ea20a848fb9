#include "concbench/runner.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "concbench/clock.hpp"
#include "concbench/model.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

struct CpuTimes {
  uint64_t user_ns = 0, sys_ns = 0;
};

CpuTimes process_cpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto ns = [](const timeval& tv) {
    return static_cast<uint64_t>(tv.tv_sec) * 1'000'000'000ULL +
           static_cast<uint64_t>(tv.tv_usec) * 1000ULL;
  };
  return {ns(ru.ru_utime), ns(ru.ru_stime)};
}

// Upper bound on calibration, so a batch of near-free tasks cannot ask for billions of items.
constexpr uint64_t kMaxItemsPerBatch = 20'000'000;
constexpr size_t kFailureSamples = 5;

// A workload's parameters for a cell: the suite's, then the model's own defaults for that
// workload, then the user's --param (last wins).
std::map<std::string, std::string> given_params(const RunConfig& cfg, const std::string& workload,
                                                const ModelInfo* model) {
  std::map<std::string, std::string> given;
  if (auto it = cfg.suite_params.find(workload); it != cfg.suite_params.end()) given = it->second;
  if (model) {
    if (auto it = model->workload_params.find(workload); it != model->workload_params.end())
      for (const auto& [k, v] : it->second) given[k] = v;
  }
  for (const auto& [k, v] : cfg.params) given[k] = v;
  return given;
}

}  // namespace

std::vector<std::string> suite_names() {
  return {"smoke", "quick", "full"};
}

RunConfig suite_config(const std::string& name) {
  RunConfig c;
  c.suite = name;
  for (const Workload* w : all_workloads()) c.workloads.emplace_back(w->name());
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
        {"cpu.stream", {{"tasks", "4"}, {"units", "2"}, {"buffer_bytes", "1048576"}}},
        {"cpu.false_sharing", {{"tasks", "4"}, {"units", "20000"}}},
        {"mixed.cpu_io", {{"tasks", "16"}, {"cpu_us", "50"}, {"io_us", "200"}}},
    };
  } else if (name == "quick") {
    c.workers = {1, 2, 4};
    c.repetitions = 5;
    c.min_time_s = 0.2;
    c.timeout_s = 120;
    // A spinner on one event loop runs to this bound (about 1.3 s here): enough to show the
    // stall, short enough for the suite.
    c.suite_params = {{"latency.echo_under_load", {{"max_cpu_units", "1000000"}}}};
  } else if (name == "full") {
    for (int w = 1; w <= 2 * cpus; w *= 2) c.workers.push_back(w);
    if (c.workers.back() != 2 * cpus) c.workers.push_back(2 * cpus);
    c.repetitions = 10;
    c.min_time_s = 0.5;
    c.timeout_s = 600;
    c.suite_params = {{"latency.echo_under_load", {{"max_cpu_units", "5000000"}}}};
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
  for (const auto& name : cfg.workloads) {
    const Workload* w = find_workload(name);
    if (!w) throw UsageError("unknown workload '" + name + "' (see bench_runner list)");
    for (const auto& s : w->params()) declared.insert(s.name);
    Params::resolve(w->params(), given_params(cfg, name, nullptr), name);
    for (const auto& m : cfg.models)
      if (const ModelInfo* info = find_model(m); info && info->runs(name))
        Params::resolve(w->params(), given_params(cfg, name, info), name + " under " + m);
  }
  for (const auto& name : cfg.models) {
    const ModelInfo* m = find_model(name);
    if (!m) throw UsageError("unknown model '" + name + "' (see bench_runner list)");
    for (const auto& s : m->params) declared.insert(s.name);
    const Params mp = Params::resolve(m->params, cfg.params, name);
    if (m->validate) m->validate(mp);
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
    for (const auto& m : cfg.models) {
      const ModelInfo* info = find_model(m);
      if (info && !info->runs(w)) continue;
      const int fixed =
          wl ? wl->required_workers(Params::resolve(wl->params(), given_params(cfg, w, info), w))
             : 0;
      // A workload whose tasks share memory cannot run across processes: no such cell.
      if (info && wl && info->separate_processes && wl->needs_shared_memory()) continue;
      if (info && info->single_worker) {
        cells.push_back({w, m, 1});
      } else if (fixed > 0) {
        cells.push_back({w, m, fixed});  // the workload's tasks must all run at once
      } else {
        for (int n : cfg.workers) cells.push_back({w, m, n});
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
  std::unique_ptr<Model> model;  // set under mu once created
  CellResult result;             // written by the cell thread under mu
};

RepetitionResult measure_repetition(Model& model, const Batch& batch, const TaskSet& ts,
                                    const Workload& workload, const Params& wparams) {
  RepetitionResult r;
  const CpuTimes c0 = process_cpu();
  const uint64_t t0 = monotonic_ns();
  BatchResult b = model.run(batch);
  const uint64_t t1 = monotonic_ns();
  const CpuTimes c1 = process_cpu();
  r.wall_ns = t1 - t0;
  r.cpu_user_ns = c1.user_ns - c0.user_ns;
  r.cpu_sys_ns = c1.sys_ns - c0.sys_ns;

  const size_t n = ts.tasks.size();
  for (uint64_t k = 0; k < b.done.size(); ++k) {
    if (!b.done[k]) continue;
    ++r.tasks;
    if (b.checksums[k] != ts.expected[k % n]) {
      if (r.wrong_checksums++ < kFailureSamples)
        r.failure_samples.push_back("item " + std::to_string(k) + ": checksum mismatch");
    }
  }
  r.failed_tasks = b.failures.size();
  for (size_t i = 0; i < b.failures.size() && r.failure_samples.size() < kFailureSamples; ++i)
    r.failure_samples.push_back("item " + std::to_string(b.failures[i].item) + ": " +
                                b.failures[i].reason);
  r.not_run = batch.items() - r.tasks - std::min<uint64_t>(r.failed_tasks, batch.items() - r.tasks);
  r.verified = r.wrong_checksums == 0 && r.failed_tasks == 0 && r.not_run == 0;
  r.throughput_per_s =
      r.wall_ns ? static_cast<double>(r.tasks) * 1e9 / static_cast<double>(r.wall_ns) : 0;
  r.latency = latency_summary(std::move(b.latency_ns));
  r.counters = b.counters;
  r.metrics = workload.metrics(wparams, r.tasks, r.wall_ns, b.observations);
  r.model_metrics = std::move(b.model_metrics);
  return r;
}

void cell_body(const std::shared_ptr<CellState>& st, const CellSpec& spec, const RunConfig& cfg,
               const ProgressCallback& progress, size_t index, size_t total) {
  auto phase = [&](const std::string& p) {
    if (progress) progress(spec, index, total, p);
  };
  const Workload& workload = *find_workload(spec.workload);
  const ModelInfo& info = *find_model(spec.model);
  auto given = given_params(cfg, spec.workload, &info);
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
  mc.params = Params::resolve(info.params, cfg.params, spec.model);
  mc.seed = cfg.seed;
  {
    std::lock_guard lock(st->mu);
    st->result.params = wparams.values();
    for (const auto& [k, v] : mc.params.values()) st->result.params[k] = v;
  }
  const TaskSet ts = workload.make_tasks(wparams, cfg.seed);
  Batch batch{&ts.tasks, 1};

  std::unique_ptr<Model> model = info.create();
  Model* m = model.get();
  {
    std::lock_guard lock(st->mu);
    st->model = std::move(model);
    if (st->cancelled) return;
  }
  phase("setup");
  uint64_t t0 = monotonic_ns();
  m->setup(mc);
  const uint64_t setup_ns = monotonic_ns() - t0;

  phase("warm-up");
  RepetitionResult warm = measure_repetition(*m, batch, ts, workload, wparams);
  uint64_t rounds = 1;
  if (cfg.min_time_s > 0 && warm.wall_ns > 0 && workload.calibrate()) {
    const double want = cfg.min_time_s * 1e9 / static_cast<double>(warm.wall_ns);
    rounds = static_cast<uint64_t>(std::ceil(want));
    rounds =
        std::clamp<uint64_t>(rounds, 1, std::max<uint64_t>(1, kMaxItemsPerBatch / ts.tasks.size()));
  }
  batch.rounds = rounds;
  {
    std::lock_guard lock(st->mu);
    st->result.setup_ns = setup_ns;
    st->result.warmup_wall_ns = warm.wall_ns;
    st->result.rounds = rounds;
    st->result.tasks_per_round = ts.tasks.size();
    if (!warm.verified) {
      st->result.status = "failed";
      st->result.error = "warm-up did not verify: " + (warm.failure_samples.empty()
                                                           ? std::string("tasks did not complete")
                                                           : warm.failure_samples.front());
    }
  }
  for (int rep = 0; rep < cfg.repetitions; ++rep) {
    {
      std::lock_guard lock(st->mu);
      if (st->cancelled) break;
    }
    phase("rep " + std::to_string(rep + 1) + "/" + std::to_string(cfg.repetitions));
    RepetitionResult r = measure_repetition(*m, batch, ts, workload, wparams);
    std::lock_guard lock(st->mu);
    if (st->cancelled && r.not_run > 0) break;  // cut short by the timeout: not a measurement
    if (!r.verified && st->result.status == "ok") {
      st->result.status = "failed";
      st->result.error =
          r.failure_samples.empty() ? "tasks did not complete" : r.failure_samples.front();
    }
    st->result.repetitions.push_back(std::move(r));
  }
  phase("teardown");
  t0 = monotonic_ns();
  m->teardown();
  std::lock_guard lock(st->mu);
  st->result.teardown_ns = monotonic_ns() - t0;
}

CellResult run_cell_impl(const CellSpec& spec, const RunConfig& cfg,
                         const ProgressCallback& progress, size_t index, size_t total) {
  auto st = std::make_shared<CellState>();
  st->result.workload = spec.workload;
  st->result.model = spec.model;
  st->result.workers = spec.workers;

  std::thread worker([st, spec, cfg, progress, index, total] {
    try {
      cell_body(st, spec, cfg, progress, index, total);
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
  if (!st->cv.wait_until(lock, deadline, [&] { return st->finished; })) {
    st->cancelled = true;
    if (st->model) st->model->cancel();
    // Cooperative cancellation reaches a running task at its next checkpoint or IO wait slice;
    // a cell that does not stop within the grace period is abandoned, never waited for.
    const auto grace = std::chrono::duration<double>(std::clamp(cfg.timeout_s, 2.0, 10.0));
    const bool stopped = st->cv.wait_for(lock, grace, [&] { return st->finished; });
    CellResult r = st->result;
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
  for (size_t i = 0; i < cells.size(); ++i) {
    results.push_back(run_cell_impl(cells[i], cfg, progress, i, cells.size()));
    if (on_cell) on_cell(results.back(), i, cells.size());
  }
  return results;
}

}  // namespace concbench
