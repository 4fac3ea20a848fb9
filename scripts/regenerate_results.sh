#!/usr/bin/env bash
# Regenerates the results/ files that README.md's figures come from, at a committed revision:
# a tree with uncommitted changes outside results/ is refused, so every report's
# context.git_revision names code anyone can check out. scripts/findings.py then reprints the
# figures (and `scripts/findings.py --write README.md` puts them into the README).
#
#   bash scripts/regenerate_results.sh [STEP ...]
#
# Steps, in the order "all" runs them (about an hour on a 2-vCPU VM; nothing else should run
# meanwhile, since every figure is a timing):
#   micro        dispatch per index against oneTBB and OpenMP   results/micro/dispatch.json
#   quick        the quick suite on every CPU and under taskset -c 0, and their comparison
#   backtoback   the same small matrix twice, compared            results/reference/backtoback-*
#   compare      only the two comparisons above, from the reports already there
#   smoke        the smoke baseline the CI gate compares with     results/smoke-baseline.json
#   payload      the payload sweep, from bench_runner and Python  results/payload/
#   mixed        the CPU/IO mix sweep                             results/mixed_sweep.json
#   asyncio      async against CPython's asyncio                  results/async_vs_asyncio.json
#   multiprocessing  process_pool against multiprocessing         results/process_pool_vs_cpython.json
#   gil          gil_threads against CPython's GIL                results/gil_validation.json
#   full         the full suite                                   results/reference/full.json
#   cpython      the CPython version matrix                       results/cpython/
#   own          "Your own workload": a Python function, a profile file, a plugin, with their
#                verdicts                                         results/own/
#   ownverdict   only the verdicts of the above, from the reports already there
#   models       subinterpreters (CPython 3.13 and the C++ emulation), processes of threads,
#                fibers, gevent, cpu.refcount, switch costs          results/models/
#   why          where each worker's time went, and timelines: a quick suite with its
#                attribution, the cpython.* threads and loop, the convoy and a process pool
#                traced                                              results/why/
#   plots        results/plots/ redrawn from the above
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "$(git status --porcelain --untracked-files=no -- . ':(exclude)results')" ]; then
  echo "regenerate_results: the tree has uncommitted changes outside results/; commit first" >&2
  exit 2
fi
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(all)
if [ "${steps[0]}" = all ]; then
  steps=(micro quick backtoback smoke payload mixed asyncio multiprocessing gil full cpython own
    models why plots)
fi
for s in "${steps[@]}"; do
  case "$s" in
    micro | quick | backtoback | compare | smoke | payload | mixed | asyncio | multiprocessing | gil | \
      full | cpython | own | ownverdict | models | why | plots) ;;
    *)
      echo "regenerate_results: unknown step '$s' (see the header of this script)" >&2
      exit 2
      ;;
  esac
done

bash scripts/setup.sh
bash scripts/build.sh
runner=build/bench_runner
py=/usr/bin/python3

# A step whose command reports a failure (a cell that did not verify, a missed target) is
# named at the end and makes the exit status 1; the other steps still run.
failed=()
note() {
  local rc=0
  "$@" >/dev/null || rc=$?
  if [ $rc -ne 0 ]; then
    echo "regenerate_results: exit $rc from: $*" >&2
    failed+=("$*")
  fi
}

# Reports are stored without indentation (the same content, a third of the size).
compact() {
  "$py" - "$@" <<'PY'
import json, os, sys
for path in sys.argv[1:]:
    with open(path) as f:
        data = json.load(f)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    os.replace(tmp, path)
PY
}

# compare is deterministic (a seeded bootstrap): rerunning it on the same reports gives the same
# file, so it can follow a change to compare without measuring again.
compare_quick() {
  "$runner" compare --normalize --format md results/reference/quick-2cpu.json \
    results/reference/quick-1cpu.json >results/reference/compare-2cpu-vs-1cpu.md
  "$runner" compare --normalize --format json results/reference/quick-2cpu.json \
    results/reference/quick-1cpu.json >results/reference/compare-2cpu-vs-1cpu.json
}
compare_backtoback() {
  "$runner" compare --normalize --format json results/reference/backtoback-a.json \
    results/reference/backtoback-b.json >results/reference/backtoback-compare.json
}

verdict_own() {
  for r in arith native handler plugin; do
    "$runner" verdict --format json results/own/$r.json >results/own/$r.verdict.json
  done
}

for s in "${steps[@]}"; do
  echo "regenerate_results: $s" >&2
  case "$s" in
    micro)
      mkdir -p results/micro
      note "$runner" micro --benchmark_filter='Dispatch_' --benchmark_repetitions=5 \
        --benchmark_report_aggregates_only=true --benchmark_out=results/micro/dispatch.json \
        --benchmark_out_format=json
      ;;
    quick)
      note "$runner" run --suite quick --overwrite --out results/reference/quick-2cpu.json
      note taskset -c 0 "$runner" run --suite quick --overwrite \
        --out results/reference/quick-1cpu.json
      compact results/reference/quick-2cpu.json results/reference/quick-1cpu.json
      compare_quick
      ;;
    backtoback)
      # Interleaved, so a drift of the machine spreads over every cell of both runs.
      matrix=(run --workloads cpu.spin,cpu.sha256,io.sleep,overhead.noop,mixed.cpu_io
        --models serial,free_threads,gil_threads,thread_pool,process_pool,async --workers 1,2
        --repetitions 5 --min-time 0.1 --interleave --overwrite)
      note "$runner" "${matrix[@]}" --out results/reference/backtoback-a.json
      note "$runner" "${matrix[@]}" --out results/reference/backtoback-b.json
      compact results/reference/backtoback-a.json results/reference/backtoback-b.json
      compare_backtoback
      ;;
    compare)
      compare_quick
      compare_backtoback
      ;;
    smoke)
      note "$runner" run --suite smoke --repetitions 4 --overwrite --out results/smoke-baseline.json
      ;;
    payload) note "$py" scripts/sweep_payload.py ;;
    mixed) note "$py" scripts/sweep_mixed.py ;;
    asyncio) note "$py" scripts/compare_asyncio.py ;;
    multiprocessing) note "$py" scripts/compare_multiprocessing.py ;;
    gil) note "$py" scripts/validate_gil.py ;;
    full)
      note "$runner" run --suite full --overwrite --out results/reference/full.json
      compact results/reference/full.json
      ;;
    cpython)
      note "$py" scripts/python_matrix.py
      compact results/cpython/cpython-*.json
      ;;
    own)
      # README's "Your own workload": each way in, run as a user would, and its verdict (the
      # verdict is deterministic: verdict_own alone redoes it after a change to the verdict).
      mkdir -p results/own
      note env -C examples/python PYTHONPATH="$PWD/build/python" "$py" -m concbench bench \
        own:arith --inputs-fn own:sizes --tasks 16 --workers 1,2 --repetitions 5 --overwrite \
        --models cpython.serial,cpython.threading,cpython.process_pool \
        --out "$PWD/results/own/arith.json"
      note env -C examples/python PYTHONPATH="$PWD/build/python" "$py" -m concbench bench \
        own:native --inputs-fn own:units --tasks 16 --workers 1,2 --repetitions 5 --overwrite \
        --models cpython.serial,cpython.threading,cpython.process_pool \
        --out "$PWD/results/own/native.json"
      note "$runner" run --workload-file examples/profiles/handler.json --workers 1,2 \
        --repetitions 5 --overwrite --out results/own/handler.json
      note "$runner" run --plugin build/examples/plugin/libconcbench_example_plugin.so \
        --workloads example.collatz --workers 1,2 --repetitions 5 --min-time 0.2 --overwrite \
        --out results/own/plugin.json
      compact results/own/arith.json results/own/native.json results/own/handler.json \
        results/own/plugin.json
      verdict_own
      ;;
    ownverdict) verdict_own ;;
    models)
      note "$py" scripts/models_matrix.py
      compact results/models/*.json
      note "$py" scripts/plot.py --out-dir results/plots results/models/cpp.json \
        results/models/interpreters-3.13.json --figures speedup
      ;;
    why)
      mkdir -p results/why
      note "$runner" run --suite quick --repetitions 3 --overwrite --out results/why/quick.json
      note env PYTHONPATH="$PWD/build/python" "$py" -m concbench run \
        --workloads cpu.spin,io.sleep,latency.echo_under_load \
        --models cpython.serial,cpython.threading,cpython.thread_pool,cpython.asyncio,cpython.asyncio_to_thread,cpython.gevent,cpython.process_pool,cpython.process_threads \
        --workers 1,2 \
        --repetitions 3 --overwrite --out results/why/cpython.json
      # The convoy behind the GIL: one responder beside 1 and 2 CPU-bound threads.
      note "$runner" run --workloads latency.echo_under_load --models gil_threads \
        --param cpu_workers=1,2 --workers 2,3 --repetitions 3 --overwrite \
        --out results/why/convoy.json --trace results/why/convoy-trace.json
      note "$runner" run --workloads cpu.spin --models process_pool --workers 2 \
        --param payload_bytes=65536 --repetitions 3 --overwrite \
        --out results/why/process-pool.json --trace results/why/process-pool-trace.json
      compact results/why/quick.json results/why/cpython.json results/why/convoy.json \
        results/why/process-pool.json
      note "$py" scripts/plot.py --out-dir results/plots --formats png results/why/quick.json \
        results/why/cpython.json --figures attribution
      note "$py" scripts/plot_trace.py results/why/convoy-trace.json --out-dir results/plots \
        --window-ms 40
      note "$py" scripts/plot_trace.py results/why/process-pool-trace.json \
        --out-dir results/plots --window-ms 20
      ;;
    plots) bash scripts/plot_results.sh ;;
  esac
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "regenerate_results: ${#failed[@]} command(s) reported failures (above)" >&2
  exit 1
fi
echo "regenerate_results: done; scripts/findings.py prints the figures" >&2
