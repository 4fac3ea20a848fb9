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

// value * enabled / running without overflowing 64 bits in the intermediate product (running >
// 0; saturates where the quotient itself does not fit).
uint64_t mul_div(uint64_t value, uint64_t enabled, uint64_t running) {
#ifdef __SIZEOF_INT128__
  __extension__ typedef unsigned __int128 u128;  // __extension__: quiet under -Wpedantic
  const u128 q = static_cast<u128>(value) * enabled / running;
  return q > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(q);
#else
  return static_cast<uint64_t>(static_cast<long double>(value) * enabled / running);
#endif
}

constexpr std::string_view kNotCountedReason =
    "enabled but never scheduled onto the PMU during this interval (the kernel multiplexed more "
    "hardware events than the PMU has counters); nothing to extrapolate from";

}  // namespace

ScaledDelta scale_delta(const RawCount& before, const RawCount& after) {
  ScaledDelta d;
  if (after.value < before.value || after.enabled < before.enabled ||
      after.running < before.running) {
    d.status = ScaledDelta::Status::inconsistent;
    return d;
  }
  const uint64_t dv = after.value - before.value;
  const uint64_t de = after.enabled - before.enabled;
  const uint64_t dr = after.running - before.running;
  // The kernel keeps running <= enabled; an interval that says otherwise is not one event's.
  if (dr > de) {
    d.status = ScaledDelta::Status::inconsistent;
    return d;
  }
  if (dr == 0) {
    if (de == 0) {
      // Not enabled at all in the interval (its thread never ran): exactly what it counted.
      d.value = dv;
      return d;
    }
    d.status = ScaledDelta::Status::not_counted;
    return d;
  }
  if (dr == de) {
    d.value = dv;
    return d;
  }
  d.value = mul_div(dv, de, dr);
  d.multiplexed = true;
  return d;
}

std::string_view scale_delta_reason(ScaledDelta::Status s) {
  switch (s) {
    case ScaledDelta::Status::ok:
      return {};
    case ScaledDelta::Status::not_counted:
      return kNotCountedReason;
    case ScaledDelta::Status::inconsistent:
      return "the two reads are not of the same event, in order";
  }
  return {};
}

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
  raw_ &= ~(1u << i);  // a plain value replaces a read's triple
  not_counted_ &= ~(1u << i);
}

void CounterValues::set_raw(Counter c, const RawCount& r) {
  const int i = index_of(c);
  if (i < 0) return;
  const size_t k = static_cast<size_t>(i);
  raw_ |= 1u << i;
  not_counted_ &= ~(1u << i);
  raw_value_[k] = r.value;
  enabled_[k] = r.enabled;
  running_[k] = r.running;
  v_[k] = r.value;
  if (r.running == 0 && r.enabled > 0) {
    // Enabled, but never on the PMU so far: no estimate of the total. The triple is still a
    // read, and a later interval may well have been counted.
    valid_ &= ~(1u << i);
    v_[k] = 0;
    return;
  }
  if (r.running < r.enabled) {
    v_[k] = mul_div(r.value, r.enabled, r.running);
    multiplexed = true;
  }
  valid_ |= 1u << i;
}

std::optional<RawCount> CounterValues::raw(Counter c) const {
  const int i = index_of(c);
  if (i < 0 || !((raw_ >> i) & 1u)) return std::nullopt;
  const size_t k = static_cast<size_t>(i);
  return RawCount{raw_value_[k], enabled_[k], running_[k]};
}

void CounterValues::set_not_counted(Counter c) {
  const int i = index_of(c);
  if (i < 0) return;
  not_counted_ |= 1u << i;
  valid_ &= ~(1u << i);
  v_[static_cast<size_t>(i)] = 0;
}

std::string_view CounterValues::unavailable_reason(Counter c) const {
  if (has(c) || !not_counted(c)) return {};
  return kNotCountedReason;
}

void CounterValues::accumulate(const CounterValues& other) {
  // Intersection of availability: a sum over threads where one thread could not count is not a
  // total, so it must not look like one. Why a part had no value survives into the sum.
  valid_ &= other.valid_;
  not_counted_ = (not_counted_ | other.not_counted_) & ~valid_;
  raw_ = 0;  // a sum is an interval, not a read
  for (int i = 0; i < kCounterCount; ++i) {
    const size_t k = static_cast<size_t>(i);
    v_[k] = ((valid_ >> i) & 1u) ? v_[k] + other.v_[k] : 0;
  }
  multiplexed = multiplexed || other.multiplexed;
}

CounterValues CounterValues::since(const CounterValues& earlier) const {
  CounterValues d;
  bool fallback_hw = false;
  for (int i = 0; i < kCounterCount; ++i) {
    const size_t k = static_cast<size_t>(i);
    const uint32_t b = 1u << i;
    if ((raw_ & earlier.raw_ & b) != 0) {
      const ScaledDelta sd =
          scale_delta({earlier.raw_value_[k], earlier.enabled_[k], earlier.running_[k]},
                      {raw_value_[k], enabled_[k], running_[k]});
      if (sd.status == ScaledDelta::Status::ok) {
        d.v_[k] = sd.value;
        d.valid_ |= b;
        d.multiplexed = d.multiplexed || sd.multiplexed;
      } else if (sd.status == ScaledDelta::Status::not_counted) {
        d.not_counted_ |= b;
      }
      continue;
    }
    if (!(valid_ & earlier.valid_ & b)) continue;
    // No triples on both sides (a sum over threads, or a source that keeps none): the
    // difference of the two values. Clamp instead of wrapping: scaled estimates can shrink
    // between two reads, and a wrapped 2^64-ish delta would poison every sum.
    d.v_[k] = v_[k] >= earlier.v_[k] ? v_[k] - earlier.v_[k] : 0;
    d.valid_ |= b;
    fallback_hw = fallback_hw || is_hardware_counter(static_cast<Counter>(i));
  }
  if (fallback_hw) d.multiplexed = d.multiplexed || multiplexed || earlier.multiplexed;
  return d;
}

CounterValues CounterValues::zero_all() {
  CounterValues z;
  z.valid_ = (kCounterCount == 32) ? ~0u : ((1u << kCounterCount) - 1u);
  return z;
}

}  // namespace concbench
