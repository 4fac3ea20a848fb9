// The process_pool wire format: frames, the raw codec, and the three nlohmann_json codecs.
//
// ---------------------------------------------------------------------------------------------
// Raw layout (every integer little-endian, no padding, no alignment assumed on either side):
//
//   request                                   response
//   u8   tag 'Q' (0x51)                       u8   tag 'R' (0x52)
//   u64  item                                 u64  item
//   u64  seed                                 u8   ok (0 or 1)
//   u64  nonce                                u64  checksum
//   u8   fault
//   u32  step count (<= kMaxSteps)            u32  error length n, then n bytes (UTF-8 or not)
//   step × count, 32 bytes each:              u32  counter validity mask (bit i: Counter i;
//     u8  kind (a known StepKind)                  bits >= kCounterCount must be 0)
//     u8  native (0 or 1)                     u64  × kCounterCount values (0 where invalid)
//     u16 kernel                              u8   multiplexed (0 or 1)
//                                             u32  not-counted mask (CounterValues::not_counted;
//                                                  bits >= kCounterCount must be 0)
//     u32 bytes                               u64  decode_ns, u64 exec_ns, u64 encode_ns
//     u64 units                               u8   has_cpu (0 or 1)
//     u64 duration_ns                         u64  cpu_user_ns, u64 cpu_sys_ns
//     u64 arg                                 payload (as in the request)
//   payload:
//     u8  mode: 0 inline, 1 shm
//     inline: u64 length n, then n bytes      (decoded PayloadRef.length = n)
//     shm:    u64 offset, u64 length
//
// The payload comes last so the encoder can size the fixed part in one resize and append the
// payload bytes without first zero-filling them. A decoder reads every field through bounds
// checks, rejects unknown tags, kinds and modes, non-0/1 booleans and trailing bytes, and checks a
// count or length against the bytes that remain *before* it allocates anything.
//
// ---------------------------------------------------------------------------------------------
// json / cbor / msgpack: one nlohmann_json object per message, short keys:
//   request  {"i": item, "s": seed, "nc": nonce, "f": fault, "st": [step...], "p": payload}
//   step     {"k": kind, "n": native, "kr": kernel, "b": bytes, "u": units, "d": duration_ns,
//             "a": arg}
//   payload  {"m": 0, "b": <binary>}  or  {"m": 1, "o": offset, "l": length}
//   response {"i": item, "ok": ok, "c": checksum, "e": error, "p": payload,
//             "ctr": {counter name: value, ... only the available ones}, "mx": multiplexed,
//             "nx": not-counted mask (as raw's),
//             "dn": decode_ns, "xn": exec_ns, "en": encode_ns,
//             "cv": has_cpu, "cu": cpu_user_ns, "cs": cpu_sys_ns}
// CBOR and MessagePack carry <binary> as a byte string; JSON text has no byte strings, so
// nlohmann writes {"bytes": [0..255, ...], "subtype": null}, which the decoder accepts back.
// Unknown keys are ignored; missing keys, wrong types and out-of-range values are WireErrors.
//
// Totality: nlohmann's parsers recurse per nesting level, so input is parsed through a SAX
// wrapper that stops beyond kMaxDepth levels, and CBOR input is first walked iteratively
// (cbor_precheck) because its reader also recurses on nested indefinite-length strings, where no
// SAX event fires.
#include "concbench/wire.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

namespace concbench {

namespace {

using nlohmann::json;

constexpr uint32_t kMaxSteps = 1u << 20;
constexpr uint8_t kLastStepKind = static_cast<uint8_t>(StepKind::echo_respond);  // keep in sync
constexpr std::byte kRequestTag{0x51};
constexpr std::byte kResponseTag{0x52};
constexpr uint8_t kModeInline = 0;
constexpr uint8_t kModeShm = 1;
constexpr size_t kStepBytes = 32;
constexpr size_t kRequestHead = 1 + 8 + 8 + 8 + 1 + 4;
constexpr size_t kResponseHead = 1 + 8 + 1 + 8 + 4;  // error bytes follow
constexpr size_t kResponseMid = 4 + 8 * kCounterCount + 1 + 4 + 3 * 8 + 1 + 2 * 8;
constexpr int kMaxDepth = 16;  // our messages nest 4 deep at most

static_assert(kCounterCount <= 32, "the raw counter mask is a u32");

// ---- little-endian load/store ----------------------------------------------------------------

template <class T>
constexpr T byteswap_any(T v) {
  T r = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    r = static_cast<T>((r << 8) | (v & 0xff));
    v = static_cast<T>(v >> 8);
  }
  return r;
}

template <class T>
inline void store_le(std::byte* p, T v) {
  if constexpr (std::endian::native == std::endian::big) v = byteswap_any(v);
  std::memcpy(p, &v, sizeof v);
}

template <class T>
inline T load_le(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) v = byteswap_any(v);
  return v;
}

// Grows `out` geometrically: an exact reserve per frame would make appending many frames to one
// buffer quadratic.
void reserve_more(std::vector<std::byte>& out, size_t extra) {
  const size_t need = out.size() + extra;
  if (need > out.capacity()) out.reserve(std::max(need, out.capacity() * 2));
}

[[noreturn]] void too_large(size_t body) {
  throw WireError("frame body of " + std::to_string(body) + " bytes exceeds kMaxFrameBytes");
}

// Marks the counters a not-counted mask names; a mask naming counters that do not exist, or that
// also carry a value, is a protocol error.
void set_not_counted(CounterValues& c, uint32_t mask) {
  if (kCounterCount < 32 && (mask >> kCounterCount) != 0)
    throw WireError("not-counted mask names unknown counters");
  for (int i = 0; i < kCounterCount; ++i) {
    if (!((mask >> i) & 1u)) continue;
    if (c.has(static_cast<Counter>(i))) throw WireError("a counter both counted and not counted");
    c.set_not_counted(static_cast<Counter>(i));
  }
}

// ---- raw codec -------------------------------------------------------------------------------

class Writer {
 public:
  explicit Writer(std::byte* p) : p_(p) {}
  template <class T>
  void put(T v) {
    store_le(p_, v);
    p_ += sizeof(T);
  }
  void put_bytes(const void* src, size_t n) {
    if (n != 0) std::memcpy(p_, src, n);
    p_ += n;
  }
  std::byte* pos() const { return p_; }

 private:
  std::byte* p_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> s) : p_(s.data()), end_(s.data() + s.size()) {}
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }

  template <class T>
  T take(const char* what) {
    if (remaining() < sizeof(T)) truncated(what);
    const T v = load_le<T>(p_);
    p_ += sizeof(T);
    return v;
  }
  bool take_bool(const char* what) {
    const auto v = take<uint8_t>(what);
    if (v > 1) throw WireError(std::string("raw: ") + what + " is not 0 or 1");
    return v != 0;
  }
  // The next n bytes, checked against what remains (n may come straight off the wire).
  const std::byte* take_bytes(uint64_t n, const char* what) {
    if (n > remaining()) truncated(what);
    const std::byte* p = p_;
    p_ += n;
    return p;
  }
  void finish() const {
    if (p_ != end_)
      throw WireError("raw: " + std::to_string(remaining()) + " trailing bytes after the message");
  }

 private:
  [[noreturn]] static void truncated(const char* what) {
    throw WireError(std::string("truncated raw message: ") + what);
  }
  const std::byte* p_;
  const std::byte* end_;
};

size_t payload_head_bytes(const PayloadRef& p) {
  return p.in_shm ? 1 + 8 + 8 : 1 + 8;
}

void put_payload_head(Writer& w, const PayloadRef& p) {
  if (p.in_shm) {
    w.put<uint8_t>(kModeShm);
    w.put<uint64_t>(p.offset);
    w.put<uint64_t>(p.length);
  } else {
    w.put<uint8_t>(kModeInline);
    w.put<uint64_t>(p.bytes.size());
  }
}

// Appends the inline payload after the fixed part (already written at out[old..]).
void append_payload(const PayloadRef& p, std::vector<std::byte>& out) {
  if (!p.in_shm && !p.bytes.empty()) out.insert(out.end(), p.bytes.begin(), p.bytes.end());
}

// Into `p`, keeping the capacity of p.bytes (assign() reuses it).
void take_payload(Reader& r, PayloadRef& p) {
  const auto mode = r.take<uint8_t>("payload mode");
  if (mode == kModeInline) {
    const auto n = r.take<uint64_t>("payload length");
    const std::byte* b = r.take_bytes(n, "payload bytes");
    p.in_shm = false;
    p.offset = 0;
    p.bytes.assign(b, b + n);
    p.length = n;
  } else if (mode == kModeShm) {
    p.in_shm = true;
    p.offset = r.take<uint64_t>("payload offset");
    p.length = r.take<uint64_t>("payload length");
    p.bytes.clear();
  } else {
    throw WireError("raw: unknown payload mode " + std::to_string(mode));
  }
}

void raw_encode_request(const TaskRequest& r, std::vector<std::byte>& out) {
  const size_t inline_bytes = r.payload.in_shm ? 0 : r.payload.bytes.size();
  if (r.steps.size() > kMaxSteps) throw WireError("too many steps");
  const size_t fixed = kRequestHead + r.steps.size() * kStepBytes + payload_head_bytes(r.payload);
  if (inline_bytes > kMaxFrameBytes || fixed + inline_bytes > kMaxFrameBytes)
    too_large(fixed + inline_bytes);
  const size_t body = fixed + inline_bytes;
  reserve_more(out, 4 + body);
  const size_t old = out.size();
  out.resize(old + 4 + fixed);
  Writer w(out.data() + old);
  w.put<uint32_t>(static_cast<uint32_t>(body));
  w.put(kRequestTag);
  w.put<uint64_t>(r.item);
  w.put<uint64_t>(r.seed);
  w.put<uint64_t>(r.nonce);
  w.put<uint8_t>(r.fault);
  w.put<uint32_t>(static_cast<uint32_t>(r.steps.size()));
  for (const Step& s : r.steps) {
    w.put<uint8_t>(static_cast<uint8_t>(s.kind));
    w.put<uint8_t>(s.native ? 1 : 0);
    w.put<uint16_t>(s.kernel);
    w.put<uint32_t>(s.bytes);
    w.put<uint64_t>(s.units);
    w.put<uint64_t>(s.duration_ns);
    w.put<uint64_t>(s.arg);
  }
  put_payload_head(w, r.payload);
  append_payload(r.payload, out);
}

void raw_decode_request(std::span<const std::byte> body, TaskRequest& r) {
  Reader rd(body);
  if (rd.take<std::byte>("tag") != kRequestTag) throw WireError("raw: not a request");
  r.item = rd.take<uint64_t>("item");
  r.seed = rd.take<uint64_t>("seed");
  r.nonce = rd.take<uint64_t>("nonce");
  r.fault = rd.take<uint8_t>("fault");
  const auto count = rd.take<uint32_t>("step count");
  if (count > kMaxSteps) throw WireError("raw: step count " + std::to_string(count) + " too large");
  // Checked before the allocation: a count the body cannot hold never reaches resize().
  const std::byte* p = rd.take_bytes(uint64_t{count} * kStepBytes, "steps");
  r.steps.resize(count);
  for (Step& s : r.steps) {
    const auto kind = load_le<uint8_t>(p);
    if (kind > kLastStepKind) throw WireError("raw: unknown step kind " + std::to_string(kind));
    const auto native = load_le<uint8_t>(p + 1);
    if (native > 1) throw WireError("raw: step native flag is not 0 or 1");
    s.kind = static_cast<StepKind>(kind);
    s.native = native != 0;
    s.kernel = load_le<uint16_t>(p + 2);
    s.bytes = load_le<uint32_t>(p + 4);
    s.units = load_le<uint64_t>(p + 8);
    s.duration_ns = load_le<uint64_t>(p + 16);
    s.arg = load_le<uint64_t>(p + 24);
    p += kStepBytes;
  }
  take_payload(rd, r.payload);
  rd.finish();
}

void raw_encode_response(const TaskResponse& r, std::vector<std::byte>& out) {
  const size_t inline_bytes = r.payload.in_shm ? 0 : r.payload.bytes.size();
  if (r.error.size() > kMaxFrameBytes) too_large(r.error.size());
  const size_t fixed =
      kResponseHead + r.error.size() + kResponseMid + payload_head_bytes(r.payload);
  if (inline_bytes > kMaxFrameBytes || fixed + inline_bytes > kMaxFrameBytes)
    too_large(fixed + inline_bytes);
  const size_t body = fixed + inline_bytes;
  reserve_more(out, 4 + body);
  const size_t old = out.size();
  out.resize(old + 4 + fixed);
  Writer w(out.data() + old);
  w.put<uint32_t>(static_cast<uint32_t>(body));
  w.put(kResponseTag);
  w.put<uint64_t>(r.item);
  w.put<uint8_t>(r.ok ? 1 : 0);
  w.put<uint64_t>(r.checksum);
  w.put<uint32_t>(static_cast<uint32_t>(r.error.size()));
  w.put_bytes(r.error.data(), r.error.size());
  uint32_t mask = 0;
  for (int i = 0; i < kCounterCount; ++i)
    if (r.counters.has(static_cast<Counter>(i))) mask |= 1u << i;
  w.put<uint32_t>(mask);
  for (int i = 0; i < kCounterCount; ++i)
    w.put<uint64_t>(r.counters.get(static_cast<Counter>(i)).value_or(0));
  w.put<uint8_t>(r.counters.multiplexed ? 1 : 0);
  w.put<uint32_t>(r.counters.not_counted_mask());
  w.put<uint64_t>(r.decode_ns);
  w.put<uint64_t>(r.exec_ns);
  w.put<uint64_t>(r.encode_ns);
  w.put<uint8_t>(r.has_cpu ? 1 : 0);
  w.put<uint64_t>(r.cpu_user_ns);
  w.put<uint64_t>(r.cpu_sys_ns);
  put_payload_head(w, r.payload);
  append_payload(r.payload, out);
}

void raw_decode_response(std::span<const std::byte> body, TaskResponse& r) {
  Reader rd(body);
  if (rd.take<std::byte>("tag") != kResponseTag) throw WireError("raw: not a response");
  r.counters = CounterValues{};
  r.item = rd.take<uint64_t>("item");
  r.ok = rd.take_bool("ok");
  r.checksum = rd.take<uint64_t>("checksum");
  const auto elen = rd.take<uint32_t>("error length");
  const std::byte* e = rd.take_bytes(elen, "error");
  r.error.assign(reinterpret_cast<const char*>(e), elen);
  const auto mask = rd.take<uint32_t>("counter mask");
  if (kCounterCount < 32 && (mask >> kCounterCount) != 0)
    throw WireError("raw: counter mask names unknown counters");
  for (int i = 0; i < kCounterCount; ++i) {
    const auto v = rd.take<uint64_t>("counters");
    if ((mask >> i) & 1u) r.counters.set(static_cast<Counter>(i), v);
  }
  r.counters.multiplexed = rd.take_bool("multiplexed");
  set_not_counted(r.counters, rd.take<uint32_t>("not-counted mask"));
  r.decode_ns = rd.take<uint64_t>("decode_ns");
  r.exec_ns = rd.take<uint64_t>("exec_ns");
  r.encode_ns = rd.take<uint64_t>("encode_ns");
  r.has_cpu = rd.take_bool("has_cpu");
  r.cpu_user_ns = rd.take<uint64_t>("cpu_user_ns");
  r.cpu_sys_ns = rd.take<uint64_t>("cpu_sys_ns");
  take_payload(rd, r.payload);
  rd.finish();
}

// ---- nlohmann codecs: encoding ---------------------------------------------------------------

// nlohmann output adapter appending straight to the frame buffer (no intermediate string).
template <class CharT>
class ByteSink final : public nlohmann::detail::output_adapter_protocol<CharT> {
 public:
  explicit ByteSink(std::vector<std::byte>& out) : out_(out) {}
  void write_character(CharT c) override { out_.push_back(static_cast<std::byte>(c)); }
  void write_characters(const CharT* s, std::size_t n) override {
    const auto* p = reinterpret_cast<const std::byte*>(s);
    out_.insert(out_.end(), p, p + n);
  }

 private:
  std::vector<std::byte>& out_;
};

json payload_to_json(const PayloadRef& p) {
  json j = json::object();
  if (p.in_shm) {
    j["m"] = kModeShm;
    j["o"] = p.offset;
    j["l"] = p.length;
  } else {
    j["m"] = kModeInline;
    const auto* b = reinterpret_cast<const uint8_t*>(p.bytes.data());
    j["b"] = json::binary(json::binary_t::container_type(b, b + p.bytes.size()));
  }
  return j;
}

json request_to_json(const TaskRequest& r) {
  json steps = json::array();
  steps.get_ref<json::array_t&>().reserve(r.steps.size());
  for (const Step& s : r.steps) {
    json js = json::object();
    js["k"] = static_cast<uint8_t>(s.kind);
    js["n"] = s.native;
    js["kr"] = s.kernel;
    js["b"] = s.bytes;
    js["u"] = s.units;
    js["d"] = s.duration_ns;
    js["a"] = s.arg;
    steps.push_back(std::move(js));
  }
  json j = json::object();
  j["i"] = r.item;
  j["s"] = r.seed;
  j["nc"] = r.nonce;
  j["f"] = r.fault;
  j["st"] = std::move(steps);
  j["p"] = payload_to_json(r.payload);
  return j;
}

json response_to_json(const TaskResponse& r) {
  json ctr = json::object();
  for (int i = 0; i < kCounterCount; ++i) {
    const auto c = static_cast<Counter>(i);
    if (const auto v = r.counters.get(c)) ctr[std::string(counter_name(c))] = *v;
  }
  json j = json::object();
  j["i"] = r.item;
  j["ok"] = r.ok;
  j["c"] = r.checksum;
  j["e"] = r.error;
  j["p"] = payload_to_json(r.payload);
  j["ctr"] = std::move(ctr);
  j["mx"] = r.counters.multiplexed;
  j["nx"] = r.counters.not_counted_mask();
  j["dn"] = r.decode_ns;
  j["xn"] = r.exec_ns;
  j["en"] = r.encode_ns;
  j["cv"] = r.has_cpu;
  j["cu"] = r.cpu_user_ns;
  j["cs"] = r.cpu_sys_ns;
  return j;
}

// Serializes `j` with codec c as one frame appended to `out`; `estimate` sizes the reservation.
void encode_json_frame(Codec c, const json& j, size_t estimate, std::vector<std::byte>& out) {
  const size_t old = out.size();
  try {
    reserve_more(out, 4 + estimate);
    out.resize(old + 4);
    switch (c) {
      case Codec::json: {
        // `replace`: an error string that is not valid UTF-8 must not make encoding throw.
        nlohmann::detail::serializer<json> s(std::make_shared<ByteSink<char>>(out), ' ',
                                             json::error_handler_t::replace);
        s.dump(j, false, false, 0);
        break;
      }
      case Codec::cbor:
        nlohmann::detail::binary_writer<json, uint8_t>(std::make_shared<ByteSink<uint8_t>>(out))
            .write_cbor(j);
        break;
      case Codec::msgpack:
        nlohmann::detail::binary_writer<json, uint8_t>(std::make_shared<ByteSink<uint8_t>>(out))
            .write_msgpack(j);
        break;
      case Codec::raw:
        break;  // not reached
    }
  } catch (const json::exception& e) {
    out.resize(old);
    throw WireError(std::string(codec_name(c)) + " encode: " + e.what());
  }
  const size_t body = out.size() - old - 4;
  if (body > kMaxFrameBytes) {
    out.resize(old);
    too_large(body);
  }
  store_le<uint32_t>(out.data() + old, static_cast<uint32_t>(body));
}

// A rough size so that typical messages need one reservation.
size_t estimate_bytes(Codec c, size_t payload, size_t steps) {
  const size_t per_byte = c == Codec::json ? 4 : 1;  // "255," per byte in JSON text
  return 256 + 96 * steps + per_byte * payload;
}

// ---- nlohmann codecs: decoding ---------------------------------------------------------------

// The DOM builder behind json::parse, with a nesting limit: returning false from a start_* event
// stops nlohmann's (recursive) readers before deep input can exhaust the stack.
class BoundedDomSax {
 public:
  explicit BoundedDomSax(json& root) : dom_(root, true) {}
  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const json::string_t& s) {
    return dom_.number_float(v, s);
  }
  bool string(json::string_t& s) { return dom_.string(s); }
  bool binary(json::binary_t& b) { return dom_.binary(b); }
  bool start_object(std::size_t n) { return enter() && dom_.start_object(n); }
  bool key(json::string_t& k) { return dom_.key(k); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return enter() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  template <class Exception>
  bool parse_error(std::size_t pos, const std::string& token, const Exception& ex) {
    return dom_.parse_error(pos, token, ex);  // throws ex
  }
  bool too_deep() const { return too_deep_; }

 private:
  bool enter() {
    if (++depth_ > kMaxDepth) {
      too_deep_ = true;
      return false;
    }
    return true;
  }
  nlohmann::detail::json_sax_dom_parser<json> dom_;
  int depth_ = 0;
  bool too_deep_ = false;
};

// Walks CBOR structure without recursion and rejects what nlohmann's reader would recurse on
// without bound (nested indefinite-length strings, deep nesting) or reject anyway (tags,
// reserved additional-info values, misplaced breaks). Everything else is left to nlohmann.
void cbor_precheck(std::span<const std::byte> in) {
  const auto* b = reinterpret_cast<const uint8_t*>(in.data());
  const size_t n = in.size();
  size_t pos = 0;
  auto fail = [](const char* why) -> void { throw WireError(std::string("cbor: ") + why); };
  auto byte = [&]() -> uint8_t {
    if (pos >= n) fail("unexpected end of input");
    return b[pos++];
  };
  // Reads the argument for additional info `ai` (< 28).
  auto argument = [&](uint8_t ai) -> uint64_t {
    if (ai < 24) return ai;
    const size_t len = size_t{1} << (ai - 24);  // 1, 2, 4, 8
    if (n - pos < len) fail("unexpected end of input");
    uint64_t v = 0;
    for (size_t i = 0; i < len; ++i) v = (v << 8) | b[pos++];
    return v;
  };
  auto skip = [&](uint64_t len) {
    if (len > n - pos) fail("unexpected end of input");
    pos += static_cast<size_t>(len);
  };
  struct Level {
    uint64_t items;  // items still expected (definite length)
    bool indefinite;
  };
  std::array<Level, kMaxDepth + 1> st{};
  int depth = 1;
  st[0] = {1, false};  // the top level holds exactly one item
  while (depth > 0) {
    Level& lv = st[static_cast<size_t>(depth - 1)];
    if (lv.indefinite) {
      if (pos < n && b[pos] == 0xFF) {
        ++pos;
        --depth;
        continue;
      }
    } else {
      if (lv.items == 0) {
        --depth;
        continue;
      }
      --lv.items;
    }
    const uint8_t ib = byte();
    const uint8_t major = ib >> 5, ai = ib & 31;
    if (ai >= 28 && ai <= 30) fail("reserved additional information");
    const bool indef = ai == 31;
    const uint64_t arg = indef ? 0 : argument(ai);
    switch (major) {
      case 0:
      case 1:
        if (indef) fail("indefinite integer");
        break;
      case 2:
      case 3:
        if (!indef) {
          skip(arg);
        } else {
          for (;;) {  // chunks: definite strings of the same major type, then a break
            const uint8_t cb = byte();
            if (cb == 0xFF) break;
            if ((cb >> 5) != major || (cb & 31) >= 28) fail("bad indefinite-length string chunk");
            skip(argument(cb & 31));
          }
        }
        break;
      case 4:
      case 5: {
        if (depth > kMaxDepth) fail("nesting too deep");
        uint64_t items = 0;
        if (!indef) {
          if (arg > n - pos) fail("container longer than the input");  // each item >= 1 byte
          items = major == 5 ? arg * 2 : arg;
        }
        st[static_cast<size_t>(depth)] = {items, indef};
        ++depth;
        break;
      }
      case 6:
        fail("tags are not supported");
        break;
      default:  // 7: simple values and floats; a break here is out of place
        if (indef) fail("unexpected break");
        break;
    }
  }
  if (pos != n) fail("trailing bytes after the message");
}

json parse_json_body(Codec c, std::span<const std::byte> body) {
  json root;
  BoundedDomSax sax(root);
  bool ok = false;
  const auto* first = reinterpret_cast<const uint8_t*>(body.data());
  const auto* last = first + body.size();
  switch (c) {
    case Codec::json:
      // nlohmann's lexer takes a NUL byte for the end of input and would ignore what follows;
      // valid JSON text never contains one (control characters in strings must be escaped).
      if (!body.empty() && std::memchr(body.data(), 0, body.size()) != nullptr)
        throw WireError("json: NUL byte in message");
      ok =
          json::sax_parse(reinterpret_cast<const char*>(first), reinterpret_cast<const char*>(last),
                          &sax, json::input_format_t::json, true);
      break;
    case Codec::cbor:
      cbor_precheck(body);
      ok = json::sax_parse(first, last, &sax, json::input_format_t::cbor, true);
      break;
    case Codec::msgpack:
      ok = json::sax_parse(first, last, &sax, json::input_format_t::msgpack, true);
      break;
    case Codec::raw:
      break;
  }
  if (!ok) throw WireError(sax.too_deep() ? "nesting too deep" : "malformed message");
  return root;
}

const json& field(const json& obj, const char* key) {
  if (!obj.is_object()) throw WireError(std::string("expected an object around '") + key + "'");
  const auto it = obj.find(key);
  if (it == obj.end()) throw WireError(std::string("missing field '") + key + "'");
  return *it;
}

uint64_t as_u64(const json& v, const char* what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {  // another encoder may write small values as signed
    const auto i = v.get<int64_t>();
    if (i >= 0) return static_cast<uint64_t>(i);
  }
  throw WireError(std::string("field '") + what + "' is not an unsigned integer");
}

template <class T>
T as_uint(const json& v, const char* what, uint64_t max = std::numeric_limits<T>::max()) {
  const uint64_t x = as_u64(v, what);
  if (x > max) throw WireError(std::string("field '") + what + "' out of range");
  return static_cast<T>(x);
}

bool as_bool(const json& v, const char* what) {
  if (!v.is_boolean()) throw WireError(std::string("field '") + what + "' is not a boolean");
  return v.get<bool>();
}

// Into `out`, keeping its capacity.
void bytes_from_json(const json& v, std::vector<std::byte>& out) {
  if (v.is_binary()) {
    const auto& bin = v.get_binary();
    const auto* p = reinterpret_cast<const std::byte*>(bin.data());
    out.assign(p, p + bin.size());
    return;
  }
  // JSON text: nlohmann wrote the binary value as {"bytes": [...], "subtype": ...}.
  const json& arr = field(v, "bytes");
  if (!arr.is_array()) throw WireError("payload 'bytes' is not an array");
  out.clear();
  out.reserve(arr.size());  // bounded by the parsed input
  for (const json& e : arr) out.push_back(static_cast<std::byte>(as_uint<uint8_t>(e, "bytes")));
}

void payload_from_json(const json& j, PayloadRef& p) {
  const auto mode = as_uint<uint8_t>(field(j, "m"), "m");
  if (mode == kModeInline) {
    bytes_from_json(field(j, "b"), p.bytes);
    p.in_shm = false;
    p.offset = 0;
    p.length = p.bytes.size();
  } else if (mode == kModeShm) {
    p.in_shm = true;
    p.offset = as_u64(field(j, "o"), "o");
    p.length = as_u64(field(j, "l"), "l");
    p.bytes.clear();
  } else {
    throw WireError("unknown payload mode " + std::to_string(mode));
  }
}

void request_from_json(const json& j, TaskRequest& r) {
  r.item = as_u64(field(j, "i"), "i");
  r.seed = as_u64(field(j, "s"), "s");
  r.nonce = as_u64(field(j, "nc"), "nc");
  r.fault = as_uint<uint8_t>(field(j, "f"), "f");
  const json& steps = field(j, "st");
  if (!steps.is_array()) throw WireError("field 'st' is not an array");
  if (steps.size() > kMaxSteps) throw WireError("too many steps");
  r.steps.clear();
  r.steps.reserve(steps.size());  // bounded by the parsed input
  for (const json& js : steps) {
    Step s;
    s.kind = static_cast<StepKind>(as_uint<uint8_t>(field(js, "k"), "k", kLastStepKind));
    s.native = as_bool(field(js, "n"), "n");
    s.kernel = as_uint<KernelId>(field(js, "kr"), "kr");
    s.bytes = as_uint<uint32_t>(field(js, "b"), "b");
    s.units = as_u64(field(js, "u"), "u");
    s.duration_ns = as_u64(field(js, "d"), "d");
    s.arg = as_u64(field(js, "a"), "a");
    r.steps.push_back(s);
  }
  payload_from_json(field(j, "p"), r.payload);
}

void response_from_json(const json& j, TaskResponse& r) {
  r.item = as_u64(field(j, "i"), "i");
  r.ok = as_bool(field(j, "ok"), "ok");
  r.checksum = as_u64(field(j, "c"), "c");
  const json& e = field(j, "e");
  if (!e.is_string()) throw WireError("field 'e' is not a string");
  r.error = e.get_ref<const std::string&>();
  payload_from_json(field(j, "p"), r.payload);
  const json& ctr = field(j, "ctr");
  if (!ctr.is_object()) throw WireError("field 'ctr' is not an object");
  r.counters = CounterValues{};
  for (const auto& [name, value] : ctr.items()) {
    int found = -1;
    for (int i = 0; i < kCounterCount && found < 0; ++i)
      if (counter_name(static_cast<Counter>(i)) == name) found = i;
    if (found < 0) throw WireError("unknown counter '" + name.substr(0, 64) + "'");
    r.counters.set(static_cast<Counter>(found), as_u64(value, "ctr"));
  }
  r.counters.multiplexed = as_bool(field(j, "mx"), "mx");
  set_not_counted(r.counters, as_uint<uint32_t>(field(j, "nx"), "nx"));
  r.decode_ns = as_u64(field(j, "dn"), "dn");
  r.exec_ns = as_u64(field(j, "xn"), "xn");
  r.encode_ns = as_u64(field(j, "en"), "en");
  r.has_cpu = as_bool(field(j, "cv"), "cv");
  r.cpu_user_ns = as_u64(field(j, "cu"), "cu");
  r.cpu_sys_ns = as_u64(field(j, "cs"), "cs");
}

[[noreturn]] void rethrow_json(Codec c, const json::exception& e) {
  std::string msg = std::string(codec_name(c)) + ": " + e.what();
  if (msg.size() > 200) msg.resize(200);
  throw WireError(msg);
}

}  // namespace

// ---- public API -------------------------------------------------------------------------------

Codec parse_codec(std::string_view name) {
  if (name == "json") return Codec::json;
  if (name == "cbor") return Codec::cbor;
  if (name == "msgpack") return Codec::msgpack;
  if (name == "raw") return Codec::raw;
  throw WireError("unknown codec '" + std::string(name) + "' (json, cbor, msgpack, raw)");
}

const char* codec_name(Codec c) {
  switch (c) {
    case Codec::json:
      return "json";
    case Codec::cbor:
      return "cbor";
    case Codec::msgpack:
      return "msgpack";
    case Codec::raw:
      return "raw";
  }
  return "unknown";
}

void encode_request(Codec c, const TaskRequest& r, std::vector<std::byte>& out) {
  if (c == Codec::raw) return raw_encode_request(r, out);
  if (c != Codec::json && c != Codec::cbor && c != Codec::msgpack) throw WireError("bad codec");
  const size_t payload = r.payload.in_shm ? 0 : r.payload.bytes.size();
  json j;
  try {
    j = request_to_json(r);
  } catch (const json::exception& e) {
    rethrow_json(c, e);
  }
  encode_json_frame(c, j, estimate_bytes(c, payload, r.steps.size()), out);
}

void encode_response(Codec c, const TaskResponse& r, std::vector<std::byte>& out) {
  if (c == Codec::raw) return raw_encode_response(r, out);
  if (c != Codec::json && c != Codec::cbor && c != Codec::msgpack) throw WireError("bad codec");
  const size_t payload = r.payload.in_shm ? 0 : r.payload.bytes.size();
  json j;
  try {
    j = response_to_json(r);
  } catch (const json::exception& e) {
    rethrow_json(c, e);
  }
  encode_json_frame(c, j, estimate_bytes(c, payload, 0) + r.error.size() + 512, out);
}

void decode_request(Codec c, std::span<const std::byte> body, TaskRequest& into) {
  if (c == Codec::raw) return raw_decode_request(body, into);
  if (c != Codec::json && c != Codec::cbor && c != Codec::msgpack) throw WireError("bad codec");
  try {
    request_from_json(parse_json_body(c, body), into);
  } catch (const json::exception& e) {
    rethrow_json(c, e);
  }
}

void decode_response(Codec c, std::span<const std::byte> body, TaskResponse& into) {
  if (c == Codec::raw) return raw_decode_response(body, into);
  if (c != Codec::json && c != Codec::cbor && c != Codec::msgpack) throw WireError("bad codec");
  try {
    response_from_json(parse_json_body(c, body), into);
  } catch (const json::exception& e) {
    rethrow_json(c, e);
  }
}

TaskRequest decode_request(Codec c, std::span<const std::byte> body) {
  TaskRequest r;
  decode_request(c, body, r);
  return r;
}

TaskResponse decode_response(Codec c, std::span<const std::byte> body) {
  TaskResponse r;
  decode_response(c, body, r);
  return r;
}

// ---- FrameReader -------------------------------------------------------------------------------

void FrameReader::feed(std::span<const std::byte> data) {
  if (data.empty()) return;
  std::span<std::byte> space = prepare(data.size());
  std::memcpy(space.data(), data.data(), data.size());
  commit(data.size());
}

std::span<std::byte> FrameReader::prepare(size_t n) {
  size_t spare = buf_.size() - fill_;
  if (spare < n) {
    // Compact when the consumed prefix is at least half the buffer, or when reclaiming it is
    // enough by itself: either way a long stream reuses the same buffer instead of growing.
    if (pos_ > 0 && (pos_ >= buf_.size() / 2 || spare + pos_ >= n)) {
      const size_t live = fill_ - pos_;
      if (live != 0) std::memmove(buf_.data(), buf_.data() + pos_, live);
      pos_ = 0;
      fill_ = live;
      spare = buf_.size() - fill_;
    }
    if (spare < n) {
      if (n > buf_.max_size() - fill_) throw std::length_error("FrameReader::prepare: too large");
      buf_.resize(std::max({fill_ + n, buf_.size() * 2, size_t{4096}}));
    }
  }
  return {buf_.data() + fill_, buf_.size() - fill_};
}

void FrameReader::commit(size_t n) {
  if (n > buf_.size() - fill_) throw std::logic_error("FrameReader::commit beyond prepare()");
  fill_ += n;
}

bool FrameReader::next(std::span<const std::byte>& body) {
  const size_t avail = fill_ - pos_;
  if (avail < 4) return false;
  const uint32_t len = load_le<uint32_t>(buf_.data() + pos_);
  if (len > kMaxFrameBytes)
    throw WireError("frame length " + std::to_string(len) + " exceeds kMaxFrameBytes");
  if (avail - 4 < len) return false;
  body = {buf_.data() + pos_ + 4, len};
  pos_ += 4 + size_t{len};
  // Everything consumed: start over at the front. The body stays valid, since nothing is moved
  // until the next prepare().
  if (pos_ == fill_) pos_ = fill_ = 0;
  return true;
}

}  // namespace concbench
