// The min/max task's figures (viz/figures.h): attention from '=' over every (a, b), and the
// mechanism (attention to the operator and the operands) over training.
#include <cmath>

#include "viz/figures_common.h"

namespace attnscope::viz {

std::string minmax_grid_array(const std::string& site) { return site == kScores ? "minmax_grid_scores" : "minmax_grid_probs"; }

std::vector<float> minmax_panel(const std::vector<float>& grid, int64_t heads, int64_t N, int64_t op, int64_t h, int64_t k) {
  std::vector<float> m(N * N);
  for (int64_t a = 0; a < N; ++a) {
    for (int64_t b = 0; b < N; ++b) m[a * N + b] = grid[(((op * heads + h) * N + a) * N + b) * 3 + k];
  }
  return m;
}

void minmax_grid(const Run& run, const Output& out, const std::string& site) {
  const std::string name = minmax_grid_array(site);
  auto it = run.header().arrays.find(name);
  if (it == run.header().arrays.end()) return;
  const auto v = run.file->array(name);  // [2,H,N,N,3]
  if (v.empty() || !std::isfinite(v[0])) return;  // written when training ends
  const int64_t Hh = it->second[1], N = it->second[2];
  const int64_t rows = 2 * Hh;
  const bool scores = site == kScores;
  const double vabs = max_abs(v), vmin = scores ? -vabs : 0, vmax = scores ? vabs : 1;
  const Colormap cmap = scores ? Colormap::kDiverging : Colormap::kViridis;
  const int w = 1500, hgt = static_cast<int>(rows * 420 + 200);
  emit(out, name, w, hgt, [&](Canvas& c) {
    c.title(std::string("attention ") + (scores ? "scores" : "weights") + " from '=' over every (a, b)",
            run.label() + " · final model · rows: operator and head · columns: attention to a, to the operator, to b");
    const auto boxes = grid({120.0 / w, 1.0 - 190.0 / w, 90.0 / hgt, 1.0 - 120.0 / hgt}, static_cast<int>(rows), 3,
                            110.0 / w, 90.0 / hgt);
    const char* ops[] = {"max", "min"};
    const char* to[] = {"a", "op", "b"};
    for (int64_t op = 0; op < 2; ++op) {
      for (int64_t h = 0; h < Hh; ++h) {
        for (int64_t k = 0; k < 3; ++k) {
          const auto m = minmax_panel(v, Hh, N, op, h, k);
          HeatmapStyle st;
          st.y_down = false;
          st.cmap = cmap;
          st.vmin = vmin;
          st.vmax = vmax;
          st.title = std::string(ops[op]) + " · head " + std::to_string(h) + " · '=' → " + to[k];
          if (op == 1 && h == Hh - 1) st.xtitle = "b";
          if (k == 0) st.ytitle = "a";
          st.label_scale = 0.8;
          c.heatmap(boxes[(op * Hh + h) * 3 + k], m, static_cast<int>(N), static_cast<int>(N), st);
        }
      }
    }
    c.colorbar({1.0 - 130.0 / w, 1.0 - 112.0 / w, 90.0 / hgt, 1.0 - 130.0 / hgt}, cmap, vmin, vmax,
               scores ? "score" : "attention");
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

}  // namespace attnscope::viz

namespace attnscope::viz {

// The induction mechanism over training (mechanism.json of a clm run on repeated random
// sequences): every head's induction and previous-token score per recorded step, and the
// validation loss with the in-context-learning score.
void induction_mechanism(const Run& run, const Output& out) {
  const auto& m = run.mechanism;
  if (!m.is_object() || !m.contains("over_training") || !m["over_training"].is_array() || m["over_training"].empty()) return;
  const auto& over = m["over_training"];
  const auto& first = over[0]["induction"];
  const int64_t L = static_cast<int64_t>(first.size()), H = L ? static_cast<int64_t>(first[0].size()) : 0;
  auto num = [](const nlohmann::json& v) { return v.is_number() ? v.get<double>() : std::nan(""); };
  auto per_head = [&](const char* key) {
    std::vector<Series> s;
    for (int64_t l = 0; l < L; ++l) {
      for (int64_t h = 0; h < H; ++h) {
        Series x;
        x.name = "head " + std::to_string(l) + "." + std::to_string(h);
        x.color = static_cast<int>(l * H + h);
        x.dashed = l > 0;
        for (const auto& row : over) {
          x.x.push_back(num(row["step"]));
          x.y.push_back(num(row[key][l][h]));
        }
        s.push_back(std::move(x));
      }
    }
    return s;
  };
  const int w = 3 * 620 + 100, hgt = 460 + 200;
  emit(out, "induction_heads", w, hgt, [&](Canvas& c) {
    const std::string formed = m["formed_at_step"].is_number()
                                   ? "induction head " + std::to_string(m["induction_head"]["layer"].get<int64_t>()) + "." +
                                         std::to_string(m["induction_head"]["head"].get<int64_t>()) + " formed at step " +
                                         std::to_string(m["formed_at_step"].get<int64_t>())
                                   : std::string("no induction head formed");
    c.title(run.label() + " · induction heads over training", formed + " (threshold " + std::to_string(num(m["threshold"])).substr(0, 4) +
                                                                  "; repeated random sequences, the held-out probes)");
    const auto boxes = grid({90.0 / w, 1.0 - 40.0 / w, 90.0 / hgt, 1.0 - 130.0 / hgt}, 1, 3, 110.0 / w, 0);
    LineStyle st;
    st.xtitle = "step";
    st.fixed_y = true;
    st.ymin = 0;
    st.ymax = 1.02;
    st.title = "induction score (to the token after the earlier occurrence)";
    st.ytitle = "attention";
    st.legend_at = LineStyle::LegendAt::kInsideTopLeft;  // before the phase change the top is empty
    c.lines(boxes[0], per_head("induction"), st);
    st.title = "previous-token score (to position i-1)";
    st.legend = false;
    c.lines(boxes[1], per_head("previous_token"), st);
    std::vector<Series> curves(2);
    curves[0].name = "validation loss";
    curves[1].name = "in-context score (late - early loss)";
    curves[1].color = 1;
    curves[1].dashed = true;
    for (const auto& row : over) {
      for (int k = 0; k < 2; ++k) {
        curves[k].x.push_back(num(row["step"]));
        curves[k].y.push_back(num(row[k == 0 ? "val_loss" : "val_icl"]));
      }
    }
    LineStyle ls;
    ls.title = "loss and in-context learning";
    ls.xtitle = "step";
    ls.ytitle = "nats per token";
    ls.legend_at = LineStyle::LegendAt::kInsideRight;
    c.lines(boxes[2], curves, ls);
  });
}

}  // namespace attnscope::viz
