// The pages of viz/web assembled into one self-contained HTML file (report, compare, serve): the
// template with its style, libraries, app and data inlined, and a Content-Security-Policy whose
// script-src lists the SHA-256 of each inlined script, so that nothing else (an injected inline
// handler, a script element smuggled in through data) can run.
#include <openssl/sha.h>
#include <strings.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/core.h"
#include "viz/report.h"
#include "viz/viz.h"

namespace attnscope::viz {
namespace fs = std::filesystem;

namespace {

const char* const kWebHint = "run `make deps` (npm ci in viz/web) or set ATTNSCOPE_WEB_DIR";
const char* const kCspMeta = "http-equiv=\"Content-Security-Policy\"";

std::string read_text(const std::string& path, const std::string& hint) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("report: cannot read '" + path + "' (" + hint + ")");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// `page` with each placeholder (each exactly once in it) replaced by its text. The template is
// split once, so that text inserted for one placeholder is never searched for another.
std::string fill(const std::string& page, const std::vector<std::pair<std::string, std::string>>& parts) {
  std::vector<std::pair<size_t, size_t>> at;  // (position in page, index in parts)
  for (size_t k = 0; k < parts.size(); ++k) {
    const auto pos = page.find(parts[k].first);
    if (pos == std::string::npos) throw UsageError("report template lacks " + parts[k].first);
    if (page.find(parts[k].first, pos + 1) != std::string::npos)
      throw UsageError("report template holds " + parts[k].first + " twice");
    at.emplace_back(pos, k);
  }
  std::sort(at.begin(), at.end());
  std::string out;
  size_t from = 0;
  for (const auto& [pos, k] : at) {
    out.append(page, from, pos - from);
    out += parts[k].second;
    from = pos + parts[k].first.size();
  }
  out.append(page, from, std::string::npos);
  return out;
}

// JSON inlined in <script type="application/json">: "<" occurs only inside strings, where \u003c
// is the same character, so the element can neither be closed ("</script") nor switched into the
// parser's escaped states ("<!--", "<script") by the data.
std::string json_script_safe(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '<') {
      out += "\\u003c";
    } else {
      out += c;
    }
  }
  return out;
}

// The text of an inline code <script> exactly as the browser will see (and hash) it: "</script"
// escaped (in code only that needs it: a regex such as /</g must stay as it is), line ends as the
// HTML parser normalises them (CR LF and CR to LF), NUL as U+FFFD.
std::string code_script_text(const std::string& code) {
  std::string s;
  s.reserve(code.size() + 2);
  s += '\n';
  for (size_t i = 0; i < code.size(); ++i) {
    const char c = code[i];
    if (c == '<' && i + 8 <= code.size() && code[i + 1] == '/' &&
        strncasecmp(code.c_str() + i + 2, "script", 6) == 0) {
      s += "<\\";
    } else if (c == '\r') {
      s += '\n';
      if (i + 1 < code.size() && code[i + 1] == '\n') ++i;
    } else if (c == '\0') {
      s += "\xEF\xBF\xBD";
    } else {
      s += c;
    }
  }
  s += '\n';
  return s;
}

// The CSP source expression of an inline script: 'sha256-' and the base64 of the SHA-256 of its text.
std::string csp_hash(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return "'sha256-" + base64(std::string(reinterpret_cast<const char*>(digest), sizeof digest)) + "'";
}

}  // namespace

void check_web_dir(const std::string& web_dir) {
  for (const char* f : {WebDir::kPage, WebDir::kStyle, WebDir::kApp, WebDir::kPlotly, WebDir::kUmap}) {
    const fs::path path = fs::path(web_dir) / f;
    if (!fs::exists(path)) {
      throw UsageError("the report needs '" + path.string() + "': " + kWebHint +
                       ", or render with --format png");
    }
  }
}

std::string assemble_report(const std::string& data_json, const std::string& web_dir, const char* page_file,
                            const char* app) {
  auto read = [&](const char* file) { return read_text((fs::path(web_dir) / file).string(), kWebHint); };
  const std::string page = read(page_file);
  if (page.find(kCspMeta) == std::string::npos) {
    throw UsageError(std::string("report template ") + page_file +
                     " lacks its Content-Security-Policy meta tag");
  }
  const std::string plotly = code_script_text(read(WebDir::kPlotly)),
                    umap = code_script_text(read(WebDir::kUmap));
  const std::string code = code_script_text(read(app));
  const std::string hashes = csp_hash(plotly) + " " + csp_hash(umap) + " " + csp_hash(code);
  const std::string data = json_script_safe(data_json);
  return fill(page,
              {{"<!--ATTNSCOPE:script-hashes-->", hashes},
               {"<!--ATTNSCOPE:style-->", "<style>\n" + read(WebDir::kStyle) + "\n</style>"},
               {"<!--ATTNSCOPE:libs-->", "<script>" + plotly + "</script>\n<script>" + umap + "</script>"},
               {"<!--ATTNSCOPE:data-->",
                "<script id=\"attnscope-data\" type=\"application/json\">" + data + "</script>"},
               {"<!--ATTNSCOPE:app-->", "<script>" + code + "</script>"}});
}

std::string content_security_policy(const std::string& html) {
  // the policy precedes every script: look for its meta tag before the first one
  const std::string head = html.substr(0, std::min(html.size(), html.find("<script")));
  for (size_t pos = 0; (pos = head.find("<meta", pos)) != std::string::npos; pos += 5) {
    const size_t end = head.find('>', pos);
    if (end == std::string::npos) break;
    const std::string tag = head.substr(pos, end - pos);
    if (tag.find(kCspMeta) == std::string::npos) continue;
    const std::string key = "content=\"";
    const size_t from = tag.find(key);
    const size_t to = from == std::string::npos ? from : tag.find('"', from + key.size());
    if (to == std::string::npos) break;
    return tag.substr(from + key.size(), to - from - key.size());
  }
  throw std::runtime_error(
      "the page has no <meta http-equiv=\"Content-Security-Policy\" content=\"...\"> before its scripts");
}

}  // namespace attnscope::viz
