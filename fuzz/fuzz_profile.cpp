// libFuzzer target: profile files (parse_profile), as `--workload-file` and the request key
// "workload_files" read them. Every input must be accepted or refused with UsageError; nothing
// else may escape. Tasks are not generated here: a valid profile may ask for a minute of hashing
// to predict, which is a slow input, not a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "concbench/params.hpp"
#include "concbench/profile.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return -1;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto w = concbench::parse_profile(text, "fuzz.json");
    // An accepted profile's parameters resolve and its metrics are computable.
    const concbench::Params p = concbench::Params::resolve(w->params(), {}, std::string(w->name()));
    (void)w->metrics(p, 2, 1000, concbench::Observations{}).dump();
  } catch (const concbench::UsageError&) {
  }
  return 0;
}
