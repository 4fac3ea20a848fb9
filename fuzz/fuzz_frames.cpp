// libFuzzer target: the process pool's wire format. Bytes from a worker (or a parent) are split
// into frames and each body decoded as a request and as a response, under the codec the first
// byte picks. Decoders must throw WireError on malformed input and never read outside the
// buffer; a body that decodes is re-encoded and must decode to the same item (and, for a
// request, the same nonce).
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "concbench/wire.hpp"

namespace concbench {
// One name per direction, so round_trip can be a template over the message type.
void decode_request_or_response(Codec c, std::span<const std::byte> b, TaskRequest& m) {
  decode_request(c, b, m);
}
void decode_request_or_response(Codec c, std::span<const std::byte> b, TaskResponse& m) {
  decode_response(c, b, m);
}
void encode_request_or_response(Codec c, const TaskRequest& m, std::vector<std::byte>& out) {
  encode_request(c, m, out);
}
void encode_request_or_response(Codec c, const TaskResponse& m, std::vector<std::byte>& out) {
  encode_response(c, m, out);
}
}  // namespace concbench

namespace {

// Decodes `body` fresh and into `reused` (a message that keeps its buffers from earlier bodies,
// as the pool's parent and workers decode): both must agree, and a body that decodes must
// re-encode to a frame that decodes to the same item (and, for a request, the same nonce).
template <class T>
void round_trip(concbench::Codec c, std::span<const std::byte> body, T& reused) {
  T value;
  try {
    concbench::decode_request_or_response(c, body, value);
  } catch (const concbench::WireError&) {
    try {
      concbench::decode_request_or_response(c, body, reused);
    } catch (const concbench::WireError&) {
      return;  // both reject it
    }
    __builtin_trap();  // decoding into a used message accepted what a fresh decode rejects
  }
  concbench::decode_request_or_response(c, body, reused);
  if (reused.item != value.item || reused.payload.bytes != value.payload.bytes ||
      reused.payload.length != value.payload.length)
    __builtin_trap();
  std::vector<std::byte> again;
  concbench::encode_request_or_response(c, value, again);
  concbench::FrameReader r;
  r.feed(again);
  std::span<const std::byte> b;
  if (!r.next(b)) __builtin_trap();  // an encoded frame is always complete
  T back;
  concbench::decode_request_or_response(c, b, back);
  if (back.item != value.item) __builtin_trap();
  if constexpr (std::is_same_v<T, concbench::TaskRequest>) {
    if (back.nonce != value.nonce) __builtin_trap();  // the checksum's seal must survive the trip
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto codec = static_cast<concbench::Codec>(data[0] % 4);
  const auto* bytes = reinterpret_cast<const std::byte*>(data + 1);
  concbench::FrameReader reader;
  // Kept across inputs, like the pool's own messages: stale fields must never leak through.
  static concbench::TaskRequest reused_request;
  static concbench::TaskResponse reused_response;
  try {
    // Feed in two pieces: frames split across reads are the normal case on a socket.
    const size_t half = (size - 1) / 2;
    reader.feed({bytes, half});
    std::span<const std::byte> body;
    for (int piece = 0; piece < 2; ++piece) {
      while (reader.next(body)) {
        const std::vector<std::byte> copy(body.begin(), body.end());  // next() invalidates body
        round_trip(codec, copy, reused_request);
        round_trip(codec, copy, reused_response);
      }
      if (piece == 0) reader.feed({bytes + half, size - 1 - half});
    }
  } catch (const concbench::WireError&) {
    // An oversized length prefix: the stream is garbage, which the pool treats as a crash.
  }
  return 0;
}
