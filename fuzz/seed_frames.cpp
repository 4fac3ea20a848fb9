// Writes the seed corpus of fuzz_frames: one well-formed stream per codec, each holding a
// request and a response, with a payload inline and one in shared memory. The first byte picks
// the codec, as fuzz_frames.cpp reads it. Usage: seed_frames DIR
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "concbench/wire.hpp"

int main(int argc, char** argv) {
  using namespace concbench;
  if (argc != 2) {
    std::fprintf(stderr, "usage: seed_frames DIR\n");
    return 2;
  }
  for (Codec c : {Codec::json, Codec::cbor, Codec::msgpack, Codec::raw}) {
    for (bool shm : {false, true}) {
      TaskRequest req;
      req.item = 7;
      req.seed = 0x1234;
      req.nonce = 0x9e3779b97f4a7c15ULL;
      Step spin;
      spin.units = 3;
      Step sleep;
      sleep.kind = StepKind::sleep;
      sleep.duration_ns = 1000;
      req.steps = {spin, sleep};
      TaskResponse resp;
      resp.item = 7;
      resp.ok = !shm;
      resp.checksum = 99;
      resp.error = shm ? "task threw: boom" : "";
      if (shm) {
        req.payload = {true, 64, 16, {}};
        resp.payload = req.payload;
      } else {
        req.payload.bytes = std::vector<std::byte>(16, std::byte{0x5a});
        resp.payload = req.payload;
      }
      std::vector<std::byte> out{static_cast<std::byte>(c)};
      encode_request(c, req, out);
      encode_response(c, resp, out);
      const std::string name = std::string(argv[1]) + "/" + codec_name(c) + (shm ? "-shm" : "");
      std::ofstream(name, std::ios::binary)
          .write(reinterpret_cast<const char*>(out.data()),
                 static_cast<std::streamsize>(out.size()));
    }
  }
  return 0;
}
