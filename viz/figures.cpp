// The figures of `attnscope render` (viz/figures.h), drawn with PLplot through viz/plot.h.
#include "viz/figures.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <sstream>

#include <plplot/plstream.h>

#include "core/core.h"
#include "viz/plot.h"

namespace attnscope::viz {
namespace {

constexpr const char* kProbs = "attn.probs";
constexpr const char* kScores = "attn.scores";

// Draws `draw(canvas)` once per format into figures/<name>.<format>.
template <class F>
void emit(const Output& out, const std::string& name, int w, int h, F draw) {
  for (const auto& f : out.formats) {
    const std::string path = (std::filesystem::path(out.dir) / (name + "." + f)).string();
    Canvas c(path, f, w, h);
    draw(c);
    c.finish();
    out.written->push_back(path);
  }
}

std::string epoch_label(const Run& run, int64_t e) {
  std::string s = "epoch " + std::to_string(run.epochs[e].epoch);
  if (run.model.is_object() && run.model.contains("source") && run.model["source"].is_string()) {
    // a frozen model's snapshot (attnscope snapshot): its epoch is the checkpoint's, if any
    s += " (snapshot of " + std::filesystem::path(run.model["source"].get<std::string>()).filename().string() + ")";
  } else if (run.epochs[e].epoch == 0) {
    s += " (before training)";
  }
  return s;
}

std::string probe_label(const Run& run, int64_t p) { return "probe " + std::to_string(p) + ": " + run.probes().text[p]; }

std::string head_name(const Run& run, int64_t l, int64_t h) {
  return "layer " + std::to_string(run.header().layer_ids[l]) + " head " + std::to_string(run.header().head_ids[h]);
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) {
    if (std::isfinite(x)) m = std::max(m, std::fabs(static_cast<double>(x)));
  }
  return m > 0 ? m : 1;
}

HeatmapStyle map_style(const Run& run, const std::string& site, int64_t p, double vabs) {
  HeatmapStyle st;
  st.xlabels = st.ylabels = run.tokens(p);
  st.xtitle = "key →";
  st.ytitle = "query ↓";
  if (site == kScores) {
    st.cmap = Colormap::kDiverging;
    st.vmin = -vabs;
    st.vmax = vabs;
  }
  return st;
}

std::string site_word(const std::string& site) { return site == kScores ? "scores (pre-softmax)" : "probabilities"; }

// Mean over heads of layer l's probe map [T,T] (real block n x n).
std::vector<double> head_mean(const std::vector<float>& probe_map, int64_t H, int64_t T, int64_t l, int64_t n) {
  std::vector<double> a(static_cast<size_t>(n * n), 0.0);
  for (int64_t h = 0; h < H; ++h) {
    const float* m = probe_map.data() + (l * H + h) * T * T;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) a[i * n + j] += m[i * T + j] / static_cast<double>(H);
    }
  }
  return a;
}

bool parse_int(const std::string& s, int64_t& v) {
  try {
    size_t pos = 0;
    v = std::stoll(s, &pos);
    return pos == s.size();
  } catch (...) {
    return false;
  }
}

}  // namespace


void head_map(const Run& run, const Output& out, const std::string& site, int64_t e, int64_t p, int64_t l, int64_t h) {
  const int64_t n = run.length(p);
  const auto m = crop(run.file->head_map(site, e, p, l, h), run.T, n);
  const auto st0 = map_style(run, site, p, max_abs(m));
  const std::string name = std::string("head_map_") + (site == kScores ? "scores" : "probs") + "_L" +
                           std::to_string(run.header().layer_ids[l]) + "_H" + std::to_string(run.header().head_ids[h]) +
                           "_p" + std::to_string(p) + "_e" + std::to_string(run.epochs[e].epoch);
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
  emit(out, "head_grid_p" + std::to_string(p) + "_e" + std::to_string(run.epochs[e].epoch), w, hgt, [&](Canvas& c) {
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
        st.title = "L" + std::to_string(run.header().layer_ids[l]) + " H" + std::to_string(run.header().head_ids[h]);
        if (!labels || st.xlabels.empty()) st.xlabels = std::vector<std::string>(n, "");
        if (!labels || st.ylabels.empty()) st.ylabels = std::vector<std::string>(n, "");
        c.heatmap(boxes[l * H + h], crop(std::vector<float>(pm.begin() + (l * H + h) * run.T * run.T,
                                                            pm.begin() + (l * H + h + 1) * run.T * run.T),
                                         run.T, n),
                  static_cast<int>(n), static_cast<int>(n), st);
      }
    }
    c.colorbar({1.0 - 120.0 / w, 1.0 - 100.0 / w, bottom, top}, Colormap::kViridis, 0, 1, "attention");
  });
}

void evolution_strip(const Run& run, const Output& out, const std::vector<int64_t>& es, int64_t p, int64_t l, int64_t h) {
  const int64_t n = run.length(p);
  const int K = static_cast<int>(es.size());
  const int w = K * 300 + 300, hgt = 560;
  const std::string name = "evolution_L" + std::to_string(run.header().layer_ids[l]) + "_H" +
                           std::to_string(run.header().head_ids[h]) + "_p" + std::to_string(p);
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

void specialisation_timeline(const Run& run, const Output& out) {
  struct Panel {
    std::string name, title;
    std::vector<double> x;
    std::vector<float> v;  // [rows, L, H]
  };
  std::vector<Panel> rows;
  const auto metric_epochs = run.file->metric_epochs();
  for (const char* m : {"entropy_norm", "confidence_max", "first_token_mass", "local_mass", "diagonal_mean"}) {
    if (metric_epochs.empty() ||
        std::find(run.header().metrics.begin(), run.header().metrics.end(), m) == run.header().metrics.end()) {
      continue;
    }
    rows.push_back({m, m, std::vector<double>(metric_epochs.begin(), metric_epochs.end()), run.file->metric(m)});
  }
  for (const char* a : {"js_prev", "head_importance"}) {
    Panel pn{a, std::string(a) == "js_prev" ? "JS change (bits)" : "head importance", {}, {}};
    for (size_t e = 0; e < run.epochs.size(); ++e) {
      pn.x.push_back(static_cast<double>(run.epochs[e].epoch));
      const auto v = run.file->analysis(a, static_cast<int64_t>(e));
      pn.v.insert(pn.v.end(), v.begin(), v.end());
    }
    bool any = false;
    for (float x : pn.v) any |= std::isfinite(x);
    if (any) rows.push_back(std::move(pn));
  }
  if (rows.empty()) return;
  const int64_t L = run.L, H = run.H;
  const int w = static_cast<int>(std::max<int64_t>(1300, L * 360 + 360)), hgt = static_cast<int>(rows.size() * 250 + 200);
  emit(out, "specialisation_timeline", w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · how each head specialises",
            "per-head metrics over the whole validation split, and analyses of the probe set, against epoch");
    const auto boxes = grid({110.0 / w, 1.0 - 250.0 / w, 90.0 / hgt, 1.0 - 140.0 / hgt}, static_cast<int>(rows.size()),
                            static_cast<int>(L), 70.0 / w, 70.0 / hgt);
    for (size_t r = 0; r < rows.size(); ++r) {
      for (int64_t l = 0; l < L; ++l) {
        std::vector<Series> series;
        for (int64_t h = 0; h < H; ++h) {
          Series s;
          s.name = "head " + std::to_string(run.header().head_ids[h]);
          s.color = static_cast<int>(h);
          s.dashed = h >= 10;
          s.x = rows[r].x;
          for (size_t i = 0; i < rows[r].x.size(); ++i) s.y.push_back(rows[r].v[(i * L + l) * H + h]);
          series.push_back(std::move(s));
        }
        LineStyle st;
        st.title = rows[r].title + " · layer " + std::to_string(run.header().layer_ids[l]);
        if (r + 1 == rows.size()) st.xtitle = "epoch";
        st.legend = r == 0 && l == L - 1;
        c.lines(boxes[r * L + l], series, st);
      }
    }
  });
}

void pattern_classes(const Run& run, const Output& out) {
  const auto& names = run.header().metrics;
  if (std::find(names.begin(), names.end(), "pattern") == names.end()) return;
  const auto epochs = run.file->metric_epochs();
  if (epochs.empty()) return;
  const auto codes = run.file->metric("pattern");
  const int64_t L = run.L, H = run.H, M = static_cast<int64_t>(epochs.size());
  const std::vector<std::string> classes = {"diagonal", "bos", "broadcast", "uniform", "local", "mixed"};
  const auto& cat = categorical();
  const std::vector<Rgb> colors = {cat[0], cat[1], cat[2], {0xc8, 0xc8, 0xc8}, cat[4], cat[8]};
  const int w = 1400, hgt = static_cast<int>(std::clamp<int64_t>(L * H * 26 + 260, 500, 2400));
  emit(out, "pattern_classes", w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · pattern class of every head over training",
            "class per head from its metrics over the whole validation split (README: attention metrics)");
    const Box b{150.0 / w, 1.0 - 230.0 / w, 90.0 / hgt, 1.0 - 130.0 / hgt};
    auto& pl = c.pl();
    pl.vpor(b.x0, b.x1, b.y0, b.y1);
    const double x0 = static_cast<double>(epochs.front()), x1 = static_cast<double>(epochs.back());
    const double half = M > 1 ? (x1 - x0) / (M - 1) / 2 : 0.5;
    pl.wind(x0 - half, x1 + half, 0, static_cast<double>(L * H));
    for (int64_t k = 0; k < M; ++k) {
      const double lo = k == 0 ? x0 - half : (epochs[k - 1] + epochs[k]) / 2.0;
      const double hi = k + 1 == M ? x1 + half : (epochs[k] + epochs[k + 1]) / 2.0;
      for (int64_t r = 0; r < L * H; ++r) {
        const int code = static_cast<int>(codes[k * L * H + r]);
        const double ytop = static_cast<double>(L * H - r);
        c.rect(lo, hi, ytop - 1, ytop, colors[std::clamp(code, 0, 5)]);
      }
    }
    pl.col0(1);
    set_text_scale(pl, 0.9);
    pl.box("bcnst", 0, 0, "bc", 0, 0);
    const int step = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(22.0 / (b.h() * hgt / (L * H)))));
    for (int64_t r = 0; r < L * H; r += step) {
      const std::string lab = "L" + std::to_string(run.header().layer_ids[r / H]) + " H" +
                              std::to_string(run.header().head_ids[r % H]);
      pl.mtex("lv", 0.6, (L * H - r - 0.5) / static_cast<double>(L * H), 1.0, lab.c_str());
    }
    set_text_scale(pl, 1.0);
    pl.mtex("b", 2.8, 0.5, 0.5, "epoch");
    c.legend_boxes({1.0 - 200.0 / w, 1.0 - 30.0 / w, 1.0 - 130.0 / hgt - 6 * 34.0 / hgt, 1.0 - 130.0 / hgt}, classes, colors);
  });
}

void training_curves(const Run& run, const Output& out) {
  if (run.curves.empty()) return;
  std::vector<std::string> metrics;  // m with val_m (and maybe train_m)
  for (const auto& [k, v] : run.curves.back()) {
    if (k.rfind("val_", 0) == 0) metrics.push_back(k.substr(4));
  }
  std::stable_sort(metrics.begin(), metrics.end(), [](const std::string& a, const std::string& b) {
    return (a == "loss") > (b == "loss");
  });
  const bool has_lr = run.curves.back().count("lr") > 0;
  const int panels = static_cast<int>(metrics.size()) + (has_lr ? 1 : 0);
  if (panels == 0) return;
  const int cols = std::min(panels, 3), rows = (panels + cols - 1) / cols;
  const int w = cols * 620 + 120, hgt = rows * 460 + 170;
  auto column = [&](const std::string& key) {
    Series s;
    for (const auto& r : run.curves) {
      auto e = r.find("epoch");
      auto v = r.find(key);
      if (e == r.end()) continue;
      s.x.push_back(e->second);
      s.y.push_back(v == r.end() ? std::nan("") : v->second);
    }
    return s;
  };
  emit(out, "training_curves", w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · training curves", "from metrics.jsonl: train (solid) and validation (dashed), per epoch");
    const auto boxes = grid({100.0 / w, 1.0 - 200.0 / w, 90.0 / hgt, 1.0 - 120.0 / hgt}, rows, cols, 200.0 / w, 110.0 / hgt);
    int k = 0;
    for (const auto& m : metrics) {
      std::vector<Series> s;
      if (run.curves.back().count("train_" + m)) {
        s.push_back(column("train_" + m));
        s.back().name = "train";
        s.back().color = 0;
      }
      s.push_back(column("val_" + m));
      s.back().name = "validation";
      s.back().color = 1;
      s.back().dashed = true;
      LineStyle st;
      st.title = m;
      st.xtitle = "epoch";
      st.log_y = m == "loss";
      st.ytitle = m == "loss" ? "log10 loss" : m;
      c.lines(boxes[k++], s, st);
    }
    if (has_lr) {
      std::vector<Series> s = {column("lr")};
      s[0].name = "lr";
      s[0].color = 2;
      LineStyle st;
      st.title = "learning rate";
      st.xtitle = "epoch";
      st.legend = false;
      c.lines(boxes[k], s, st);
    }
  });
}

void positions(const Run& run, const Output& out, int64_t e) {
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
  auto vmax = [](const std::vector<float>& v) { return std::max(1e-6, static_cast<double>(*std::max_element(v.begin(), v.end()))); };
  std::vector<std::string> ylab;
  for (auto l : run.header().layer_ids) ylab.push_back("layer " + std::to_string(l));
  const int hgt = static_cast<int>(3 * std::max<int64_t>(160, L * 45) + 330), w = 1400;
  emit(out, "positions_e" + std::to_string(run.epochs[e].epoch), w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · attention by position · " + epoch_label(run, e),
            "over all " + std::to_string(P) + " probes and every head of each layer");
    const auto boxes = grid({170.0 / w, 1.0 - 200.0 / w, 80.0 / hgt, 1.0 - 130.0 / hgt}, 3, 1, 0, 90.0 / hgt);
    const std::vector<std::pair<std::string, const std::vector<float>*>> panels = {
        {"mean attention received by key position", &mean},
        {"its variance across heads and probes", &var},
        {"entropy of the attention of each query position (bits)", &ent}};
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
    ylab.push_back("L" + std::to_string(run.header().layer_ids[lh / H]) + " H" + std::to_string(run.header().head_ids[lh % H]));
  }
  const int hgt = static_cast<int>(std::clamp<int64_t>(L * H * 24 + 260, 520, 2400)), w = 900;
  emit(out, "focus_regions_e" + std::to_string(run.epochs[e].epoch), w, hgt, [&](Canvas& c) {
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
  const int64_t row = run.task == "minmax" ? n - 1 : 0;  // the readout token
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
  emit(out, "attention_river_p" + std::to_string(p) + "_e" + std::to_string(run.epochs[e].epoch), w, hgt, [&](Canvas& c) {
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

void minmax_grid(const Run& run, const Output& out, const std::string& site) {
  const std::string name = site == kScores ? "minmax_grid_scores" : "minmax_grid_probs";
  auto it = run.header().arrays.find(name);
  if (it == run.header().arrays.end()) return;
  const auto v = run.file->array(name);  // [2,H,N,N,3]
  if (v.empty() || !std::isfinite(v[0])) return;  // written when training ends
  const int64_t Hh = it->second[1], N = it->second[2];
  const int64_t rows = 2 * Hh;
  const double vabs = max_abs(v);
  const int w = 1500, hgt = static_cast<int>(rows * 420 + 200);
  emit(out, name, w, hgt, [&](Canvas& c) {
    c.title(std::string("attention ") + (site == kScores ? "scores" : "weights") + " from '=' over every (a, b)",
            run.label() + " · final model · rows: operator and head · columns: attention to a, to the operator, to b");
    const auto boxes = grid({120.0 / w, 1.0 - 190.0 / w, 90.0 / hgt, 1.0 - 120.0 / hgt}, static_cast<int>(rows), 3,
                            110.0 / w, 90.0 / hgt);
    const char* ops[] = {"max", "min"};
    const char* to[] = {"a", "op", "b"};
    for (int64_t op = 0; op < 2; ++op) {
      for (int64_t h = 0; h < Hh; ++h) {
        for (int64_t k = 0; k < 3; ++k) {
          std::vector<float> m(N * N);
          for (int64_t a = 0; a < N; ++a) {
            for (int64_t b = 0; b < N; ++b) m[a * N + b] = v[(((op * Hh + h) * N + a) * N + b) * 3 + k];
          }
          HeatmapStyle st;
          st.y_down = false;
          st.cmap = site == kScores ? Colormap::kDiverging : Colormap::kViridis;
          st.vmin = site == kScores ? -vabs : 0;
          st.vmax = site == kScores ? vabs : 1;
          st.title = std::string(ops[op]) + " · head " + std::to_string(h) + " · '=' → " + to[k];
          if (op == 1 && h == Hh - 1) st.xtitle = "b";
          if (k == 0) st.ytitle = "a";
          st.label_scale = 0.8;
          c.heatmap(boxes[(op * Hh + h) * 3 + k], m, static_cast<int>(N), static_cast<int>(N), st);
        }
      }
    }
    c.colorbar({1.0 - 130.0 / w, 1.0 - 112.0 / w, 90.0 / hgt, 1.0 - 130.0 / hgt}, site == kScores ? Colormap::kDiverging
                                                                                           : Colormap::kViridis,
               site == kScores ? -vabs : 0, site == kScores ? vabs : 1, site == kScores ? "score" : "attention");
  });
}

std::vector<std::vector<std::vector<double>>> minmax_probe_mechanism(const Run& run, int64_t e) {
  analysis::ProbeHistory h;
  h.P = run.P;
  h.H = run.H;
  h.T = run.T;
  h.input_ids = run.probes().input_ids;
  h.epochs = {run.epochs[e].epoch};
  h.probs = [&](size_t) { return run.file->map(kProbs, e); };  // [P,L=1,H,T,T]
  const int64_t max_token = run.model.at("vocab").get<int64_t>() - 3;
  std::vector<std::vector<std::vector<double>>> out(2, std::vector<std::vector<double>>(run.H, std::vector<double>(3, std::nan(""))));
  const auto per_op = analysis::minmax_over_training(h, max_token);
  for (const auto& m : per_op.at(0).second) {
    auto& o = out[m.op == "max" ? 0 : 1];
    for (int64_t hd = 0; hd < run.H; ++hd) o[hd].assign(m.to_op_larger_smaller[hd].begin(), m.to_op_larger_smaller[hd].end());
  }
  return out;
}

void minmax_mechanism(const Run& run, const Output& out) {
  const int64_t H = run.H, E = static_cast<int64_t>(run.epochs.size());
  std::vector<std::vector<std::vector<std::vector<double>>>> m;  // [E][op][h][3]
  for (int64_t e = 0; e < E; ++e) m.push_back(minmax_probe_mechanism(run, e));
  const int w = static_cast<int>(H * 620 + 300), hgt = 2 * 430 + 200;
  emit(out, "minmax_mechanism", w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · the mechanism over training",
            "mean attention from '=' to the operator token, the larger and the smaller operand (probe set, a ≠ b)");
    const auto boxes = grid({100.0 / w, 1.0 - 260.0 / w, 90.0 / hgt, 1.0 - 130.0 / hgt}, 2, static_cast<int>(H), 110.0 / w,
                            110.0 / hgt);
    const char* ops[] = {"max", "min"};
    const char* what[] = {"to the operator token", "to the larger operand", "to the smaller operand"};
    for (int op = 0; op < 2; ++op) {
      for (int64_t h = 0; h < H; ++h) {
        std::vector<Series> s(3);
        for (int k = 0; k < 3; ++k) {
          s[k].name = what[k];
          s[k].color = k;
          for (int64_t e = 0; e < E; ++e) {
            s[k].x.push_back(static_cast<double>(run.epochs[e].epoch));
            s[k].y.push_back(m[e][op][h][k]);
          }
        }
        LineStyle st;
        st.title = std::string(ops[op]) + " · head " + std::to_string(run.header().head_ids[h]);
        st.xtitle = "epoch";
        st.ytitle = "attention from '='";
        st.fixed_y = true;
        st.ymin = 0;
        st.ymax = 1.02;
        st.legend = op == 0 && h == H - 1;
        c.lines(boxes[op * H + h], s, st);
      }
    }
  });
}

std::vector<std::vector<double>> pca2(const std::vector<float>& x, int64_t n, int64_t d) { return analysis::pca(x, n, d, 2); }


std::vector<std::pair<std::string, std::vector<double>>> probe_targets(const Run& run) {
  std::vector<std::pair<std::string, std::vector<double>>> out;
  if (run.task != "minmax") return out;
  std::vector<double> answer, op;
  for (int64_t p = 0; p < run.P; ++p) {
    const auto t = run.tokens(p);
    int64_t a = 0, b = 0;
    const bool ok = t.size() == 4 && parse_int(t[0], a) && parse_int(t[2], b);
    answer.push_back(ok ? static_cast<double>(t[1] == "max" ? std::max(a, b) : std::min(a, b)) : std::nan(""));
    op.push_back(t.size() == 4 ? (t[1] == "max" ? 1.0 : 0.0) : std::nan(""));
  }
  out.push_back({"answer", answer});
  out.push_back({"is_max", op});
  return out;
}

void projection(const Run& run, const Output& out, const std::vector<int64_t>& es) {
  const int64_t D = run.header().pooled_dim, P = run.P;
  if (D <= 0 || P < 3) return;
  std::vector<std::vector<std::vector<double>>> coords;
  for (int64_t e : es) coords.push_back(pca2(run.file->pooled(e), P, D));
  const auto targets = probe_targets(run);
  std::vector<double> colour(P, 0.5);
  std::string colour_name = "probe index";
  double cmin = 0, cmax = static_cast<double>(P - 1);
  if (!targets.empty()) {
    colour = targets[0].second;
    colour_name = targets[0].first;
    cmin = *std::min_element(colour.begin(), colour.end());
    cmax = *std::max_element(colour.begin(), colour.end());
  } else {
    for (int64_t p = 0; p < P; ++p) colour[p] = static_cast<double>(p);
  }
  if (cmax <= cmin) cmax = cmin + 1;
  const std::vector<double>* shape = targets.size() > 1 ? &targets[1].second : nullptr;
  const int K = static_cast<int>(es.size());
  const int w = K * 380 + 260, hgt = 620;
  emit(out, "projection_pca", w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · pooled vectors of the probes, PCA to 2-D, over training",
            "colour: " + colour_name + (shape ? " · ● max, ▲ min" : "") + " · one PCA per epoch");
    const auto boxes = grid({90.0 / w, 1.0 - 170.0 / w, 0.16, 0.80}, 1, K, 60.0 / w, 0);
    auto& pl = c.pl();
    for (int k = 0; k < K; ++k) {
      double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
      for (const auto& pt : coords[k]) {
        xmin = std::min(xmin, pt[0]), xmax = std::max(xmax, pt[0]);
        ymin = std::min(ymin, pt[1]), ymax = std::max(ymax, pt[1]);
      }
      const double px = 0.08 * (xmax - xmin + 1e-9), py = 0.08 * (ymax - ymin + 1e-9);
      pl.vpor(boxes[k].x0, boxes[k].x1, boxes[k].y0, boxes[k].y1);
      pl.wind(xmin - px, xmax + px, ymin - py, ymax + py);
      pl.col0(1);
      set_text_scale(pl, 0.8);
      pl.box("bcnst", 0, 0, "bcnstv", 0, 0);
      set_text_scale(pl, 1.0);
      pl.mtex("t", 0.8, 0.5, 0.5, ("epoch " + std::to_string(run.epochs[es[k]].epoch)).c_str());
      pl.mtex("b", 2.6, 0.5, 0.5, "PC 1");
      if (k == 0) pl.mtex("l", 4.0, 0.5, 0.5, "PC 2");
      pl.scmap1n(256);
      const PLFLT pos[] = {0, 1.0 / 3, 2.0 / 3, 1}, r[] = {0x44 / 255.0, 0x31 / 255.0, 0x35 / 255.0, 0xfd / 255.0},
                  g[] = {0x01 / 255.0, 0x68 / 255.0, 0xb7 / 255.0, 0xe7 / 255.0},
                  b[] = {0x54 / 255.0, 0x8e / 255.0, 0x79 / 255.0, 0x25 / 255.0}, a[] = {1, 1, 1, 1};
      pl.scmap1la(true, 4, pos, r, g, b, a, nullptr);
      set_text_scale(pl, 1.4);
      pl.ssym(0, 1.6);
      for (int64_t p = 0; p < P; ++p) {
        if (!std::isfinite(colour[p])) continue;
        pl.col1((colour[p] - cmin) / (cmax - cmin));
        const PLFLT x[] = {coords[k][p][0]}, y[] = {coords[k][p][1]};
        pl.poin(1, x, y, shape && (*shape)[p] < 0.5 ? 7 : 17);
      }
      pl.ssym(0, 1.0);
      set_text_scale(pl, 1.0);
    }
    c.colorbar({1.0 - 120.0 / w, 1.0 - 102.0 / w, 0.16, 0.80}, Colormap::kViridis, cmin, cmax, colour_name);
  });
}

}  // namespace attnscope::viz
