// _concbench: the C++ half of the Python package. Thin on purpose: the runner, report, counters
// and kernels are the harness's; this file converts and releases the GIL where C++ runs. JSON
// crosses the boundary as text (json.dumps / json.loads on the Python side), so there is one
// schema and one parser.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "callable_workload.hpp"
#include "concbench/checksum.hpp"
#include "concbench/compare.hpp"
#include "concbench/config.hpp"
#include "concbench/counters.hpp"
#include "concbench/exec_context.hpp"
#include "concbench/io_env.hpp"
#include "concbench/kernels.hpp"
#include "concbench/machine.hpp"
#include "concbench/model.hpp"
#include "concbench/process_settings.hpp"
#include "concbench/report.hpp"
#include "concbench/runner.hpp"
#include "concbench/trace.hpp"
#include "concbench/verdict.hpp"
#include "concbench/workload.hpp"
#include "py_model.hpp"

namespace py = pybind11;
using nlohmann::json;

namespace concbench::python {
namespace {

// Kernels callable from Python. With release_gil the GIL is dropped around the C++ loop, as an
// extension does with Py_BEGIN_ALLOW_THREADS, so Python threads run it in parallel; without, the
// calling thread keeps the GIL and every other Python thread waits. A CancelFlag, when given,
// stops the kernel at its next unit (a cell that timed out).
uint64_t run_kernel(const std::string& name, uint64_t units, uint64_t arg, uint64_t seed,
                    bool release_gil, const std::shared_ptr<CancelFlag>& cancel) {
  const KernelId id = kernel_id(name);
  if (name != "spin" && name != "pidigits" && name != "sha256")
    throw py::value_error("kernel '" + name + "' needs a run's shared state; not callable alone");
  std::atomic<uint32_t> local{0};
  std::atomic<uint32_t>& breaker = cancel ? cancel->breaker : local;
  ExecContext ctx(breaker, no_lock_hooks(), nullptr, 0);
  const KernelArgs args{units, arg, seed};
  const KernelFn fn = kernel_table()[id].fn;
  if (release_gil) {
    py::gil_scoped_release nogil;
    return fn(ctx, args);
  }
  return fn(ctx, args);
}

py::bytes fill(uint64_t n, uint64_t seed) {
  py::bytes b(nullptr, 0);
  PyObject* raw = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(n));
  if (!raw) throw py::error_already_set();
  b = py::reinterpret_steal<py::bytes>(raw);
  fill_bytes(std::span(reinterpret_cast<std::byte*>(PyBytes_AS_STRING(raw)), n), seed);
  return b;
}

uint64_t hash_buffer(const py::buffer& data, uint64_t seed) {
  const py::buffer_info info = data.request();
  const auto* p = static_cast<const std::byte*>(info.ptr);
  return hash_bytes(std::span(p, static_cast<size_t>(info.size * info.itemsize)), seed);
}

py::dict counter_dict(const CounterValues& v) {
  py::dict d;
  for (int i = 0; i < kCounterCount; ++i) {
    const auto c = static_cast<Counter>(i);
    const auto value = v.get(c);
    d[py::str(std::string(counter_name(c)))] = value ? py::cast(*value) : py::none();
  }
  return d;
}

std::string list_json() {
  auto params = [](const std::vector<ParamSpec>& specs) {
    json out = json::array();
    for (const auto& p : specs) {
      json j = {{"name", p.name}, {"help", p.help}, {"default", p.default_value}};
      if (p.kind == ParamSpec::Kind::integer) {
        j["kind"] = "integer";
        j["min"] = p.min;
        j["max"] = p.max;
      } else if (p.kind == ParamSpec::Kind::choice) {
        j["kind"] = "choice";
        j["choices"] = p.choices;
      } else {
        j["kind"] = "text";
      }
      out.push_back(j);
    }
    return out;
  };
  json out = {{"workloads", json::array()}, {"models", json::array()}, {"suites", suite_names()}};
  for (const Workload* w : all_workloads())
    out["workloads"].push_back({{"name", std::string(w->name())},
                                {"description", std::string(w->description())},
                                {"origin", std::string(w->origin())},
                                {"params", params(w->params())}});
  for (const ModelInfo* m : all_models())
    out["models"].push_back({{"name", m->name},
                             {"description", m->description},
                             {"params", params(m->params)},
                             {"single_worker", m->single_worker},
                             {"workloads", m->workloads}});
  return out.dump();
}

// A report's text, parsed and checked against the schema; ReportError names the problem.
json checked_report(const std::string& text) {
  json r;
  try {
    r = json::parse(text);
  } catch (const json::exception& e) {
    throw ReportError(std::string("not valid JSON: ") + e.what());
  }
  validate_report(r);
  return r;
}

json parse_request(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw UsageError(std::string("config is not valid JSON: ") + e.what());
  }
}

// Runs the matrix with the GIL released; Python models take it back cell by cell. `out`, when
// given, is rewritten after every cell, as bench_runner does, so a crash loses nothing measured.
std::string run(const std::string& request, const std::string& python_context,
                const std::string& out, bool progress, bool overwrite) {
  const RunConfig cfg = config_from_request(parse_request(request));
  if (!out.empty()) check_writable(out, overwrite);
  if (!cfg.trace_path.empty()) check_writable(cfg.trace_path, overwrite);
  json context = machine_context();
  if (!python_context.empty()) context["python"] = json::parse(python_context);
  std::vector<CellResult> cells;
  ReportBuilder builder(cfg, context);  // each cell converted once (report.hpp)
  {
    py::gil_scoped_release nogil;
    std::vector<CellResult> done;  // for the trace file only
    auto on_cell = [&](const CellResult& c, size_t, size_t) {
      builder.add(c);
      if (!out.empty()) builder.write(out, false);
      if (!cfg.trace_path.empty()) {
        done.push_back(c);
        write_trace_atomic(cfg.trace_path, done);
      }
    };
    std::mutex mu;
    const bool tty = progress && isatty(STDERR_FILENO);
    auto show = [&](const CellSpec& s, size_t i, size_t n, const std::string& phase) {
      if (!tty) return;
      std::lock_guard lock(mu);
      std::fprintf(stderr, "\r\033[K[%zu/%zu] %s %s workers=%d: %s", i + 1, n, s.workload.c_str(),
                   s.model.c_str(), s.workers, phase.c_str());
      std::fflush(stderr);
    };
    cells = run_suite(cfg, on_cell, show);
    if (tty) std::fprintf(stderr, "\r\033[K");
  }
  if (!out.empty()) builder.write(out, true);
  if (!cfg.trace_path.empty()) write_trace_atomic(cfg.trace_path, cells);
  return builder.report(true).dump();
}

void register_py_model(const std::string& name, const std::string& description, py::object factory,
                       bool single_worker, bool separate_processes, const std::string& params_json,
                       std::vector<std::string> workloads,
                       std::map<std::string, std::map<std::string, std::string>> workload_params,
                       const std::string& latency_means, bool python_callables) {
  std::vector<ParamSpec> params;
  for (const json& p : json::parse(params_json)) {
    const std::string kind = p.at("kind");
    if (kind == "integer") {
      params.push_back(ParamSpec::integer(p.at("name"), p.at("help"), p.at("default"), p.at("min"),
                                          p.at("max")));
    } else if (kind == "choice") {
      params.push_back(ParamSpec::choice(p.at("name"), p.at("help"), p.at("default"),
                                         p.at("choices").get<std::vector<std::string>>()));
    } else {
      params.push_back(ParamSpec::text(p.at("name"), p.at("help"), p.at("default")));
    }
  }
  ModelInfo info =
      python_model_info(name, description, std::move(factory), single_worker, separate_processes,
                        std::move(params), std::move(workloads), std::move(workload_params));
  if (!latency_means.empty()) info.latency_means = latency_means;
  info.python_callables = python_callables;
  register_model(std::move(info));
}

}  // namespace
}  // namespace concbench::python

PYBIND11_MODULE(_concbench, m) {
  using namespace concbench;
  using namespace concbench::python;
  m.doc() = "concbench's C++ core: runner, report, counters, kernels, IO peers";
  // The allocator policy and descriptor limit bench_runner applies, so a cell driven from Python
  // measures what the same cell measures from the command line.
  apply_process_settings();
#ifdef Py_GIL_DISABLED
  // A free-threaded CPython: nothing here relies on the GIL for its own state (the registry has
  // its mutex, Python objects are touched under the runtime's own locking), so say so rather
  // than have the import turn the GIL back on. pybind11 2.13 spells this mod_gil_not_used().
  PyUnstable_Module_SetGIL(m.ptr(), Py_MOD_GIL_NOT_USED);
#endif

  // Input the user can fix; the CLI turns it into one line on stderr and exit code 2.
  py::register_exception<UsageError>(m, "UsageError", PyExc_ValueError);
  py::register_exception<ReportError>(m, "ReportError", PyExc_ValueError);
  // A kernel stopped by its CancelFlag.
  py::register_exception<TaskCancelled>(m, "Cancelled", PyExc_RuntimeError);

  m.def("run", &run, py::arg("request"), py::arg("python_context") = "", py::arg("out") = "",
        py::arg("progress") = false, py::arg("overwrite") = false,
        "Runs a config (JSON text) and returns the report (JSON text); the GIL is released "
        "while C++ runs.");
  m.def(
      "validate",
      [](const std::string& request) {
        return config_to_json(config_from_request(parse_request(request))).dump();
      },
      "Checks a config (JSON text); returns the resolved config or raises UsageError.");
  m.def("list", &list_json, "Workloads, models, parameters and suites as JSON text.");
  m.def("machine_context", [] { return machine_context().dump(); });
  m.def(
      "process_settings",
      [] {
        const ProcessSettings& s = apply_process_settings();
        py::dict d;
        d["allocator"] = s.allocator;
        d["allocator_applied"] = s.allocator_applied;
        d["mmap_threshold"] = s.mmap_threshold;
        d["trim_threshold"] = s.trim_threshold;
        d["top_pad"] = s.top_pad;
        d["nofile_limit"] = s.nofile_limit;
        return d;
      },
      "The process-wide settings applied at import (the same as bench_runner's).");
  m.def("format_table", [](const std::string& report) {
    // A dict from anywhere: checked first, as format_table trusts the schema. It came from
    // json.dumps, so it parses.
    const json r = json::parse(report);
    validate_report(r);
    return format_table(r);
  });
  // Reports come in as (label, JSON text) pairs: paths are read by Python, so a report can also
  // be a dict in memory. A malformed one raises ReportError (a ValueError), as on the CLI.
  m.def(
      "compare",
      [](const std::vector<std::pair<std::string, std::string>>& reports, bool normalize,
         std::optional<double> fail_on_regression, double alpha, const std::string& format,
         std::optional<double> min_effect, bool fail_on_broken) {
        CompareOptions opt;
        if (min_effect) opt.min_effect_pct = *min_effect;
        opt.normalize = normalize;
        opt.fail_on_regression_pct = fail_on_regression;
        opt.fail_on_broken = fail_on_broken;
        opt.alpha = alpha;
        std::vector<LoadedReport> loaded;
        for (const auto& [label, text] : reports) {
          json r;
          try {
            r = json::parse(text);
            validate_report(r);
          } catch (const json::exception& e) {
            throw ReportError(label + ": not valid JSON: " + e.what());
          } catch (const ReportError& e) {
            throw ReportError(label + ": " + e.what());
          }
          loaded.push_back({label, std::move(r)});
        }
        const json cmp = compare_reports(loaded, opt);
        const CompareFormat f = format == "md"     ? CompareFormat::markdown
                                : format == "text" ? CompareFormat::text
                                                   : CompareFormat::json;
        return std::make_pair(format_comparison(cmp, f), comparison_exit_code(cmp));
      },
      py::arg("reports"), py::arg("normalize") = false, py::arg("fail_on_regression") = py::none(),
      py::arg("alpha") = 0.05, py::arg("format") = "json", py::arg("min_effect") = py::none(),
      py::arg("fail_on_broken") = false);
  // verdict(report JSON text, "text" | "md" | "json") -> text; ReportError for a bad report.
  m.def(
      "verdict",
      [](const std::string& text, const std::string& format) {
        const json r = checked_report(text);
        const VerdictFormat f = format == "md"     ? VerdictFormat::markdown
                                : format == "text" ? VerdictFormat::text
                                                   : VerdictFormat::json;
        return format_verdict(verdict(r), f);
      },
      py::arg("report"), py::arg("format") = "json");
  m.def("validate_report", [](const std::string& text) { checked_report(text); });
  m.def("check_writable", &check_writable, py::arg("path"), py::arg("overwrite") = false);
  m.def("write_report", [](const std::string& path, const std::string& report) {
    write_report_atomic(path, json::parse(report));
  });
  m.def("register_model", &register_py_model, py::arg("name"), py::arg("description"),
        py::arg("factory"), py::arg("single_worker"), py::arg("separate_processes"),
        py::arg("params_json"), py::arg("workloads"), py::arg("workload_params"),
        py::arg("latency_means") = "", py::arg("python_callables") = false);
  m.def("register_callable_workload", &register_callable_workload, py::arg("name"),
        py::arg("description"), py::arg("inputs"));
  m.def("callable_checksum", &callable_checksum, py::arg("task_seed"), py::arg("nonce"));
  m.def("model_names", [] {
    std::vector<std::string> names;
    for (const ModelInfo* mi : all_models()) names.push_back(mi->name);
    return names;
  });
  m.def("spin_units_per_us", &spin_units_per_us);

  py::class_<CancelFlag, std::shared_ptr<CancelFlag>>(m, "CancelFlag")
      .def(py::init<>())
      .def("is_set", &CancelFlag::is_set)
      .def("set", &CancelFlag::cancel);

  // Checksums and deterministic bytes: the same functions the C++ models use, so a task run in
  // Python verifies against the workload's prediction.
  m.def("mix64", &mix64);
  m.def("fold", &fold);
  m.def("seal", &seal);
  m.def("round_nonce", &round_nonce);
  m.def("hash_bytes", &hash_buffer, py::arg("data"), py::arg("seed") = 0);
  m.def("fill_bytes", &fill, py::arg("n"), py::arg("seed"));
  m.def("step_seed", &step_seed);
  m.def("echo_message_seed", &echo_message_seed);
  m.def("spin_state_after", &spin_state_after);
  m.def("parallel_capacity", &parallel_capacity, py::arg("threads"), py::arg("seconds"),
        py::call_guard<py::gil_scoped_release>());
  m.def("lcg_advance", &lcg_advance);
  m.def("scratch_file_seed", &scratch_file_seed);
  m.attr("SPIN_OK_TOKEN") = py::int_(kSpinOkToken);
  m.def("run_kernel", &run_kernel, py::arg("name"), py::arg("units"), py::arg("arg") = 0,
        py::arg("seed") = 0, py::arg("release_gil") = true, py::arg("cancel") = nullptr);

  // The IO peers: an echo server thread and a scratch file, outside the interpreter, exactly as
  // the C++ models have them. A process builds its own (a worker process included).
  py::class_<IoEnv>(m, "IoEnv")
      .def(py::init<>())
      .def("pipe_fd", &IoEnv::pipe_fd, py::call_guard<py::gil_scoped_release>())
      .def("tcp_fd", &IoEnv::tcp_fd, py::call_guard<py::gil_scoped_release>())
      .def("scratch_fd", &IoEnv::scratch_fd, py::call_guard<py::gil_scoped_release>())
      .def("bytes_echoed", &IoEnv::bytes_echoed);
  // The Python client's own work per round of ccbench's latency test, in LCG steps for
  // EchoClient: echo_respond's packed client work, or the default interpreter's for
  // kEchoWorkInterpreter (a real interpreter's responder does its own work; its client is C++).
  m.def("echo_client_work_steps", [](uint64_t packed) {
    const uint32_t cw = echo_client_work(packed);
    return lcg_steps_for_ns(cw == kEchoWorkInterpreter ? default_interpreter_cost().client_round_ns
                                                       : cw);
  });
  // ccbench's latency client: a C++ thread that times each round trip.
  // pace_ns > 0: ccbench's paced pings (latency.paced_ping), one sent every pace_ns.
  py::class_<EchoClient>(m, "EchoClient")
      .def(py::init<uint64_t, uint64_t, uint32_t, uint64_t, uint64_t>(), py::arg("step_seed"),
           py::arg("rounds"), py::arg("bytes"), py::arg("work_steps") = 0, py::arg("pace_ns") = 0)
      .def("responder_fd", &EchoClient::responder_fd)
      .def("finish", &EchoClient::finish, py::call_guard<py::gil_scoped_release>())
      .def("sent_ns", &EchoClient::sent_ns);
  // Paced pings' one-way delays: the client's send times against the responder's receive
  // times (time.monotonic_ns(), the same clock as the client's).
  m.def("one_way_delays", &one_way_delays, py::arg("sent"), py::arg("received"));

  py::class_<ProcessCounters>(m, "ProcessCounters")
      .def(py::init<>())
      .def("read", [](const ProcessCounters& c) { return counter_dict(c.read()); })
      .def("threads_attached", &ProcessCounters::threads_attached);
  m.def("counter_unavailable", [] { return counter_probe().unavailable; });
}
