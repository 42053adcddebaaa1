// attnscope compare (viz/viz.h): two or more recorded runs (or track / snapshot files) head by
// head. Every run after the first is compared with the first: per layer, the Jensen-Shannon
// divergence between every head of one and every head of the other on the probes both hold, the
// heads matched by minimum total JS (Hungarian), per-head metric differences (same index and
// matched), then figures, compare.json and an offline report.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include <plplot/plstream.h>

#include "analysis/analysis.h"
#include "core/core.h"
#include "viz/figures.h"
#include "viz/figures_common.h"
#include "viz/report.h"
#include "viz/viz.h"

namespace attnscope::viz {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The metrics drawn as difference maps and timelines (when both files hold them).
const std::vector<std::string> kShownMetrics = {"entropy_norm", "first_token_mass", "local_mass", "diagonal_mean",
                                                "confidence_max", "broadcast_mass"};

struct Side {
  Run run;
  int64_t e = 0;           // storage index of the compared epoch
  int64_t metric_row = -1;  // row of the per-head metrics at (or before) that epoch; -1: none
};

struct Pair {
  int64_t b = 1;  // index of the run compared with run 0
  std::vector<std::vector<double>> js;          // [L][H*H]: A head i vs B head j, bits
  std::vector<std::vector<int64_t>> matching;   // [L][H]: A head i -> B head matching[l][i]
  std::map<std::string, std::vector<double>> diff, diff_matched;  // metric -> [L*H] (B - A)
  std::vector<std::string> metrics;             // compared metric names
};

int64_t pick_epoch(const Run& run, const std::string& epoch) {
  if (epoch == "last") return static_cast<int64_t>(run.epochs.size()) - 1;
  int64_t v = 0;
  if (!parse_int(epoch, v)) throw UsageError("--epoch: expected a recorded epoch number or 'last', got '" + epoch + "'");
  return run.epoch_index(v);
}

int64_t metric_row(const Run& run, int64_t epoch) {
  const auto me = run.file->metric_epochs();
  int64_t row = -1;
  for (size_t i = 0; i < me.size(); ++i) {
    if (me[i] <= epoch) row = static_cast<int64_t>(i);
  }
  return row;
}

// Same layers, heads and probe inputs, or a UsageError naming the first difference.
void check_comparable(const Side& a, const Side& b) {
  const auto& ha = a.run.header();
  const auto& hb = b.run.header();
  if (ha.layer_ids != hb.layer_ids || ha.head_ids != hb.head_ids) {
    throw UsageError("compare: '" + a.run.h5 + "' holds " + std::to_string(ha.layer_ids.size()) + " layers x " +
                     std::to_string(ha.head_ids.size()) + " heads, '" + b.run.h5 + "' " + std::to_string(hb.layer_ids.size()) +
                     " x " + std::to_string(hb.head_ids.size()) + ": only runs of one architecture (and recorded heads) compare");
  }
  const auto& pa = a.run.probes();
  const auto& pb = b.run.probes();
  const int64_t n = std::min(pa.count, pb.count);
  for (int64_t p = 0; p <= n; ++p) {
    if (p == n) {
      if (pa.count != pb.count) {
        throw UsageError("compare: '" + a.run.h5 + "' holds " + std::to_string(pa.count) + " probes, '" + b.run.h5 + "' " +
                         std::to_string(pb.count) + ": the runs must record the same inputs (hooks.attention.probes_file)");
      }
      break;
    }
    bool same = pa.lengths[p] == pb.lengths[p];
    for (int64_t t = 0; same && t < pa.lengths[p]; ++t) {
      same = pa.input_ids[p * pa.max_len + t] == pb.input_ids[p * pb.max_len + t];
    }
    if (!same) {
      throw UsageError("compare: probe " + std::to_string(p) + " differs: '" + pa.text[p] + "' in '" + a.run.h5 + "', '" +
                       pb.text[p] + "' in '" + b.run.h5 + "'; the runs must record the same inputs (hooks.attention.probes_file)");
    }
  }
}

Pair compare_pair(const Side& a, const Side& b, int64_t bi) {
  Pair r;
  r.b = bi;
  const int64_t L = a.run.L, H = a.run.H, P = a.run.P;
  const int64_t Ta = a.run.T, Tb = b.run.T;
  const auto ma = a.run.file->map(kProbs, a.e), mb = b.run.file->map(kProbs, b.e);  // [P,L,H,T,T]
  r.js.assign(L, std::vector<double>(H * H, 0));
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t i = 0; i < H; ++i) {
      for (int64_t j = 0; j < H; ++j) {
        double sum = 0;
        int64_t rows = 0;
        for (int64_t p = 0; p < P; ++p) {
          const int64_t n = a.run.length(p);
          for (int64_t q = 0; q < n; ++q) {
            const float* ra = ma.data() + (((p * L + l) * H + i) * Ta + q) * Ta;
            const float* rb = mb.data() + (((p * L + l) * H + j) * Tb + q) * Tb;
            sum += analysis::js_bits(ra, rb, n);
            ++rows;
          }
        }
        r.js[l][i * H + j] = rows > 0 ? sum / static_cast<double>(rows) : std::nan("");
      }
    }
    r.matching.push_back(analysis::min_cost_assignment(r.js[l], H));
  }
  if (a.metric_row >= 0 && b.metric_row >= 0) {
    for (const auto& m : a.run.header().metrics) {
      const auto& mb_names = b.run.header().metrics;
      if (m == "pattern" || std::find(mb_names.begin(), mb_names.end(), m) == mb_names.end()) continue;
      const auto va = a.run.file->metric(m), vb = b.run.file->metric(m);
      std::vector<double> d(L * H), dm(L * H);
      for (int64_t l = 0; l < L; ++l) {
        for (int64_t h = 0; h < H; ++h) {
          const double x = va[(a.metric_row * L + l) * H + h];
          d[l * H + h] = vb[(b.metric_row * L + l) * H + h] - x;
          dm[l * H + h] = vb[(b.metric_row * L + l) * H + r.matching[l][h]] - x;
        }
      }
      r.metrics.push_back(m);
      r.diff[m] = std::move(d);
      r.diff_matched[m] = std::move(dm);
    }
  }
  return r;
}

json finite(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
json finite_vec(const std::vector<double>& v) {
  json out = json::array();
  for (double x : v) out.push_back(finite(std::round(x * 1e6) / 1e6));
  return out;
}

std::string run_name(const Run& run) {
  if (!run.dir.empty()) return fs::path(run.dir).filename().string();
  return fs::path(run.h5).stem().string();
}

// The pair's summary lines: per layer the matching and its JS against the identity's.
std::string summary_text(const std::vector<Side>& sides, const Pair& r) {
  const auto& a = sides[0].run;
  const auto& b = sides[r.b].run;
  const int64_t H = a.H;
  std::ostringstream out;
  out << std::fixed << std::setprecision(4);
  out << run_name(a) << " (epoch " << a.epochs[sides[0].e].epoch << ") vs " << run_name(b) << " (epoch "
      << b.epochs[sides[r.b].e].epoch << "), " << a.P << " probes; Jensen-Shannon divergence in bits\n";
  for (int64_t l = 0; l < a.L; ++l) {
    double ident = 0, matched = 0;
    bool swapped = false;
    for (int64_t h = 0; h < H; ++h) {
      ident += r.js[l][h * H + h] / static_cast<double>(H);
      matched += r.js[l][h * H + r.matching[l][h]] / static_cast<double>(H);
      swapped = swapped || r.matching[l][h] != h;
    }
    out << "layer " << a.header().layer_ids[l] << ": mean JS same index " << ident << ", matched " << matched
        << (swapped ? " (heads permuted)" : " (identity matching)") << "\n  ";
    for (int64_t h = 0; h < H; ++h) {
      out << "H" << a.header().head_ids[h] << "->H" << b.header().head_ids[r.matching[l][h]] << " (" << r.js[l][h * H + r.matching[l][h]]
          << ")" << (h + 1 < H ? ", " : "\n");
    }
  }
  if (!r.metrics.empty()) {
    for (const auto& m : kShownMetrics) {
      if (!r.diff_matched.count(m)) continue;
      double worst = 0;
      for (double v : r.diff_matched.at(m)) worst = std::max(worst, std::abs(v));
      out << "  max |" << m << " difference| over matched heads: " << worst << "\n";
    }
  }
  return out.str();
}

// ---- figures --------------------------------------------------------------------------------

std::string pair_tag(const std::vector<Side>& sides, const Pair& r) {
  return sides.size() > 2 ? "_" + std::to_string(r.b) : std::string();
}

void matching_figure(const std::vector<Side>& sides, const Pair& r, const Output& out) {
  const auto& a = sides[0].run;
  const auto& b = sides[r.b].run;
  const int64_t L = a.L, H = a.H;
  const int cols = static_cast<int>(std::min<int64_t>(L, 4)), rows = static_cast<int>((L + cols - 1) / cols);
  const int cell = H > 8 ? 300 : 360;
  const int w = cols * cell + 300, hgt = rows * (cell + 80) + 200;
  emit(out, "compare_matching" + pair_tag(sides, r), w, hgt, [&](Canvas& c) {
    c.title("head matching · " + run_name(a) + " vs " + run_name(b),
            "JS (bits) of each head (rows) vs each of the other run (columns); frames: the minimum-JS matching");
    const auto boxes = grid({110.0 / w, 1.0 - 190.0 / w, 90.0 / hgt, 1.0 - 140.0 / hgt}, rows, cols, 90.0 / w, 110.0 / hgt);
    for (int64_t l = 0; l < L; ++l) {
      HeatmapStyle st;
      st.vmin = 0;
      st.vmax = 1;
      st.title = "layer " + std::to_string(a.header().layer_ids[l]);
      for (int64_t h = 0; h < H; ++h) {
        st.ylabels.push_back(run_name(a).substr(0, 10) + " H" + std::to_string(a.header().head_ids[h]));
        st.xlabels.push_back("H" + std::to_string(b.header().head_ids[h]));
      }
      st.label_scale = H > 8 ? 0.5 : 0.8;
      std::vector<float> m(r.js[l].begin(), r.js[l].end());
      c.heatmap(boxes[l], m, static_cast<int>(H), static_cast<int>(H), st);
      // frame the matched cells (the heatmap's world coordinates: column j centred on x = j, row i
      // on y = H-1-i, row 0 at the top)
      auto& pl = c.pl();
      pl.col0(0);
      pl.scol0(15, 255, 255, 255);
      pl.col0(15);
      pl.width(2.5);
      for (int64_t i = 0; i < H; ++i) {
        const double x = static_cast<double>(r.matching[l][i]), y = static_cast<double>(H - 1 - i), d = 0.44;
        PLFLT xs[5] = {x - d, x + d, x + d, x - d, x - d};
        PLFLT ys[5] = {y - d, y - d, y + d, y + d, y - d};
        pl.line(5, xs, ys);
      }
      pl.width(1);
      pl.col0(1);
    }
    c.colorbar({1.0 - 130.0 / w, 1.0 - 110.0 / w, 90.0 / hgt, 1.0 - 140.0 / hgt}, Colormap::kViridis, 0, 1, "JS (bits)");
  });
}

void metric_diff_figure(const std::vector<Side>& sides, const Pair& r, const Output& out) {
  std::vector<std::string> shown;
  for (const auto& m : kShownMetrics) {
    if (r.diff_matched.count(m)) shown.push_back(m);
  }
  if (shown.empty()) return;
  const auto& a = sides[0].run;
  const auto& b = sides[r.b].run;
  const int64_t L = a.L, H = a.H;
  const int cols = static_cast<int>(std::min<size_t>(shown.size(), 3)), rows = static_cast<int>((shown.size() + cols - 1) / cols);
  const int pw = static_cast<int>(std::max<int64_t>(300, H * 34)), ph = static_cast<int>(std::max<int64_t>(220, L * 34));
  const int w = cols * (pw + 170) + 120, hgt = rows * (ph + 120) + 180;
  emit(out, "compare_metric_diff" + pair_tag(sides, r), w, hgt, [&](Canvas& c) {
    c.title("per-head metric differences · " + run_name(b) + " minus " + run_name(a),
            "layer x head of " + run_name(a) + "; each compared with its matched head of " + run_name(b) +
                " (whole validation split, epoch " + std::to_string(a.epochs[sides[0].e].epoch) + " vs " +
                std::to_string(b.epochs[sides[r.b].e].epoch) + ")");
    const auto boxes = grid({110.0 / w, 1.0 - 120.0 / w, 80.0 / hgt, 1.0 - 140.0 / hgt}, rows, cols, 200.0 / w, 120.0 / hgt);
    for (size_t k = 0; k < shown.size(); ++k) {
      const auto& d = r.diff_matched.at(shown[k]);
      double vabs = 1e-6;
      for (double v : d) {
        if (std::isfinite(v)) vabs = std::max(vabs, std::abs(v));
      }
      HeatmapStyle st;
      st.cmap = Colormap::kDiverging;
      st.vmin = -vabs;
      st.vmax = vabs;
      st.title = shown[k];
      st.xtitle = "head";
      st.ytitle = "layer";
      st.x0 = static_cast<double>(a.header().head_ids.front());
      st.y0 = static_cast<double>(a.header().layer_ids.front());
      std::vector<float> m(d.begin(), d.end());
      c.heatmap(boxes[k], m, static_cast<int>(L), static_cast<int>(H), st);
      const auto& bx = boxes[k];
      c.colorbar({bx.x1 + 15.0 / w, bx.x1 + 30.0 / w, bx.y0, bx.y1}, Colormap::kDiverging, -vabs, vabs, "");
    }
  });
}

// Side-by-side maps of matched heads on probe p: the heads whose matched JS is largest (all of
// them for up to 8 heads).
void heads_figure(const std::vector<Side>& sides, const Pair& r, const Output& out, int64_t p) {
  const auto& a = sides[0].run;
  const auto& b = sides[r.b].run;
  const int64_t L = a.L, H = a.H, n = a.length(p);
  std::vector<std::pair<double, int64_t>> order;  // (matched JS, l*H+h)
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t h = 0; h < H; ++h) order.emplace_back(r.js[l][h * H + r.matching[l][h]], l * H + h);
  }
  const size_t show = std::min<size_t>(order.size(), 8);
  if (order.size() > show) {
    std::stable_sort(order.begin(), order.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
    order.resize(show);
    std::sort(order.begin(), order.end(), [](const auto& x, const auto& y) { return x.second < y.second; });
  }
  const auto pa = a.file->probe_map(kProbs, sides[0].e, p), pb = b.file->probe_map(kProbs, sides[r.b].e, p);
  const int cols = static_cast<int>(std::min<size_t>(show, 4)), rows = static_cast<int>((show + cols - 1) / cols);
  const int w = cols * 560 + 200, hgt = rows * 330 + 200;
  const bool labels = n <= 20;
  emit(out, "compare_heads" + pair_tag(sides, r) + "_p" + std::to_string(p), w, hgt, [&](Canvas& c) {
    c.title("matched heads side by side · " + probe_label(a, p),
            "each pair: " + run_name(a) + " (left) and the head of " + run_name(b) + " matched to it (right), with their JS" +
                (order.size() < static_cast<size_t>(L * H) ? "; the 8 pairs that differ most" : std::string()));
    const auto cells = grid({80.0 / w, 1.0 - 150.0 / w, 70.0 / hgt, 1.0 - 150.0 / hgt}, rows, cols, 70.0 / w, 90.0 / hgt);
    for (size_t k = 0; k < show; ++k) {
      const int64_t lh = order[k].second, l = lh / H, h = lh % H, hb = r.matching[l][h];
      const auto& cell = cells[k];
      const Box left{cell.x0, cell.x0 + cell.w() * 0.47, cell.y0, cell.y1}, right{cell.x1 - cell.w() * 0.47, cell.x1, cell.y0, cell.y1};
      HeatmapStyle st;
      st.label_scale = n > 12 ? 0.45 : 0.7;
      st.xlabels = labels ? a.tokens(p) : std::vector<std::string>(n, "");
      st.ylabels = labels ? a.tokens(p) : std::vector<std::string>(n, "");
      st.title = run_name(a).substr(0, 14) + " " + head_tag(a, l, h);
      c.heatmap(left, head_block(pa, lh, a.T, n), static_cast<int>(n), static_cast<int>(n), st);
      st.ylabels = std::vector<std::string>(n, "");
      std::ostringstream t;
      t << run_name(b).substr(0, 14) << " " << head_tag(b, l, hb) << " (JS " << std::fixed << std::setprecision(2) << order[k].first << ")";
      st.title = t.str();
      c.heatmap(right, head_block(pb, l * H + hb, b.T, n), static_cast<int>(n), static_cast<int>(n), st);
    }
    c.colorbar({1.0 - 100.0 / w, 1.0 - 80.0 / w, 70.0 / hgt, 1.0 - 150.0 / hgt}, Colormap::kViridis, 0, 1, "attention");
  });
}

// A metric per head over training, every run on one plot per layer (the first solid, the others
// dashed; a head of another run drawn in the colour of the first run's head it is matched to).
void timelines_figure(const std::vector<Side>& sides, const std::vector<Pair>& pairs, const Output& out) {
  const auto& a = sides[0].run;
  std::vector<std::string> shown;
  for (const auto& m : {"entropy_norm", "first_token_mass", "local_mass"}) {
    bool all = true;
    for (const auto& s : sides) {
      const auto& names = s.run.header().metrics;
      all = all && std::find(names.begin(), names.end(), m) != names.end() && !s.run.file->metric_epochs().empty();
    }
    if (all) shown.emplace_back(m);
  }
  if (shown.empty()) return;
  const int64_t L = a.L, H = a.H;
  const int rows = static_cast<int>(shown.size()), cols = static_cast<int>(std::min<int64_t>(L, 4));
  const int w = cols * 560 + 360, hgt = rows * 380 + 250;
  emit(out, "compare_timelines", w, hgt, [&](Canvas& c) {
    std::string names = run_name(a) + " (solid)";
    for (size_t s = 1; s < sides.size(); ++s) names += ", " + run_name(sides[s].run) + " (dashed)";
    c.title("specialisation timelines overlaid", names + "; colour = head of " + run_name(a) + " and the heads matched to it");
    const auto boxes = grid({90.0 / w, 1.0 - 300.0 / w, 80.0 / hgt, 1.0 - 190.0 / hgt}, rows, cols, 80.0 / w, 100.0 / hgt);
    std::vector<std::vector<int64_t>> me;  // per run: its metric epochs (read once)
    for (const auto& s : sides) me.push_back(s.run.file->metric_epochs());
    for (int r = 0; r < rows; ++r) {
      std::vector<std::vector<float>> values;  // per run: this metric, [M,L,H] (read once per metric)
      for (const auto& s : sides) values.push_back(s.run.file->metric(shown[r]));
      for (int64_t l = 0; l < std::min<int64_t>(L, cols); ++l) {
        std::vector<Series> series;
        for (size_t s = 0; s < sides.size(); ++s) {
          const auto& v = values[s];
          for (int64_t h = 0; h < H; ++h) {
            const int64_t hb = s == 0 ? h : pairs[s - 1].matching[l][h];
            Series se;
            se.name = s == 0 ? head_tag(a, l, h) : run_name(sides[s].run).substr(0, 12) + " " + head_tag(sides[s].run, l, hb);
            se.color = static_cast<int>(h % 10);
            se.dashed = s > 0;
            for (size_t k = 0; k < me[s].size(); ++k) {
              se.x.push_back(static_cast<double>(me[s][k]));
              se.y.push_back(v[(k * L + l) * H + hb]);
            }
            series.push_back(std::move(se));
          }
        }
        LineStyle st;
        st.title = shown[r] + " · layer " + std::to_string(a.header().layer_ids[l]);
        st.xtitle = "epoch";
        st.legend = l == 0 && r == 0 && H <= 12;
        c.lines(boxes[r * cols + l], series, st);
      }
    }
  });
}

void curves_figure(const std::vector<Side>& sides, const Output& out) {
  std::vector<std::string> keys;  // metrics.jsonl numbers every run logged
  for (const char* k : {"train_loss", "val_loss", "val_rmse", "val_acc", "val_auc", "val_ppl"}) {
    bool all = true;
    for (const auto& s : sides) all = all && !s.run.curves.empty() && s.run.curves.back().count(k);
    if (all) keys.emplace_back(k);
  }
  if (keys.empty()) return;
  const int cols = static_cast<int>(std::min<size_t>(keys.size(), 3)), rows = static_cast<int>((keys.size() + cols - 1) / cols);
  const int w = cols * 600 + 120, hgt = rows * 440 + 170;
  emit(out, "compare_curves", w, hgt, [&](Canvas& c) {
    c.title("training curves of every run", "from each run's metrics.jsonl");
    const auto boxes = grid({100.0 / w, 1.0 - 200.0 / w, 90.0 / hgt, 1.0 - 120.0 / hgt}, rows, cols, 200.0 / w, 110.0 / hgt);
    for (size_t k = 0; k < keys.size(); ++k) {
      std::vector<Series> series;
      for (size_t s = 0; s < sides.size(); ++s) {
        Series se;
        se.name = run_name(sides[s].run);
        se.color = static_cast<int>(s % 10);
        for (const auto& row : sides[s].run.curves) {
          const auto e = row.find("epoch");
          const auto v = row.find(keys[k]);
          if (e == row.end()) continue;
          se.x.push_back(e->second);
          se.y.push_back(v == row.end() ? std::nan("") : v->second);
        }
        series.push_back(std::move(se));
      }
      LineStyle st;
      st.title = keys[k];
      st.xtitle = "epoch";
      st.log_y = keys[k].find("loss") != std::string::npos;
      c.lines(boxes[k], series, st);
    }
  });
}

// ---- compare.json and the report ------------------------------------------------------------

// Probe maps of the compared epochs, as the report draws them: [run][probe][layer][head] cropped
// n x n rows of 3 decimals, for probes while their numbers stay within `budget`.
json maps_section(const std::vector<Side>& sides, int64_t budget) {
  json out = json::array();
  const auto& a = sides[0].run;
  int64_t count = 0, probes = 0;
  for (int64_t p = 0; p < a.P; ++p) {
    const int64_t n = a.length(p);
    count += static_cast<int64_t>(sides.size()) * a.L * a.H * n * n;
    if (count > budget && p > 0) break;
    probes = p + 1;
  }
  for (const auto& s : sides) {
    json run = json::array();
    for (int64_t p = 0; p < probes; ++p) {
      const int64_t n = s.run.length(p);
      const auto pm = s.run.file->probe_map(kProbs, s.e, p);
      json layers = json::array();
      for (int64_t l = 0; l < s.run.L; ++l) {
        json heads = json::array();
        for (int64_t h = 0; h < s.run.H; ++h) {
          const auto blk = head_block(pm, l * s.run.H + h, s.run.T, n);
          json m = json::array();
          for (float v : blk) m.push_back(std::round(v * 1000) / 1000);
          heads.push_back(std::move(m));
        }
        layers.push_back(std::move(heads));
      }
      run.push_back(std::move(layers));
    }
    out.push_back(std::move(run));
  }
  return out;
}

json compare_json(const std::vector<Side>& sides, const std::vector<Pair>& pairs) {
  const auto& a = sides[0].run;
  json d;
  d["schema"] = "attnscope-compare/1";
  d["layers"] = a.header().layer_ids;
  d["heads"] = a.header().head_ids;
  json runs = json::array();
  for (const auto& s : sides) {
    json r = {{"name", run_name(s.run)}, {"path", s.run.dir.empty() ? s.run.h5 : s.run.dir}, {"label", s.run.label()},
              {"epoch", s.run.epochs[s.e].epoch}, {"step", s.run.epochs[s.e].step}};
    json curves = json::array();
    for (const auto& row : s.run.curves) {
      json c = json::object();
      for (const auto& [k, v] : row) c[k] = finite(v);
      curves.push_back(std::move(c));
    }
    r["curves"] = std::move(curves);
    // the per-head metric timelines: metric -> [epochs][L*H]
    json tl = json::object();
    tl["epochs"] = s.run.file->metric_epochs();
    for (const auto& m : kShownMetrics) {
      const auto& names = s.run.header().metrics;
      if (std::find(names.begin(), names.end(), m) == names.end()) continue;
      const auto v = s.run.file->metric(m);
      tl[m] = finite_vec(std::vector<double>(v.begin(), v.end()));
    }
    r["timelines"] = std::move(tl);
    runs.push_back(std::move(r));
  }
  d["runs"] = std::move(runs);
  json probes = json::array();
  for (int64_t p = 0; p < a.P; ++p) probes.push_back({{"text", a.probes().text[p]}, {"tokens", a.tokens(p)}});
  d["probes"] = std::move(probes);
  json ps = json::array();
  for (const auto& r : pairs) {
    json j = {{"a", 0}, {"b", r.b}};
    json js = json::array(), matching = json::array();
    for (size_t l = 0; l < r.js.size(); ++l) {
      js.push_back(finite_vec(r.js[l]));
      matching.push_back(r.matching[l]);
    }
    j["js"] = std::move(js);
    j["matching"] = std::move(matching);
    json diff = json::object(), dm = json::object();
    for (const auto& m : r.metrics) {
      diff[m] = finite_vec(r.diff.at(m));
      dm[m] = finite_vec(r.diff_matched.at(m));
    }
    j["metric_diff"] = std::move(diff);
    j["metric_diff_matched"] = std::move(dm);
    ps.push_back(std::move(j));
  }
  d["pairs"] = std::move(ps);
  return d;
}

}  // namespace

Compared compare(const CompareOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.inputs.size() < 2) throw UsageError("compare: name at least two runs (run directories or attention .h5 files)");
  for (const auto& f : o.formats) {
    if (f != "png" && f != "svg" && f != "html") throw UsageError("--format: unknown format '" + f + "' (png, svg, html)");
  }
  const bool html = std::find(o.formats.begin(), o.formats.end(), "html") != o.formats.end();
  const std::string web_dir = o.web_dir.empty() ? default_web_dir() : o.web_dir;
  if (html) {
    check_web_dir(web_dir);
    for (const char* f : {WebDir::kComparePage, WebDir::kCompareApp}) {
      if (!fs::exists(fs::path(web_dir) / f)) throw UsageError("the comparison report needs '" + (fs::path(web_dir) / f).string() + "'");
    }
  }
  std::vector<Side> sides;
  for (const auto& in : o.inputs) {
    Side s{open_run(in)};
    if (!s.run.has_site(kProbs) || s.run.epochs.empty()) {
      throw UsageError("compare: '" + s.run.h5 + "' holds no recorded attention probabilities (attn.probs)");
    }
    s.e = pick_epoch(s.run, o.epoch);
    s.metric_row = metric_row(s.run, s.run.epochs[s.e].epoch);
    sides.push_back(std::move(s));
  }
  for (size_t k = 1; k < sides.size(); ++k) check_comparable(sides[0], sides[k]);
  if (o.probe < 0 || o.probe >= sides[0].run.P) {
    throw UsageError("--probe " + std::to_string(o.probe) + ": the runs hold probes 0.." + std::to_string(sides[0].run.P - 1));
  }
  std::vector<Pair> pairs;
  Compared result;
  for (size_t k = 1; k < sides.size(); ++k) {
    pairs.push_back(compare_pair(sides[0], sides[k], static_cast<int64_t>(k)));
    result.summary += summary_text(sides, pairs.back());
  }
  const std::string out_dir = o.out.empty() ? "compare" : o.out;
  fs::create_directories(fs::path(out_dir) / RunDir::kFigures);
  std::vector<std::string> images;
  for (const auto& f : o.formats) {
    if (f != "html") images.push_back(f);
  }
  Output out{(fs::path(out_dir) / RunDir::kFigures).string(), images, &result.rendered.files};
  if (!images.empty()) {
    for (const auto& r : pairs) {
      matching_figure(sides, r, out);
      metric_diff_figure(sides, r, out);
      heads_figure(sides, r, out, o.probe);
    }
    timelines_figure(sides, pairs, out);
    curves_figure(sides, out);
  }
  const std::string json_path = (fs::path(out_dir) / "compare.json").string();
  json data = compare_json(sides, pairs);
  write_file_atomic(json_path, data.dump(1) + "\n");
  result.rendered.files.push_back(json_path);
  if (html) {
    data["maps"] = maps_section(sides, 4'000'000);  // the report's side-by-side maps (not in compare.json)
    const std::string page = assemble_report(data.dump(), web_dir, WebDir::kComparePage, WebDir::kCompareApp);
    const std::string path = (fs::path(out_dir) / "compare.html").string();
    write_file_atomic(path, page);
    result.rendered.files.push_back(path);
  }
  for (const auto& f : result.rendered.files) {
    std::error_code ec;
    result.rendered.bytes += fs::file_size(f, ec);
  }
  result.rendered.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace attnscope::viz
