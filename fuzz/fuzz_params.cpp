// libFuzzer target: run requests (bench_runner's flags and concbench.run's config go through the
// same config_from_request) and the `--param key=value` / `--pin` parsers. Every input must be
// accepted or refused with UsageError; nothing else may escape.
//
// Input: a JSON request, e.g. {"workloads": "cpu.spin", "params": ["units=5"], "workers": "1,2"}.
// Bytes that are not JSON are tried as one `--param` string and as a `--pin` value instead.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "concbench/config.hpp"
#include "concbench/params.hpp"
#include "concbench/topology.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nlohmann::json;
  if (size > 4096) return -1;
  const std::string text(reinterpret_cast<const char*>(data), size);
  json request;
  try {
    request = json::parse(text);
  } catch (const json::exception&) {
    try {
      (void)concbench::config_from_request(json{{"params", json::array({text})}});
    } catch (const concbench::UsageError&) {
    }
    try {
      (void)concbench::Placement::parse(text).to_string();
    } catch (const concbench::UsageError&) {
    }
    return 0;
  }
  // workload_files reads the files it names: fuzz_profile covers their contents, and a fuzzer
  // must not read (or block on) whatever paths of this machine it happens to spell.
  if (request.is_object()) request.erase("workload_files");
  try {
    const concbench::RunConfig cfg = concbench::config_from_request(request);
    // An accepted config must expand into a matrix without throwing anything but UsageError.
    (void)concbench::expand_matrix(cfg);
  } catch (const concbench::UsageError&) {
  }
  return 0;
}
