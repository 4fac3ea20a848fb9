#!/usr/bin/env bash
# Every test: install what is missing, build, then run the GoogleTest suites under ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${CONCBENCH_BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" --timeout 600
