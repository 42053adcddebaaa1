// The offline HTML report (internal to viz/): data per docs/report-data.md, inlined into the
// template of viz/web with its npm libraries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "viz/run.h"

namespace attnscope::viz {

struct ReportData {
  std::string json;
  int64_t probes_embedded = 0, probes_total = 0;
  bool scores_omitted = false;
};

// epochs / probes: storage indices (empty = all). Without a probe selection, probes are embedded
// in order while their maps (8 bits per weight, deflated, base64) fit in `budget` bytes.
ReportData report_data(const Run& run, std::vector<int64_t> epochs, std::vector<int64_t> probes, uint64_t budget);

// The files of the web directory (viz/web, or $ATTNSCOPE_WEB_DIR) the report is assembled from.
struct WebDir {
  static constexpr const char* kPage = "report.html";  // the template, with ATTNSCOPE placeholders
  static constexpr const char* kStyle = "report.css";
  static constexpr const char* kApp = "report.js";
  static constexpr const char* kPlotly = "node_modules/plotly.js-dist-min/plotly.min.js";
  static constexpr const char* kUmap = "node_modules/umap-js/lib/umap-js.min.js";
  static constexpr const char* kComparePage = "compare.html";  // attnscope compare's page and app
  static constexpr const char* kCompareApp = "compare.js";
  static constexpr const char* kServePage = "serve.html";  // attnscope serve's page and app
  static constexpr const char* kServeApp = "serve.js";
};
// UsageError naming the first of these that `web_dir` lacks (before anything is written).
void check_web_dir(const std::string& web_dir);

// The page `page` of web_dir with the style, plotly.js (and umap-js), `app` and the data inlined,
// and in its Content-Security-Policy (the template's script-src <!--ATTNSCOPE:script-hashes-->)
// the SHA-256 of each of those scripts (page.cpp).
std::string assemble_report(const std::string& data_json, const std::string& web_dir, const char* page = WebDir::kPage,
                            const char* app = WebDir::kApp);

}  // namespace attnscope::viz
