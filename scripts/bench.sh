#!/usr/bin/env bash
# The main job: install what is missing, build, and run bench_runner on the default (quick)
# suite. Prints the summary table and writes a JSON report under results/. Any arguments are
# passed to `bench_runner run` (e.g. --suite full, --workloads cpu.spin).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
mkdir -p results
exec "${CONCBENCH_BUILD_DIR:-build}/bench_runner" run "$@"
