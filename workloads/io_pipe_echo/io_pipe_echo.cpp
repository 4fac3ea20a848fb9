// io.pipe_echo: each task sends round_trips messages of message_bytes through a socketpair to
// the echo server and reads each one back; the checksum covers every byte received.
#include "concbench/checksum.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

class PipeEcho final : public Workload {
 public:
  std::string_view name() const override { return "io.pipe_echo"; }
  std::string_view description() const override {
    return "round trips of a message through a socketpair to an echo server thread";
  }
  std::vector<ParamSpec> params() const override {
    auto p = common_params(32, 0);
    p.push_back(ParamSpec::integer("message_bytes", "bytes per message", 1024, 1, 64LL << 20));
    p.push_back(ParamSpec::integer("round_trips", "round trips per task", 10, 1, 1'000'000'000));
    return p;
  }
  TaskSet generate(const Params& p, uint64_t seed) const override {
    Step s;
    s.kind = StepKind::pipe_echo;
    s.bytes = static_cast<uint32_t>(p.get_int("message_bytes"));
    s.units = static_cast<uint64_t>(p.get_int("round_trips"));
    return one_step_tasks(p, seed, s, [&](const Task& t) { return predict_io_step(s, t.seed, 0); });
  }
  nlohmann::json metrics(const Params& p, uint64_t tasks_run, uint64_t wall_ns,
                         const Observations&) const override {
    const double trips =
        static_cast<double>(p.get_int("round_trips")) * static_cast<double>(tasks_run);
    const double per_s = wall_ns ? trips * 1e9 / static_cast<double>(wall_ns) : 0.0;
    return {{"round_trips_per_s", per_s},
            {"round_trip_ns", trips > 0 ? static_cast<double>(wall_ns) / trips : 0.0}};
  }
};

}  // namespace

const Workload& io_pipe_echo_workload() {
  static const PipeEcho w;
  return w;
}

}  // namespace concbench
