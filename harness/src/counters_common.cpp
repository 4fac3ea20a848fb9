// Platform-independent parts of counters.hpp: names, classification and CounterValues
// arithmetic. Everything that talks to the OS lives in counters_linux.cpp / counters_stub.cpp.
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "concbench/counters.hpp"

namespace concbench {

namespace {

// Index into the per-counter arrays, or -1 for anything outside [0, kCount). Public entry points
// take an enum that a caller can cast from any int, so every one of them checks.
int index_of(Counter c) {
  const int i = static_cast<int>(c);
  return (i >= 0 && i < kCounterCount) ? i : -1;
}

constexpr std::array<std::string_view, kCounterCount> kNames = {
    "context_switches",
    "voluntary_context_switches",
    "involuntary_context_switches",
    "cpu_migrations",
    "page_faults",
    "task_clock_ns",
    "cycles",
    "instructions",
    "cache_references",
    "cache_misses",
    "l1d_load_misses",
    "llc_load_misses",
};

// valid_ is a uint32_t bit set; this keeps a future 33rd counter from silently overflowing it.
static_assert(kCounterCount <= 32, "CounterValues::valid_ holds one bit per counter");

}  // namespace

std::string_view counter_name(Counter c) {
  const int i = index_of(c);
  return i < 0 ? std::string_view("unknown") : kNames[static_cast<size_t>(i)];
}

bool is_hardware_counter(Counter c) {
  // The enum is ordered so that every PMU (hardware) event comes after task_clock_ns.
  const int i = index_of(c);
  return i >= static_cast<int>(Counter::cycles);
}

std::optional<uint64_t> CounterValues::get(Counter c) const {
  const int i = index_of(c);
  if (i < 0 || !has(c)) return std::nullopt;
  return v_[static_cast<size_t>(i)];
}

void CounterValues::set(Counter c, uint64_t v) {
  const int i = index_of(c);
  if (i < 0) return;  // Counter::kCount or a bad cast: nothing to store it in.
  v_[static_cast<size_t>(i)] = v;
  valid_ |= 1u << i;
}

void CounterValues::accumulate(const CounterValues& other) {
  // Intersection of availability: a sum over threads where one thread could not count is not a
  // total, so it must not look like one.
  valid_ &= other.valid_;
  for (int i = 0; i < kCounterCount; ++i) {
    const size_t k = static_cast<size_t>(i);
    v_[k] = ((valid_ >> i) & 1u) ? v_[k] + other.v_[k] : 0;
  }
  multiplexed = multiplexed || other.multiplexed;
}

CounterValues CounterValues::since(const CounterValues& earlier) const {
  CounterValues d;
  d.valid_ = valid_ & earlier.valid_;
  for (int i = 0; i < kCounterCount; ++i) {
    const size_t k = static_cast<size_t>(i);
    if (!((d.valid_ >> i) & 1u)) continue;
    // Clamp instead of wrapping: raw counts never decrease, but multiplexed hardware counts are
    // extrapolated (value * enabled / running) and that estimate can shrink between two reads
    // when the running/enabled ratio changes. A wrapped 2^64-ish delta would poison every sum.
    d.v_[k] = v_[k] >= earlier.v_[k] ? v_[k] - earlier.v_[k] : 0;
  }
  d.multiplexed = multiplexed || earlier.multiplexed;
  return d;
}

CounterValues CounterValues::zero_all() {
  CounterValues z;
  z.valid_ = (kCounterCount == 32) ? ~0u : ((1u << kCounterCount) - 1u);
  return z;
}

}  // namespace concbench
