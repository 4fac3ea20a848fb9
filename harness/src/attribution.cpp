#include "concbench/attribution.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <set>

#include "concbench/clock.hpp"

namespace concbench {

using nlohmann::json;

std::optional<SchedStat> parse_schedstat(std::string_view text) {
  uint64_t v[3];
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (int i = 0; i < 3; ++i) {
    while (p < end && *p == ' ') ++p;
    auto [next, ec] = std::from_chars(p, end, v[i]);
    if (ec != std::errc() || next == p) return std::nullopt;
    p = next;
  }
  while (p < end && (*p == ' ' || *p == '\n')) ++p;
  if (p != end) return std::nullopt;
  return SchedStat{v[0], v[1], v[2]};
}

std::optional<SchedStat> ActiveInterval::read() {
  std::optional<SchedStat> s = own_schedstat();
  if (s) s->run_ns = thread_cpu_ns();  // schedstat's run time lags while the thread runs
  return s;
}

ActiveInterval::ActiveInterval() : t0_(monotonic_ns()), s0_(read()) {}

void ActiveInterval::finish(WorkerAttribution& a) const {
  const std::optional<SchedStat> s1 = read();
  a.active_ns = monotonic_ns() - t0_;
  if (s0_ && s1 && s1->run_ns >= s0_->run_ns && s1->runqueue_ns >= s0_->runqueue_ns) {
    a.sched = SchedStat{s1->run_ns - s0_->run_ns, s1->runqueue_ns - s0_->runqueue_ns,
                        s1->timeslices - s0_->timeslices};
    a.sched_unavailable.clear();
  } else {
    a.sched.reset();
    a.sched_unavailable = schedstat_unavailable().empty()
                              ? std::string("schedstat of the worker could not be read")
                              : schedstat_unavailable();
  }
}

void attribute_loop_thread(WorkerAttribution& a, uint64_t WorkerTimes::*off_cpu) {
  a.kind = "loop";
  if (!a.sched) return;
  const uint64_t on = a.sched->run_ns + a.sched->runqueue_ns;
  a.times.*off_cpu = a.active_ns > on ? a.active_ns - on : 0;
}

WorkerAttribution worker_attribution_from_json(const nlohmann::json& w) {
  WorkerAttribution a;
  a.worker = w.value("worker", 0);
  a.kind = w.value("kind", std::string("thread"));
  a.active_ns = w.value("active_ns", uint64_t{0});
  a.times.io_wait_ns = w.value("io_wait_ns", uint64_t{0});
  a.times.idle_ns = w.value("idle_ns", uint64_t{0});
  a.times.gil_wait_ns = w.value("gil_wait_ns", uint64_t{0});
  a.times.loop_lag_ns = w.value("loop_lag_ns", uint64_t{0});
  a.times.serialize_ns = w.value("serialize_ns", uint64_t{0});
  a.times.deserialize_ns = w.value("deserialize_ns", uint64_t{0});
  a.times.io_waits = w.value("io_waits", uint64_t{0});
  a.times.tasks = w.value("tasks", uint64_t{0});
  // A dispatcher runs no task of its own; a worker may not count its tasks (a user function
  // submitted as it is, with no wrapper around it).
  a.tasks_known = w.value("tasks_known", a.kind != "parent");
  a.note = w.value("note", std::string());
  a.wait_timing_cost_ns = w.value("wait_timing_cost_ns", 0.0);
  if (w.contains("run_ns"))
    a.sched = SchedStat{w["run_ns"].get<uint64_t>(), w.value("runqueue_ns", uint64_t{0}),
                        w.value("timeslices", uint64_t{0})};
  else
    a.sched_unavailable = w.value("sched_unavailable", std::string("no schedstat reported"));
  return a;
}

const std::vector<std::string>& attribution_parts() {
  static const std::vector<std::string> parts = {
      "cpu", "runqueue", "gil_wait", "io_wait", "serialize", "deserialize", "idle", "unattributed"};
  return parts;
}

double io_wait_timing_cost_ns() {
  static const double cost = [] {
    WorkerTimes t;
    constexpr int kN = 2000;
    const uint64_t t0 = monotonic_ns();
    for (int i = 0; i < kN; ++i) OffCpuWait w(&t);
    return static_cast<double>(monotonic_ns() - t0) / kN;
  }();
  return cost;
}

namespace {

json nullable(const std::optional<uint64_t>& v) {
  return v ? json(*v) : json(nullptr);
}

// Whether a worker's parts add up: what is left unattributed (after the run-queue overlap is
// taken out) within the tolerance of its wall time, plus what the hypervisor stole meanwhile.
bool within(double unattributed, double wall, double steal) {
  return std::abs(unattributed) <= kAttributionTolerance * wall + steal;
}

}  // namespace

json attribute_repetition(uint64_t wall_ns, const std::vector<WorkerAttribution>& ws,
                          const std::string& unavailable, std::optional<uint64_t> steal_ns) {
  json out = {{"wall_ns", wall_ns},
              {"workers", json::array()},
              {"machine_steal_ns", steal_ns ? json(*steal_ns) : json(nullptr)}};
  if (ws.empty()) {
    out["unavailable"] = unavailable.empty() ? "the model records no attribution" : unavailable;
    return out;
  }
  bool all_within = true, checked = true;
  for (const WorkerAttribution& a : ws) {
    const WorkerTimes& t = a.times;
    std::optional<uint64_t> cpu, rq;
    if (a.sched) {
      const uint64_t side = t.serialize_ns + t.deserialize_ns;
      cpu = a.sched->run_ns > side ? a.sched->run_ns - side : 0;
      rq = a.sched->runqueue_ns;
    }
    const uint64_t idle = (wall_ns > a.active_ns ? wall_ns - a.active_ns : 0) + t.idle_ns;
    const double sum = static_cast<double>(cpu.value_or(0) + rq.value_or(0) + t.gil_wait_ns +
                                           t.io_wait_ns + t.serialize_ns + t.deserialize_ns + idle);
    double unatt = static_cast<double>(wall_ns) - sum;
    // Counted twice: a clock-timed wait ends when its thread runs again, so the run-queue delay
    // of its wake-up is in the wait and in schedstat's figure. That much of an excess is taken
    // out of `runqueue`, which then means runnable outside a timed wait, and reported beside.
    uint64_t rq_in_waits = 0;
    if (unatt < 0 && rq) {
      rq_in_waits = std::min<uint64_t>(*rq, static_cast<uint64_t>(std::llround(-unatt)));
      *rq -= rq_in_waits;
      unatt += static_cast<double>(rq_in_waits);
    }
    json w = {
        {"worker", a.worker},
        {"kind", a.kind},
        {"tasks", a.tasks_known ? json(t.tasks) : json(nullptr)},
        {"active_ns", a.active_ns},
        {"parts",
         {{"cpu", nullable(cpu)},
          {"runqueue", nullable(rq)},
          {"gil_wait", t.gil_wait_ns},
          {"io_wait", t.io_wait_ns},
          {"serialize", t.serialize_ns},
          {"deserialize", t.deserialize_ns},
          {"idle", idle},
          {"unattributed", static_cast<int64_t>(std::llround(unatt))}}},
        {"beside",
         {{"gil_hold", t.gil_hold_ns},
          {"gil_wait_on_cpu", t.gil_wait_on_cpu_ns},
          {"loop_lag", t.loop_lag_ns},
          {"runqueue_in_waits", rq_in_waits}}},
        {"timeslices", a.sched ? json(a.sched->timeslices) : json(nullptr)},
        // What timing this worker cost it: its IO waits' clock and CPU-time reads, and the
        // two schedstat reads (estimated from their measured unit costs).
        {"instrument_ns", std::llround(static_cast<double>(t.io_waits) *
                                           (a.wait_timing_cost_ns > 0 ? a.wait_timing_cost_ns
                                                                      : io_wait_timing_cost_ns()) +
                                       2 * schedstat_read_cost_ns())}};
    if (!a.note.empty()) w["note"] = a.note;
    if (a.sched) {
      const bool ok =
          within(unatt, static_cast<double>(wall_ns), static_cast<double>(steal_ns.value_or(0)));
      w["within_tolerance"] = ok;
      all_within = all_within && ok;
    } else {
      w["within_tolerance"] = nullptr;
      w["sched_unavailable"] = a.sched_unavailable;
      checked = false;
    }
    out["workers"].push_back(std::move(w));
  }
  out["within_tolerance"] = checked ? json(all_within) : json(nullptr);
  return out;
}

namespace {

struct Spread {
  double cv = 0, max_over_min = 0;
  bool min_zero = false;
};

Spread spread(const std::vector<double>& xs) {
  Spread s;
  if (xs.size() < 2) return s;
  double mean = 0;
  for (double x : xs) mean += x;
  mean /= static_cast<double>(xs.size());
  double var = 0;
  for (double x : xs) var += (x - mean) * (x - mean);
  var /= static_cast<double>(xs.size());
  s.cv = mean > 0 ? std::sqrt(var) / mean : 0;
  const auto [lo, hi] = std::minmax_element(xs.begin(), xs.end());
  s.min_zero = *lo <= 0;
  s.max_over_min = *lo > 0 ? *hi / *lo : 0;
  return s;
}

json spread_json(const std::vector<double>& xs) {
  if (xs.size() < 2) return nullptr;
  const Spread s = spread(xs);
  return {{"cv", s.cv}, {"max_over_min", s.min_zero ? json(nullptr) : json(s.max_over_min)}};
}

}  // namespace

json summarize_attribution(const std::vector<const json*>& reps, double starved_share) {
  const std::vector<std::string>& parts = attribution_parts();
  // Per worker index: summed parts (null once any repetition lacks one), tasks, wall.
  struct Acc {
    std::string kind;
    std::map<std::string, std::optional<double>> parts;
    double gil_hold = 0, gil_on_cpu = 0, loop_lag = 0, wall = 0, tasks = 0, instrument = 0,
           rq_in_waits = 0;
    bool tasks_known = true;
  };
  std::map<int, Acc> acc;
  std::string unavailable;
  std::set<std::string> notes;
  bool all_within = true, checked = true;
  double worst = 0;
  int used = 0;
  for (const json* r : reps) {
    if (!r || !r->is_object()) continue;
    if (r->contains("unavailable")) {
      unavailable = (*r)["unavailable"].get<std::string>();
      continue;
    }
    ++used;
    const double wall = (*r)["wall_ns"].get<double>();
    for (const json& w : (*r)["workers"]) {
      Acc& a = acc[w["worker"].get<int>()];
      if (a.parts.empty())
        for (const auto& p : parts) a.parts[p] = 0.0;
      a.kind = w["kind"].get<std::string>();
      a.wall += wall;
      if (w["tasks"].is_null())
        a.tasks_known = false;
      else
        a.tasks += w["tasks"].get<double>();
      a.gil_hold += w["beside"]["gil_hold"].get<double>();
      a.gil_on_cpu += w["beside"].value("gil_wait_on_cpu", 0.0);
      a.loop_lag += w["beside"]["loop_lag"].get<double>();
      a.rq_in_waits += w["beside"].value("runqueue_in_waits", 0.0);
      a.instrument += w.value("instrument_ns", 0.0);
      for (const auto& p : parts) {
        const json& v = w["parts"][p];
        if (v.is_null() || !a.parts[p])
          a.parts[p].reset();
        else
          *a.parts[p] += v.get<double>();
      }
      if (w.contains("note")) notes.insert(w["note"].get<std::string>());
      if (w["within_tolerance"].is_null()) {
        checked = false;
      } else {
        all_within = all_within && w["within_tolerance"].get<bool>();
        worst = std::max(worst, std::abs(w["parts"]["unattributed"].get<double>()) / wall);
      }
    }
  }
  if (used == 0)
    return {{"unavailable", unavailable.empty() ? "no verified repetition" : unavailable}};

  auto parts_json = [&](const std::map<std::string, std::optional<double>>& ps, double wall) {
    json ns = json::object(), share = json::object();
    for (const auto& p : parts) {
      const auto& v = ps.at(p);
      ns[p] = v ? json(std::llround(*v)) : json(nullptr);
      share[p] = v && wall > 0 ? json(*v / wall) : json(nullptr);
    }
    return std::make_pair(ns, share);
  };
  json workers = json::array();
  // `total` is the workers' time: a dispatcher (kind "parent": the thread that submits and
  // collects, a pool's helper threads) mostly waits for the workers, and summed in it would make
  // every pooled cell look idle or blocked. Dispatchers have a total of their own beside.
  bool any_worker = false;
  for (const auto& [id, a] : acc) any_worker = any_worker || a.kind != "parent";
  std::map<std::string, std::optional<double>> total, disp;
  for (const auto& p : parts) total[p] = disp[p] = 0.0;
  double disp_wall = 0;
  double total_wall = 0, total_hold = 0, total_lag = 0, total_instrument = 0, total_rq_in_waits = 0,
         total_on_cpu = 0;
  std::vector<double> tasks, cpu, wait;
  bool have_cpu = true;
  for (const auto& [id, a] : acc) {
    auto [ns, share] = parts_json(a.parts, a.wall);
    workers.push_back({{"worker", id},
                       {"kind", a.kind},
                       {"tasks", a.tasks_known ? json(a.tasks) : json(nullptr)},
                       {"wall_ns", std::llround(a.wall)},
                       {"parts_ns", ns},
                       {"share", share},
                       {"beside_ns",
                        {{"gil_hold", a.gil_hold},
                         {"gil_wait_on_cpu", a.gil_on_cpu},
                         {"loop_lag", a.loop_lag},
                         {"runqueue_in_waits", a.rq_in_waits}}}});
    total_instrument += a.instrument;
    const bool dispatcher = a.kind == "parent" && any_worker;
    auto& sum = dispatcher ? disp : total;
    (dispatcher ? disp_wall : total_wall) += a.wall;
    for (const auto& p : parts) {
      if (!a.parts.at(p) || !sum[p])
        sum[p].reset();
      else
        *sum[p] += *a.parts.at(p);
    }
    if (a.kind == "parent") continue;  // a dispatcher, not a worker: no fairness among it
    total_hold += a.gil_hold;
    total_on_cpu += a.gil_on_cpu;
    total_lag += a.loop_lag;
    total_rq_in_waits += a.rq_in_waits;
    if (a.tasks_known) tasks.push_back(a.tasks);
    if (a.parts.at("cpu")) {
      cpu.push_back(*a.parts.at("cpu") + *a.parts.at("serialize") + *a.parts.at("deserialize"));
    } else {
      have_cpu = false;
    }
    wait.push_back(*a.parts.at("gil_wait") + a.parts.at("runqueue").value_or(0.0));
  }
  auto [tns, tshare] = parts_json(total, total_wall);
  json dispatchers = nullptr;
  if (disp_wall > 0) {
    auto [dns, dshare] = parts_json(disp, disp_wall);
    dispatchers = {{"wall_ns", std::llround(disp_wall)}, {"parts_ns", dns}, {"share", dshare}};
  }
  // The dominant part: the largest share, unattributed included (a figure it dominates is one
  // this attribution does not explain, and the reader should hear so).
  std::string dominant;
  double best = -1;
  for (const auto& p : parts) {
    if (!total[p]) continue;
    const double v = p == "unattributed" ? std::abs(*total[p]) : *total[p];
    if (v > best) {
      best = v;
      dominant = p;
    }
  }
  json fairness = {{"tasks", spread_json(tasks)},
                   {"cpu_ns", have_cpu ? spread_json(cpu) : json(nullptr)},
                   {"wait_ns", spread_json(wait)},
                   {"starved_share", starved_share},
                   {"starved", json::array()}};
  double all_tasks = 0;
  for (double t : tasks) all_tasks += t;
  size_t workers_n = 0;
  for (const auto& [id, a] : acc) workers_n += a.kind != "parent";
  if (tasks.size() > 1 && tasks.size() == workers_n && all_tasks > 0) {
    const double fair = all_tasks / static_cast<double>(tasks.size());
    for (const auto& [id, a] : acc)
      if (a.kind != "parent" && a.tasks < starved_share * fair) fairness["starved"].push_back(id);
  }
  return {{"repetitions", used},
          {"workers", workers},
          {"total", {{"wall_ns", std::llround(total_wall)}, {"parts_ns", tns}, {"share", tshare}}},
          {"dispatchers", dispatchers},
          {"beside_ns",
           {{"gil_hold", total_hold},
            {"gil_wait_on_cpu", total_on_cpu},
            {"loop_lag", total_lag},
            {"runqueue_in_waits", total_rq_in_waits}}},
          {"dominant", dominant},
          {"dominant_share", total_wall > 0 ? best / total_wall : 0.0},
          {"check",
           {{"tolerance", kAttributionTolerance},
            {"within_tolerance", checked ? json(all_within) : json(nullptr)},
            {"worst_unattributed_share", checked ? json(worst) : json(nullptr)}}},
          {"schedstat_read_cost_ns", schedstat_read_cost_ns()},
          {"io_wait_timing_cost_ns", io_wait_timing_cost_ns()},
          // The timing's estimated cost as a share of worker time: what the parts cost to know.
          {"instrument_share",
           total_wall + disp_wall > 0 ? total_instrument / (total_wall + disp_wall) : 0.0},
          {"fairness", fairness},
          {"notes", notes}};
}

}  // namespace concbench
