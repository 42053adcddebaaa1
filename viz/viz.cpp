// `attnscope render`: the default figure set and the report of a run (viz/viz.h).
#include "viz/viz.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "core/core.h"
#include "viz/figures.h"
#include "viz/report.h"
#include "viz/run.h"

#ifndef ATTNSCOPE_WEB_DIR
#define ATTNSCOPE_WEB_DIR "viz/web"
#endif

namespace attnscope::viz {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kReportMapBudget = 19u << 20;  // embedded maps (base64): the report stays under 25 MB

std::vector<int64_t> default_probes(const Run& run) {
  if (run.is(TaskKind::MinMax)) {  // the first example of each operator with a != b
    std::vector<int64_t> out;
    for (const char* op : {"max", "min"}) {
      for (int64_t p = 0; p < run.P; ++p) {
        const auto t = run.tokens(p);
        if (t.size() == 4 && t[1] == op && t[0] != t[2]) {
          out.push_back(p);
          break;
        }
      }
    }
    if (!out.empty()) return out;
  }
  return {0};
}

// (layer, head) storage indices to draw one by one.
std::vector<std::pair<int64_t, int64_t>> default_heads(const Run& run, int64_t last) {
  std::vector<std::pair<int64_t, int64_t>> all;
  for (int64_t l = 0; l < run.L; ++l) {
    for (int64_t h = 0; h < run.H; ++h) all.push_back({l, h});
  }
  if (all.size() <= 8) return all;
  const auto imp = run.file->analysis("head_importance", last);  // the 4 most important heads
  std::stable_sort(all.begin(), all.end(), [&](const auto& a, const auto& b) {
    const float x = imp[a.first * run.H + a.second], y = imp[b.first * run.H + b.second];
    return (std::isfinite(x) ? x : -1.f) > (std::isfinite(y) ? y : -1.f);
  });
  all.resize(4);
  return all;
}

// The options checked against the run, as storage indices.
struct Selection {
  std::vector<std::string> images;  // png / svg
  bool html = false;
  std::vector<int64_t> epochs, probes, layers, heads;  // as chosen (empty: defaults)
  std::string web;
};

// Validates every option against the run before anything is written.
Selection selection_of(const RenderOptions& o, const Run& run) {
  Selection s;
  s.html = std::find(o.formats.begin(), o.formats.end(), "html") != o.formats.end();
  for (const auto& f : o.formats) {
    if (f != "html") s.images.push_back(f);
  }
  for (int64_t e : o.epochs) s.epochs.push_back(run.epoch_index(e));
  for (int64_t p : o.probes) {
    if (p < 0 || p >= run.P) {
      throw UsageError("probe " + std::to_string(p) + " was not recorded in '" + run.h5 + "': it holds probes 0.." +
                       std::to_string(run.P - 1));
    }
  }
  s.probes = o.probes;
  for (int64_t l : o.layers) s.layers.push_back(run.layer_index(l));
  for (int64_t h : o.heads) s.heads.push_back(run.head_index(h));
  s.web = o.web_dir.empty() ? default_web_dir() : o.web_dir;
  if (s.html) check_web_dir(s.web);
  return s;
}

// What the figures show: the selection, or the defaults where it chose nothing.
struct Plan {
  std::vector<int64_t> at;                         // recorded epochs of the per-epoch figures
  std::vector<int64_t> probes;
  std::vector<std::pair<int64_t, int64_t>> heads;  // drawn one by one
  std::vector<int64_t> strip, molecule_epochs;     // epochs of the evolution strips, molecule panels
  std::vector<int64_t> projection_epochs;
};

Plan plan(const Selection& s, const Run& run) {
  Plan p;
  const int64_t last = static_cast<int64_t>(run.epochs.size()) - 1;
  p.at = s.epochs.empty() ? std::vector<int64_t>{last} : s.epochs;
  p.probes = s.probes.empty() ? default_probes(run) : s.probes;
  if (s.layers.empty() && s.heads.empty()) {
    p.heads = default_heads(run, last);
  } else {
    std::vector<int64_t> ls = s.layers, hs = s.heads;
    if (ls.empty()) ls = {0};
    if (hs.empty()) {
      for (int64_t h = 0; h < run.H; ++h) hs.push_back(h);
    }
    for (int64_t l : ls) {
      for (int64_t h : hs) p.heads.push_back({l, h});
    }
  }
  p.strip = s.epochs.size() > 1 ? s.epochs : spread(last + 1, 8);
  p.molecule_epochs = s.epochs.size() > 1 ? s.epochs : spread(last + 1, 5);
  p.projection_epochs = spread(last + 1, 5);
  return p;
}

// The attention maps of the chosen probes and heads (probabilities and, if recorded, scores).
void draw_maps(const Run& run, const Output& out, const Plan& p) {
  const bool probs = run.has_site(kProbs), scores = run.has_site(kScores);
  if (probs) {
    for (int64_t e : p.at) {
      for (int64_t pr : p.probes) {
        head_grid(run, out, e, pr);
        for (auto [l, h] : p.heads) {
          head_map(run, out, kProbs, e, pr, l, h);
          if (scores) head_map(run, out, kScores, e, pr, l, h);
        }
      }
    }
    for (int64_t pr : p.probes) {
      for (auto [l, h] : p.heads) evolution_strip(run, out, p.strip, pr, l, h);
    }
  } else if (scores) {
    for (int64_t e : p.at) {
      for (auto [l, h] : p.heads) head_map(run, out, kScores, e, p.probes[0], l, h);
    }
  }
}

void draw_figures(const Run& run, const Output& out, const Plan& p) {
  const bool probs = run.has_site(kProbs);
  draw_maps(run, out, p);
  specialisation_timeline(run, out);
  pattern_classes(run, out);
  head_redundancy(run, out);
  training_curves(run, out);
  if (probs) {
    for (int64_t e : p.at) {
      positions(run, out, e);
      focus_regions(run, out, e);
      attention_river(run, out, e, p.probes[0]);
      token_attribution(run, out, e, p.probes[0]);
      validation_embedding(run, out, e);
    }
  }
  if (run.is(TaskKind::MinMax)) {
    minmax_grid(run, out, kProbs);
    minmax_grid(run, out, kScores);
    if (probs) minmax_mechanism(run, out);
  }
  if (run.is(TaskKind::CausalLM)) induction_mechanism(run, out);
  projection(run, out, p.projection_epochs);
  if (run.molecules && probs) {  // SMILES probes
    for (int64_t pr : p.probes) {
      for (auto [l, h] : p.heads) molecule_attention(run, out, p.molecule_epochs, pr, l, h);
    }
  }
}

std::string write_report(const Run& run, const Selection& s, const fs::path& out_dir) {
  const auto data = report_data(run, s.epochs, s.probes, kReportMapBudget);
  if (data.probes_embedded < data.probes_total) {
    log::info("[render] report: maps of " + std::to_string(data.probes_embedded) + " of " +
              std::to_string(data.probes_total) + " probes embedded (size budget; choose others with --probes)");
  }
  fs::create_directories(out_dir);
  const std::string path = (out_dir / RunDir::kReport).string();
  write_file_atomic(path, assemble_report(data.json, s.web));
  return path;
}

}  // namespace

std::string report_html(const std::string& run_dir, const std::string& web_dir) {
  const std::string web = web_dir.empty() ? default_web_dir() : web_dir;
  check_web_dir(web);
  const Run run = open_run(run_dir);
  return assemble_report(report_data(run, {}, {}, kReportMapBudget).json, web);
}

std::string serve_page(const std::string& web_dir) {
  const std::string web = web_dir.empty() ? default_web_dir() : web_dir;
  check_web_dir(web);
  for (const char* f : {WebDir::kServePage, WebDir::kServeApp}) {
    if (!fs::exists(fs::path(web) / f)) throw UsageError("serve needs '" + (fs::path(web) / f).string() + "' (viz/web of the source tree, or ATTNSCOPE_WEB_DIR)");
  }
  return assemble_report("{}", web, WebDir::kServePage, WebDir::kServeApp);
}

std::string default_web_dir() {
  if (const char* env = std::getenv("ATTNSCOPE_WEB_DIR"); env != nullptr && *env) return env;
  return ATTNSCOPE_WEB_DIR;
}

Rendered render(const RenderOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& f : o.formats) {
    if (f != "png" && f != "svg" && f != "html") throw UsageError("--format: unknown format '" + f + "' (expected png, svg, html)");
  }
  Run run = open_run(o.input);
  const Selection s = selection_of(o, run);
  const fs::path out_dir = o.out.empty() ? fs::path(run.dir) : fs::path(o.out);
  const Plan p = plan(s, run);
  Rendered result;
  if (!s.images.empty()) {
    fs::create_directories(out_dir / RunDir::kFigures);
    draw_figures(run, Output{(out_dir / RunDir::kFigures).string(), s.images, &result.files}, p);
  }
  if (s.html) result.files.push_back(write_report(run, s, out_dir));
  for (const auto& f : result.files) result.bytes += fs::file_size(f);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace attnscope::viz
