// The helpers every figure family shares (viz/figures_common.h).
#include "viz/figures_common.h"

#include <algorithm>
#include <cmath>

namespace attnscope::viz {

std::string epoch_label(const Run& run, int64_t e) {
  std::string s = "epoch " + std::to_string(run.epochs[e].epoch);
  if (run.model.is_object() && run.model.contains("source") && run.epochs.size() > 1) {
    s = "checkpoint " + std::to_string(run.epochs[e].epoch) + " (step " + std::to_string(run.epochs[e].step) + ")";  // attnscope track
  } else if (run.model.is_object() && run.model.contains("source") && run.model["source"].is_string()) {
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

std::string head_tag(const Run& run, int64_t l, int64_t h) {
  return "L" + std::to_string(run.header().layer_ids[l]) + " H" + std::to_string(run.header().head_ids[h]);
}

std::string head_file_tag(const Run& run, int64_t l, int64_t h) {
  return "L" + std::to_string(run.header().layer_ids[l]) + "_H" + std::to_string(run.header().head_ids[h]);
}

std::string epoch_file_tag(const Run& run, int64_t e) { return "e" + std::to_string(run.epochs[e].epoch); }

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

std::vector<float> head_block(const std::vector<float>& probe_map, int64_t lh, int64_t T, int64_t n) {
  return crop(std::vector<float>(probe_map.begin() + lh * T * T, probe_map.begin() + (lh + 1) * T * T), T, n);
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

}  // namespace attnscope::viz
