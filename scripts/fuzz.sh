#!/usr/bin/env bash
# Builds the libFuzzer targets (clang++, AddressSanitizer + UndefinedBehaviorSanitizer) into
# ${CONCBENCH_FUZZ_BUILD_DIR:-build-fuzz} and runs each for RUNS executions (default 1,000,000)
# from its committed seed corpus, fuzz/corpus/<target>/:
#   fuzz_report   report files, as compare and validate read them (then compare and format them)
#   fuzz_params   run requests (config_from_request), --param and --pin
#   fuzz_frames   the process pool's frames, every codec, request and response
#   fuzz_profile  profile files (--workload-file), as parse_profile reads them
# New coverage goes to a scratch corpus, not into the repository. A crash leaves its input as
# build-fuzz/artifacts/<target>-crash-*; once fixed, copy it into fuzz/corpus/<target>/, where
# ctest's fuzz_replay_<target> replays it in every build from then on.
#
# Usage: scripts/fuzz.sh [RUNS] [TARGET...]    e.g. scripts/fuzz.sh 10000 (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(report params frames profile)
case "$runs" in ''|*[!0-9]*) echo "fuzz.sh: RUNS must be a number, got '$runs'" >&2; exit 2 ;; esac
for t in "${targets[@]}"; do
  [ -d "fuzz/corpus/$t" ] || { echo "fuzz.sh: no target '$t' (report, params, frames, profile)" >&2; exit 2; }
done
build=${CONCBENCH_FUZZ_BUILD_DIR:-build-fuzz}
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCONCBENCH_FUZZ=ON -DCONCBENCH_SANITIZE=address,undefined -DCONCBENCH_BUILD_TESTS=OFF \
  -DCONCBENCH_BUILD_PYTHON=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"
mkdir -p "$build/artifacts"
for t in "${targets[@]}"; do
  scratch="$build/corpus-$t"
  mkdir -p "$scratch"
  echo "fuzz.sh: fuzz_$t, $runs runs"
  # -max_len: reports are the largest inputs; 64 KiB covers the seeds with room to grow.
  "$build/fuzz_$t" -runs="$runs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build/artifacts/$t-" -print_final_stats=1 "$scratch" "fuzz/corpus/$t" \
    2>"$build/fuzz_$t.log" || { tail -40 "$build/fuzz_$t.log" >&2; echo "fuzz.sh: fuzz_$t FOUND A CRASH (see $build/artifacts)" >&2; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/fuzz_$t.log" | tr '\n' ' '
  echo
done
echo "fuzz.sh: no findings"
