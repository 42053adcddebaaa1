// PLplot drawing helpers (viz/plot.h).
#include "viz/plot.h"

#include <plplot/plstream.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <stdexcept>

namespace attnscope::viz {
namespace {

// viridis (matplotlib) at 10 evenly spaced stops, interpolated linearly in RGB by PLplot.
const Rgb kViridis[] = {{0x44, 0x01, 0x54}, {0x48, 0x28, 0x78}, {0x3e, 0x4a, 0x89}, {0x31, 0x68, 0x8e},
                        {0x26, 0x82, 0x8e}, {0x1f, 0x9e, 0x89}, {0x35, 0xb7, 0x79}, {0x6d, 0xcd, 0x59},
                        {0xb4, 0xde, 0x2c}, {0xfd, 0xe7, 0x25}};
// RdBu reversed (ColorBrewer): blue below 0, white at 0, red above.
const Rgb kDiverging[] = {{0x21, 0x66, 0xac}, {0x43, 0x93, 0xc3}, {0x92, 0xc5, 0xde}, {0xd1, 0xe5, 0xf0},
                          {0xf7, 0xf7, 0xf7}, {0xfd, 0xdb, 0xc7}, {0xf4, 0xa5, 0x82}, {0xd6, 0x60, 0x4d},
                          {0xb2, 0x18, 0x2b}};

constexpr int kFirstCategorical = 2;
constexpr double kCharMm = 3.6;  // cmap0: 0 background (white), 1 ink (dark grey)

template <size_t N>
void set_cmap1(plstream& pl, const Rgb (&stops)[N]) {
  PLFLT pos[N], r[N], g[N], b[N], a[N];
  for (size_t i = 0; i < N; ++i) {
    pos[i] = static_cast<PLFLT>(i) / (N - 1);
    r[i] = stops[i].r / 255.0;
    g[i] = stops[i].g / 255.0;
    b[i] = stops[i].b / 255.0;
    a[i] = 1.0;
  }
  pl.scmap1n(256);
  pl.scmap1la(true, static_cast<PLINT>(N), pos, r, g, b, a, nullptr);
}

void use_cmap(plstream& pl, Colormap c) {
  if (c == Colormap::kViridis) {
    set_cmap1(pl, kViridis);
  } else {
    set_cmap1(pl, kDiverging);
  }
}

// Draws `m` (rows x cols, row-major) as an image over world [-0.5, cols-0.5] x [-0.5, rows-0.5];
// with y_down, row 0 is drawn at the top.
void draw_image(plstream& pl, const std::vector<float>& m, int rows, int cols, double vmin, double vmax, bool y_down,
                double x0, double y0) {
  // PLplot's image takes grid points and colours the cell after each: (cols+1) x (rows+1) points
  // for cols x rows cells, the last row and column repeated.
  const int nx = cols + 1, ny = rows + 1;
  std::vector<PLFLT> buf(static_cast<size_t>(nx) * ny);
  std::vector<const PLFLT*> ptr(nx);
  for (int x = 0; x < nx; ++x) {
    const int c = std::min(x, cols - 1);
    for (int y = 0; y < ny; ++y) {
      const int yy = std::min(y, rows - 1);
      const int r = y_down ? rows - 1 - yy : yy;
      float v = m[static_cast<size_t>(r) * cols + c];
      if (!std::isfinite(v)) v = static_cast<float>(vmin);
      buf[static_cast<size_t>(x) * ny + y] = std::clamp<double>(v, vmin, vmax);
    }
    ptr[x] = &buf[static_cast<size_t>(x) * ny];
  }
  pl.imagefr(ptr.data(), nx, ny, x0 - 0.5, x0 + cols - 0.5, y0 - 0.5, y0 + rows - 0.5, vmin, vmax, vmin, vmax,
             nullptr, nullptr);
}

size_t display_width(const std::string& s) {  // UTF-8 code points
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

Rgb viridis(double t) {
  constexpr int n = sizeof(kViridis) / sizeof(kViridis[0]);
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * (n - 1);
  const int i = std::min(n - 2, static_cast<int>(t));
  const double f = t - i;
  auto mix = [&](int a, int b) { return static_cast<int>(std::lround(a + f * (b - a))); };
  return {mix(kViridis[i].r, kViridis[i + 1].r), mix(kViridis[i].g, kViridis[i + 1].g), mix(kViridis[i].b, kViridis[i + 1].b)};
}

const std::vector<Rgb>& categorical() {
  static const std::vector<Rgb> c = {{0x1f, 0x77, 0xb4}, {0xff, 0x7f, 0x0e}, {0x2c, 0xa0, 0x2c}, {0xd6, 0x27, 0x28},
                                     {0x94, 0x67, 0xbd}, {0x8c, 0x56, 0x4b}, {0xe3, 0x77, 0xc2}, {0x7f, 0x7f, 0x7f},
                                     {0xbc, 0xbd, 0x22}, {0x17, 0xbe, 0xcf}};
  return c;
}

void set_text_scale(plstream& pl, double scale) { pl.schr(kCharMm, scale); }

std::string pl_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += c;
    if (c == '#') out += '#';
  }
  return out;
}

std::vector<Box> grid(const Box& area, int rows, int cols, double hgap, double vgap) {
  std::vector<Box> out;
  const double w = (area.w() - hgap * (cols - 1)) / cols, h = (area.h() - vgap * (rows - 1)) / rows;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const double x0 = area.x0 + c * (w + hgap), y1 = area.y1 - r * (h + vgap);
      out.push_back({x0, x0 + w, y1 - h, y1});
    }
  }
  return out;
}

Canvas::Canvas(const std::string& path, const std::string& format, int width_px, int height_px)
    : path_(path), tmp_(path + ".part"), width_(width_px), height_(height_px) {
  pls_ = std::make_unique<plstream>();
  pls_->sdev(format == "svg" ? "svgcairo" : "pngcairo");
  pls_->sfnam(tmp_.c_str());
  pls_->spage(0, 0, width_px, height_px, 0, 0);
  // cmap0: 0 background (white), 1 ink (dark grey), then the categorical colours, then spares
  PLINT r[16] = {255, 40}, g[16] = {255, 40}, b[16] = {255, 40};
  const auto& cat = categorical();
  for (size_t i = 0; i < cat.size(); ++i) {
    r[kFirstCategorical + i] = cat[i].r, g[kFirstCategorical + i] = cat[i].g, b[kFirstCategorical + i] = cat[i].b;
  }
  pls_->scmap0(r, g, b, 16);
  pls_->init();
  pls_->adv(0);
  pls_->col0(1);
  // PLplot's default character height grows with the page; fix it instead (mm at the cairo
  // driver's 72 dpi), so text is the same size on every figure, as a reader expects.
  pls_->schr(kCharMm, 1.0);
}

Canvas::~Canvas() {
  if (!done_) {
    pls_.reset();  // plend1
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }
}

plstream& Canvas::pl() { return *pls_; }

void Canvas::finish() {
  pls_.reset();  // flushes and closes the file
  done_ = true;
  std::filesystem::rename(tmp_, path_);
}

void Canvas::title(const std::string& text, const std::string& subtitle) {
  auto& pl = *pls_;
  pl.vpor(0, 1, 0, 1);
  pl.wind(0, 1, 0, 1);
  pl.col0(1);
  pl.schr(kCharMm, 1.5);
  pl.ptex(0.5, 1.0 - 36.0 / height_, 1, 0, 0.5, pl_escape(text).c_str());
  if (!subtitle.empty()) {
    pl.schr(kCharMm, 1.1);
    pl.ptex(0.5, 1.0 - 66.0 / height_, 1, 0, 0.5, pl_escape(subtitle).c_str());
  }
  pl.schr(kCharMm, 1.0);
}

void Canvas::text(double x, double y, double just, double scale, const std::string& s) {
  auto& pl = *pls_;
  pl.vpor(0, 1, 0, 1);
  pl.wind(0, 1, 0, 1);
  pl.col0(1);
  pl.schr(kCharMm, scale);
  pl.ptex(x, y, 1, 0, just, pl_escape(s).c_str());
  pl.schr(kCharMm, 1.0);
}

void Canvas::heatmap(const Box& box, const std::vector<float>& m, int rows, int cols, const HeatmapStyle& st) {
  auto& pl = *pls_;
  pl.vpor(box.x0, box.x1, box.y0, box.y1);
  pl.wind(st.x0 - 0.5, st.x0 + cols - 0.5, st.y0 - 0.5, st.y0 + rows - 0.5);
  use_cmap(pl, st.cmap);
  draw_image(pl, m, rows, cols, st.vmin, st.vmax, st.y_down, st.x0, st.y0);
  pl.col0(1);
  const double char_px = kCharMm * 72 / 25.4 * 1.25 * st.label_scale;  // line height in pixels
  pl.schr(kCharMm, st.label_scale);
  double xlab_chars = 1.5, ylab_chars = 1.5;
  if (st.xlabels.empty() && st.ylabels.empty()) {
    pl.box("bcnst", 0, 0, "bcnstv", 0, 0);
    xlab_chars = 2.5;
    ylab_chars = 4.0;
  } else {
    pl.box("bc", 0, 0, "bc", 0, 0);
    const double col_px = box.w() * width_ / cols, row_px = box.h() * height_ / rows;
    size_t longest = 0;
    for (const auto& s : st.xlabels) longest = std::max(longest, display_width(s));
    const bool vertical = longest * char_px * 0.62 > col_px * 0.95;
    const int xstep = std::max(1, static_cast<int>(std::ceil((vertical ? char_px * 1.1 : longest * char_px * 0.62 + 4) / col_px)));
    for (int c = 0; c < static_cast<int>(st.xlabels.size()); c += xstep) {
      const double pos = (c + 0.5) / cols;
      if (vertical) {
        pl.mtex("bv", 0.6, pos, 1.0, pl_escape(st.xlabels[c]).c_str());
      } else {
        pl.mtex("b", 1.3, pos, 0.5, pl_escape(st.xlabels[c]).c_str());
      }
    }
    xlab_chars = vertical ? longest * 0.62 + 1.2 : 2.4;
    const int ystep = std::max(1, static_cast<int>(std::ceil(char_px * 1.1 / row_px)));
    size_t ylongest = 0;
    for (int r = 0; r < static_cast<int>(st.ylabels.size()); r += ystep) {
      const double pos = st.y_down ? (rows - 1 - r + 0.5) / rows : (r + 0.5) / rows;
      pl.mtex("lv", 0.6, pos, 1.0, pl_escape(st.ylabels[r]).c_str());
      ylongest = std::max(ylongest, display_width(st.ylabels[r]));
    }
    ylab_chars = ylongest * 0.62 + 1.2;
  }
  pl.schr(kCharMm, 1.0);
  const double s = st.label_scale;
  if (!st.xtitle.empty()) pl.mtex("b", xlab_chars * s + 1.4, 0.5, 0.5, pl_escape(st.xtitle).c_str());
  if (!st.ytitle.empty()) pl.mtex("l", ylab_chars * s + 1.2, 0.5, 0.5, pl_escape(st.ytitle).c_str());
  if (!st.title.empty()) pl.mtex("t", 0.8, 0.5, 0.5, pl_escape(st.title).c_str());
}

void Canvas::colorbar(const Box& box, Colormap cmap, double vmin, double vmax, const std::string& label) {
  auto& pl = *pls_;
  pl.vpor(box.x0, box.x1, box.y0, box.y1);
  pl.wind(0, 1, vmin, vmax);
  use_cmap(pl, cmap);
  constexpr int n = 256;
  std::vector<float> ramp(n);
  for (int i = 0; i < n; ++i) ramp[i] = static_cast<float>(vmin + (vmax - vmin) * (i + 0.5) / n);
  pl.wind(-0.5, 0.5, -0.5, n - 0.5);
  draw_image(pl, ramp, n, 1, vmin, vmax, false, 0, 0);
  pl.wind(0, 1, vmin, vmax);
  pl.col0(1);
  pl.schr(kCharMm, 0.9);
  pl.box("bc", 0, 0, "bcmtv", 0, 0);
  pl.schr(kCharMm, 1.0);
  if (!label.empty()) pl.mtex("r", 5.0, 0.5, 0.5, pl_escape(label).c_str());
}

void Canvas::lines(const Box& box, const std::vector<Series>& series, const LineStyle& st) {
  auto& pl = *pls_;
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (const auto& s : series) {
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (st.log_y && s.y[i] <= 0)) continue;
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      const double y = st.log_y ? std::log10(s.y[i]) : s.y[i];
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
    }
  }
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  if (xmax == xmin) xmin -= 0.5, xmax += 0.5;
  if (st.fixed_y) ymin = st.ymin, ymax = st.ymax;
  if (ymax == ymin) ymin -= 0.5, ymax += 0.5;
  const double pad = 0.04 * (ymax - ymin);
  if (!st.fixed_y) ymin -= pad, ymax += pad;
  pl.vpor(box.x0, box.x1, box.y0, box.y1);
  pl.wind(xmin, xmax, ymin, ymax);
  pl.col0(1);
  pl.width(1);
  pl.schr(kCharMm, 0.9);
  pl.box("bcnst", 0, 0, st.log_y ? "bcnstvl" : "bcnstv", 0, 0);
  pl.schr(kCharMm, 1.0);
  for (const auto& s : series) {
    pl.col0(kFirstCategorical + s.color % static_cast<int>(categorical().size()));
    pl.width(2);
    pl.lsty(s.dashed ? 2 : 1);
    std::vector<PLFLT> xs, ys;
    auto flush = [&] {
      if (xs.size() > 1) pl.line(static_cast<PLINT>(xs.size()), xs.data(), ys.data());
      if (s.points || xs.size() == 1) pl.poin(static_cast<PLINT>(xs.size()), xs.data(), ys.data(), 17);
      xs.clear();
      ys.clear();
    };
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (st.log_y && s.y[i] <= 0)) {
        flush();
        continue;
      }
      xs.push_back(s.x[i]);
      ys.push_back(st.log_y ? std::log10(s.y[i]) : s.y[i]);
    }
    flush();
  }
  pl.lsty(1);
  pl.width(1);
  pl.col0(1);
  if (!st.xtitle.empty()) pl.mtex("b", 2.8, 0.5, 0.5, pl_escape(st.xtitle).c_str());
  if (!st.ytitle.empty()) pl.mtex("l", 4.2, 0.5, 0.5, pl_escape(st.ytitle).c_str());
  if (!st.title.empty()) pl.mtex("t", 0.8, 0.5, 0.5, pl_escape(st.title).c_str());
  if (st.legend && !series.empty()) {
    std::vector<PLINT> opt(series.size(), PL_LEGEND_LINE), colors, styles(series.size(), 1);
    std::vector<PLFLT> widths(series.size(), 2.0);
    std::vector<const char*> names;
    std::vector<std::string> escaped;
    for (const auto& s : series) escaped.push_back(pl_escape(s.name));
    for (size_t i = 0; i < series.size(); ++i) {
      colors.push_back(kFirstCategorical + series[i].color % static_cast<int>(categorical().size()));
      styles[i] = series[i].dashed ? 2 : 1;
      names.push_back(escaped[i].c_str());
    }
    std::vector<PLINT> text_colors(series.size(), 1);
    PLFLT lw, lh;
    const PLINT at = st.legend_at == LineStyle::LegendAt::kInsideTopLeft ? PL_POSITION_LEFT | PL_POSITION_TOP | PL_POSITION_INSIDE
                     : st.legend_at == LineStyle::LegendAt::kInsideRight ? PL_POSITION_RIGHT | PL_POSITION_INSIDE
                                                                         : PL_POSITION_RIGHT | PL_POSITION_OUTSIDE | PL_POSITION_TOP;
    const PLFLT dx = st.legend_at == LineStyle::LegendAt::kOutsideRight ? 0.01 : 0.03,
                dy = st.legend_at == LineStyle::LegendAt::kOutsideRight ? 0.0 : 0.03;
    pl.legend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, at, dx, dy, 0.06, 0, 1, 1, 0, 0, static_cast<PLINT>(series.size()), opt.data(), 0.8, 0.75,
              1.6, 0.0, text_colors.data(), names.data(), nullptr, nullptr, nullptr, nullptr, colors.data(),
              styles.data(), widths.data(), nullptr, nullptr, nullptr, nullptr);
  }
}

void Canvas::rect(double x0, double x1, double y0, double y1, const Rgb& c) {
  auto& pl = *pls_;
  pl.scol0(15, c.r, c.g, c.b);
  pl.col0(15);
  const PLFLT xs[] = {x0, x1, x1, x0}, ys[] = {y0, y0, y1, y1};
  pl.fill(4, xs, ys);
  pl.col0(1);
}

void Canvas::legend_boxes(const Box& box, const std::vector<std::string>& names, const std::vector<Rgb>& colors) {
  auto& pl = *pls_;
  pl.vpor(box.x0, box.x1, box.y0, box.y1);
  pl.wind(0, 1, 0, 1);
  const double h = 1.0 / names.size();
  for (size_t i = 0; i < names.size(); ++i) {
    const double y1 = 1 - i * h, y0 = y1 - h * 0.7;
    rect(0, 0.18, y0, y1, colors[i]);
    pl.schr(kCharMm, 0.95);
    pl.ptex(0.25, (y0 + y1) / 2 - 0.02, 1, 0, 0, pl_escape(names[i]).c_str());
    pl.schr(kCharMm, 1.0);
  }
}

}  // namespace attnscope::viz
