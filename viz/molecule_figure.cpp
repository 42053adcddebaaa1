// ChemBERTa figure: the probe molecule drawn by RDKit (MolDraw2DCairo), each atom coloured by the
// attention it receives from the first token <s> for one head, one panel per recorded epoch.
// Tokens map to atoms through their character spans in the SMILES (core/smiles.h).
#include <GraphMol/MolDraw2D/MolDraw2DCairo.h>
#include <GraphMol/MolDraw2D/MolDraw2DSVG.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/core.h"
#include "viz/figures_common.h"

namespace attnscope::viz {
namespace {

bool special(const std::string& t) { return t == "<s>" || t == "</s>" || t == "<pad>" || t == "<mask>"; }

struct PngReader {  // cairo reads a PNG held in memory
  std::string data;
  size_t pos;
  static cairo_status_t read(void* self, unsigned char* out, unsigned int length) {
    auto* r = static_cast<PngReader*>(self);
    if (r->pos + length > r->data.size()) return CAIRO_STATUS_READ_ERROR;
    std::copy_n(r->data.data() + r->pos, length, out);
    r->pos += length;
    return CAIRO_STATUS_SUCCESS;
  }
};

}  // namespace

std::vector<double> atom_weights(const std::string& smiles, const std::vector<std::string>& tokens,
                                 const std::vector<double>& weight) {
  // characters of each model token (specials cover none); byte-level BPE tokens of a SMILES are
  // its own characters, as are the atom-level tokens
  std::vector<SmilesSpan> tok_span(tokens.size(), {0, 0});
  size_t pos = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (special(tokens[i])) continue;
    if (smiles.compare(pos, tokens[i].size(), tokens[i]) != 0) return {};  // not aligned (e.g. <unk>)
    tok_span[i] = {static_cast<int64_t>(pos), static_cast<int64_t>(pos + tokens[i].size())};
    pos += tokens[i].size();
  }
  if (pos != smiles.size()) return {};  // truncated probe
  std::vector<SmilesSpan> spans;
  const auto parts = smiles_split(smiles, &spans);
  std::vector<SmilesSpan> atoms;
  for (size_t k = 0; k < parts.size(); ++k) {
    if (smiles_token_is_atom(parts[k])) atoms.push_back(spans[k]);
  }
  std::vector<double> w(atoms.size(), 0.0);
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::vector<size_t> hit;
    for (size_t a = 0; a < atoms.size(); ++a) {
      if (atoms[a].first < tok_span[i].second && tok_span[i].first < atoms[a].second) hit.push_back(a);
    }
    for (size_t a : hit) w[a] += weight[i] / static_cast<double>(hit.size());  // a token over k atoms: 1/k each
  }
  return w;
}

namespace {

constexpr int kPanelW = 420, kPanelH = 380;  // one molecule drawing

// Per epoch of `es`, each atom's share of the attention from <s> (head l, h) into `per_epoch`,
// and the largest into `top`; false when the tokens do not map onto the molecule's atoms.
bool epoch_atom_weights(const Run& run, const RDKit::ROMol& mol, const std::vector<int64_t>& es, int64_t p, int64_t l,
                        int64_t h, std::vector<std::vector<double>>& per_epoch, double& top) {
  const std::string& smiles = run.probes().text[p];
  const auto tokens = run.tokens(p);
  const int64_t n = run.length(p);
  top = 1e-9;
  for (int64_t e : es) {
    const auto m = run.file->head_map(kProbs, e, p, l, h);  // row 0: from <s>
    std::vector<double> row(m.begin(), m.begin() + n);
    per_epoch.push_back(atom_weights(smiles, tokens, row));
    if (per_epoch.back().size() != mol.getNumAtoms()) return false;
    top = std::max(top, *std::max_element(per_epoch.back().begin(), per_epoch.back().end()));
  }
  return true;
}

// Every atom highlighted in viridis(weight / top), for RDKit's drawMolecule.
struct AtomHighlights {
  std::vector<int> atoms;
  std::map<int, RDKit::DrawColour> colours;
  std::map<int, double> radii;
  AtomHighlights(const std::vector<double>& weight, double top) {
    for (size_t a = 0; a < weight.size(); ++a) {
      const Rgb c = viridis(weight[a] / top);
      atoms.push_back(static_cast<int>(a));
      colours[static_cast<int>(a)] = RDKit::DrawColour(c.r / 255.0, c.g / 255.0, c.b / 255.0);
      radii[static_cast<int>(a)] = 0.45;
    }
  }
};

// A white page W x H to draw on (the caller destroys `cr` and hands the surface to write_png).
cairo_t* white_page(int W, int H, cairo_surface_t*& surface) {
  surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, W, H);
  cairo_t* cr = cairo_create(surface);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  return cr;
}

// The molecule drawn by RDKit (its own PNG) with atoms coloured by weight / top, pasted at (x, y).
void paste_molecule(cairo_t* cr, const RDKit::ROMol& mol, const std::vector<double>& weight, double top,
                    const std::string& legend, double x, double y) {
  const AtomHighlights hl(weight, top);
  RDKit::MolDraw2DCairo drawer(kPanelW, kPanelH);
  drawer.drawOptions().legendFontSize = 18;
  drawer.drawMolecule(mol, legend, &hl.atoms, &hl.colours, &hl.radii);
  drawer.finishDrawing();
  PngReader png{drawer.getDrawingText(), 0};
  cairo_surface_t* panel = cairo_image_surface_create_from_png_stream(&PngReader::read, &png);
  cairo_set_source_surface(cr, panel, x, y);
  cairo_paint(cr);
  cairo_surface_destroy(panel);
}

// `text` centred on a page `width` wide at baseline y; a long one (a SMILES) smaller, never cut.
void centred(cairo_t* cr, int width, const std::string& text, double size, double y) {
  cairo_set_font_size(cr, size);
  cairo_text_extents_t ext;
  cairo_text_extents(cr, text.c_str(), &ext);
  if (ext.width > width - 20) {
    cairo_set_font_size(cr, size * (width - 20) / ext.width);
    cairo_text_extents(cr, text.c_str(), &ext);
  }
  cairo_move_to(cr, (width - ext.width) / 2 - ext.x_bearing, y);
  cairo_show_text(cr, text.c_str());
}

// Writes `surface` to `path` through PATH.part (the figure appears whole or not at all) and frees it.
void write_png(cairo_surface_t* surface, const std::string& path) {
  const std::string tmp = path + ".part";
  const auto status = cairo_surface_write_to_png(surface, tmp.c_str());
  cairo_surface_destroy(surface);
  if (status != CAIRO_STATUS_SUCCESS) throw std::runtime_error("cannot write " + tmp);
  std::filesystem::rename(tmp, path);
}

}  // namespace

void molecule_attention(const Run& run, const Output& out, const std::vector<int64_t>& es, int64_t p, int64_t l,
                        int64_t h) {
  const std::string smiles = run.probes().text[p];
  std::unique_ptr<RDKit::RWMol> mol;
  try {
    mol.reset(RDKit::SmilesToMol(smiles));
  } catch (...) {
  }
  if (!mol) return;
  std::vector<std::vector<double>> per_epoch;
  double top = 0;
  if (!epoch_atom_weights(run, *mol, es, p, l, h, per_epoch, top)) return;  // tokens do not map onto the atoms
  const int K = static_cast<int>(es.size()), top_px = 110, bottom_px = 60;
  // wide enough for the titles when there are few panels (a snapshot has one), panels centred
  const int W = std::max(K * kPanelW, 880), H = kPanelH + top_px + bottom_px, x0 = (W - K * kPanelW) / 2;
  const std::string name = "molecule_" + head_file_tag(run, l, h) + "_p" + std::to_string(p);
  for (const auto& fmt : out.formats) {
    if (fmt != "png") continue;  // RDKit's cairo drawer: PNG
    cairo_surface_t* surface = nullptr;
    cairo_t* cr = white_page(W, H, surface);
    for (int k = 0; k < K; ++k) {
      paste_molecule(cr, *mol, per_epoch[k], top, "epoch " + std::to_string(run.epochs[es[k]].epoch), x0 + k * kPanelW, top_px);
    }
    cairo_set_source_rgb(cr, 0.16, 0.16, 0.16);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    centred(cr, W, "attention from <s> on each atom · " + head_name(run, l, h), 22, 40);
    centred(cr, W, run.label() + " · probe " + std::to_string(p) + ": " + smiles, 15, 72);
    centred(cr, W, "colour: viridis from 0 to " + std::to_string(top).substr(0, 5) +
                       " (the largest atom weight in these panels); a token over k atoms gives each 1/k",
            13, H - 24);
    cairo_destroy(cr);
    const std::string path = (std::filesystem::path(out.dir) / (name + ".png")).string();
    write_png(surface, path);
    out.written->push_back(path);
  }
}

void validation_cluster_molecules(const Run& run, const Output& out, int64_t e, const ValidationEmbedding& v) {
  const auto& text = run.file->validation().text;
  const int cols = 4, rows = static_cast<int>(v.nearest.size()), top_px = 110, label_px = 30;
  const int W = cols * kPanelW + 40, H = top_px + rows * (kPanelH + label_px) + 40;
  for (const auto& fmt : out.formats) {
    if (fmt != "png") continue;  // RDKit's cairo drawer: PNG
    cairo_surface_t* surface = nullptr;
    cairo_t* cr = white_page(W, H, surface);
    for (int c = 0; c < rows; ++c) {
      const auto size = std::count(v.cluster.begin(), v.cluster.end(), static_cast<int64_t>(c));
      const double y = top_px + c * (kPanelH + label_px);
      cairo_set_source_rgb(cr, 0.16, 0.16, 0.16);
      cairo_set_font_size(cr, 17);
      cairo_move_to(cr, 24, y + 20);
      cairo_show_text(cr, ("cluster " + std::to_string(c) + " · " + std::to_string(size) + " molecules · nearest its centre:").c_str());
      for (size_t k = 0; k < v.nearest[static_cast<size_t>(c)].size(); ++k) {
        const int64_t i = v.nearest[static_cast<size_t>(c)][k];
        std::unique_ptr<RDKit::RWMol> mol;
        try {
          mol.reset(RDKit::SmilesToMol(text[static_cast<size_t>(i)]));
        } catch (...) {
        }
        if (!mol) continue;
        std::string legend = "#" + std::to_string(i);
        for (const auto& col : v.colourings) {  // the target's value beside the drawing
          if (col.name.rfind("target: ", 0) == 0 && std::isfinite(col.value[static_cast<size_t>(i)])) {
            char y[48];
            std::snprintf(y, sizeof y, " · y = %.3g", col.value[static_cast<size_t>(i)]);
            legend += y;
          }
        }
        paste_molecule(cr, *mol, {}, 1.0, legend, 20 + static_cast<double>(k) * kPanelW, y + label_px);
      }
    }
    cairo_set_source_rgb(cr, 0.16, 0.16, 0.16);
    centred(cr, W, "k-means clusters of the validation molecules' pooled vectors · " + epoch_label(run, e), 22, 40);
    centred(cr, W, run.label() + " · k = " + std::to_string(v.k) + " (figures/validation_embedding: where they lie)", 15, 72);
    cairo_destroy(cr);
    const std::string path = (std::filesystem::path(out.dir) / ("validation_clusters_" + epoch_file_tag(run, e) + ".png")).string();
    write_png(surface, path);
    out.written->push_back(path);
  }
}

std::string molecule_svg(const std::string& smiles, const std::vector<std::string>& tokens, const std::vector<double>& weight,
                         const std::string& legend, int width, int height) {
  std::unique_ptr<RDKit::RWMol> mol;
  try {
    mol.reset(RDKit::SmilesToMol(smiles));
  } catch (...) {
  }
  if (!mol) return {};
  const auto w = atom_weights(smiles, tokens, weight);
  if (w.size() != mol->getNumAtoms()) return {};  // the tokens do not spell the molecule
  const double top = std::max(1e-9, w.empty() ? 0.0 : *std::max_element(w.begin(), w.end()));
  const AtomHighlights hl(w, top);
  RDKit::MolDraw2DSVG drawer(width, height);
  drawer.drawOptions().legendFontSize = 16;
  drawer.drawMolecule(*mol, legend, &hl.atoms, &hl.colours, &hl.radii);
  drawer.finishDrawing();
  return drawer.getDrawingText();
}

}  // namespace attnscope::viz
