// cpu.sha256: each unit hashes a buffer of buffer_bytes with OpenSSL's SHA-256. As hashlib does
// (HASHLIB_GIL_MINSIZE), buffers of 2048 bytes or more are hashed with the GIL released, smaller
// ones with it held; so this workload shows an extension that does, or does not, run in
// parallel behind a GIL. Each unit's digest is written into the next unit's buffer, so no unit
// can be skipped.
#include <openssl/evp.h>

#include <array>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "concbench/checksum.hpp"
#include "concbench/kernels.hpp"
#include "concbench/workload.hpp"

namespace concbench {
namespace {

constexpr uint64_t kGilMinSize = 2048;  // CPython's HASHLIB_GIL_MINSIZE

using Digest = std::array<unsigned char, 32>;

void sha256(const std::vector<std::byte>& data, Digest& out) {
  struct Free {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  // One context per thread, reused: creating one per hash would measure malloc, not SHA-256.
  thread_local std::unique_ptr<EVP_MD_CTX, Free> ctx(EVP_MD_CTX_new());
  unsigned int len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 || len != out.size())
    throw std::runtime_error("OpenSSL SHA-256 failed");
}

// The chained hash both the kernel and the prediction compute; `each` runs around every unit.
template <class Each>
uint64_t chain(uint64_t seed, uint64_t units, uint64_t bytes, Each&& each) {
  std::vector<std::byte> buf(bytes);
  fill_bytes(buf, seed);
  Digest d{};
  uint64_t h = 0;
  for (uint64_t u = 0; u < units; ++u) {
    std::memcpy(buf.data(), d.data(), std::min<size_t>(d.size(), buf.size()));
    each([&] { sha256(buf, d); });
    uint64_t w;
    std::memcpy(&w, d.data(), sizeof w);
    h = fold(h, w);
  }
  return h;
}

class Sha256 final : public Workload {
 public:
  std::string_view name() const override { return "cpu.sha256"; }
  std::string_view description() const override {
    return "SHA-256 of buffer_bytes per unit; >= 2048 bytes hashed with the GIL released";
  }
  std::vector<ParamSpec> params() const override {
    auto p = common_params(16, 0);
    p.push_back(ParamSpec::integer("units", "buffers hashed per task", 256, 1, 1'000'000'000));
    p.push_back(ParamSpec::integer("buffer_bytes", "bytes per buffer", 4096, 1, 1LL << 30));
    return p;
  }
  nlohmann::json metrics(const Params& p, uint64_t tasks_run, uint64_t wall_ns,
                         const Observations&) const override {
    const double bytes = static_cast<double>(p.get_int("units")) *
                         static_cast<double>(p.get_int("buffer_bytes")) *
                         static_cast<double>(tasks_run);
    return {{"bytes_per_s", wall_ns ? bytes * 1e9 / static_cast<double>(wall_ns) : 0.0},
            {"gil_released", p.get_int("buffer_bytes") >= static_cast<int64_t>(kGilMinSize)}};
  }

 protected:
  TaskSet generate(const Params& p, uint64_t seed) const override {
    Step s;
    s.kind = StepKind::cpu;
    s.kernel = kernel_id("sha256");
    s.units = static_cast<uint64_t>(p.get_int("units"));
    s.arg = static_cast<uint64_t>(p.get_int("buffer_bytes"));
    // Predicting means hashing: done once here, outside any timed region.
    return one_step_tasks(p, seed, s, [&](const Task& t) {
      return predict_sha256(step_seed(t.seed, 0), s.units, s.arg);
    });
  }
};

}  // namespace

uint64_t predict_sha256(uint64_t seed, uint64_t units, uint64_t buffer_bytes) {
  return chain(seed, units, buffer_bytes, [](auto&& f) { f(); });
}

uint64_t sha256_kernel(ExecContext& ctx, const KernelArgs& a) {
  const bool release = a.arg >= kGilMinSize;
  return chain(a.seed, a.units, a.arg, [&](auto&& hash) {
    if (release) {
      ctx.blocking(hash);
    } else {
      hash();
    }
    ctx.checkpoint();
  });
}

const Workload& cpu_sha256_workload() {
  static const Sha256 w;
  return w;
}

}  // namespace concbench
