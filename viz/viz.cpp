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
  if (run.task == "minmax") {  // the first example of each operator with a != b
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

}  // namespace

std::string default_web_dir() {
  if (const char* env = std::getenv("ATTNSCOPE_WEB_DIR"); env != nullptr && *env) return env;
  return ATTNSCOPE_WEB_DIR;
}

Rendered render(const RenderOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  // ---- validate everything before writing anything
  for (const auto& f : o.formats) {
    if (f != "png" && f != "svg" && f != "html") throw UsageError("--format: unknown format '" + f + "' (expected png, svg, html)");
  }
  Run run = open_run(o.input);
  const bool html = std::find(o.formats.begin(), o.formats.end(), "html") != o.formats.end();
  std::vector<std::string> images;
  for (const auto& f : o.formats) {
    if (f != "html") images.push_back(f);
  }
  std::vector<int64_t> es;
  for (int64_t e : o.epochs) es.push_back(run.epoch_index(e));
  std::vector<int64_t> ps = o.probes;
  for (int64_t p : ps) {
    if (p < 0 || p >= run.P) {
      throw UsageError("probe " + std::to_string(p) + " was not recorded in '" + run.h5 + "': it holds probes 0.." +
                       std::to_string(run.P - 1));
    }
  }
  std::vector<int64_t> ls, hs;
  for (int64_t l : o.layers) ls.push_back(run.layer_index(l));
  for (int64_t h : o.heads) hs.push_back(run.head_index(h));
  const std::string web = o.web_dir.empty() ? default_web_dir() : o.web_dir;
  if (html) {
    for (const char* f : {"report.html", "report.css", "report.js", "node_modules/plotly.js-dist-min/plotly.min.js",
                          "node_modules/umap-js/lib/umap-js.min.js"}) {
      if (!fs::exists(fs::path(web) / f)) {
        throw UsageError("the report needs '" + (fs::path(web) / f).string() +
                         "': run `make deps` (npm ci in viz/web) or set ATTNSCOPE_WEB_DIR, or render with --format png");
      }
    }
  }
  const fs::path out_dir = o.out.empty() ? fs::path(run.dir) : fs::path(o.out);

  const int64_t last = static_cast<int64_t>(run.epochs.size()) - 1;
  const std::vector<int64_t> at = es.empty() ? std::vector<int64_t>{last} : es;
  if (ps.empty()) ps = default_probes(run);
  std::vector<std::pair<int64_t, int64_t>> heads;
  if (ls.empty() && hs.empty()) {
    heads = default_heads(run, last);
  } else {
    if (ls.empty()) ls = {0};
    if (hs.empty()) {
      for (int64_t h = 0; h < run.H; ++h) hs.push_back(h);
    }
    for (int64_t l : ls) {
      for (int64_t h : hs) heads.push_back({l, h});
    }
  }
  const std::vector<int64_t> strip = es.size() > 1 ? es : spread(last + 1, 8);

  Rendered result;
  if (!images.empty()) {
    fs::create_directories(out_dir / "figures");
    const Output out{(out_dir / "figures").string(), images, &result.files};
    const bool probs = run.has_site("attn.probs"), scores = run.has_site("attn.scores");
    if (probs) {
      for (int64_t e : at) {
        for (int64_t p : ps) {
          head_grid(run, out, e, p);
          for (auto [l, h] : heads) {
            head_map(run, out, "attn.probs", e, p, l, h);
            if (scores) head_map(run, out, "attn.scores", e, p, l, h);
          }
        }
      }
      for (int64_t p : ps) {
        for (auto [l, h] : heads) evolution_strip(run, out, strip, p, l, h);
      }
    } else if (scores) {
      for (int64_t e : at) {
        for (auto [l, h] : heads) head_map(run, out, "attn.scores", e, ps[0], l, h);
      }
    }
    specialisation_timeline(run, out);
    pattern_classes(run, out);
    training_curves(run, out);
    if (probs) {
      for (int64_t e : at) {
        positions(run, out, e);
        focus_regions(run, out, e);
        attention_river(run, out, e, ps[0]);
      }
    }
    if (run.task == "minmax") {
      minmax_grid(run, out, "attn.probs");
      minmax_grid(run, out, "attn.scores");
      if (probs) minmax_mechanism(run, out);
    }
    projection(run, out, spread(last + 1, 5));
    if (run.task == "roberta" && probs) {  // molecules: SMILES probes
      for (int64_t p : ps) {
        for (auto [l, h] : heads) molecule_attention(run, out, es.size() > 1 ? es : spread(last + 1, 5), p, l, h);
      }
    }
  }
  if (html) {
    const auto data = report_data(run, es, o.probes, kReportMapBudget);
    if (data.probes_embedded < data.probes_total) {
      log::info("[render] report: maps of " + std::to_string(data.probes_embedded) + " of " +
                std::to_string(data.probes_total) + " probes embedded (size budget; choose others with --probes)");
    }
    fs::create_directories(out_dir);
    const std::string path = (out_dir / "report.html").string();
    write_file_atomic(path, assemble_report(data.json, web));
    result.files.push_back(path);
  }
  for (const auto& f : result.files) result.bytes += fs::file_size(f);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace attnscope::viz
