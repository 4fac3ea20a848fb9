#include "concbench/trace.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace concbench {

using nlohmann::json;

namespace {

const char* kind_name(TraceKind k) {
  switch (k) {
    case TraceKind::task:
      return "task";
    case TraceKind::gil_wait:
      return "GIL wait";
    case TraceKind::gil_hold:
      return "GIL held";
    case TraceKind::gil_lost:
      return "GIL lost to another thread";
    case TraceKind::io_wait:
      return "IO wait";
    case TraceKind::idle:
      return "idle";
    case TraceKind::serialize:
      return "serialize";
    case TraceKind::deserialize:
      return "deserialize";
    case TraceKind::in_flight:
      return "task at the worker";
    case TraceKind::cpu:
      return "cpu";
    case TraceKind::loop_step:
      return "CPU step (holds the loop)";
    case TraceKind::task_async:
      return "task";
  }
  return "?";
}

double us(uint64_t ns, uint64_t origin) {
  return ns >= origin ? static_cast<double>(ns - origin) / 1e3 : 0.0;
}

void add_track(json& events, const TraceBuffer& b, int tid, const std::string& name,
               uint64_t origin) {
  events.push_back(
      {{"ph", "M"}, {"pid", 0}, {"tid", tid}, {"name", "thread_name"}, {"args", {{"name", name}}}});
  for (size_t i = 0; i < b.size(); ++i) {
    const TraceEvent& e = b[i];
    if (e.kind == TraceKind::cpu) {
      events.push_back({{"ph", "C"},
                        {"pid", 0},
                        {"tid", tid},
                        {"ts", us(e.t0, origin)},
                        {"name", "cpu of " + name},
                        {"args", {{"cpu", e.arg}}}});
      continue;
    }
    if (e.kind == TraceKind::task_async) {
      // A loop's tasks overlap on its thread: an async span per task (Perfetto draws each
      // task's own row), begun and ended with the task's item as its id, local to the cell.
      const json args = {{"item", e.arg}};
      events.push_back({{"ph", "b"},
                        {"pid", 0},
                        {"tid", tid},
                        {"ts", us(e.t0, origin)},
                        {"name", kind_name(e.kind)},
                        {"cat", "task"},
                        {"id2", {{"local", e.arg}}},
                        {"args", args}});
      events.push_back({{"ph", "e"},
                        {"pid", 0},
                        {"tid", tid},
                        {"ts", us(e.t1, origin)},
                        {"name", kind_name(e.kind)},
                        {"cat", "task"},
                        {"id2", {{"local", e.arg}}}});
      continue;
    }
    if (e.kind == TraceKind::gil_lost) {
      events.push_back({{"ph", "i"},
                        {"s", "t"},
                        {"pid", 0},
                        {"tid", tid},
                        {"ts", us(e.t0, origin)},
                        {"name", kind_name(e.kind)},
                        {"cat", "gil"}});
      continue;
    }
    json ev = {{"ph", "X"},
               {"pid", 0},
               {"tid", tid},
               {"ts", us(e.t0, origin)},
               {"dur", static_cast<double>(e.t1 - e.t0) / 1e3},
               {"name", kind_name(e.kind)}};
    switch (e.kind) {
      case TraceKind::gil_wait:
        ev["cat"] = "gil";
        ev["args"] = {{"ended", gil_outcome_name(static_cast<GilOutcome>(e.detail))}};
        break;
      case TraceKind::gil_hold:
        ev["cat"] = "gil";
        break;
      case TraceKind::task:
      case TraceKind::loop_step:
      case TraceKind::serialize:
      case TraceKind::deserialize:
      case TraceKind::in_flight:
        ev["cat"] =
            e.kind == TraceKind::serialize || e.kind == TraceKind::deserialize ? "ipc" : "task";
        ev["args"] = {{"item", e.arg}};
        break;
      default:
        ev["cat"] = "wait";
        break;
    }
    events.push_back(std::move(ev));
  }
}

}  // namespace

CellTrace cell_trace(const BatchTrace& trace, const std::string& worker_kind, size_t cap) {
  CellTrace out;
  uint64_t origin = ~uint64_t{0};
  auto first = [&](const TraceBuffer& b) {
    for (size_t i = 0; i < b.size(); ++i) origin = std::min(origin, b[i].t0);
  };
  for (const TraceBuffer& b : trace.workers()) first(b);
  first(trace.parent_buffer());
  if (origin == ~uint64_t{0}) origin = 0;
  json tracks = json::array();
  uint64_t kept = 0, dropped = 0;
  for (size_t w = 0; w < trace.workers().size(); ++w) {
    const TraceBuffer& b = trace.workers()[w];
    add_track(out.events, b, static_cast<int>(w) + 1, worker_kind + " " + std::to_string(w),
              origin);
    tracks.push_back({{"track", worker_kind + " " + std::to_string(w)},
                      {"events", b.size()},
                      {"dropped", b.dropped()}});
    kept += b.size();
    dropped += b.dropped();
  }
  const TraceBuffer& p = trace.parent_buffer();
  if (p.size() > 0 || p.dropped() > 0) {
    add_track(out.events, p, 0, "the model's own thread", origin);
    tracks.push_back(
        {{"track", "the model's own thread"}, {"events", p.size()}, {"dropped", p.dropped()}});
    kept += p.size();
    dropped += p.dropped();
  }
  out.summary = {
      {"repetition", 1}, {"cap", cap}, {"events", kept}, {"dropped", dropped}, {"tracks", tracks}};
  if (dropped > 0)
    out.summary["note"] = "the cap of " + std::to_string(cap) +
                          " events was reached: " + std::to_string(dropped) +
                          " later events are not in the trace";
  if (!trace.recorded) {
    out.summary["note"] = "this model records no timeline";
    out.events = json::array();
  }
  return out;
}

void write_trace_atomic(const std::string& path, const std::vector<CellResult>& cells) {
  json events = json::array();
  json cells_meta = json::array();
  int pid = 0;
  for (const CellResult& c : cells) {
    ++pid;
    if (!c.trace.is_object() || !c.trace.contains("events")) continue;
    const std::string name =
        c.model + " " + c.workload + " " + std::to_string(c.workers) + " workers";
    events.push_back(
        {{"ph", "M"}, {"pid", pid}, {"name", "process_name"}, {"args", {{"name", name}}}});
    events.push_back({{"ph", "M"},
                      {"pid", pid},
                      {"name", "process_sort_index"},
                      {"args", {{"sort_index", pid}}}});
    for (json e : c.trace["events"]) {
      e["pid"] = pid;
      events.push_back(std::move(e));
    }
    json meta = c.trace["summary"];
    meta["pid"] = pid;
    meta["cell"] = name;
    cells_meta.push_back(std::move(meta));
  }
  const json doc = {{"traceEvents", std::move(events)},
                    {"displayTimeUnit", "ns"},
                    {"otherData", {{"generator", "concbench"}, {"cells", cells_meta}}}};
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + tmp);
    f << doc.dump();
    f.flush();
    if (!f) throw std::runtime_error("writing " + tmp + " failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error("cannot rename " + tmp + " to " + path);
}

}  // namespace concbench
