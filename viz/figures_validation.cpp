// The whole validation split in embedding space (viz/figures.h): every recorded validation
// example's pooled vector at one epoch, PCA to 2-D, coloured by target, prediction, error, atom
// count, scaffold and k-means cluster; and per cluster the molecules nearest its centre.
#include <GraphMol/GraphMol.h>
#include <GraphMol/ChemTransforms/ChemTransforms.h>
#include <GraphMol/MolOps.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <GraphMol/SmilesParse/SmilesWrite.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include <plplot/plstream.h>

#include "viz/figures_common.h"

namespace attnscope::viz {
namespace {

// Bemis-Murcko scaffold as canonical SMILES without chirality ("" acyclic), as the scaffold split
// computes it (data/molecules.cpp; viz links no data library).
std::string scaffold_of(const RDKit::ROMol& mol) {
  std::unique_ptr<RDKit::ROMol> scaffold(RDKit::MurckoDecompose(mol));
  if (!scaffold || scaffold->getNumAtoms() == 0) return "";
  scaffold->clearComputedProps();
  scaffold->updatePropertyCache();
  RDKit::MolOps::symmetrizeSSSR(*scaffold);
  return RDKit::MolToSmiles(*scaffold, /*doIsomericSmiles=*/false);
}

}  // namespace

ValidationEmbedding validation_embedding_of(const Run& run, int64_t e) {
  ValidationEmbedding v;
  const auto& h = run.header();
  const int64_t N = h.val_count, D = h.pooled_dim, K = h.val_targets, O = h.val_outputs;
  if (N < 3 || D <= 0) return v;
  const auto pooled = run.file->val_pooled(e);
  v.coords = analysis::pca_rows(pooled, N, D, 2);
  v.k = std::min<int64_t>(8, std::max<int64_t>(2, static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(N) / 10.0)))));
  const auto clusters = analysis::kmeans(pooled, N, D, v.k);
  v.cluster = clusters.label;
  // per cluster, its members nearest the centre (in the pooled space), 4 at most
  for (int64_t c = 0; c < v.k; ++c) {
    std::vector<std::pair<double, int64_t>> d;
    for (int64_t i = 0; i < N; ++i) {
      if (v.cluster[i] != c) continue;
      double s = 0;
      for (int64_t j = 0; j < D; ++j) s += std::pow(pooled[i * D + j] - clusters.centre[c][j], 2);
      d.push_back({s, i});
    }
    std::sort(d.begin(), d.end());
    std::vector<int64_t> near;
    for (size_t i = 0; i < std::min<size_t>(4, d.size()); ++i) near.push_back(d[i].second);
    v.nearest.push_back(near);
  }
  const auto& val = run.file->validation();
  const std::vector<float> out = O > 0 ? run.file->val_output(e) : std::vector<float>{};
  const bool multiclass = run.is(TaskKind::Multiclass);
  const std::vector<std::string> targets = run.model.value("targets", std::vector<std::string>{});
  auto target_name = [&](int64_t k) { return k < static_cast<int64_t>(targets.size()) ? targets[static_cast<size_t>(k)] : "target " + std::to_string(k); };
  if (K > 0) {
    std::vector<double> t(N), p(N, std::nan("")), err(N, std::nan(""));
    for (int64_t i = 0; i < N; ++i) {
      t[i] = val.target[i * K];
      if (O == 0) continue;
      if (multiclass) {  // the predicted class; error: 1 - the probability of the true class
        const auto* row = &out[i * O];
        p[i] = static_cast<double>(std::max_element(row, row + O) - row);
        const auto y = static_cast<int64_t>(t[i]);
        if (std::isfinite(t[i]) && y >= 0 && y < O) err[i] = 1.0 - row[y];
      } else {
        p[i] = out[i * O];
        if (std::isfinite(t[i])) err[i] = std::fabs(p[i] - t[i]);
      }
    }
    v.colourings.push_back({"target: " + target_name(0), t, multiclass, true});
    if (O > 0) {
      v.colourings.push_back({multiclass ? "predicted class" : run.is(TaskKind::Regression) ? "prediction" : "predicted probability",
                              p, multiclass});
      v.colourings.push_back({multiclass ? "error: 1 - p(true class)" : run.is(TaskKind::Regression) ? "|error|" : "|probability - label|",
                              err, false});
    }
  }
  if (run.molecules) {
    std::vector<double> atoms(N, std::nan("")), scaffold(N, std::nan(""));
    std::map<std::string, int64_t> count;
    std::vector<std::string> scaf(N);
    for (int64_t i = 0; i < N; ++i) {
      std::unique_ptr<RDKit::ROMol> mol;
      try {
        mol.reset(RDKit::SmilesToMol(val.text[i]));
      } catch (...) {
      }
      if (!mol) continue;
      atoms[i] = mol->getNumHeavyAtoms();
      scaf[i] = scaffold_of(*mol);
    }
    // the 8 commonest scaffolds get a colour each, the rest none (grey)
    std::vector<std::pair<int64_t, std::string>> top;
    for (int64_t i = 0; i < N; ++i) {
      if (std::isfinite(atoms[i])) ++count[scaf[i]];
    }
    for (const auto& [s, c] : count) top.push_back({-c, s});
    std::sort(top.begin(), top.end());
    std::map<std::string, int64_t> rank;
    for (size_t k = 0; k < std::min<size_t>(8, top.size()); ++k) {
      rank[top[k].second] = static_cast<int64_t>(k);
      v.scaffolds.push_back((top[k].second.empty() ? std::string("(acyclic)") : top[k].second) + " ×" + std::to_string(-top[k].first));
    }
    for (int64_t i = 0; i < N; ++i) {
      auto it = rank.find(scaf[i]);
      if (it != rank.end()) scaffold[i] = static_cast<double>(it->second);
    }
    v.colourings.push_back({"heavy atoms", atoms, false, true});
    v.colourings.push_back({"scaffold (8 commonest; grey: others)", scaffold, true, true});
  }
  std::vector<double> cl(v.cluster.begin(), v.cluster.end());
  v.colourings.push_back({"k-means cluster (k = " + std::to_string(v.k) + ", pooled space)", cl, true});
  return v;
}

namespace {

void panel(plstream& pl, const Box& box, const std::vector<std::vector<double>>& pts, const ValidationEmbedding::Colouring& col,
           const std::vector<std::vector<int64_t>>* nearest) {
  double vmin = 1e300, vmax = -1e300;
  for (double x : col.value) {
    if (std::isfinite(x)) vmin = std::min(vmin, x), vmax = std::max(vmax, x);
  }
  if (!(vmax > vmin)) vmax = vmin + 1;
  scatter_frame(pl, box, pts, 0.06, 0.7, col.name);
  // viridis for values; a categorical ramp (tab10-like) for classes
  if (col.categorical) {
    pl.scmap1n(256);
    const PLFLT pos[] = {0, 0.143, 0.286, 0.429, 0.571, 0.714, 0.857, 1};
    const PLFLT r[] = {0.12, 1.00, 0.17, 0.84, 0.58, 0.55, 0.89, 0.74}, g[] = {0.47, 0.50, 0.63, 0.15, 0.40, 0.34, 0.47, 0.74},
                b[] = {0.71, 0.05, 0.17, 0.16, 0.74, 0.29, 0.76, 0.13}, a[] = {1, 1, 1, 1, 1, 1, 1, 1};
    pl.scmap1la(true, 8, pos, r, g, b, a, nullptr);
  } else {
    viridis_cmap1(pl);
  }
  pl.ssym(0, pts.size() > 1000 ? 0.6 : 1.0);
  for (int pass = 0; pass < 2; ++pass) {  // grey (no value) underneath
    for (size_t i = 0; i < pts.size(); ++i) {
      const bool has = std::isfinite(col.value[i]);
      if (has != (pass == 1)) continue;
      if (has) {
        pl.col1(col.categorical ? std::min(1.0, col.value[i] / 7.0) : (col.value[i] - vmin) / (vmax - vmin));
      } else {
        pl.scol0(14, 200, 200, 200);  // light grey
        pl.col0(14);
      }
      const PLFLT x[] = {pts[i][0]}, y[] = {pts[i][1]};
      pl.poin(1, x, y, 17);
    }
  }
  pl.ssym(0, 1.0);
  if (nearest != nullptr) {  // each cluster's number at its nearest member
    pl.col0(1);
    set_text_scale(pl, 1.1);
    for (size_t c = 0; c < nearest->size(); ++c) {
      if ((*nearest)[c].empty()) continue;
      const auto& p = pts[static_cast<size_t>((*nearest)[c][0])];
      pl.ptex(p[0], p[1], 1, 0, 0.5, std::to_string(c).c_str());
    }
  }
  // the value range under the panel
  pl.col0(1);
  set_text_scale(pl, 0.75);
  char range[160];
  if (col.categorical) {
    std::snprintf(range, sizeof range, "classes 0..%.0f", vmax);
  } else {
    std::snprintf(range, sizeof range, "viridis: %.3g (dark) .. %.3g (yellow)", vmin, vmax);
  }
  pl.mtex("b", 2.4, 0.5, 0.5, range);
  set_text_scale(pl, 1.0);
}

}  // namespace

void validation_embedding(const Run& run, const Output& out, int64_t e) {
  const auto v = validation_embedding_of(run, e);
  if (v.coords.empty()) return;
  const int n = static_cast<int>(v.colourings.size()), cols = std::min(3, n), rows = (n + cols - 1) / cols;
  const int w = cols * 460 + 80, hgt = rows * 430 + 150;
  emit(out, "validation_embedding_" + epoch_file_tag(run, e), w, hgt, [&](Canvas& c) {
    c.title(run.label() + " · every validation example's pooled vector, PCA to 2-D · " + epoch_label(run, e),
            std::to_string(run.header().val_count) + " examples" +
                (v.scaffolds.empty() ? std::string() : " · commonest scaffolds: " + v.scaffolds[0]));
    const auto boxes = grid({60.0 / w, 1.0 - 30.0 / w, 60.0 / hgt, 1.0 - 120.0 / hgt}, rows, cols, 70.0 / w, 90.0 / hgt);
    for (int k = 0; k < n; ++k) {
      const bool clusters = k == n - 1;
      panel(c.pl(), boxes[static_cast<size_t>(k)], v.coords, v.colourings[static_cast<size_t>(k)], clusters ? &v.nearest : nullptr);
    }
  });
  if (run.molecules) validation_cluster_molecules(run, out, e, v);
}

}  // namespace attnscope::viz
