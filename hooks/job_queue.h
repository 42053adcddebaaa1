// The recorder's jobs, run in order on one thread of their own beside training: post() returns a
// ticket, wait(ticket) returns once that job and every earlier one are done, and the first
// exception a job throws is rethrown to the trainer's thread (at its next post or wait; later
// jobs are skipped). Internal to hooks/.
#pragma once

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace attnscope::hooks {

class JobQueue {
 public:
  JobQueue() : thread_([this] { loop(); }) {}
  ~JobQueue() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  // Returns the job's ticket: wait(ticket) returns once it and every job before it are done.
  int64_t post(std::function<void()> job) {
    rethrow();
    int64_t ticket;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(job));
      ticket = ++posted_;
    }
    wake_.notify_all();
    return ticket;
  }
  void wait(int64_t ticket) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      idle_.wait(lock, [&] { return done_ >= ticket; });
    }
    rethrow();
  }
  void drain() { wait(posted()); }  // every posted job
  int64_t posted() {
    std::lock_guard<std::mutex> lock(mutex_);
    return posted_;
  }
  double seconds() const { return seconds_; }  // (after drain())

 private:
  void rethrow() {
    std::exception_ptr e;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      std::swap(e, error_);
    }
    if (e) std::rethrow_exception(e);
  }
  void loop() {
    at::set_num_threads(1);  // (OpenMP: this thread's own setting; training keeps run.threads)
    torch::NoGradGuard no_grad;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_
      auto job = std::move(queue_.front());
      queue_.pop_front();
      const bool skip = failed_;
      lock.unlock();
      const auto t0 = std::chrono::steady_clock::now();
      std::exception_ptr e;
      if (!skip) {
        try {
          job();
        } catch (...) {
          e = std::current_exception();
        }
      }
      lock.lock();
      seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (e) {
        error_ = e;
        failed_ = true;
      }
      ++done_;
      idle_.notify_all();
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::deque<std::function<void()>> queue_;
  std::exception_ptr error_;
  int64_t posted_ = 0, done_ = 0;
  bool stop_ = false, failed_ = false;
  double seconds_ = 0;
  std::thread thread_;  // (last: started once the members above exist)
};

}  // namespace attnscope::hooks
