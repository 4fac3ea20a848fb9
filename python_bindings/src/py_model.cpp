#include "py_model.hpp"

#include <pybind11/stl.h>

#include <map>
#include <stdexcept>
#include <tuple>

#include "concbench/attribution.hpp"
#include "concbench/counters.hpp"
#include "concbench/kernels.hpp"

namespace concbench::python {

py::tuple task_to_python(const Task& t) {
  py::list steps;
  for (const Step& s : t.steps) {
    // A CPU step's kernel by name; echo_respond's kernel field is its ping pace, passed in ns
    // (0: back-to-back round trips); other steps have none.
    py::object kernel = py::str("");
    if (s.kind == StepKind::cpu && s.kernel < kernel_table().size())
      kernel = py::str(std::string(kernel_table()[s.kernel].name));
    else if (s.kind == StepKind::echo_respond)
      kernel = py::int_(echo_pace_ns(s));
    steps.append(py::make_tuple(step_kind_name(s.kind), s.native, kernel, s.bytes, s.units,
                                s.duration_ns, s.arg));
  }
  return py::make_tuple(
      t.id, t.seed, py::bytes(reinterpret_cast<const char*>(t.payload.data()), t.payload.size()),
      py::tuple(steps));
}

namespace {

// A Python exception as one line: pybind11 appends the traceback ("\n\nAt:\n  File ...") to
// what(); a report's error field, and the CLI's stderr, hold the exception's own line.
std::string first_line(const char* what) {
  std::string s(what);
  if (const size_t nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

class PyModel final : public Model {
 public:
  PyModel(PyObject* factory, std::string name) : factory_(factory), name_(std::move(name)) {}

  ~PyModel() override {
    // An abandoned cell may be destroyed after the interpreter is gone: then the references
    // are leaked rather than released without a GIL.
    if (!Py_IsInitialized()) {
      model_.release();
      tasks_.release();
      return;
    }
    py::gil_scoped_acquire gil;
    tasks_ = py::object();
    model_ = py::object();
  }

  void setup(const ModelConfig& cfg) override {
    Model::setup(cfg);
    // Before the Python model starts anything: its threads and processes are then inherited
    // by the counters.
    counters_ = std::make_unique<ProcessCounters>();
    py::gil_scoped_acquire gil;
    try {
      model_ = py::reinterpret_borrow<py::object>(factory_)();
      py::dict params;
      for (const auto& [k, v] : cfg.params.values()) params[py::str(k)] = v;
      model_.attr("setup")(cfg.workers, params, cfg.seed, py::cast(flag_),
                           py::arg("workload") = cfg.workload);
    } catch (py::error_already_set& e) {
      throw std::runtime_error(name_ + " setup: " + first_line(e.what()));
    }
  }

  BatchResult run(const Batch& batch) override {
    BatchResult out(batch.items());
    if (flag_->is_set()) return out;  // cancelled: nothing more runs
    py::gil_scoped_acquire gil;
    try {
      if (tasks_key_ != batch.tasks || !tasks_) {
        py::list l;
        for (const Task& t : *batch.tasks) l.append(task_to_python(t));
        tasks_ = py::tuple(l);
        tasks_key_ = batch.tasks;
      }
      // --trace: the model records into Python lists bounded by a track's share of the cap,
      // copied into the batch's buffers after the batch (outside its timed region).
      if (batch.trace) model_.attr("begin_trace")(batch.trace->per_buffer());
      const CounterValues c0 = counters_->read();
      py::tuple r;
      try {
        r = model_.attr("run")(tasks_, batch.rounds, batch.nonce, batch.latency_stride);
      } catch (...) {
        if (batch.trace) model_.attr("end_trace")();
        throw;
      }
      const CounterValues c1 = counters_->read();
      out.counters = c1.since(c0);
      if (batch.trace) copy_trace(model_.attr("end_trace")(), *batch.trace);
      convert(r, out);
    } catch (py::error_already_set& e) {
      throw std::runtime_error(name_ + ": " + first_line(e.what()));
    }
    out.model_metrics["counters_scope"] = {
        {"scope", "process: every thread, and child processes started after setup"},
        {"threads_attached", counters_->threads_attached()}};
    return out;
  }

  void teardown() override {
    py::gil_scoped_acquire gil;
    try {
      if (model_) model_.attr("teardown")();
    } catch (py::error_already_set& e) {
      throw std::runtime_error(name_ + " teardown: " + first_line(e.what()));
    }
  }

  void cancel() override { flag_->cancel(); }

 private:
  // [(worker, [(kind, t0, t1, item)], dropped)] from the model's Tracer (models/base.py) into
  // the runner's buffers: worker -1 is the dispatcher, the runner's "own thread".
  static void copy_trace(const py::object& tracks, BatchTrace& trace) {
    static const std::map<std::string, TraceKind, std::less<>> kinds = {
        {"task", TraceKind::task},
        {"task_async", TraceKind::task_async},
        {"io_wait", TraceKind::io_wait},
        {"idle", TraceKind::idle},
        {"in_flight", TraceKind::in_flight},
        {"serialize", TraceKind::serialize},
        {"deserialize", TraceKind::deserialize}};
    for (const py::handle t : tracks) {
      const auto [worker, events, dropped] = t.cast<std::tuple<int, py::list, uint64_t>>();
      TraceBuffer* b = worker < 0 ? trace.parent() : trace.worker(worker);
      if (!b) continue;  // a worker beyond the cell's count: none of the runner's tracks
      for (const py::handle e : events) {
        const auto [kind, t0, t1, arg] =
            e.cast<std::tuple<std::string, uint64_t, uint64_t, uint64_t>>();
        const auto k = kinds.find(kind);
        if (k == kinds.end()) throw std::runtime_error("trace: unknown event kind " + kind);
        b->add(k->second, t0, t1, arg);
      }
      b->note_dropped(dropped);
      // A model that keeps a clock but records no event (gevent's patch=child) records no
      // timeline, and the cell's trace summary says so.
      trace.recorded = trace.recorded || !events.empty() || dropped > 0;
    }
  }

  static void convert(const py::tuple& r, BatchResult& out) {
    if (r.size() != 11) throw std::runtime_error("model run() must return an 11-tuple");
    const auto checksums = r[0].cast<std::vector<uint64_t>>();
    const auto done = r[1].cast<std::string>();  // bytes, one per item
    const size_t items = out.done.size();
    if (checksums.size() != items || done.size() != items)
      throw std::runtime_error("model run() returned " + std::to_string(checksums.size()) +
                               " checksums for " + std::to_string(items) + " items");
    out.checksums = checksums;
    out.done.assign(done.begin(), done.end());
    out.latency_ns = r[2].cast<std::vector<uint64_t>>();
    for (const auto& f : r[3].cast<std::vector<std::pair<uint64_t, std::string>>>())
      out.failures.push_back({f.first, f.second});
    const auto metrics = r[4].cast<std::string>();
    if (!metrics.empty()) out.model_metrics = nlohmann::json::parse(metrics);
    // A process-based model names its workers: the runner reads their memory after the batch.
    if (auto it = out.model_metrics.find("worker_pids"); it != out.model_metrics.end()) {
      if (it->is_array())
        for (const auto& pid : *it)
          if (pid.is_number_integer()) out.worker_pids.push_back(pid.get<int>());
      out.model_metrics.erase(it);
    }
    // Where each worker's time went (models/base.py: WorkerClock), or why there is nothing.
    if (auto it = out.model_metrics.find("attribution"); it != out.model_metrics.end()) {
      if (it->is_array())
        for (const auto& w : *it) out.attribution.push_back(worker_attribution_from_json(w));
      out.model_metrics.erase(it);
    } else if (auto u = out.model_metrics.find("attribution_unavailable");
               u != out.model_metrics.end() && u->is_string()) {
      out.attribution_unavailable = u->get<std::string>();
      out.model_metrics.erase(u);
    } else {
      out.attribution_unavailable =
          "not attributed: the model returned no attribution records (models/base.py: "
          "WorkerClock, OutsideClock)";
    }
    out.observations.shared_counter = r[5].cast<uint64_t>();
    out.observations.rtt_ns = r[6].cast<std::vector<uint64_t>>();
    out.observations.companions_started = r[7].cast<uint64_t>();
    out.observations.one_way_ns = r[10].cast<std::vector<uint64_t>>();
    for (const auto& s : r[9].cast<std::vector<std::tuple<uint64_t, uint64_t, uint64_t>>>())
      out.observations.spins.push_back({std::get<0>(s), std::get<1>(s), std::get<2>(s)});
    if (!r[8].is_none()) {
      // (wall, user, sys), or with the CPU time of the worker processes over the same region
      // appended (child user, child sys): getrusage never sees live children.
      const auto span = r[8].cast<std::vector<uint64_t>>();
      if (span.size() != 3 && span.size() != 5)
        throw std::runtime_error("model run(): span must have 3 or 5 entries");
      out.span.wall_ns = span[0];
      out.span.cpu_user_ns = span[1];
      out.span.cpu_sys_ns = span[2];
      out.span.set = true;
      if (span.size() == 5) {
        out.child_cpu_user_ns = span[3];
        out.child_cpu_sys_ns = span[4];
        out.has_child_cpu = true;
      }
    }
  }

  PyObject* factory_;  // a strong reference owned by the registry (never released)
  std::string name_;
  std::shared_ptr<CancelFlag> flag_ = std::make_shared<CancelFlag>();
  std::unique_ptr<ProcessCounters> counters_;
  py::object model_;
  py::object tasks_;
  const std::vector<Task>* tasks_key_ = nullptr;
};

}  // namespace

ModelInfo python_model_info(
    std::string name, std::string description, py::object factory, bool single_worker,
    bool separate_processes, std::vector<ParamSpec> params, std::vector<std::string> workloads,
    std::map<std::string, std::map<std::string, std::string>> workload_params) {
  ModelInfo info;
  info.name = name;
  info.description = std::move(description);
  info.params = std::move(params);
  info.single_worker = single_worker;
  info.separate_processes = separate_processes;
  info.workloads = std::move(workloads);
  info.workload_params = std::move(workload_params);
  info.serial_baseline = "cpython.serial";
  // Not declared by the Python side: asyncio overlaps every task it holds, so the runner's sleep
  // bound assumes nothing beyond "no batch is shorter than its longest task's sleeps".
  info.in_flight_per_worker = 0;
  // The registry outlives every run; the factory is kept alive for the process's life.
  PyObject* f = factory.release().ptr();
  info.create = [f, name] { return std::make_unique<PyModel>(f, name); };
  return info;
}

}  // namespace concbench::python
