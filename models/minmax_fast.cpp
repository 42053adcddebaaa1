// Fused forward/backward of the min/max network over its per-token tables (models/minmax_fast.h).
#include "models/minmax_fast.h"

#include "models/minmax_kernel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>
#include <vector>

namespace attnscope::models {

MinMaxTables minmax_tables(MinMaxNetImpl& net) {
  const auto& o = net.options();
  const int64_t T = o.seq_len;
  auto x = net.W_E.unsqueeze(0) + net.W_pos.unsqueeze(1);                   // [T,V,D]
  auto q = torch::einsum("hed,vd->hve", {net.W_Q, x.select(0, T - 1)});    // [H,V,Dh]
  auto k = torch::einsum("hed,tvd->htve", {net.W_K, x});                   // [H,T,V,Dh]
  auto v = torch::einsum("hed,tvd->htve", {net.W_V, x});                   // [H,T,V,Dh]
  MinMaxTables t;
  t.S = torch::einsum("hqe,htke->hqtk", {q, k}) / std::sqrt(static_cast<double>(o.d_head));
  auto u = torch::einsum("hde,htve->htvd", {net.W_O, v});                  // [H,T,V,D]
  t.L = torch::matmul(u, net.W_E.t());                                      // [H,T,V,V]
  t.B0 = torch::matmul(x.select(0, T - 1), net.W_E.t());                    // [V,V]
  return t;
}

torch::Tensor minmax_attention_probs(MinMaxNetImpl& net, const torch::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  const auto& o = net.options();
  const int64_t T = o.seq_len, V = o.vocab, H = o.n_heads, B = tokens.size(0);
  auto x = net.W_E.unsqueeze(0) + net.W_pos.unsqueeze(1);              // [T,V,D]
  auto q = torch::einsum("hed,tvd->htve", {net.W_Q, x});              // [H,T,V,Dh]
  auto k = torch::einsum("hed,tvd->htve", {net.W_K, x});
  auto s = torch::matmul(q.reshape({H, T * V, -1}), k.reshape({H, T * V, -1}).transpose(1, 2)) /
           std::sqrt(static_cast<double>(o.d_head));                  // [H, T*V (query), T*V (key)]
  s = s.contiguous();
  const auto tok = tokens.to(torch::kLong).contiguous();
  auto out = torch::empty({B, H, T, T});
  const float* sp = s.data_ptr<float>();
  const int64_t* xp = tok.data_ptr<int64_t>();
  float* op = out.data_ptr<float>();
  const int64_t TV = T * V;
  at::parallel_for(0, B, 256, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t* x = xp + b * T;
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t i = 0; i < T; ++i) {
          const float* srow = sp + (h * TV + i * V + x[i]) * TV;  // query (position i, token x_i)
          float* o = op + ((b * H + h) * T + i) * T;
          float m = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < T; ++j) m = std::max(m, o[j] = srow[j * V + x[j]]);
          float sum = 0;
          for (int64_t j = 0; j < T; ++j) sum += (o[j] = std::exp(o[j] - m));
          for (int64_t j = 0; j < T; ++j) o[j] /= sum;
        }
      }
    }
  });
  return out;
}

namespace {

constexpr int64_t kBlock = 128;
using kernel::Dims;

struct alignas(64) Accum {
  std::vector<float> gS, gL, gB0;
  double loss = 0;
  int64_t correct = 0;
  std::vector<double> head_abs;
};

}  // namespace

FusedResult minmax_fused(const MinMaxTables& tables, const torch::Tensor& tokens,
                         const torch::Tensor& targets, bool want_grad, bool want_head_importance) {
  torch::NoGradGuard no_grad;
  const auto S = tables.S.detach().contiguous();
  const auto L = tables.L.detach().contiguous();
  const auto B0 = tables.B0.detach().contiguous();
  const Dims d{S.size(0), S.size(2), S.size(1)};
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(1) == d.T, "minmax_fused: tokens must be [B,", d.T, "]");
  TORCH_CHECK(targets.size(0) == tokens.size(0), "minmax_fused: targets must be [B]");
  const auto tok = tokens.to(torch::kLong).contiguous();
  const auto tgt = targets.to(torch::kLong).contiguous();
  // exp(S - max over (t,k) for each (h,q)): softmax over the T chosen entries needs no exp per example
  const auto ES = torch::exp(S - std::get<0>(S.view({d.H, d.V, -1}).max(2, true)).unsqueeze(3)).contiguous();

  const int64_t B = tok.size(0);
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (B + kBlock - 1) / kBlock));
  std::vector<Accum> acc(chunks);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      Accum& a = acc[c];
      if (want_grad) {
        a.gS.assign(S.numel(), 0.f);
        a.gL.assign(L.numel(), 0.f);
        a.gB0.assign(B0.numel(), 0.f);
      }
      const int64_t e0 = B * c / chunks, e1 = B * (c + 1) / chunks;
      const bool need_g = want_grad || want_head_importance;
      if (want_head_importance) a.head_abs.assign(d.H, 0.0);
      std::vector<float> logits(kBlock * d.V), g(need_g ? kBlock * d.V : 0);
      std::vector<float> probs(kBlock * d.H * d.T);
      for (int64_t i0 = e0; i0 < e1; i0 += kBlock) {
        const int64_t n = std::min(kBlock, e1 - i0);
        const int64_t* x = tok.data_ptr<int64_t>() + i0 * d.T;
        kernel::block_forward(d, ES.data_ptr<float>(), S.data_ptr<float>(), L.data_ptr<float>(),
                      B0.data_ptr<float>(), x, tgt.data_ptr<int64_t>() + i0, n, logits.data(),
                      probs.data(), need_g ? g.data() : nullptr, &a.loss, &a.correct);
        if (want_head_importance) {
          kernel::block_head_grad(d, L.data_ptr<float>(), x, n, g.data(), probs.data(), a.head_abs.data());
        }
        if (want_grad) {
          kernel::block_backward(d, L.data_ptr<float>(), x, n, g.data(), probs.data(), a.gS.data(),
                         a.gL.data(), a.gB0.data());
        }
      }
    }
  });

  FusedResult r;
  for (const auto& a : acc) {  // fixed order: the result depends on the thread count only
    r.loss_sum += a.loss;
    r.correct += a.correct;
  }
  if (want_head_importance) {
    r.head_importance = torch::zeros({d.H}, torch::kDouble);
    for (const auto& a : acc) {
      for (int64_t h = 0; h < d.H; ++h) r.head_importance[h] += a.head_abs[h];
    }
    r.head_importance /= static_cast<double>(B);
  }
  if (want_grad) {
    const float inv_b = 1.f / static_cast<float>(B);
    auto reduce = [&](std::vector<float> Accum::*field, const torch::Tensor& like) {
      auto out = torch::zeros_like(like);
      float* o = out.data_ptr<float>();
      for (const auto& a : acc) {
        const std::vector<float>& src = a.*field;
        for (size_t j = 0; j < src.size(); ++j) o[j] += src[j];
      }
      return out.mul_(inv_b);
    };
    r.gS = reduce(&Accum::gS, S);
    r.gL = reduce(&Accum::gL, L);
    r.gB0 = reduce(&Accum::gB0, B0);
  }
  return r;
}

FusedResult minmax_fused_step(MinMaxNetImpl& net, const torch::Tensor& tokens,
                              const torch::Tensor& targets, bool backward) {
  if (!backward) {
    torch::NoGradGuard no_grad;
    return minmax_fused(minmax_tables(net), tokens, targets, false);
  }
  MinMaxTables t = minmax_tables(net);
  FusedResult r = minmax_fused(t, tokens, targets, true);
  torch::autograd::backward({t.S, t.L, t.B0}, {r.gS, r.gL, r.gB0});
  return r;
}

}  // namespace attnscope::models
