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

std::string assemble_report(const std::string& data_json, const std::string& web_dir);

}  // namespace attnscope::viz
