// `attnscope serve`'s HTTP side (serve/serve.h) on cpp-httplib. Four kinds of threads:
//   - one watcher (epoll) holds every connection no thread is answering: newly accepted ones,
//     ones whose request is still arriving (the watcher reads the bytes as they come and frames
//     them, serve/request.h, so a slow sender never holds a thread), kept-alive ones between
//     requests, and answered ones lingering until the peer closes. A request not whole within
//     --request-timeout gets 408; a refusal that needs no model (413 as soon as the head says so,
//     415 for a compressed body, 431, 400 for bad framing) is answered from the watcher;
//   - connection threads (httplib's task queue, ours: bounded) are given connections with a whole
//     request in memory; they parse and answer it (and any whole ones pipelined behind it), then
//     give the connection back to the watcher. Beyond the queue, a rejecting thread answers 503;
//   - one parking thread takes what httplib's accept loop hands over to the watcher (no queue slot);
//   - inference workers (a fixed pool, bounded queue: 503 with Retry-After when full) run the
//     Explorer, which shares the model's weights read-only.
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <list>
#include <unordered_map>
#include <future>
#include <iostream>
#include <filesystem>
#include <fstream>
#include <malloc.h>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <ATen/Parallel.h>

#include "core/core.h"
#include "core/process.h"
#include "serve/request.h"
#include "serve/serve.h"
#include "viz/viz.h"

namespace attnscope::serve {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// What the current thread does with a connection it is given: serve it, answer 503 (beyond the
// queue), or park it with the watcher (newly accepted; nothing read yet).
enum class Role { kServe, kReject, kPark };
thread_local Role t_role = Role::kServe;
thread_local bool t_accepting = true;  // httplib's accept loop; the watcher and pool threads clear it

// JSON text of an answer or an error; bytes of a split UTF-8 character (a byte-level BPE token may
// hold half of an emoji; a message quotes a cut input) become U+FFFD rather than an exception.
std::string to_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

// The reason phrase of the statuses the server answers outside httplib's routing.
const char* reason(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

// A connection's state between the threads that handle it: the bytes of its next request(s) read
// so far, the deadline of what it is waiting for, and how many requests it has had answered.
// Bytes held by all connections count against one budget (`held`).
struct Conn {
  Conn(int fd_, std::atomic<int64_t>* held_) : fd(fd_), held(held_) {}
  ~Conn() { held->fetch_sub(counted); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  void count() {  // after buf changed
    held->fetch_add(static_cast<int64_t>(buf.size()) - counted);
    counted = static_cast<int64_t>(buf.size());
  }
  int fd;
  std::atomic<int64_t>* held;
  int64_t counted = 0;
  std::string buf;
  std::chrono::steady_clock::time_point deadline;
  size_t served = 0;        // requests answered on the connection so far
  bool continued = false;   // "100 Continue" sent for the request in buf
  bool draining = false;    // answered and half-closed: what arrives is discarded until the peer closes
  bool peer_closed = false; // the peer shut its side after sending
};
using ConnPtr = std::shared_ptr<Conn>;
using Clock = std::chrono::steady_clock;

// One request as httplib's parser reads it: its bytes, read from the socket beforehand (so a slow
// sender never holds a connection thread); the response goes to the socket, each wait for the
// socket to take more bounded by `write_ms` and the whole response by `deadline`.
class RequestStream : public httplib::Stream {
 public:
  RequestStream(int fd, const char* data, size_t size, int write_ms, bool continued, Clock::time_point deadline)
      : fd_(fd), data_(data), size_(size), write_ms_(write_ms), swallow_continue_(continued), deadline_(deadline) {}
  bool is_readable() const override { return off_ < size_; }
  bool is_writable() const override { return wait_writable(); }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, size_ - off_);
    std::memcpy(ptr, data_ + off_, n);
    off_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    // the watcher already sent "100 Continue" (before the body arrived); httplib would send it again
    static constexpr char kContinue[] = "HTTP/1.1 100 ";
    if (swallow_continue_ && size >= sizeof kContinue - 1 && std::memcmp(ptr, kContinue, sizeof kContinue - 1) == 0) {
      swallow_continue_ = false;
      return static_cast<ssize_t>(size);
    }
    // all of it or nothing (a short count is not something every caller in httplib handles)
    size_t sent = 0;
    while (sent < size) {
      if (!wait_writable()) return -1;
      const ssize_t n = ::send(fd_, ptr + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n <= 0) return -1;
      sent += static_cast<size_t>(n);
    }
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  socket_t socket() const override { return fd_; }

 private:
  bool wait_writable() const {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, POLLOUT, 0};
    int r;
    do {
      r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, write_ms_)));
    } while (r < 0 && errno == EINTR);
    return r > 0 && (p.revents & POLLOUT) && !(p.revents & (POLLHUP | POLLERR));
  }
  void address(bool remote, std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    const int r = remote ? ::getpeername(fd_, reinterpret_cast<sockaddr*>(&a), &len)
                         : ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    char host[NI_MAXHOST] = "";
    char serv[NI_MAXSERV] = "";
    if (r == 0 && ::getnameinfo(reinterpret_cast<sockaddr*>(&a), len, host, sizeof host, serv, sizeof serv,
                                NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
      ip = host;
      port = std::atoi(serv);
    }
  }
  int fd_;
  const char* data_;
  size_t size_, off_ = 0;
  int write_ms_;
  bool swallow_continue_;
  Clock::time_point deadline_;
};

// httplib's connection queue. A connection httplib's accept loop hands over goes to the parking
// thread (to the watcher, no queue slot); one the watcher hands over holds a whole request and
// goes to the `threads` connection threads, bounded: beyond `capacity` waiting ones, to one
// rejecting thread whose handler answers 503 at once.
class ConnectionQueue : public httplib::TaskQueue {
 public:
  ConnectionQueue(int threads, size_t capacity) : capacity_(capacity) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(Role::kServe); });
    threads_.emplace_back([this] { work(Role::kReject); });
    threads_.emplace_back([this] { work(Role::kPark); });
  }
  ~ConnectionQueue() override { shutdown(); }
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (t_accepting) {
        fresh_.push_back(std::move(fn));
      } else if (queue_.size() < capacity_) {
        queue_.push_back(std::move(fn));
      } else {
        overflow_.push_back(std::move(fn));
      }
    }
    cv_.notify_all();
  }
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work(Role role) {
    t_role = role;
    t_accepting = false;
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        auto& q = role == Role::kReject ? overflow_ : role == Role::kPark ? fresh_ : queue_;
        cv_.wait(lock, [&] { return stopping_ || !q.empty(); });
        if (q.empty()) return;  // stopping, nothing left
        fn = std::move(q.front());
        q.pop_front();
      }
      fn();
    }
  }
  size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_, overflow_, fresh_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// The inference workers: a fixed pool with a bounded queue. submit() returns an invalid future
// when the queue is full; a job whose caller stopped waiting is skipped.
class WorkerPool {
 public:
  // intra_op: each worker's LibTorch threads (OpenMP's count is per thread: set on each worker)
  WorkerPool(int workers, size_t capacity, int intra_op) : capacity_(capacity) {
    for (int i = 0; i < workers; ++i) {
      threads_.emplace_back([this, intra_op] {
        at::set_num_threads(intra_op);
        work();
      });
    }
  }
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  struct Job {
    std::function<void()> run;
    std::atomic<bool> abandoned{false};
    std::promise<void> done;
  };
  std::shared_ptr<Job> submit(std::function<void()> run) {
    auto job = std::make_shared<Job>();
    job->run = std::move(run);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || queue_.size() >= capacity_) return nullptr;
      queue_.push_back(job);
    }
    cv_.notify_one();
    return job;
  }

 private:
  void work() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      if (!job->abandoned) job->run();  // run() keeps its own exceptions
      job->done.set_value();
    }
  }
  size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Recent answers by (path, request body), least recently used out beyond `budget` bytes. The
// models are read-only while the server runs, so an answer never goes stale; a person flipping
// between heads or inputs, or a script repeating a request, gets it without a forward pass.
class ResponseCache {
 public:
  explicit ResponseCache(size_t budget) : budget_(budget) {}
  struct Entry {
    int status;
    std::string body, type;
  };
  bool get(const std::string& key, Entry& out) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = index_.find(key);
    if (it == index_.end()) return false;
    lru_.splice(lru_.begin(), lru_, it->second);
    out = it->second->second;
    ++hits_;
    return true;
  }
  void put(const std::string& key, Entry e) {
    const size_t size = key.size() + e.body.size();
    if (size > budget_ / 4) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (index_.count(key)) return;
    lru_.emplace_front(key, std::move(e));
    index_[key] = lru_.begin();
    bytes_ += size;
    while (bytes_ > budget_ && !lru_.empty()) {
      bytes_ -= lru_.back().first.size() + lru_.back().second.body.size();
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }

 private:
  size_t budget_, bytes_ = 0;
  int64_t hits_ = 0;
  std::mutex mu_;
  std::list<std::pair<std::string, Entry>> lru_;
  std::unordered_map<std::string, std::list<std::pair<std::string, Entry>>::iterator> index_;
};

// Every bad option at once (exit 2), before the model loads.
void check_options(const ServeOptions& o) {
  std::vector<std::string> bad;
  if (o.port < 0 || o.port > 65535) bad.push_back("--port " + std::to_string(o.port) + ": expected 0..65535 (0: any free port)");
  if (o.threads < 0) bad.push_back("--threads " + std::to_string(o.threads) + ": expected 0 (one per core) or more");
  if (o.queue < 1) bad.push_back("--queue " + std::to_string(o.queue) + ": expected 1 or more");
  if (o.cache_mb < 0) bad.push_back("--cache-mb " + std::to_string(o.cache_mb) + ": expected 0 (no cache) or more");
  if (o.limits.max_input_chars < 1) {
    bad.push_back("--max-input-chars " + std::to_string(o.limits.max_input_chars) + ": expected 1 or more");
  }
  if (!(o.request_timeout_s > 0) || o.request_timeout_s > 86400) bad.push_back("--request-timeout: expected 0 < seconds <= 86400");
  if (o.limits.max_batch < 1) bad.push_back("max_batch: expected 1 or more");
  if (o.connection_threads < 1) bad.push_back("connection threads: expected 1 or more");
  if (o.max_body_bytes < 1024) bad.push_back("body limit: expected 1024 bytes or more");
  if (!(o.queue_timeout_s > 0)) bad.push_back("queue timeout: expected seconds > 0");
  if (!bad.empty()) throw UsageError(problem_list("serve: bad options", bad));
}

}  // namespace

struct Server::Impl : public httplib::Server {
  ServeOptions o;
  std::unique_ptr<Explorer> explorer;
  std::string page, page_csp;
  std::unique_ptr<WorkerPool> workers;
  std::unique_ptr<ResponseCache> cache;
  ConnectionQueue* connections = nullptr;  // owned by httplib
  std::mutex report_mu;
  std::string cache_dir;             // a private folder for files the server builds (removed at the end)
  std::string report_path, report_csp;  // the run's report, built into cache_dir on the first GET /report
  int port = -1;
  std::atomic<bool> stopped{false};
  std::atomic<int64_t> held{0};      // request bytes read ahead, all connections together
  int64_t held_budget = 0;

  static constexpr size_t kMaxHead = 64 << 10;
  static constexpr int kWriteMs = 5000;                    // one wait for the socket to take more of a response
  static constexpr auto kResponseTime = std::chrono::seconds(60);  // a whole response
  static constexpr auto kLinger = std::chrono::seconds(2);  // after the last answer: what the peer still sends is discarded

  // Connections that no thread holds wait here (epoll): newly accepted ones, ones whose request is
  // still arriving (the watcher reads it, so a slow sender occupies no thread), keep-alive ones
  // between requests, and answered ones lingering until the peer closes.
  int epfd = -1, wake[2] = {-1, -1};
  std::thread watcher;
  std::mutex idle_mu;
  std::unordered_map<int, ConnPtr> idle;

  void raise_backlog() { ::listen(svr_sock_, SOMAXCONN); }

  std::chrono::milliseconds request_time() const {
    return std::chrono::milliseconds(static_cast<int64_t>(o.request_timeout_s * 1000));
  }

  // httplib calls this for every accepted socket, on the parking thread: the connection goes to
  // the watcher until its first request is whole.
  bool process_and_close_socket(socket_t sock) override {
    const int one = 1;  // a response's head and body go out as written, not held for an ACK (Nagle)
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_shared<Conn>(sock, &held);
    c->deadline = Clock::now() + request_time();  // the whole first request, from the connect
    park(c);
    return true;
  }

  // Answers `status` with the documented JSON, half-closes, and lets the watcher discard what the
  // peer still sends (closing with unread bytes would reset the connection before it reads this).
  void refuse(const ConnPtr& c, int status, const std::string& message, const char* extra = "") {
    const std::string body = to_text(json{{"error", message}, {"status", status}});
    const std::string all = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) +
                            "\r\nContent-Type: application/json\r\n" + extra + "Content-Length: " +
                            std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    (void)!::send(c->fd, all.data(), all.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    linger(c);
  }
  void linger(const ConnPtr& c) {
    ::shutdown(c->fd, SHUT_WR);
    c->buf.clear();
    c->count();
    c->draining = true;
    c->deadline = Clock::now() + kLinger;
    park(c);
  }

  // The requests held in c->buf, answered in order while whole ones are there (pipelining); then
  // the connection goes back to the watcher (or lingers, when it is to close).
  void serve_request(const ConnPtr& c) {
    if (t_role == Role::kReject) {
      return refuse(c, 503, "the server is busy (too many connections); retry shortly", "Retry-After: 1\r\n");
    }
    for (;;) {
      const Framing f = frame_request(c->buf, kMaxHead, static_cast<size_t>(o.max_body_bytes));
      if (f.state == Framing::State::kRefused) return refuse(c, f.status, f.message);
      if (f.state == Framing::State::kIncomplete) {
        c->deadline = Clock::now() + (c->buf.empty() ? std::chrono::milliseconds(keep_alive_timeout_sec_ * 1000) : request_time());
        return park(c);
      }
      const std::string plain = f.ignored.empty() ? std::string() : without_ignored(c->buf, f);
      RequestStream strm(c->fd, f.ignored.empty() ? c->buf.data() : plain.data(), f.ignored.empty() ? f.size : plain.size(),
                         kWriteMs, c->continued, Clock::now() + kResponseTime);
      const bool last = ++c->served >= keep_alive_max_count_ || stopped || c->peer_closed;
      bool closed = false;
      const bool ok = process_request(strm, last, closed, nullptr);
      c->buf.erase(0, f.size);
      c->count();
      c->continued = false;
      if (!ok || closed || last) return linger(c);
    }
  }

  void park(const ConnPtr& c) {
    {
      std::lock_guard<std::mutex> lock(idle_mu);
      if (!stopped) idle[c->fd] = c;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.fd = c->fd;
    if (stopped || ::epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
      std::lock_guard<std::mutex> lock(idle_mu);
      idle.erase(c->fd);
      ::close(c->fd);
    }
  }

  ConnPtr take(int fd) {
    std::lock_guard<std::mutex> lock(idle_mu);
    const auto it = idle.find(fd);
    if (it == idle.end()) return nullptr;
    ConnPtr c = std::move(it->second);
    idle.erase(it);
    ::epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
    return c;
  }

  // Bytes arrived on a parked connection: read what is there (at most 256 KiB a turn), then hand
  // it to the connection threads once a whole request is in, refuse it, or park it again.
  void readable(const ConnPtr& c) {
    char chunk[1 << 16];
    bool eof = false;
    const bool was_empty = c->buf.empty();
    for (size_t turn = 0; turn < 4;) {
      const ssize_t n = ::recv(c->fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n > 0) {
        if (!c->draining) c->buf.append(chunk, static_cast<size_t>(n));
        ++turn;
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
      }
    }
    if (c->draining) {
      if (eof) {
        ::close(c->fd);
      } else {
        park(c);
      }
      return;
    }
    c->count();
    if (eof) c->peer_closed = true;  // half-closed after sending: answer what is whole, then close
    if (was_empty && !c->buf.empty() && c->served > 0) c->deadline = Clock::now() + request_time();  // a next request starts
    if (held.load() > held_budget) {
      return refuse(c, 503, "the server holds too many request bytes from other connections; retry shortly",
                    "Retry-After: 1\r\n");
    }
    const Framing f = frame_request(c->buf, kMaxHead, static_cast<size_t>(o.max_body_bytes));
    if (f.state == Framing::State::kRefused) return refuse(c, f.status, f.message);
    if (f.state == Framing::State::kComplete) {
      connections->enqueue([this, c] { serve_request(c); });
      return;
    }
    if (eof) {  // the peer closed in the middle of a request (or before one)
      ::close(c->fd);
      return;
    }
    if (f.expect_continue && f.head_complete && !c->continued) {
      static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      (void)!::send(c->fd, kContinue, sizeof kContinue - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      c->continued = true;
    }
    park(c);
  }

  void watch() {
    t_accepting = false;
    std::vector<epoll_event> events(256);
    for (;;) {
      const bool stopping = stopped;
      const int n = stopping ? 0 : ::epoll_wait(epfd, events.data(), static_cast<int>(events.size()), 100);
      for (int i = 0; i < n; ++i) {
        const int fd = events[static_cast<size_t>(i)].data.fd;
        if (fd == wake[0]) continue;
        if (ConnPtr c = take(fd)) readable(c);
      }
      // deadlines: a request not whole in time gets 408; an idle keep-alive connection and a
      // lingering one end quietly
      const auto now = Clock::now();
      std::vector<ConnPtr> late;
      {
        std::lock_guard<std::mutex> lock(idle_mu);
        for (auto it = idle.begin(); it != idle.end();) {
          if (it->second->deadline <= now || stopping) {
            late.push_back(std::move(it->second));
            it = idle.erase(it);
          } else {
            ++it;
          }
        }
      }
      for (const auto& c : late) {
        ::epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, nullptr);
        if (!c->draining && (c->served == 0 || !c->buf.empty())) {
          refuse(c, 408, c->buf.empty() ? "no request arrived on this connection within " + seconds(o.request_timeout_s) + " s"
                                        : "the request did not arrive whole within " + seconds(o.request_timeout_s) + " s");
        } else {
          ::close(c->fd);
        }
      }
      if (stopping) return;
    }
  }

  static std::string seconds(double s) {
    std::ostringstream out;
    out << s;
    return out.str();
  }

  // Runs `fn` on an inference worker and waits for it; 503 when the queue is full or the wait
  // exceeds the queue timeout.
  void on_worker(httplib::Response& res, const std::function<void(httplib::Response&)>& fn) {
    auto result = std::make_shared<httplib::Response>();
    auto job = workers->submit([result, fn] {
      try {
        fn(*result);
      } catch (const RequestError& e) {
        result->status = e.status();
        result->set_content(to_text(json{{"error", e.what()}, {"status", e.status()}}), "application/json");
      } catch (const UsageError& e) {
        result->status = 400;
        result->set_content(to_text(json{{"error", e.what()}, {"status", 400}}), "application/json");
      } catch (const std::exception& e) {
        result->status = 500;
        result->set_content(to_text(json{{"error", without_trace(e.what())}, {"status", 500}}), "application/json");
      }
    });
    auto busy = [&](const std::string& why) {
      res.status = 503;
      res.set_header("Retry-After", "1");
      res.set_content(to_text(json{{"error", why}, {"status", 503}}), "application/json");
    };
    if (!job) return busy("the server is busy (" + std::to_string(o.queue) + " requests waiting); retry shortly");
    auto done = job->done.get_future();
    if (done.wait_for(std::chrono::milliseconds(static_cast<int64_t>(o.queue_timeout_s * 1000))) != std::future_status::ready) {
      job->abandoned = true;
      return busy("the request waited longer than " + seconds(o.queue_timeout_s) + " s for a worker; retry shortly");
    }
    res = *result;
  }

  // The run's recorded report, built once into a file of cache_dir (the 8 MB page takes ~45 MB
  // while it is assembled: given back to the system at once, never kept in memory).
  const std::string& report_file() {
    std::lock_guard<std::mutex> lock(report_mu);
    if (report_path.empty()) {
      {
        const std::string html = viz::report_html(explorer->run_dir(), o.web_dir);
        const std::string path = (fs::path(cache_dir) / "report.html").string();
        write_file_atomic(path, html);
        report_csp = viz::content_security_policy(html);
        report_path = path;
      }
      ::malloc_trim(0);
    }
    return report_path;
  }

  void routes() {
    Get("/", [this](const httplib::Request&, httplib::Response& res) {
      res.set_header("Content-Security-Policy", page_csp);
      res.set_header("Cache-Control", "no-store");
      res.set_content(page, "text/html; charset=utf-8");
    });
    Get("/report", [this](const httplib::Request&, httplib::Response& res) {
      if (explorer->run_dir().empty() || !explorer->info().at("report").get<bool>()) {
        res.status = 404;
        res.set_content(to_text(json{{"error", "this model has no recorded report (serve a run directory with attention.h5)"},
                             {"status", 404}}), "application/json");
        return;
      }
      const std::string path = report_file();
      auto in = std::make_shared<std::ifstream>(path, std::ios::binary);
      res.set_header("Content-Security-Policy", report_csp);
      res.set_content_provider(static_cast<size_t>(fs::file_size(path)), "text/html; charset=utf-8",
                               [in](size_t offset, size_t length, httplib::DataSink& sink) {
                                 char buf[1 << 16];
                                 in->seekg(static_cast<std::streamoff>(offset));
                                 in->read(buf, static_cast<std::streamsize>(std::min(length, sizeof buf)));
                                 const auto n = in->gcount();
                                 if (n <= 0) return false;
                                 return sink.write(buf, static_cast<size_t>(n));
                               });
    });
    Get("/api/info", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(to_text(explorer->info()), "application/json");
    });
    auto post = [this](const char* path, std::function<void(const json&, httplib::Response&)> answer) {
      Post(path, [this, answer](const httplib::Request& req, httplib::Response& res) {
        json request;
        try {
          request = parse_request(req.body);
        } catch (const RequestError& e) {
          res.status = e.status();
          res.set_content(to_text(json{{"error", e.what()}, {"status", e.status()}}), "application/json");
          return;
        }
        const std::string key = req.path + '\n' + req.body;
        ResponseCache::Entry hit;
        if (cache->get(key, hit)) {
          res.status = hit.status;
          res.set_header("X-Attnscope-Cache", "hit");
          res.set_content(hit.body, hit.type.c_str());
          return;
        }
        on_worker(res, [&answer, request](httplib::Response& r) { answer(request, r); });
        if (res.status == -1) res.status = 200;
        if (res.status == 200 || (res.status >= 400 && res.status < 500)) {  // answers and refusals; never 503 or 500
          cache->put(key, {res.status, res.body, res.get_header_value("Content-Type")});
        }
      });
    };
    post("/api/attention", [this](const json& q, httplib::Response& r) {
      r.set_content(to_text(explorer->attention(q)), "application/json");
    });
    post("/api/predict", [this](const json& q, httplib::Response& r) {
      r.set_content(to_text(explorer->predict(q)), "application/json");
    });
    post("/api/molecule", [this](const json& q, httplib::Response& r) {
      r.set_content(explorer->molecule_svg(q), "image/svg+xml");
    });
    set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string why;
      switch (res.status) {
        case 400: why = "bad request"; break;
        case 404: why = "no such page or API: " + (req.path.size() > 80 ? req.path.substr(0, 80) + "..." : req.path) +
                        " (the page is /, the API /api/info, /api/attention, /api/predict, /api/molecule)"; break;
        case 405: why = "method not allowed"; break;
        case 413: why = "the request body is larger than the limit of " + std::to_string(o.max_body_bytes) + " bytes"; break;
        case 414: why = "the request URI is too long"; break;
        case 416: why = "the requested range cannot be satisfied"; break;
        default: why = "HTTP " + std::to_string(res.status);
      }
      res.set_content(to_text(json{{"error", why}, {"status", res.status}}), "application/json");
    });
    set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string why = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        why = without_trace(e.what());
      } catch (...) {
      }
      res.status = 500;
      res.set_content(to_text(json{{"error", why}, {"status", 500}}), "application/json");
    });
  }
};

Server::Server(ServeOptions options) : impl_(std::make_unique<Impl>()) {
  auto& d = *impl_;
  d.o = std::move(options);
  check_options(d.o);
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < std::min<rlim_t>(nofile.rlim_max, 65536)) {
    nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, 65536);  // idle connections are cheap; file descriptors should be too
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int workers = d.o.threads > 0 ? d.o.threads : cores;
  const int intra_op = std::max(1, cores / workers);  // workers x intra-op threads = the cores
  // OpenBLAS's threads too (its count is process-wide): with a worker per core, each worker's
  // matrix products on its own core (bench/serve_bench, small preset, 16 clients on 2 cores:
  // p50 152 -> 83 ms, 105 -> 191 requests/s; OpenBLAS's idle threads yielded in a loop)
  set_blas_threads(intra_op);
  d.explorer = std::make_unique<Explorer>(d.o.model, d.o.input, d.o.limits);
  d.page = viz::serve_page(d.o.web_dir);
  d.page_csp = viz::content_security_policy(d.page);
  d.held_budget = std::max<int64_t>(64LL << 20, 16 * d.o.max_body_bytes);
  {
    std::string dir = (fs::temp_directory_path() / "attnscope-serve-XXXXXX").string();
    if (::mkdtemp(dir.data()) == nullptr) throw UsageError("serve: cannot make a cache folder in " + fs::temp_directory_path().string());
    d.cache_dir = dir;
  }
  d.workers = std::make_unique<WorkerPool>(workers, static_cast<size_t>(d.o.queue), intra_op);
  d.cache = std::make_unique<ResponseCache>(static_cast<size_t>(std::max<int64_t>(0, d.o.cache_mb)) << 20);
  const int conn_threads = d.o.connection_threads;
  d.new_task_queue = [&d, conn_threads] {
    auto* q = new ConnectionQueue(conn_threads, static_cast<size_t>(conn_threads) * 8);
    d.connections = q;
    return q;
  };
  d.set_payload_max_length(static_cast<size_t>(d.o.max_body_bytes));
  // SO_REUSEADDR only: a restarted server binds at once, but a second one on a port in use fails
  // (httplib's default adds SO_REUSEPORT, under which both would listen and split the clients)
  d.set_socket_options([](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  d.set_read_timeout(5, 0);
  d.set_write_timeout(5, 0);
  d.set_keep_alive_timeout(5);
  d.set_keep_alive_max_count(1000);
  d.epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (d.epfd < 0 || ::pipe(d.wake) != 0) throw std::runtime_error("serve: cannot create the connection watcher");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = d.wake[0];
  ::epoll_ctl(d.epfd, EPOLL_CTL_ADD, d.wake[0], &ev);
  d.routes();
}

Server::~Server() {
  stop();
  auto& d = *impl_;
  if (!d.cache_dir.empty()) {
    std::error_code ec;
    fs::remove_all(d.cache_dir, ec);
  }
  if (d.watcher.joinable()) d.watcher.join();
  if (d.epfd >= 0) ::close(d.epfd);
  for (int fd : d.wake) {
    if (fd >= 0) ::close(fd);
  }
}

const Explorer& Server::explorer() const { return *impl_->explorer; }

int Server::bind() {
  auto& d = *impl_;
  d.port = d.o.port == 0 ? d.bind_to_any_port(d.o.host) : (d.bind_to_port(d.o.host, d.o.port) ? d.o.port : -1);
  // httplib listens with a backlog of 5: a burst of clients beyond it gets resets; a second
  // listen() on the bound socket raises the backlog (Linux)
  if (d.port >= 0) d.raise_backlog();
  if (d.port < 0) {
    throw UsageError("serve: cannot listen on " + d.o.host + ":" + std::to_string(d.o.port) +
                     " (in use, or not an address of this machine); choose another with --port / --host");
  }
  return d.port;
}

void Server::run() {
  auto& d = *impl_;
  if (d.port < 0) bind();
  d.watcher = std::thread([&d] { d.watch(); });
  d.listen_after_bind();
}

void Server::stop() {
  auto& d = *impl_;
  if (d.stopped.exchange(true)) return;
  if (d.wake[1] >= 0) (void)!::write(d.wake[1], "x", 1);
  if (d.watcher.joinable() && d.watcher.get_id() != std::this_thread::get_id()) d.watcher.join();  // before httplib frees its queue
  d.httplib::Server::stop();
}

namespace {
int g_signal_pipe[2] = {-1, -1};
extern "C" void on_stop_signal(int sig) {  // async-signal-safe: one byte into the pipe
  const char c = static_cast<char>(sig);
  (void)!::write(g_signal_pipe[1], &c, 1);
}
}  // namespace

int serve_command(const ServeOptions& options) {
  // SIGINT / SIGTERM (on whichever thread they land) write into a pipe; a thread reading it stops
  // the server, which then finishes the requests in hand and returns.
  if (::pipe(g_signal_pipe) != 0) throw std::runtime_error("serve: cannot create a pipe");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  Server server(options);
  const int port = server.bind();
  const auto info = server.explorer().info();
  const bool loopback = options.host == "127.0.0.1" || options.host == "localhost" || options.host == "::1";
  if (!loopback) {
    log::warn("serve: listening on " + options.host + ":" + std::to_string(port) +
              ", reachable from other machines: anyone who can reach it can run this model. There is no authentication.");
  }
  std::cout << "attnscope serve: " << info.at("architecture").get<std::string>() << " from " << options.model << " ("
            << info.at("input").get<std::string>() << " input, " << info.at("layers") << " layers x " << info.at("heads")
            << " heads)\n  open http://" << (options.host == "0.0.0.0" ? "127.0.0.1" : options.host) << ":" << port
            << "/   (API: /api/info, /api/attention, /api/predict, /api/molecule; docs/serve.md)\n  stop with Ctrl-C"
            << std::endl;
  std::thread signals([&] {
    char c = 0;
    if (::read(g_signal_pipe[0], &c, 1) == 1 && c != 0) {
      std::cout << "attnscope serve: " << (c == SIGINT ? "SIGINT" : "SIGTERM") << ", stopping" << std::endl;
      server.stop();
    }
  });
  server.run();
  server.stop();
  const char zero = 0;
  (void)!::write(g_signal_pipe[1], &zero, 1);  // releases the signal thread when no signal came
  signals.join();
  std::cout << "attnscope serve: stopped" << std::endl;
  return 0;
}

}  // namespace attnscope::serve
