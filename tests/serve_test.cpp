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
  o.header_timeout_s = 1;
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
  post(r, "/api/attention", {{"input", "CCO"}}, 200);
  const int64_t after = rss_kib();
  EXPECT_LT(after - before, 64 * 1024) << "resident memory grew from " << before << " KiB to " << after << " KiB";
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

TEST(Serve, BadModelIsAUsageError) {
  serve::ServeOptions o = options("/nonexistent/model");
  EXPECT_THROW(serve::Server s(o), UsageError);
  o = options(kMlm);
  o.input = "images";
  EXPECT_THROW(serve::Server s(o), UsageError);
}

}  // namespace
}  // namespace attnscope
