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
namespace {
constexpr int64_t kBlock = 128;  // examples per call of a kernel
}  // namespace

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

torch::Tensor minmax_attention_probs(MinMaxNetImpl& net, const torch::Tensor& tokens,
                                     MinMaxAttentionBuffers* buffers) {
  torch::NoGradGuard no_grad;
  const auto& o = net.options();
  const int64_t T = o.seq_len, V = o.vocab, H = o.n_heads, B = tokens.size(0);
  auto x = net.W_E.unsqueeze(0) + net.W_pos.unsqueeze(1);              // [T,V,D]
  auto q = torch::einsum("hed,tvd->htve", {net.W_Q, x});              // [H,T,V,Dh]
  auto k = torch::einsum("hed,tvd->htve", {net.W_K, x});
  const auto tok = tokens.to(torch::kLong).contiguous();
  // the (position, token) pairs the examples hold: the table's rows and columns (the min/max
  // validation split: 259 of 524)
  std::vector<int32_t> slot(T * V, -1);
  const int64_t* xp = tok.data_ptr<int64_t>();
  for (int64_t i = 0; i < B * T; ++i) slot[(i % T) * V + xp[i]] = 0;
  std::vector<int64_t> used;
  for (int64_t r = 0; r < T * V; ++r) {
    if (slot[r] == 0) {
      slot[r] = static_cast<int32_t>(used.size());
      used.push_back(r);
    }
  }
  const int64_t R = static_cast<int64_t>(used.size());
  const auto rows = torch::tensor(used, torch::kLong);
  const auto qr = q.reshape({H, T * V, -1}).index_select(1, rows);
  const auto kt = k.reshape({H, T * V, -1}).index_select(1, rows).transpose(1, 2);
  // the scores over sqrt(d_head), as the module divides them (a float tensor by a scalar: by the
  // scalar as a float), for the entries the examples use only: in the kernel
  const float scale = static_cast<float>(std::sqrt(static_cast<double>(o.d_head)));
  torch::Tensor s;  // [H, R (query), R (key)], unscaled
  if (buffers != nullptr) {  // into reused memory
    if (!buffers->scores.defined() || buffers->scores.sizes() != torch::IntArrayRef({H, R, R})) {
      buffers->scores = torch::empty({H, R, R});
    }
    s = torch::matmul_out(buffers->scores, qr, kt);
  } else {
    s = torch::matmul(qr, kt).contiguous();
  }
  torch::Tensor out;
  if (buffers != nullptr) {
    if (!buffers->probs.defined() || buffers->probs.sizes() != torch::IntArrayRef({B, H, T, T})) {
      buffers->probs = torch::empty({B, H, T, T});
    }
    out = buffers->probs;
  } else {
    out = torch::empty({B, H, T, T});
  }
  const float* sp = s.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, B, 1024, [&](int64_t b0, int64_t b1) {
    for (int64_t i0 = b0; i0 < b1; i0 += kBlock) {  // blocks that stay in L1 between the kernel's passes
      const int64_t n = std::min(kBlock, b1 - i0);
      kernel::attention_probs(kernel::Dims{H, T, V}, sp, R, slot.data(), scale, xp + i0 * T, n, op + i0 * H * T * T);
    }
  });
  return out;
}

LastRowAttention minmax_last_row_attention(MinMaxNetImpl& net, const torch::Tensor& tokens) {
  torch::NoGradGuard no_grad;
  const int64_t B = tokens.size(0), T = tokens.size(1), H = net.options().n_heads;
  LastRowAttention r{torch::empty({B, H, T}), torch::empty({B, H, T})};
  for (int64_t b0 = 0; b0 < B; b0 += 2048) {  // in blocks that stay in cache
    const auto x = tokens.slice(0, b0, std::min(B, b0 + 2048));
    const int64_t n = x.size(0);
    // as MinMaxNetImpl::forward
    auto h = net.W_E.index_select(0, x.reshape({-1})).view({n, T, -1}) + net.W_pos.slice(0, 0, T);  // [n,T,D]
    auto q = torch::einsum("hed,btd->bhte", {net.W_Q, h.slice(1, T - 1, T)});  // [n,H,1,Dh]: the last query
    auto k = torch::einsum("hed,btd->bhte", {net.W_K, h}).contiguous();        // [n,H,T,Dh]
    // q k^T: the module's matmul of [T,Dh] by [Dh,T] per (example, head) is ATen's plain loop for
    // products this small (baddbmm_cpu_kernel: a float sum over Dh in order), the same here for
    // its last row
    const auto qc = q.contiguous();
    auto scores = torch::empty({n, H, 1, T});
    const int64_t Dh = k.size(3);
    const float* qp = qc.data_ptr<float>();
    const float* kp = k.data_ptr<float>();
    float* sp = scores.data_ptr<float>();
    for (int64_t bh = 0; bh < n * H; ++bh) {
      for (int64_t j = 0; j < T; ++j) {
        float acc = 0;
        for (int64_t e = 0; e < Dh; ++e) acc += qp[bh * Dh + e] * kp[(bh * T + j) * Dh + e];
        sp[bh * T + j] = acc;
      }
    }
    scores.div_(std::sqrt(static_cast<double>(net.options().d_head)));
    r.scores.slice(0, b0, b0 + n).copy_(scores.squeeze(2));
    r.probs.slice(0, b0, b0 + n).copy_(torch::softmax(scores, -1).squeeze(2));
  }
  return r;
}

namespace {

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
                      probs.data(), need_g ? g.data() : nullptr, &a.loss, &a.correct,
                      want_head_importance ? a.head_abs.data() : nullptr);
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
