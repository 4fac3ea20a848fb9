// The process_pool wire format: round trips through every codec, frame splitting, and decoders
// that reject (never crash on) truncated, mutated and hostile input.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "concbench/wire.hpp"

namespace concbench {
namespace {

constexpr Codec kCodecs[] = {Codec::json, Codec::cbor, Codec::msgpack, Codec::raw};
constexpr StepKind kKinds[] = {StepKind::cpu,       StepKind::sleep,    StepKind::pipe_echo,
                               StepKind::file_read, StepKind::tcp_echo, StepKind::echo_respond};

std::vector<std::byte> pattern(size_t n, uint32_t seed) {
  std::vector<std::byte> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<std::byte>(rng());
  return v;
}

// Every kind twice, with extreme field values on the second pass.
std::vector<Step> sample_steps() {
  std::vector<Step> steps;
  for (int pass = 0; pass < 2; ++pass) {
    for (StepKind k : kKinds) {
      Step s;
      s.kind = k;
      s.native = pass == 1;
      s.kernel = pass == 0 ? static_cast<KernelId>(steps.size()) : KernelId{65535};
      s.bytes = pass == 0 ? 1024u : UINT32_MAX;
      s.units = pass == 0 ? 7u + steps.size() : UINT64_MAX;
      s.duration_ns = pass == 0 ? 1'000'000u : UINT64_MAX - 1;
      s.arg = pass == 0 ? 0u : (uint64_t{1} << 63);
      steps.push_back(s);
    }
  }
  return steps;
}

TaskRequest sample_request(size_t payload, bool shm) {
  TaskRequest r;
  r.item = 0x0123456789abcdefull;
  r.seed = UINT64_MAX;
  r.nonce = 0x8000000000000001ull;
  r.fault = 2;
  r.steps = sample_steps();
  if (shm) {
    r.payload.in_shm = true;
    r.payload.offset = 4096 * 3;
    r.payload.length = payload;
  } else {
    r.payload.bytes = pattern(payload, static_cast<uint32_t>(payload));
    r.payload.length = payload;
  }
  return r;
}

TaskResponse sample_response(size_t payload, bool shm, bool ok) {
  TaskResponse r;
  r.item = 42;
  r.ok = ok;
  r.checksum = 0xfeedfacecafebeefull;
  if (!ok) r.error = "kernel threw: \"bad\" \\ value\n\ttab \xc3\xa9";  // quotes, escapes, UTF-8
  if (shm) {
    r.payload.in_shm = true;
    r.payload.offset = 1;
    r.payload.length = payload;
  } else {
    r.payload.bytes = pattern(payload, 99);
    r.payload.length = payload;
  }
  // Some counters available (including 0 and the maximum), the rest unavailable.
  r.counters.set(Counter::context_switches, 0);
  r.counters.set(Counter::page_faults, 12345);
  r.counters.set(Counter::cycles, UINT64_MAX);
  r.counters.set(Counter::llc_load_misses, 7);
  r.counters.multiplexed = true;
  r.counters.set_not_counted(Counter::cache_references);  // multiplexed out for the interval
  r.decode_ns = 1;
  r.exec_ns = UINT64_MAX;
  r.encode_ns = 0;
  r.has_cpu = true;
  r.cpu_user_ns = UINT64_MAX;
  r.cpu_sys_ns = 12'345'678;
  return r;
}

// The body of the single frame in `frame`, checking its length prefix.
std::span<const std::byte> body_of(const std::vector<std::byte>& frame) {
  EXPECT_GE(frame.size(), 4u);
  uint32_t len = 0;
  for (int i = 3; i >= 0; --i) len = (len << 8) | std::to_integer<uint32_t>(frame[size_t(i)]);
  EXPECT_EQ(len, frame.size() - 4);
  return std::span<const std::byte>(frame).subspan(4);
}

void expect_steps_eq(const std::vector<Step>& a, const std::vector<Step>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(a[i].kind, b[i].kind);
    EXPECT_EQ(a[i].native, b[i].native);
    EXPECT_EQ(a[i].kernel, b[i].kernel);
    EXPECT_EQ(a[i].bytes, b[i].bytes);
    EXPECT_EQ(a[i].units, b[i].units);
    EXPECT_EQ(a[i].duration_ns, b[i].duration_ns);
    EXPECT_EQ(a[i].arg, b[i].arg);
  }
}

void expect_payload_eq(const PayloadRef& a, const PayloadRef& b) {
  EXPECT_EQ(a.in_shm, b.in_shm);
  EXPECT_EQ(a.length, b.length);
  if (a.in_shm) {
    EXPECT_EQ(a.offset, b.offset);
  }
  EXPECT_TRUE(a.bytes == b.bytes) << "payload bytes differ (" << a.bytes.size() << " vs "
                                  << b.bytes.size() << ")";
}

void expect_request_eq(const TaskRequest& a, const TaskRequest& b) {
  EXPECT_EQ(a.item, b.item);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.nonce, b.nonce);
  EXPECT_EQ(a.fault, b.fault);
  expect_steps_eq(a.steps, b.steps);
  expect_payload_eq(a.payload, b.payload);
}

void expect_response_eq(const TaskResponse& a, const TaskResponse& b) {
  EXPECT_EQ(a.item, b.item);
  EXPECT_EQ(a.ok, b.ok);
  EXPECT_EQ(a.checksum, b.checksum);
  EXPECT_EQ(a.error, b.error);
  expect_payload_eq(a.payload, b.payload);
  for (int i = 0; i < kCounterCount; ++i) {
    const auto c = static_cast<Counter>(i);
    SCOPED_TRACE(std::string(counter_name(c)));
    EXPECT_EQ(a.counters.has(c), b.counters.has(c));
    EXPECT_EQ(a.counters.get(c), b.counters.get(c));
  }
  EXPECT_EQ(a.counters.multiplexed, b.counters.multiplexed);
  EXPECT_EQ(a.counters.not_counted_mask(), b.counters.not_counted_mask());
  EXPECT_EQ(a.decode_ns, b.decode_ns);
  EXPECT_EQ(a.exec_ns, b.exec_ns);
  EXPECT_EQ(a.encode_ns, b.encode_ns);
  EXPECT_EQ(a.has_cpu, b.has_cpu);
  EXPECT_EQ(a.cpu_user_ns, b.cpu_user_ns);
  EXPECT_EQ(a.cpu_sys_ns, b.cpu_sys_ns);
}

class WireCodec : public ::testing::TestWithParam<Codec> {};

INSTANTIATE_TEST_SUITE_P(AllCodecs, WireCodec, ::testing::ValuesIn(kCodecs),
                         [](const auto& info) { return std::string(codec_name(info.param)); });

TEST_P(WireCodec, RequestRoundTrip) {
  const Codec c = GetParam();
  for (size_t payload : {size_t{0}, size_t{1}, size_t{1024}, size_t{3} << 20}) {
    for (bool shm : {false, true}) {
      SCOPED_TRACE(std::to_string(payload) + (shm ? " shm" : " inline"));
      const TaskRequest in = sample_request(payload, shm);
      std::vector<std::byte> frame;
      encode_request(c, in, frame);
      const TaskRequest out = decode_request(c, body_of(frame));
      expect_request_eq(in, out);
    }
  }
}

TEST_P(WireCodec, RequestWithoutSteps) {
  TaskRequest in;
  std::vector<std::byte> frame;
  encode_request(GetParam(), in, frame);
  expect_request_eq(in, decode_request(GetParam(), body_of(frame)));
}

TEST_P(WireCodec, ResponseRoundTrip) {
  const Codec c = GetParam();
  for (size_t payload : {size_t{0}, size_t{1}, size_t{1024}, size_t{3} << 20}) {
    for (bool shm : {false, true}) {
      for (bool ok : {true, false}) {
        SCOPED_TRACE(std::to_string(payload) + (shm ? " shm" : " inline") + (ok ? " ok" : " err"));
        const TaskResponse in = sample_response(payload, shm, ok);
        std::vector<std::byte> frame;
        encode_response(c, in, frame);
        const TaskResponse out = decode_response(c, body_of(frame));
        expect_response_eq(in, out);
        EXPECT_FALSE(out.counters.has(Counter::instructions));
        EXPECT_FALSE(out.counters.get(Counter::cache_misses).has_value());
      }
    }
  }
}

// The pool decodes every frame into one message per peer: the payload buffer must keep its
// capacity (no allocation, no fresh pages per task) and no field of the previous message may
// survive into the next.
TEST_P(WireCodec, DecodeIntoReusesBuffersAndOverwritesEverything) {
  const Codec c = GetParam();
  std::vector<std::byte> frame;
  TaskRequest req;
  encode_request(c, sample_request(64 * 1024, false), frame);
  decode_request(c, body_of(frame), req);
  const std::byte* buffer = req.payload.bytes.data();
  for (bool shm : {false, true, false}) {
    TaskRequest next = sample_request(1000, shm);
    next.item = 5;
    next.nonce = 77;
    next.fault = 0;
    next.steps.resize(1);
    frame.clear();
    encode_request(c, next, frame);
    decode_request(c, body_of(frame), req);
    expect_request_eq(next, req);
    if (!shm) {
      EXPECT_EQ(req.payload.bytes.data(), buffer) << "the payload buffer was reallocated";
    }
  }
  TaskResponse resp;
  for (bool with_counters : {true, false}) {
    TaskResponse next = sample_response(100, false, with_counters);
    if (!with_counters) next.counters = CounterValues{};
    frame.clear();
    encode_response(c, next, frame);
    decode_response(c, body_of(frame), resp);
    expect_response_eq(next, resp);
  }
}

TEST_P(WireCodec, ResponseAllOrNoCounters) {
  for (bool all : {false, true}) {
    TaskResponse in;
    if (all) in.counters = CounterValues::zero_all();
    std::vector<std::byte> frame;
    encode_response(GetParam(), in, frame);
    const TaskResponse out = decode_response(GetParam(), body_of(frame));
    expect_response_eq(in, out);
    EXPECT_FALSE(out.counters.multiplexed);
  }
}

TEST_P(WireCodec, ErrorStringWithArbitraryBytes) {
  // An error message is whatever an exception said; it need not be UTF-8. Encoding must not
  // throw; binary codecs carry it exactly, JSON text replaces what is not UTF-8.
  TaskResponse in;
  const char raw[] = "bad \xff\xfe byte\0 nul";
  in.error = std::string(raw, sizeof raw - 1);
  std::vector<std::byte> frame;
  ASSERT_NO_THROW(encode_response(GetParam(), in, frame));
  const TaskResponse out = decode_response(GetParam(), body_of(frame));
  if (GetParam() != Codec::json) {
    EXPECT_EQ(out.error, in.error);
  }
  EXPECT_EQ(out.error.substr(0, 4), "bad ");
}

TEST_P(WireCodec, EncodersAppend) {
  // Two frames appended to one buffer, then split by a FrameReader.
  const Codec c = GetParam();
  std::vector<std::byte> stream;
  const TaskRequest a = sample_request(10, false);
  const TaskResponse b = sample_response(3, false, false);
  encode_request(c, a, stream);
  const size_t first = stream.size();
  encode_response(c, b, stream);
  ASSERT_GT(stream.size(), first);
  FrameReader fr;
  fr.feed(stream);
  std::span<const std::byte> body;
  ASSERT_TRUE(fr.next(body));
  expect_request_eq(a, decode_request(c, body));
  ASSERT_TRUE(fr.next(body));
  expect_response_eq(b, decode_response(c, body));
  EXPECT_FALSE(fr.next(body));
  EXPECT_EQ(fr.buffered(), 0u);
}

TEST_P(WireCodec, UnknownStepKindThrows) {
  TaskRequest in = sample_request(4, false);
  in.steps[1].kind = static_cast<StepKind>(99);
  std::vector<std::byte> frame;
  encode_request(GetParam(), in, frame);
  EXPECT_THROW(decode_request(GetParam(), body_of(frame)), WireError);
  in.steps[1].kind = static_cast<StepKind>(static_cast<uint8_t>(StepKind::echo_respond) + 1);
  frame.clear();
  encode_request(GetParam(), in, frame);
  EXPECT_THROW(decode_request(GetParam(), body_of(frame)), WireError);
}

TEST_P(WireCodec, EveryStrictPrefixFails) {
  const Codec c = GetParam();
  std::vector<std::byte> req, resp, shm;
  encode_request(c, sample_request(37, false), req);
  encode_response(c, sample_response(37, false, false), resp);
  encode_request(c, sample_request(0, true), shm);
  for (size_t len = 0; len + 4 < req.size(); ++len)
    EXPECT_THROW(decode_request(c, std::span<const std::byte>(req).subspan(4, len)), WireError)
        << "request prefix of " << len;
  for (size_t len = 0; len + 4 < resp.size(); ++len)
    EXPECT_THROW(decode_response(c, std::span<const std::byte>(resp).subspan(4, len)), WireError)
        << "response prefix of " << len;
  for (size_t len = 0; len + 4 < shm.size(); ++len)
    EXPECT_THROW(decode_request(c, std::span<const std::byte>(shm).subspan(4, len)), WireError)
        << "shm request prefix of " << len;
}

TEST_P(WireCodec, TrailingBytesRejected) {
  const Codec c = GetParam();
  for (std::byte extra : {std::byte{0}, std::byte{' '}, std::byte{'x'}, std::byte{0xff}}) {
    std::vector<std::byte> frame;
    encode_request(c, sample_request(5, false), frame);
    frame.push_back(extra);
    if (c == Codec::json && extra == std::byte{' '}) {
      // Trailing whitespace is still one JSON text.
      EXPECT_NO_THROW(decode_request(c, std::span<const std::byte>(frame).subspan(4)));
      continue;
    }
    EXPECT_THROW(decode_request(c, std::span<const std::byte>(frame).subspan(4)), WireError)
        << std::to_integer<int>(extra);
  }
}

TEST_P(WireCodec, RequestIsNotAResponse) {
  const Codec c = GetParam();
  std::vector<std::byte> frame;
  encode_request(c, sample_request(5, false), frame);
  EXPECT_THROW(decode_response(c, body_of(frame)), WireError);
  frame.clear();
  encode_response(c, sample_response(5, false, true), frame);
  EXPECT_THROW(decode_request(c, body_of(frame)), WireError);
}

// Decodes a hostile body as both message types: either it decodes or it throws WireError.
void decode_or_wire_error(Codec c, std::span<const std::byte> body) {
  try {
    (void)decode_request(c, body);
  } catch (const WireError&) {
  }
  try {
    (void)decode_response(c, body);
  } catch (const WireError&) {
  }
}

TEST_P(WireCodec, MutatedBodiesDecodeOrThrowWireError) {
  const Codec c = GetParam();
  std::vector<std::vector<std::byte>> bodies;
  for (int k = 0; k < 3; ++k) {
    std::vector<std::byte> f;
    if (k == 0) encode_request(c, sample_request(19, false), f);
    if (k == 1) encode_request(c, sample_request(0, true), f);
    if (k == 2) encode_response(c, sample_response(11, false, false), f);
    bodies.emplace_back(f.begin() + 4, f.end());
  }
  std::mt19937 rng(1234);
  int decoded = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::vector<std::byte> b = bodies[size_t(iter) % bodies.size()];
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      const size_t at = rng() % b.size();
      switch (rng() % 3) {
        case 0:  // flip bits
          b[at] ^= static_cast<std::byte>(1 + rng() % 255);
          break;
        case 1:  // an interesting value
          b[at] = static_cast<std::byte>(
              std::array<uint8_t, 8>{0x00, 0xff, 0x7f, 0x80, 0x5f, 0x7f, 0x9f, 0xbf}[rng() % 8]);
          break;
        default:  // cut
          b.resize(at);
          break;
      }
      if (b.empty()) break;
    }
    try {
      (void)decode_request(c, b);
      ++decoded;
    } catch (const WireError&) {
    }
    try {
      (void)decode_response(c, b);
      ++decoded;
    } catch (const WireError&) {
    }
  }
  // Some mutations land in values (payload bytes, counts) and still decode.
  EXPECT_GT(decoded, 0);
}

TEST_P(WireCodec, RandomBytesDecodeOrThrowWireError) {
  std::mt19937 rng(77);
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<std::byte> b(rng() % 64);
    for (auto& x : b) x = static_cast<std::byte>(rng());
    decode_or_wire_error(GetParam(), b);
  }
}

TEST(Wire, DeepNestingIsAnErrorNotAStackOverflow) {
  // nlohmann's readers recurse per level; these would exhaust the stack unless stopped.
  const size_t depth = 200000;
  std::string text(depth, '[');
  std::vector<std::byte> js(text.size());
  std::memcpy(js.data(), text.data(), text.size());
  EXPECT_THROW(decode_request(Codec::json, js), WireError);
  for (uint8_t lead : {uint8_t{0x81}, uint8_t{0x9f}, uint8_t{0x5f}, uint8_t{0x7f}, uint8_t{0xa1}}) {
    std::vector<std::byte> cb(depth, std::byte{lead});
    EXPECT_THROW(decode_request(Codec::cbor, cb), WireError) << int(lead);
  }
  for (uint8_t lead : {uint8_t{0x91}, uint8_t{0xdc}, uint8_t{0x81}}) {
    std::vector<std::byte> mp(depth, std::byte{lead});
    EXPECT_THROW(decode_request(Codec::msgpack, mp), WireError) << int(lead);
  }
}

TEST(Wire, HugeCountsDoNotAllocate) {
  // A raw request claiming 2^20 steps (and one claiming 2^32 - 1) in a 30-byte body.
  std::vector<std::byte> frame;
  encode_request(Codec::raw, TaskRequest{}, frame);
  std::vector<std::byte> body(frame.begin() + 4, frame.end());
  for (uint32_t count : {uint32_t{1} << 20, UINT32_MAX}) {
    std::memcpy(body.data() + 26, &count, 4);  // after tag, item, seed, nonce, fault (LE)
    EXPECT_THROW(decode_request(Codec::raw, body), WireError);
  }
  // An inline payload length of 2^63.
  std::vector<std::byte> b2(frame.begin() + 4, frame.end());
  const uint64_t huge = uint64_t{1} << 63;
  std::memcpy(b2.data() + b2.size() - 8, &huge, 8);
  EXPECT_THROW(decode_request(Codec::raw, b2), WireError);
  // CBOR: an array header claiming 2^64 - 1 elements, and a byte string claiming 2^32.
  const std::vector<uint8_t> cb1 = {0xa1, 0x61, 'x',  0x9b, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const std::vector<uint8_t> cb2 = {0x5b, 0, 0, 0, 1, 0, 0, 0, 0};
  for (const auto& v : {cb1, cb2}) {
    std::vector<std::byte> b(v.size());
    std::memcpy(b.data(), v.data(), v.size());
    EXPECT_THROW(decode_request(Codec::cbor, b), WireError);
  }
}

TEST(Wire, JsonTextShapesAreValidated) {
  auto decode = [](const std::string& s) {
    std::vector<std::byte> b(s.size());
    std::memcpy(b.data(), s.data(), s.size());
    return decode_request(Codec::json, b);
  };
  const std::string ok =
      R"({"i":1,"s":2,"nc":9,"f":0,"st":[{"k":1,"n":false,"kr":3,"b":4,"u":5,"d":6,"a":7}],)"
      R"("p":{"m":0,"b":{"bytes":[0,255,16],"subtype":null}}})";
  const TaskRequest r = decode(ok);
  ASSERT_EQ(r.steps.size(), 1u);
  EXPECT_EQ(r.steps[0].kind, StepKind::sleep);
  ASSERT_EQ(r.payload.bytes.size(), 3u);
  EXPECT_EQ(r.payload.bytes[1], std::byte{255});
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = ok;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  EXPECT_THROW(decode(with("255", "256")), WireError);
  EXPECT_THROW(decode(with("255", "-1")), WireError);
  EXPECT_THROW(decode(with("255", "1.5")), WireError);
  EXPECT_THROW(decode(with("255", "\"x\"")), WireError);
  EXPECT_THROW(decode(with("\"kr\":3", "\"kr\":65536")), WireError);
  EXPECT_THROW(decode(with("\"b\":4", "\"b\":4294967296")), WireError);
  EXPECT_THROW(decode(with("\"k\":1", "\"k\":6")), WireError);
  EXPECT_THROW(decode(with("\"n\":false", "\"n\":0")), WireError);
  EXPECT_THROW(decode(with("\"f\":0", "\"f\":256")), WireError);
  EXPECT_THROW(decode(with("\"m\":0", "\"m\":2")), WireError);
  EXPECT_THROW(decode(with("\"i\":1,", "")), WireError);
  EXPECT_THROW(decode(with("\"s\":2", "\"s\":18446744073709551616")), WireError);
  EXPECT_THROW(decode(with("\"nc\":9,", "")), WireError);  // a request without its nonce
  EXPECT_THROW(decode(with("\"nc\":9", "\"nc\":-9")), WireError);
  EXPECT_THROW(decode("[]"), WireError);
  EXPECT_THROW(decode("null"), WireError);
  EXPECT_THROW(decode(ok + " x"), WireError);
  EXPECT_NO_THROW(decode(with("\"i\":1,", "\"i\":1,\"future\":[1,2],")));  // unknown keys: ignored
}

TEST(Wire, RawNotCountedMaskIsValidated) {
  TaskResponse in;
  in.counters.set(Counter::cycles, 5);
  std::vector<std::byte> frame;
  encode_response(Codec::raw, in, frame);
  std::vector<std::byte> body(frame.begin() + 4, frame.end());
  // tag, item, ok, checksum, error length (empty error), counter mask, values, multiplexed.
  const size_t at = 1 + 8 + 1 + 8 + 4 + 4 + 8 * kCounterCount + 1;
  EXPECT_NO_THROW(decode_response(Codec::raw, body));
  for (uint32_t bad : {uint32_t{1} << 31, uint32_t{1} << static_cast<int>(Counter::cycles)}) {
    auto b = body;
    std::memcpy(b.data() + at, &bad, 4);
    EXPECT_THROW(decode_response(Codec::raw, b), WireError) << bad;
  }
  const uint32_t ok = uint32_t{1} << static_cast<int>(Counter::instructions);
  std::memcpy(body.data() + at, &ok, 4);
  const TaskResponse out = decode_response(Codec::raw, body);
  EXPECT_TRUE(out.counters.not_counted(Counter::instructions));
  EXPECT_FALSE(out.counters.unavailable_reason(Counter::instructions).empty());
}

TEST(Wire, UnknownCounterNameRejected) {
  TaskResponse in;
  in.counters.set(Counter::cycles, 5);
  std::vector<std::byte> frame;
  encode_response(Codec::json, in, frame);
  std::string s(reinterpret_cast<const char*>(frame.data() + 4), frame.size() - 4);
  s.replace(s.find("cycles"), 6, "cyclez");
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  EXPECT_THROW(decode_response(Codec::json, b), WireError);
}

TEST(Wire, RawRejectsBadFlagsAndModes) {
  std::vector<std::byte> frame;
  encode_request(Codec::raw, sample_request(0, false), frame);
  std::vector<std::byte> body(frame.begin() + 4, frame.end());
  {
    auto b = body;
    b[30 + 1] = std::byte{2};  // first step's native flag
    EXPECT_THROW(decode_request(Codec::raw, b), WireError);
  }
  {
    auto b = body;
    b[b.size() - 9] = std::byte{2};  // payload mode
    EXPECT_THROW(decode_request(Codec::raw, b), WireError);
  }
  {
    auto b = body;
    b[0] = std::byte{0};  // tag
    EXPECT_THROW(decode_request(Codec::raw, b), WireError);
  }
}

TEST(Wire, CodecNames) {
  for (Codec c : kCodecs) EXPECT_EQ(parse_codec(codec_name(c)), c);
  EXPECT_STREQ(codec_name(Codec::msgpack), "msgpack");
  EXPECT_THROW(parse_codec("protobuf"), WireError);
  EXPECT_THROW(parse_codec(""), WireError);
  EXPECT_THROW(parse_codec("JSON"), WireError);
}

// ---- FrameReader --------------------------------------------------------------------------------

struct Stream {
  std::vector<std::byte> bytes;
  std::vector<std::vector<std::byte>> bodies;
};

Stream sample_stream(int frames) {
  Stream s;
  std::mt19937 rng(5);
  for (int i = 0; i < frames; ++i) {
    const size_t before = s.bytes.size();
    const Codec c = kCodecs[size_t(i) % 4];
    if (i % 2 == 0)
      encode_request(c, sample_request(rng() % 300, i % 3 == 0), s.bytes);
    else
      encode_response(c, sample_response(rng() % 300, false, i % 3 == 0), s.bytes);
    s.bodies.emplace_back(s.bytes.begin() + long(before) + 4, s.bytes.end());
  }
  return s;
}

TEST(FrameReader, OneByteAtATime) {
  const Stream s = sample_stream(24);
  FrameReader fr;
  std::vector<std::vector<std::byte>> got;
  std::span<const std::byte> body;
  for (size_t i = 0; i < s.bytes.size(); ++i) {
    fr.feed(std::span<const std::byte>(s.bytes).subspan(i, 1));
    while (fr.next(body)) got.emplace_back(body.begin(), body.end());
  }
  EXPECT_EQ(got, s.bodies);
  EXPECT_EQ(fr.buffered(), 0u);
}

TEST(FrameReader, RandomChunksThroughFeedAndPrepare) {
  const Stream s = sample_stream(40);
  std::mt19937 rng(9);
  for (int round = 0; round < 20; ++round) {
    FrameReader fr;
    std::vector<std::vector<std::byte>> got;
    std::span<const std::byte> body;
    size_t at = 0;
    while (at < s.bytes.size()) {
      const size_t n = std::min<size_t>(1 + rng() % 700, s.bytes.size() - at);
      if (round % 2 == 0) {
        fr.feed(std::span<const std::byte>(s.bytes).subspan(at, n));
      } else {
        std::span<std::byte> space = fr.prepare(n);
        ASSERT_GE(space.size(), n);
        std::memcpy(space.data(), s.bytes.data() + at, n);
        fr.commit(n);
      }
      at += n;
      // Sometimes leave complete frames in the buffer for a while.
      if (rng() % 3 != 0)
        while (fr.next(body)) got.emplace_back(body.begin(), body.end());
    }
    while (fr.next(body)) got.emplace_back(body.begin(), body.end());
    EXPECT_EQ(got, s.bodies);
    EXPECT_EQ(fr.buffered(), 0u);
  }
}

TEST(FrameReader, BodyStaysValidUntilNextCall) {
  std::vector<std::byte> stream;
  encode_request(Codec::raw, sample_request(100, false), stream);
  FrameReader fr;
  fr.feed(stream);
  std::span<const std::byte> body;
  ASSERT_TRUE(fr.next(body));
  EXPECT_TRUE(std::equal(body.begin(), body.end(), stream.begin() + 4, stream.end()));
  EXPECT_FALSE(fr.next(body));
}

TEST(FrameReader, LongStreamDoesNotGrowTheBuffer) {
  // Frames of ~150 bytes arriving in 1000-byte reads that end mid-frame: the consumed prefix
  // must be reclaimed, so the buffer stays near its first size over 10 MB of traffic.
  std::vector<std::byte> one;
  TaskRequest r;
  r.payload.bytes = pattern(120, 3);
  encode_request(Codec::raw, r, one);
  std::vector<std::byte> stream;
  for (int i = 0; i < 1000; ++i) stream.insert(stream.end(), one.begin(), one.end());
  FrameReader fr;
  size_t max_space = 0, frames = 0;
  std::span<const std::byte> body;
  for (int rep = 0; rep < 70; ++rep) {
    for (size_t at = 0; at < stream.size(); at += 1000) {
      const size_t n = std::min<size_t>(1000, stream.size() - at);
      std::span<std::byte> space = fr.prepare(4096);
      max_space = std::max(max_space, space.size() + fr.buffered());
      std::memcpy(space.data(), stream.data() + at, n);
      fr.commit(n);
      while (fr.next(body)) ++frames;
    }
  }
  EXPECT_EQ(frames, 70000u);
  EXPECT_LE(max_space, 64u * 1024);
}

TEST(FrameReader, LengthAboveMaximumThrows) {
  FrameReader fr;
  const uint32_t len = kMaxFrameBytes + 1;
  std::byte prefix[4];
  for (int i = 0; i < 4; ++i) prefix[i] = static_cast<std::byte>(len >> (8 * i));
  fr.feed(prefix);
  std::span<const std::byte> body;
  EXPECT_THROW(fr.next(body), WireError);

  FrameReader all_ones;
  const std::byte ff[4] = {std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}};
  all_ones.feed(ff);
  EXPECT_THROW(all_ones.next(body), WireError);
}

TEST(FrameReader, MaximumLengthIsJustIncomplete) {
  // A legal but huge prefix waits for its body and allocates nothing up front.
  FrameReader fr;
  const uint32_t len = kMaxFrameBytes;
  std::byte prefix[4];
  for (int i = 0; i < 4; ++i) prefix[i] = static_cast<std::byte>(len >> (8 * i));
  fr.feed(prefix);
  std::span<const std::byte> body;
  EXPECT_FALSE(fr.next(body));
  EXPECT_EQ(fr.buffered(), 4u);
  EXPECT_LT(fr.prepare(1).size(), 1u << 20);
}

TEST(FrameReader, EmptyBody) {
  FrameReader fr;
  const std::byte zero[4] = {};
  fr.feed(zero);
  fr.feed(zero);
  std::span<const std::byte> body;
  ASSERT_TRUE(fr.next(body));
  EXPECT_EQ(body.size(), 0u);
  ASSERT_TRUE(fr.next(body));
  EXPECT_FALSE(fr.next(body));
}

TEST(FrameReader, CommitBeyondPrepareIsRejected) {
  FrameReader fr;
  const size_t space = fr.prepare(16).size();
  EXPECT_THROW(fr.commit(space + 1), std::logic_error);
}

}  // namespace
}  // namespace concbench
