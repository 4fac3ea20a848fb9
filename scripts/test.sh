#!/usr/bin/env bash
# Every test: install what is missing, build, then run the GoogleTest suites under ctest and the
# Python package's pytest suites against the module the build made for /usr/bin/python3.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
build_dir=$(cd "${CONCBENCH_BUILD_DIR:-build}" && pwd)
(cd "$build_dir" && ctest --output-on-failure -j "$(nproc)" --timeout 600)
PYTHONPATH="$build_dir/python" CONCBENCH_BUILD_DIR="$build_dir" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider python_bindings/tests
# The pipeline end to end: smoke run, validate, compare with the committed baseline, the gate.
CONCBENCH_BUILD_DIR="$build_dir" bash scripts/smoke_gate.sh
# Sanitizers: ASan+UBSan on every test plus a short fuzz run, TSan on the model tests.
bash scripts/sanitize.sh
