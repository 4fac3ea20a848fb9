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

namespace {

template <class T, class Decode, class Encode>
void round_trip(concbench::Codec c, std::span<const std::byte> body, Decode decode, Encode encode) {
  T value;
  try {
    value = decode(c, body);
  } catch (const concbench::WireError&) {
    return;
  }
  std::vector<std::byte> again;
  encode(c, value, again);
  concbench::FrameReader r;
  r.feed(again);
  std::span<const std::byte> b;
  if (!r.next(b)) __builtin_trap();  // an encoded frame is always complete
  const T back = decode(c, b);
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
  try {
    // Feed in two pieces: frames split across reads are the normal case on a socket.
    const size_t half = (size - 1) / 2;
    reader.feed({bytes, half});
    std::span<const std::byte> body;
    for (int piece = 0; piece < 2; ++piece) {
      while (reader.next(body)) {
        const std::vector<std::byte> copy(body.begin(), body.end());  // next() invalidates body
        round_trip<concbench::TaskRequest>(codec, copy, concbench::decode_request,
                                           concbench::encode_request);
        round_trip<concbench::TaskResponse>(codec, copy, concbench::decode_response,
                                            concbench::encode_response);
      }
      if (piece == 0) reader.feed({bytes + half, size - 1 - half});
    }
  } catch (const concbench::WireError&) {
    // An oversized length prefix: the stream is garbage, which the pool treats as a crash.
  }
  return 0;
}
