// Data-parallel training over c10d with Gloo: where this process sits in a run (torchrun's
// environment), the rendezvous, the few collectives the trainer needs and gradient averaging
// through c10d::Reducer (DistributedDataParallel's engine). c10d types stay in distributed.cpp.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/core.h"
#include "train/task.h"

namespace attnscope::train {

// A rank's place in a distributed run, as torchrun describes it (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT).
struct DistEnv {
  int64_t rank = 0, world = 1, local_rank = 0, local_world = 1;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
};

// A rank's share of one global batch: positions rank, rank + world, ... of it (the stride of
// PyTorch's DistributedSampler). A rank left without examples (batch smaller than the world)
// gets the batch's first example as padding, which must weigh 0.
struct RankSlice {
  torch::Tensor idx;  // [b] int64
  bool padding = false;
};
RankSlice rank_slice(const torch::Tensor& batch, int64_t rank, int64_t world);

// The weight of `rank`'s gradient in the sum over ranks: its slice's share of the batch's
// loss denominator (`loss_weight` of each rank's slice: Task::loss_weight), so that per-rank
// batch-mean gradients add up to the global batch-mean gradient also when the batch does not
// divide evenly or labels are missing. 0 for padding, and for all when the batch weighs 0.
template <class LossWeight>
double rank_weight(const torch::Tensor& batch, int64_t rank, int64_t world, const LossWeight& loss_weight) {
  double total = 0, mine = 0;
  for (int64_t r = 0; r < world; ++r) {
    const RankSlice s = rank_slice(batch, r, world);
    const double w = s.padding ? 0.0 : loss_weight(s.idx);
    total += w;
    if (r == rank) mine = w;
  }
  return total > 0 ? mine / total : 0.0;
}

class Dist {
 public:
  // Rendezvous through a c10d TCPStore hosted by rank 0 (or a FileStore, dist.store), then a
  // Gloo process group; every rank's resolved config is exchanged and compared. UsageError
  // naming the address, port or file when the store cannot be bound or reached within
  // dist.timeout_s, and listing the keys when the ranks' configs differ.
  Dist(const DistEnv& env, const Config& config);
  ~Dist();
  Dist(const Dist&) = delete;
  Dist& operator=(const Dist&) = delete;

  int64_t rank() const { return env_.rank; }
  int64_t world() const { return env_.world; }
  const DistEnv& env() const { return env_; }

  // Collectives; each fails (std::runtime_error) after dist.timeout_s.
  void allreduce_sum(torch::Tensor& t);
  void broadcast(torch::Tensor& t, int64_t root = 0);
  void barrier();
  std::string broadcast_string(const std::string& s, int64_t root = 0);

  // One step's forward + backward of `task` over this rank's slice of the global `batch`, its
  // gradient weighted by rank_weight (Task::loss_weight) and summed over the ranks by the
  // Reducer (after attach); the returned statistics are the whole batch's.
  StepStats train_step(Task& task, const torch::Tensor& batch);
  // The validation metrics: rank 0 evaluates the whole split (ROC-AUC and the like do not
  // decompose over ranks) and sends the values, exactly, to the others.
  Metrics evaluate(Task& task);

  // Gradient averaging for `module`: its parameters are broadcast from rank 0, then a
  // c10d::Reducer all-reduces its gradients in buckets of dist.bucket_mb while backward runs.
  void attach(torch::nn::Module& module);
  // Before each step's backward: this rank's gradient enters the sum with `weight`
  // (rank_weight). Exactly one backward must follow.
  void prepare_backward(double weight);

 private:
  struct Impl;
  DistEnv env_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace attnscope::train
