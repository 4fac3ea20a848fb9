// The timeline's raw material (bench_runner run --trace): one worker's events in one batch, in a
// buffer allocated before the batch and never grown while it runs. Once full, further events are
// counted, not kept. Off by default: a model with no buffer pays one null-pointer test per hook.
//
// Written only by its worker's thread; read by the runner after the batch (the model's join or
// completion handshake orders the two). Ground floor, beside exec_context.hpp: the IO steps and
// the emulated GIL record into it, and the runner turns it into Chrome trace events (trace.hpp).
#pragma once

#include <cstdint>
#include <vector>

namespace concbench {

enum class TraceKind : uint8_t {
  task,         // arg: the work item
  gil_wait,     // detail: how the acquisition ended (GilOutcome)
  gil_hold,     //
  gil_lost,     // an instant: a waiter woke and found the lock taken again
  io_wait,      //
  idle,         //
  serialize,    // arg: the work item
  deserialize,  // arg: the work item
  in_flight,    // a task out at a worker process, from the parent's side; arg: the work item
  cpu,          // an instant: the CPU the worker is on (arg)
  loop_step,    // a CPU step run inline on an event loop's thread, which it holds; arg: the item
  task_async,   // a task's life on an event loop, overlapping others (an async span); arg: item
};

// Why a GIL acquisition ended (gil.hpp).
enum class GilOutcome : uint8_t {
  free,                // the lock was free and nobody was waiting
  slipped_through,     // the lock was free though others waited for it: taken before they woke
  signalled_won,       // woken by a release and took it
  after_drop_request,  // timed out, asked the holder to drop, and took it
  forced_switch,       // a drop's FORCE_SWITCHING wait (until another thread took it)
};

inline const char* gil_outcome_name(GilOutcome o) {
  switch (o) {
    case GilOutcome::free:
      return "free";
    case GilOutcome::slipped_through:
      return "slipped_through";
    case GilOutcome::signalled_won:
      return "signalled_won";
    case GilOutcome::after_drop_request:
      return "timed_out_set_drop_request";
    case GilOutcome::forced_switch:
      return "forced_switch";
  }
  return "?";
}

struct TraceEvent {
  uint64_t t0 = 0, t1 = 0;  // monotonic ns; t1 == t0 for an instant
  uint64_t arg = 0;
  TraceKind kind = TraceKind::task;
  uint8_t detail = 0;
};

class TraceBuffer {
 public:
  explicit TraceBuffer(size_t capacity) : events_(capacity) {}
  void add(TraceKind k, uint64_t t0, uint64_t t1, uint64_t arg = 0, uint8_t detail = 0) {
    if (size_ < events_.size()) {
      events_[size_++] = {t0, t1, arg, k, detail};
    } else {
      ++dropped_;
    }
  }
  // Events a recorder outside this buffer (a Python model's own lists) could not keep.
  void note_dropped(uint64_t n) { dropped_ += n; }
  size_t size() const { return size_; }
  uint64_t dropped() const { return dropped_; }
  const TraceEvent& operator[](size_t i) const { return events_[i]; }

 private:
  std::vector<TraceEvent> events_;  // sized once: no allocation while the batch runs
  size_t size_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace concbench

namespace concbench {

// One traced batch: a buffer per worker and one for the model's own thread (a dispatcher, the
// caller), the cell's cap split evenly among them; all allocated when constructed, before the
// batch. A model that records sets `recorded`; the report says where a model records nothing.
class BatchTrace {
 public:
  BatchTrace(int workers, size_t cap)
      : per_(cap / (static_cast<size_t>(workers > 0 ? workers : 1) + 1)), parent_(per_) {
    workers_.reserve(static_cast<size_t>(workers));
    for (int w = 0; w < workers; ++w) workers_.emplace_back(per_);
  }
  TraceBuffer* worker(int w) {
    return w >= 0 && static_cast<size_t>(w) < workers_.size() ? &workers_[static_cast<size_t>(w)]
                                                              : nullptr;
  }
  TraceBuffer* parent() { return &parent_; }
  const std::vector<TraceBuffer>& workers() const { return workers_; }
  const TraceBuffer& parent_buffer() const { return parent_; }
  size_t per_buffer() const { return per_; }
  bool recorded = false;

 private:
  size_t per_;
  std::vector<TraceBuffer> workers_;
  TraceBuffer parent_;
};

}  // namespace concbench
