// mixed.cpu_io: each task does cpu_us of CPU work (cpu.spin's kernel), then one IO step: a
// timer wait of io_us (default), round trips to the echo server, or a file read. Sweeping the
// CPU share of a task (scripts/sweep_mixed.py) finds the crossover where an event loop, which
// overlaps every task's IO but runs CPU work one task at a time, stops beating threads.
//
// cpu_us is turned into spin units with this process's own calibration (spin_units_per_us), so
// the CPU share means the same thing on a slow and a fast machine; every model of a run gets the
// same units, and the report records the calibration.
#include <cmath>

#include "concbench/checksum.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

double units_per_us(const Params& p) {
  const int64_t per_ms = p.get_int("spin_units_per_ms");
  return per_ms > 0 ? static_cast<double>(per_ms) / 1000.0 : spin_units_per_us();
}

class MixedCpuIo final : public Workload {
 public:
  std::string_view name() const override { return "mixed.cpu_io"; }
  std::string_view description() const override {
    return "cpu_us of CPU work then an IO wait of io_us (or an echo / file read) per task";
  }
  std::vector<ParamSpec> params() const override {
    auto p = common_params(64, 0);
    p.push_back(ParamSpec::integer("cpu_us", "microseconds of CPU work per task (calibrated)", 200,
                                   0, 60'000'000));
    p.push_back(ParamSpec::integer("io_us", "microseconds of IO wait per task (io=sleep)", 800, 0,
                                   60'000'000));
    p.push_back(ParamSpec::choice("io", "the IO step", "sleep",
                                  {"sleep", "pipe_echo", "tcp_echo", "file_read"}));
    p.push_back(
        ParamSpec::integer("io_bytes", "bytes per echo message or file read", 1024, 1, 64LL << 20));
    p.push_back(ParamSpec::integer("round_trips", "echo round trips (io=pipe_echo|tcp_echo)", 1, 1,
                                   1'000'000));
    p.push_back(
        ParamSpec::integer("native", "1: the CPU part is native code (releases a GIL)", 0, 0, 1));
    // A model whose spin kernel runs at another speed (pure Python's is some 60 times slower)
    // sets its own rate, so that cpu_us still means microseconds of CPU for it.
    p.push_back(ParamSpec::integer("spin_units_per_ms",
                                   "cpu.spin units per millisecond (0: calibrate in this process)",
                                   0, 0, 1'000'000'000));
    return p;
  }
  nlohmann::json metrics(const Params& p, uint64_t tasks_run, uint64_t wall_ns,
                         const Observations&) const override {
    const double cpu = static_cast<double>(p.get_int("cpu_us"));
    const double rate = units_per_us(p);
    const double io = p.get("io") == "sleep" ? static_cast<double>(p.get_int("io_us")) : 0.0;
    const double n = static_cast<double>(tasks_run);
    const double wall = static_cast<double>(wall_ns);
    return {{"cpu_fraction", cpu + io > 0 ? cpu / (cpu + io) : 0.0},
            {"spin_units_per_us", rate},
            {"tasks_per_s", wall > 0 ? n * 1e9 / wall : 0.0},
            // Task time (CPU plus IO, as if alone) per wall time: how many tasks overlapped.
            {"overlap", wall > 0 ? n * (cpu + io) * 1e3 / wall : 0.0}};
  }

 protected:
  TaskSet generate(const Params& p, uint64_t seed) const override {
    TaskSet ts;
    const uint64_t units = static_cast<uint64_t>(
        std::llround(static_cast<double>(p.get_int("cpu_us")) * units_per_us(p)));
    Step cpu;
    cpu.kind = StepKind::cpu;
    cpu.kernel = kernel_id("spin");
    cpu.units = units;
    cpu.native = p.get_int("native") != 0;
    Step io;
    const std::string& kind = p.get("io");
    if (kind == "sleep") {
      io.kind = StepKind::sleep;
      io.duration_ns = static_cast<uint64_t>(p.get_int("io_us")) * 1000;
    } else if (kind == "file_read") {
      io.kind = StepKind::file_read;
      io.bytes = static_cast<uint32_t>(p.get_int("io_bytes"));
    } else {
      io.kind = kind == "pipe_echo" ? StepKind::pipe_echo : StepKind::tcp_echo;
      io.bytes = static_cast<uint32_t>(p.get_int("io_bytes"));
      io.units = static_cast<uint64_t>(p.get_int("round_trips"));
    }
    const int64_t n = p.get_int("tasks");
    for (int64_t i = 0; i < n; ++i) {
      Task t = make_task(static_cast<uint64_t>(i), seed, p.get_int("payload_bytes"));
      uint64_t h = task_checksum_start(t);
      if (units > 0) {
        t.steps.push_back(cpu);
        h = fold(h, spin_state_after(step_seed(t.seed, 0), units));
      }
      h = fold(h, predict_io_step(io, t.seed, t.steps.size()));
      t.steps.push_back(io);
      ts.expected.push_back(h);
      ts.tasks.push_back(std::move(t));
    }
    return ts;
  }
};

}  // namespace

const Workload& mixed_cpu_io_workload() {
  static const MixedCpuIo w;
  return w;
}

}  // namespace concbench
