// Checksums that tie every task's result to the work it did, so no model can skip work and
// look fast. Header-only: the runner, the kernels and (later) other processes must agree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace concbench {

// A 64-bit finalizer (splitmix64's): every input bit affects every output bit.
constexpr uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Order-sensitive fold of a sequence of values.
constexpr uint64_t fold(uint64_t acc, uint64_t v) {
  return mix64(acc ^ (v + 0x9e3779b97f4a7c15ULL));
}

// The nonce of round `round` of a batch whose nonce is `batch_nonce` (model.hpp's Batch).
constexpr uint64_t round_nonce(uint64_t batch_nonce, uint64_t round) {
  return mix64(batch_nonce ^ mix64(round + 0x6e6f6e6365ULL));
}

// A task's checksum for one execution: its step chain sealed with the item's nonce. The
// workload predicts the chain; the runner seals its prediction with the nonce it handed out.
constexpr uint64_t seal(uint64_t chain, uint64_t nonce) {
  return fold(chain, mix64(nonce) ^ 0x5ea1ed5ea1ed5ea1ULL);
}

// Hash of a byte buffer, eight bytes at a time; length is part of the hash.
inline uint64_t hash_bytes(std::span<const std::byte> data, uint64_t seed = 0) {
  uint64_t h = mix64(seed ^ (data.size() * 0x9e3779b97f4a7c15ULL));
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, data.data() + i, 8);
    h = (h ^ mix64(w)) * 0xff51afd7ed558ccdULL;
  }
  uint64_t tail = 0;
  // An empty span may have a null data(), which memcpy must never see, even for 0 bytes.
  if (i < data.size()) std::memcpy(&tail, data.data() + i, data.size() - i);
  return mix64(h ^ tail);
}

// Deterministic bytes for payloads and messages: fills `out` from `seed`.
inline void fill_bytes(std::span<std::byte> out, uint64_t seed) {
  uint64_t s = seed;
  size_t i = 0;
  for (; i + 8 <= out.size(); i += 8) {
    s += 0x9e3779b97f4a7c15ULL;
    uint64_t w = mix64(s);
    std::memcpy(out.data() + i, &w, 8);
  }
  if (i == out.size()) return;  // nothing left, and data() may be null
  s += 0x9e3779b97f4a7c15ULL;
  uint64_t w = mix64(s);
  std::memcpy(out.data() + i, &w, out.size() - i);
}

}  // namespace concbench
