// attnscope track (checkpoint series trained anywhere) and attnscope compare (runs side by side).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/models.h"
#include "store/store.h"
#include "test_util.h"

namespace attnscope {
namespace {
namespace fs = std::filesystem;
using testing::run_cli;
using testing::TempDir;

std::string tiny(const std::string& which) { return testing::fixture_path("hf-roberta-tiny/roberta-tiny-" + which); }

// A Hugging Face Trainer output folder: checkpoint-10, -20, -30 of the tiny regression model (the
// fixture, then two deterministic perturbations of every weight, as training would leave them),
// each with its trainer_state.json; the tokenizer files at the top, as Trainer saves them.
std::string trainer_folder(const TempDir& d) {
  const std::string root = d.path("trainer");
  const auto weights = models::read_safetensors(tiny("regression") + "/model.safetensors");
  nlohmann::json log = nlohmann::json::array();
  for (int k = 1; k <= 3; ++k) {
    const int step = 10 * k;
    log.push_back({{"epoch", 0.5 * k}, {"loss", 2.0 / k}, {"learning_rate", 1e-4}, {"step", step}});
    log.push_back({{"epoch", 0.5 * k}, {"eval_loss", 2.5 / k}, {"step", step}});
    const std::string dir = root + "/checkpoint-" + std::to_string(step);
    fs::create_directories(dir);
    fs::copy_file(tiny("regression") + "/config.json", dir + "/config.json");
    std::map<std::string, torch::Tensor> w;
    torch::manual_seed(k);
    for (const auto& [name, t] : weights) w[name] = k == 1 ? t : t + 0.3 * (k - 1) * torch::randn_like(t) * t.std();
    models::write_safetensors(dir + "/model.safetensors", w, {{"format", "pt"}});
    testing::write_text(dir + "/trainer_state.json", nlohmann::json{{"global_step", step}, {"epoch", 0.5 * k}, {"log_history", log}}.dump());
  }
  for (const char* f : {"vocab.json", "merges.txt"}) fs::copy_file(tiny("regression") + "/" + f, root + "/" + f);
  return root;
}

std::string smiles_file(const TempDir& d) {
  testing::write_text(d.path("in.txt"), "CCO\nc1ccccc1O\nCC(=O)Nc1ccc(O)cc1\nCCN(CC)CC\n");
  return d.path("in.txt");
}

// The acceptance test: track over a Trainer folder records three steps equal to three separate
// snapshots (maps and per-head metrics), with the trainer's steps, epochs and losses; render works.
TEST(Track, TrainerFolderEqualsSeparateSnapshotsAndRenders) {
  TempDir d;
  const std::string root = trainer_folder(d);
  ASSERT_EQ(run_cli({"track", root, "--smiles-file", smiles_file(d), "--out", d.path("t")}), 0);
  store::Reader tr(d.path("t/attention.h5"));
  const auto epochs = tr.epochs();
  ASSERT_EQ(epochs.size(), 3u);
  const auto metric_epochs = tr.metric_epochs();
  ASSERT_EQ(metric_epochs.size(), 3u);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(epochs[k].epoch, k);
    EXPECT_EQ(epochs[k].step, 10 * (k + 1));
    const std::string ck = root + "/checkpoint-" + std::to_string(10 * (k + 1));
    // snapshot needs the tokenizer beside the weights: a copy of the checkpoint with it
    const std::string one = d.path("one" + std::to_string(k));
    fs::copy(ck, one);
    for (const char* f : {"vocab.json", "merges.txt"}) fs::copy_file(root + "/" + f, one + "/" + f);
    const std::string h5 = d.path("s" + std::to_string(k) + ".h5");
    ASSERT_EQ(run_cli({"snapshot", "--model", one, "--smiles-file", smiles_file(d), "--out", h5}), 0);
    store::Reader s(h5);
    for (const char* site : {"attn.probs", "attn.scores"}) EXPECT_EQ(tr.map(site, k), s.map(site, 0)) << site << " step " << k;
    for (const auto& m : tr.header().metrics) {
      const auto all = tr.metric(m), one_m = s.metric(m);
      ASSERT_EQ(all.size(), 3 * one_m.size());
      for (size_t i = 0; i < one_m.size(); ++i) {
        if (std::isnan(one_m[i])) EXPECT_TRUE(std::isnan(all[k * one_m.size() + i]));
        else EXPECT_FLOAT_EQ(all[k * one_m.size() + i], one_m[i]) << m;
      }
    }
  }
  EXPECT_NE(tr.map("attn.probs", 0), tr.map("attn.probs", 2)) << "the checkpoints differ";
  const auto state = nlohmann::json::parse(testing::read_file_text(d.path("t/track.json")));
  ASSERT_EQ(state["checkpoints"].size(), 3u);
  EXPECT_EQ(state["checkpoints"][2]["checkpoint"], "checkpoint-30");
  EXPECT_DOUBLE_EQ(state["checkpoints"][2]["train_epoch"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(state["checkpoints"][1]["loss"].get<double>(), 1.0);
  const auto curves = testing::read_lines(d.path("t/metrics.jsonl"));
  ASSERT_EQ(curves.size(), 3u);
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(curves[2])["val_loss"].get<double>(), 2.5 / 3);
  ASSERT_EQ(run_cli({"render", d.path("t")}), 0);
  EXPECT_TRUE(fs::exists(d.path("t/report.html")));
  EXPECT_TRUE(fs::exists(d.path("t/figures/specialisation_timeline.png")));
  ASSERT_EQ(run_cli({"metrics", d.path("t"), "--epoch", "1"}), 0);
  // the output is not overwritten without --force
  EXPECT_EQ(run_cli({"track", root, "--smiles-file", smiles_file(d), "--out", d.path("t")}), 2);
}

// A killed track resumes without redoing recorded checkpoints: two, then all three with --resume,
// equals all three at once; --data puts the per-head metrics over a data set.
TEST(Track, ResumeAndMetricsOverData) {
  TempDir d;
  const std::string root = trainer_folder(d);
  const std::string c10 = root + "/checkpoint-10", c20 = root + "/checkpoint-20", c30 = root + "/checkpoint-30";
  for (const auto& c : {c10, c20, c30}) {
    for (const char* f : {"vocab.json", "merges.txt"}) fs::copy_file(root + "/" + f, c + "/" + f);
  }
  testing::write_text(d.path("data.csv"), "smiles,y\nCCO,1\nCCCC,2\nc1ccccc1,3\nCC(C)O,4\nCCOC(=O)C,5\nOCCO,6\n");
  const std::vector<std::string> common = {"--data", d.path("data.csv"), "--probes", "3"};
  auto track = [&](std::vector<std::string> args, const std::string& out, bool resume) {
    args.insert(args.begin(), "track");
    args.insert(args.end(), common.begin(), common.end());
    args.insert(args.end(), {"--out", out});
    if (resume) args.push_back("--resume");
    return run_cli(args);
  };
  ASSERT_EQ(track({c10, c20}, d.path("a"), false), 0);
  ASSERT_EQ(track({c10, c20, c30}, d.path("a"), true), 0);
  ASSERT_EQ(track({c10, c20, c30}, d.path("b"), false), 0);
  store::Reader a(d.path("a/attention.h5")), b(d.path("b/attention.h5"));
  ASSERT_EQ(a.epochs().size(), 3u);
  EXPECT_EQ(a.probes().count, 3);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(a.map("attn.probs", k), b.map("attn.probs", k)) << k;
  EXPECT_EQ(a.metric("entropy_norm"), b.metric("entropy_norm"));
  EXPECT_EQ(a.analysis("js_prev", 2), b.analysis("js_prev", 2)) << "the change from the previous checkpoint, across the resume";
  // metrics over the 6 rows of data.csv differ from metrics over the 3 probes alone
  ASSERT_EQ(run_cli({"track", c10, c20, "--smiles", "CCO", "CCCC", "c1ccccc1", "--out", d.path("c")}), 0);
  EXPECT_EQ(store::Reader(d.path("c/attention.h5")).map("attn.probs", 0), a.map("attn.probs", 0));
  EXPECT_NE(store::Reader(d.path("c/attention.h5")).metric("entropy_norm")[0], a.metric("entropy_norm")[0]);
}

// Bad input: a checkpoint of another architecture is refused naming the differing keys; an empty
// folder, a run without kept checkpoints and no inputs are usage errors (exit 2).
TEST(Track, RefusesMixedSeriesAndBadInput) {
  TempDir d;
  const std::string root = trainer_folder(d);
  const std::string c10 = root + "/checkpoint-10";
  for (const char* f : {"vocab.json", "merges.txt"}) fs::copy_file(root + "/" + f, c10 + "/" + f);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_cli({"track", c10, testing::fixture_path("hf-bert-tiny/bert-tiny-classification"), "--smiles", "CCO", "--out",
                     d.path("x")}), 2);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("differs from the first checkpoint"), std::string::npos) << err;
  EXPECT_NE(err.find("name"), std::string::npos) << err;
  fs::create_directories(d.path("empty"));
  EXPECT_EQ(run_cli({"track", d.path("empty"), "--smiles", "CCO", "--out", d.path("y")}), 2);
  EXPECT_EQ(run_cli({"track", root, "--out", d.path("z")}), 2) << "no inputs";
  EXPECT_EQ(run_cli({"track", root, "--smiles", "CCO", "--sites", "attn.q", "--out", d.path("w")}), 2);
  EXPECT_FALSE(fs::exists(d.path("w"))) << "nothing written";
}

// stderr and exit code of a track (or any) command run in this process.
std::pair<int, std::string> run_err(const std::vector<std::string>& args) {
  ::testing::internal::CaptureStderr();
  const int code = run_cli(args);
  return {code, ::testing::internal::GetCapturedStderr()};
}

// A checkpoint-N folder whose N does not fit a step count and a trainer_state.json with keys of the
// wrong type are refused (exit 2) naming the folder, or the file and every key; nothing is written.
TEST(Track, RefusesAnOutOfRangeStepAndAMistypedTrainerState) {
  TempDir d;
  const std::string root = trainer_folder(d);
  const std::string huge = root + "/checkpoint-99999999999999999999999";
  fs::create_directories(huge);
  auto [code, err] = run_err({"track", root, "--smiles", "CCO", "--out", d.path("t")});
  EXPECT_EQ(code, 2) << err;
  EXPECT_NE(err.find("'" + huge + "'"), std::string::npos) << err;
  EXPECT_NE(err.find("out of range"), std::string::npos) << err;
  fs::remove(huge);
  const std::string state = root + "/checkpoint-20/trainer_state.json";
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {R"({"global_step": "ten", "epoch": 1.0, "log_history": "x"})",
       {"global_step: expected an integer >= 0", "\"ten\"", "log_history: expected an array", "\"x\""}},
      {R"({"global_step": 20, "epoch": "one", "log_history": [{"step": "a", "loss": 1}, 5, {"step": 10, "eval_loss": "low", "epoch": []}]})",
       {"epoch: expected a number", "log_history[0].step: expected a number", "log_history[1]: expected an object",
        "log_history[2].eval_loss: expected a number", "log_history[2].epoch: expected a number"}},
      {R"({"global_step": -3})", {"global_step: expected an integer >= 0 (optimizer steps), got -3"}},
      {R"([1, 2])", {"expected a JSON object"}}};
  for (const auto& [text, needles] : cases) {
    testing::write_text(state, text);
    std::tie(code, err) = run_err({"track", root, "--smiles", "CCO", "--out", d.path("t")});
    EXPECT_EQ(code, 2) << text << "\n" << err;
    EXPECT_NE(err.find(state), std::string::npos) << err;
    for (const auto& n : needles) EXPECT_NE(err.find(n), std::string::npos) << n << " in\n" << err;
  }
  EXPECT_FALSE(fs::exists(d.path("t"))) << "nothing written";
  // the output directory's trainer_state.json (read for its log_history) is checked too
  fs::remove(state);
  for (const auto& c : {"10", "20", "30"}) fs::remove(root + "/checkpoint-" + c + "/trainer_state.json");
  testing::write_text(root + "/trainer_state.json", R"({"log_history": [{"step": 10, "loss": "nan"}]})");
  std::tie(code, err) = run_err({"track", root, "--smiles", "CCO", "--out", d.path("t")});
  EXPECT_EQ(code, 2) << err;
  EXPECT_NE(err.find(root + "/trainer_state.json"), std::string::npos) << err;
  EXPECT_NE(err.find("log_history[0].loss: expected a number"), std::string::npos) << err;
  // null counts as not logged
  testing::write_text(root + "/trainer_state.json", R"({"global_step": null, "log_history": [{"step": 10, "loss": null}]})");
  EXPECT_EQ(run_cli({"track", root, "--smiles", "CCO", "--out", d.path("t")}), 0);
}

// A refused track that recorded nothing leaves no file of its own behind (and the files that were
// there before untouched, --force included); one that recorded some checkpoints keeps them and says
// that --resume continues it, which then records the rest.
TEST(Track, RefusedTrackRemovesWhatItWroteOrSaysResumeContinuesIt) {
  TempDir d;
  const std::string root = trainer_folder(d);
  const std::string w10 = root + "/checkpoint-10/model.safetensors", w30 = root + "/checkpoint-30/model.safetensors";
  const std::string good10 = testing::read_file_text(w10), good30 = testing::read_file_text(w30);
  auto truncate = [](const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  };
  const std::vector<std::string> track = {"track", root, "--smiles", "CCO", "c1ccccc1O", "--out"};
  auto with_out = [&](const std::string& out, std::vector<std::string> more = {}) {
    auto a = track;
    a.push_back(out);
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  // the first checkpoint truncated: nothing recorded, nothing left (a new folder, or one with files of its own)
  truncate(w10, good10);
  auto [code, err] = run_err(with_out(d.path("new")));
  EXPECT_EQ(code, 2) << err;
  EXPECT_NE(err.find("checkpoint-10"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(d.path("new"))) << "the folder it created is removed";
  fs::create_directories(d.path("mine"));
  testing::write_text(d.path("mine/notes.txt"), "mine");
  EXPECT_EQ(run_err(with_out(d.path("mine"))).first, 2);
  EXPECT_EQ(testing::read_file_text(d.path("mine/notes.txt")), "mine");
  for (const char* f : {"attention.h5", "metrics.jsonl", "track.json"}) EXPECT_FALSE(fs::exists(d.path("mine/") + f)) << f;
  // a finished track replaced with --force, refused before recording: its files are as they were
  testing::write_text(w10, good10);
  ASSERT_EQ(run_cli(with_out(d.path("old"))), 0);
  const std::string old_h5 = testing::read_file_text(d.path("old/attention.h5"));
  const std::string old_state = testing::read_file_text(d.path("old/track.json"));
  truncate(w10, good10);
  EXPECT_EQ(run_err(with_out(d.path("old"), {"--force"})).first, 2);
  EXPECT_TRUE(testing::read_file_text(d.path("old/attention.h5")) == old_h5);
  EXPECT_EQ(testing::read_file_text(d.path("old/track.json")), old_state);
  testing::write_text(w10, good10);

  // a later checkpoint truncated: the first two stay recorded, the message names --resume
  truncate(w30, good30);
  std::tie(code, err) = run_err(with_out(d.path("t")));
  EXPECT_EQ(code, 2) << err;
  EXPECT_NE(err.find("checkpoint-30"), std::string::npos) << err;
  EXPECT_NE(err.find("2 checkpoints recorded so far"), std::string::npos) << err;
  EXPECT_NE(err.find("--out " + d.path("t") + " --resume"), std::string::npos) << err;
  EXPECT_EQ(store::Reader(d.path("t/attention.h5")).epochs().size(), 2u);
  EXPECT_EQ(testing::read_lines(d.path("t/metrics.jsonl")).size(), 2u);
  testing::write_text(w30, good30);
  ASSERT_EQ(run_cli(with_out(d.path("t"), {"--resume"})), 0);
  EXPECT_EQ(store::Reader(d.path("t/attention.h5")).epochs().size(), 3u);
  EXPECT_EQ(testing::read_lines(d.path("t/metrics.jsonl")).size(), 3u);

  // mixed families: refused after the first is recorded, which stays, with the same advice
  const std::string c10 = root + "/checkpoint-10";
  for (const char* f : {"vocab.json", "merges.txt"}) fs::copy_file(root + "/" + f, c10 + "/" + f);
  std::tie(code, err) = run_err({"track", c10, testing::fixture_path("hf-bert-tiny/bert-tiny-classification"), "--smiles",
                                 "CCO", "--out", d.path("mixed")});
  EXPECT_EQ(code, 2) << err;
  EXPECT_NE(err.find("differs from the first checkpoint"), std::string::npos) << err;
  EXPECT_NE(err.find("1 checkpoint recorded so far"), std::string::npos) << err;
  EXPECT_EQ(store::Reader(d.path("mixed/attention.h5")).epochs().size(), 1u);
}

// compare: a snapshot compared with itself gives zero JS, zero differences and the identity
// matching; with a copy of the model whose layer-0 heads 0 and 1 are swapped (their query, key and
// value rows and output columns permuted: the same function), the matching finds the swap with
// zero divergence; different probes are refused naming the probe.
TEST(Compare, IdentityAndSwappedHeads) {
  TempDir d;
  const std::string model = tiny("regression");
  auto w = models::read_safetensors(model + "/model.safetensors");
  const auto cfg = nlohmann::json::parse(testing::read_file_text(model + "/config.json"));
  const int64_t dh = cfg["hidden_size"].get<int64_t>() / cfg["num_attention_heads"].get<int64_t>();
  auto swap_rows = [&](torch::Tensor t, int64_t dim) {
    auto out = t.clone();
    out.narrow(dim, 0, dh).copy_(t.narrow(dim, dh, dh));
    out.narrow(dim, dh, dh).copy_(t.narrow(dim, 0, dh));
    return out;
  };
  const std::string pre = "roberta.encoder.layer.0.attention.";
  for (const char* m : {"query", "key", "value"}) {
    for (const char* kind : {"weight", "bias"}) {
      const std::string name = pre + "self." + m + "." + kind;
      ASSERT_TRUE(w.count(name)) << name;
      w[name] = swap_rows(w[name], 0);
    }
  }
  w[pre + "output.dense.weight"] = swap_rows(w[pre + "output.dense.weight"], 1);
  fs::create_directories(d.path("swapped"));
  for (const char* f : {"config.json", "vocab.json", "merges.txt"}) fs::copy_file(model + "/" + f, d.path("swapped/") + f);
  models::write_safetensors(d.path("swapped/model.safetensors"), w, {{"format", "pt"}});
  ASSERT_EQ(run_cli({"snapshot", "--model", model, "--smiles-file", smiles_file(d), "--out", d.path("a.h5")}), 0);
  ASSERT_EQ(run_cli({"snapshot", "--model", d.path("swapped"), "--smiles-file", smiles_file(d), "--out", d.path("b.h5")}), 0);
  ASSERT_EQ(run_cli({"compare", d.path("a.h5"), d.path("a.h5"), "--out", d.path("self")}), 0);
  const auto self = nlohmann::json::parse(testing::read_file_text(d.path("self/compare.json")));
  const auto& pair = self["pairs"][0];
  for (size_t l = 0; l < pair["matching"].size(); ++l) {
    for (size_t h = 0; h < pair["matching"][l].size(); ++h) EXPECT_EQ(pair["matching"][l][h], h);
    const auto& js = pair["js"][l];
    const size_t H = pair["matching"][l].size();
    for (size_t h = 0; h < H; ++h) EXPECT_NEAR(js[h * H + h].get<double>(), 0, 1e-6);
  }
  for (const auto& [m, v] : pair["metric_diff"].items()) {
    for (const auto& x : v) EXPECT_TRUE(x.is_null() || x.get<double>() == 0) << m;
  }
  EXPECT_TRUE(fs::exists(d.path("self/compare.html")));
  EXPECT_TRUE(fs::exists(d.path("self/figures/compare_matching.png")));
  ASSERT_EQ(run_cli({"compare", d.path("a.h5"), d.path("b.h5"), "--out", d.path("swap"), "--format", "png"}), 0);
  const auto swap = nlohmann::json::parse(testing::read_file_text(d.path("swap/compare.json")));
  const auto& m0 = swap["pairs"][0]["matching"][0];
  EXPECT_EQ(m0[0], 1);
  EXPECT_EQ(m0[1], 0);
  for (size_t h = 2; h < m0.size(); ++h) EXPECT_EQ(m0[h], h);
  const size_t H = m0.size();
  EXPECT_NEAR(swap["pairs"][0]["js"][0][0 * H + 1].get<double>(), 0, 1e-5) << "head 0 of a is head 1 of b";
  EXPECT_GT(swap["pairs"][0]["js"][0][0].get<double>(), 1e-3) << "head 0 of a is not head 0 of b";
  // other inputs: refused naming the probe
  ASSERT_EQ(run_cli({"snapshot", "--model", model, "--smiles", "CCCC", "--out", d.path("c.h5")}), 0);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_cli({"compare", d.path("a.h5"), d.path("c.h5"), "--out", d.path("bad")}), 2);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("probe"), std::string::npos) << err;
}

// An attnscope run directory: its kept checkpoints (train.keep_every) then last.pt, each at its
// own epoch; a run without kept checkpoints is refused (exit 2).
TEST(Track, RunDirectoryKeptCheckpoints) {
  TempDir d;
  std::ifstream in(testing::source_path("data/esol/delaney-processed.csv"));
  std::string csv, line;
  for (int i = 0; i < 121 && std::getline(in, line); ++i) csv += line + "\n";
  testing::write_text(d.path("esol.csv"), csv);
  std::vector<std::string> args = {"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", d.path("run"), "--set",
                                   "data.csv=" + d.path("esol.csv"), "model.n_layers=1", "model.d_model=32", "model.n_heads=4",
                                   "model.d_ff=64", "train.epochs=3", "train.keep_every=2", "hooks.attention.enabled=false",
                                   "run.threads=1", "train.progress=none", "run.log_level=warn", "data.split=random"};
  ASSERT_EQ(run_cli(args), 0);
  ASSERT_TRUE(fs::exists(d.path("run/checkpoints/epoch-000002.pt")));
  ASSERT_EQ(run_cli({"track", d.path("run"), "--data", d.path("esol.csv"), "--probes", "4", "--out", d.path("t")}), 0);
  store::Reader r(d.path("t/attention.h5"));
  const auto epochs = r.epochs();
  ASSERT_EQ(epochs.size(), 2u) << "epoch-000002.pt and last.pt (epoch 3)";
  EXPECT_EQ(epochs[0].epoch, 2);
  EXPECT_EQ(epochs[1].epoch, 3);
  EXPECT_EQ(r.probes().count, 4);
  args[3] = d.path("run2");
  args[args.size() - 6] = "train.keep_every=0";
  ASSERT_EQ(run_cli(args), 0);
  EXPECT_EQ(run_cli({"track", d.path("run2"), "--smiles", "CCO", "--out", d.path("t2")}), 2);
}

}  // namespace
}  // namespace attnscope
