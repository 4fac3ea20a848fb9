// Where each worker's wall time went in a batch, so every cell explains its figure.
//
// A worker's wall time is the model's timed region (BatchResult::span). It is split into parts
// that are measured, never derived from one another:
//   cpu          on a CPU over the worker's active interval (the thread's or process's CPU
//                clock, clock_gettime: exact where schedstat's run time lags a running task
//                by up to a tick), less the serializing and deserializing below, which run on
//                the CPU too;
//   runqueue     runnable but waiting for a CPU (schedstat's run-queue delay);
//   gil_wait     blocked acquiring an interpreter lock (the emulated GIL's own clock, less the
//                CPU its acquisitions spend: per acquisition the mean one in 64 of them
//                measured, at most its wall time; that is in cpu, and reported beside as
//                gil_wait_on_cpu);
//   io_wait      inside an IO step (the clock around it);
//   serialize, deserialize   encoding and decoding what crosses a boundary (the clock);
//   idle         waiting for work: before the worker's first item, after its last, and on an
//                empty queue or a loop with nothing ready.
// `unattributed` is the wall time less all of them, signed, and reported, never folded into a
// part. Two sources can count the same nanoseconds: a wait timed by the clock ends when the
// woken thread runs, so the run-queue delay of its wake-up is in both the wait and schedstat's
// run-queue figure. An excess of the parts over the wall time, up to that figure, is taken out
// of `runqueue` (which then means runnable outside a timed wait) and reported beside as
// runqueue_in_waits; what is left either way is `unattributed`, checked against a tolerance.
// gil_hold and loop_lag are reported beside the parts, not in the sum: holding the GIL is
// computing, and an event loop's lag is time its CPU steps already fill. So is gil_wait_on_cpu.
//
// schedstat (/proc/<pid>/task/<tid>/schedstat) needs no root and no PMU; where the kernel has
// none (CONFIG_SCHED_INFO off) cpu and runqueue are null with the reason, and the sum is not
// checked. Reading it costs one open/read/close (a few microseconds): workers read it and their
// CPU clock at the start and end of their active interval, twice per batch, and the cost is
// measured once per process and reported beside the parts (schedstat_read_cost_ns).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "concbench/exec_context.hpp"

namespace concbench {

struct SchedStat {
  uint64_t run_ns = 0;       // time on a CPU (in WorkerAttribution: from the CPU clock)
  uint64_t runqueue_ns = 0;  // time runnable, waiting for a CPU
  uint64_t timeslices = 0;   // times it was put on a CPU
};

// "run wait slices\n" as the kernel writes it; nullopt for anything else.
std::optional<SchedStat> parse_schedstat(std::string_view text);
// The calling thread's (/proc/thread-self/schedstat); no allocation.
std::optional<SchedStat> own_schedstat();
// Thread `tid` of process `pid` (tid 0: its main thread), for a worker in another process.
std::optional<SchedStat> task_schedstat(int pid, int tid = 0);
// Time the hypervisor ran something else on this machine's CPUs so far (/proc/stat's steal,
// summed over CPUs; 10 ms ticks), or nothing: a VM's CPU taken away is in no thread's figures.
std::optional<uint64_t> machine_steal_ns();
// Why schedstat cannot be read here, or "" where it can (checked once per process).
const std::string& schedstat_unavailable();
// The median cost of one own_schedstat() call in this process, measured once.
double schedstat_read_cost_ns();
// The cost of timing one IO wait (OffCpuWait: two clock and two CPU-time reads), measured once.
double io_wait_timing_cost_ns();

// One worker's batch, filled in by the model from its own records.
struct WorkerAttribution {
  int worker = 0;
  std::string kind = "thread";  // thread | process | interpreter | loop
  // From the worker's first moment of work in the batch to its last (the clock); the rest of
  // the wall time is idle.
  uint64_t active_ns = 0;
  std::optional<SchedStat> sched;  // over the active interval; nullopt where unreadable
  std::string sched_unavailable;   // why sched is missing
  WorkerTimes times;               // clock-measured waits inside the active interval
  bool tasks_known = true;         // false where no per-worker count is kept (async_mt)
  std::string note;                // how a part was come by, where it was not measured directly
  double wait_timing_cost_ns = 0;  // what timing one wait costs this worker; 0: the C++ figure
};

// A worker's record as another process or interpreter reports it (the cpython.* models'
// WorkerClock and OutsideClock, the py:* driver): {worker, kind, active_ns, run_ns, runqueue_ns,
// timeslices, io_wait_ns, idle_ns, gil_wait_ns, loop_lag_ns, serialize_ns, deserialize_ns,
// io_waits, tasks, tasks_known, note, wait_timing_cost_ns, sched_unavailable}; absent numbers
// are 0, and without run_ns the schedstat part is unavailable with the record's reason.
// Throws nlohmann::json::exception on a field of the wrong type.
WorkerAttribution worker_attribution_from_json(const nlohmann::json& w);

// For a thread that runs an event loop. A loop blocks only in epoll_wait (on IO, on a timer,
// or on its queue), so the time its thread spent off the CPU in the active interval is its IO
// wait: the kernel's figure (active less run and run-queue time), not the clock's, which
// cannot see inside the reactor. Such a worker's parts add up by construction.
// `off_cpu` names the part its off-CPU time goes to: io_wait for a loop, idle for a dispatcher
// that waits on a condition variable for results.
void attribute_loop_thread(WorkerAttribution& a,
                           uint64_t WorkerTimes::*off_cpu = &WorkerTimes::io_wait_ns);

// Reads the calling thread's schedstat and CPU clock at the start and end of its active interval,
// and the clock with them.
class ActiveInterval {
 public:
  ActiveInterval();
  // Closes the interval into `a` (active_ns, sched, sched_unavailable).
  void finish(WorkerAttribution& a) const;

 private:
  uint64_t t0_;
  std::optional<SchedStat> s0_;
  static std::optional<SchedStat> read();
};

// Relative tolerance on |unattributed| / wall (beyond the run-queue overlap described above).
inline constexpr double kAttributionTolerance = 0.05;

// The report's per-repetition attribution: per worker its parts (ns), overlays and tasks, and
// `check` (sum, unattributed, within_tolerance). `wall_ns` is the batch's timed region.
// `steal_ns`: the machine's steal time over the batch, if known; a worker's unattributed time up
// to it is allowed by the check (a stolen CPU is in no part), and it is reported beside.
nlohmann::json attribute_repetition(uint64_t wall_ns, const std::vector<WorkerAttribution>& w,
                                    const std::string& unavailable,
                                    std::optional<uint64_t> steal_ns = std::nullopt);

// The cell's attribution from its repetitions' (verified ones): per worker and summed, each part
// as ns and as a share of worker time, the dominant part, the check, and fairness across workers
// (tasks, CPU and wait time per worker: coefficient of variation, max/min, starved workers: fewer
// than `starved_share` of an equal share of the tasks).
nlohmann::json summarize_attribution(const std::vector<const nlohmann::json*>& reps,
                                     double starved_share = 0.5);

// The part names, in the order reports and plots stack them.
const std::vector<std::string>& attribution_parts();

}  // namespace concbench
