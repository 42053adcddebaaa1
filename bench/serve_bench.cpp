// Load test of `attnscope serve` on loopback: N requests (POST /api/attention, one SMILES of ~40
// tokens) from C concurrent keep-alive clients against an in-process server, for two model
// shapes: the small ChemBERTa preset (configs/chemberta-esol.yaml: 4 layers x 256, 8 heads) and
// ChemBERTa zinc-base-v1's dimensions (6 layers x 768, 12 heads), both with ChemBERTa's real BPE
// tokenizer and a regression head (random weights: latency does not depend on their values).
// Prints p50 / p90 / p99 latency, throughput and errors, for 1,000 distinct inputs (random SMILES of
// the molecule: every request a forward pass) and for one input repeated (after the first, answers
// come from the server's response cache); the reference measured in the same run is one
// Explorer::attention call without HTTP on an idle server (what a forward pass costs by itself).
//
//   serve_bench [--requests 1000] [--clients 16] [--threads 0] [--shape small|zinc|both]
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "core/process.h"
#include "data/data.h"
#include "models/models.h"
#include "serve/serve.h"

namespace fs = std::filesystem;
using namespace attnscope;
using Clock = std::chrono::steady_clock;

namespace {

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[static_cast<size_t>(std::min<double>(v.size() - 1, p / 100.0 * static_cast<double>(v.size())))];
}

std::string make_model(const std::string& dir, int64_t layers, int64_t hidden, int64_t heads) {
  auto c = models::default_config("roberta");
  const auto tok_dir = std::string(ATTNSCOPE_SOURCE_DIR) + "/tests/fixtures/chemberta-zinc-base-v1-tokenizer";
  c.vocab_size = 767;
  c.num_hidden_layers = layers;
  c.hidden_size = hidden;
  c.num_attention_heads = heads;
  c.intermediate_size = 4 * hidden;
  c.num_labels = 1;
  c.problem_type = "regression";
  auto m = models::build_hf_model(c, "RobertaForSequenceClassification");
  fs::remove_all(dir);
  models::export_hf_model(m.module(), c, m.architecture, tok_dir, dir);
  return dir;
}

void run_shape(const char* name, const std::string& model, int requests, int clients, int threads) {
  serve::ServeOptions o;
  o.model = model;
  o.port = 0;
  o.threads = threads;
  o.queue = 256;
  serve::Server server(o);
  const int port = server.bind();
  std::thread t([&] { server.run(); });

  // the input: of the candidates, the one whose token count is closest to 40
  const std::vector<std::string> candidates = {
      "CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1", "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",
      "COc1ccc2[nH]cc(CCNC(C)=O)c2c1", "CC(C)NCC(O)COc1cccc2ccccc12", "Clc1ccc(cc1)C(c1ccccc1)N1CCN(CC1)CCOCC(=O)O",
      "CCN(CC)CCNC(=O)c1ccc(N)cc1", "O=C(O)c1ccccc1Nc1cccc(c1)C(F)(F)F", "CC1=C(C(=O)Nc2ccccn2)N(C)S(=O)(=O)c2ccccc12",
      "CC(=O)Nc1ccc(O)cc1", "COC(=O)C1=C(C)NC(C)=C(C1c1cccc(c1)[N+]([O-])=O)C(=O)OCCN(C)Cc1ccccc1"};
  std::string input;
  int64_t best = 1 << 30, tokens = 0;
  for (const auto& s : candidates) {
    const auto a = server.explorer().attention({{"input", s}});
    const int64_t n = a["length"];
    if (std::abs(n - 40) < best) best = std::abs(n - 40), input = s, tokens = n;
  }
  // distinct inputs: random SMILES of the same molecule (RDKit), so that no answer comes from the cache
  std::mt19937_64 rng(7);
  std::set<std::string> seen;
  std::vector<std::string> distinct;
  double distinct_tokens = 0;
  for (int tries = 0; static_cast<int>(distinct.size()) < requests && tries < 100 * requests; ++tries) {
    const auto r = data::randomized_smiles(input, rng);
    if (!seen.insert(r).second) continue;
    distinct.push_back(nlohmann::json{{"input", r}}.dump());
    if (distinct.size() <= 50) distinct_tokens += server.explorer().attention({{"input", r}})["length"].get<double>();
  }
  distinct_tokens /= static_cast<double>(std::min<size_t>(50, distinct.size()));
  const std::string body = nlohmann::json{{"input", input}}.dump();

  // reference: the request's work alone (no HTTP, no concurrency)
  std::vector<double> direct;
  for (int i = 0; i < 50; ++i) {
    const auto t0 = Clock::now();
    (void)server.explorer().attention({{"input", input}});
    direct.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }

  std::printf("%-6s %s: %d requests, %d clients, %d workers; molecule %s (%lld tokens)\n", name, model.c_str(), requests,
              clients, threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency()), input.c_str(),
              static_cast<long long>(tokens));
  std::printf("       reference (one Explorer::attention call, no HTTP, idle server): p50 %.1f ms\n", pct(direct, 50));
  const auto load = [&](const char* what, const std::function<const std::string&(int)>& body_of) {
    std::atomic<int> next{0}, errors{0};
    std::vector<std::vector<double>> lat(static_cast<size_t>(clients));
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int c = 0; c < clients; ++c) {
      pool.emplace_back([&, c] {
        httplib::Client cli("127.0.0.1", port);
        cli.set_keep_alive(true);
        cli.set_tcp_nodelay(true);  // as browsers do
        cli.set_read_timeout(60, 0);
        for (int i; (i = next++) < requests;) {
          const auto s = Clock::now();
          const auto res = cli.Post("/api/attention", body_of(i), "application/json");
          const double ms = std::chrono::duration<double, std::milli>(Clock::now() - s).count();
          if (!res || res->status != 200) ++errors;
          lat[static_cast<size_t>(c)].push_back(ms);
        }
      });
    }
    for (auto& th : pool) th.join();
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    std::vector<double> all;
    for (const auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    std::printf("       %-44s p50 %6.1f  p90 %6.1f  p99 %6.1f  max %6.1f ms | %5.0f requests/s | errors %d\n", what,
                pct(all, 50), pct(all, 90), pct(all, 99), pct(all, 100), static_cast<double>(all.size()) / wall, errors.load());
  };
  char label[120];
  std::snprintf(label, sizeof label, "distinct inputs (random SMILES, %.0f tokens):", distinct_tokens);
  load(label, [&](int i) -> const std::string& { return distinct[static_cast<size_t>(i) % distinct.size()]; });
  load("one input repeated (answers cached after the 1st):", [&](int) -> const std::string& { return body; });
  server.stop();
  t.join();
}

}  // namespace

int main(int argc, char** argv) {
  attnscope::configure_process(argv);  // as the attnscope executable (core/process.h)
  CLI::App app{"Load test of attnscope serve (loopback only)"};
  int requests = 1000, clients = 16, threads = 0;
  std::string shape = "both";
  app.add_option("--requests", requests);
  app.add_option("--clients", clients);
  app.add_option("--threads", threads, "inference workers (0: the cores)");
  app.add_option("--shape", shape)->check(CLI::IsMember({"small", "zinc", "both"}));
  CLI11_PARSE(app, argc, argv);
  const fs::path tmp = fs::temp_directory_path() / ("attnscope-serve-bench-" + std::to_string(::getpid()));
  if (shape != "zinc") run_shape("small", make_model((tmp / "small").string(), 4, 256, 8), requests, clients, threads);
  if (shape != "small") run_shape("zinc", make_model((tmp / "zinc").string(), 6, 768, 12), requests, clients, threads);
  fs::remove_all(tmp);
  return 0;
}
