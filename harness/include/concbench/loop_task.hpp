// A lean C++20 coroutine task for an Asio event loop: what the async models run every task as.
//
// Why not asio::awaitable and co_spawn: co_spawn builds an "awaitable thread" per spawn (an
// entry-point frame, two posts, type-erased and work-tracked executors) and costs about 190 ns
// per task on the reference VM, which is the whole budget for matching asyncio's per-task cost
// at a twentieth. A LoopTask is one frame and one post: spawn() queues the first resumption on
// the executor, awaiting another LoopTask is a symmetric transfer (no trip through the loop),
// and Asio operations are awaited with the `use_loop_task` completion token. bench/micro
// bm_async.cpp measures both.
//
// Rules: a LoopTask starts only when awaited or spawned; an awaited task's exception reaches
// its awaiter; a spawned task's exception goes to the callback given to spawn(). Handlers run
// on the executor of the Asio object that completes them, so a task resumes on a thread that
// runs the loop (under several loop threads, any of them, one at a time).
//
// Ownership: a spawned task's frame owns the frames it awaits (through the LoopTask temporary
// it awaits). While a chain is suspended, the pending resumption (a ResumeHandle inside an Asio
// handler) owns the chain: if the handler is destroyed without running (its io_context was
// stopped and destroyed), it destroys the spawned root, and with it every frame of the chain.
#pragma once

#include <asio/async_result.hpp>
#include <asio/post.hpp>
#include <coroutine>
#include <exception>
#include <optional>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

namespace concbench {

template <class T = void>
class LoopTask;

namespace detail {

// Called with the task's escaped exception (null when it completed normally), then the frame
// is destroyed.
using SpawnDone = void (*)(void* ctx, std::exception_ptr error);

struct LoopPromiseBase {
  std::coroutine_handle<> continuation;  // the awaiting task; null when spawned
  std::coroutine_handle<> root;          // the spawned task this one runs under, if any
  std::exception_ptr error;
  SpawnDone on_done = nullptr;
  void* done_ctx = nullptr;

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      LoopPromiseBase& p = h.promise();
      if (p.continuation) return p.continuation;  // symmetric transfer back to the awaiter
      // Spawned: nobody will read the result, so report and free the frame here.
      const SpawnDone done = p.on_done;
      void* ctx = p.done_ctx;
      std::exception_ptr error = std::move(p.error);
      h.destroy();
      if (done) done(ctx, std::move(error));
      return std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  std::suspend_always initial_suspend() noexcept { return {}; }
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }
};

template <class T>
struct LoopPromise : LoopPromiseBase {
  std::optional<T> value;
  LoopTask<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
};

template <>
struct LoopPromise<void> : LoopPromiseBase {
  LoopTask<void> get_return_object() noexcept;
  void return_void() noexcept {}
};

// The right to resume a suspended task: resume() once, or on destruction destroy its chain
// from the root. Move-only, so exactly one copy is ever live inside Asio's handler.
class ResumeHandle {
 public:
  ResumeHandle(std::coroutine_handle<> h, std::coroutine_handle<> root) noexcept
      : h_(h), root_(root) {}
  ResumeHandle(ResumeHandle&& o) noexcept
      : h_(std::exchange(o.h_, {})), root_(std::exchange(o.root_, {})) {}
  ResumeHandle& operator=(ResumeHandle&&) = delete;
  ~ResumeHandle() {
    if (root_) root_.destroy();
  }
  void resume() {
    root_ = {};
    std::exchange(h_, {}).resume();
  }

 private:
  std::coroutine_handle<> h_;
  std::coroutine_handle<> root_;
};

// The root to record for a task suspended in `h`: its promise's, when it is a LoopTask.
template <class P>
std::coroutine_handle<> root_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (std::is_base_of_v<LoopPromiseBase, P>)
    return h.promise().root;
  else
    return {};
}

}  // namespace detail

template <class T>
class [[nodiscard]] LoopTask {
 public:
  using promise_type = detail::LoopPromise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  LoopTask(LoopTask&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  LoopTask& operator=(LoopTask&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  ~LoopTask() {
    if (h_) h_.destroy();
  }

  // Awaiting runs the task now, on this thread, and resumes the awaiter when it is done.
  class Awaiter {
   public:
    explicit Awaiter(Handle h) noexcept : h_(h) {}
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> awaiting) noexcept {
      h_.promise().continuation = awaiting;
      h_.promise().root = detail::root_of(awaiting);
      return h_;  // symmetric transfer: no trip through the loop
    }
    T await_resume() {
      if (h_.promise().error) std::rethrow_exception(h_.promise().error);
      if constexpr (!std::is_void_v<T>) return std::move(*h_.promise().value);
    }

   private:
    Handle h_;
  };
  Awaiter operator co_await() && noexcept { return Awaiter{h_}; }

  // Gives up ownership of the frame (spawn() takes it over).
  Handle release() noexcept { return std::exchange(h_, {}); }

 private:
  friend struct detail::LoopPromise<T>;
  explicit LoopTask(Handle h) noexcept : h_(h) {}
  Handle h_;
};

// Hands the frame over to the loop: its first resumption is posted to `ex`, and the frame frees
// itself when it finishes, after calling done(ctx, error) if done is set.
template <class Executor>
void spawn(const Executor& ex, LoopTask<void>&& task, detail::SpawnDone done = nullptr,
           void* ctx = nullptr) {
  auto h = task.release();
  h.promise().on_done = done;
  h.promise().done_ctx = ctx;
  h.promise().root = h;
  asio::post(ex, [r = detail::ResumeHandle(h, h)]() mutable { r.resume(); });
}

namespace detail {
template <class T>
LoopTask<T> LoopPromise<T>::get_return_object() noexcept {
  return LoopTask<T>(std::coroutine_handle<LoopPromise<T>>::from_promise(*this));
}
inline LoopTask<void> LoopPromise<void>::get_return_object() noexcept {
  return LoopTask<void>(std::coroutine_handle<LoopPromise<void>>::from_promise(*this));
}
}  // namespace detail

// The completion token that lets a LoopTask await an Asio operation:
//   co_await timer.async_wait(use_loop_task);
//   size_t n = co_await asio::async_read(stream, buffer, use_loop_task);
// An error_code first argument that is set is thrown as std::system_error; the remaining
// arguments are the result (none: void; one: that value; more: a tuple).
struct use_loop_task_t {};
inline constexpr use_loop_task_t use_loop_task{};

namespace detail {

template <class... Args>
struct FirstIsErrorCode : std::false_type {};
template <class First, class... Rest>
struct FirstIsErrorCode<First, Rest...> : std::is_same<std::decay_t<First>, std::error_code> {};

template <class... Args>
struct LoopOpResult {
  using Values = std::tuple<std::decay_t<Args>...>;
  std::optional<Values> values;
};

template <class Initiation, class InitArgs, class... Args>
class LoopOpAwaiter {
 public:
  LoopOpAwaiter(Initiation init, InitArgs args) : init_(std::move(init)), args_(std::move(args)) {}

  bool await_ready() noexcept { return false; }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    // The handler may run on another loop thread before this function returns; nothing here
    // touches the frame after the operation has been started.
    std::apply(
        [&](auto&&... a) {
          std::move(init_)(Handler{this, ResumeHandle(h, root_of(h))},
                           std::forward<decltype(a)>(a)...);
        },
        std::move(args_));
  }
  auto await_resume() {
    auto& v = *result_.values;
    if constexpr (FirstIsErrorCode<Args...>::value) {
      if (std::get<0>(v)) throw std::system_error(std::get<0>(v));
      return rest<1>(v, std::make_index_sequence<sizeof...(Args) - 1>{});
    } else {
      return rest<0>(v, std::make_index_sequence<sizeof...(Args)>{});
    }
  }

 private:
  struct Handler {
    LoopOpAwaiter* self;
    ResumeHandle resume;
    void operator()(Args... a) {
      self->result_.values.emplace(std::move(a)...);
      resume.resume();
    }
  };

  template <size_t Off, class V, size_t... I>
  static auto rest(V& v, std::index_sequence<I...>) {
    if constexpr (sizeof...(I) == 0) {
      return;
    } else if constexpr (sizeof...(I) == 1) {
      return std::move(std::get<Off>(v));
    } else {
      return std::make_tuple(std::move(std::get<Off + I>(v))...);
    }
  }

  Initiation init_;
  InitArgs args_;
  LoopOpResult<Args...> result_;
};

}  // namespace detail
}  // namespace concbench

template <class... Args>
class asio::async_result<concbench::use_loop_task_t, void(Args...)> {
 public:
  template <class Initiation, class... InitArgs>
  static auto initiate(Initiation init, concbench::use_loop_task_t, InitArgs... args) {
    return concbench::detail::LoopOpAwaiter<Initiation, std::tuple<InitArgs...>, Args...>(
        std::move(init), std::tuple<InitArgs...>(std::move(args)...));
  }
};
