// The timeline (bench_runner run --trace FILE): one traced repetition per cell, written in the
// Chrome trace-event format that Perfetto (ui.perfetto.dev) and chrome://tracing open. Each cell
// is a process ("gil_threads latency.echo_under_load 2 workers"), each worker a thread track,
// and the model's own thread (the process pool's dispatcher, the interpreters' caller) one more.
// Spans: tasks, GIL waits (args.ended says how: free, slipped_through, signalled_won,
// timed_out_set_drop_request, forced_switch), GIL holds, IO waits, idle waits, serializing and
// deserializing, a task in flight at a worker process; instants: a GIL waiter that woke and
// lost the lock to another thread; a counter track per worker of the CPU it ran on (sampled at
// each task's start). Times are microseconds from the traced batch's first event.
//
// Bounded: the cell's cap (--trace-cap, events) is split among its tracks before the batch, and
// events past it are counted in the cell's trace summary (dropped), not kept. Recording costs a
// clock read or two per event in the traced repetition only; the others run untraced.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "concbench/runner.hpp"
#include "concbench/trace_buffer.hpp"

namespace concbench {

// One traced batch as Chrome trace events (pid 0: write_trace_atomic numbers the cells), and the
// summary the report keeps beside the cell: events kept and dropped per track, the cap, and
// whether the model records at all.
struct CellTrace {
  nlohmann::json events = nlohmann::json::array();
  nlohmann::json summary = nlohmann::json::object();
};
CellTrace cell_trace(const BatchTrace& trace, const std::string& worker_kind, size_t cap);

// Every traced cell of `cells` into one trace file, through a temporary file and rename.
void write_trace_atomic(const std::string& path, const std::vector<CellResult>& cells);

inline constexpr size_t kDefaultTraceCap = 200'000;

}  // namespace concbench
