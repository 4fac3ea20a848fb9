#!/usr/bin/env bash
# Redraws results/plots/ from the reference reports under results/ (see README, "Findings").
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/plots
plot=(/usr/bin/python3 scripts/plot.py --out-dir "$out")
"${plot[@]}" results/reference/full.json --figures speedup,counters
# The C++ models beside every CPython of the matrix.
"${plot[@]}" results/reference/full.json results/cpython/cpython-*.json \
  --figures latency_under_load,counter_race
"${plot[@]}" results/payload/payload-*.json --figures payload
"${plot[@]}" results/reference/quick-2cpu.json results/reference/quick-1cpu.json \
  --figures cross_machine
# Issue 17's models: subinterpreters on CPython 3.13 beside their C++ prediction, and the C++ ones.
"${plot[@]}" results/models/cpp.json results/models/interpreters-3.13.json --figures speedup
# Where the workers' time went, and the timelines (issue 18).
"${plot[@]}" --formats png results/why/quick.json results/why/cpython.json --figures attribution
/usr/bin/python3 scripts/plot_trace.py results/why/convoy-trace.json --out-dir "$out" --window-ms 40
/usr/bin/python3 scripts/plot_trace.py results/why/process-pool-trace.json --out-dir "$out" \
  --window-ms 20
