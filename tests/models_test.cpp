// The min/max network, its tap points, and the fused path's equality with the plain module.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include "data/data.h"
#include "models/models.h"

namespace attnscope::models {
namespace {

MinMaxNet make_net(uint64_t seed, double scale = 1.0) {
  MinMaxNet net(MinMaxNetOptions{});
  auto gen = at::detail::createCPUGenerator(seed);
  net->reset_parameters(gen);
  torch::NoGradGuard g;
  for (auto& p : net->parameters()) p.mul_(scale);
  return net;
}

TEST(MinMaxNet, HasThePublishedParameters) {
  auto net = make_net(0);
  int64_t n = 0;
  for (const auto& p : net->parameters()) n += p.numel();
  EXPECT_EQ(n, 8416);
  const auto params = net->named_parameters();
  EXPECT_EQ(params["W_E"].sizes(), (std::vector<int64_t>{131, 32}));
  EXPECT_EQ(params["W_pos"].sizes(), (std::vector<int64_t>{4, 32}));
  EXPECT_EQ(params["W_Q"].sizes(), (std::vector<int64_t>{2, 16, 32}));
  EXPECT_EQ(params["W_O"].sizes(), (std::vector<int64_t>{2, 32, 16}));
  EXPECT_NEAR(params["W_E"].std().item<double>(), 1 / std::sqrt(32.0), 0.01);
}

TEST(MinMaxNet, InitIsAFunctionOfTheSeed) {
  auto a = make_net(7), b = make_net(7), c = make_net(8);
  EXPECT_TRUE(torch::equal(a->W_Q, b->W_Q));
  EXPECT_FALSE(torch::equal(a->W_Q, c->W_Q));
}

TEST(Taps, OnlyRequestedSitesAreCaptured) {
  auto net = make_net(1);
  data::MinMaxVocab v;
  auto x = data::minmax_grid(v, true).inputs.slice(0, 0, 10);
  Taps none;
  net->forward(x, &none);
  EXPECT_TRUE(none.captured().empty());

  Taps taps;
  taps.request(site::kAttnProbs, {0}, {1});
  taps.request(site::kPooled);
  const auto logits = net->forward(x, &taps);
  EXPECT_EQ(taps.captured().size(), 2u);
  const auto probs = taps.get(site::kAttnProbs, 0);
  ASSERT_TRUE(probs.defined());
  EXPECT_EQ(probs.sizes(), (std::vector<int64_t>{10, 1, 4, 4}));  // head 1 only
  EXPECT_TRUE(torch::allclose(probs.sum(-1), torch::ones({10, 1, 4})));
  EXPECT_FALSE(probs.requires_grad());
  EXPECT_FALSE(taps.get(site::kAttnScores, 0).defined());
  EXPECT_EQ(taps.get(site::kPooled, 0).sizes(), (std::vector<int64_t>{10, 32}));
  // the tap is a copy: the logits do not depend on what the taps hold
  EXPECT_TRUE(torch::allclose(logits, torch::matmul(taps.get(site::kPooled, 0), net->W_E.t().detach())));
}

TEST(Taps, ScoresAndProbsAgree) {
  auto net = make_net(2);
  data::MinMaxVocab v;
  auto x = data::minmax_grid(v, false).inputs.slice(0, 0, 5);
  Taps taps;
  taps.request(site::kAttnScores);
  taps.request(site::kAttnProbs);
  net->forward(x, &taps);
  EXPECT_TRUE(torch::allclose(torch::softmax(taps.get(site::kAttnScores, 0), -1),
                              taps.get(site::kAttnProbs, 0)));
}

// Loss, correct count and every parameter gradient: fused path vs the module through autograd.
void expect_fused_matches_module(double scale, int threads) {
  at::set_num_threads(threads);
  auto net = make_net(3, scale);
  auto gen = at::detail::createCPUGenerator(11);
  const int64_t B = 1000;
  auto x = torch::randint(0, 131, {B, 4}, gen, torch::kLong);  // any token anywhere
  auto y = torch::randint(0, 131, {B}, gen, torch::kLong);

  net->zero_grad();
  auto logits = net->forward(x);
  auto loss = torch::nn::functional::cross_entropy(logits, y);
  loss.backward();
  std::map<std::string, torch::Tensor> ref;
  for (const auto& p : net->named_parameters()) ref[p.key()] = p.value().grad().clone();
  const int64_t ref_correct = (logits.argmax(-1) == y).sum().item<int64_t>();

  net->zero_grad();
  const auto r = minmax_fused_step(*net, x, y, true);
  EXPECT_NEAR(r.loss_sum / B, loss.item<double>(), 1e-5 * std::max(1.0, loss.item<double>()));
  EXPECT_EQ(r.correct, ref_correct);
  for (const auto& p : net->named_parameters()) {
    const auto& g = p.value().grad();
    const double tol = 1e-4 * ref[p.key()].abs().max().item<double>() + 1e-7;
    EXPECT_LT((g - ref[p.key()]).abs().max().item<double>(), tol) << p.key() << " scale " << scale;
  }
  at::set_num_threads(1);
}

TEST(MinMaxFast, SameLossAndGradientsAsTheModule) { expect_fused_matches_module(1.0, 1); }
TEST(MinMaxFast, SameOnTwoThreads) { expect_fused_matches_module(1.0, 2); }
// Large weights: scores spread far beyond exp's range, exercising the exact-softmax fallback.
TEST(MinMaxFast, SameWithExtremeScores) { expect_fused_matches_module(6.0, 1); }

TEST(MinMaxFast, ForwardOnlyNeedsNoGradients) {
  auto net = make_net(4);
  data::MinMaxVocab v;
  const auto ex = data::minmax_grid(v, true);
  const auto r = minmax_fused_step(*net, ex.inputs, ex.targets, false);
  EXPECT_FALSE(r.gS.defined());
  EXPECT_FALSE(net->W_E.grad().defined());
  torch::NoGradGuard g;
  const auto loss = torch::nn::functional::cross_entropy(net->forward(ex.inputs), ex.targets,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  EXPECT_NEAR(r.loss_sum, loss.item<double>(), 1e-4 * loss.item<double>());
}

TEST(MinMaxData, GridAndSplitFollowThePublishedCode) {
  data::MinMaxVocab v;
  const auto g = data::minmax_grid(v, true);
  EXPECT_EQ(g.size(), 128 * 128);
  EXPECT_TRUE(torch::equal(g.inputs[130], torch::tensor({1, 128, 2, 130}, torch::kLong)));  // a-major
  EXPECT_EQ(g.targets[130].item<int64_t>(), 2);
  auto gen = at::detail::createCPUGenerator(0);
  const auto s = data::make_minmax_split(128, 1.0 / 3.0, gen);
  EXPECT_EQ(s.train.size(), 10922);
  EXPECT_EQ(s.val.size(), 21846);
  EXPECT_EQ(data::minmax_text(v, s.train.inputs[0]).back(), '=');
  // every example appears exactly once across the split
  auto all = torch::cat({s.train.inputs, s.val.inputs});
  auto key = all.select(1, 0) * 1000000 + all.select(1, 2) * 1000 + all.select(1, 1);
  EXPECT_EQ(std::get<0>(at::_unique(key)).size(0), 32768);
}

// Golden values from the original PyTorch code (torch 1.13, `torch.manual_seed(0)`, then
// `torch.randperm(32768)` and `torch.randn(131, 32) / sqrt(32)`): attnscope draws the split and the
// initialisation from the same stream in the same order, so seed s here is seed s there.
TEST(MinMaxData, SeedGivesThePyTorchReferenceSplitAndInit) {
  auto gen = at::detail::createCPUGenerator(0);
  const auto s = data::make_minmax_split(128, 1.0 / 3.0, gen);
  // randperm(32768)[:2] = [2732, 22971]: 2732 = max(21, 44); 22971 - 16384 = 6587 = min(51, 59)
  EXPECT_TRUE(torch::equal(s.train.inputs[0], torch::tensor({21, 128, 44, 130}, torch::kLong)));
  EXPECT_TRUE(torch::equal(s.train.inputs[1], torch::tensor({51, 129, 59, 130}, torch::kLong)));
  MinMaxNet net(MinMaxNetOptions{});
  net->reset_parameters(gen);
  EXPECT_FLOAT_EQ(net->W_E[0][0].item<float>(), 0.10685187578201294f);
  EXPECT_FLOAT_EQ(net->W_E[0][1].item<float>(), -0.17288976907730103f);
  EXPECT_FLOAT_EQ(net->W_E[0][2].item<float>(), 0.10674555599689484f);
}

TEST(Batching, EpochOrderIsSeededAndComplete) {
  const auto a = data::epoch_order(100, 5, 1), b = data::epoch_order(100, 5, 1), c = data::epoch_order(100, 5, 2);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_TRUE(torch::equal(std::get<0>(a.sort()), torch::arange(100)));
  const auto batches = data::make_batches(a, 32);
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches.back().size(0), 4);
  EXPECT_EQ(data::make_batches(a, 0).size(), 1u);
}

}  // namespace
}  // namespace attnscope::models
