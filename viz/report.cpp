// The data of report.html (docs/report-data.md is the contract with viz/web/report.js), built one
// function per JSON section: maps, run, probes, metrics, analysis, curves, pooled, minmax; page.cpp
// inlines it into the page template of viz/web with its libraries and app.
#include "viz/report.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>

#include "core/core.h"
#include "viz/figures.h"

namespace attnscope::viz {
using nlohmann::json;

namespace {

std::string deflate(const std::string& raw) {
  uLongf n = compressBound(raw.size());
  std::string out(n, '\0');
  if (compress2(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(raw.data()), raw.size(), 6) != Z_OK) {
    throw std::runtime_error("report: deflate failed");
  }
  out.resize(n);
  return out;
}

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// [rows][L][H] nested arrays from a flat [rows*L*H] vector.
json nest3(const std::vector<float>& v, int64_t rows, int64_t a, int64_t b) {
  json out = json::array();
  for (int64_t r = 0; r < rows; ++r) {
    json x = json::array();
    for (int64_t i = 0; i < a; ++i) {
      json y = json::array();
      for (int64_t j = 0; j < b; ++j) y.push_back(finite_or_null(v[(r * a + i) * b + j]));
      x.push_back(std::move(y));
    }
    out.push_back(std::move(x));
  }
  return out;
}

using Raw = std::vector<std::vector<std::string>>;  // [probe k][chosen epoch e]: 8-bit map bytes

// 8-bit maps of `site`: raw[k][e] holds the bytes of probe k at chosen epoch e (blocks l, h of
// the real length, (value - offset) / scale rounded and clamped to 0..255).
Raw quantise(const Run& run, const std::string& site, const std::vector<int64_t>& epochs,
             const std::vector<int64_t>& probes, double offset, double scale) {
  const int64_t LH = run.L * run.H, T = run.T;
  Raw raw(probes.size(), std::vector<std::string>(epochs.size()));
  for (size_t ei = 0; ei < epochs.size(); ++ei) {
    for (size_t k = 0; k < probes.size(); ++k) {
      const auto pm = run.file->probe_map(site, epochs[ei], probes[k]);  // one chunk
      const int64_t n = run.length(probes[k]);
      std::string& out = raw[k][ei];
      out.reserve(LH * n * n);
      for (int64_t lh = 0; lh < LH; ++lh) {
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            const double v = (pm[(lh * T + i) * T + j] - offset) / scale;
            out += static_cast<char>(static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)));
          }
        }
      }
    }
  }
  return raw;
}

// The maps of the first `keep` probes in the report's order (epoch, probe), deflated, base64.
std::string stream(const Raw& raw, size_t epochs, size_t keep) {
  std::string all;
  for (size_t ei = 0; ei < epochs; ++ei) {
    for (size_t k = 0; k < keep; ++k) all += raw[k][ei];
  }
  return base64(deflate(all));
}

// How many probes' maps fit in `budget`, estimated from the first probes' compression ratio.
size_t probes_fitting(const Raw& raw, uint64_t budget) {
  auto raw_size = [&](size_t k) {
    uint64_t n = 0;
    for (const auto& s : raw[k]) n += s.size();
    return n;
  };
  std::string sample;
  for (size_t k = 0; k < std::min<size_t>(2, raw.size()); ++k) {
    for (const auto& s : raw[k]) sample += s;
  }
  const double ratio = 1.1 * 4.0 / 3.0 * deflate(sample).size() / std::max<size_t>(1, sample.size());
  uint64_t used = 0;
  size_t keep = 0;
  for (; keep < raw.size(); ++keep) {
    const uint64_t add = static_cast<uint64_t>(raw_size(keep) * ratio);
    if (keep > 0 && used + add > budget) break;
    used += add;
  }
  return keep;
}

// The smallest and largest score (and 0) over the real-length blocks of these probes.
std::pair<double, double> score_range(const Run& run, const std::vector<int64_t>& epochs, const std::vector<int64_t>& probes) {
  const int64_t LH = run.L * run.H, T = run.T;
  double lo = 0, hi = 0;
  for (int64_t e : epochs) {
    for (int64_t p : probes) {
      const auto pm = run.file->probe_map(kScores, e, p);
      const int64_t n = run.length(p);
      for (int64_t lh = 0; lh < LH; ++lh) {
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            lo = std::min<double>(lo, pm[(lh * T + i) * T + j]);
            hi = std::max<double>(hi, pm[(lh * T + i) * T + j]);
          }
        }
      }
    }
  }
  return {lo, hi};
}

struct Maps {
  json maps;  // {"probs": ..., "scores": ...}, each {scale, offset, zlib_base64}; null when neither
  uint64_t bytes = 0;
  bool scores_omitted = false;
};

// The probabilities of the probes in order while their compressed maps fit the budget (all of
// them when `chosen`); `probes` is cut to those embedded.
void embed_probs(const Run& run, const std::vector<int64_t>& epochs, std::vector<int64_t>& probes, bool chosen,
                 uint64_t budget, Maps& m) {
  const Raw raw = quantise(run, kProbs, epochs, probes, 0.0, 1.0 / 255);
  size_t keep = chosen ? probes.size() : probes_fitting(raw, budget);
  probes.resize(keep);
  std::string b = stream(raw, epochs.size(), keep);
  while (!chosen && b.size() > budget && keep > 1) {  // the estimate was optimistic
    keep = std::max<size_t>(1, keep * budget / b.size());
    b = stream(raw, epochs.size(), keep);
  }
  probes.resize(keep);
  m.bytes += b.size();
  m.maps["probs"] = {{"scale", 1.0 / 255}, {"offset", 0.0}, {"zlib_base64", b}};
}

// The scores of the embedded probes, when they fit as well (always when `chosen`).
void embed_scores(const Run& run, const std::vector<int64_t>& epochs, const std::vector<int64_t>& probes, bool chosen,
                  uint64_t budget, Maps& m) {
  // scores compress about as well as probabilities: skip the work when they cannot fit
  const bool may_fit = chosen || 2 * m.bytes <= budget;
  m.scores_omitted = !may_fit;
  if (!may_fit) return;
  const auto [lo, hi] = score_range(run, epochs, probes);
  const double scale = std::max(1e-9, (hi - lo) / 255);
  const std::string b = stream(quantise(run, kScores, epochs, probes, lo, scale), epochs.size(), probes.size());
  if (chosen || m.bytes + b.size() <= budget) {
    m.maps["scores"] = {{"scale", scale}, {"offset", lo}, {"zlib_base64", b}};
  } else {
    m.scores_omitted = true;
  }
}

json run_section(const Run& run, size_t probes_embedded, const Maps& m) {
  json r;
  r["name"] = run.name;
  r["source"] = run.h5;
  r["attnscope_version"] = run.header().attnscope_version;
  r["model"] = run.model;
  r["config_yaml"] = run.header().config_yaml;
  r["task"] = run.task;
  json fin = json::object();
  if (!run.curves.empty()) {
    for (const auto& [k, v] : run.curves.back()) fin[k] = finite_or_null(v);
  }
  r["final"] = fin;
  r["probes_embedded"] = probes_embedded;
  r["maps_bytes"] = m.bytes;
  r["probes_recorded"] = run.P;
  r["scores_omitted"] = m.scores_omitted;
  return r;
}

json probes_section(const Run& run, const std::vector<int64_t>& probes) {
  const auto targets = probe_targets(run);
  json pj = json::array();
  for (int64_t p : probes) {
    json t = json::object();
    for (const auto& [name, v] : targets) t[name] = finite_or_null(v[p]);
    pj.push_back({{"index", p}, {"text", run.probes().text[p]}, {"tokens", run.tokens(p)}, {"length", run.length(p)},
                  {"targets", t}});
  }
  return pj;
}

// Per-head metrics over the whole validation split.
json metrics_section(const Run& run) {
  json m;
  const auto me = run.file->metric_epochs();
  m["epochs"] = me;
  m["names"] = run.header().metrics;
  json values = json::object();
  for (const auto& name : run.header().metrics) {
    values[name] = nest3(run.file->metric(name), static_cast<int64_t>(me.size()), run.L, run.H);
  }
  m["values"] = values;
  return m;
}

json analysis_section(const Run& run, const std::vector<int64_t>& epochs, const std::vector<int64_t>& probes) {
  const int64_t L = run.L, H = run.H, T = run.T;
  json an;
  for (const char* name : {"js_prev", "js_final", "head_importance"}) {
    json rows = json::array();
    for (int64_t e : epochs) {
      std::vector<float> v;
      try {
        v = run.file->analysis(name, e);
      } catch (const UsageError&) {  // js_final before the run ended
        v.assign(L * H, std::nanf(""));
      }
      rows.push_back(nest3(v, 1, L, H)[0]);
    }
    an[name] = rows;
  }
  {  // JS distance between every pair of heads [L*H, L*H] per epoch, 3 decimals; epochs beyond a
     // budget of 400k numbers are thinned (null), the last always kept
    const int64_t n = L * H;
    const size_t E = epochs.size();
    const size_t stride = std::max<size_t>(1, static_cast<size_t>(n * n) * E / 400000 + 1);
    json rows = json::array();
    bool any = false;
    for (size_t k = 0; k < E; ++k) {
      if (k % stride != 0 && k + 1 != E) {
        rows.push_back(nullptr);
        continue;
      }
      std::vector<float> v;
      try {
        v = run.file->analysis("head_js", epochs[k]);
      } catch (const std::exception&) {
        v.clear();
      }
      if (static_cast<int64_t>(v.size()) != n * n) {
        rows.push_back(nullptr);
        continue;
      }
      json flat = json::array();
      for (float x : v) flat.push_back(std::isfinite(x) ? json(std::round(x * 1000.0) / 1000.0) : json(nullptr));
      rows.push_back(flat);
      any = true;
    }
    if (any) an["head_js"] = rows;
  }
  // per probe: [P,T] token rows, and attn_grad's [P,L*H] head rows
  for (const char* name : {"token_importance", "token_importance_rollout", "token_importance_flow", "grad_input", "attn_grad"}) {
    if (!run.file->has_analysis(name)) continue;  // (recorded before it existed)
    const int64_t width = std::string(name) == "attn_grad" ? L * H : T;
    json rows = json::array();
    bool any = false;
    for (int64_t e : epochs) {
      const auto v = run.file->analysis(name, e);  // [P,width]
      json per = json::array();
      for (int64_t p : probes) {
        json row = json::array();
        for (int64_t t = 0; t < width; ++t) {
          row.push_back(finite_or_null(v[p * width + t]));
          any = any || std::isfinite(v[p * width + t]);
        }
        per.push_back(row);
      }
      rows.push_back(per);
    }
    if (any) an[name] = rows;  // (all NaN: a model without a prediction to attribute)
  }
  return an;
}

// Training curves: every key of metrics.jsonl, one value per row (null where a row lacks it).
json curves_section(const Run& run) {
  json curves = json::object();
  std::vector<std::string> keys;
  for (const auto& row : run.curves) {
    for (const auto& [k, v] : row) {
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    }
  }
  for (const auto& k : keys) {
    json col = json::array();
    for (const auto& row : run.curves) {
      auto it = row.find(k);
      col.push_back(it == row.end() ? json(nullptr) : finite_or_null(it->second));
    }
    curves[k] = col;
  }
  return curves;
}

json rounded_rows(const std::vector<std::vector<double>>& rows) {
  json out = json::array();
  for (const auto& row : rows) {
    json v = json::array();
    for (double x : row) v.push_back(std::round(x * 1e4) / 1e4);
    out.push_back(v);
  }
  return out;
}

// Pooled vectors: as stored when D <= 50, else their coordinates on the top principal
// components (at most P of them are non-zero, so distances between probes are kept).
json pooled_section(const Run& run, const std::vector<int64_t>& epochs, const std::vector<int64_t>& probes) {
  const int64_t D = run.header().pooled_dim;
  const int64_t n = static_cast<int64_t>(probes.size());
  const int64_t k = D <= 50 ? D : std::min<int64_t>({50, n, D});
  json vals = json::array(), pcas = json::array();
  for (int64_t e : epochs) {
    const auto all = run.file->pooled(e);
    std::vector<float> sel;
    for (int64_t p : probes) sel.insert(sel.end(), all.begin() + p * D, all.begin() + (p + 1) * D);
    json per = json::array();
    if (D <= 50) {
      for (int64_t i = 0; i < n; ++i) {
        json v = json::array();
        for (int64_t j = 0; j < D; ++j) v.push_back(std::round(sel[i * D + j] * 1e4) / 1e4);
        per.push_back(v);
      }
    } else {
      per = rounded_rows(pca(sel, n, D, k));
    }
    vals.push_back(per);
    pcas.push_back(n >= 3 ? json(pca2(sel, n, D)) : json::array());
  }
  return {{"dim", k}, {"model_dim", D}, {"basis", D <= 50 ? "model" : "principal components"},
          {"values", vals}, {"pca", pcas}};
}

// The whole validation split in embedding space: per recorded epoch the 2-D PCA coordinates of
// every example's pooled vector (scaled to [-1, 1], 3 decimals) and the colourings that change
// with training (prediction, error, k-means cluster); once, those that do not (target, heavy
// atoms, scaffold) and each example's text. Coordinates, not vectors: N x 2 numbers an epoch.
// Epochs beyond a budget of 600k numbers are thinned (null), the first and last always kept.
json validation_section(const Run& run, const std::vector<int64_t>& epochs) {
  const int64_t N = run.header().val_count;
  json vs;
  if (N < 3 || run.header().pooled_dim <= 0) return vs;
  const auto round_to = [](double x, double unit) { return std::isfinite(x) ? json(std::round(x / unit) * unit) : json(nullptr); };
  const auto values_json = [&](const std::vector<double>& v) {
    double top = 0;
    for (double x : v) top = std::isfinite(x) ? std::max(top, std::fabs(x)) : top;
    const double unit = top > 0 ? std::pow(10.0, std::floor(std::log10(top)) - 3) : 1.0;  // 4 significant digits
    json a = json::array();
    for (double x : v) a.push_back(round_to(x, unit));
    return a;
  };
  const size_t E = epochs.size();
  const size_t stride = std::max<size_t>(1, static_cast<size_t>(N) * 5 * E / 600000 + 1);
  json rows = json::array(), fixed = json::array();
  bool first = true;
  for (size_t k = 0; k < E; ++k) {
    if (k % stride != 0 && k + 1 != E) {
      rows.push_back(nullptr);
      continue;
    }
    const auto v = validation_embedding_of(run, epochs[k]);
    if (v.coords.empty()) {
      rows.push_back(nullptr);
      continue;
    }
    double scale = 0;
    for (const auto& xy : v.coords) scale = std::max({scale, std::fabs(xy[0]), std::fabs(xy[1])});
    scale = scale > 0 ? scale : 1;
    json xy = json::array();
    for (const auto& c : v.coords) xy.push_back({round_to(c[0] / scale, 1e-3), round_to(c[1] / scale, 1e-3)});
    json changing = json::array();
    for (const auto& c : v.colourings) {
      const json col = {{"name", c.name}, {"categorical", c.categorical}, {"values", values_json(c.value)}};
      if (!c.fixed) {
        changing.push_back(col);
      } else if (first) {
        fixed.push_back(col);
      }
    }
    if (first) vs["scaffolds"] = v.scaffolds;
    first = false;
    rows.push_back({{"xy", xy}, {"k", v.k}, {"colourings", changing}});
  }
  if (first) return json();  // no epoch had vectors
  const auto& text = run.file->validation().text;
  json tj = json::array();
  for (const auto& t : text) {
    size_t cut = std::min<size_t>(t.size(), 57);
    while (cut > 0 && cut < t.size() && (static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) --cut;  // whole UTF-8 characters
    tj.push_back(t.size() > 60 ? t.substr(0, cut) + "..." : t);
  }
  vs["count"] = N;
  vs["text"] = tj;
  vs["fixed"] = fixed;
  vs["epochs"] = rows;
  return vs;
}

// Model internals (hooks.attention.sites beyond the maps). Per embedded epoch and probe:
//   "norms": per token the L2 norm of the hidden state entering layer 0 (embed.out) and after each
//            stored layer (block.out) [L+1][len] (rows null where not recorded), and of each layer's
//            feed-forward output (ffn.out) [L][len]; every probe, 4 significant digits, epochs
//            thinned (null) beyond ~150k numbers;
//   "qkv":   attn.q, attn.k, attn.v (and attn.context) [L][H][len][d] at 3 significant digits, for
//            the first probes that fit a budget of 300k numbers at every embedded epoch (epochs
//            thinned, the last kept, when one probe does not fit).
json internals_section(const Run& run, const std::vector<int64_t>& epochs, const std::vector<int64_t>& probes) {
  const auto& in = run.header().internals;
  json out;
  if (in.empty()) return out;
  const int64_t L = run.L, H = run.H, T = run.T;
  json sites = json::object();
  for (const auto& [site, shape] : in) sites[site] = shape;
  out["sites"] = sites;
  const auto sig = [](double x, int digits) {
    if (!std::isfinite(x)) return json(nullptr);
    if (x == 0) return json(0);
    const double unit = std::pow(10.0, std::floor(std::log10(std::fabs(x))) - (digits - 1));
    return json(std::round(x / unit) * unit);
  };
  // norms
  const bool hidden = in.count("embed.out") || in.count("block.out"), ffn = in.count("ffn.out");
  if (hidden || ffn) {
    // at most ~150k numbers: epochs thinned (null) beyond, the first and last kept
    int64_t count = 0;
    for (int64_t p : probes) count += (2 * L + 1) * run.length(p);
    const size_t E = epochs.size();
    const size_t stride = static_cast<size_t>(count) * E / 150000 + 1;
    json rows = json::array();
    for (size_t k = 0; k < E; ++k) {
      if (k % stride != 0 && k + 1 != E) {
        rows.push_back(nullptr);
        continue;
      }
      const int64_t e = epochs[k];
      // the norm over the last axis (width w) of rows [.., T, w] of probe p, layer l (or -1: [T, w])
      const auto norms = [&](const std::vector<float>& v, int64_t w, int64_t p, int64_t l, int64_t layers) {
        json r = json::array();
        const int64_t base = ((p * std::max<int64_t>(layers, 1)) + std::max<int64_t>(l, 0)) * T * w;
        for (int64_t t = 0; t < run.length(p); ++t) {
          double s = 0;
          for (int64_t j = 0; j < w; ++j) s += static_cast<double>(v[base + t * w + j]) * v[base + t * w + j];
          r.push_back(sig(std::sqrt(s), 4));
        }
        return r;
      };
      const auto embed = in.count("embed.out") ? run.file->internal("embed.out", e) : std::vector<float>{};
      const auto block = in.count("block.out") ? run.file->internal("block.out", e) : std::vector<float>{};
      const auto ff = ffn ? run.file->internal("ffn.out", e) : std::vector<float>{};
      json per = json::array();
      for (int64_t p : probes) {
        json h = json::array(), f = json::array();
        if (hidden) {
          h.push_back(embed.empty() ? json(nullptr) : norms(embed, in.at("embed.out").back(), p, -1, 0));
          for (int64_t l = 0; l < L; ++l) h.push_back(block.empty() ? json(nullptr) : norms(block, in.at("block.out").back(), p, l, L));
        }
        for (int64_t l = 0; ffn && l < L; ++l) f.push_back(norms(ff, in.at("ffn.out").back(), p, l, L));
        per.push_back({{"hidden", h}, {"ffn", f}});
      }
      rows.push_back(per);
    }
    out["norms"] = rows;
  }
  // q, k, v (and context) for the step-by-step view
  if (in.count("attn.q") && in.count("attn.k") && in.count("attn.v") && !probes.empty()) {
    std::vector<std::string> qkv = {"attn.q", "attn.k", "attn.v"};
    if (in.count("attn.context")) qkv.push_back("attn.context");
    const int64_t d = in.at("attn.q").back();
    const auto E = static_cast<int64_t>(epochs.size());
    const int64_t budget = 300000;
    const auto per_probe = [&](int64_t p) { return static_cast<int64_t>(qkv.size()) * L * H * run.length(p) * d; };
    int64_t k = 0, used = 0;
    while (k < static_cast<int64_t>(probes.size()) && used + per_probe(probes[static_cast<size_t>(k)]) * E <= budget) {
      used += per_probe(probes[static_cast<size_t>(k)]) * E;
      ++k;
    }
    const int64_t stride = k > 0 ? 1 : per_probe(probes[0]) * E / budget + 1;  // (k = 0: probe 0 at every stride-th epoch)
    const int64_t kept = std::max<int64_t>(k, 1);
    json rows = json::array();
    for (int64_t ei = 0; ei < E; ++ei) {
      if (ei % stride != 0 && ei + 1 != E) {
        rows.push_back(nullptr);
        continue;
      }
      json per = json::array();
      for (int64_t i = 0; i < kept; ++i) {
        const int64_t p = probes[static_cast<size_t>(i)], len = run.length(p);
        json sites_j = json::object();
        for (const auto& site : qkv) {
          const auto v = run.file->internal_probe(site, epochs[static_cast<size_t>(ei)], p);  // [L,H,T,d]
          json ls = json::array();
          for (int64_t l = 0; l < L; ++l) {
            json hs = json::array();
            for (int64_t h = 0; h < H; ++h) {
              json ts = json::array();
              for (int64_t t = 0; t < len; ++t) {
                json row = json::array();
                for (int64_t j = 0; j < d; ++j) row.push_back(sig(v[((l * H + h) * T + t) * d + j], 3));
                ts.push_back(row);
              }
              hs.push_back(ts);
            }
            ls.push_back(hs);
          }
          sites_j[site] = ls;
        }
        per.push_back(sites_j);
      }
      rows.push_back(per);
    }
    out["qkv_probes"] = kept;  // report probes 0..kept-1
    out["qkv"] = rows;
    json scale = json::array();
    const bool by_layer = run.model.value("scale_attn_by_inverse_layer_idx", false);
    for (int64_t l : run.header().layer_ids) scale.push_back(std::sqrt(static_cast<double>(d)) * (by_layer ? static_cast<double>(l + 1) : 1.0));
    out["score_scale"] = scale;  // scores = q . k / score_scale[l]
  }
  return out;
}

// One site's (a, b) grid: [op][head][to a, op, b][a][b], rounded to 1e-3.
json minmax_grid_json(const std::vector<float>& v, int64_t heads, int64_t N) {
  json ops = json::array();
  for (int64_t op = 0; op < 2; ++op) {
    json hs = json::array();
    for (int64_t h = 0; h < heads; ++h) {
      json ks = json::array();
      for (int64_t k = 0; k < 3; ++k) {
        const auto panel = minmax_panel(v, heads, N, op, h, k);
        json rows = json::array();
        for (int64_t a = 0; a < N; ++a) {
          json row = json::array();
          for (int64_t b = 0; b < N; ++b) row.push_back(std::round(panel[a * N + b] * 1e3) / 1e3);
          rows.push_back(row);
        }
        ks.push_back(rows);
      }
      hs.push_back(ks);
    }
    ops.push_back(hs);
  }
  return ops;
}

json minmax_section(const Run& run) {
  json mm;
  mm["numbers"] = run.model.value("numbers", 0);
  mm["over_training"] = run.mechanism.is_object() ? run.mechanism.value("over_training", json::array()) : json::array();
  mm["final"] = run.mechanism.is_object() ? run.mechanism.value("mechanism", json::array()) : json::array();
  auto it = run.header().arrays.find(minmax_grid_array(kProbs));
  if (it == run.header().arrays.end()) return mm;
  const int64_t heads = it->second[1], N = it->second[2];
  mm["numbers"] = N;
  json grid;
  grid["ops"] = {"max", "min"};
  for (const auto& [key, site] : {std::pair<const char*, const char*>{"probs", kProbs}, {"scores", kScores}}) {
    const auto v = run.file->array(minmax_grid_array(site));
    if (v.empty() || !std::isfinite(v[0])) continue;
    grid[key] = minmax_grid_json(v, heads, N);
  }
  if (grid.contains("probs")) mm["grid"] = grid;
  return mm;
}

}  // namespace

ReportData report_data(const Run& run, std::vector<int64_t> epochs, std::vector<int64_t> probes, uint64_t budget) {
  if (epochs.empty()) {
    for (size_t e = 0; e < run.epochs.size(); ++e) epochs.push_back(static_cast<int64_t>(e));
  }
  const bool chosen = !probes.empty();
  if (!chosen) {
    for (int64_t p = 0; p < run.P; ++p) probes.push_back(p);
  }
  // the validation set's coordinates and the internals take their share of the budget first
  json validation;
  if (run.header().val_count >= 3) validation = validation_section(run, epochs);
  const uint64_t validation_bytes = validation.is_null() ? 0 : validation.dump().size();
  const uint64_t internals_reserve = run.header().internals.empty() ? 0 : uint64_t{3} << 20;  // (its cap: 300k numbers)
  const uint64_t maps_budget = budget > validation_bytes + internals_reserve ? budget - validation_bytes - internals_reserve : 0;
  Maps maps;
  if (run.has_site(kProbs)) embed_probs(run, epochs, probes, chosen, maps_budget, maps);
  if (run.has_site(kScores)) embed_scores(run, epochs, probes, chosen, maps_budget, maps);
  ReportData rd;
  rd.probes_total = run.P;
  rd.scores_omitted = maps.scores_omitted;
  json d;
  d["version"] = 1;
  d["maps_order"] = "epoch, probe, layer, head; each block length x length bytes";
  d["run"] = run_section(run, probes.size(), maps);
  d["layers"] = run.header().layer_ids;
  d["heads"] = run.header().head_ids;
  json ep = json::array();
  for (int64_t e : epochs) ep.push_back(run.epochs[e].epoch);
  d["epochs"] = ep;
  d["best_epoch"] = run.file->has_best() ? json(run.file->best().epoch) : json(nullptr);
  d["probes"] = probes_section(run, probes);
  d["maps"] = maps.maps;
  d["metrics"] = metrics_section(run);
  d["pattern_classes"] = pattern_class_names();
  d["analysis"] = analysis_section(run, epochs, probes);
  d["curves"] = curves_section(run);
  if (run.header().pooled_dim > 0) d["pooled"] = pooled_section(run, epochs, probes);
  if (!run.header().internals.empty()) d["internals"] = internals_section(run, epochs, probes);
  if (!validation.is_null()) d["validation"] = std::move(validation);
  if (run.is(TaskKind::MinMax)) d["minmax"] = minmax_section(run);
  rd.json = d.dump(-1, ' ', false, json::error_handler_t::replace);  // a split UTF-8 character (a byte-level token) as U+FFFD
  rd.probes_embedded = static_cast<int64_t>(probes.size());
  return rd;
}

}  // namespace attnscope::viz
