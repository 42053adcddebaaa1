// The attention-map figures of `attnscope render` (viz/figures.h): one head's map, all heads of
// a probe, a head over training, attention by position, focus regions and the attention river.
#include <algorithm>
#include <cmath>

#include "viz/figures_common.h"

namespace attnscope::viz {

void head_map(const Run& run, const Output& out, const std::string& site, int64_t e, int64_t p, int64_t l, int64_t h) {
  const int64_t n = run.length(p);
  const auto m = crop(run.file->head_map(site, e, p, l, h), run.T, n);
  const auto st0 = map_style(run, site, p, max_abs(m));
  const std::string name = std::string("head_map_") + (site == kScores ? "scores" : "probs") + "_" +
                           head_file_tag(run, l, h) + "_p" + std::to_string(p) + "_" + epoch_file_tag(run, e);
  emit(out, name, 1100, 1000, [&](Canvas& c) {
    c.title(head_name(run, l, h) + " · " + epoch_label(run, e),
            run.label() + " · attention " + site_word(site) + " · " + probe_label(run, p));
    HeatmapStyle st = st0;
    st.label_scale = n > 24 ? 0.7 : 1.1;
    c.heatmap({0.16, 0.80, 0.14, 0.86}, m, static_cast<int>(n), static_cast<int>(n), st);
    c.colorbar({0.84, 0.865, 0.14, 0.86}, st.cmap, st.vmin, st.vmax, site == kScores ? "score" : "attention");
  });
}

void head_grid(const Run& run, const Output& out, int64_t e, int64_t p) {
  const int64_t n = run.length(p), L = run.L, H = run.H;
  const auto pm = run.file->probe_map(kProbs, e, p);  // one chunk: [L,H,T,T]
  const int cell = H > 8 ? 190 : 260;
  const int w = static_cast<int>(H * cell + 330), hgt = static_cast<int>(L * cell + 260);
  const bool labels = n <= 24;
  emit(out, "head_grid_p" + std::to_string(p) + "_" + epoch_file_tag(run, e), w, hgt, [&](Canvas& c) {
    c.title("all heads · " + epoch_label(run, e), run.label() + " · attention probabilities · " + probe_label(run, p));
    const double top = 1.0 - 150.0 / hgt, bottom = 110.0 / hgt, left = 150.0 / w, right = 1.0 - 170.0 / w;
    const auto boxes = grid({left, right, bottom, top}, static_cast<int>(L), static_cast<int>(H), 18.0 / w, 46.0 / hgt);
    for (int64_t l = 0; l < L; ++l) {
      for (int64_t h = 0; h < H; ++h) {
        HeatmapStyle st;
        if (labels) {
          if (l == L - 1) st.xlabels = run.tokens(p);
          if (h == 0) st.ylabels = run.tokens(p);
          st.label_scale = n > 12 ? 0.55 : 0.8;
        }
        st.title = head_tag(run, l, h);
        if (!labels || st.xlabels.empty()) st.xlabels = std::vector<std::string>(n, "");
        if (!labels || st.ylabels.empty()) st.ylabels = std::vector<std::string>(n, "");
        c.heatmap(boxes[l * H + h], head_block(pm, l * H + h, run.T, n), static_cast<int>(n), static_cast<int>(n), st);
      }
    }
    c.colorbar({1.0 - 120.0 / w, 1.0 - 100.0 / w, bottom, top}, Colormap::kViridis, 0, 1, "attention");
  });
}

void evolution_strip(const Run& run, const Output& out, const std::vector<int64_t>& es, int64_t p, int64_t l, int64_t h) {
  const int64_t n = run.length(p);
  const int K = static_cast<int>(es.size());
  const int w = K * 300 + 300, hgt = 560;
  const std::string name = "evolution_" + head_file_tag(run, l, h) + "_p" + std::to_string(p);
  std::vector<std::vector<float>> maps;
  for (int64_t e : es) maps.push_back(crop(run.file->head_map(kProbs, e, p, l, h), run.T, n));
  emit(out, name, w, hgt, [&](Canvas& c) {
    c.title(head_name(run, l, h) + " over training · epoch " + std::to_string(run.epochs[es.front()].epoch) + " → " +
                std::to_string(run.epochs[es.back()].epoch),
            run.label() + " · attention probabilities · " + probe_label(run, p));
    const auto boxes = grid({150.0 / w, 1.0 - 170.0 / w, 0.2, 0.78}, 1, K, 24.0 / w, 0);
    for (int k = 0; k < K; ++k) {
      HeatmapStyle st;
      st.xlabels = n <= 24 ? run.tokens(p) : std::vector<std::string>(n, "");
      st.ylabels = k == 0 && n <= 24 ? run.tokens(p) : std::vector<std::string>(n, "");
      st.label_scale = n > 12 ? 0.55 : 0.85;
      st.title = "epoch " + std::to_string(run.epochs[es[k]].epoch);
      if (k == 0) st.ytitle = "query ↓";
      st.xtitle = "key →";
      c.heatmap(boxes[k], maps[k], static_cast<int>(n), static_cast<int>(n), st);
    }
    c.colorbar({1.0 - 120.0 / w, 1.0 - 100.0 / w, 0.2, 0.78}, Colormap::kViridis, 0, 1, "attention");
  });
}

namespace {

// Per layer and position [L,T], over every probe and head: the mean attention a key position
// receives (averaged over query rows), its variance, and the entropy of a query position's row.
struct PositionStats {
  std::vector<float> mean, var, ent;
};

PositionStats position_stats(const Run& run, int64_t e) {
  const int64_t L = run.L, H = run.H, T = run.T, P = run.P;
  std::vector<float> mean(L * T, 0), var(L * T, 0), ent(L * T, 0);
  std::vector<double> cnt(L * T, 0), sum(L * T, 0), sq(L * T, 0), esum(L * T, 0), ecnt(L * T, 0);
  for (int64_t p = 0; p < P; ++p) {
    const auto pm = run.file->probe_map(kProbs, e, p);
    const int64_t n = run.length(p);
    for (int64_t l = 0; l < L; ++l) {
      for (int64_t h = 0; h < H; ++h) {
        const float* m = pm.data() + (l * H + h) * T * T;
        for (int64_t k = 0; k < n; ++k) {  // attention key k receives, averaged over query rows
          double recv = 0;
          for (int64_t q = 0; q < n; ++q) recv += m[q * T + k];
          recv /= n;
          sum[l * T + k] += recv;
          sq[l * T + k] += recv * recv;
          cnt[l * T + k] += 1;
        }
        for (int64_t q = 0; q < n; ++q) {
          double hrow = 0;
          for (int64_t k = 0; k < n; ++k) {
            const double a = m[q * T + k];
            if (a > 0) hrow -= a * std::log2(a);
          }
          esum[l * T + q] += hrow;
          ecnt[l * T + q] += 1;
        }
      }
    }
  }
  for (int64_t i = 0; i < L * T; ++i) {
    mean[i] = cnt[i] ? static_cast<float>(sum[i] / cnt[i]) : 0.f;
    var[i] = cnt[i] ? static_cast<float>(std::max(0.0, sq[i] / cnt[i] - (sum[i] / cnt[i]) * (sum[i] / cnt[i]))) : 0.f;
    ent[i] = ecnt[i] ? static_cast<float>(esum[i] / ecnt[i]) : 0.f;
  }
  return {mean, var, ent};
}

}  // namespace

void positions(const Run& run, const Output& out, int64_t e) {
  const int64_t L = run.L, T = run.T, P = run.P;
  const PositionStats stats = position_stats(run, e);
  auto vmax = [](const std::vector<float>& v) { return std::max(1e-6, static_cast<double>(*std::max_element(v.begin(), v.end()))); };
  std::vector<std::string> ylab;
  for (auto l : run.header().layer_ids) ylab.push_back("layer " + std::to_string(l));
  const int hgt = static_cast<int>(3 * std::max<int64_t>(160, L * 45) + 330), w = 1400;
  emit(out, "positions_" + epoch_file_tag(run, e), w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · attention by position · " + epoch_label(run, e),
            "over all " + std::to_string(P) + " probes and every head of each layer");
    const auto boxes = grid({170.0 / w, 1.0 - 200.0 / w, 80.0 / hgt, 1.0 - 130.0 / hgt}, 3, 1, 0, 90.0 / hgt);
    const std::vector<std::pair<std::string, const std::vector<float>*>> panels = {
        {"mean attention received by key position", &stats.mean},
        {"its variance across heads and probes", &stats.var},
        {"entropy of the attention of each query position (bits)", &stats.ent}};
    for (int i = 0; i < 3; ++i) {
      HeatmapStyle st;
      st.ylabels = ylab;
      st.xlabels.resize(T);
      for (int64_t k = 0; k < T; ++k) st.xlabels[k] = std::to_string(k);
      st.vmin = 0;
      st.vmax = vmax(*panels[i].second);
      st.title = panels[i].first;
      st.xtitle = i == 2 ? "query position" : "key position";
      st.label_scale = 0.85;
      c.heatmap(boxes[i], *panels[i].second, static_cast<int>(L), static_cast<int>(T), st);
      c.colorbar({1.0 - 150.0 / w, 1.0 - 132.0 / w, boxes[i].y0, boxes[i].y1}, Colormap::kViridis, 0, st.vmax, "");
    }
  });
}

void focus_regions(const Run& run, const Output& out, int64_t e) {
  const int64_t L = run.L, H = run.H, T = run.T, P = run.P;
  std::vector<float> share(L * H * 3, 0);
  for (int64_t p = 0; p < P; ++p) {
    const auto pm = run.file->probe_map(kProbs, e, p);
    const int64_t n = run.length(p);
    for (int64_t lh = 0; lh < L * H; ++lh) {
      const float* m = pm.data() + lh * T * T;
      for (int64_t q = 0; q < n; ++q) {
        for (int64_t k = 0; k < n; ++k) share[lh * 3 + std::min<int64_t>(2, 3 * k / n)] += m[q * T + k] / (n * P);
      }
    }
  }
  std::vector<std::string> ylab;
  for (int64_t lh = 0; lh < L * H; ++lh) {
    ylab.push_back(head_tag(run, lh / H, lh % H));
  }
  const int hgt = static_cast<int>(std::clamp<int64_t>(L * H * 24 + 260, 520, 2400)), w = 900;
  emit(out, "focus_regions_" + epoch_file_tag(run, e), w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · focus regions · " + epoch_label(run, e),
            "share of attention to the first / middle / last third of each probe's tokens");
    HeatmapStyle st;
    st.xlabels = {"beginning", "middle", "end"};
    st.ylabels = ylab;
    st.label_scale = L * H > 40 ? 0.65 : 0.9;
    st.xtitle = "key region";
    c.heatmap({160.0 / w, 1.0 - 220.0 / w, 110.0 / hgt, 1.0 - 130.0 / hgt}, share, static_cast<int>(L * H), 3, st);
    c.colorbar({1.0 - 160.0 / w, 1.0 - 140.0 / w, 110.0 / hgt, 1.0 - 130.0 / hgt}, Colormap::kViridis, 0, 1, "share");
  });
}

void attention_river(const Run& run, const Output& out, int64_t e, int64_t p) {
  const int64_t L = run.L, H = run.H, T = run.T, n = run.length(p);
  const auto pm = run.file->probe_map(kProbs, e, p);
  // the readout token: the first, min/max's and a causal model's last
  const int64_t row = run.is(TaskKind::MinMax) || run.model.value("causal", false) ? n - 1 : 0;
  // rollout: R_l = (0.5 A_l + 0.5 I) R_{l-1}; the river is R_l's row of the readout token per layer
  std::vector<double> R(n * n, 0);
  for (int64_t i = 0; i < n; ++i) R[i * n + i] = 1;
  std::vector<float> river;
  for (int64_t l = 0; l < L; ++l) {
    auto A = head_mean(pm, H, T, l, n);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) A[i * n + j] = 0.5 * A[i * n + j] + (i == j ? 0.5 : 0.0);
    }
    std::vector<double> next(n * n, 0);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t k = 0; k < n; ++k) {
        for (int64_t j = 0; j < n; ++j) next[i * n + j] += A[i * n + k] * R[k * n + j];
      }
    }
    R.swap(next);
    for (int64_t j = 0; j < n; ++j) river.push_back(static_cast<float>(R[row * n + j]));
  }
  std::vector<std::string> ylab;
  for (auto l : run.header().layer_ids) ylab.push_back("after layer " + std::to_string(l));
  const int hgt = static_cast<int>(std::max<int64_t>(L * 70, 200) + 360), w = 1400;
  emit(out, "attention_river_p" + std::to_string(p) + "_" + epoch_file_tag(run, e), w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · attention river · " + epoch_label(run, e),
            "rollout (0.5·A + 0.5·I, heads averaged) from token '" + run.tokens(p)[row] + "' · " + probe_label(run, p));
    HeatmapStyle st;
    st.xlabels = run.tokens(p);
    st.ylabels = ylab;
    st.y_down = true;
    st.vmin = 0;
    st.vmax = std::max(1e-6, static_cast<double>(*std::max_element(river.begin(), river.end())));
    st.xtitle = "token";
    st.label_scale = n > 30 ? 0.6 : 0.9;
    c.heatmap({220.0 / w, 1.0 - 200.0 / w, 150.0 / hgt, 1.0 - 140.0 / hgt}, river, static_cast<int>(L), static_cast<int>(n), st);
    c.colorbar({1.0 - 150.0 / w, 1.0 - 132.0 / w, 150.0 / hgt, 1.0 - 140.0 / hgt}, Colormap::kViridis, 0, st.vmax,
               "rollout mass");
  });
}

// Token and head attribution of one probe at one recorded epoch: per token the attention it
// receives, its rollout and flow to the readout token (shares, summing to 1) and its gradient x
// input (signed, scaled to sum |.| = 1), one row each; and attention x gradient per head.
// Drawn when the file holds flow or gradient attribution for the probe.
void token_attribution(const Run& run, const Output& out, int64_t e, int64_t p) {
  const int64_t L = run.L, H = run.H, T = run.T, n = run.length(p);
  auto row_of = [&](const char* name) -> std::vector<float> {
    if (!run.file->has_analysis(name)) return {};
    const auto v = run.file->analysis(name, e);
    const int64_t width = static_cast<int64_t>(v.size()) / std::max<int64_t>(1, static_cast<int64_t>(run.probes().count));
    std::vector<float> r(v.begin() + p * width, v.begin() + (p + 1) * width);
    return std::any_of(r.begin(), r.end(), [](float x) { return std::isfinite(x); }) ? r : std::vector<float>{};
  };
  const auto flow = row_of("token_importance_flow"), grad = row_of("grad_input"), attn_grad = row_of("attn_grad");
  if (flow.empty() && grad.empty()) return;
  std::vector<std::pair<std::string, std::vector<float>>> rows = {{"attention received", row_of("token_importance")},
                                                                   {"rollout", row_of("token_importance_rollout")}};
  if (!flow.empty()) rows.push_back({"flow", flow});
  if (!grad.empty()) {
    double s = 0;
    for (int64_t t = 0; t < n; ++t) s += std::abs(grad[t]);
    auto g = grad;
    for (auto& x : g) x = static_cast<float>(s > 0 ? x / s : 0.0);
    rows.push_back({"gradient x input", g});
  }
  std::vector<float> m;
  std::vector<std::string> names;
  double vmax = 1e-6;
  for (const auto& [name, r] : rows) {
    if (r.empty()) continue;
    names.push_back(name);
    for (int64_t t = 0; t < n; ++t) {
      m.push_back(t < static_cast<int64_t>(r.size()) ? r[t] : std::nanf(""));
      if (std::isfinite(m.back())) vmax = std::max(vmax, std::abs(static_cast<double>(m.back())));
    }
  }
  (void)T;
  const bool heads = !attn_grad.empty();
  const int w = 1400, top = static_cast<int>(names.size()) * 60 + 160, bottom = heads ? static_cast<int>(std::max<int64_t>(L * 44, 160)) + 120 : 0;
  const int hgt = top + bottom + 240;  // (100 px between the two panels: token labels, the second title)
  emit(out, "attribution_p" + std::to_string(p) + "_" + epoch_file_tag(run, e), w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · token and head attribution · " + epoch_label(run, e), probe_label(run, p));
    HeatmapStyle st;
    st.cmap = Colormap::kDiverging;
    st.vmin = -vmax;
    st.vmax = vmax;
    st.xlabels = run.tokens(p);
    st.xlabels.resize(static_cast<size_t>(n));
    st.ylabels = names;
    st.title = "per token (shares; gradient x input signed, scaled to sum |.| = 1)";
    st.label_scale = n > 30 ? 0.6 : 0.9;
    const double y_top_hi = 1.0 - 140.0 / hgt, y_top_lo = 1.0 - static_cast<double>(140 + top - 60) / hgt;
    c.heatmap({260.0 / w, 1.0 - 200.0 / w, y_top_lo, y_top_hi}, m, static_cast<int>(names.size()), static_cast<int>(n), st);
    c.colorbar({1.0 - 150.0 / w, 1.0 - 132.0 / w, y_top_lo, y_top_hi}, Colormap::kDiverging, -vmax, vmax, "share");
    if (heads) {
      double amax = 1e-12;
      for (float x : attn_grad) if (std::isfinite(x)) amax = std::max(amax, std::abs(static_cast<double>(x)));
      HeatmapStyle hs;
      hs.cmap = Colormap::kDiverging;
      hs.vmin = -amax;
      hs.vmax = amax;
      for (auto l : run.header().layer_ids) hs.ylabels.push_back("layer " + std::to_string(l));
      for (auto h : run.header().head_ids) hs.xlabels.push_back("head " + std::to_string(h));
      hs.title = "attention x gradient per head: sum_ij A_ij dy/dA_ij (Hao et al. 2021)";
      const double y_hi = static_cast<double>(bottom + 60) / hgt, y_lo = 80.0 / hgt;
      const double x_hi = std::min(1.0 - 260.0 / w, 260.0 / w + 0.06 * static_cast<double>(H));
      c.heatmap({260.0 / w, x_hi, y_lo, y_hi}, attn_grad, static_cast<int>(L), static_cast<int>(H), hs);
      c.colorbar({x_hi + 30.0 / w, x_hi + 48.0 / w, y_lo, y_hi}, Colormap::kDiverging, -amax, amax, "dy per unit scaling");
    }
  });
}

}  // namespace attnscope::viz
