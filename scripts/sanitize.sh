#!/usr/bin/env bash
# The sanitizer jobs CI runs (scripts/test.sh calls this after the normal tests):
#   asan   every ctest test (unit, CLI, fuzz replays) built with clang++ under AddressSanitizer
#          and UndefinedBehaviorSanitizer (-fno-sanitize-recover: any report fails its test).
#          The build also carries libFuzzer coverage, so a short fuzz run of each target follows
#          from the same build (FUZZ_RUNS, default 10000; scripts/fuzz.sh does the million).
#   tsan   the model tests (the GIL, the thread pools, the process pool's parent, async and
#          async_mt, every model through the runner) built with g++ under ThreadSanitizer.
# Build trees: build-asan and build-tsan. Suppressions: none (see README, "Faults and bad input").
#
# Usage: scripts/sanitize.sh [asan|tsan|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
case "$what" in asan|tsan|all) ;; *) echo "sanitize.sh: asan, tsan or all, not '$what'" >&2; exit 2 ;; esac
jobs=$(nproc)

if [ "$what" != tsan ]; then
  cmake -S . -B build-asan -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCONCBENCH_SANITIZE=address,undefined -DCONCBENCH_FUZZ=ON >/dev/null
  cmake --build build-asan -j "$jobs" >/dev/null
  echo "sanitize.sh: AddressSanitizer + UndefinedBehaviorSanitizer, every test"
  # exitcode=66 tells a sanitizer report from a failed assertion. The criterion is the
  # sanitizers': no report, no crash. Tests that fail are run once more; timing assertions
  # (calibrated for uninstrumented code, about twice as fast) that still miss are listed, and
  # checked in the normal build.
  export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:exitcode=66
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=66
  rm -f build-asan/ctest-*.log
  # Jython's run is left out: the JVM it times is not instrumented, and the C++ side it drives
  # is the same code CPython's run (ForeignPython.CPython311Verifies) exercises here.
  (cd build-asan && ctest -j "$jobs" --timeout 900 -E 'ForeignPython.Jython' >ctest.log 2>&1 ||
    { cp Testing/Temporary/LastTest.log ctest-first-LastTest.log
      ctest --rerun-failed --output-on-failure --timeout 900 >ctest-rerun.log 2>&1; }) || true
  if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer" \
      build-asan/Testing/Temporary/LastTest.log build-asan/ctest-*.log 2>/dev/null ||
     grep -qE "\((SEGFAULT|Subprocess aborted|Child aborted|Timeout|Exception)\)" build-asan/ctest*.log; then
    grep -hE -B5 -A30 "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" \
      build-asan/Testing/Temporary/LastTest.log build-asan/ctest-*.log | head -80 >&2
    grep -hE "\((SEGFAULT|Subprocess aborted|Child aborted|Timeout|Exception)\)" build-asan/ctest*.log >&2 || true
    echo "sanitize.sh: ASan/UBSan reported a problem" >&2
    exit 1
  fi
  grep -h "tests passed" build-asan/ctest.log | sed 's/^/sanitize.sh: /'
  if [ -f build-asan/ctest-rerun.log ]; then
    missed=$(grep -E "^\s+[0-9]+ - " build-asan/ctest-rerun.log | sed 's/^ *[0-9]* - //' | tr '\n' ' ' || true)
    echo "sanitize.sh: rerun: ${missed:-every failed test passed}${missed:+(timing assertions missed at ASan speed)}"
  fi
  # The fibers tests skip themselves under detect_stack_use_after_return=1 (ASan's fake stacks
  # and Boost.Context's fcontext stack switch do not mix; see tests/test_fibers.cpp): run them
  # here with it off, with every other check as above.
  ASAN_OPTIONS=${ASAN_OPTIONS/detect_stack_use_after_return=1/detect_stack_use_after_return=0} \
    build-asan/test_fibers --gtest_brief=1 >build-asan/test_fibers-no-fake-stack.log 2>&1 ||
    { tail -40 build-asan/test_fibers-no-fake-stack.log >&2
      echo "sanitize.sh: test_fibers failed under ASan/UBSan (fake stacks off)" >&2; exit 1; }
  echo "sanitize.sh: test_fibers under ASan/UBSan with detect_stack_use_after_return=0: passed"
  runs=${FUZZ_RUNS:-10000}
  for t in report params frames profile; do
    mkdir -p "build-asan/corpus-$t"
    build-asan/fuzz_$t -runs="$runs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="build-asan/$t-" "build-asan/corpus-$t" "fuzz/corpus/$t" \
      2>"build-asan/fuzz_$t.log" || { tail -30 "build-asan/fuzz_$t.log" >&2; exit 1; }
    echo "sanitize.sh: fuzz_$t: $runs runs, nothing found"
  done
fi

if [ "$what" != asan ]; then
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONCBENCH_SANITIZE=thread >/dev/null
  tsan_tests=(test_gil test_thread_pool test_process_pool test_async test_models)
  cmake --build build-tsan -j "$jobs" --target bench_runner "${tsan_tests[@]}" >/dev/null
  echo "sanitize.sh: ThreadSanitizer, model tests"
  for t in "${tsan_tests[@]}"; do
    # The criterion is ThreadSanitizer's: no report (exit 66 on the first one) and no crash or
    # hang. Assertions on timing (a forced switch within 5 ms, a ratio of speeds) are calibrated
    # for uninstrumented code, which runs 5 to 15 times faster; they are checked in the normal
    # build, and here only listed.
    rc=0
    TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1 timeout 900 "build-tsan/$t" \
      --gtest_brief=1 >"build-tsan/$t.log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ] || grep -q "ThreadSanitizer" "build-tsan/$t.log"; then
      tail -60 "build-tsan/$t.log" >&2
      echo "sanitize.sh: $t under TSan: exit $rc" >&2
      exit 1
    fi
    slow=$(grep -E '^\[  FAILED  \] [A-Za-z]' "build-tsan/$t.log" | sed 's/^\[  FAILED  \] //; s/ (.*//' | sort -u | tr '\n' ' ' || true)
    echo "sanitize.sh: $t: no ThreadSanitizer report${slow:+ (timing assertions missed at TSan speed: $slow)}"
  done
fi
echo "sanitize.sh: no sanitizer reports"
