// latency.echo_under_load: ccbench's latency test. Task 0 is an IO responder that serves
// round_trips echoes for a client outside the model; tasks 1..cpu_workers spin until the
// responder is done. The workload asks for cpu_workers + 1 workers, so they all run at once
// (under `serial` they cannot: the responder then runs unloaded, and the spinners find it done).
// What it shows: how long an IO-bound thread waits for a lock that CPU-bound threads hold (the
// convoy effect): about one switch interval per round trip behind a GIL.
#include <algorithm>

#include "concbench/checksum.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

// The q-th percentile of sorted, non-empty samples by nearest rank, as everywhere in the report.
uint64_t nearest_rank(const std::vector<uint64_t>& sorted, double q) {
  const auto rank = static_cast<size_t>(q / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

// Spinners that reached max_cpu_units before the responder was done: from then on the round
// trips ran without the load they are meant to measure, so the report must say so.
uint64_t spinners_out_of_units(const Params& p, const Observations& obs) {
  const auto bound = static_cast<uint64_t>(p.get_int("max_cpu_units"));
  uint64_t n = 0;
  for (const SpinRecord& s : obs.spins) n += s.units >= bound ? 1 : 0;
  return n;
}

uint64_t spinner_units(const Observations& obs) {
  uint64_t u = 0;
  for (const SpinRecord& s : obs.spins) u += s.units;
  return u;
}

class EchoUnderLoad : public Workload {
 public:
  std::string_view name() const override { return "latency.echo_under_load"; }
  std::string_view description() const override {
    return "one IO responder serves round trips while cpu_workers CPU-bound tasks run "
           "(workers = cpu_workers + 1)";
  }
  std::vector<ParamSpec> params() const override {
    // No `tasks`: the batch is always the responder plus cpu_workers spinners.
    auto p = common_params(1, 0);
    p.erase(p.begin());
    p.push_back(
        ParamSpec::integer("cpu_workers", "CPU-bound tasks beside the responder", 1, 0, 4095));
    p.push_back(ParamSpec::integer("round_trips", "round trips the client times",
                                   default_round_trips(), 1, 100'000'000));
    p.push_back(ParamSpec::integer("message_bytes", "bytes per message", 64, 1, 1 << 20));
    // What decides whether a round trip waits for the lock once or twice is how long each side
    // is busy between its system calls. -1: the emulated interpreter's own per-round costs
    // (measured from the CPython version a gil_threads policy emulates, where it is installed).
    p.push_back(ParamSpec::integer("responder_work_ns",
                                   "the responder's Python-level work per round, lock held "
                                   "(-1: the emulated interpreter's)",
                                   -1, -1, 1'000'000'000));
    p.push_back(ParamSpec::integer("client_work_ns",
                                   "the client's own work between two sends (-1: the emulated "
                                   "interpreter's)",
                                   -1, -1, 1'000'000'000));
    // Threads stop as soon as the responder is done. On one event loop a spinner never lets
    // the responder run, so under async it spins all of this (about 13 s by default).
    p.push_back(ParamSpec::integer("max_cpu_units", "safety bound on a spinner's units", 10'000'000,
                                   1, 1LL << 40));
    add_params(p);
    return p;
  }
  int required_workers(const Params& p) const override {
    return static_cast<int>(p.get_int("cpu_workers")) + 1;
  }
  bool calibrate() const override { return false; }

  std::string verify_batch(const Params& p, const TaskSet&,
                           const Observations& obs) const override {
    const auto spinners = static_cast<uint64_t>(p.get_int("cpu_workers"));
    if (obs.spins.size() != spinners)
      return std::to_string(obs.spins.size()) + " of " + std::to_string(spinners) +
             " spinners reported their work";
    for (const SpinRecord& s : obs.spins)
      if (spin_state_after(s.seed, s.units) != s.state)
        return "a spinner's state does not match the " + std::to_string(s.units) +
               " units it reported";
    return {};
  }
  bool needs_shared_memory() const override { return true; }

  nlohmann::json metrics(const Params& p, uint64_t, uint64_t wall_ns,
                         const Observations& obs) const override {
    std::vector<uint64_t> rtt = obs.rtt_ns;
    auto work = [](int64_t ns) { return ns < 0 ? nlohmann::json(nullptr) : nlohmann::json(ns); };
    if (rtt.empty())
      return {{"round_trips", 0},
              {"cpu_workers_running", obs.companions_started},
              {"spinner_units", spinner_units(obs)},
              {"spinners_out_of_units", spinners_out_of_units(p, obs)}};
    std::sort(rtt.begin(), rtt.end());
    uint64_t total = 0;
    for (uint64_t r : rtt) total += r;
    auto pct = [&](double q) { return nearest_rank(rtt, q); };
    // Round trips per second of the client's own time: back-to-back round trips, so this is
    // 1 / mean round-trip time, comparable with ccbench's figure (paced pings: the round trip's
    // own time, not the pace).
    nlohmann::json m = {
        {"round_trips", rtt.size()},
        {"round_trips_per_s", static_cast<double>(rtt.size()) * 1e9 / static_cast<double>(total)},
        {"rtt_p50_ns", pct(50)},
        {"rtt_p99_ns", pct(99)},
        {"rtt_max_ns", rtt.back()},
        {"batch_wall_ns", wall_ns},
        {"cpu_workers_running", obs.companions_started},
        {"spinner_units", spinner_units(obs)},
        {"spinners_out_of_units", spinners_out_of_units(p, obs)},
        // null: not emulated (a real interpreter's responder does its own)
        {"responder_work_ns", work(obs.responder_work_ns)},
        {"client_work_ns", work(obs.client_work_ns)}};
    if (!obs.one_way_ns.empty()) {
      std::vector<uint64_t> d = obs.one_way_ns;
      std::sort(d.begin(), d.end());
      auto at = [&](double q) { return nearest_rank(d, q); };
      m["pings"] = d.size();
      m["one_way_p50_ns"] = at(50);
      m["one_way_p99_ns"] = at(99);
      m["one_way_max_ns"] = d.back();
    }
    return m;
  }

 protected:
  virtual void add_params(std::vector<ParamSpec>&) const {}
  virtual int64_t default_round_trips() const { return 200; }
  // Milliseconds between two of the client's sends; 0 for back-to-back round trips.
  virtual uint16_t pace_ms(const Params&) const { return 0; }
  // Units a spinner runs between two checks; 0 for a pure-Python loop's spacing.
  virtual uint64_t hold_units(const Params&) const { return 0; }

  TaskSet generate(const Params& p, uint64_t seed) const override {
    TaskSet ts;
    const int64_t spinners = p.get_int("cpu_workers");
    for (int64_t i = 0; i <= spinners; ++i) {
      Task t = make_task(static_cast<uint64_t>(i), seed, p.get_int("payload_bytes"));
      Step s;
      if (i == 0) {
        s.kind = StepKind::echo_respond;
        s.units = static_cast<uint64_t>(p.get_int("round_trips"));
        s.bytes = static_cast<uint32_t>(p.get_int("message_bytes"));
        s.arg = static_cast<uint64_t>(spinners);  // companions to wait for
        auto work = [&](const char* name) {
          const int64_t v = p.get_int(name);
          return v < 0 ? kEchoWorkInterpreter : static_cast<uint32_t>(v);
        };
        s.duration_ns = echo_work_ns(work("responder_work_ns"), work("client_work_ns"));
        s.kernel = pace_ms(p);  // echo_respond's kernel field is its pace
        t.steps.push_back(s);
        ts.expected.push_back(fold(task_checksum_start(t), predict_io_step(s, t.seed, 0)));
      } else {
        s.kind = StepKind::cpu;
        s.kernel = kernel_id("spin_until_stop");
        s.arg = hold_units(p);  // 0: check as a Python loop does
        s.units = static_cast<uint64_t>(p.get_int("max_cpu_units"));
        t.steps.push_back(s);
        ts.expected.push_back(fold(task_checksum_start(t), kSpinOkToken));
      }
      ts.tasks.push_back(std::move(t));
    }
    return ts;
  }
};

// latency.echo_long_hold: the same test with spinners that hold the lock for hold_us at a time
// without a check, as one big-integer multiplication or regex match does in C: a waiter's drop
// request is honoured only when the call returns, so the responder's round trips grow past one
// switch interval (about hold_us each, where the interval is shorter).
class EchoLongHold final : public EchoUnderLoad {
 public:
  std::string_view name() const override { return "latency.echo_long_hold"; }
  std::string_view description() const override {
    return "latency.echo_under_load whose CPU-bound tasks hold the lock hold_us between checks "
           "(a big-integer or regex call's stand-in)";
  }

 protected:
  void add_params(std::vector<ParamSpec>& p) const override {
    p.push_back(ParamSpec::integer(
        "hold_us", "a spinner's work between two checks (one long C call)", 20'000, 1, 10'000'000));
  }
  uint64_t hold_units(const Params& p) const override {
    // A unit is about a microsecond of spinning (spin_units_per_us() measures it), so hold_us
    // units hold about that long; the units are what verify, the time is what the call costs.
    return static_cast<uint64_t>(p.get_int("hold_us"));
  }
};

// latency.paced_ping: ccbench's latency test as ccbench runs it. The client sends one ping every
// pace_ms (100 ms) beside cpu_workers CPU-bound tasks; the figure is each ping's one-way delay,
// from its send to the responder's code running again with the lock held. Behind a GIL a ping
// finds a spinner holding it and waits about one switch interval for it.
class PacedPing final : public EchoUnderLoad {
 public:
  std::string_view name() const override { return "latency.paced_ping"; }
  std::string_view description() const override {
    return "ccbench's latency test: a ping every pace_ms beside cpu_workers CPU-bound tasks; the "
           "one-way delay until the responder's code runs";
  }

 protected:
  void add_params(std::vector<ParamSpec>& p) const override {
    p.push_back(ParamSpec::integer("pace_ms", "milliseconds between two pings", 100, 1, 60'000));
  }
  int64_t default_round_trips() const override { return 20; }
  uint16_t pace_ms(const Params& p) const override {
    return static_cast<uint16_t>(p.get_int("pace_ms"));
  }
};

}  // namespace

const Workload& latency_paced_ping_workload() {
  static const PacedPing w;
  return w;
}

const Workload& latency_echo_under_load_workload() {
  static const EchoUnderLoad w;
  return w;
}

const Workload& latency_echo_long_hold_workload() {
  static const EchoLongHold w;
  return w;
}

}  // namespace concbench
