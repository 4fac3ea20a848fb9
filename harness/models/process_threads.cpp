// process_threads: "multithreading per multiprocess". P worker processes (--workers), each running
// threads_per_process threads behind that process's own emulated GIL (gil.hpp), as a
// multiprocessing pool whose workers each run a ThreadPoolExecutor would. It is process_pool
// (process_pool.cpp) with threaded workers: the same spawn/fork start-up, wire format, codecs,
// shared-memory transport, fault handling and child-CPU accounting. Inside a worker a reader
// thread decodes requests (outside the GIL), the task threads take them from one queue and run them
// with the GIL, and a writer thread sends responses in request order (process_worker.cpp).
#include "process_pool.hpp"

namespace concbench {

ModelInfo process_threads_model_info() {
  std::vector<ParamSpec> params = process_pool_params();
  params.push_back(ParamSpec::integer(
      "threads_per_process", "threads in each worker process, behind its one GIL", 2, 1, 256));
  params.push_back(ParamSpec::integer("switch_interval_us", "each process's GIL switch interval",
                                      5000, 1, 10'000'000));
  params.push_back(ParamSpec::choice(
      "interpreter_cost",
      "what the threads' Python-level work costs: measured from the default GIL policy's CPython "
      "when installed (else its default), or the default",
      "measured", {"measured", "default"}));
  ModelInfo info{"process_threads",
                 "P worker processes (--workers), each with threads_per_process threads behind "
                 "its own emulated GIL",
                 std::move(params),
                 false,
                 [] { return make_process_pool(true); },
                 validate_process_pool,
                 /*separate_processes=*/true};
  // A worker holds up to threads_per_process tasks at once; the field is static, so the bound on
  // sleeps uses the parameter's maximum (looser than the exact T, never wrongly strict).
  info.in_flight_per_worker = 256;
  info.latency_means =
      "round trip: from sending the task to its result back in the parent, encoding, the "
      "worker's queue, its GIL and in-order response (behind slower tasks sent earlier) included";
  return info;
}

}  // namespace concbench
