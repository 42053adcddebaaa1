// Public header of attnscope::viz: figures and the HTML report of a run, from its files alone
// (attention.h5, metrics.jsonl, mechanism.json, config.yaml); it never needs the model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attnscope::viz {

struct RenderOptions {
  std::string input;                  // a run directory or its attention.h5
  std::string out;                    // output folder; default: the run directory
  std::vector<int64_t> epochs;        // recorded epochs (model epoch numbers); empty = defaults
  std::vector<int64_t> probes;        // probe indices; empty = defaults
  std::vector<int64_t> layers, heads; // model layer / head ids; empty = defaults
  std::vector<std::string> formats = {"png", "html"};  // any of png, svg, html
  std::string web_dir;                // report template + node_modules; empty = built-in default
};

struct Rendered {
  std::vector<std::string> files;  // written, in order
  uint64_t bytes = 0;
  double seconds = 0;
};

// Validates every selection against what the file holds before writing anything (UsageError
// naming what is missing and listing what exists); files are written atomically, and nothing
// else in the output folder is touched.
Rendered render(const RenderOptions& options);

struct CompareOptions {
  std::vector<std::string> inputs;  // run directories or attention .h5 files; each compared with the first
  std::string epoch = "last";       // a recorded epoch number every run holds, or "last" (each run's own)
  std::string out;                  // output folder (default ./compare): compare.json, compare.html, figures/
  int64_t probe = 0;                // the probe of the side-by-side head maps
  std::vector<std::string> formats = {"png", "html"};
  std::string web_dir;
};

struct Compared {
  Rendered rendered;
  std::string summary;  // per pair and layer: the matching, mean JS same-index and matched
};

// Per head: the Jensen-Shannon divergence between the runs' maps on the probes both hold (same
// inputs required: UsageError naming the first differing probe), heads matched per layer by
// minimum total JS (Hungarian), metric differences (same index and matched); figures, compare.json
// and an offline report (compare.html).
Compared compare(const CompareOptions& options);

// A molecule drawn by RDKit (SVG, width x height), each atom coloured (viridis, 0 to the largest)
// by the weights of the tokens over it (a token over k atoms gives each 1/k); "" when the SMILES
// does not parse or the tokens do not spell it.
std::string molecule_svg(const std::string& smiles, const std::vector<std::string>& tokens, const std::vector<double>& weight,
                         const std::string& legend, int width = 420, int height = 340);

// The offline report of a run (what `render --format html` writes), as a string.
std::string report_html(const std::string& run_dir, const std::string& web_dir = "");

// The page of `attnscope serve` (web_dir's serve.html with its style, plotly.js and serve.js
// inlined; UsageError naming what web_dir lacks).
std::string serve_page(const std::string& web_dir = "");

// `attnscope metrics --synthetic`: K synthetic maps [K,n,n] with their titles drawn side by side
// into DIR/synthetic_patterns.png; returns the path.
std::string synthetic_patterns_figure(const std::string& dir, int64_t n, const std::vector<float>& maps,
                                      const std::vector<std::string>& titles);

// The Content-Security-Policy of a page assemble_report made (its meta tag's content).
std::string content_security_policy(const std::string& html);

// Where report.html/js/css and node_modules are looked for: $ATTNSCOPE_WEB_DIR, else the
// source tree's viz/web.
std::string default_web_dir();

}  // namespace attnscope::viz
