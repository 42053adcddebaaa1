// Public header of attnscope::serve: `attnscope serve MODEL`, a model's attention explored live
// in the browser. An Explorer answers the JSON API (tokens, every layer x head map, per-head
// metrics and pattern classes, token importance, the prediction, masked-LM top-k, molecule
// drawings) for any model `snapshot` takes; a Server puts it behind HTTP (cpp-httplib) with a
// fixed worker pool, a bounded queue and request limits. The API is documented in docs/serve.md.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnscope::serve {

// A request the Explorer refuses: the HTTP status (4xx) and a message for the person who sent it.
class RequestError : public std::runtime_error {
 public:
  RequestError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

struct Limits {
  int64_t max_input_chars = 4000;  // one input (a pair's texts counted together)
  int64_t max_batch = 64;          // inputs of one /api/predict
  int64_t max_checkpoints_loaded = 4;  // checkpoints of a run kept in memory at once (least recently used go)
};

// The models behind the API: MODEL is a Hugging Face directory, an attnscope run directory or one
// of its checkpoints (any supported family). A run directory offers its kept checkpoints
// (checkpoints/*.pt) for live inputs. Weights are loaded once, in eval mode, and shared read-only
// by every worker; inference runs without autograd. Thread-safe.
class Explorer {
 public:
  // `input`: "auto" (the run's data; text for BERT and GPT-2; SMILES for a RoBERTa whose
  // vocabulary has no English word pieces), "smiles" or "text". UsageError for a bad MODEL.
  Explorer(const std::string& model, const std::string& input = "auto", Limits limits = {});
  ~Explorer();
  Explorer(const Explorer&) = delete;
  Explorer& operator=(const Explorer&) = delete;

  // GET /api/info: the model (family, architecture, layers, heads, input kind, pair input, labels,
  // mask token), the checkpoints on offer, whether a recorded report exists, the limits.
  nlohmann::json info() const;
  // POST /api/attention {"input", "pair"?, "checkpoint"?, "encoding"?: "u8"|"float"}.
  nlohmann::json attention(const nlohmann::json& request) const;
  // POST /api/predict {"input" | "inputs": [...], "pair"?, "checkpoint"?}: predictions only.
  nlohmann::json predict(const nlohmann::json& request) const;
  // POST /api/molecule {"input", "checkpoint"?, "layer", "head", "query"?}: the molecule drawn by
  // RDKit, each atom coloured by the attention that query token (default 0, <s>) pays it (SVG).
  std::string molecule_svg(const nlohmann::json& request) const;
  // The run directory whose recorded report /report serves ("" for a Hugging Face directory).
  const std::string& run_dir() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ServeOptions {
  std::string model;
  std::string input = "auto";
  std::string host = "127.0.0.1";
  int port = 8080;                // 0: any free port (printed)
  int threads = 0;                // inference workers; 0 = the machine's cores
  int queue = 64;                 // inference requests waiting beyond the workers; more get 503
  int connection_threads = 32;    // threads reading and writing HTTP connections
  int64_t max_body_bytes = 1 << 20;  // larger request bodies get 413 (as soon as the head says so)
  double request_timeout_s = 10;  // a request's head and body must arrive whole within this (from the
                                  // connect, or its first byte on a kept-alive connection), else 408
  double queue_timeout_s = 30;    // a request waiting longer than this for a worker gets 503
  int64_t cache_mb = 64;          // recent answers kept by (path, body); 0 = none
  std::string web_dir;            // serve.html + node_modules; empty = viz::default_web_dir()
  Limits limits;
};

// The HTTP server: the page at /, the JSON API at /api/*, the run's recorded report at /report.
// No request path ever reaches the file system: the page is assembled in memory at start, the
// report into a private cache folder on its first request (streamed from there).
class Server {
 public:
  // Checks every option (UsageError listing what is out of range), loads the model, assembles the page.
  explicit Server(ServeOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  // Binds host:port (port 0: a free one) and returns the port; UsageError naming the port when it
  // cannot bind (a port another server holds included).
  int bind();
  // Serves until stop() (from any thread or a signal handler's watcher).
  void run();
  void stop();
  const Explorer& explorer() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `attnscope serve`: a Server until SIGINT or SIGTERM; says loudly when bound beyond loopback.
int serve_command(const ServeOptions& options);

}  // namespace attnscope::serve
