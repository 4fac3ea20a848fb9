// py:<label>.threading and py:<label>.serial: tasks run by another Python interpreter (Jython,
// PyPy, any CPython build) through the pure-Python driver harness/driver/concbench_driver.py. The
// driver runs as one child process whose stdin and stdout are a socket to this model; the
// protocol (newline-delimited JSON) is documented at the top of the driver.
//
// setup() starts the driver and waits for its hello (kHelloTimeoutMs: a JVM takes seconds), then
// asks it for the model and worker count; the runner times setup apart, so the interpreter's
// start-up is outside every batch. A task list goes over once and is cached by the driver under
// a key. run() sends the batch's rounds and nonce and reads back every checksum. The span's wall
// time is the driver's own, measured around its batch; child CPU time is the driver's getrusage
// delta, or its /proc/PID/stat delta where the interpreter has no resource module (Jython).
// A driver that dies fails the batch with its stderr's last line; cancel() kills it.
#include "concbench/foreign_python.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "concbench/attribution.hpp"
#include "concbench/kernels.hpp"
#include "concbench/model.hpp"
#include "concbench/params.hpp"

extern char** environ;

#ifndef CONCBENCH_DRIVER_PATH
#define CONCBENCH_DRIVER_PATH "harness/driver/concbench_driver.py"
#endif

namespace concbench {
namespace {

using nlohmann::json;

constexpr int kHelloTimeoutMs = 60'000;
constexpr int kReplyTimeoutMs = 60'000;  // setup and tasks replies
constexpr int kPollSliceMs = 50;

struct DriverError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string to_hex(const std::vector<std::byte>& b) {
  static const char* d = "0123456789abcdef";
  std::string s(b.size() * 2, '0');
  for (size_t i = 0; i < b.size(); ++i) {
    const auto v = static_cast<unsigned>(b[i]);
    s[2 * i] = d[v >> 4];
    s[2 * i + 1] = d[v & 15];
  }
  return s;
}

// utime and stime of `pid`, from /proc/PID/stat; nullopt when it cannot be read.
std::optional<CpuTimes> proc_cpu(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!f || !std::getline(f, s)) return std::nullopt;
  const size_t rp = s.rfind(')');
  if (rp == std::string::npos) return std::nullopt;
  std::istringstream in(s.substr(rp + 2));
  std::string field;
  uint64_t ut = 0, st = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) ut = std::stoull(field);
    if (i == 15) st = std::stoull(field);
  }
  const uint64_t tick = 1'000'000'000ULL / static_cast<uint64_t>(sysconf(_SC_CLK_TCK));
  return CpuTimes{ut * tick, st * tick};
}

// One driver process and the socket to it.
class Driver {
 public:
  ~Driver() { stop(); }

  void start(const std::string& python) {
    stop();
    if (access(python.c_str(), X_OK) != 0)
      throw DriverError("cannot run " + python + ": " + std::strerror(errno));
    const std::string script = foreign_driver_path();
    if (access(script.c_str(), R_OK) != 0)
      throw DriverError("no driver at " + script + " (set CONCBENCH_DRIVER)");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      throw DriverError(std::string("socketpair: ") + std::strerror(errno));
    char tmpl[] = "/tmp/concbench-driver-err-XXXXXX";
    err_fd_ = mkostemp(tmpl, O_CLOEXEC);
    if (err_fd_ >= 0) unlink(tmpl);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
    if (err_fd_ >= 0) posix_spawn_file_actions_adddup2(&fa, err_fd_, 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    std::vector<std::string> args = {python, script};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, python.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (rc != 0) {
      close(sv[0]);
      throw DriverError("cannot start " + python + ": " + std::strerror(rc));
    }
    fd_ = sv[0];
    buf_.clear();
    std::lock_guard lock(mu_);
    pid_ = pid;
  }

  int pid() const { return pid_.load(); }
  bool alive() const { return pid_.load() > 0; }

  void send(const json& msg) {
    const std::string line = msg.dump() + "\n";
    size_t off = 0;
    while (off < line.size()) {
      const ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw DriverError(died("while taking a message"));
      off += static_cast<size_t>(n);
    }
  }

  // The next message; `timeout_ms` < 0 waits until the driver answers or dies (cancel kills it).
  json recv(int timeout_ms, const char* what) {
    int waited = 0;
    while (true) {
      const size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        json m;
        try {
          m = json::parse(line);
        } catch (const std::exception&) {
          throw DriverError("the driver wrote something not JSON " + std::string(what) + ": " +
                            line.substr(0, 120));
        }
        if (m.value("op", "") == "error")
          throw DriverError("the driver failed " + std::string(what) + ": " +
                            m.value("reason", "?"));
        return m;
      }
      pollfd p{fd_, POLLIN, 0};
      const int r = poll(&p, 1, kPollSliceMs);
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) {
        waited += kPollSliceMs;
        if (timeout_ms >= 0 && waited >= timeout_ms) {
          stop();
          throw DriverError("the driver did not answer " + std::string(what) + " within " +
                            std::to_string(timeout_ms / 1000) + " s" + stderr_suffix());
        }
        continue;
      }
      char tmp[65536];
      const ssize_t n = read(fd_, tmp, sizeof tmp);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw DriverError(died(what));
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  // Kills and reaps the driver (no zombie); returns its wait status, or -1.
  int stop() {
    int status = -1;
    {
      std::lock_guard lock(mu_);
      const int pid = pid_.load();
      if (pid > 0) {
        // A driver told to quit may exit by itself; give it a moment, then kill it.
        for (int i = 0; i < 20; ++i) {
          if (waitpid(pid, &status, WNOHANG) == pid) {
            pid_ = -1;
            break;
          }
          if (i == 0) continue;
          usleep(5000);
        }
        if (pid_.load() > 0) {
          kill(pid, SIGKILL);
          kill_pool();
          while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
          }
          pid_ = -1;
        }
      }
    }
    if (fd_ >= 0) close(fd_), fd_ = -1;
    return status;
  }

  void quit() {
    if (!alive()) return;
    try {
      send({{"op", "quit"}});
    } catch (const DriverError&) {
    }
    stop();
  }

  void kill_now() {
    std::lock_guard lock(mu_);
    if (pid_.load() > 0) kill(pid_.load(), SIGKILL);
    kill_pool();
  }

  void set_pool_pids(std::vector<int> pids) {
    std::lock_guard lock(mu_);
    pool_pids_ = std::move(pids);
  }

  std::string last_stderr_line() const {
    if (err_fd_ < 0) return "";
    std::string all;
    char tmp[4096];
    off_t off = 0;
    const off_t size = lseek(err_fd_, 0, SEEK_END);
    if (size > 8192) off = size - 8192;
    ssize_t n;
    while ((n = pread(err_fd_, tmp, sizeof tmp, off)) > 0) all.append(tmp, n), off += n;
    while (!all.empty() && (all.back() == '\n' || all.back() == ' ')) all.pop_back();
    const size_t nl = all.rfind('\n');
    return nl == std::string::npos ? all : all.substr(nl + 1);
  }

 private:
  std::string stderr_suffix() const {
    const std::string l = last_stderr_line();
    return l.empty() ? "" : " (stderr: " + l + ")";
  }
  std::string died(const char* what) {
    const int status = stop();
    std::string how = "the driver exited";
    if (status >= 0 && WIFEXITED(status))
      how += " with status " + std::to_string(WEXITSTATUS(status));
    else if (status >= 0 && WIFSIGNALED(status))
      how = "the driver was killed by signal " + std::to_string(WTERMSIG(status));
    return how + " " + what + stderr_suffix();
  }

  int fd_ = -1;
  int err_fd_ = -1;
  std::string buf_;
  std::atomic<int> pid_{-1};
  std::mutex mu_;
  // The driver's own children (a multiprocessing pool), guarded by mu_. They are not ours to
  // reap: the driver's death reparents them, and SIGKILL ends them.
  std::vector<int> pool_pids_;
  void kill_pool() {  // with mu_ held
    for (const int p : pool_pids_)
      if (p > 0) kill(p, SIGKILL);
    pool_pids_.clear();
  }
};

struct Interpreter {
  std::string path;
  json hello;
};

std::mutex g_mu;
std::map<std::string, std::string> g_label_of_path;
std::map<std::string, std::string> g_path_of_label;

class ForeignPython final : public Model {
 public:
  ForeignPython(Interpreter interp, std::string model)
      : interp_(std::move(interp)), model_(std::move(model)) {}
  ~ForeignPython() override { driver_.quit(); }

  void setup(const ModelConfig& cfg) override {
    cfg_ = cfg;
    cancelled_ = false;
    start();
  }

  BatchResult run(const Batch& batch) override {
    BatchResult r = BatchResult::for_batch(batch);
    if (cancelled_) return r;
    try {
      if (!driver_.alive()) start();
      if (batch.tasks != sent_tasks_ || batch.tasks->size() != sent_size_) send_tasks(*batch.tasks);
      const int pid = driver_.pid();
      const CpuTimes p0 = process_cpu_times();
      const auto c0 = proc_cpu(pid);
      const uint64_t t0 = monotonic_ns();
      driver_.send({{"op", "run"},
                    {"key", key_},
                    {"rounds", batch.rounds},
                    {"nonce", std::to_string(batch.nonce)},
                    {"stride", batch.latency_stride}});
      const json res = driver_.recv(-1, "running a batch");
      const uint64_t t1 = monotonic_ns();
      const auto c1 = proc_cpu(pid);
      const CpuTimes p1 = process_cpu_times();
      const auto& sums = res.at("checksums");
      const std::string done = res.at("done").get<std::string>();
      if (sums.size() != batch.items() || done.size() != batch.items())
        throw DriverError("the driver answered for " + std::to_string(sums.size()) + " items of " +
                          std::to_string(batch.items()));
      for (uint64_t k = 0; k < batch.items(); ++k) {
        r.done[k] = done[k] == '1';
        if (r.done[k]) r.checksums[k] = std::stoull(sums[k].get<std::string>());
      }
      const auto& lat = res.at("latency_ns");
      for (size_t i = 0; i < lat.size() && i < r.latency_ns.size(); ++i) {
        const int64_t v = lat[i].get<int64_t>();
        r.latency_ns[i] = v < 0 ? BatchResult::kNoSample : static_cast<uint64_t>(v);
      }
      for (const auto& f : res.at("failures"))
        r.failures.push_back({f.at(0).get<uint64_t>(), f.at(1).get<std::string>()});
      r.span.wall_ns = res.at("wall_ns").get<uint64_t>();
      r.span.cpu_user_ns = p1.user_ns - p0.user_ns;
      r.span.cpu_sys_ns = p1.sys_ns - p0.sys_ns;
      r.span.set = true;
      std::string cpu_from = "none";
      if (res.contains("cpu") && res.at("cpu").is_array()) {
        r.child_cpu_user_ns = res["cpu"].at(0).get<uint64_t>();
        r.child_cpu_sys_ns = res["cpu"].at(1).get<uint64_t>();
        r.has_child_cpu = true;
        cpu_from = "driver getrusage around its batch";
      } else if (c0 && c1) {
        r.child_cpu_user_ns = c1->user_ns - c0->user_ns;
        r.child_cpu_sys_ns = c1->sys_ns - c0->sys_ns;
        r.has_child_cpu = true;
        cpu_from = "/proc/PID/stat around the round trip (clock ticks)";
      }
      // Where each of the driver's workers spent the batch, as the driver reports it.
      if (auto it = res.find("attribution"); it != res.end() && it->is_array() && !it->empty())
        for (const auto& w : *it) r.attribution.push_back(worker_attribution_from_json(w));
      else
        r.attribution_unavailable = "the driver reported no attribution (an older driver)";
      r.worker_pids = {pid};
      // A pool's worker processes, alive until teardown: the runner reads their memory too.
      if (auto it = res.find("pids"); it != res.end() && it->is_array())
        for (const auto& p : *it)
          if (p.is_number_integer()) r.worker_pids.push_back(p.get<int>());
      r.model_metrics = {{"interpreter", interp_.path},
                         {"label", interp_.hello.value("label", "")},
                         {"implementation", interp_.hello.value("implementation", "")},
                         {"version", interp_.hello.value("version", "")},
                         {"gil_disabled", interp_.hello.value("gil_disabled", json())},
                         {"gil_enabled", interp_.hello.value("gil_enabled", json())},
                         {"python_gil_env", interp_.hello.value("python_gil_env", json())},
                         {"span_wall_from", "the driver, around its batch"},
                         {"child_cpu_from", cpu_from},
                         {"round_trip_ns", t1 - t0}};
    } catch (const std::exception& e) {
      std::fill(r.done.begin(), r.done.end(), 0);
      // A cancelled batch is items not done, as for every model; anything else fails it.
      if (!cancelled_) r.failures.push_back({0, e.what()});
      sent_tasks_ = nullptr;
    }
    return r;
  }

  void teardown() override { driver_.quit(); }
  void cancel() override {
    cancelled_ = true;
    driver_.kill_now();
  }

 private:
  void start() {
    sent_tasks_ = nullptr;
    driver_.start(interp_.path);
    try {
      driver_.recv(kHelloTimeoutMs, "before its hello");
      driver_.send({{"op", "setup"}, {"model", model_}, {"workers", cfg_.workers}});
      const json ok = driver_.recv(kReplyTimeoutMs, "setting up");
      // A pool's processes: killed with the driver, which a SIGKILL would otherwise orphan.
      std::vector<int> pool;
      if (auto it = ok.find("pids"); it != ok.end() && it->is_array())
        for (const auto& p : *it)
          if (p.is_number_integer()) pool.push_back(p.get<int>());
      driver_.set_pool_pids(std::move(pool));
    } catch (const DriverError& e) {
      throw std::runtime_error(interp_.path + ": " + e.what());
    }
  }

  void send_tasks(const std::vector<Task>& tasks) {
    const auto kt = kernel_table();
    json list = json::array();
    for (const Task& t : tasks) {
      json steps = json::array();
      for (const Step& s : t.steps)
        steps.push_back({step_kind_name(s.kind), s.native,
                         s.kind == StepKind::cpu && s.kernel < kt.size()
                             ? std::string(kt[s.kernel].name)
                             : std::string(),
                         s.bytes, s.units, s.duration_ns, s.arg});
      list.push_back({std::to_string(t.id), std::to_string(t.seed), to_hex(t.payload), steps});
    }
    ++key_;
    driver_.send({{"op", "tasks"}, {"key", key_}, {"tasks", list}});
    driver_.recv(kReplyTimeoutMs, "taking the tasks");
    sent_tasks_ = &tasks;
    sent_size_ = tasks.size();
  }

  Interpreter interp_;
  std::string model_;
  Driver driver_;
  std::atomic<bool> cancelled_{false};
  const std::vector<Task>* sent_tasks_ = nullptr;
  size_t sent_size_ = 0;
  uint64_t key_ = 0;
};

}  // namespace

std::string foreign_driver_path() {
  if (const char* e = std::getenv("CONCBENCH_DRIVER"); e && *e) return e;
  return CONCBENCH_DRIVER_PATH;
}

std::string register_foreign_python(const std::string& interpreter) {
  std::lock_guard lock(g_mu);
  if (auto it = g_label_of_path.find(interpreter); it != g_label_of_path.end()) return it->second;
  json hello;
  {
    Driver d;
    try {
      d.start(interpreter);
      hello = d.recv(kHelloTimeoutMs, "before its hello");
    } catch (const DriverError& e) {
      throw UsageError("--python " + interpreter + ": " + e.what());
    }
    d.quit();
  }
  if (hello.value("op", "") != "hello" || !hello.contains("label") || !hello.contains("models"))
    throw UsageError("--python " + interpreter + ": the driver's first message is no hello");
  const std::string label = hello.at("label").get<std::string>();
  if (auto it = g_path_of_label.find(label); it != g_path_of_label.end())
    throw UsageError("--python " + interpreter + ": " + label + " is already given by " +
                     it->second);
  const Interpreter interp{interpreter, hello};
  const std::string prefix = "py:" + label + ".";
  for (const auto& m : hello.at("models")) {
    const std::string model = m.get<std::string>();
    ModelInfo info;
    info.name = prefix + model;
    info.description = (model == "serial"         ? "one thread of "
                        : model == "asyncio"      ? "one asyncio event loop of "
                        : model == "process_pool" ? "a multiprocessing.Pool of processes of "
                                                  : "Python threads in ") +
                       std::string("the interpreter at ") + interpreter + " (" +
                       hello.value("version", "") + "), driven over a socket";
    info.single_worker = model == "serial" || model == "asyncio";
    if (model == "asyncio") info.in_flight_per_worker = 0;
    info.separate_processes = true;
    info.workloads = {"cpu.spin", "io.sleep", "overhead.noop"};
    info.workload_params = {{"cpu.spin", {{"units", "50"}}}};
    info.serial_baseline = prefix + "serial";
    info.latency_means =
        model == "asyncio"
            ? "from a lane of the driver's event loop taking the task to its result, awaits and "
              "loop waits included, measured inside the interpreter"
        : model == "process_pool"
            ? "not sampled: a chunk of tasks crosses to a pool worker and back as one"
            : "the task's run time on a thread of the driver, measured inside the interpreter";
    info.create = [interp, model] { return std::make_unique<ForeignPython>(interp, model); };
    register_model(std::move(info));
  }
  g_label_of_path[interpreter] = label;
  g_path_of_label[label] = interpreter;
  return label;
}

}  // namespace concbench
