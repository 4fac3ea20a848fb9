// What crosses the process boundary in process_pool: a task request and its response, each
// encoded by one of four codecs and carried in a length-prefixed frame.
//
// Frame: u32 little-endian body length, then the body. A body never exceeds kMaxFrameBytes; a
// longer length prefix is a protocol error (garbage, not a task).
//
// Codecs: json, cbor and msgpack go through nlohmann_json's encoders (JSON carries the payload as
// nlohmann's binary object, an array of byte values: that is what JSON costs for binary data);
// raw copies a fixed little-endian binary layout. Every decoder validates what it reads and
// throws WireError on malformed input; it never reads outside the buffer it is given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "concbench/counters.hpp"
#include "concbench/task.hpp"

namespace concbench {

class WireError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Codec : uint8_t { json, cbor, msgpack, raw };
Codec parse_codec(std::string_view name);  // throws WireError
const char* codec_name(Codec c);

inline constexpr uint32_t kMaxFrameBytes = (1u << 30) + 4096;  // 1 GiB of payload plus headers

// Where a payload travels: inline in the frame, or in the worker's shared-memory region.
struct PayloadRef {
  bool in_shm = false;
  uint64_t offset = 0;           // shm only
  uint64_t length = 0;           // shm only (inline: bytes.size())
  std::vector<std::byte> bytes;  // inline only
};

struct TaskRequest {
  uint64_t item = 0;
  uint64_t seed = 0;
  // The work item's nonce (Batch::item_nonce): the worker seals the checksum with it, so a
  // response can only be the answer to this request of this batch.
  uint64_t nonce = 0;
  std::vector<Step> steps;
  PayloadRef payload;
  // Fault injection, decided by the parent: the worker misbehaves instead of answering.
  uint8_t fault = 0;  // 0 none; see process_pool.cpp
};

struct TaskResponse {
  uint64_t item = 0;
  bool ok = false;
  uint64_t checksum = 0;
  std::string error;       // when !ok
  PayloadRef payload;      // the payload echoed back
  CounterValues counters;  // the worker's counts since its previous response
  // The worker's CPU time (getrusage(RUSAGE_SELF): every thread of the worker process) over the
  // same interval as `counters`: a parent's getrusage never sees its live children. has_cpu is
  // false when the worker could not read it.
  uint64_t cpu_user_ns = 0, cpu_sys_ns = 0;
  bool has_cpu = false;
  // The worker's own timings: decoding this request, running it, and encoding its *previous*
  // response (a response cannot carry the time of its own encoding).
  uint64_t decode_ns = 0, exec_ns = 0, encode_ns = 0;
};

// Encoders append one frame (length prefix included) to `out`.
void encode_request(Codec c, const TaskRequest& r, std::vector<std::byte>& out);
void encode_response(Codec c, const TaskResponse& r, std::vector<std::byte>& out);
// Decoders take one frame body (without the prefix).
TaskRequest decode_request(Codec c, std::span<const std::byte> body);
TaskResponse decode_response(Codec c, std::span<const std::byte> body);
// The same into an existing message, which is overwritten field by field while its buffers (the
// payload's above all, and the steps') keep their capacity: a worker or parent that decodes into
// one message per peer allocates nothing per task once warm, so a large payload costs a copy,
// not fresh pages. After a WireError `into` holds a mix of old and new fields.
void decode_request(Codec c, std::span<const std::byte> body, TaskRequest& into);
void decode_response(Codec c, std::span<const std::byte> body, TaskResponse& into);

// Splits a byte stream into frames. feed() appends received bytes; next() yields one complete
// body at a time (valid until the next call to feed(), prepare() or next()), or nothing when
// incomplete. Throws WireError for a length prefix above kMaxFrameBytes.
class FrameReader {
 public:
  void feed(std::span<const std::byte> data);
  bool next(std::span<const std::byte>& body);
  size_t buffered() const { return fill_ - pos_; }
  // Spare capacity to read into directly (avoids a copy): all of it, at least n bytes (it may
  // move buffered data). commit() what was written; committing more throws std::logic_error.
  std::span<std::byte> prepare(size_t n);
  void commit(size_t n);

 private:
  std::vector<std::byte> buf_;
  size_t pos_ = 0;   // start of unconsumed data
  size_t fill_ = 0;  // end of valid data (buf_ may be larger, for prepare())
};

}  // namespace concbench
