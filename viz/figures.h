// The figures of `attnscope render` (internal to viz/), one file per family: figures_heads.cpp,
// figures_training.cpp, figures_minmax.cpp, figures_projection.cpp, molecule_figure.cpp. Each
// writes figures/<name>.<format> for every requested image format and records the paths written.
#pragma once

#include <string>
#include <vector>

#include "analysis/analysis.h"
#include "viz/run.h"

namespace attnscope::viz {

struct Output {
  std::string dir;                   // DIR/figures
  std::vector<std::string> formats;  // png and/or svg
  std::vector<std::string>* written;
};

void head_map(const Run& run, const Output& out, const std::string& site, int64_t e, int64_t p, int64_t l, int64_t h);
void head_grid(const Run& run, const Output& out, int64_t e, int64_t p);
void evolution_strip(const Run& run, const Output& out, const std::vector<int64_t>& es, int64_t p, int64_t l, int64_t h);
void specialisation_timeline(const Run& run, const Output& out);
void pattern_classes(const Run& run, const Output& out);
void training_curves(const Run& run, const Output& out);
void positions(const Run& run, const Output& out, int64_t e);
void focus_regions(const Run& run, const Output& out, int64_t e);
void attention_river(const Run& run, const Output& out, int64_t e, int64_t p);
void token_attribution(const Run& run, const Output& out, int64_t e, int64_t p);
// The whole validation split at recorded epoch e (store: /validation): PCA of every example's
// pooled vector, the colourings the figure and the report show, k-means clusters (k = sqrt(N/10)
// within 2..8, in the pooled space) and each cluster's members nearest its centre (at most 4).
struct ValidationEmbedding {
  struct Colouring {
    std::string name;
    std::vector<double> value;  // NaN: none (grey)
    bool categorical = false;
    bool fixed = false;  // the same at every epoch (target, heavy atoms, scaffold)
  };
  std::vector<std::vector<double>> coords;  // [N][2]; empty: nothing recorded
  std::vector<Colouring> colourings;        // target, prediction, error, heavy atoms, scaffold, cluster (those that apply)
  std::vector<int64_t> cluster;
  int64_t k = 0;
  std::vector<std::vector<int64_t>> nearest;
  std::vector<std::string> scaffolds;  // the commonest, "SMILES ×count"
};
ValidationEmbedding validation_embedding_of(const Run& run, int64_t e);
// figures/validation_embedding_e*.png, and for molecules validation_clusters_e*.png
void validation_embedding(const Run& run, const Output& out, int64_t e);
void validation_cluster_molecules(const Run& run, const Output& out, int64_t e, const ValidationEmbedding& v);
void minmax_grid(const Run& run, const Output& out, const std::string& site);
void minmax_mechanism(const Run& run, const Output& out);
// A clm run on repeated random sequences: induction and previous-token scores per head over
// training, with the loss and the in-context score (from mechanism.json).
void induction_mechanism(const Run& run, const Output& out);
void projection(const Run& run, const Output& out, const std::vector<int64_t>& es);
// A SMILES probe drawn by RDKit with each atom coloured by the attention it receives from <s>, one
// panel per epoch (PNG only; skipped when the tokens do not map onto the atoms).
void molecule_attention(const Run& run, const Output& out, const std::vector<int64_t>& es, int64_t p, int64_t l,
                        int64_t h);
// Per-atom weights from per-token weights through the tokens' character spans in `smiles` (a
// token over k atoms gives each 1/k); empty when the tokens do not spell the SMILES.
std::vector<double> atom_weights(const std::string& smiles, const std::vector<std::string>& tokens,
                                 const std::vector<double>& weight);

// Head redundancy: the JS distance between every pair of heads (/analysis/head_js) at the last
// recorded epoch, ordered by average-linkage clustering with its dendrogram, and the number of
// distinct clusters at a few distance thresholds over training (figures/head_redundancy.png).
void head_redundancy(const Run& run, const Output& out);
// Average-linkage (UPGMA) clustering of n items from their distances d [n,n]: n-1 merges in order,
// as scipy's linkage (leaves 0..n-1, merge k makes cluster n+k; heights never decrease).
struct Merge {
  int64_t a, b;
  double height;
  int64_t size;
};
std::vector<Merge> average_linkage(const std::vector<double>& d, int64_t n);
// The leaves left to right as the dendrogram draws them.
std::vector<int64_t> dendrogram_order(const std::vector<Merge>& merges, int64_t n);
// Clusters left when every merge at or below `threshold` is made.
int64_t clusters_at(const std::vector<Merge>& merges, int64_t n, double threshold);

// Helpers shared with the report.
// The pattern classes of the per-head metric "pattern", by code.
const std::vector<std::string>& pattern_class_names();
// The /task array of the min/max (a, b) grid of `site`: [2 (max, min), H, N, N (a, b), 3 (to a, op, b)].
std::string minmax_grid_array(const std::string& site);
// One [N,N] panel (operator op, head h, attention to k) of such a grid with `heads` heads.
std::vector<float> minmax_panel(const std::vector<float>& grid, int64_t heads, int64_t N, int64_t op, int64_t h, int64_t k);
// Mean attention from "=" (the last token) to the op token, the larger and the smaller operand,
// over the a != b probes of each operator: [op (max, min)][head][3] for recorded epoch e.
std::vector<std::vector<std::vector<double>>> minmax_probe_mechanism(const Run& run, int64_t e);
using analysis::pca;
using analysis::spread;
std::vector<std::vector<double>> pca2(const std::vector<float>& x, int64_t n, int64_t d);
// Per-probe numbers to colour projections by (min/max: the answer and the operator).
std::vector<std::pair<std::string, std::vector<double>>> probe_targets(const Run& run);

}  // namespace attnscope::viz
