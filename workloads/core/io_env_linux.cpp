// The echo server and scratch file behind IO steps (Linux: epoll, socketpair, O_TMPFILE).
//
// Threads: clients call pipe_fd()/tcp_fd()/scratch_fd() from any worker; the server thread owns
// every server-side connection's buffers. Client-created connections are published to the server
// thread by epoll_ctl(EPOLL_CTL_ADD), a syscall, which orders the Conn's construction before the
// server can see it. `mu` guards the maps of client descriptors and the scratch file; it is never
// held while blocking on IO.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "concbench/checksum.hpp"
#include "concbench/io_env.hpp"

namespace concbench {
namespace {

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throw_errno("fcntl(O_NONBLOCK)");
}

void set_nodelay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
    throw_errno("setsockopt(TCP_NODELAY)");
}

// The seed of the scratch file's contents; the file_read step's checksum depends on it.
constexpr uint64_t kScratchSeed = 0x5c7a7c4f11e5eedULL;

}  // namespace

struct IoEnv::Impl {
  struct Conn {
    int fd = -1;
    std::vector<char> out;  // bytes read but not yet written back
    size_t out_off = 0;
    bool want_out = false;
  };

  const pid_t owner_pid = getpid();
  int epfd = -1;
  int stopfd = -1;
  int listenfd = -1;
  uint16_t port = 0;
  std::thread server;
  std::atomic<uint64_t> echoed{0};

  std::mutex mu;
  std::map<int, int> pipe_clients;  // worker -> client fd
  std::map<int, int> tcp_clients;
  std::vector<std::unique_ptr<Conn>> conns;  // server-side ends; freed after the server stops
  int scratch = -1;
  uint64_t scratch_size = 0;

  Impl() {
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) throw_errno("epoll_create1");
    stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stopfd < 0) throw_errno("eventfd");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // nullptr marks the stop event
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, stopfd, &ev) < 0) throw_errno("epoll_ctl(stop)");
    server = std::thread([this] { serve(); });
  }

  ~Impl() {
    uint64_t one = 1;
    if (write(stopfd, &one, sizeof one) < 0) {
      // An eventfd write only fails on overflow, which one write cannot cause.
    }
    if (server.joinable()) server.join();
    for (auto& c : conns) close(c->fd);
    for (auto& [w, fd] : pipe_clients) close(fd);
    for (auto& [w, fd] : tcp_clients) close(fd);
    if (listenfd >= 0) close(listenfd);
    if (scratch >= 0) close(scratch);
    close(stopfd);
    close(epfd);
  }

  Conn* add_server_conn(int fd) {  // caller holds mu
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    Conn* raw = c.get();
    conns.push_back(std::move(c));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = raw;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) throw_errno("epoll_ctl(conn)");
    return raw;
  }

  void start_listener() {  // caller holds mu
    listenfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listenfd < 0) throw_errno("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(listenfd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) throw_errno("bind");
    if (listen(listenfd, 128) < 0) throw_errno("listen");
    socklen_t len = sizeof a;
    if (getsockname(listenfd, reinterpret_cast<sockaddr*>(&a), &len) < 0)
      throw_errno("getsockname");
    port = ntohs(a.sin_port);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &listenfd;  // the listener is told apart by its address
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listenfd, &ev) < 0) throw_errno("epoll_ctl(listen)");
  }

  void flush(Conn& c) {
    while (c.out_off < c.out.size()) {
      ssize_t n = ::write(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off);
      if (n > 0) {
        c.out_off += static_cast<size_t>(n);
        echoed.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        break;  // EAGAIN (peer not reading yet) or a closed peer
      }
    }
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
    }
    bool want = !c.out.empty();
    if (want != c.want_out) {
      // Stop reading while output is pending, so a client that writes without reading gets
      // back-pressure instead of growing our buffer without bound.
      epoll_event ev{};
      ev.events = want ? EPOLLOUT : EPOLLIN;
      ev.data.ptr = &c;
      epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev);
      c.want_out = want;
    }
  }

  void serve() {
    std::vector<std::unique_ptr<Conn>> accepted;  // server-thread-owned TCP connections
    std::vector<epoll_event> events(64);
    char buf[64 * 1024];
    for (;;) {
      int n = epoll_wait(epfd, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < n; ++i) {
        void* tag = events[i].data.ptr;
        if (tag == nullptr) {
          for (auto& c : accepted) close(c->fd);
          return;
        }
        if (tag == &listenfd) {
          for (;;) {
            int fd = accept4(listenfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) break;
            try {
              set_nodelay(fd);
            } catch (const std::system_error&) {
              // Nagle only adds latency; the echo still works without TCP_NODELAY.
            }
            auto c = std::make_unique<Conn>();
            c->fd = fd;
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.ptr = c.get();
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0) {
              accepted.push_back(std::move(c));
            } else {
              close(fd);
            }
          }
          continue;
        }
        Conn& c = *static_cast<Conn*>(tag);
        if (c.want_out) {
          flush(c);
          continue;
        }
        ssize_t r = ::read(c.fd, buf, sizeof buf);
        if (r > 0) {
          c.out.insert(c.out.end(), buf, buf + r);
          flush(c);
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);  // peer closed: forget it
        }
      }
    }
  }
};

IoEnv::IoEnv() : impl_(std::make_unique<Impl>()) {}

IoEnv::~IoEnv() {
  // A forked child's copy is leaked, not stopped: its eventfd and epoll instance are the
  // parent's own, and the server thread it would join runs only in the parent.
  if (impl_->owner_pid != getpid()) (void)impl_.release();
}

int IoEnv::pipe_fd(int worker) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->pipe_clients.find(worker);
  if (it != impl_->pipe_clients.end()) return it->second;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) throw_errno("socketpair");
  set_nonblocking(sv[0]);
  set_nonblocking(sv[1]);
  impl_->add_server_conn(sv[1]);
  impl_->pipe_clients[worker] = sv[0];
  return sv[0];
}

int IoEnv::tcp_fd(int worker) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->tcp_clients.find(worker);
  if (it != impl_->tcp_clients.end()) return it->second;
  if (impl_->listenfd < 0) impl_->start_listener();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(impl_->port);
  // A loopback connect completes from the listen backlog, before the server thread accepts.
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    throw_errno("connect(loopback)");
  }
  set_nodelay(fd);
  set_nonblocking(fd);
  impl_->tcp_clients[worker] = fd;
  return fd;
}

int IoEnv::scratch_fd(uint64_t bytes) {
  std::lock_guard lock(impl_->mu);
  if (impl_->scratch < 0) {
    // A real file on a real filesystem, so reads go through the page cache as a program's would.
    impl_->scratch = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (impl_->scratch < 0) {
      char path[] = "/tmp/concbench-scratch-XXXXXX";
      impl_->scratch = mkostemp(path, O_CLOEXEC);
      if (impl_->scratch < 0) throw_errno("mkostemp");
      unlink(path);
    }
  }
  if (bytes > impl_->scratch_size) {
    std::vector<std::byte> data(bytes);
    fill_bytes(data, kScratchSeed);
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n =
          pwrite(impl_->scratch, data.data() + off, data.size() - off, static_cast<off_t>(off));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("pwrite(scratch)");
      }
      off += static_cast<size_t>(n);
    }
    impl_->scratch_size = bytes;
  }
  return impl_->scratch;
}

void IoEnv::begin_batch() {
  // Relaxed: workers are started (or woken) after this, and that hand-off orders it.
  counter_.store(0, std::memory_order_relaxed);
  stop_.store(false, std::memory_order_relaxed);
  companions_.store(0, std::memory_order_relaxed);
  std::lock_guard lock(obs_mu_);
  rtt_.clear();
  one_way_.clear();
  spins_.clear();
  companions_seen_ = 0;
  echo_work_[0] = echo_work_[1] = -1;
}

Observations IoEnv::end_batch() {
  Observations o;
  o.shared_counter = counter_.load(std::memory_order_relaxed);
  std::lock_guard lock(obs_mu_);
  o.rtt_ns = std::move(rtt_);
  rtt_.clear();
  o.one_way_ns = std::move(one_way_);
  one_way_.clear();
  o.companions_started = companions_seen_;
  o.responder_work_ns = echo_work_[0];
  o.client_work_ns = echo_work_[1];
  o.spins = std::move(spins_);
  spins_.clear();
  return o;
}

void IoEnv::record_spin(const SpinRecord& r) {
  std::lock_guard lock(obs_mu_);
  spins_.push_back(r);
}

void IoEnv::record_rtts(const std::vector<uint64_t>& samples) {
  std::lock_guard lock(obs_mu_);  // also publishes companions_seen_ to end_batch()
  rtt_.insert(rtt_.end(), samples.begin(), samples.end());
}

void IoEnv::record_one_way(const std::vector<uint64_t>& samples) {
  std::lock_guard lock(obs_mu_);
  one_way_.insert(one_way_.end(), samples.begin(), samples.end());
}

std::vector<uint64_t>& IoEnv::worker_buffer(int worker) {
  std::lock_guard lock(obs_mu_);
  const auto w = static_cast<size_t>(worker);
  if (buffers_.size() <= w) buffers_.resize(w + 1);
  if (!buffers_[w]) buffers_[w] = std::make_unique<std::vector<uint64_t>>();
  return *buffers_[w];
}

uint64_t IoEnv::bytes_echoed() const {
  return impl_->echoed.load(std::memory_order_relaxed);
}

uint64_t scratch_file_seed() {
  return kScratchSeed;
}

}  // namespace concbench
