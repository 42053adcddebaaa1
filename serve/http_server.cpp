// `attnscope serve`'s HTTP side (serve/serve.h) on cpp-httplib. Three kinds of threads:
//   - connection threads (httplib's task queue, ours: bounded) read requests and write responses;
//     a connection with a request waiting beyond the queue is answered 503 at once by a rejecting
//     thread;
//   - a newly accepted connection takes no queue slot: one parking thread hands it to the watcher
//     (a burst of 1,000 connects that send nothing does not crowd out a request);
//   - one watcher (epoll) holds connections that have sent nothing yet, so that idle sockets
//     occupy no thread; after header_timeout_s without a byte they get 408; a connection whose
//     bytes arrive goes to the connection threads;
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
#include <map>
#include <mutex>
#include <thread>

#include <ATen/Parallel.h>

#include "core/core.h"
#include "core/process.h"
#include "serve/serve.h"
#include "viz/viz.h"

namespace attnscope::serve {
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

void send_raw(int sock, int status, const char* reason, const std::string& message, const char* extra = "") {
  const std::string body = to_text(json{{"error", message}, {"status", status}});
  const std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: application/json\r\n" +
                           extra + "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  const std::string all = head + body;
  (void)!::send(sock, all.data(), all.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
}

// A connection as httplib's request parser reads it: reads buffered (the parser reads headers a
// byte at a time), each read and write waiting at most its timeout.
class FdStream : public httplib::Stream {
 public:
  FdStream(int fd, time_t rs, time_t rus, time_t ws, time_t wus)
      : fd_(fd), read_ms_(static_cast<int>(rs * 1000 + rus / 1000)), write_ms_(static_cast<int>(ws * 1000 + wus / 1000)) {}
  bool buffered() const { return off_ < size_; }
  bool is_readable() const override { return buffered() || wait(POLLIN, read_ms_); }
  bool is_writable() const override { return wait(POLLOUT, write_ms_); }
  ssize_t read(char* ptr, size_t size) override {
    if (!buffered()) {
      if (!wait(POLLIN, read_ms_)) return -1;
      const ssize_t n = ::recv(fd_, buf_, sizeof buf_, 0);
      if (n <= 0) return n;
      off_ = 0;
      size_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, size_ - off_);
    std::memcpy(ptr, buf_ + off_, n);
    off_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!wait(POLLOUT, write_ms_)) return -1;
    return ::send(fd_, ptr, size, MSG_NOSIGNAL);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  socket_t socket() const override { return fd_; }

 private:
  bool wait(short what, int ms) const {
    pollfd p{fd_, what, 0};
    int r;
    do {
      r = ::poll(&p, 1, ms);
    } while (r < 0 && errno == EINTR);
    return r > 0 && (p.revents & (what | POLLHUP | POLLERR));
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
  int read_ms_, write_ms_;
  char buf_[4096];
  size_t off_ = 0, size_ = 0;
};

// httplib's connection queue. A connection httplib's accept loop hands over goes to the parking
// thread (to the watcher, no queue slot); one the watcher hands over has bytes waiting and goes to
// the `threads` connection threads, bounded: beyond `capacity` waiting ones, to one rejecting
// thread whose handler answers 503 at once.
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

}  // namespace

struct Server::Impl : public httplib::Server {
  ServeOptions o;
  std::unique_ptr<Explorer> explorer;
  std::string page;
  std::unique_ptr<WorkerPool> workers;
  std::unique_ptr<ResponseCache> cache;
  ConnectionQueue* connections = nullptr;  // owned by httplib
  std::mutex report_mu;
  std::string report;  // built on the first GET /report
  int port = -1;
  std::atomic<bool> stopped{false};

  // Connections between requests (idle ones, and keep-alive ones) wait here (epoll) for their next
  // byte, not in a thread.
  int epfd = -1, wake[2] = {-1, -1};
  std::thread watcher;
  struct Parked {
    std::chrono::steady_clock::time_point deadline;
    size_t served;  // requests answered on the connection so far
  };
  std::mutex idle_mu;
  std::map<int, Parked> idle;

  void raise_backlog() { ::listen(svr_sock_, SOMAXCONN); }

  // httplib calls this on a connection thread for every accepted socket.
  bool process_and_close_socket(socket_t sock) override {
    serve_connection(sock, 0);
    return true;
  }

  // Answers the requests of connection `fd` while bytes are waiting, then parks it with the
  // watcher; closes it when the client does, after an error, or after keep_alive_max_count requests.
  void serve_connection(int fd, size_t served) {
    if (t_role == Role::kReject) {
      send_raw(fd, 503, "Service Unavailable", "the server is busy (too many connections); retry shortly", "Retry-After: 1\r\n");
      return;
    }
    if (t_role == Role::kPark) {  // newly accepted: the watcher reports it when a byte is there
      const int one = 1;  // a response's head and body go out as written, not held for an ACK (Nagle)
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      park(fd, 0);
      return;
    }
    FdStream strm(fd, read_timeout_sec_, read_timeout_usec_, write_timeout_sec_, write_timeout_usec_);
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (!strm.buffered() && ::poll(&p, 1, 0) <= 0) {
        park(fd, served);
        return;
      }
      bool closed = false;
      const bool last = served + 1 >= keep_alive_max_count_ || stopped;
      const bool ok = process_request(strm, last, closed, nullptr);
      ++served;
      if (!ok || closed || last) {
        ::shutdown(fd, SHUT_RDWR);
        ::close(fd);
        return;
      }
    }
  }

  void park(int fd, size_t served) {
    const auto wait = served == 0 ? std::chrono::milliseconds(static_cast<int64_t>(o.header_timeout_s * 1000))
                                  : std::chrono::milliseconds(static_cast<int64_t>(keep_alive_timeout_sec_) * 1000);
    {
      std::lock_guard<std::mutex> lock(idle_mu);
      if (!stopped) idle[fd] = {std::chrono::steady_clock::now() + wait, served};
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.fd = fd;
    if (stopped || ::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      std::lock_guard<std::mutex> lock(idle_mu);
      idle.erase(fd);
      ::close(fd);
    }
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
        ::epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
        size_t served = 0;
        {
          std::lock_guard<std::mutex> lock(idle_mu);
          const auto it = idle.find(fd);
          if (it == idle.end()) continue;
          served = it->second.served;
          idle.erase(it);
        }
        connections->enqueue([this, fd, served] { serve_connection(fd, served); });
      }
      const auto now = std::chrono::steady_clock::now();
      std::vector<std::pair<int, size_t>> late;
      {
        std::lock_guard<std::mutex> lock(idle_mu);
        for (auto it = idle.begin(); it != idle.end();) {
          if (it->second.deadline <= now || stopping) {
            late.emplace_back(it->first, it->second.served);
            it = idle.erase(it);
          } else {
            ++it;
          }
        }
      }
      for (auto [fd, served] : late) {
        ::epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
        if (served == 0) {
          send_raw(fd, 408, "Request Timeout", "no request arrived on this connection within the header timeout");
        } else {
          ::close(fd);  // an idle keep-alive connection ends quietly
        }
      }
      if (stopping) return;
    }
  }

  // Runs `fn` on an inference worker and waits for it; 503 when the queue is full or the wait
  // exceeds the request timeout.
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
    if (done.wait_for(std::chrono::milliseconds(static_cast<int64_t>(o.request_timeout_s * 1000))) != std::future_status::ready) {
      job->abandoned = true;
      return busy("the request waited longer than " + std::to_string(o.request_timeout_s) + " s for a worker; retry shortly");
    }
    res = *result;
  }

  static json body_json(const httplib::Request& req) {
    json j;
    try {
      j = json::parse(req.body);
    } catch (const json::parse_error& e) {
      throw RequestError(400, std::string("malformed JSON in the request body: ") + e.what());
    }
    if (!j.is_object()) throw RequestError(400, "the request body must be a JSON object, e.g. {\"input\": \"CCO\"}");
    return j;
  }

  void routes() {
    const std::string csp =
        "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob: 'self'; "
        "connect-src 'self'; font-src data:";
    Get("/", [this, csp](const httplib::Request&, httplib::Response& res) {
      res.set_header("Content-Security-Policy", csp);
      res.set_header("Cache-Control", "no-store");
      res.set_content(page, "text/html; charset=utf-8");
    });
    Get("/report", [this, csp](const httplib::Request&, httplib::Response& res) {
      if (explorer->run_dir().empty() || !explorer->info().at("report").get<bool>()) {
        res.status = 404;
        res.set_content(to_text(json{{"error", "this model has no recorded report (serve a run directory with attention.h5)"},
                             {"status", 404}}), "application/json");
        return;
      }
      std::lock_guard<std::mutex> lock(report_mu);
      if (report.empty()) report = viz::report_html(explorer->run_dir(), o.web_dir);
      res.set_header("Content-Security-Policy", csp);
      res.set_content(report, "text/html; charset=utf-8");
    });
    Get("/api/info", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(to_text(explorer->info()), "application/json");
    });
    auto post = [this](const char* path, std::function<void(const json&, httplib::Response&)> answer) {
      Post(path, [this, answer](const httplib::Request& req, httplib::Response& res) {
        json request;
        try {
          request = body_json(req);
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
  if (d.o.threads < 0 || d.o.queue < 1 || d.o.connection_threads < 1 || d.o.max_body_bytes < 1024 ||
      d.o.header_timeout_s <= 0 || d.o.request_timeout_s <= 0) {
    throw UsageError("serve: --threads >= 0, --queue >= 1, connection threads >= 1, body limit >= 1024 bytes and "
                     "positive timeouts expected");
  }
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
  d.workers = std::make_unique<WorkerPool>(workers, static_cast<size_t>(d.o.queue), intra_op);
  d.cache = std::make_unique<ResponseCache>(static_cast<size_t>(std::max<int64_t>(0, d.o.cache_mb)) << 20);
  const int conn_threads = d.o.connection_threads;
  d.new_task_queue = [&d, conn_threads] {
    auto* q = new ConnectionQueue(conn_threads, static_cast<size_t>(conn_threads) * 8);
    d.connections = q;
    return q;
  };
  d.set_payload_max_length(static_cast<size_t>(d.o.max_body_bytes));
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
