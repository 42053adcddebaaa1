// Attention metrics (property tests), the HDF5 attention file, and the recorder in real runs:
// recording leaves training bit-identical, a killed run's file stays readable, resume appends.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <cmath>
#include <filesystem>
#include <thread>

#include "core/core.h"
#include "hooks/hooks.h"
#include "models/models.h"
#include "store/store.h"
#include "test_util.h"
#include "train/train.h"

namespace attnscope::hooks {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::map<std::string, double> metrics_of(const torch::Tensor& map, int64_t n) {
  HeadMetrics m;
  m.add(map.view({1, 1, map.size(0), map.size(1)}), torch::tensor({n}));
  std::map<std::string, double> out;
  for (const auto& [k, v] : m.result()) out[k] = v[0].item<double>();
  return out;
}

TEST(HeadMetrics, UniformRows) {
  const int64_t n = 8;
  const auto m = metrics_of(torch::full({n, n}, 1.0 / n), n);
  EXPECT_NEAR(m.at("entropy_norm"), 1.0, 1e-6);
  EXPECT_NEAR(m.at("focus"), std::log(8.0), 1e-6);
  EXPECT_NEAR(m.at("effective_tokens"), 8.0, 1e-5);
  EXPECT_NEAR(m.at("sparsity"), 0.0, 1e-12);
  EXPECT_NEAR(m.at("gini"), 0.0, 1e-6);
  EXPECT_NEAR(m.at("uniformity"), 0.0, 1e-6);
  EXPECT_NEAR(m.at("distribution"), 1.0 / n, 1e-7);
  EXPECT_EQ(static_cast<Pattern>(m.at("pattern")), Pattern::kUniform);
}

TEST(HeadMetrics, OneHotRows) {
  const int64_t n = 5;
  const auto m = metrics_of(torch::eye(n), n);
  EXPECT_NEAR(m.at("focus"), 0.0, 1e-9);
  EXPECT_NEAR(m.at("confidence_avg"), 1.0, 1e-9);
  EXPECT_NEAR(m.at("confidence_max"), 1.0, 1e-9);
  EXPECT_NEAR(m.at("gini"), (n - 1.0) / n, 1e-6);  // the maximum for n keys
  EXPECT_NEAR(m.at("diagonal_mean"), 1.0, 1e-9);
  EXPECT_NEAR(m.at("mean_distance"), 0.0, 1e-9);
  EXPECT_EQ(static_cast<Pattern>(m.at("pattern")), Pattern::kDiagonal);
}

TEST(HeadMetrics, SyntheticPatternsAreClassifiedAsMade) {
  const int64_t n = 10;
  auto bos = torch::zeros({n, n});
  bos.select(1, 0).fill_(1);
  EXPECT_EQ(static_cast<Pattern>(metrics_of(bos, n).at("pattern")), Pattern::kBos);
  auto broadcast = torch::zeros({n, n});
  broadcast.select(1, 6).fill_(1);
  EXPECT_EQ(static_cast<Pattern>(metrics_of(broadcast, n).at("pattern")), Pattern::kBroadcast);
  auto local = torch::zeros({n, n});
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = std::max<int64_t>(0, i - 1); j <= std::min(n - 1, i + 1); ++j) local[i][j] = 1;
  }
  local.select(1, 0).zero_();
  local[0][1] = 1;
  local = local / local.sum(-1, true);
  local.diagonal().mul_(0.5);
  local = local / local.sum(-1, true);
  EXPECT_EQ(static_cast<Pattern>(metrics_of(local, n).at("pattern")), Pattern::kLocal);
  auto block = torch::zeros({n, n});  // two blocks, each half attending within itself
  block.slice(0, 0, 5).slice(1, 0, 5).fill_(0.2);
  block.slice(0, 5).slice(1, 5).fill_(0.2);
  const auto mb = metrics_of(block, n);
  EXPECT_NEAR(mb.at("block_score"), 0.5, 1e-6);  // 1 - 1/m for m = 2 segments
  EXPECT_EQ(static_cast<Pattern>(mb.at("pattern")), Pattern::kBlock);
  // an offset diagonal (each row on the key 3 back) is contiguous too, but one key per row: mixed
  auto offset = torch::zeros({n, n});
  for (int64_t i = 0; i < n; ++i) offset[i][std::max<int64_t>(0, i - 3)] = 1;
  EXPECT_EQ(static_cast<Pattern>(metrics_of(offset, n).at("pattern")), Pattern::kMixed);
}

// The map-level metrics on maps whose values are known.
TEST(HeadMetrics, MapLevelMetrics) {
  const int64_t n = 8;
  const auto u = metrics_of(torch::full({n, n}, 1.0 / n), n);
  EXPECT_NEAR(u.at("diagonal_std"), 0.0, 1e-7);
  EXPECT_NEAR(u.at("matrix_std"), 0.0, 1e-7);
  EXPECT_NEAR(u.at("matrix_gini"), 0.0, 1e-6);
  EXPECT_NEAR(u.at("matrix_median"), 1.0 / n, 1e-7);
  EXPECT_NEAR(u.at("block_score"), 0.0, 1e-6);  // uniform attention: no split beats chance
  EXPECT_NEAR(u.at("max_entropy"), std::log(8.0), 1e-12);
  const auto e = metrics_of(torch::eye(5), 5);  // 25 entries, 5 of them 1
  EXPECT_NEAR(e.at("matrix_gini"), 1.0 - 5.0 / 25.0, 1e-6);
  EXPECT_NEAR(e.at("matrix_median"), 0.0, 1e-9);
  EXPECT_NEAR(e.at("matrix_std"), std::sqrt(0.2 * 0.8), 1e-6);
  EXPECT_NEAR(e.at("diagonal_std"), 0.0, 1e-9);
  // the diagonal half 1, half 0 (rows attending to themselves or to the first token)
  auto half = torch::zeros({4, 4});
  half[0][0] = 1, half[1][0] = 1, half[2][2] = 1, half[3][0] = 1;
  EXPECT_NEAR(metrics_of(half, 4).at("diagonal_std"), 0.5, 1e-6);  // a_ii = 1, 0, 1, 0
  // per-row and matrix-level differ where rows differ: two rows one-hot, two uniform
  auto rows = torch::zeros({4, 4});
  rows[0][0] = 1, rows[1][1] = 1;
  rows.slice(0, 2).fill_(0.25);
  const auto r = metrics_of(rows, 4);
  EXPECT_NEAR(r.at("distribution"), (0.0 + 0.0 + 0.25 + 0.25) / 4, 1e-7);  // mean of row medians
  EXPECT_NEAR(r.at("matrix_median"), 0.25, 1e-7);  // 6 zeros, 8 quarters, 2 ones: the middle two are 0.25
  // causal maps: row i may attend to i + 1 keys, the uniform entropy is ln(i + 1)
  HeadMetrics causal(HeadMetrics::Path::kReference, true);
  causal.add(torch::ones({1, 1, n, n}).tril() / torch::arange(1, n + 1).view({1, 1, n, 1}), torch::tensor({n}));
  EXPECT_NEAR(causal.result().at("max_entropy")[0].item<double>(), std::lgamma(n + 1.0) / n, 1e-12);
  EXPECT_NEAR(causal.result().at("entropy_norm")[0].item<double>(), (n - 1.0) / n, 1e-6);  // row 0 counts 0
}

TEST(HeadMetrics, PaddingIsExcluded) {
  // a 3-token example padded to 6: its metrics equal the unpadded map's
  const auto real = torch::softmax(torch::randn({3, 3}), -1);
  auto padded = torch::zeros({6, 6});
  padded.slice(0, 0, 3).slice(1, 0, 3).copy_(real);
  const auto a = metrics_of(real, 3), b = metrics_of(padded, 3);
  for (const auto& [k, v] : a) EXPECT_NEAR(v, b.at(k), 1e-6) << k;
  EXPECT_NEAR(a.at("entropy_norm"), b.at("entropy_norm"), 1e-9);
  EXPECT_LE(a.at("focus"), std::log(3.0) + 1e-9);
  EXPECT_GE(a.at("focus"), 0.0);
}

TEST(HeadMetrics, FastPathEqualsTheReference) {
  // kFast (4 rows at a time, vector log/exp) against kReference (a row at a time, std::log/exp):
  // the same metrics to 1e-12 relative, the same maxima, minima and pattern classes. Maps of 4
  // tokens (min/max), padded maps of every length up to 8, and longer ones (4 keys at a time).
  auto gen = at::detail::createCPUGenerator(11);
  for (const int64_t T : {4, 3, 6, 8, 12, 45}) {
    const int64_t B = 301, H = 3;
    const auto lengths = T == 4 ? torch::full({B}, T, torch::kLong) : torch::randint(0, T + 1, {B}, gen, torch::kLong);
    // peaked and flat rows, exact zeros and weights below the sparsity threshold
    auto logits = torch::randn({B, H, T, T}, gen) * (torch::rand({B, H, T, 1}, gen) * 12);
    const auto key_ok = torch::arange(T).view({1, 1, 1, T}) < lengths.view({-1, 1, 1, 1});
    const auto row_ok = torch::arange(T).view({1, 1, T, 1}) < lengths.view({-1, 1, 1, 1});
    auto probs = torch::softmax(logits.masked_fill(~key_ok, -INFINITY), -1).masked_fill(~(key_ok & row_ok), 0.0);
    probs = probs.nan_to_num(0.0);
    probs.select(2, 0).select(2, 0).masked_fill_(torch::rand({B, H}, gen) < 0.1, 0.0);  // some exact zeros
    if (T == 45) probs = (probs * 16).round() / 16;  // many ties (Gini and median rank them)
    HeadMetrics fast(HeadMetrics::Path::kFast), ref(HeadMetrics::Path::kReference);
    for (int64_t i = 0; i < B; i += 100) {  // several add() calls, as the recorder's batches
      const auto idx = torch::arange(i, std::min(B, i + 100));
      fast.add(probs.index_select(0, idx), lengths.index_select(0, idx));
      ref.add(probs.index_select(0, idx), lengths.index_select(0, idx));
    }
    const auto a = fast.result(), b = ref.result();
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, v] : b) {
      const auto f = a.at(name);
      for (int64_t h = 0; h < H; ++h) {
        const double x = f[h].item<double>(), y = v[h].item<double>();
        EXPECT_LE(std::abs(x - y), 1e-12 * std::max(1.0, std::abs(y))) << name << " T " << T << " head " << h;
      }
      if (name == "pattern" || name == "weight_max" || name == "weight_min" || name == "confidence_max") {
        EXPECT_TRUE(torch::equal(f, v)) << name << " T " << T;
      }
    }
  }
}

TEST(Analysis, RolloutJsAndTokenImportance) {
  const int64_t P = 3, L = 2, H = 2, T = 5;
  const auto lengths = torch::tensor({5, 4, 2});
  auto eye = torch::eye(T).view({1, 1, 1, T, T}).expand({P, L, H, T, T}).clone();
  const auto r = attention_rollout(eye, lengths);
  for (int64_t p = 0; p < P; ++p) {
    const int64_t n = lengths[p].item<int64_t>();
    EXPECT_TRUE(torch::allclose(r[p].slice(0, 0, n).slice(1, 0, n), torch::eye(n))) << "rollout of identity is identity";
  }
  auto rnd = torch::softmax(torch::randn({P, L, H, T, T}), -1);
  EXPECT_LT(js_divergence(rnd, rnd, lengths).abs().max().item<double>(), 1e-7);
  auto one_hot_a = torch::zeros({P, L, H, T, T}), one_hot_b = torch::zeros({P, L, H, T, T});
  one_hot_a.select(-1, 0).fill_(1);
  one_hot_b.select(-1, 1).fill_(1);
  EXPECT_NEAR(js_divergence(one_hot_a, one_hot_b, lengths).min().item<double>(), 1.0, 1e-6);  // disjoint: 1 bit
  const auto hj = head_js_distance(rnd, lengths);
  EXPECT_EQ(hj.sizes(), (std::vector<int64_t>{L * H, L * H}));
  EXPECT_LT(hj.diagonal().abs().max().item<double>(), 1e-6);
  EXPECT_TRUE(torch::allclose(hj, hj.t(), 1e-6, 1e-7));
  {  // against the definition (Clark et al. 2019), over each probe's real rows and keys
    const auto flat = rnd.view({P, L * H, T, T}).to(torch::kDouble);
    for (int64_t x = 0; x < L * H; ++x) {
      for (int64_t y = 0; y < L * H; ++y) {
        double total = 0, rows = 0;
        for (int64_t p = 0; p < P; ++p) {
          const int64_t n = lengths[p].item<int64_t>();
          const auto a = 0.999 * flat[p][x].slice(0, 0, n).slice(1, 0, n) + 0.001 / n;
          const auto b = 0.999 * flat[p][y].slice(0, 0, n).slice(1, 0, n) + 0.001 / n;
          const auto m = 0.5 * (a + b);
          const auto js = 0.5 * ((a * (a / m).log()).sum(-1) + (b * (b / m).log()).sum(-1));
          total += js.clamp_min(0).sqrt().sum().item<double>();
          rows += static_cast<double>(n);
        }
        EXPECT_NEAR(hj[x][y].item<double>(), total / rows, 1e-6) << "heads " << x << ", " << y;
      }
    }
  }
  const auto ti = token_importance(rnd, lengths);
  EXPECT_TRUE(torch::allclose(ti.sum(-1), torch::ones({P})));
  EXPECT_EQ(ti[2].slice(0, 2).abs().sum().item<double>(), 0.0) << "padding receives nothing";
  EXPECT_TRUE(torch::allclose(token_importance_rollout(rnd, lengths).sum(-1), torch::ones({P})));
}

// Attention flow (Abnar & Zuidema 2020): with one layer the only path from input j to the readout
// is the edge c[r][j], so flow equals rollout; through several layers every flow respects the
// capacities and is conserved at the inner nodes; and the readout of a causal model is its last token.
TEST(Analysis, AttentionFlowProperties) {
  auto gen = at::detail::createCPUGenerator(5);
  const int64_t P = 3, H = 2, T = 7;
  const auto lengths = torch::tensor({7, 4, 5});
  const auto one = torch::softmax(torch::randn({P, 1, H, T, T}, gen) * 2, -1);
  for (bool causal : {false, true}) {
    const auto f = token_importance_flow(one, lengths, causal), r = token_importance_rollout(one, lengths, causal);
    for (int64_t p = 0; p < P; ++p) {
      const int64_t n = lengths[p].item<int64_t>();
      EXPECT_TRUE(torch::allclose(f[p].slice(0, 0, n), r[p].slice(0, 0, n), 1e-5, 1e-7)) << "probe " << p << " causal " << causal;
      EXPECT_EQ(f[p].slice(0, n).abs().sum().item<double>(), 0.0) << "padding carries no flow";
    }
  }
  const auto deep = torch::softmax(torch::randn({1, 3, H, T, T}, gen) * 3, -1);
  const auto cap = flow_capacities(deep[0], T);
  for (int64_t source = 0; source < T; ++source) {
    const auto fl = attention_flow(cap, source, 0);
    const auto& e = fl.edges;  // [L,n,n]: from j below layer l to i above it
    EXPECT_GE(e.min().item<double>(), 0.0);
    EXPECT_LE((e - cap).max().item<double>(), 1e-12) << "within capacity";
    EXPECT_GT(fl.value, 0.0);
    EXPECT_LE(fl.value, 1.0 + 1e-12) << "the readout receives at most its row, which sums to 1";
    EXPECT_NEAR(e[0].select(1, source).sum().item<double>(), fl.value, 1e-9) << "out of the source";
    EXPECT_NEAR(e[0].sum().item<double>(), fl.value, 1e-9) << "only the source sends";
    EXPECT_NEAR(e[2][0].sum().item<double>(), fl.value, 1e-9) << "into the sink";
    for (int64_t l = 1; l < 3; ++l) {  // the nodes between layers l-1 and l: in = out
      EXPECT_LT((e[l - 1].sum(1) - e[l].sum(0)).abs().max().item<double>(), 1e-9) << "conservation at level " << l;
    }
    EXPECT_LT(e[2].slice(0, 1).abs().sum().item<double>(), 1e-12) << "nothing reaches other top tokens";
  }
  // identity attention: each token keeps its own, so only token 0 reaches readout 0
  const auto eye = torch::eye(T).view({1, 1, 1, T, T}).expand({1, 2, H, T, T}).contiguous();
  const auto fi = token_importance_flow(eye, torch::tensor({T}));
  EXPECT_NEAR(fi[0][0].item<double>(), 1.0, 1e-9);
  EXPECT_NEAR(fi[0].slice(0, 1).abs().sum().item<double>(), 0.0, 1e-9);
  // long probes are left out (NaN), not cut
  EXPECT_TRUE(token_importance_flow(one, lengths, false, 5)[0].isnan().all().item<bool>());
  EXPECT_FALSE(token_importance_flow(one, lengths, false, 5)[1].isnan().any().item<bool>());
}

TEST(MinMaxAttention, FusedHeadImportanceEqualsTheModuleGateGradient) {
  models::MinMaxNet net(models::MinMaxNetOptions{});
  auto gen = at::detail::createCPUGenerator(6);
  net->reset_parameters(gen);
  auto x = torch::randint(0, 131, {500, 4}, gen, torch::kLong);
  auto y = torch::randint(0, 131, {500}, gen, torch::kLong);
  auto gate = torch::ones({500, 2}, torch::requires_grad());
  const auto loss = torch::nn::functional::cross_entropy(net->forward(x, nullptr, gate), y,
                                                         torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  const auto ref = torch::autograd::grad({loss}, {gate})[0].abs().mean(0).to(torch::kDouble);
  torch::NoGradGuard ng;
  const auto fast = models::minmax_fused(models::minmax_tables(*net), x, y, false, true).head_importance;
  EXPECT_TRUE(torch::allclose(fast, ref, 1e-4, 1e-6)) << fast << ref;
  EXPECT_FALSE(net->W_E.grad().defined()) << "no parameter gradients left behind";
}

TEST(MinMaxAttention, TableProbsEqualTheModuleTap) {
  models::MinMaxNet net(models::MinMaxNetOptions{});
  auto gen = at::detail::createCPUGenerator(5);
  net->reset_parameters(gen);
  auto x = torch::randint(0, 131, {300, 4}, gen, torch::kLong);
  models::Taps taps;
  taps.request(models::site::kAttnProbs);
  net->forward(x, &taps);
  EXPECT_TRUE(torch::allclose(models::minmax_attention_probs(*net, x), taps.get(models::site::kAttnProbs, 0), 1e-5, 1e-6));
}

TEST(MinMaxAttention, TableProbsAreTheScalarSoftmaxBitForBit) {
  // minmax_attention_probs (vectorised, with glibc's expf algorithm) against the plain loop it
  // replaced: std::exp of each score minus its row maximum, divided by the row sum. Scaled-up
  // weights push scores far apart, so that rows underflow to subnormals and zeros too.
  for (const double scale : {1.0, 6.0, 400.0}) {
    models::MinMaxNet net(models::MinMaxNetOptions{});
    auto gen = at::detail::createCPUGenerator(7);
    net->reset_parameters(gen);
    torch::NoGradGuard ng;
    net->W_Q.mul_(scale);
    // tokens anywhere (the table's every row and column used), and min/max examples (a op b =: 259)
    auto x = torch::randint(0, 131, {3000, 4}, gen, torch::kLong);
    auto mm = torch::randint(0, 128, {3000, 4}, gen, torch::kLong);
    mm.select(1, 1).copy_(128 + torch::randint(0, 2, {3000}, gen, torch::kLong));
    mm.select(1, 3).fill_(130);
    x = torch::cat({x, mm});
    const int64_t T = 4, V = 131, H = 2;
    auto e = net->W_E.unsqueeze(0) + net->W_pos.unsqueeze(1);
    auto q = torch::einsum("hed,tvd->htve", {net->W_Q, e}), k = torch::einsum("hed,tvd->htve", {net->W_K, e});
    const auto s = (torch::matmul(q.reshape({H, T * V, -1}), k.reshape({H, T * V, -1}).transpose(1, 2)) / std::sqrt(16.0))
                       .contiguous();
    auto ref = torch::empty({x.size(0), H, T, T});
    const auto sa = s.accessor<float, 3>();
    const auto xa = x.accessor<int64_t, 2>();
    auto ra = ref.accessor<float, 4>();
    for (int64_t b = 0; b < x.size(0); ++b) {
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t i = 0; i < T; ++i) {
          float m = -INFINITY, sum = 0;
          for (int64_t j = 0; j < T; ++j) m = std::max(m, ra[b][h][i][j] = sa[h][i * V + xa[b][i]][j * V + xa[b][j]]);
          for (int64_t j = 0; j < T; ++j) sum += (ra[b][h][i][j] = std::exp(ra[b][h][i][j] - m));
          for (int64_t j = 0; j < T; ++j) ra[b][h][i][j] /= sum;
        }
      }
    }
    const auto fast = models::minmax_attention_probs(*net, x);
    // The recorder's way (reused memory; one of each kind) computes what the plain call does. (On a
    // subset of the examples the score table holds fewer (position, token) pairs than the
    // reference's full product, and OpenBLAS may round a product of another shape differently in
    // the last bit, as its Zen kernels do: the softmax is checked on all examples below.)
    const auto part = models::minmax_attention_probs(*net, x.slice(0, 3000));
    models::MinMaxAttentionBuffers buffers;
    EXPECT_TRUE(torch::equal(models::minmax_attention_probs(*net, x.slice(0, 3000), &buffers), part));
    EXPECT_TRUE(torch::equal(models::minmax_attention_probs(*net, x.slice(0, 3000), &buffers), part));
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 27))
    EXPECT_TRUE(torch::equal(fast, ref)) << "scale " << scale << ": max |diff| " << (fast - ref).abs().max().item<double>();
#else  // another libm's expf: within a few ulp
    EXPECT_TRUE(torch::allclose(fast, ref, 1e-6, 1e-30)) << "scale " << scale;
#endif
    if (scale == 400.0) {
      EXPECT_GT((ref == 0).sum().item<int64_t>(), 0) << "some weights underflow to 0";
      EXPECT_GT(((ref > 0) & (ref < 1e-38)).sum().item<int64_t>(), 0) << "and some to subnormals";
    }
  }
}

TEST(MinMaxAttention, LastRowAttentionIsTheModuleTap) {
  // the recorder's task arrays (row "=" over every (a, b) pair) without the rest of the forward
  for (const uint64_t seed : {3, 4}) {
    models::MinMaxNet net(models::MinMaxNetOptions{});
    auto gen = at::detail::createCPUGenerator(seed);
    net->reset_parameters(gen);
    torch::NoGradGuard ng;
    const auto x = torch::randint(0, 131, {16384, 4}, gen, torch::kLong);
    models::Taps taps;
    taps.request(models::site::kAttnProbs);
    taps.request(models::site::kAttnScores);
    net->forward(x, &taps);
    const auto row = models::minmax_last_row_attention(*net, x);
    // Bit for bit where OpenBLAS rounds the projections of one row and of all rows alike (seen on
    // Intel machines); its AMD Zen kernels round a product of another shape differently in the
    // last bit, so float rounding is what is guaranteed.
    const auto scores = taps.get(models::site::kAttnScores, 0).select(2, 3), probs = taps.get(models::site::kAttnProbs, 0).select(2, 3);
    EXPECT_TRUE(torch::allclose(row.scores, scores, 1e-5, 1e-6)) << (row.scores - scores).abs().max().item<double>();
    EXPECT_TRUE(torch::allclose(row.probs, probs, 1e-5, 1e-7)) << (row.probs - probs).abs().max().item<double>();
  }
}

store::Header small_header(const std::string& dtype) {
  store::Header h;
  h.attnscope_version = "test";
  h.config_yaml = "run: {}";
  h.model_json = "{}";
  h.sites = {"attn.probs"};
  h.layer_ids = {0};
  h.head_ids = {0, 1};
  h.metrics = {"focus"};
  h.dtype = dtype;
  return h;
}

store::Analyses small_analyses(float v) {
  return {{"js_prev", std::vector<float>(2, v)}, {"head_importance", std::vector<float>(2, v)}, {"head_js", std::vector<float>(4, v)},
          {"token_importance", std::vector<float>(6, v)}, {"token_importance_rollout", std::vector<float>(6, v)},
          {"token_importance_flow", std::vector<float>(6, v)}, {"grad_input", std::vector<float>(6, v)},
          {"attn_grad", std::vector<float>(4, v)}};
}

store::Probes small_probes() {
  store::Probes p;
  p.count = 2;
  p.max_len = 3;
  p.input_ids = {1, 2, 3, 4, 5, 0};
  p.lengths = {3, 2};
  p.tokens = {"a", "b", "c", "d", "e", ""};
  p.text = {"a b c", "d e"};
  p.source = {7, -1};
  return p;
}

TEST(Store, RoundTripAndResumeTruncation) {
  for (const std::string dtype : {"float32", "float16"}) {
    TempDir d;
    const std::string path = d.path("a.h5");
    std::vector<float> map(2 * 1 * 2 * 3 * 3);
    for (size_t i = 0; i < map.size(); ++i) map[i] = static_cast<float>(i) / 64;
    {
      auto w = store::Writer::create(path, small_header(dtype), small_probes());
      for (int64_t e : {0, 5, 10}) {
        w->append_epoch({e, e * 2, 1.5}, {{"attn.probs", map}}, small_analyses(static_cast<float>(e)));
        w->append_metrics(e, {{"focus", {0.1f * e, 0.2f}}});
      }
      w->write_best({5, 10, 2.0}, {{"attn.probs", map}});
      EXPECT_THROW(store::Writer::create(path, small_header(dtype), small_probes()), UsageError);
    }
    {
      store::Reader r(path);
      EXPECT_EQ(r.header().head_ids, (std::vector<int64_t>{0, 1}));
      EXPECT_EQ(r.header().dtype, dtype);
      EXPECT_EQ(r.probes().tokens[3], "d");
      EXPECT_EQ(r.probes().lengths[1], 2);
      ASSERT_EQ(r.epochs().size(), 3u);
      EXPECT_EQ(r.epochs()[2].epoch, 10);
      EXPECT_EQ(r.map("attn.probs", 1), map);  // exact in float16 too: multiples of 1/64 below 1
      EXPECT_EQ(r.best().epoch, 5);
      EXPECT_EQ(r.metric_epochs(), (std::vector<int64_t>{0, 5, 10}));
      EXPECT_FLOAT_EQ(r.metric("focus")[4], 1.0f);
      EXPECT_THROW(r.map("attn.scores", 0), UsageError);
    }
    {
      auto w = store::Writer::resume(path, 5);  // a checkpoint at epoch 5: drop epoch 10
      EXPECT_EQ(w->epochs_recorded(), 2);
      EXPECT_EQ(w->read_map("attn.probs", 1), map);
      w->append_epoch({6, 12, 3.0}, {{"attn.probs", map}}, small_analyses(6));
    }
    store::Reader r(path);
    std::vector<int64_t> epochs;
    for (const auto& e : r.epochs()) epochs.push_back(e.epoch);
    EXPECT_EQ(epochs, (std::vector<int64_t>{0, 5, 6}));
    EXPECT_EQ(r.metric_epochs(), (std::vector<int64_t>{0, 5}));
    EXPECT_EQ(r.analysis("token_importance", 2), std::vector<float>(6, 6.f));
    EXPECT_THROW(r.analysis("nonsense", 0), UsageError);
  }
}

TEST(Store, ForeignFilesAreRefused) {
  TempDir d;
  testing::write_text(d.path("x.h5"), "not hdf5");
  EXPECT_THROW(store::Reader(d.path("x.h5")), UsageError);
  EXPECT_THROW(store::Reader(d.path("missing.h5")), UsageError);
}

std::vector<std::string> recorded_run(const std::string& out, int epochs, bool enabled) {
  auto a = testing::small_minmax(out, epochs);
  a.push_back(std::string("hooks.attention.enabled=") + (enabled ? "true" : "false"));
  a.push_back("hooks.attention.every=5");
  a.push_back("hooks.attention.probes=8");
  return a;
}

TEST(Recorder, RecordingLeavesTrainingBitIdentical) {
  TempDir d;
  ASSERT_EQ(testing::run_cli(recorded_run(d.path("on"), 12, true)), 0);
  ASSERT_EQ(testing::run_cli(recorded_run(d.path("off"), 12, false)), 0);
  EXPECT_EQ(testing::metrics_without_seconds(d.path("on/metrics.jsonl")),
            testing::metrics_without_seconds(d.path("off/metrics.jsonl")));
  EXPECT_FALSE(fs::exists(d.path("off/attention.h5")));

  store::Reader r(d.path("on/attention.h5"));
  std::vector<int64_t> epochs;
  for (const auto& e : r.epochs()) epochs.push_back(e.epoch);
  EXPECT_EQ(epochs, (std::vector<int64_t>{0, 5, 10, 12}));  // before training, every 5, the last
  EXPECT_EQ(r.probes().count, 8);
  EXPECT_EQ(r.probes().text[0], "0 max 0 =");
  EXPECT_TRUE(r.has_best());
  EXPECT_EQ(r.metric_epochs(), (std::vector<int64_t>{0, 5, 10, 12}));  // metrics at the recorded epochs
  // every recorded map: rows of real tokens sum to 1
  for (size_t e = 0; e < epochs.size(); ++e) {
    const auto m = torch::tensor(r.map("attn.probs", static_cast<int64_t>(e))).view({8, 1, 2, 4, 4});
    EXPECT_LT((m.sum(-1) - 1).abs().max().item<double>(), 1e-5);
  }
  // the stored scores are the pre-softmax values of the stored probabilities
  // JS from the final epoch: zero for the final epoch itself, positive before training
  EXPECT_LT(torch::tensor(r.analysis("js_final", 3)).abs().max().item<double>(), 1e-7);
  EXPECT_GT(torch::tensor(r.analysis("js_final", 0)).min().item<double>(), 0.0);
  EXPECT_EQ(torch::tensor(r.analysis("js_prev", 0)).abs().max().item<double>(), 0.0);
  const auto s = torch::tensor(r.map("attn.scores", 3)).view({8, 1, 2, 4, 4});
  const auto p = torch::tensor(r.map("attn.probs", 3)).view({8, 1, 2, 4, 4});
  EXPECT_TRUE(torch::allclose(torch::softmax(s, -1), p, 1e-5, 1e-6));
}

TEST(Recorder, MechanismOverTrainingComesFromTheRecordedProbes) {
  TempDir d;
  ASSERT_EQ(testing::run_cli(recorded_run(d.path("run"), 10, true)), 0);
  const auto history = hooks::recorded_history(d.path("run/attention.h5"));
  ASSERT_TRUE(history.has_value());
  const auto series = analysis::minmax_over_training(*history, 32);  // 32 numbers: "max" is 32
  ASSERT_EQ(series.size(), 3u);  // epochs 0, 5, 10
  EXPECT_EQ(series.back().first, 10);
  ASSERT_EQ(series.back().second.size(), 2u);
  EXPECT_EQ(series.back().second[0].op, "max");
  std::ifstream in(d.path("run/mechanism.json"));
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("over_training").size(), 3u);
  EXPECT_EQ(j.at("mechanism").size(), 2u);
  // the same numbers as mechanism.json's, from the analysis library over the recorded probes
  EXPECT_EQ(j.at("over_training").back().at("max").at("sink_head"), series.back().second[0].sink_head);
  EXPECT_DOUBLE_EQ(j.at("over_training").back().at("max").at("sink_mass_on_op").get<double>(),
                   series.back().second[0].sink_mass);
  // the file names its task (viz reads it rather than guessing from the model)
  EXPECT_EQ(store::Reader(d.path("run/attention.h5")).header().task, "minmax");
  EXPECT_FALSE(hooks::recorded_history(d.path("run/none.h5")).has_value());
}

TEST(Recorder, BadProbeFileExitsTwoAndWritesNothing) {
  TempDir d;
  testing::write_text(d.path("probes.txt"), "3 32 5 34\n3 32 999 34\n");  // 32 numbers: max=32, "="=34
  auto a = recorded_run(d.path("run"), 3, true);
  a.push_back("hooks.attention.probe_file=" + d.path("probes.txt"));
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(testing::run_cli(a), 2);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("probes.txt:2"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(d.path("run")));
}

TEST(Recorder, ProbeFileIsUsedInOrder) {
  TempDir d;
  testing::write_text(d.path("probes.txt"), "# a comment\n3 32 5 34\n\n9 33 2 34\n");
  auto a = recorded_run(d.path("run"), 2, true);
  a.push_back("hooks.attention.probe_file=" + d.path("probes.txt"));
  ASSERT_EQ(testing::run_cli(a), 0);
  store::Reader r(d.path("run/attention.h5"));
  EXPECT_EQ(r.probes().text, (std::vector<std::string>{"3 max 5 =", "9 min 2 ="}));
}

TEST(Recorder, ResumeWithAForeignAttentionFileLeavesTheRunUntouched) {
  TempDir d;
  ASSERT_EQ(testing::run_cli(recorded_run(d.path("run"), 4, true)), 0);
  testing::write_text(d.path("run/attention.h5"), "overwritten by something else");
  const auto before = testing::read_lines(d.path("run/metrics.jsonl"));
  auto a = recorded_run(d.path("run"), 8, true);
  a.insert(a.begin() + 1, "--resume");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(testing::run_cli(a), 2);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("attention.h5"), std::string::npos) << err;
  EXPECT_EQ(testing::read_lines(d.path("run/metrics.jsonl")), before);
  EXPECT_EQ(testing::read_lines(d.path("run/attention.h5")).front(), "overwritten by something else");
}

TEST(Commands, SnapshotOfAFrozenModelAndTheMetricsTable) {
  TempDir d;
  ASSERT_EQ(testing::run_cli(recorded_run(d.path("run"), 6, true)), 0);
  ASSERT_EQ(testing::run_cli({"snapshot", "--model", d.path("run"), "--ids", "3 32 5 34", "9 33 2 34", "--out",
                              d.path("snap.h5")}),
            0);
  store::Reader r(d.path("snap.h5"));
  ASSERT_EQ(r.epochs().size(), 1u);
  EXPECT_EQ(r.probes().text, (std::vector<std::string>{"3 max 5 =", "9 min 2 ="}));
  EXPECT_TRUE(r.header().metrics.empty());
  // the same maps as the module gives for these inputs at the checkpoint's weights
  const auto m = torch::tensor(r.map("attn.probs", 0)).view({2, 1, 2, 4, 4});
  EXPECT_LT((m.sum(-1) - 1).abs().max().item<double>(), 1e-5);

  ::testing::internal::CaptureStderr();
  EXPECT_EQ(testing::run_cli({"snapshot", "--model", d.path("run"), "--ids", "3 32 5", "--out", d.path("bad.h5")}), 2);
  EXPECT_EQ(testing::run_cli({"snapshot", "--model", d.path("run"), "--ids", "1 32 1 34", "--out", d.path("snap.h5")}), 2);
  EXPECT_EQ(testing::run_cli({"snapshot", "--model", d.path("nothing"), "--ids", "1 32 1 34", "--out", d.path("x.h5")}), 2);
  EXPECT_EQ(testing::run_cli({"metrics", d.path("run"), "--epoch", "99"}), 2);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("--ids:1"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(d.path("bad.h5")));

  ::testing::internal::CaptureStdout();
  EXPECT_EQ(testing::run_cli({"metrics", d.path("run"), "--csv"}), 0);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 3) << out;  // header + 1 layer x 2 heads
  EXPECT_NE(out.find("epoch,layer,head,confidence_max"), std::string::npos) << out;
}


std::vector<int64_t> epochs_of(const std::string& path) {
  store::Reader r(path);
  std::vector<int64_t> e;
  for (const auto& x : r.epochs()) e.push_back(x.epoch);
  return e;
}

TEST(Recorder, KilledRunKeepsAReadableFileAndResumeAppendsWithoutDuplicates) {
  TempDir d;
  const int epochs = 120;
  auto args = [&](const std::string& out) {
    auto a = recorded_run(out, epochs, true);
    a.push_back("hooks.attention.every=1");
    a.push_back("train.checkpoint_every=4");
    a.push_back("model.fast_path=false");
    return a;
  };
  ASSERT_EQ(testing::wait_exit(testing::spawn(args(d.path("full")))), 0);

  const pid_t pid = testing::spawn(args(d.path("killed")));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (testing::read_lines(d.path("killed/metrics.jsonl")).size() < 30 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  ::kill(pid, SIGKILL);
  EXPECT_EQ(testing::wait_exit(pid), -SIGKILL);
  ASSERT_LT(testing::read_lines(d.path("killed/metrics.jsonl")).size(), static_cast<size_t>(epochs));

  // the killed file opens and every epoch it lists is complete
  {
    store::Reader r(d.path("killed/attention.h5"));
    const auto e = r.epochs();
    ASSERT_GE(e.size(), 2u);
    for (size_t i = 0; i < e.size(); ++i) {
      EXPECT_EQ(e[i].epoch, static_cast<int64_t>(i));
      const auto m = torch::tensor(r.map("attn.probs", static_cast<int64_t>(i))).view({8, 1, 2, 4, 4});
      EXPECT_LT((m.sum(-1) - 1).abs().max().item<double>(), 1e-5) << "epoch " << i;
    }
  }
  auto resume = args(d.path("killed"));
  resume.insert(resume.begin() + 1, "--resume");
  ASSERT_EQ(testing::wait_exit(testing::spawn(resume)), 0);
  std::vector<int64_t> expected(epochs + 1);
  for (int i = 0; i <= epochs; ++i) expected[i] = i;
  EXPECT_EQ(epochs_of(d.path("killed/attention.h5")), expected);
  store::Reader a(d.path("full/attention.h5")), b(d.path("killed/attention.h5"));
  EXPECT_EQ(a.map("attn.probs", epochs), b.map("attn.probs", epochs));
  EXPECT_EQ(a.metric_epochs(), b.metric_epochs());
  EXPECT_EQ(a.metric("focus"), b.metric("focus"));
  // equal, NaN where NaN (min/max makes no prediction for gradient attribution)
  auto same = [](const std::vector<float>& x, const std::vector<float>& y) {
    return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), [](float u, float v) {
             return u == v || (std::isnan(u) && std::isnan(v));
           });
  };
  for (const auto& name : store::analysis_names()) EXPECT_TRUE(same(a.analysis(name, epochs), b.analysis(name, epochs))) << name;
  EXPECT_EQ(a.analysis("js_final", 3), b.analysis("js_final", 3));
}

// The recorder writes in the background: a run killed after last.pt named epoch e but before e's
// record reached the file resumes by recording e from the checkpoint's weights, as if never lost.
TEST(Recorder, AnEpochLostInTheBackgroundIsRecordedOnResume) {
  TempDir d;
  auto args = [&](const std::string& out) {
    auto a = recorded_run(out, 8, true);
    a.push_back("hooks.attention.every=2");
    a.push_back("train.checkpoint_every=4");
    a.push_back("train.keep_every=4");
    return a;
  };
  ASSERT_EQ(testing::run_cli(args(d.path("full"))), 0);
  fs::copy(d.path("full"), d.path("lost"), fs::copy_options::recursive);
  fs::copy_file(d.path("lost/checkpoints/epoch-000004.pt"), d.path("lost/checkpoints/last.pt"),
                fs::copy_options::overwrite_existing);
  store::Writer::resume(d.path("lost/attention.h5"), 3);  // epoch 4's maps and metrics never arrived
  EXPECT_EQ(epochs_of(d.path("lost/attention.h5")), (std::vector<int64_t>{0, 2}));
  auto resume = args(d.path("lost"));
  resume.insert(resume.begin() + 1, "--resume");
  ASSERT_EQ(testing::run_cli(resume), 0);
  EXPECT_EQ(epochs_of(d.path("lost/attention.h5")), (std::vector<int64_t>{0, 2, 4, 6, 8}));
  store::Reader a(d.path("full/attention.h5")), b(d.path("lost/attention.h5"));
  EXPECT_EQ(a.map("attn.probs", 2), b.map("attn.probs", 2));
  EXPECT_EQ(a.map("attn.probs", 4), b.map("attn.probs", 4));
  EXPECT_EQ(a.metric_epochs(), b.metric_epochs());
  EXPECT_EQ(a.analysis("js_prev", 2), b.analysis("js_prev", 2));
  EXPECT_EQ(a.analysis("js_prev", 3), b.analysis("js_prev", 3));
  EXPECT_EQ(testing::metrics_without_seconds(d.path("full/metrics.jsonl")),
            testing::metrics_without_seconds(d.path("lost/metrics.jsonl")));
}

TEST(Recorder, ReadableByH5pyWithoutAttnscope) {
  if (std::system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") != 0) {
    GTEST_SKIP() << "python3-h5py is not installed";
  }
  TempDir d;
  ASSERT_EQ(testing::run_cli(recorded_run(d.path("run"), 6, true)), 0);
  const std::string script = d.path("check.py");
  testing::write_text(script,
                      "import sys, h5py, numpy as np\n"
                      "f = h5py.File(sys.argv[1], 'r', swmr=True)\n"
                      "assert f.attrs['schema_version'] == 1\n"
                      "p = f['attn/probs']\n"
                      "assert p.shape == (3, 8, 1, 2, 4, 4), p.shape\n"
                      "assert np.allclose(p[...].sum(-1), 1, atol=1e-5)\n"
                      "assert list(f['epochs/epoch'][...]) == [0, 5, 6]\n"
                      "assert f['probes/text'][0].decode() == '0 max 0 ='\n"
                      "assert f['metrics/focus'].shape[1:] == (1, 2)\n"
                      "print('ok')\n");
  EXPECT_EQ(std::system(("/usr/bin/python3 " + script + " " + d.path("run/attention.h5")).c_str()), 0);
  // a file from a newer attnscope is refused with what to do
  fs::copy_file(d.path("run/attention.h5"), d.path("newer.h5"));
  const std::string bump = "import h5py; f = h5py.File('" + d.path("newer.h5") + "', 'r+', swmr=False); f.attrs['schema_version'] = 99";
  ASSERT_EQ(std::system(("/usr/bin/python3 -c \"" + bump + "\"").c_str()), 0);
  try {
    store::Reader r(d.path("newer.h5"));
    FAIL() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 99"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace attnscope::hooks
