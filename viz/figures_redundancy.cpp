// Head redundancy (viz/figures.h): the recorded Jensen-Shannon distance between every pair of heads
// (/analysis/head_js, Clark et al. 2019), heads clustered by average linkage with the dendrogram,
// and how many distinct clusters remain over training.
#include <plplot/plstream.h>

#include <algorithm>
#include <filesystem>
#include <cmath>
#include <functional>
#include <limits>

#include "viz/figures.h"
#include "viz/figures_common.h"

namespace attnscope::viz {

std::vector<Merge> average_linkage(const std::vector<double>& d, int64_t n) {
  if (static_cast<int64_t>(d.size()) != n * n) throw std::invalid_argument("average_linkage: d is not n x n");
  // clusters by id (leaves 0..n-1, the k-th merge n+k), their members, and the average distances
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(n));
  std::vector<int64_t> alive(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) members[static_cast<size_t>(i)] = {i}, alive[static_cast<size_t>(i)] = i;
  std::vector<Merge> merges;
  const auto dist = [&](int64_t a, int64_t b) {  // mean over member pairs (UPGMA)
    double s = 0;
    for (int64_t i : members[static_cast<size_t>(a)]) {
      for (int64_t j : members[static_cast<size_t>(b)]) s += d[static_cast<size_t>(i * n + j)];
    }
    return s / static_cast<double>(members[static_cast<size_t>(a)].size() * members[static_cast<size_t>(b)].size());
  };
  while (alive.size() > 1) {
    double best = std::numeric_limits<double>::infinity();
    size_t bi = 0, bj = 1;
    for (size_t i = 0; i < alive.size(); ++i) {
      for (size_t j = i + 1; j < alive.size(); ++j) {
        const double x = dist(alive[i], alive[j]);
        if (x < best) best = x, bi = i, bj = j;
      }
    }
    const int64_t a = alive[bi], b = alive[bj], id = n + static_cast<int64_t>(merges.size());
    auto joined = members[static_cast<size_t>(a)];
    joined.insert(joined.end(), members[static_cast<size_t>(b)].begin(), members[static_cast<size_t>(b)].end());
    members.push_back(joined);
    merges.push_back({a, b, best, static_cast<int64_t>(joined.size())});
    alive.erase(alive.begin() + static_cast<std::ptrdiff_t>(bj));
    alive[bi] = id;
  }
  return merges;
}

std::vector<int64_t> dendrogram_order(const std::vector<Merge>& merges, int64_t n) {
  std::vector<int64_t> order;
  const std::function<void(int64_t)> walk = [&](int64_t id) {
    if (id < n) {
      order.push_back(id);
      return;
    }
    walk(merges[static_cast<size_t>(id - n)].a);
    walk(merges[static_cast<size_t>(id - n)].b);
  };
  if (n == 1) order.push_back(0);
  if (n > 1) walk(n + static_cast<int64_t>(merges.size()) - 1);
  return order;
}

int64_t clusters_at(const std::vector<Merge>& merges, int64_t n, double threshold) {
  int64_t k = n;
  for (const auto& m : merges) k -= m.height <= threshold;  // average linkage: heights never decrease
  return k;
}

namespace {
constexpr double kThresholds[] = {0.2, 0.35, 0.5};  // JS distance (sqrt of bits), in [0, 1]
}

void head_redundancy(const Run& run, const Output& out) {
  if (run.epochs.empty()) return;
  const int64_t n = run.L * run.H;
  if (n < 2) return;
  // per recorded epoch: the linkage (epochs without the analysis are left out)
  std::vector<double> x;
  std::vector<std::vector<Merge>> per_epoch;
  std::vector<double> last;
  for (size_t e = 0; e < run.epochs.size(); ++e) {
    std::vector<float> v;
    try {
      v = run.file->analysis("head_js", static_cast<int64_t>(e));
    } catch (const std::exception&) {
      return;  // an older file without the analysis
    }
    if (static_cast<int64_t>(v.size()) != n * n || !std::isfinite(v[1])) continue;
    std::vector<double> d(v.begin(), v.end());
    per_epoch.push_back(average_linkage(d, n));
    x.push_back(static_cast<double>(run.epochs[e].epoch));
    last = d;
  }
  if (per_epoch.empty()) return;
  const auto& merges = per_epoch.back();
  const auto order = dendrogram_order(merges, n);
  std::vector<float> sorted(static_cast<size_t>(n * n));
  std::vector<std::string> labels;
  for (int64_t i = 0; i < n; ++i) {
    labels.push_back(head_tag(run, order[static_cast<size_t>(i)] / run.H, order[static_cast<size_t>(i)] % run.H));
    for (int64_t j = 0; j < n; ++j) {
      sorted[static_cast<size_t>(i * n + j)] = static_cast<float>(last[static_cast<size_t>(order[i] * n + order[j])]);
    }
  }
  double top = 1e-6;
  for (float v : sorted) top = std::max(top, static_cast<double>(v));
  const int w = 1500, hgt = 1000;
  emit(out, "head_redundancy", w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · head redundancy: which heads attend alike",
            "Jensen-Shannon distance between every pair of heads over the probes (0 = same attention), heads ordered by "
            "average-linkage clustering; " + epoch_label(run, static_cast<int64_t>(run.epochs.size()) - 1));
    const Box dendro{90.0 / w, 0.56, 0.73, 0.86}, map{90.0 / w, 0.56, 0.11, 0.72};
    HeatmapStyle st;
    st.vmin = 0;
    st.vmax = top;
    st.xlabels = labels;
    st.ylabels = labels;
    st.label_scale = n > 24 ? 0.45 : 0.7;
    c.heatmap(map, sorted, static_cast<int>(n), static_cast<int>(n), st);
    c.colorbar({0.575, 0.59, 0.11, 0.72}, Colormap::kViridis, 0, top, "JS distance");
    // the dendrogram above the map: leaf i at x = i + 0.5, a merge at its height
    auto& pl = c.pl();
    pl.vpor(dendro.x0, dendro.x1, dendro.y0, dendro.y1);
    double hmax = 1e-6;
    for (const auto& m : merges) hmax = std::max(hmax, m.height);
    pl.wind(0, static_cast<double>(n), 0, hmax * 1.05);
    std::vector<double> pos(static_cast<size_t>(2 * n - 1)), height(static_cast<size_t>(2 * n - 1), 0.0);
    for (int64_t i = 0; i < n; ++i) pos[static_cast<size_t>(order[static_cast<size_t>(i)])] = static_cast<double>(i) + 0.5;
    pl.scol0(15, 60, 60, 60);
    pl.col0(15);
    pl.width(1.2);
    for (size_t k = 0; k < merges.size(); ++k) {
      const auto& m = merges[k];
      const double xa = pos[static_cast<size_t>(m.a)], xb = pos[static_cast<size_t>(m.b)];
      const double ya = height[static_cast<size_t>(m.a)], yb = height[static_cast<size_t>(m.b)];
      pl.join(xa, ya, xa, m.height);
      pl.join(xb, yb, xb, m.height);
      pl.join(xa, m.height, xb, m.height);
      pos[static_cast<size_t>(n) + k] = (xa + xb) / 2;
      height[static_cast<size_t>(n) + k] = m.height;
    }
    pl.box("", 0, 0, "bcnstv", hmax > 0.3 ? 0.2 : 0.1, 2);
    pl.lab("", "merge height", "");
    // distinct clusters over training at a few distance thresholds
    std::vector<Series> series;
    for (size_t t = 0; t < std::size(kThresholds); ++t) {
      Series s;
      char name[64];
      std::snprintf(name, sizeof name, "closer than %.2f merged", kThresholds[t]);
      s.name = name;
      s.x = x;
      for (const auto& ms : per_epoch) s.y.push_back(static_cast<double>(clusters_at(ms, n, kThresholds[t])));
      s.color = static_cast<int>(t);
      s.points = x.size() < 30;
      series.push_back(s);
    }
    LineStyle ls;
    ls.title = "distinct head clusters over training";
    ls.xtitle = "epoch";
    ls.ytitle = "clusters (of " + std::to_string(n) + " heads)";
    ls.fixed_y = true;
    ls.ymin = 0;
    ls.ymax = static_cast<double>(n) + 0.5;
    c.lines({0.67, 0.84, 0.11, 0.86}, series, ls);
  });
}

std::string synthetic_patterns_figure(const std::string& dir, int64_t n, const std::vector<float>& maps,
                                      const std::vector<std::string>& titles) {
  const int64_t K = static_cast<int64_t>(titles.size());
  if (static_cast<int64_t>(maps.size()) != K * n * n) throw std::invalid_argument("synthetic_patterns_figure: maps is not [K,n,n]");
  std::filesystem::create_directories(dir);
  std::vector<std::string> written;
  const Output out{dir, {"png"}, &written};
  const int64_t cols = K > 6 ? 4 : 3, rows = (K + cols - 1) / cols;
  const int w = 1500, hgt = static_cast<int>(rows * 470 + 170);
  emit(out, "synthetic_patterns", w, hgt, [&](Canvas& c) {
    c.title("the canonical attention patterns and what the metrics make of them",
            "synthetic maps of " + std::to_string(n) + " tokens (query down, key across); above each: the class the "
            "thresholds assign and the metrics that decide it (README: attention metrics)");
    const auto boxes = grid({70.0 / w, 1.0 - 150.0 / w, 60.0 / hgt, 1.0 - 150.0 / hgt}, static_cast<int>(rows),
                            static_cast<int>(cols), 90.0 / w, 110.0 / hgt);
    for (int64_t k = 0; k < K; ++k) {
      HeatmapStyle st;
      st.title = titles[static_cast<size_t>(k)];
      st.xlabels = std::vector<std::string>(static_cast<size_t>(n), "");
      st.ylabels = st.xlabels;
      c.heatmap(boxes[static_cast<size_t>(k)], std::vector<float>(maps.begin() + k * n * n, maps.begin() + (k + 1) * n * n),
                static_cast<int>(n), static_cast<int>(n), st);
    }
    c.colorbar({1.0 - 110.0 / w, 1.0 - 90.0 / w, 60.0 / hgt, 1.0 - 150.0 / hgt}, Colormap::kViridis, 0, 1, "attention");
  });
  return written.front();
}

}  // namespace attnscope::viz
