// attnscope serve: the JSON API against a direct forward of the same model, and the server under
// bad input (malformed JSON, a 100 MB body, 1,000 idle connections, a 100,000-character input, a
// path out of the root, a full queue): each answered with a status and a message, the server
// still serving afterwards, its memory bounded.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <sstream>
#include <fstream>
#include <future>
#include <thread>

#include <nlohmann/json.hpp>

#include "hooks/hooks.h"
#include "models/models.h"
#include "serve/serve.h"
#include "test_util.h"

namespace attnscope {
namespace {
using nlohmann::json;

const std::string kMlm = std::string(ATTNSCOPE_SOURCE_DIR) + "/tests/fixtures/hf-roberta-tiny/roberta-tiny-mlm";
const std::string kBertCls = std::string(ATTNSCOPE_SOURCE_DIR) + "/tests/fixtures/hf-bert-tiny/bert-tiny-classification";
const std::string kGpt2 = std::string(ATTNSCOPE_SOURCE_DIR) + "/tests/fixtures/hf-gpt2-tiny/gpt2-tiny-lm";

// A server on a free loopback port, serving on its own thread.
struct Running {
  explicit Running(serve::ServeOptions o) : server(std::move(o)) {
    port = server.bind();
    thread = std::thread([this] { server.run(); });
  }
  ~Running() {
    server.stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(30, 0);
    return c;
  }
  serve::Server server;
  int port = 0;
  std::thread thread;
};

serve::ServeOptions options(const std::string& model) {
  serve::ServeOptions o;
  o.model = model;
  o.port = 0;
  o.threads = 2;
  o.request_timeout_s = 1;
  return o;
}

json post(const Running& r, const std::string& path, const json& body, int expect) {
  auto c = r.client();
  const auto res = c.Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(res) << path;
  if (!res) return nullptr;
  EXPECT_EQ(res->status, expect) << path << ": " << res->body;
  return json::parse(res->body, nullptr, false);
}

int64_t rss_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return 0;
}

// The server still answers `input`, and its resident memory is within 64 MB of `before` (KiB).
void expect_serving_within_64mb(const Running& r, int64_t before, const std::string& input = "CCO") {
  post(r, "/api/attention", {{"input", input}}, 200);
  const int64_t after = rss_kib();
  EXPECT_LT(after - before, 64 * 1024) << "resident memory grew from " << before << " KiB to " << after << " KiB";
}

int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One response the server sends on `fd` (head and Content-Length bytes of body; or what came
// before it closed, or before `seconds` passed).
std::string read_all(int fd, int seconds) {
  timeval tv{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
    out.append(buf, static_cast<size_t>(n));
    const auto end = out.find("\r\n\r\n");
    const auto cl = out.find("Content-Length: ");
    if (end != std::string::npos && cl != std::string::npos && cl < end &&
        out.size() >= end + 4 + std::stoull(out.substr(cl + 16))) {
      break;
    }
  }
  return out;
}

TEST(Serve, AttentionEqualsADirectForward) {
  Running r(options(kMlm));
  auto c = r.client();
  const auto info_res = c.Get("/api/info");
  ASSERT_TRUE(info_res);
  const auto info = json::parse(info_res->body);
  EXPECT_EQ(info["input"], "smiles");
  EXPECT_EQ(info["head"], "masked_lm");
  EXPECT_EQ(info["layers"], 2);
  EXPECT_EQ(info["heads"], 4);

  const json a = post(r, "/api/attention", {{"input", "CC(=O)Oc1ccccc1"}, {"encoding", "float"}}, 200);
  const int64_t L = a["layers"], H = a["heads"], T = a["length"];
  const auto maps = a["maps"].get<std::vector<double>>();
  ASSERT_EQ(static_cast<int64_t>(maps.size()), L * H * T * T);

  // the same input through the model directly
  auto m = models::load_model(kMlm);
  m.hf.model->eval();
  const auto enc = m.tok().encode_pair("CC(=O)Oc1ccccc1", nullptr, 0);
  ASSERT_EQ(static_cast<int64_t>(enc.ids.size()), T);
  EXPECT_EQ(a["ids"].get<std::vector<int64_t>>(), enc.ids);
  models::Taps taps;
  taps.request(models::site::kAttnProbs);
  torch::NoGradGuard ng;
  const auto ids = torch::tensor(enc.ids).view({1, T});
  (void)m.hf.model->forward(ids, torch::ones_like(ids), &taps);
  for (int64_t l = 0; l < L; ++l) {
    const auto p = taps.get(models::site::kAttnProbs, l)[0].contiguous();
    for (int64_t i = 0; i < H * T * T; ++i) {
      ASSERT_NEAR(maps[static_cast<size_t>(l * H * T * T + i)], p.data_ptr<float>()[i], 1e-6) << "layer " << l << " element " << i;
    }
  }
  // per-head metrics and classes for every head; importance sums to 1
  ASSERT_EQ(a["metrics"].size(), 2u);
  EXPECT_EQ(a["metrics"][0].size(), 4u);
  EXPECT_EQ(a["patterns"][1].size(), 4u);
  double sum = 0;
  for (double v : a["importance"]["rollout"].get<std::vector<double>>()) sum += v;
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_TRUE(a["importance"]["flow"].is_null()) << "flow only when asked for";
  // attention flow on request: as the analysis computes it from the same maps
  const json fl = post(r, "/api/attention", {{"input", "CC(=O)Oc1ccccc1"}, {"encoding", "float"}, {"flow", true}}, 200);
  {
    std::vector<torch::Tensor> per_layer;
    for (int64_t l = 0; l < L; ++l) per_layer.push_back(taps.get(models::site::kAttnProbs, l));
    const auto want = hooks::token_importance_flow(torch::stack(per_layer, 1), torch::tensor({T}))[0];
    const auto got = fl["importance"]["flow"].get<std::vector<double>>();
    ASSERT_EQ(static_cast<int64_t>(got.size()), T);
    for (int64_t t = 0; t < T; ++t) EXPECT_NEAR(got[static_cast<size_t>(t)], want[t].item<double>(), 1e-6) << t;
  }
  post(r, "/api/attention", {{"input", "CCO"}, {"flow", "yes"}}, 400);

  // u8 maps: the same within 1/255
  const json q = post(r, "/api/attention", {{"input", "CC(=O)Oc1ccccc1"}}, 200);
  EXPECT_EQ(q["encoding"], "u8");
  EXPECT_EQ(q["maps"].get<std::string>().size(), static_cast<size_t>((L * H * T * T + 2) / 3 * 4));

  // masked-LM top-5 at <mask>: transformers' fill-mask (softmax over the vocabulary at the mask)
  const json mk = post(r, "/api/attention", {{"input", "CC(=O)O<mask>1ccccc1"}}, 200);
  ASSERT_EQ(mk["masks"].size(), 1u);
  const int64_t pos = mk["masks"][0]["position"];
  const auto enc2 = m.tok().encode_pair("CC(=O)O<mask>1ccccc1", nullptr, 0);
  const auto ids2 = torch::tensor(enc2.ids).view({1, -1});
  const auto probs = torch::softmax(m.hf.model->forward(ids2, torch::ones_like(ids2))[0][pos].to(torch::kDouble), 0);
  const auto top = probs.topk(5);
  for (int64_t k = 0; k < 5; ++k) {
    EXPECT_EQ(mk["masks"][0]["top"][k]["id"].get<int64_t>(), std::get<1>(top)[k].item<int64_t>());
    EXPECT_NEAR(mk["masks"][0]["top"][k]["probability"].get<double>(), std::get<0>(top)[k].item<double>(), 1e-9);
  }

  // the molecule drawing: an SVG
  const auto svg = c.Post("/api/molecule", json{{"input", "CCO"}, {"layer", 1}, {"head", 3}}.dump(), "application/json");
  ASSERT_TRUE(svg);
  EXPECT_EQ(svg->status, 200);
  EXPECT_NE(svg->body.find("<svg"), std::string::npos);
  EXPECT_EQ(svg->get_header_value("Content-Type"), "image/svg+xml");
}

TEST(Serve, TextFamiliesPredictionsAndNextTokens) {
  {
    Running r(options(kBertCls));
    const json a = post(r, "/api/attention", {{"input", "the cat sat"}, {"pair", "on the mat"}}, 200);
    EXPECT_EQ(a["tokens"][0], "[CLS]");
    EXPECT_EQ(a["type_ids"].back(), 1);
    ASSERT_TRUE(a["prediction"].is_object());
    double sum = 0;
    for (const auto& o : a["prediction"]["outputs"]) sum += o["probability"].get<double>();
    EXPECT_NEAR(sum, 1.0, 1e-9);
    const json p = post(r, "/api/predict", {{"inputs", {"a dog", "a cat"}}}, 200);
    EXPECT_EQ(p["results"].size(), 2u);
  }
  {
    Running r(options(kGpt2));
    const json a = post(r, "/api/attention", {{"input", "Hello world, hello"}}, 200);
    EXPECT_TRUE(a["causal"].get<bool>());
    EXPECT_EQ(a["next_token"].size(), 5u);
    std::string joined;
    for (const auto& t : a["tokens"]) joined += t.get<std::string>();
    EXPECT_EQ(joined, "Hello world, hello");  // byte-level BPE shown readably (Ġ as a space)
    const auto metrics = a["metrics"];
    EXPECT_EQ(metrics.size(), 2u);
    // an emoji is split into byte-level tokens that are not whole UTF-8 characters: U+FFFD, not a 500
    post(r, "/api/attention", {{"input", "I \xF0\x9F\x98\x80 it"}}, 200);
  }
}

TEST(Serve, BadRequestsGetAStatusAndAMessage) {
  Running r(options(kMlm));
  auto c = r.client();
  const auto expect_error = [&](const httplib::Result& res, int status, const std::string& says) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    const auto j = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << res->body;
    EXPECT_NE(j.value("error", std::string()).find(says), std::string::npos) << res->body;
  };
  expect_error(c.Post("/api/attention", "{\"input\": ", "application/json"), 400, "malformed JSON");
  expect_error(c.Post("/api/attention", "[1,2]", "application/json"), 400, "JSON object");
  expect_error(c.Post("/api/attention", "{}", "application/json"), 400, "\"input\"");
  expect_error(c.Post("/api/attention", json{{"input", "   "}}.dump(), "application/json"), 400, "empty");
  expect_error(c.Post("/api/attention", json{{"input", "C1CC(("}}.dump(), "application/json"), 400, "not a valid SMILES");
  expect_error(c.Post("/api/attention", json{{"input", std::string(100000, 'C')}}.dump(), "application/json"), 400,
               "100000 characters");
  {
    std::string chain = "C";  // 200 atoms with branches: a valid SMILES of more tokens than 128 positions
    for (int i = 0; i < 100; ++i) chain += "C(N)";
    expect_error(c.Post("/api/attention", json{{"input", chain}}.dump(), "application/json"), 400, "reads at most");
  }
  expect_error(c.Post("/api/attention", json{{"input", "CCO"}, {"checkpoint", "../../etc/passwd"}}.dump(), "application/json"),
               400, "no checkpoint");
  expect_error(c.Post("/api/molecule", json{{"input", "CCO"}, {"layer", 7}}.dump(), "application/json"), 400, "\"layer\"");
  expect_error(c.Get("/../../etc/passwd"), 404, "no such page");
  expect_error(c.Get("/%2e%2e/%2e%2e/etc/passwd"), 404, "no such page");
  expect_error(c.Get("/report"), 404, "no recorded report");

  // a raw request line out of the root, as a browser never sends it
  const int fd = connect_loopback(r.port);
  ASSERT_GE(fd, 0);
  const std::string raw = "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL), static_cast<ssize_t>(raw.size()));
  const std::string answer = read_all(fd, 5);
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 404", 0), 0u) << answer.substr(0, 200);
  EXPECT_EQ(answer.find("root:"), std::string::npos);
  post(r, "/api/attention", {{"input", "CCO"}}, 200);  // still serving
}

TEST(Serve, HugeBodyAndIdleConnectionsLeaveItServingWithBoundedMemory) {
  auto o = options(kMlm);
  o.connection_threads = 2;  // a queue of 16 connections with a request waiting: the idle burst must not take it
  Running r(o);
  post(r, "/api/attention", {{"input", "CCO"}}, 200);
  const int64_t before = rss_kib();
  const auto tick = [t = std::chrono::steady_clock::now()](const char* what) {
    std::cout << what << " after " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count() << " s\n";
  };

  // a 100 MB body, streamed: 413, and the server does not hold it
  {
    const int fd = connect_loopback(r.port);
    ASSERT_GE(fd, 0);
    const int64_t size = 100LL << 20;
    const std::string head = "POST /api/attention HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                             std::to_string(size) + "\r\n\r\n";
    ASSERT_GT(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), 0);
    const std::string chunk(1 << 16, ' ');
    std::atomic<bool> stop{false};
    std::thread sender([&] {
      for (int64_t sent = 0; sent < size && !stop;) {
        const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += n;
      }
    });
    const std::string answer = read_all(fd, 60);
    stop = true;
    ::shutdown(fd, SHUT_RDWR);
    sender.join();
    ::close(fd);
    EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer.substr(0, 300);
    EXPECT_NE(answer.find("larger than the limit"), std::string::npos) << answer.substr(0, 300);
  }
  tick("100 MB body answered");
  post(r, "/api/attention", {{"input", "CCO"}}, 200);

  // 1,000 connections that send nothing: each gets 408 after the header timeout (1 s here), none
  // holds a thread or a queue slot meanwhile (a request on a new connection is answered while they
  // wait)
  std::vector<int> idle;
  for (int i = 0; i < 1000; ++i) {
    const int fd = connect_loopback(r.port);
    if (fd >= 0) idle.push_back(fd);
  }
  ASSERT_EQ(idle.size(), 1000u);
  tick("1000 connections open");
  const auto t0 = std::chrono::steady_clock::now();
  post(r, "/api/attention", {{"input", "c1ccccc1"}}, 200);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0.9)
      << "a request waited behind the idle connections";
  int answered = 0;
  for (int fd : idle) {
    const std::string a = read_all(fd, 10);
    answered += a.rfind("HTTP/1.1 408", 0) == 0;
    ::close(fd);
  }
  EXPECT_EQ(answered, 1000);
  tick("1000 idle connections answered");
  expect_serving_within_64mb(r, before);
}

TEST(Serve, AFullQueueAnswers503WithRetryAfter) {
  auto o = options(kMlm);
  o.threads = 1;
  o.queue = 1;
  Running r(o);
  const json body = {{"input", std::string(60, 'C') + "c1ccccc1" + std::string(50, 'C')}};
  std::vector<std::future<std::pair<int, std::string>>> answers;
  for (int i = 0; i < 48; ++i) {
    answers.push_back(std::async(std::launch::async, [&] {
      auto c = r.client();
      const auto res = c.Post("/api/attention", body.dump(), "application/json");
      return res ? std::make_pair(res->status, res->get_header_value("Retry-After"))
                 : std::make_pair(-1, httplib::to_string(res.error()));
    }));
  }
  int ok = 0, busy = 0;
  for (auto& f : answers) {
    const auto [status, retry] = f.get();
    if (status == 200) ++ok;
    if (status == 503) {
      ++busy;
      EXPECT_EQ(retry, "1");
    }
    EXPECT_TRUE(status == 200 || status == 503) << status << " " << retry;
  }
  std::cout << ok << " answered, " << busy << " busy\n";
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy, 1) << "48 simultaneous requests for one worker and a queue of one were all served";
  post(r, "/api/attention", {{"input", "CCO"}}, 200);
}

TEST(Serve, MinMaxRunAnswersWithTheMechanismsMaps) {
  const std::string dir = ::testing::TempDir() + "/serve_minmax";
  std::filesystem::remove_all(dir);
  ASSERT_EQ(testing::run_cli(testing::small_minmax(dir, 30)), 0);
  Running r(options(dir));
  const json a = post(r, "/api/attention", {{"input", "3 max 17"}, {"encoding", "float"}}, 200);
  EXPECT_EQ(a["tokens"], json({"3", "max", "17", "="}));
  EXPECT_EQ(a["layers"], 1);
  EXPECT_EQ(a["prediction"]["expected"], "17");
  EXPECT_EQ(a["prediction"]["top"].size(), 5u);
  const auto maps = a["maps"].get<std::vector<double>>();
  EXPECT_EQ(maps.size(), static_cast<size_t>(a["heads"].get<int64_t>() * 16));
  for (size_t row = 0; row < maps.size() / 4; ++row) {
    double sum = 0;
    for (size_t k = 0; k < 4; ++k) sum += maps[row * 4 + k];
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  post(r, "/api/attention", {{"input", "3 plus 17"}}, 400);
  post(r, "/api/attention", {{"input", "99 max 1"}}, 400);  // 32 numbers
  auto c = r.client();
  const auto report = c.Get("/report");
  ASSERT_TRUE(report);
  EXPECT_EQ(report->status, 200);
  EXPECT_NE(report->body.find("<html"), std::string::npos);
}

// A ChemBERTa run directory: its kept checkpoints on offer, each answering with its own weights.
TEST(Serve, RunDirectoryOffersItsCheckpoints) {
  const std::string dir = ::testing::TempDir() + "/serve_run";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ifstream in(testing::source_path("data/esol/delaney-processed.csv"));
  std::string csv, line;
  for (int i = 0; i < 121 && std::getline(in, line); ++i) csv += line + "\n";
  testing::write_text(dir + "/esol.csv", csv);
  ASSERT_EQ(testing::run_cli({"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", dir + "/run", "--set",
                              "data.csv=" + dir + "/esol.csv", "model.n_layers=1", "model.d_model=32", "model.n_heads=4",
                              "model.d_ff=64", "train.epochs=3", "train.keep_every=1", "run.threads=1",
                              "train.progress=none", "run.log_level=warn", "data.split=random"}),
            0);
  Running r(options(dir + "/run"));
  auto c = r.client();
  const auto info = json::parse(c.Get("/api/info")->body);
  EXPECT_EQ(info["input"], "smiles");
  EXPECT_TRUE(info["report"].get<bool>());
  std::vector<std::string> names;
  for (const auto& k : info["checkpoints"]) names.push_back(k["name"]);
  ASSERT_GE(names.size(), 4u) << "epoch-000001..3.pt, best.pt, last.pt";
  EXPECT_EQ(names[0], "epoch-000001.pt");
  const json first = post(r, "/api/attention", {{"input", "CCO"}, {"checkpoint", "epoch-000001.pt"}, {"encoding", "float"}}, 200);
  const json last = post(r, "/api/attention", {{"input", "CCO"}, {"checkpoint", "last.pt"}, {"encoding", "float"}}, 200);
  EXPECT_EQ(first["epoch"], 1);
  EXPECT_EQ(last["epoch"], 3);
  EXPECT_NE(first["maps"], last["maps"]) << "two checkpoints, the same attention";
  EXPECT_EQ(last["prediction"]["problem"], "regression");
  const auto report = c.Get("/report");
  ASSERT_TRUE(report);
  EXPECT_EQ(report->status, 200);
}

// ---------------------------------------------------------------------------------------------
// Hostile HTTP: each case of issue 33, the server answering every one with a status and the
// documented JSON, still serving afterwards, its memory bounded.

// Sends `bytes` on a new connection and reads what comes back until the server closes or
// `seconds` pass (a bound on a failure, not a wait: the server answers or closes at once).
std::vector<std::pair<int, std::string>> responses(const std::string& wire);

// Sends `bytes` on a new connection and reads until `expect` whole responses have come back or the
// server closes (`seconds`: a bound on a failure, not a wait).
std::string roundtrip(int port, const std::string& bytes, size_t expect = 1, bool half_close = false, int seconds = 10) {
  const int fd = connect_loopback(port);
  if (fd < 0) return "";
  (void)!::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  if (half_close) ::shutdown(fd, SHUT_WR);
  timeval tv{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[1 << 16];
  for (ssize_t n; responses(out).size() < expect && (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// The whole responses in `wire`, in order: (status, body).
std::vector<std::pair<int, std::string>> responses(const std::string& wire) {
  std::vector<std::pair<int, std::string>> out;
  size_t at = 0;
  while (at < wire.size()) {
    const size_t end = wire.find("\r\n\r\n", at);
    if (end == std::string::npos || wire.compare(at, 9, "HTTP/1.1 ") != 0) break;
    const int status = std::stoi(wire.substr(at + 9, 3));
    const std::string head = lower(wire.substr(at, end - at));
    const size_t cl = head.find("content-length: ");
    const size_t length = cl == std::string::npos ? 0 : std::stoull(head.substr(cl + 16));
    if (wire.size() < end + 4 + length) break;
    out.emplace_back(status, wire.substr(end + 4, length));
    at = end + 4 + length;
  }
  return out;
}

std::string post_bytes(const std::string& path, const std::string& body, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// The status of the one response in `wire`, and that its body is the documented error JSON
// saying `says`.
void expect_json_error(const std::string& wire, int status, const std::string& says) {
  const auto r = responses(wire);
  ASSERT_GE(r.size(), 1u) << wire.substr(0, 300);
  EXPECT_EQ(r[0].first, status) << r[0].second;
  const auto j = json::parse(r[0].second, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r[0].second;
  EXPECT_EQ(j.value("status", 0), status);
  EXPECT_NE(j.value("error", std::string()).find(says), std::string::npos) << r[0].second;
}

TEST(ServeHostile, DeepNestingCompressedBodiesAndBadNumbersAre400s) {
  auto o = options(kMlm);
  o.cache_mb = 4;
  Running r(o);
  post(r, "/api/attention", {{"input", "CCO"}}, 200);
  const int64_t warm = rss_kib();
  // 1: 200,000 nested arrays (and 150,000 nested objects) under the 1 MiB limit: refused while
  // parsing, never built (copying such a value recursed the stack away)
  expect_json_error(roundtrip(r.port, post_bytes("/api/attention", "{\"input\": " + std::string(200000, '['))), 400, "nests");
  {
    std::string nested;
    for (int i = 0; i < 150000; ++i) nested += "{\"a\":";
    expect_json_error(roundtrip(r.port, post_bytes("/api/molecule", nested)), 400, "nests");
  }
  std::string deep = "0";  // 64 levels is the limit, 65 is refused
  for (int i = 0; i < 63; ++i) deep = "[" + deep + "]";
  expect_json_error(roundtrip(r.port, post_bytes("/api/attention", "{\"x\": " + deep + "}")), 400, "\"input\"");
  expect_json_error(roundtrip(r.port, post_bytes("/api/attention", "{\"x\": [" + deep + "]}")), 400, "nests");
  // 2: a compressed body is refused before it is read (its inflated size is unbounded)
  expect_json_error(roundtrip(r.port, post_bytes("/api/attention", std::string(50000, '\x1f'), "Content-Encoding: gzip\r\n")),
                    415, "uncompressed");
  // 8: numbers the parser cannot hold, and values of the wrong kind, named as sent
  expect_json_error(roundtrip(r.port, post_bytes("/api/attention", "{\"input\": \"CCO\", \"layer\": 1e99999}")), 400, "out of range");
  expect_json_error(roundtrip(r.port, post_bytes("/api/attention", "{\"input\": \"CCO\", \"layer\": " + std::string(400, '9') + "}")),
                    400, "out of range");
  expect_json_error(roundtrip(r.port, post_bytes("/api/molecule", "{\"input\": \"CCO\", \"query\": 18446744073709551615}")), 400,
                    "18446744073709551615");
  expect_json_error(roundtrip(r.port, post_bytes("/api/molecule", "{\"input\": \"CCO\", \"query\": -3}")), 400, "-3");
  expect_json_error(roundtrip(r.port, post_bytes("/api/predict", "{\"inputs\": \"abc\"}")), 400, "must be an array");
  // 12: invalid UTF-8 in an input is refused where it is read, naming the byte
  expect_json_error(roundtrip(r.port, post_bytes("/api/attention", "{\"input\": \"CC\xff\"}")), 400, "UTF-8");
  expect_json_error(roundtrip(r.port, post_bytes("/api/attention", "{\"input\": \"CC\\udc00\"}")), 400, "surrogate");
  expect_json_error(roundtrip(r.port, post_bytes("/api/attention", json{{"input", std::string(2000, 'C')}}.dump())), 400,
                    "longer than 1000");
  // framing: both lengths, two lengths, a bad length, a huge head, an unknown coding
  expect_json_error(roundtrip(r.port, post_bytes("/api/attention", "{}", "Transfer-Encoding: chunked\r\n")), 400, "both");
  expect_json_error(roundtrip(r.port, post_bytes("/api/attention", "{}", "Content-Length: 7\r\n")), 400, "two different");
  expect_json_error(roundtrip(r.port, "POST /api/attention HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400, "byte count");
  expect_json_error(roundtrip(r.port, "GET /api/info HTTP/1.1\r\nX-Big: " + std::string(100000, 'a') + "\r\n\r\n"), 431, "head");
  expect_json_error(roundtrip(r.port, "POST /api/info HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), 501, "chunked");
  expect_json_error(roundtrip(r.port, post_bytes("/api/attention", std::string(2 << 20, ' '))), 413, "larger than the limit");
  // a chunked body, whole, is answered; one over the limit is refused as soon as its size says so
  {
    const std::string body = json{{"input", "CCO"}}.dump();
    std::ostringstream hex;
    hex << std::hex << body.size();
    const auto r2 = responses(roundtrip(r.port, "POST /api/attention HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
                                                  hex.str() + "\r\n" + body + "\r\n0\r\n\r\n"));
    ASSERT_EQ(r2.size(), 1u);
    EXPECT_EQ(r2[0].first, 200) << r2[0].second;
    expect_json_error(roundtrip(r.port, "POST /api/attention HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n"), 413,
                      "larger than the limit");
  }
  // 8: a Range (satisfiable or not, well-formed or not) is ignored: the whole answer (it was a 416
  // with an empty body)
  for (const char* range : {"bytes=999999-", "bytes=abc", "bytes=0-3"}) {
    const auto r3 = responses(roundtrip(r.port, std::string("GET /api/info HTTP/1.1\r\nHost: x\r\nRange: ") + range +
                                                    "\r\nConnection: close\r\n\r\n"));
    ASSERT_EQ(r3.size(), 1u);
    EXPECT_EQ(r3[0].first, 200) << range;
    EXPECT_EQ(json::parse(r3[0].second, nullptr, false).value("input", ""), "smiles") << r3[0].second;
  }
  // answers go uncompressed whatever the client accepts (brotli of the 5 MB page took 16 s)
  {
    const std::string wire = roundtrip(r.port, "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: close\r\n\r\n");
    const auto page = responses(wire);
    ASSERT_EQ(page.size(), 1u);
    EXPECT_EQ(page[0].first, 200);
    EXPECT_EQ(lower(wire.substr(0, wire.find("\r\n\r\n"))).find("content-encoding"), std::string::npos);
    EXPECT_NE(page[0].second.find("<html"), std::string::npos);
  }
  // a client that reads slowly (a small receive buffer) behind pipelined requests: every response
  // whole, heads included, in order (the socket takes each write in pieces)
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    const int small = 4096;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(r.port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    const std::string three = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /api/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    (void)!::send(fd, three.data(), three.size(), MSG_NOSIGNAL);
    timeval tv{30, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string wire;
    char buf[1024];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) wire.append(buf, static_cast<size_t>(n));
    ::close(fd);
    const auto got = responses(wire);
    ASSERT_EQ(got.size(), 3u) << wire.size() << " bytes";
    EXPECT_EQ(got[0].second, got[1].second);
    EXPECT_NE(got[1].second.find("</html>"), std::string::npos);
    EXPECT_EQ(json::parse(got[2].second, nullptr, false).value("input", ""), "smiles");
  }
  // 7: four requests sent at once on one connection get four answers, in order
  {
    std::string four;
    for (const char* in : {"CCO", "c1ccccc1", "CC(=O)O", "CCN"}) four += post_bytes("/api/attention", json{{"input", in}}.dump());
    four += "GET /api/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    const auto got = responses(roundtrip(r.port, four, 5));
    ASSERT_EQ(got.size(), 5u);
    const char* inputs[] = {"CCO", "c1ccccc1", "CC(=O)O", "CCN"};
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(got[i].first, 200);
      EXPECT_EQ(json::parse(got[i].second)["input"], inputs[i]);
    }
    EXPECT_EQ(json::parse(got[4].second)["input"], "smiles");
    // sent, then half-closed: still answered
    const auto half = responses(roundtrip(r.port, post_bytes("/api/attention", json{{"input", "CCO"}}.dump()), 1, true));
    ASSERT_EQ(half.size(), 1u);
    EXPECT_EQ(half[0].first, 200);
  }
  // Expect: 100-continue is answered before the body is sent
  {
    const int fd = connect_loopback(r.port);
    const std::string body = json{{"input", "CCO"}}.dump();
    const std::string head = "POST /api/attention HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n";
    (void)!::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "HTTP/1.1 100 Continue\r\n\r\n");
    (void)!::send(fd, body.data(), body.size(), MSG_NOSIGNAL);
    std::string rest;
    for (ssize_t k; (k = ::recv(fd, buf, sizeof buf, 0)) > 0;) rest.append(buf, static_cast<size_t>(k));
    ::close(fd);
    const auto got = responses(rest);
    ASSERT_EQ(got.size(), 1u) << rest.substr(0, 200);
    EXPECT_EQ(got[0].first, 200);
  }
  expect_serving_within_64mb(r, warm);
}

// 4: slow senders never hold the threads that answer others, and a request is cut when it is not
// whole within the request timeout however steadily its bytes drip.
TEST(ServeHostile, SlowSendersAreCutAndBlockNoOne) {
  auto o = options(kMlm);
  o.connection_threads = 2;
  o.request_timeout_s = 1;
  Running r(o);
  std::vector<int> heads, bodies;
  for (int i = 0; i < 40; ++i) heads.push_back(connect_loopback(r.port));
  for (int i = 0; i < 50; ++i) bodies.push_back(connect_loopback(r.port));
  const std::string head = "POST /api/attention HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
  for (int fd : bodies) (void)!::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  for (int fd : heads) (void)!::send(fd, "GET /api/info HTTP/1.1\r\n", 24, MSG_NOSIGNAL);
  // one byte to every connection every 50 ms (header lines "X: y" to the heads) until each has
  // its answer
  std::atomic<bool> stop{false};
  std::thread drip([&] {
    for (size_t k = 0; !stop; ++k) {
      for (int fd : heads) (void)!::send(fd, "X: y\r\n" + (k % 6), 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      for (int fd : bodies) (void)!::send(fd, " ", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  // others are answered meanwhile
  auto c = r.client();
  c.set_read_timeout(20, 0);
  for (int i = 0; i < 3; ++i) {
    const auto res = c.Post("/api/attention", json{{"input", "CCO"}}.dump(), "application/json");
    ASSERT_TRUE(res) << "a request waited behind the slow senders";
    EXPECT_EQ(res->status, 200);
  }
  int cut = 0;
  for (int fd : heads) cut += read_all(fd, 20).rfind("HTTP/1.1 408", 0) == 0;
  for (int fd : bodies) cut += read_all(fd, 20).rfind("HTTP/1.1 408", 0) == 0;
  stop = true;
  drip.join();
  for (int fd : heads) ::close(fd);
  for (int fd : bodies) ::close(fd);
  EXPECT_EQ(cut, 90) << "every dripping request gets 408 at its deadline";
  post(r, "/api/attention", {{"input", "CCO"}}, 200);
}

// 3 and 9: a port in use, and options out of range, are refused naming them (exit 2).
TEST(ServeHostile, PortInUseAndBadOptionsAreUsageErrors) {
  Running first(options(kMlm));
  auto o = options(kMlm);
  o.port = first.port;
  serve::Server second(o);
  try {
    second.bind();
    FAIL() << "a second server bound port " << first.port;
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(":" + std::to_string(first.port)), std::string::npos) << e.what();
  }
  auto bad = options(kMlm);
  bad.port = 70000;
  bad.limits.max_input_chars = -5;
  bad.cache_mb = -1;
  try {
    serve::Server s(bad);
    FAIL() << "out-of-range options started a server";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("--port 70000"), std::string::npos) << what;
    EXPECT_NE(what.find("--max-input-chars -5"), std::string::npos) << what;
    EXPECT_NE(what.find("--cache-mb -1"), std::string::npos) << what;
  }
  bad = options(kMlm);
  bad.limits.max_input_chars = 0;
  EXPECT_THROW(serve::Server s(bad), UsageError);
  // the command: exit 2, the port named
  const std::string err_file = ::testing::TempDir() + "/serve_port_err.txt";
  EXPECT_EQ(testing::wait_exit(testing::spawn({"serve", kMlm, "--port", std::to_string(first.port)}, {}, err_file)), kExitUsage);
  std::string err = testing::read_file_text(err_file);
  EXPECT_NE(err.find(std::to_string(first.port)), std::string::npos) << err;
  EXPECT_EQ(testing::wait_exit(testing::spawn({"serve", kMlm, "--port", "70000"}, {}, err_file)), kExitUsage);
  err = testing::read_file_text(err_file);
  EXPECT_NE(err.find("--port 70000"), std::string::npos) << err;
  post(first, "/api/attention", {{"input", "CCO"}}, 200);  // the first one still answers, alone
}

// 6 and 10: a min/max run's kept checkpoints on offer, an unknown one refused; the report built
// once into a file and streamed, the server's memory bounded over repeated requests.
TEST(ServeHostile, MinMaxCheckpointsAndTheReportFromAFile) {
  const std::string dir = ::testing::TempDir() + "/serve_minmax_ckpt";
  std::filesystem::remove_all(dir);
  auto args = testing::small_minmax(dir, 30);
  args.push_back("train.keep_every=10");
  ASSERT_EQ(testing::run_cli(args), 0);
  auto o = options(dir);
  o.cache_mb = 1;
  Running r(o);
  auto c = r.client();
  const auto info = json::parse(c.Get("/api/info")->body);
  std::vector<std::string> names;
  for (const auto& k : info["checkpoints"]) names.push_back(k["name"]);
  ASSERT_GE(names.size(), 3u) << info["checkpoints"].dump();
  EXPECT_EQ(names[0], "epoch-000010.pt");
  const json early = post(r, "/api/attention", {{"input", "3 max 17"}, {"checkpoint", "epoch-000010.pt"}, {"encoding", "float"}}, 200);
  const json late = post(r, "/api/attention", {{"input", "3 max 17"}, {"encoding", "float"}}, 200);
  EXPECT_EQ(early["checkpoint"], "epoch-000010.pt");
  EXPECT_EQ(early["epoch"], 10);
  EXPECT_NE(early["maps"], late["maps"]) << "the checkpoint asked for did not answer";
  const json batch = post(r, "/api/predict", {{"inputs", {"3 max 17", "4 min 2"}}, {"checkpoint", "epoch-000010.pt"}}, 200);
  EXPECT_EQ(batch["checkpoint"], "epoch-000010.pt");
  for (const char* bad : {"epoch-000250.pt", "../config.yaml", "../../etc/passwd"}) {
    const json e = post(r, "/api/attention", {{"input", "3 max 17"}, {"checkpoint", bad}}, 400);
    EXPECT_NE(e["error"].get<std::string>().find("no checkpoint"), std::string::npos) << e.dump();
  }
  // the report: built once, then streamed; memory afterwards within 64 MB of the warm server's
  const auto first = c.Get("/report");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200);
  EXPECT_NE(first->body.find("<html"), std::string::npos);
  const std::string csp = first->get_header_value("Content-Security-Policy");
  const std::string scripts = csp.substr(csp.find("script-src"), csp.find(';', csp.find("script-src")) - csp.find("script-src"));
  EXPECT_NE(scripts.find("'sha256-"), std::string::npos) << csp;
  EXPECT_EQ(scripts.find("'unsafe-inline'"), std::string::npos) << csp;
  const int64_t warm = rss_kib();
  for (int i = 0; i < 5; ++i) {
    const auto again = c.Get("/report");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->body.size(), first->body.size());
    post(r, "/api/attention", {{"input", std::to_string(i) + " max " + std::to_string(30 - i)}}, 200);
  }
  expect_serving_within_64mb(r, warm, "3 max 5");
}

TEST(Serve, BadModelIsAUsageError) {
  serve::ServeOptions o = options("/nonexistent/model");
  EXPECT_THROW(serve::Server s(o), UsageError);
  o = options(kMlm);
  o.input = "images";
  EXPECT_THROW(serve::Server s(o), UsageError);
}

}  // namespace
}  // namespace attnscope
