// The figures of training as a whole (viz/figures.h): how each head specialises, the pattern
// class of every head, and the training curves of metrics.jsonl.
#include <algorithm>
#include <cmath>

#include <plplot/plstream.h>

#include "viz/figures_common.h"

namespace attnscope::viz {

const std::vector<std::string>& pattern_class_names() {
  // by code, as hooks::Pattern (block came after mixed, so older files read the same)
  static const std::vector<std::string> names = {"diagonal", "bos", "broadcast", "uniform", "local", "mixed", "block"};
  return names;
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
  const auto& classes = pattern_class_names();
  const auto& cat = categorical();
  const std::vector<Rgb> colors = {cat[0], cat[1], cat[2], {0xc8, 0xc8, 0xc8}, cat[4], cat[8], cat[6]};  // one per class
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
        c.rect(lo, hi, ytop - 1, ytop, colors[static_cast<size_t>(std::clamp(code, 0, static_cast<int>(colors.size()) - 1))]);
      }
    }
    pl.col0(1);
    set_text_scale(pl, 0.9);
    pl.box("bcnst", 0, 0, "bc", 0, 0);
    const int step = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(22.0 / (b.h() * hgt / (L * H)))));
    for (int64_t r = 0; r < L * H; r += step) {
      const std::string lab = head_tag(run, r / H, r % H);
      pl.mtex("lv", 0.6, (L * H - r - 0.5) / static_cast<double>(L * H), 1.0, lab.c_str());
    }
    set_text_scale(pl, 1.0);
    pl.mtex("b", 2.8, 0.5, 0.5, "epoch");
    c.legend_boxes({1.0 - 200.0 / w, 1.0 - 30.0 / w, 1.0 - 130.0 / hgt - static_cast<double>(classes.size()) * 34.0 / hgt, 1.0 - 130.0 / hgt}, classes, colors);
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

}  // namespace attnscope::viz
