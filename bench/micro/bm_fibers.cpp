// What one switch costs, three ways (the fibers model's against the async models' and the
// thread models'). Each iteration is one round trip: switch to the other side and back. The
// `per_switch` counter is half an iteration's time.
//   Switch_Fiber       a Boost.Context fiber resumed and suspending again (what a fibers task
//                      pays at each IO wait, the loop aside): two full register-set switches
//   Switch_Coroutine   a C++20 coroutine resumed and suspending again (what a LoopTask pays):
//                      a call and a return into a heap frame, no stack switch
//   Switch_OsThreads   two OS threads ping-ponging on a futex, both pinned to one CPU where
//                      sched_setaffinity allows (label "pinned"), so each hand-over is a
//                      kernel context switch rather than a cross-CPU wake-up
#include <benchmark/benchmark.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <thread>
#include <utility>

namespace concbench {
namespace {

namespace bctx = boost::context;

void BM_Switch_Fiber(benchmark::State& state) {
  uint64_t rounds = 0;
  bool stop = false;
  bctx::fiber f(std::allocator_arg, bctx::protected_fixedsize_stack(64 * 1024),
                [&](bctx::fiber&& caller) {
                  while (!stop) {
                    ++rounds;
                    caller = std::move(caller).resume();
                  }
                  return std::move(caller);
                });
  for (auto _ : state) {
    f = std::move(f).resume();
    benchmark::DoNotOptimize(rounds);
  }
  stop = true;
  f = std::move(f).resume();  // lets the body return: the stack is freed cleanly
  state.counters["per_switch"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Switch_Fiber);

// A coroutine that counts and suspends, forever; destroyed from outside.
struct Looper {
  struct promise_type {
    Looper get_return_object() {
      return Looper{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() { std::terminate(); }
  };
  explicit Looper(std::coroutine_handle<promise_type> h) : h(h) {}
  Looper(Looper&& o) noexcept : h(std::exchange(o.h, {})) {}  // clang 14 wants it
  Looper& operator=(Looper&&) = delete;
  ~Looper() {
    if (h) h.destroy();
  }
  std::coroutine_handle<promise_type> h;
};

Looper count_forever(uint64_t* rounds) {
  for (;;) {
    ++*rounds;
    co_await std::suspend_always{};
  }
}

void BM_Switch_Coroutine(benchmark::State& state) {
  uint64_t rounds = 0;
  Looper c = count_forever(&rounds);
  for (auto _ : state) {
    c.h.resume();
    benchmark::DoNotOptimize(rounds);
  }
  state.counters["per_switch"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Switch_Coroutine);

void futex_wait(std::atomic<int>& word, int expected) {
  syscall(SYS_futex, reinterpret_cast<int*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr,
          0);
}
void futex_wake(std::atomic<int>& word) {
  syscall(SYS_futex, reinterpret_cast<int*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

bool pin_to(pthread_t t, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(t, sizeof set, &set) == 0;
}

void BM_Switch_OsThreads(benchmark::State& state) {
  // turn: 0 = the benchmark thread's, 1 = the partner's, 2 = stop.
  std::atomic<int> turn{0};
  cpu_set_t saved;
  const bool have_saved = pthread_getaffinity_np(pthread_self(), sizeof saved, &saved) == 0;
  const int cpu = sched_getcpu();
  bool pinned = cpu >= 0 && pin_to(pthread_self(), cpu);
  std::thread partner([&] {
    for (;;) {
      int t = turn.load(std::memory_order_acquire);
      while (t == 0) {
        futex_wait(turn, 0);
        t = turn.load(std::memory_order_acquire);
      }
      if (t == 2) return;
      turn.store(0, std::memory_order_release);
      futex_wake(turn);
    }
  });
  if (pinned) pinned = pin_to(partner.native_handle(), cpu);
  for (auto _ : state) {
    turn.store(1, std::memory_order_release);
    futex_wake(turn);
    while (turn.load(std::memory_order_acquire) == 1) futex_wait(turn, 1);
  }
  turn.store(2, std::memory_order_release);
  futex_wake(turn);
  partner.join();
  if (have_saved) pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
  state.SetLabel(pinned ? "pinned" : "unpinned");
  state.counters["per_switch"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Switch_OsThreads)->UseRealTime();

}  // namespace
}  // namespace concbench
