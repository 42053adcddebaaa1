// Internal to viz/figures_*.cpp and molecule_figure.cpp: what every figure family shares (one
// file per format through emit, the titles' labels, the attention-map style, small numerics).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "viz/figures.h"
#include "viz/plot.h"

namespace attnscope::viz {

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

// "epoch 30", "epoch 0 (before training)", "epoch 3 (snapshot of MODEL)".
std::string epoch_label(const Run& run, int64_t e);
std::string probe_label(const Run& run, int64_t p);            // "probe 3: TEXT"
std::string head_name(const Run& run, int64_t l, int64_t h);   // "layer 0 head 1" (model ids)
std::string head_tag(const Run& run, int64_t l, int64_t h);    // "L0 H1"
std::string head_file_tag(const Run& run, int64_t l, int64_t h);  // "L0_H1", in file names
std::string epoch_file_tag(const Run& run, int64_t e);         // "e30", in file names
// The largest |finite value| of v, 1 when there is none.
double max_abs(const std::vector<float>& v);
// Token tick labels and axis titles of probe p's map; scores on a diverging scale +-vabs.
HeatmapStyle map_style(const Run& run, const std::string& site, int64_t p, double vabs);
std::string site_word(const std::string& site);  // "probabilities" or "scores (pre-softmax)"
// Mean over heads of layer l's probe map [T,T] (real block n x n).
std::vector<double> head_mean(const std::vector<float>& probe_map, int64_t H, int64_t T, int64_t l, int64_t n);
// The real-length [n,n] block of head lh (= l*H + h) of a probe map [L,H,T,T].
std::vector<float> head_block(const std::vector<float>& probe_map, int64_t lh, int64_t T, int64_t n);
bool parse_int(const std::string& s, int64_t& v);  // the whole of s as an integer
// A scatter panel's frame: viewport `box`, axes fitted to the points [n][2] with `margin` (a share
// of each range), ticks at `tick_scale`, `title` above (figures_projection.cpp).
void scatter_frame(plstream& pl, const Box& box, const std::vector<std::vector<double>>& pts, double margin,
                   double tick_scale, const std::string& title);
void viridis_cmap1(plstream& pl);  // colour map 1: viridis in four stops

}  // namespace attnscope::viz
