// A workload described as data: a profile file (`bench_runner run --workload-file F`, the request
// key "workload_files") says what each task does, step by step, and runs under every model as a
// built-in workload does, checksums and the sleep bound included. origin() is "profile".
//
// Format: one JSON object, at most 16 MiB. Every key is listed here; any other key, a repeated
// key, a wrong type or a value out of range is refused.
//
//   {"name": "handler",            required; 1 to 64 of A-Z a-z 0-9 . _ - (it goes in --workloads)
//    "description": "...",         optional text
//    "tasks": 64,                  integer in [1, 1e8], default 64 (--param tasks=N overrides)
//    "payload_bytes": 65536,       integer in [0, 64 MiB], default 0 (--param payload_bytes=N)
//    "seed": 7,                    integer in [0, 2^63), default 1
//    "steps": [STEP, ...],         required, not empty: what every task does, in order
//    "fragments": {"NAME": [STEP, ...], ...}}   optional: up to 1000 named, non-empty step
//                                  lists that STEPs can use (NAME: any non-empty text)
//
// A STEP is one of
//   {"cpu": {"us": V, "kernel": "spin" | "sha256", "native": false}}
//        V microseconds of CPU of the kernel on this machine: converted to the kernel's units
//        with a calibration made once per process (the fastest of five short trials), so every
//        model of a run gets the same units. kernel defaults to spin (cpu.spin's loop); sha256
//        hashes 1024-byte buffers (cpu.sha256's chain; below hashlib's GIL threshold, so only
//        `native` decides whether the step holds a GIL). native=true (default false) makes the
//        step a native section that releases an emulated GIL. cpu.pidigits' kernel is not
//        offered: its work grows with the square of its units and stops at 1000 groups of
//        digits, so a budget of microseconds has no one step that spends it.
//   {"sleep": {"us": V}}                          a timer wait of V microseconds
//   {"pipe_echo": {"round_trips": N, "bytes": B}} N round trips (default 1) of B-byte messages
//                                                 through a socketpair to the echo server
//   {"tcp_echo": {"round_trips": N, "bytes": B}}  the same over TCP loopback
//   {"file_read": {"bytes": B}}                   a read of B bytes of a scratch file
//   {"use": "NAME", "times": K}                   fragment NAME's steps, K times (default 1)
// Ranges: us in [0, 60e6] (fractions allowed); bytes in [1, 64 MiB], round_trips in [1, 1e6]
// (integers); times in [1, 1e4] (a plain integer); a task expands to at most 1e5 steps. A fragment
// may use other fragments but not itself, directly or through others; an unused fragment is still
// checked.
//
// Every V, N, B may be a number or a distribution, drawn afresh for each task and each place it
// occurs (a fragment used three times draws three times):
//   {"fixed": v}                        v
//   {"uniform": [lo, hi]}               uniform on [lo, hi] (lo <= hi; for an integer quantity,
//                                       an integer of [lo, hi], both ends included)
//   {"exponential": {"mean": m, "max": cap}}  exponential of mean m > 0, a draw above cap
//                                       taken as cap (cap is required: nothing is unbounded);
//                                       integer quantities round to the nearest integer, and at
//                                       least the quantity's minimum
// Bounds, fixed values, means and caps must lie in the quantity's range. Draws depend only on the
// profile's seed, the run's seed and the task's id, so every model runs the same tasks.
//
// Each task's checksum is predicted without running it (spin by jump-ahead, sha256 by hashing the
// same chain, which costs what running it costs; IO steps from the bytes they send; a sleep by
// its duration), so a model that skips a step fails verification. A sleep cut short is caught by
// the runner's sleep bound (the batch cannot end before its sleeps could have), which a task
// whose CPU outweighs its sleeps can hide a skipped sleep behind. Errors are UsageError, one
// line naming the file and the key path:
//   handler.json: steps[1].sleep.us: must be at most 60000000 microseconds
//   handler.json: fragments.a: cycle a -> b -> a
//   handler.json: not valid JSON at byte 17 (...)
#pragma once

#include <memory>
#include <string>

#include "concbench/workload.hpp"

namespace concbench {

// The workload `json_text` describes; `label` (the file's name) starts every error message.
// Throws UsageError for anything the format above does not allow.
std::unique_ptr<Workload> parse_profile(const std::string& json_text, const std::string& label);

// Reads, parses and registers (register_workload) the profile at `path`. Loading a path again
// returns the workload registered the first time; another file whose name is taken throws
// UsageError naming the file and the name.
const Workload& load_profile_file(const std::string& path);

}  // namespace concbench
