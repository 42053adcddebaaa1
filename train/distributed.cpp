// Rendezvous, collectives and gradient averaging of train/distributed.h over c10d and Gloo.
#include "train/distributed.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>
#include <unordered_set>

#include "core/core.h"

namespace attnscope::train {
namespace {

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string text(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

// Keys that may differ between the ranks of one run (per-machine settings).
bool per_rank_key(const std::string& diff) {
  for (const char* k : {"run.threads:", "run.blas_threads:", "run.log_level:", "train.progress:",
                        "train.log_every_seconds:"}) {
    if (diff.rfind(k, 0) == 0) return true;
  }
  return false;
}

// Each rank's gradient bucket, scaled by the rank's share of the global batch, then summed.
class WeightedAllReduce : public c10d::CommHookInterface {
 public:
  WeightedAllReduce(c10::intrusive_ptr<c10d::ProcessGroup> pg, std::shared_ptr<double> weight)
      : pg_(std::move(pg)), weight_(std::move(weight)) {}
  c10::intrusive_ptr<c10::ivalue::Future> runHook(c10d::GradBucket& bucket) override {
    bucket.getBufferRef().mul_(*weight_);
    std::vector<at::Tensor> tensors{bucket.getBufferRef()};
    return pg_->allreduce(tensors)->getFuture();
  }
  at::Tensor parseHookResult(const c10::IValue& result) override {
    return result.isTensor() ? result.toTensor() : result.toTensorVector().at(0);
  }

 private:
  c10::intrusive_ptr<c10d::ProcessGroup> pg_;
  std::shared_ptr<double> weight_;
};

// Metric values as text that round-trips exactly (hex floats).
std::string encode_metrics(const Metrics& m) {
  std::string s;
  char buf[64];
  for (const auto& [k, v] : m) {
    std::snprintf(buf, sizeof buf, "%a", v);
    s += k + "\t" + buf + "\n";
  }
  return s;
}

Metrics decode_metrics(const std::string& s) {
  Metrics m;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) {
    const auto tab = line.find('\t');
    m[line.substr(0, tab)] = std::strtod(line.c_str() + tab + 1, nullptr);
  }
  return m;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

RankSlice rank_slice(const torch::Tensor& batch, int64_t rank, int64_t world) {
  const int64_t n = batch.size(0);
  RankSlice s;
  s.padding = rank >= n;
  s.idx = s.padding ? batch.slice(0, 0, 1) : batch.slice(0, rank, n, world);
  return s;
}

struct Dist::Impl {
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::unique_ptr<c10d::Reducer> reducer;
  std::shared_ptr<double> weight = std::make_shared<double>(1.0);
  double bucket_mb = 25;

  void wait(const c10::intrusive_ptr<c10d::Work>& work) {
    if (!work->wait(timeout)) throw std::runtime_error("collective did not complete");
  }
};

Dist::Dist(const DistEnv& env, const Config& config) : env_(env), impl_(std::make_unique<Impl>()) {
  const auto& dc = config.dist;
  impl_->timeout = std::chrono::milliseconds(static_cast<int64_t>(dc.timeout_s * 1000));
  impl_->bucket_mb = dc.bucket_mb;
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  const std::string secs = std::to_string(static_cast<int64_t>(dc.timeout_s));

  // 1. the store: rank 0 hosts it, the others connect (retrying until the timeout)
  try {
    if (dc.store == "file") {
      impl_->store = c10::make_intrusive<c10d::FileStore>(dc.file, static_cast<int>(env.world));
      impl_->store->setTimeout(impl_->timeout);
    } else {
      c10d::TCPStoreOptions o;
      o.port = static_cast<uint16_t>(env.master_port);
      o.isServer = env.rank == 0;
      o.numWorkers = static_cast<size_t>(env.world);
      o.waitWorkers = false;
      o.timeout = impl_->timeout;
      impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
    }
  } catch (const std::exception& e) {
    const std::string why = without_trace(e.what(), 300);
    if (dc.store == "file") throw UsageError("dist.file '" + dc.file + "': cannot open the rendezvous file store: " + why);
    if (env.rank == 0) {
      throw UsageError("cannot host the rendezvous store at " + where + " (--master-port / MASTER_PORT; is the port in use?): " + why);
    }
    throw UsageError("cannot reach the master at " + where + " (--master-addr / --master-port, MASTER_ADDR / MASTER_PORT) within dist.timeout_s = " +
                     secs + " s: " + why);
  }

  // 2. every rank's resolved config, compared with every other's
  const std::string mine = to_yaml(config);
  std::vector<std::string> problems;
  try {
    impl_->store->set("attnscope/config/" + std::to_string(env.rank), bytes(mine));
    const Config base = config_from_yaml(text(impl_->store->get("attnscope/config/0")), "rank 0's config");
    for (int64_t r = 1; r < env.world; ++r) {
      const Config other = config_from_yaml(text(impl_->store->get("attnscope/config/" + std::to_string(r))),
                                            "rank " + std::to_string(r) + "'s config");
      for (const auto& d : config_differences(base, other, /*resume_only=*/false)) {
        if (!per_rank_key(d)) problems.push_back("rank " + std::to_string(r) + ": " + d);
      }
    }
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    throw UsageError("rendezvous at " + (dc.store == "file" ? "dist.file '" + dc.file + "'" : where) +
                     ": not every rank of WORLD_SIZE = " + std::to_string(env.world) + " joined within dist.timeout_s = " + secs +
                     " s: " + without_trace(e.what(), 300));
  }
  if (!problems.empty()) {
    // every rank refuses; rank 0, whose process hosts the TCP store, leaves last
    try {
      if (env.rank > 0) {
        impl_->store->add("attnscope/refused", 1);
      } else {
        const auto end = std::chrono::steady_clock::now() + impl_->timeout;
        while (impl_->store->add("attnscope/refused", 0) < env.world - 1 && std::chrono::steady_clock::now() < end) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
    } catch (const std::exception&) {
    }
    throw UsageError(problem_list("the ranks' configs differ from rank 0's (every rank must run the same config):", problems));
  }

  // 3. the Gloo process group (its own key space in the store)
  auto opts = c10d::ProcessGroupGloo::Options::create(impl_->timeout);
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (is_loopback(env.master_addr) && env.world == env.local_world) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  try {
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", impl_->store),
                                                            static_cast<int>(env.rank), static_cast<int>(env.world), opts);
  } catch (const std::exception& e) {
    throw UsageError("cannot connect the ranks' Gloo process group (rendezvous at " + where +
                     "; set GLOO_SOCKET_IFNAME to the network interface the machines share): " +
                     without_trace(e.what(), 300));
  }
}

Dist::~Dist() {
  impl_->reducer.reset();
  impl_->pg.reset();
  impl_->store.reset();
}

void Dist::allreduce_sum(torch::Tensor& t) {
  std::vector<at::Tensor> v{t};
  impl_->wait(impl_->pg->allreduce(v));
}

void Dist::broadcast(torch::Tensor& t, int64_t root) {
  std::vector<at::Tensor> v{t};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  impl_->wait(impl_->pg->broadcast(v, o));
}

void Dist::barrier() { impl_->wait(impl_->pg->barrier()); }

std::string Dist::broadcast_string(const std::string& s, int64_t root) {
  auto len = torch::tensor({static_cast<int64_t>(s.size())}, torch::kLong);
  broadcast(len, root);
  auto buf = torch::zeros({len.item<int64_t>()}, torch::kUInt8);
  if (rank() == root && !s.empty()) std::memcpy(buf.data_ptr(), s.data(), s.size());
  if (buf.numel() > 0) broadcast(buf, root);
  return std::string(static_cast<const char*>(buf.data_ptr()), static_cast<size_t>(buf.numel()));
}

StepStats Dist::train_step(Task& task, const torch::Tensor& batch) {
  const RankSlice slice = rank_slice(batch, rank(), world());
  prepare_backward(rank_weight(batch, rank(), world(), [&](const torch::Tensor& idx) { return task.loss_weight(idx); }));
  StepStats s = task.train_step(slice.idx);
  if (slice.padding) s.loss_sum = 0, s.correct = 0, s.count = 0;
  auto sums = torch::tensor({s.loss_sum, static_cast<double>(s.correct), static_cast<double>(s.count)}, torch::kDouble);
  allreduce_sum(sums);
  s.loss_sum = sums[0].item<double>();
  s.correct = static_cast<int64_t>(sums[1].item<double>());
  s.count = static_cast<int64_t>(sums[2].item<double>());
  return s;
}

Metrics Dist::evaluate(Task& task) {
  return decode_metrics(broadcast_string(rank() == 0 ? encode_metrics(task.evaluate()) : ""));
}

void Dist::attach(torch::nn::Module& module) {
  // trainable parameters, each once (a tied weight appears under several names)
  std::vector<at::Tensor> params;
  std::unordered_map<size_t, std::string> names;
  std::unordered_set<const void*> seen;
  for (const auto& p : module.named_parameters()) {
    if (!p.value().requires_grad() || !seen.insert(p.value().unsafeGetTensorImpl()).second) continue;
    names[params.size()] = p.key();
    params.push_back(p.value());
  }
  {
    torch::NoGradGuard no_grad;
    for (auto& p : module.parameters()) broadcast(p, 0);
    for (auto& b : module.buffers()) broadcast(b, 0);
  }
  if (params.empty()) return;
  const auto cap = static_cast<int64_t>(impl_->bucket_mb * 1024 * 1024);
  // DistributedDataParallel's assignment: a small first bucket, then `cap`, in reverse order so
  // the buckets fill roughly as backward produces the gradients
  auto [buckets, limits] = c10d::compute_bucket_assignment_by_size(
      params, {static_cast<size_t>(std::min<int64_t>(c10d::kDefaultFirstBucketBytes, cap)), static_cast<size_t>(cap)},
      std::vector<bool>(params.size(), false), {}, c10::nullopt);
  std::reverse(buckets.begin(), buckets.end());
  std::reverse(limits.begin(), limits.end());
  impl_->reducer = std::make_unique<c10d::Reducer>(params, buckets, limits, impl_->pg, std::vector<bool>(params.size(), false), cap,
                                                   /*find_unused_parameters=*/false, /*gradient_as_bucket_view=*/false, names,
                                                   std::min<int64_t>(c10d::kDefaultFirstBucketBytes, cap));
  impl_->reducer->register_comm_hook(std::make_unique<WeightedAllReduce>(impl_->pg, impl_->weight));
}

void Dist::prepare_backward(double weight) {
  if (!impl_->reducer) return;
  *impl_->weight = weight;
  impl_->reducer->rebuild_buckets();  // once, after the first step (as DDP's forward does)
  impl_->reducer->prepare_for_forward();
  impl_->reducer->prepare_for_backward({});
}

}  // namespace attnscope::train
