// The projection of the probes' pooled vectors over training (viz/figures.h), coloured by the
// task's probe targets.
#include <algorithm>
#include <cmath>

#include <plplot/plstream.h>

#include "viz/figures_common.h"

namespace attnscope::viz {

std::vector<std::vector<double>> pca2(const std::vector<float>& x, int64_t n, int64_t d) { return analysis::pca(x, n, d, 2); }

std::vector<std::pair<std::string, std::vector<double>>> probe_targets(const Run& run) {
  std::vector<std::pair<std::string, std::vector<double>>> out;
  if (!run.is(TaskKind::MinMax)) return out;
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

void scatter_frame(plstream& pl, const Box& box, const std::vector<std::vector<double>>& pts, double margin,
                   double tick_scale, const std::string& title) {
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
  for (const auto& pt : pts) {
    xmin = std::min(xmin, pt[0]), xmax = std::max(xmax, pt[0]);
    ymin = std::min(ymin, pt[1]), ymax = std::max(ymax, pt[1]);
  }
  const double px = margin * (xmax - xmin + 1e-9), py = margin * (ymax - ymin + 1e-9);
  pl.vpor(box.x0, box.x1, box.y0, box.y1);
  pl.wind(xmin - px, xmax + px, ymin - py, ymax + py);
  pl.col0(1);
  set_text_scale(pl, tick_scale);
  pl.box("bcnst", 0, 0, "bcnstv", 0, 0);
  set_text_scale(pl, 1.0);
  pl.mtex("t", 0.8, 0.5, 0.5, title.c_str());
}

void viridis_cmap1(plstream& pl) {
  pl.scmap1n(256);
  const PLFLT pos[] = {0, 1.0 / 3, 2.0 / 3, 1}, r[] = {0x44 / 255.0, 0x31 / 255.0, 0x35 / 255.0, 0xfd / 255.0},
              g[] = {0x01 / 255.0, 0x68 / 255.0, 0xb7 / 255.0, 0xe7 / 255.0},
              b[] = {0x54 / 255.0, 0x8e / 255.0, 0x79 / 255.0, 0x25 / 255.0}, a[] = {1, 1, 1, 1};
  pl.scmap1la(true, 4, pos, r, g, b, a, nullptr);
}

namespace {

// How the points are coloured: by the task's first probe target (the min/max answer), else by
// probe index; shaped by the second (the operator) when there is one.
struct Colouring {
  std::vector<double> value;
  std::string name;
  double min = 0, max = 1;
  const std::vector<double>* shape = nullptr;  // < 0.5: triangle, else disc
};

Colouring colouring(const std::vector<std::pair<std::string, std::vector<double>>>& targets, int64_t P) {
  Colouring c;
  c.value.assign(P, 0.5);
  c.name = "probe index";
  c.min = 0;
  c.max = static_cast<double>(P - 1);
  if (!targets.empty()) {
    c.value = targets[0].second;
    c.name = targets[0].first;
    c.min = *std::min_element(c.value.begin(), c.value.end());
    c.max = *std::max_element(c.value.begin(), c.value.end());
  } else {
    for (int64_t p = 0; p < P; ++p) c.value[p] = static_cast<double>(p);
  }
  if (c.max <= c.min) c.max = c.min + 1;
  c.shape = targets.size() > 1 ? &targets[1].second : nullptr;
  return c;
}

// One epoch's points in `box`, axes fitted to them with a margin of 8%.
void scatter_panel(plstream& pl, const Box& box, const std::vector<std::vector<double>>& pts, const Colouring& col,
                   const std::string& title, bool first) {
  scatter_frame(pl, box, pts, 0.08, 0.8, title);
  pl.mtex("b", 2.6, 0.5, 0.5, "PC 1");
  if (first) pl.mtex("l", 4.0, 0.5, 0.5, "PC 2");
  viridis_cmap1(pl);
  set_text_scale(pl, 1.4);
  pl.ssym(0, 1.6);
  for (size_t p = 0; p < pts.size(); ++p) {
    if (!std::isfinite(col.value[p])) continue;
    pl.col1((col.value[p] - col.min) / (col.max - col.min));
    const PLFLT x[] = {pts[p][0]}, y[] = {pts[p][1]};
    pl.poin(1, x, y, col.shape && (*col.shape)[p] < 0.5 ? 7 : 17);
  }
  pl.ssym(0, 1.0);
  set_text_scale(pl, 1.0);
}

}  // namespace

void projection(const Run& run, const Output& out, const std::vector<int64_t>& es) {
  const int64_t D = run.header().pooled_dim, P = run.P;
  if (D <= 0 || P < 3) return;
  std::vector<std::vector<std::vector<double>>> coords;
  for (int64_t e : es) coords.push_back(pca2(run.file->pooled(e), P, D));
  const auto targets = probe_targets(run);
  const Colouring col = colouring(targets, P);
  const int K = static_cast<int>(es.size());
  const int w = K * 380 + 260, hgt = 620;
  emit(out, "projection_pca", w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · pooled vectors of the probes, PCA to 2-D, over training",
            "colour: " + col.name + (col.shape ? " · ● max, ▲ min" : "") + " · one PCA per epoch");
    const auto boxes = grid({90.0 / w, 1.0 - 170.0 / w, 0.16, 0.80}, 1, K, 60.0 / w, 0);
    for (int k = 0; k < K; ++k) {
      scatter_panel(c.pl(), boxes[k], coords[k], col, "epoch " + std::to_string(run.epochs[es[k]].epoch), k == 0);
    }
    c.colorbar({1.0 - 120.0 / w, 1.0 - 102.0 / w, 0.16, 0.80}, Colormap::kViridis, col.min, col.max, col.name);
  });
}

}  // namespace attnscope::viz
