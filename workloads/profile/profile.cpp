// Profiles: workloads read from a file (the format is in profile.hpp). Parsing turns the file
// into a flat plan of steps whose sizes are still distributions; generate() draws each task's
// sizes from its own seed and predicts its checksum as the built-in workloads do.
#include "concbench/profile.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "concbench/checksum.hpp"
#include "concbench/clock.hpp"
#include "concbench/kernels.hpp"

namespace concbench {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxTasks = 100'000'000;
constexpr uint64_t kMaxPayloadBytes = 64ULL << 20;
constexpr uint64_t kMaxSeed = (1ULL << 63) - 1;
constexpr uint64_t kMaxTimes = 10'000;
constexpr uint64_t kMaxSteps = 100'000;
// Fragments are checked by recursion over their uses; this bounds its depth.
constexpr size_t kMaxFragments = 1000;
// Below hashlib's GIL threshold (cpu.sha256's 2048), so only the step's `native` releases a GIL.
constexpr uint64_t kShaBufferBytes = 1024;
constexpr size_t kMaxFileBytes = 16 << 20;

struct Quantity {
  const char* unit;
  const char* unit_one;
  bool integer;
  double min, max;
};
constexpr Quantity kUs{"microseconds", "microsecond", false, 0, 60e6};
constexpr Quantity kBytes{"bytes", "byte", true, 1, 64.0 * 1024 * 1024};
constexpr Quantity kRoundTrips{"round trips", "round trip", true, 1, 1e6};

std::string number_text(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e18) return std::to_string(static_cast<int64_t>(v));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A size that may differ from task to task; every draw lies in its quantity's range.
struct Value {
  enum class Kind { fixed, uniform, exponential };
  Kind kind = Kind::fixed;
  double a = 0, b = 0;  // fixed: a; uniform: [a, b]; exponential: mean a, cap b
  const Quantity* q = &kUs;

  double draw(uint64_t& rng) const {
    if (kind == Kind::fixed) return a;
    rng += 0x9e3779b97f4a7c15ULL;
    const uint64_t r = mix64(rng);
    if (kind == Kind::uniform) {
      if (q->integer) {
        // Ranges are at most 2^26 wide, so the bias of the modulo is below 2^-38.
        return a + static_cast<double>(r % (static_cast<uint64_t>(b - a) + 1));
      }
      return a + (b - a) * (static_cast<double>(r >> 11) * 0x1.0p-53);
    }
    const double u = static_cast<double>(r >> 11) * 0x1.0p-53;  // [0, 1): log1p stays finite
    const double x = std::min(-a * std::log1p(-u), b);
    return q->integer ? std::clamp(std::round(x), q->min, b) : x;
  }
  // The expected draw (for metrics): min(X, cap) of an exponential X has mean m(1 - e^(-cap/m)).
  double mean() const {
    switch (kind) {
      case Kind::fixed:
        return a;
      case Kind::uniform:
        return (a + b) / 2;
      case Kind::exponential:
        return a * -std::expm1(-b / a);
    }
    return 0;
  }
};

enum class Op { cpu, sleep, pipe_echo, tcp_echo, file_read };

struct PlanStep {
  Op op = Op::cpu;
  Value us, bytes, round_trips;
  bool sha256 = false;  // cpu: the kernel; spin otherwise
  bool native = false;
};

// A step as written: a plan step, or a use of a fragment.
struct RawStep {
  PlanStep step;
  std::string use;  // non-empty: a use of this fragment
  uint64_t times = 1;
  std::string path;
};

class Parser {
 public:
  explicit Parser(const std::string& label) : label_(label) {}

  [[noreturn]] void fail(const std::string& path, const std::string& msg) const {
    std::string m = label_ + ": " + (path.empty() ? "" : path + ": ") + msg;
    for (char& c : m)
      if (c == '\n' || c == '\r') c = ' ';
    throw UsageError(m);
  }

  json parse_text(const std::string& text) const {
    // nlohmann keeps the last of repeated keys; a profile with two "steps" is a mistake to say.
    std::vector<std::set<std::string>> open;
    const json::parser_callback_t dup = [&](int, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::object_start) open.emplace_back();
      if (ev == json::parse_event_t::object_end && !open.empty()) open.pop_back();
      if (ev == json::parse_event_t::key && !open.empty() &&
          !open.back().insert(parsed.get<std::string>()).second)
        fail("", "duplicate key \"" + parsed.get<std::string>() + "\"");
      return true;
    };
    try {
      return json::parse(text, dup);
    } catch (const json::parse_error& e) {
      std::string what = e.what();
      if (const size_t p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
      if (what.rfind("parse error", 0) == 0)
        if (const size_t p = what.find(": "); p != std::string::npos) what = what.substr(p + 2);
      fail("", "not valid JSON at byte " + std::to_string(e.byte) + " (" + what + ")");
    } catch (const json::exception& e) {
      // A number beyond a double (1e999) is out_of_range, not a parse_error.
      std::string what = e.what();
      if (const size_t p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
      fail("", "not valid JSON (" + what + ")");
    }
  }

  void only_keys(const json& obj, const std::string& path,
                 std::initializer_list<const char*> keys) const {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      const std::string& k = it.key();
      if (std::any_of(keys.begin(), keys.end(), [&](const char* a) { return k == a; })) continue;
      std::string allowed;
      for (const char* a : keys) allowed += (allowed.empty() ? "" : ", ") + std::string(a);
      fail(path.empty() ? k : path + "." + k, "unknown key (allowed: " + allowed + ")");
    }
  }

  const json& object(const json& v, const std::string& path) const {
    if (!v.is_object()) fail(path, "expected an object, got " + std::string(v.type_name()));
    return v;
  }

  double number(const json& v, const std::string& path, const Quantity& q, bool integer) const {
    if (!v.is_number()) fail(path, "expected a number, got " + std::string(v.type_name()));
    const double d = v.get<double>();
    if (integer && d != std::floor(d))
      fail(path, "must be a whole number of " + std::string(q.unit));
    const auto unit = [&](double x) {
      return number_text(x) + " " + (x == 1 ? q.unit_one : q.unit);
    };
    if (d < q.min) fail(path, "must be at least " + unit(q.min));
    if (d > q.max) fail(path, "must be at most " + unit(q.max));
    return d;
  }

  uint64_t integer(const json& v, const std::string& path, uint64_t min, uint64_t max) const {
    if (!v.is_number()) fail(path, "expected an integer, got " + std::string(v.type_name()));
    const auto range = "in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u < min || u > max) fail(path, "must be an integer " + range);
      return u;
    }
    const double d = v.get<double>();
    if (d != std::floor(d) || d < static_cast<double>(min) || d > static_cast<double>(max))
      fail(path, "must be an integer " + range);
    return std::min(static_cast<uint64_t>(d), max);
  }

  Value value(const json& v, const std::string& path, const Quantity& q) const {
    Value out;
    out.q = &q;
    if (v.is_number()) {
      out.a = number(v, path, q, q.integer);
      return out;
    }
    if (!v.is_object() || v.size() != 1)
      fail(path,
           "expected a number or one of {\"fixed\": v}, {\"uniform\": [lo, hi]}, "
           "{\"exponential\": {\"mean\": m, \"max\": cap}}");
    const std::string kind = v.begin().key();
    const json& body = v.begin().value();
    const std::string p = path + "." + kind;
    if (kind == "fixed") {
      out.a = number(body, p, q, q.integer);
    } else if (kind == "uniform") {
      if (!body.is_array() || body.size() != 2) fail(p, "expected [lo, hi]");
      out.kind = Value::Kind::uniform;
      out.a = number(body[0], p + "[0]", q, q.integer);
      out.b = number(body[1], p + "[1]", q, q.integer);
      if (out.a > out.b) fail(p, "lo must not be more than hi");
    } else if (kind == "exponential") {
      object(body, p);
      only_keys(body, p, {"mean", "max"});
      for (const char* k : {"mean", "max"})
        if (!body.contains(k)) fail(p + "." + k, "missing (a cap is required)");
      out.kind = Value::Kind::exponential;
      out.a = number(body["mean"], p + ".mean", q, false);
      out.b = number(body["max"], p + ".max", q, q.integer);
      if (!(out.a > 0)) fail(p + ".mean", "must be more than 0");
    } else {
      fail(p, "unknown distribution (fixed, uniform, exponential)");
    }
    return out;
  }

  RawStep step(const json& v, const std::string& path) const {
    RawStep out;
    out.path = path;
    if (!v.is_object() || v.empty())
      fail(path, "expected a step such as {\"cpu\": {\"us\": 1000}} or {\"use\": \"name\"}");
    if (v.contains("use")) {
      only_keys(v, path, {"use", "times"});
      const json& u = v["use"];
      if (!u.is_string() || u.get<std::string>().empty())
        fail(path + ".use", "expected a fragment's name");
      out.use = u.get<std::string>();
      if (v.contains("times")) out.times = integer(v["times"], path + ".times", 1, kMaxTimes);
      return out;
    }
    if (v.size() != 1)
      fail(path, "a step has one key (cpu, sleep, pipe_echo, tcp_echo, file_read) or use");
    const std::string kind = v.begin().key();
    const json& body = v.begin().value();
    const std::string p = path + "." + kind;
    const auto required = [&](const char* k, const Quantity& q) {
      if (!body.contains(k)) fail(p + "." + k, "missing");
      return value(body[k], p + "." + k, q);
    };
    PlanStep& s = out.step;
    if (kind == "cpu") {
      object(body, p);
      only_keys(body, p, {"us", "kernel", "native"});
      s.op = Op::cpu;
      s.us = required("us", kUs);
      if (body.contains("kernel")) {
        const json& k = body["kernel"];
        if (!k.is_string() || (k != "spin" && k != "sha256"))
          fail(p + ".kernel", "expected \"spin\" or \"sha256\"");
        s.sha256 = k == "sha256";
      }
      if (body.contains("native")) {
        if (!body["native"].is_boolean()) fail(p + ".native", "expected true or false");
        s.native = body["native"].get<bool>();
      }
    } else if (kind == "sleep") {
      object(body, p);
      only_keys(body, p, {"us"});
      s.op = Op::sleep;
      s.us = required("us", kUs);
    } else if (kind == "pipe_echo" || kind == "tcp_echo") {
      object(body, p);
      only_keys(body, p, {"round_trips", "bytes"});
      s.op = kind == "pipe_echo" ? Op::pipe_echo : Op::tcp_echo;
      s.bytes = required("bytes", kBytes);
      s.round_trips.q = &kRoundTrips;
      s.round_trips.a = 1;
      if (body.contains("round_trips"))
        s.round_trips = value(body["round_trips"], p + ".round_trips", kRoundTrips);
    } else if (kind == "file_read") {
      object(body, p);
      only_keys(body, p, {"bytes"});
      s.op = Op::file_read;
      s.bytes = required("bytes", kBytes);
    } else {
      fail(p, "unknown step (cpu, sleep, pipe_echo, tcp_echo, file_read, use)");
    }
    return out;
  }

  std::vector<RawStep> steps(const json& v, const std::string& path) const {
    if (!v.is_array()) fail(path, "expected a list of steps, got " + std::string(v.type_name()));
    if (v.empty()) fail(path, "empty list of steps");
    std::vector<RawStep> out;
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(step(v[i], path + "[" + std::to_string(i) + "]"));
    return out;
  }

 private:
  const std::string& label_;
};

// Fragment expansion: cycles and undefined uses are refused before anything is expanded, and
// step counts saturate, so neither a loop nor 10^4-fold nesting can run away.
class Expander {
 public:
  Expander(const Parser& ps, const std::map<std::string, std::vector<RawStep>>& fragments)
      : ps_(ps), fragments_(fragments) {}

  void check_uses(const std::vector<RawStep>& steps) const {
    for (const RawStep& s : steps)
      if (!s.use.empty() && !fragments_.count(s.use))
        ps_.fail(s.path + ".use", "no fragment '" + s.use + "' is defined");
  }

  void check_cycles() {
    for (const auto& [name, _] : fragments_) visit(name);
  }

  uint64_t count(const std::vector<RawStep>& steps) {
    uint64_t n = 0;
    for (const RawStep& s : steps) {
      const uint64_t each = s.use.empty() ? 1 : count_fragment(s.use);
      n = std::min(kMaxSteps + 1, n + std::min(kMaxSteps + 1, each * s.times));
    }
    return n;
  }

  void expand(const std::vector<RawStep>& steps, std::vector<PlanStep>& out) const {
    for (const RawStep& s : steps) {
      if (s.use.empty()) {
        out.push_back(s.step);
        continue;
      }
      for (uint64_t k = 0; k < s.times; ++k) expand(fragments_.at(s.use), out);
    }
  }

 private:
  void visit(const std::string& name) {
    if (done_.count(name)) return;
    if (const auto on = std::find(stack_.begin(), stack_.end(), name); on != stack_.end()) {
      std::string cycle;
      for (auto it = on; it != stack_.end(); ++it) cycle += *it + " -> ";
      ps_.fail("fragments." + name, "cycle " + cycle + name);
    }
    stack_.push_back(name);
    for (const RawStep& s : fragments_.at(name))
      if (!s.use.empty()) visit(s.use);
    stack_.pop_back();
    done_.insert(name);
  }

  uint64_t count_fragment(const std::string& name) {
    if (const auto it = counts_.find(name); it != counts_.end()) return it->second;
    const uint64_t n = count(fragments_.at(name));
    counts_[name] = n;
    return n;
  }

  const Parser& ps_;
  const std::map<std::string, std::vector<RawStep>>& fragments_;
  std::vector<std::string> stack_;
  std::set<std::string> done_;
  std::map<std::string, uint64_t> counts_;
};

// Like spin_units_per_us: the fastest of five short trials, once per process.
double sha256_units_per_us() {
  static const double rate = [] {
    static std::atomic<uint32_t> breaker{0};
    ExecContext ctx(breaker, no_lock_hooks(), nullptr, 0);
    const KernelFn fn = kernel_table()[kernel_id("sha256")].fn;
    constexpr uint64_t kUnits = 1000;  // 1 MB, about a millisecond
    double best = 0;
    uint64_t sink = 0;
    for (int trial = 0; trial < 5; ++trial) {
      const uint64_t t0 = monotonic_ns();
      sink ^= fn(ctx, KernelArgs{kUnits, kShaBufferBytes, sink + static_cast<uint64_t>(trial)});
      const uint64_t dt = std::max<uint64_t>(1, monotonic_ns() - t0);
      best = std::max(best, static_cast<double>(kUnits) * 1e3 / static_cast<double>(dt));
    }
    return sink == 0x1234 ? best + 1e-9 : best;
  }();
  return rate;
}

class Profile final : public Workload {
 public:
  std::string name_, description_;
  uint64_t tasks_ = 64, payload_bytes_ = 0, seed_ = 1;
  std::vector<PlanStep> plan_;

  std::string_view name() const override { return name_; }
  std::string_view description() const override { return description_; }
  std::string_view origin() const override { return "profile"; }
  std::vector<ParamSpec> params() const override {
    return common_params(static_cast<int64_t>(tasks_), static_cast<int64_t>(payload_bytes_));
  }
  nlohmann::json metrics(const Params&, uint64_t tasks_run, uint64_t wall_ns,
                         const Observations&) const override {
    double cpu = 0, sleep = 0;
    bool spin = false, sha = false;
    for (const PlanStep& s : plan_) {
      if (s.op == Op::cpu) cpu += s.us.mean();
      if (s.op == Op::sleep) sleep += s.us.mean();
      spin = spin || (s.op == Op::cpu && !s.sha256);
      sha = sha || (s.op == Op::cpu && s.sha256);
    }
    const double n = static_cast<double>(tasks_run);
    const double wall = static_cast<double>(wall_ns);
    nlohmann::json m = {
        {"cpu_us_per_task", cpu},
        {"io_wait_us_per_task", sleep},
        {"tasks_per_s", wall > 0 ? n * 1e9 / wall : 0.0},
        // Planned task time (CPU plus sleeps, as if alone) per wall time: how many tasks
        // overlapped. Echo and file steps are left out: their time is not planned.
        {"overlap", wall > 0 ? n * (cpu + sleep) * 1e3 / wall : 0.0}};
    // The calibrations that turned microseconds into units, so a report says what cpu.us meant.
    if (spin) m["spin_units_per_us"] = spin_units_per_us();
    if (sha) m["sha256_units_per_us"] = sha256_units_per_us();
    return m;
  }

 protected:
  TaskSet generate(const Params& p, uint64_t seed) const override {
    const bool spin = std::any_of(plan_.begin(), plan_.end(),
                                  [](const PlanStep& s) { return s.op == Op::cpu && !s.sha256; });
    const bool sha = std::any_of(plan_.begin(), plan_.end(),
                                 [](const PlanStep& s) { return s.op == Op::cpu && s.sha256; });
    const double spin_rate = spin ? spin_units_per_us() : 0;
    const double sha_rate = sha ? sha256_units_per_us() : 0;
    const KernelId spin_id = kernel_id("spin"), sha_id = kernel_id("sha256");
    TaskSet ts;
    const int64_t n = p.get_int("tasks");
    ts.tasks.reserve(static_cast<size_t>(n));
    ts.expected.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      Task t = make_task(static_cast<uint64_t>(i), seed, p.get_int("payload_bytes"));
      // t.seed already mixes the run's seed and the task id; the profile's seed joins them.
      uint64_t rng = mix64(t.seed ^ mix64(seed_ + 0x70726f66696c65ULL));
      uint64_t h = task_checksum_start(t);
      t.steps.reserve(plan_.size());
      for (const PlanStep& ps : plan_) {
        const size_t idx = t.steps.size();
        Step s;
        uint64_t v = 0;
        switch (ps.op) {
          case Op::cpu: {
            s.kind = StepKind::cpu;
            s.native = ps.native;
            s.kernel = ps.sha256 ? sha_id : spin_id;
            s.units = static_cast<uint64_t>(
                std::llround(ps.us.draw(rng) * (ps.sha256 ? sha_rate : spin_rate)));
            const uint64_t ss = step_seed(t.seed, idx);
            if (ps.sha256) {
              s.arg = kShaBufferBytes;
              v = predict_sha256(ss, s.units, s.arg);
            } else {
              v = spin_state_after(ss, s.units);
            }
            break;
          }
          case Op::sleep:
            s.kind = StepKind::sleep;
            s.duration_ns = static_cast<uint64_t>(std::llround(ps.us.draw(rng) * 1000));
            break;
          case Op::pipe_echo:
          case Op::tcp_echo:
            s.kind = ps.op == Op::pipe_echo ? StepKind::pipe_echo : StepKind::tcp_echo;
            s.units = static_cast<uint64_t>(ps.round_trips.draw(rng));
            s.bytes = static_cast<uint32_t>(ps.bytes.draw(rng));
            break;
          case Op::file_read:
            s.kind = StepKind::file_read;
            s.bytes = static_cast<uint32_t>(ps.bytes.draw(rng));
            break;
        }
        if (s.kind != StepKind::cpu) v = predict_io_step(s, t.seed, idx);
        h = fold(h, v);
        t.steps.push_back(s);
      }
      ts.expected.push_back(h);
      ts.tasks.push_back(std::move(t));
    }
    return ts;
  }
};

bool good_name(const std::string& s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

}  // namespace

std::unique_ptr<Workload> parse_profile(const std::string& json_text, const std::string& label) {
  const Parser ps(label);
  const json doc = ps.parse_text(json_text);
  if (!doc.is_object()) ps.fail("", "expected a JSON object, got " + std::string(doc.type_name()));
  ps.only_keys(doc, "",
               {"name", "description", "tasks", "payload_bytes", "seed", "steps", "fragments"});
  auto w = std::make_unique<Profile>();
  if (!doc.contains("name")) ps.fail("name", "missing");
  if (!doc["name"].is_string() || !good_name(doc["name"].get<std::string>()))
    ps.fail("name", "must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
  w->name_ = doc["name"].get<std::string>();
  w->description_ = "profile " + label;
  if (doc.contains("description")) {
    if (!doc["description"].is_string()) ps.fail("description", "expected a string");
    w->description_ = doc["description"].get<std::string>();
    for (char& c : w->description_)
      if (c == '\n' || c == '\r') c = ' ';
  }
  if (doc.contains("tasks")) w->tasks_ = ps.integer(doc["tasks"], "tasks", 1, kMaxTasks);
  if (doc.contains("payload_bytes"))
    w->payload_bytes_ = ps.integer(doc["payload_bytes"], "payload_bytes", 0, kMaxPayloadBytes);
  if (doc.contains("seed")) w->seed_ = ps.integer(doc["seed"], "seed", 0, kMaxSeed);

  std::map<std::string, std::vector<RawStep>> fragments;
  if (doc.contains("fragments")) {
    const json& f = ps.object(doc["fragments"], "fragments");
    if (f.size() > kMaxFragments)
      ps.fail("fragments", "more than " + std::to_string(kMaxFragments) + " fragments");
    for (const auto& [name, body] : f.items()) {
      if (name.empty()) ps.fail("fragments", "a fragment needs a name");
      fragments[name] = ps.steps(body, "fragments." + name);
    }
  }
  if (!doc.contains("steps")) ps.fail("steps", "missing");
  const std::vector<RawStep> top = ps.steps(doc["steps"], "steps");

  Expander ex(ps, fragments);
  for (const auto& [_, steps] : fragments) ex.check_uses(steps);
  ex.check_uses(top);
  ex.check_cycles();
  if (ex.count(top) > kMaxSteps)
    ps.fail("steps", "a task expands to more than " + std::to_string(kMaxSteps) +
                         " steps (fragments included)");
  ex.expand(top, w->plan_);
  return w;
}

const Workload& load_profile_file(const std::string& path) {
  namespace fs = std::filesystem;
  static std::mutex mu;
  static std::map<std::string, const Workload*> by_path;  // canonical path -> its workload
  static std::map<std::string, std::string> file_of;      // name -> the file that defined it
  std::error_code ec;
  std::string key = fs::weakly_canonical(path, ec).string();
  if (ec) key = path;
  std::lock_guard lock(mu);
  if (const auto it = by_path.find(key); it != by_path.end()) return *it->second;

  if (fs::is_directory(path, ec)) throw UsageError(path + ": is a directory, not a profile");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(path + ": cannot read (" + std::strerror(errno) + ")");
  // Bounded, so that a device (/dev/zero) given by mistake is refused instead of filling memory.
  std::string text(kMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) throw UsageError(path + ": cannot read (" + std::strerror(errno) + ")");
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxFileBytes)
    throw UsageError(path + ": larger than " + std::to_string(kMaxFileBytes >> 20) + " MiB");
  std::unique_ptr<Workload> w = parse_profile(text, path);
  const std::string name(w->name());
  if (const Workload* have = find_workload(name)) {
    const auto other = file_of.find(name);
    throw UsageError(
        path + ": name: workload '" + name + "' is already defined (" +
        (other != file_of.end() ? "by " + other->second : std::string(have->origin())) + ")");
  }
  const Workload* raw = w.get();
  register_workload(std::move(w));
  by_path[key] = raw;
  file_of[name] = path;
  return *raw;
}

}  // namespace concbench
