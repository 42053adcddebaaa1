// The trainer: schedules, learning, determinism, exact resume, NaN stop, early stopping, checkpoints.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/core.h"
#include "hooks/hooks.h"
#include "store/store.h"
#include "test_util.h"
#include "train/train.h"
#include "data/data.h"
#include "models/models.h"

namespace attnscope::train {
namespace {

using testing::TempDir;
using models::load_checkpoint;
using models::save_checkpoint;

TEST(Schedule, ConstantWarmupAndLinearDecay) {
  OptimConfig o;
  o.lr = 1.0;
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 0, 10), 1.0);
  o.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 0, 10), 0.25);
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 3, 10), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 9, 10), 1.0);
  o.schedule = "linear";
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 4, 10), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(o, 7, 10), 0.5);
  EXPECT_NEAR(scheduled_lr(o, 9, 10), 1.0 / 6, 1e-12);
  EXPECT_EQ(steps_per_epoch(100, 0), 1);
  EXPECT_EQ(steps_per_epoch(100, 30), 4);
}

TEST(MinMaxTraining, ShortRunLearnsAndShowsTheMechanism) {
  Config c = resolve_config(testing::source_path("configs/minmax.yaml"),
                            {"data.minmax_numbers=32", "train.epochs=300"}).config;
  at::set_num_threads(2);
  MinMaxTask task(c);
  auto opt = make_optimizer(c.optim, task.module());
  Trainer trainer(c, "", task, *opt);
  const auto last = trainer.run();
  EXPECT_EQ(last.epoch, 300);
  EXPECT_GE(last.train_acc, 0.99);
  EXPECT_GE(last.val.at("val_acc"), 0.9);
  for (const auto& m : task.mechanism()) {
    EXPECT_GE(m.sink_mass, 0.8) << m.op;
    EXPECT_GE(m.picks_answer, 0.95) << m.op;
  }
  const auto mech = task.mechanism();
  EXPECT_NE(mech[0].sink_head, mech[1].sink_head) << "the heads swap roles between max and min";
}

TEST(MinMaxTraining, FastPathAndModuleTrainAlike) {
  auto run = [](bool fast) {
    Config c = resolve_config(testing::source_path("configs/minmax.yaml"),
                              {"data.minmax_numbers=16", "train.epochs=20",
                               std::string("model.fast_path=") + (fast ? "true" : "false")}).config;
    MinMaxTask task(c);
    auto opt = make_optimizer(c.optim, task.module());
    Trainer trainer(c, "", task, *opt);
    return trainer.run();
  };
  const auto a = run(true), b = run(false);
  EXPECT_NEAR(a.train_loss, b.train_loss, 1e-4);
  EXPECT_NEAR(a.val.at("val_loss"), b.val.at("val_loss"), 1e-4);
}

TEST(Runs, SameConfigSameSeedSameThreadsGiveIdenticalMetrics) {
  TempDir d;
  ASSERT_EQ(testing::run_cli(testing::small_minmax(d.path("a"), 30)), 0);
  ASSERT_EQ(testing::run_cli(testing::small_minmax(d.path("b"), 30)), 0);
  const auto a = testing::metrics_without_seconds(d.path("a/metrics.jsonl"));
  EXPECT_EQ(a.size(), 30u);
  EXPECT_EQ(a, testing::metrics_without_seconds(d.path("b/metrics.jsonl")));
  auto args = testing::small_minmax(d.path("c"), 30);
  args.push_back("run.seed=1");
  ASSERT_EQ(testing::run_cli(args), 0);
  EXPECT_NE(a, testing::metrics_without_seconds(d.path("c/metrics.jsonl")));
}

TEST(Runs, ResumeEndsWithTheSameMetricsAsAnUninterruptedRun) {
  TempDir d;
  auto full = testing::small_minmax(d.path("full"), 40);
  full.push_back("train.checkpoint_every=7");
  ASSERT_EQ(testing::run_cli(full), 0);
  auto part = testing::small_minmax(d.path("part"), 25);  // stops at 25, last checkpoint at 25
  part.push_back("train.checkpoint_every=7");
  ASSERT_EQ(testing::run_cli(part), 0);
  auto resume = testing::small_minmax(d.path("part"), 40);
  resume.push_back("train.checkpoint_every=7");
  resume.insert(resume.begin() + 1, "--resume");
  ASSERT_EQ(testing::run_cli(resume), 0);
  EXPECT_EQ(testing::metrics_without_seconds(d.path("full/metrics.jsonl")),
            testing::metrics_without_seconds(d.path("part/metrics.jsonl")));
}

// Every file under a run directory but its lock file (which names the pid holding it): its bytes.
std::map<std::string, std::string> run_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().filename() != RunDir::kLock) {
      out[std::filesystem::relative(e.path(), dir).string()] = testing::read_file_text(e.path().string());
    }
  }
  return out;
}

void expect_same_files(const std::map<std::string, std::string>& before, const std::string& dir) {
  const auto now = run_files(dir);
  std::vector<std::string> a, b;
  for (const auto& [name, bytes] : before) a.push_back(name);
  for (const auto& [name, bytes] : now) b.push_back(name);
  ASSERT_EQ(a, b) << "the run's files";
  for (const auto& [name, bytes] : before) EXPECT_TRUE(now.at(name) == bytes) << name << " was rewritten";
}

// `--resume` (train or pretrain) on `args` with `sets` added: its exit code and stdout.
std::pair<int, std::string> resume_run(std::vector<std::string> args, const std::vector<std::string>& sets) {
  args.insert(args.begin() + 1, "--resume");
  args.insert(args.end(), sets.begin(), sets.end());
  ::testing::internal::CaptureStdout();
  const int code = testing::run_cli(args);
  return {code, ::testing::internal::GetCapturedStdout()};
}

// A finished run resumed is a no-op that says so: every file keeps its bytes, analysis/js_final its
// rows (it was emptied: the attention file was reopened for recording, which drops the end-of-run
// analyses, and nothing recomputed them); the same with fewer epochs configured, for a run that
// stopped early and for pretrain. Raising train.epochs (or train.patience) continues the run, with
// js_final recomputed over every recorded epoch.
TEST(Runs, ResumingAFinishedRunChangesNothingAndMoreEpochsContinueIt) {
  TempDir d;
  const std::string run = d.path("run");
  auto args = testing::small_minmax(run, 6);
  args.push_back("hooks.attention.every=2");  // epochs 0, 2, 4, 6
  ASSERT_EQ(testing::run_cli(args), 0);
  const auto before = run_files(run);
  for (const char* f : {"attention.h5", "metrics.jsonl", "mechanism.json", "checkpoints/last.pt", "train.log"}) {
    ASSERT_TRUE(before.count(f)) << f;
  }
  for (const char* epochs : {"train.epochs=6", "train.epochs=4"}) {
    const auto [code, out] = resume_run(args, {epochs});
    EXPECT_EQ(code, 0) << epochs;
    EXPECT_NE(out.find("already finished its 6 epochs"), std::string::npos) << out;
    EXPECT_NE(out.find("nothing was changed"), std::string::npos) << out;
    expect_same_files(before, run);
  }
  {
    store::Reader r(run + "/attention.h5");
    ASSERT_EQ(r.epochs().size(), 4u);
    EXPECT_EQ(torch::tensor(r.analysis("js_final", 3)).abs().max().item<double>(), 0.0);
    EXPECT_GT(torch::tensor(r.analysis("js_final", 0)).max().item<double>(), 0.0);
  }
  // more epochs: the run continues to them, js_final over all five recorded epochs
  const auto [code, out] = resume_run(args, {"train.epochs=8"});
  ASSERT_EQ(code, 0);
  EXPECT_EQ(out.find("already finished"), std::string::npos) << out;
  EXPECT_EQ(testing::read_lines(run + "/metrics.jsonl").size(), 8u);
  store::Reader r(run + "/attention.h5");
  ASSERT_EQ(r.epochs().size(), 5u);
  EXPECT_EQ(r.epochs().back().epoch, 8);
  EXPECT_EQ(torch::tensor(r.analysis("js_final", 4)).abs().max().item<double>(), 0.0);
  EXPECT_GT(torch::tensor(r.analysis("js_final", 3)).max().item<double>(), 0.0);

  // early stopping: no improvement can reach min_delta, so the second evaluation ends the run
  auto early = testing::small_minmax(d.path("early"), 10);
  early.insert(early.end(), {"train.patience=1", "train.min_delta=1000"});
  ASSERT_EQ(testing::run_cli(early), 0);
  ASSERT_EQ(testing::read_lines(d.path("early/metrics.jsonl")).size(), 2u);
  const auto stopped = run_files(d.path("early"));
  const auto [code_e, out_e] = resume_run(early, {});
  EXPECT_EQ(code_e, 0);
  EXPECT_NE(out_e.find("early stopping ended it at epoch 2"), std::string::npos) << out_e;
  expect_same_files(stopped, d.path("early"));
  ASSERT_EQ(resume_run(early, {"train.patience=3"}).first, 0);
  EXPECT_EQ(testing::read_lines(d.path("early/metrics.jsonl")).size(), 4u) << "two more evaluations without improvement";

  // pretrain
  const auto zinc = testing::read_lines(testing::source_path("data/zinc/zinc250k_subset_5k.txt"));
  std::string corpus;
  for (size_t i = 0; i < 100; ++i) corpus += zinc[i] + "\n";
  testing::write_text(d.path("corpus.txt"), corpus);
  const std::vector<std::string> pre = {"pretrain", testing::source_path("configs/chemberta-pretrain.yaml"), "--out",
                                        d.path("pre"), "--set", "data.csv=" + d.path("corpus.txt"), "data.exclude=[]",
                                        "data.frac_val=0.2", "model.n_layers=1", "model.d_model=32", "model.n_heads=4",
                                        "model.d_ff=64", "train.epochs=1", "train.batch_size=32", "hooks.attention.probes=4",
                                        "run.threads=1", "train.progress=none", "run.log_level=warn"};
  ASSERT_EQ(testing::run_cli(pre), 0);
  const auto pretrained = run_files(d.path("pre"));
  const auto [code_p, out_p] = resume_run(pre, {});
  EXPECT_EQ(code_p, 0);
  EXPECT_NE(out_p.find("already finished its 1 epoch"), std::string::npos) << out_p;
  expect_same_files(pretrained, d.path("pre"));
  EXPECT_NO_THROW(store::Reader(d.path("pre/attention.h5")).analysis("js_final", 1));
}

// A task whose loss turns NaN at a chosen step and whose validation metric plateaus.
class FakeTask : public Task {
 public:
  explicit FakeTask(int64_t nan_at) : nan_at_(nan_at) { lin_ = torch::nn::Linear(2, 1); }
  torch::nn::Module& module() override { return *lin_; }
  std::string describe() const override { return "fake"; }
  int64_t train_size() const override { return 8; }
  StepStats train_step(const torch::Tensor& idx) override {
    ++steps_;
    auto loss = lin_->forward(torch::ones({8, 2})).pow(2).mean();
    loss.backward();
    return {steps_ == nan_at_ ? std::nan("") : loss.item<double>() * 8, 4, 8};
  }
  Metrics evaluate() override {
    ++evals_;
    return {{"val_loss", evals_ <= 3 ? 1.0 / evals_ : 0.5}, {"val_acc", 0.5}};
  }
  int64_t num_layers() const override { return 0; }
  int64_t num_heads() const override { return 0; }
  std::string model_json() const override { return "{}"; }
  int64_t val_size() const override { return 0; }
  torch::Tensor val_inputs(const torch::Tensor& idx) const override { return idx; }
  torch::Tensor val_lengths(const torch::Tensor& idx) const override { return idx; }
  void forward_taps(const torch::Tensor&, models::Taps&) override {}
  ProbeSet default_probes(int64_t) const override { return {}; }
  ProbeSet parse_probes(const std::string&, const std::string&) const override { return {}; }

 private:
  torch::nn::Linear lin_{nullptr};
  int64_t nan_at_, steps_ = 0, evals_ = 0;
};

TEST(Trainer, NanLossStopsWithTheLastGoodCheckpointKept) {
  TempDir d;
  Config c;
  c.train.epochs = 10;
  c.train.checkpoint_every = 1;
  FakeTask task(/*nan_at=*/4);
  auto opt = make_optimizer(c.optim, task.module());
  Trainer trainer(c, d.path(), task, *opt);
  hooks::Checkpointer ckpt(d.path());
  hooks::MetricsWriter metrics(d.path("metrics.jsonl"));
  trainer.add_observer(&metrics);
  trainer.add_observer(&ckpt);
  try {
    trainer.run();
    FAIL() << "expected a TrainingError";
  } catch (const TrainingError& e) {
    EXPECT_NE(std::string(e.what()).find("epoch 4"), std::string::npos) << e.what();
  }
  EXPECT_EQ(testing::read_lines(d.path("metrics.jsonl")).size(), 3u);
  FakeTask fresh(0);
  const auto info = load_checkpoint(d.path("last.pt"), fresh.module(), nullptr, false);
  EXPECT_EQ(info.state.epoch, 3);
}

// Records the order of events it sees.
struct EventLog : Observer {
  std::vector<std::string> events;
  void on_train_begin(const TrainContext&) override { events.push_back("train_begin"); }
  void on_epoch_begin(const TrainContext&, int64_t e) override { events.push_back("epoch_begin " + std::to_string(e)); }
  void on_step_end(const TrainContext&, const StepInfo& s) override { events.push_back("step " + std::to_string(s.step)); }
  void on_eval_end(const TrainContext&, const EpochRecord& r) override { events.push_back("eval " + std::to_string(r.epoch)); }
  void on_epoch_end(const TrainContext&, const EpochRecord& r) override { events.push_back("epoch_end " + std::to_string(r.epoch)); }
  void on_checkpoint(const TrainContext&, const std::string& p) override {
    events.push_back("checkpoint " + std::filesystem::path(p).filename().string());
  }
  void on_train_end(const TrainContext&, const EpochRecord& r) override { events.push_back("train_end " + std::to_string(r.epoch)); }
};

TEST(Trainer, EventsArriveInOrder) {
  TempDir d;
  Config c;
  c.train.epochs = 2;
  c.train.eval_every = 2;
  c.train.checkpoint_every = 1;
  FakeTask task(-1);
  auto opt = make_optimizer(c.optim, task.module());
  Trainer trainer(c, d.path(), task, *opt);
  EventLog log;
  hooks::Checkpointer ckpt(d.path());
  trainer.add_observer(&ckpt);
  trainer.add_observer(&log);
  trainer.run();
  EXPECT_EQ(log.events, (std::vector<std::string>{
                            "train_begin", "epoch_begin 1", "step 1", "checkpoint last.pt", "epoch_end 1",
                            "epoch_begin 2", "step 2", "eval 2", "checkpoint best.pt", "checkpoint last.pt",
                            "epoch_end 2", "train_end 2"}));
}

TEST(Trainer, EarlyStoppingAfterPatienceEvaluations) {
  Config c;
  c.train.epochs = 50;
  c.train.patience = 2;
  FakeTask task(-1);
  auto opt = make_optimizer(c.optim, task.module());
  Trainer trainer(c, "", task, *opt);
  const auto last = trainer.run();
  // val_loss 1, .5, .33, then .5 twice: the best is epoch 3, stop at epoch 5
  EXPECT_TRUE(last.early_stop);
  EXPECT_EQ(last.epoch, 5);
  EXPECT_EQ(trainer.state().best_epoch, 3);
}

TEST(Checkpoint, StrictLoadNamesEveryMismatch) {
  TempDir d;
  Config c;
  torch::nn::Linear a(2, 3);
  auto opt = make_optimizer(c.optim, *a);
  save_checkpoint(d.path("a.pt"), *a, *opt, TrainState{}, c);
  torch::nn::Linear b(2, 4);
  try {
    load_checkpoint(d.path("a.pt"), *b, nullptr, false);
    FAIL();
  } catch (const UsageError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'weight' has shape [3, 2]"), std::string::npos) << m;
    EXPECT_NE(m.find("'bias'"), std::string::npos) << m;
  }
  torch::nn::Linear nb(torch::nn::LinearOptions(2, 3).bias(false));
  try {
    load_checkpoint(d.path("a.pt"), *nb, nullptr, false);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("unexpected tensor 'bias'"), std::string::npos);
  }
  testing::write_text(d.path("junk.pt"), "not a checkpoint");
  EXPECT_THROW(load_checkpoint(d.path("junk.pt"), *a, nullptr, false), UsageError);
}

TEST(Checkpoint, RoundTripRestoresWeightsOptimizerAndState) {
  TempDir d;
  Config c;
  torch::nn::Linear a(2, 3);
  auto opt = make_optimizer(c.optim, *a);
  a->forward(torch::ones({1, 2})).sum().backward();
  opt->step();
  TrainState s;
  s.epoch = 7;
  s.step = 70;
  s.best_value = 0.25;
  save_checkpoint(d.path("a.pt"), *a, *opt, s, c);
  torch::nn::Linear b(2, 3);
  auto opt_b = make_optimizer(c.optim, *b);
  const auto info = load_checkpoint(d.path("a.pt"), *b, opt_b.get(), true);
  EXPECT_TRUE(torch::equal(a->weight, b->weight));
  EXPECT_EQ(info.state.epoch, 7);
  EXPECT_EQ(info.state.step, 70);
  EXPECT_EQ(info.state.best_value, 0.25);
  EXPECT_EQ(info.config_hash, config_hash(c));
  // the optimizer continues identically
  opt->zero_grad();
  for (auto* m : {&a, &b}) (*m)->forward(torch::ones({1, 2})).sum().backward();
  opt->step();
  opt_b->step();
  EXPECT_TRUE(torch::equal(a->weight, b->weight));
}

TEST(Metrics, TruncateKeepsCompletedEpochsAndDropsATornLine) {
  TempDir d;
  testing::write_text(d.path("m.jsonl"), "{\"epoch\":1}\n{\"epoch\":2}\n{\"epoch\":3}\n{\"epo");
  hooks::truncate_metrics(d.path("m.jsonl"), 2);
  EXPECT_EQ(testing::read_lines(d.path("m.jsonl")), (std::vector<std::string>{"{\"epoch\":1}", "{\"epoch\":2}"}));
}

}  // namespace
}  // namespace attnscope::train

// ---- molecular property tasks ------------------------------------------------------------------

namespace attnscope {
namespace {

TEST(MoleculeMetrics, RocAucAndAveragePrecisionMatchScikitLearn) {
  // sklearn.metrics.roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.75; average_precision_score = 0.8333
  EXPECT_NEAR(train::roc_auc({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.75, 1e-12);
  EXPECT_NEAR(train::average_precision({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.8333333333, 1e-9);
  // ties count one half
  EXPECT_NEAR(train::roc_auc({0.5, 0.5}, {0, 1}), 0.5, 1e-12);
  // one class only: undefined, not 0.5
  EXPECT_TRUE(std::isnan(train::roc_auc({0.1, 0.2}, {1, 1})));
  // missing labels are left out; the mean runs over defined tasks
  auto logits = torch::tensor({{2.0, 1.0}, {-1.0, 1.0}, {0.5, -1.0}});
  auto target = torch::tensor({{1.0, 1.0}, {0.0, std::nan("")}, {1.0, 1.0}});
  const auto m = train::classification_metrics(logits, target, {"a", "b"});
  EXPECT_NEAR(m.at("roc_auc_a"), 1.0, 1e-12);
  EXPECT_TRUE(std::isnan(m.at("roc_auc_b")));
  EXPECT_NEAR(m.at("roc_auc"), 1.0, 1e-12);
}

TEST(MoleculeMetrics, RegressionInOriginalUnits) {
  auto pred = torch::tensor({{1.0}, {2.0}, {3.0}});
  auto target = torch::tensor({{1.0}, {2.0}, {5.0}});
  const auto m = train::regression_metrics(pred, target, {"y"});
  EXPECT_NEAR(m.at("rmse"), std::sqrt(4.0 / 3), 1e-9);
  EXPECT_NEAR(m.at("mae"), 2.0 / 3, 1e-9);
  const double mean = 8.0 / 3, ss_tot = std::pow(1 - mean, 2) + std::pow(2 - mean, 2) + std::pow(5 - mean, 2);
  EXPECT_NEAR(m.at("r2"), 1 - 4.0 / ss_tot, 1e-9);
}

// A tiny RoBERTa fine-tuned on ESOL for two epochs, attention recorded, then rendered.
TEST(MoleculeTask, FineTunesRecordsAndRenders) {
  testing::TempDir d;
  const std::string run = d.path("esol");
  ASSERT_EQ(testing::run_cli({"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", run, "--set",
                              "data.csv=" + testing::source_path("data/esol/delaney-processed.csv"), "model.n_layers=2",
                              "model.d_model=32", "model.n_heads=4", "model.d_ff=64", "train.epochs=2",
                              "train.batch_size=64", "hooks.attention.every=1", "hooks.attention.probes=8",
                              "hooks.attention.metrics_every=1", "run.threads=1", "train.progress=none",
                              "run.log_level=warn",
                              "hooks.attention.sites=[attn.probs, attn.scores, embed.word, embed.position, embed.type, "
                              "embed.out, attn.q, attn.k, attn.v, attn.context, ffn.out, block.out]"}),
            0);
  for (const char* f : {"split.json", "vocab.json", "targets.json", "test_metrics.json", "attention.h5",
                        "checkpoints/best.pt"}) {
    EXPECT_TRUE(std::filesystem::exists(run + "/" + f)) << f;
  }
  const auto lines = testing::read_lines(run + "/metrics.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  const auto last = nlohmann::json::parse(lines.back());
  EXPECT_TRUE(last.contains("val_rmse"));
  EXPECT_TRUE(last.contains("val_r2"));
  EXPECT_FALSE(last.contains("train_acc")) << "no accuracy for regression";
  std::ifstream tm(run + "/test_metrics.json");
  const auto test = nlohmann::json::parse(tm);
  EXPECT_EQ(test["test_size"], 113);
  EXPECT_GT(test["test_rmse"].get<double>(), 0.0);
  ASSERT_EQ(testing::run_cli({"render", run, "--format", "png", "--layers", "1", "--heads", "0"}), 0);
  EXPECT_TRUE(std::filesystem::exists(run + "/figures/molecule_L1_H0_p0.png"));
  EXPECT_TRUE(std::filesystem::exists(run + "/figures/head_grid_p0_e2.png"));
  // every validation molecule's pooled vector and prediction, per recorded epoch, and its figures
  {
    store::Reader r(run + "/attention.h5");
    const auto& h = r.header();
    ASSERT_EQ(h.val_count, 113);  // the validation split (10 % of ESOL's 1,128)
    EXPECT_EQ(h.val_targets, 1);
    EXPECT_EQ(h.val_outputs, 1);
    const auto& v = r.validation();
    ASSERT_EQ(v.text.size(), 113u);
    for (const auto& smiles : v.text) EXPECT_TRUE(data::smiles_parses(smiles)) << smiles;
    const auto pooled = r.val_pooled(2), out = r.val_output(2);
    ASSERT_EQ(pooled.size(), 113u * 32);
    ASSERT_EQ(out.size(), 113u);
    EXPECT_TRUE(std::all_of(pooled.begin(), pooled.end(), [](float x) { return std::isfinite(x); }));
    EXPECT_NE(r.val_pooled(0), pooled) << "the vectors change with training";
    for (size_t i = 0; i < out.size(); ++i) {  // predictions in the target's units (log mol/L)
      EXPECT_GT(out[i], -15.0) << i;
      EXPECT_LT(out[i], 5.0) << i;
      EXPECT_TRUE(std::isfinite(v.target[i]));
    }
    EXPECT_TRUE(std::filesystem::exists(run + "/figures/validation_embedding_e2.png"));
    EXPECT_TRUE(std::filesystem::exists(run + "/figures/validation_clusters_e2.png"));
  }
  // the model's internals for the probes (float16): q . k / sqrt(d) through a softmax is the
  // recorded attention, the weights times v the recorded context; padding positions are 0
  {
    store::Reader r(run + "/attention.h5");
    const auto& h = r.header();
    EXPECT_EQ(h.sites, (std::vector<std::string>{"attn.probs", "attn.scores"}));
    EXPECT_EQ(h.internals_dtype, "float16");
    ASSERT_EQ(h.internals.size(), 10u);
    const int64_t P = 8, T = r.probes().max_len, L = 2, H = 4, d = 8, D = 32;
    EXPECT_EQ(h.internals.at("embed.type"), (std::vector<int64_t>{P, T, D}));
    EXPECT_EQ(h.internals.at("block.out"), (std::vector<int64_t>{P, L, T, D}));
    EXPECT_EQ(h.internals.at("attn.q"), (std::vector<int64_t>{P, L, H, T, d}));
    const auto q = r.internal("attn.q", 2), k = r.internal("attn.k", 2), v = r.internal("attn.v", 2);
    const auto ctx = r.internal("attn.context", 2), probs = r.map("attn.probs", 2);
    double worst_p = 0, worst_c = 0;
    for (int64_t p = 0; p < P; ++p) {
      const int64_t n = r.probes().lengths[p];
      for (int64_t l = 0; l < L; ++l) {
        for (int64_t hh = 0; hh < H; ++hh) {
          const int64_t at = ((p * L + l) * H + hh) * T;  // row index base into [P,L,H,T,*]
          for (int64_t i = 0; i < n; ++i) {
            std::vector<double> w(n);
            double top = -1e30, z = 0;
            for (int64_t j = 0; j < n; ++j) {
              for (int64_t c = 0; c < d; ++c) w[j] += q[(at + i) * d + c] * k[(at + j) * d + c];
              w[j] /= std::sqrt(static_cast<double>(d));
              top = std::max(top, w[j]);
            }
            for (auto& x : w) z += (x = std::exp(x - top));
            for (int64_t j = 0; j < n; ++j) worst_p = std::max(worst_p, std::fabs(w[j] / z - probs[(at + i) * T + j]));
            for (int64_t c = 0; c < d; ++c) {
              double s = 0;
              for (int64_t j = 0; j < n; ++j) s += probs[(at + i) * T + j] * v[(at + j) * d + c];
              worst_c = std::max(worst_c, std::fabs(s - ctx[(at + i) * d + c]));
            }
          }
        }
      }
    }
    EXPECT_LT(worst_p, 2e-2) << "softmax(q k / sqrt d) against the recorded attention";
    EXPECT_LT(worst_c, 2e-2) << "attention x v against the recorded context";
    const auto embed = r.internal_probe("embed.out", 2, 0);
    const int64_t n0 = r.probes().lengths[0];
    EXPECT_TRUE(std::all_of(embed.begin() + n0 * D, embed.end(), [](float x) { return x == 0.0f; })) << "padding is 0";
    EXPECT_TRUE(std::any_of(embed.begin(), embed.begin() + n0 * D, [](float x) { return x != 0.0f; }));
  }
  // a frozen model's attention on SMILES of the user's choice (bertviz's case, from the CLI)
  ASSERT_EQ(testing::run_cli({"snapshot", "--model", run, "--smiles", "CCO", "c1ccccc1Cl", "--out", d.path("snap.h5")}), 0);
  store::Reader snap(d.path("snap.h5"));
  EXPECT_EQ(snap.probes().count, 2);
  EXPECT_EQ(snap.probes().text[1], "c1ccccc1Cl");
  EXPECT_EQ(testing::run_cli({"snapshot", "--model", run, "--smiles", "C1CC(", "--out", d.path("bad.h5")}), 2);
  EXPECT_FALSE(std::filesystem::exists(d.path("bad.h5")));
  // predict on the run (its best checkpoint, outputs in original units) and export it
  ASSERT_EQ(testing::run_cli({"predict", "--model", run, "--smiles", "CCO", "c1ccccc1Cl", "--output", d.path("p.csv")}), 0);
  const auto rows = testing::read_lines(d.path("p.csv"));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], "smiles,measured log solubility in mols per litre") << "the target's name (id2label)";
  const double logs = std::stod(rows[1].substr(rows[1].find(',') + 1));
  EXPECT_GT(logs, -15.0) << "log solubility in original units";
  EXPECT_LT(logs, 5.0);
  ASSERT_EQ(testing::run_cli({"predict", "--model", run + "/checkpoints/best.pt", "--smiles", "CCO", "c1ccccc1Cl", "--output",
                              d.path("q.csv")}),
            0);
  EXPECT_EQ(testing::read_lines(d.path("q.csv")), rows);
  ASSERT_EQ(testing::run_cli({"export", "--model", run, "--hf", d.path("hf")}), 0);
  for (const char* f : {"config.json", "model.safetensors", "vocab.json", "tokenizer_config.json"}) {
    EXPECT_TRUE(std::filesystem::exists(d.path("hf/") + f)) << f;
  }
  std::ifstream cj(d.path("hf/config.json"));
  const auto cfg = nlohmann::json::parse(cj);
  EXPECT_EQ(cfg["num_hidden_layers"], 2);
  EXPECT_EQ(cfg["hidden_size"], 32);
  EXPECT_EQ(cfg["problem_type"], "regression");
}

TEST(MoleculeTask, BadInputNamesTheColumn) {
  testing::TempDir d;
  ::testing::internal::CaptureStderr();
  const int code = testing::run_cli({"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", d.path("x"),
                                     "--set", "data.csv=" + testing::source_path("data/esol/delaney-processed.csv"),
                                     "data.targets=[solubility]"});
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("solubility"), std::string::npos) << err;
  EXPECT_NE(err.find("measured log solubility in mols per litre"), std::string::npos) << "lists the columns: " << err;
  EXPECT_FALSE(std::filesystem::exists(d.path("x/config.yaml")));
}

using models::load_checkpoint;
using models::save_checkpoint;
using train::MaskSpec;

TEST(MaskedLm, RobertaMaskingProportionsAndDeterminism) {
  MaskSpec spec;
  spec.vocab_size = 40;
  spec.mask_id = 4;
  spec.special = {0, 1, 2, 3, 4};
  const int64_t B = 400, T = 50;
  auto ids = torch::randint(5, 40, {B, T}, torch::kLong);
  ids.select(1, 0).fill_(0);                   // <s>
  ids.select(1, T - 1).fill_(2);               // </s>
  ids.slice(1, T - 6, T - 1).fill_(1);         // padding
  std::vector<uint64_t> seeds(B);
  for (int64_t i = 0; i < B; ++i) seeds[i] = 1000 + i;
  const auto [in, labels] = train::mlm_mask(ids, spec, seeds);
  const auto chosen = labels.ne(-100);
  const auto special = ids.lt(5);
  EXPECT_EQ((chosen & special).sum().item<int64_t>(), 0) << "special tokens and padding are never chosen";
  EXPECT_TRUE(torch::equal(labels.masked_select(chosen), ids.masked_select(chosen))) << "labels are the original tokens";
  EXPECT_TRUE(torch::equal(in.masked_select(~chosen), ids.masked_select(~chosen))) << "unchosen tokens unchanged";
  const double real = static_cast<double>((~special).sum().item<int64_t>());
  const double n = static_cast<double>(chosen.sum().item<int64_t>());
  EXPECT_NEAR(n / real, 0.15, 0.01);
  const auto got = in.masked_select(chosen), orig = ids.masked_select(chosen);
  const double masked = got.eq(4).sum().item<double>() / n;
  const double kept = got.eq(orig).sum().item<double>() / n;
  EXPECT_NEAR(masked, 0.8, 0.02);
  EXPECT_NEAR(kept, 0.1 + 0.1 / 35, 0.02);  // kept, plus random draws that hit the same token
  EXPECT_EQ(got.lt(5).logical_and(got.ne(4)).sum().item<int64_t>(), 0) << "random replacements are never special";
  // a row's masks depend on its seed alone, not on its batch
  const auto [in1, labels1] = train::mlm_mask(ids.slice(0, 7, 8), spec, {seeds[7]});
  EXPECT_TRUE(torch::equal(in1[0], in[7]));
  EXPECT_TRUE(torch::equal(labels1[0], labels[7]));
  const auto [in2, labels2] = train::mlm_mask(ids.slice(0, 7, 8), spec, {seeds[7] + 1});
  EXPECT_FALSE(torch::equal(labels2[0], labels[7])) << "another epoch, other masks";
}

// Masked-LM pretraining on a small corpus, then fine-tuning from the pretraining run and export.
TEST(MaskedLm, PretrainsThenFineTunesFromTheRun) {
  testing::TempDir d;
  // corpus: 300 ZINC SMILES, 20 ESOL molecules (excluded) and one unparsable line
  const auto zinc = testing::read_lines(testing::source_path("data/zinc/zinc250k_subset_5k.txt"));
  std::string corpus;
  for (size_t i = 0; i < 300; ++i) corpus += zinc[i] + "\n";
  const auto esol = data::read_molecule_csv(testing::source_path("data/esol/delaney-processed.csv"), "smiles", {});
  for (int64_t i = 0; i < 20; ++i) corpus += esol.smiles[i] + "\n";
  corpus += "C1CC(\n";
  testing::write_text(d.path("corpus.txt"), corpus);
  const std::string pre = d.path("pre");
  const std::vector<std::string> tiny = {"model.n_layers=2", "model.d_model=32", "model.n_heads=4", "model.d_ff=64",
                                         "run.threads=1", "train.progress=none", "run.log_level=warn"};
  auto with = [&](std::vector<std::string> args, const std::vector<std::string>& sets) {
    args.push_back("--set");
    args.insert(args.end(), tiny.begin(), tiny.end());
    args.insert(args.end(), sets.begin(), sets.end());
    return args;
  };
  ASSERT_EQ(testing::run_cli(with({"pretrain", testing::source_path("configs/chemberta-pretrain.yaml"), "--out", pre},
                                  {"data.csv=" + d.path("corpus.txt"),
                                   "data.exclude=[" + testing::source_path("data/esol/delaney-processed.csv") + "]",
                                   "data.frac_val=0.2", "train.epochs=2", "train.batch_size=32", "optim.warmup_steps=5",
                                   "hooks.attention.every=1", "hooks.attention.probes=4"})),
            0);
  const auto lines = testing::read_lines(pre + "/metrics.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  const auto first = nlohmann::json::parse(lines.front()), last = nlohmann::json::parse(lines.back());
  for (const char* k : {"train_acc", "val_loss", "val_acc", "val_ppl"}) EXPECT_TRUE(last.contains(k)) << k;
  EXPECT_NEAR(last["val_ppl"].get<double>(), std::exp(last["val_loss"].get<double>()), 1e-6);
  EXPECT_LT(last["val_loss"].get<double>(), first["val_loss"].get<double>()) << "it learns";
  EXPECT_EQ(last["data_dropped_smiles"], 1);
  EXPECT_EQ(last["data_excluded_smiles"], 20);
  EXPECT_TRUE(std::filesystem::exists(pre + "/attention.h5"));
  EXPECT_FALSE(std::filesystem::exists(pre + "/test_metrics.json"));
  EXPECT_EQ(testing::run_cli({"predict", "--model", pre, "--smiles", "CCO", "--output", d.path("p.csv")}), 2)
      << "a masked-LM is not a property model";

  // fine-tuning from the run starts from its best checkpoint's encoder, with its vocabulary
  const std::string ft = d.path("ft");
  Config cfg = resolve_config(testing::source_path("configs/chemberta-esol.yaml"),
                              {"data.csv=" + testing::source_path("data/esol/delaney-processed.csv"),
                               "model.pretrained=" + pre, "run.threads=1"})
                   .config;
  auto task_holder = train::make_task(cfg);
  auto& task = *task_holder;
  models::RobertaForMaskedLM lm(models::read_hf_config(pre + "/config.json"));
  load_checkpoint(pre + "/checkpoints/best.pt", *lm, nullptr, false);
  const auto named = task.module().named_parameters();
  for (const char* k : {"roberta.encoder.layer.1.attention.self.query.weight", "roberta.embeddings.word_embeddings.weight"}) {
    EXPECT_TRUE(torch::equal(named[k], lm->named_parameters()[k])) << k;
  }
  EXPECT_NE(task.describe().find("task head initialised"), std::string::npos) << task.describe();
  // a tokenizer that does not match the pretrained vocabulary is refused
  Config bad = cfg;
  bad.model.tokenizer = "bpe";
  try {
    auto t = train::make_task(bad);
    ADD_FAILURE() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("smiles-regex"), std::string::npos) << e.what();
  }
  ASSERT_EQ(testing::run_cli(with({"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", ft},
                                  {"data.csv=" + testing::source_path("data/esol/delaney-processed.csv"),
                                   "model.pretrained=" + pre, "train.epochs=1", "hooks.attention.enabled=false"})),
            0);
  EXPECT_TRUE(std::filesystem::exists(ft + "/test_metrics.json"));
  // the pretraining run exports as a Hugging Face masked-LM
  ASSERT_EQ(testing::run_cli({"export", "--model", pre, "--hf", d.path("hf")}), 0);
  const auto hf = models::load_hf_model(d.path("hf"));
  EXPECT_EQ(hf.architecture, "RobertaForMaskedLM");
  EXPECT_TRUE(torch::equal(hf.model->named_parameters()["lm_head.dense.weight"], lm->named_parameters()["lm_head.dense.weight"]));
  // pretrain refuses a config of another task
  EXPECT_EQ(testing::run_cli({"pretrain", testing::source_path("configs/chemberta-esol.yaml"), "--out", d.path("x")}), 2);
  EXPECT_FALSE(std::filesystem::exists(d.path("x/config.yaml")));
}

TEST(MultiClass, CrossEntropyAccuracyAndOneVsRestAuc) {
  testing::TempDir d;
  // three classes by ring count (0, 1, 2+): learnable from the SMILES
  const auto esol = data::read_molecule_csv(testing::source_path("data/esol/delaney-processed.csv"), "smiles",
                                            {"Number of Rings"});
  std::string csv = "smiles,rings\n";
  for (int64_t i = 0; i < esol.size(); ++i) {
    csv += esol.smiles[i] + "," + std::to_string(std::min(2, static_cast<int>(esol.targets[i]))) + "\n";
  }
  testing::write_text(d.path("rings.csv"), csv);
  const std::string run = d.path("mc");
  ASSERT_EQ(testing::run_cli({"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", run, "--set",
                              "data.task=multiclass", "data.csv=" + d.path("rings.csv"), "data.targets=[rings]",
                              "data.split=random", "train.best_metric=val_acc", "train.best_mode=max", "model.n_layers=1",
                              "model.d_model=32", "model.n_heads=4", "model.d_ff=64", "train.epochs=3", "optim.lr=2e-3",
                              "hooks.attention.enabled=false", "run.threads=1", "train.progress=none",
                              "run.log_level=warn"}),
            0);
  const auto last = nlohmann::json::parse(testing::read_lines(run + "/metrics.jsonl").back());
  EXPECT_GT(last["train_acc"].get<double>(), 0.5);
  EXPECT_GT(last["val_roc_auc"].get<double>(), 0.7);
  std::ifstream cj(run + "/config.json");
  EXPECT_EQ(nlohmann::json::parse(cj)["id2label"].size(), 3u);
  // metrics: one-vs-rest AUC of perfect scores is 1; a class absent from the labels is skipped
  const auto logits = torch::tensor({{5.f, 0.f, 0.f}, {0.f, 5.f, 0.f}, {5.f, 0.f, 0.f}, {0.f, 5.f, 0.f}});
  const auto m = train::multiclass_metrics(logits, torch::tensor({0.f, 1.f, 0.f, NAN}));
  EXPECT_DOUBLE_EQ(m.at("acc"), 1.0);
  EXPECT_DOUBLE_EQ(m.at("roc_auc"), 1.0);
  // a label that is not a class index is refused, naming the line
  std::string bad = "smiles,rings\nCCO,0\nc1ccccc1,1.5\n";
  for (int i = 0; i < 30; ++i) bad += "C" + std::string(static_cast<size_t>(i % 7 + 1), 'C') + "O,1\n";
  testing::write_text(d.path("bad.csv"), bad);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(testing::run_cli({"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", d.path("b"), "--set",
                              "data.task=multiclass", "data.csv=" + d.path("bad.csv"), "data.targets=[rings]",
                              "data.split=random", "train.best_metric=val_acc", "train.best_mode=max"}),
            2);
  const auto err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("line 3"), std::string::npos) << err;
}

// Default molecule probes: spread over the validation split, none above its 90th length percentile.
TEST(MoleculeTask, DefaultProbesSkipTheLongestMolecules) {
  Config cfg = resolve_config(testing::source_path("configs/chemberta-esol.yaml"),
                              {"data.csv=" + testing::source_path("data/esol/delaney-processed.csv"), "run.threads=1"})
                   .config;
  auto task_holder = train::make_task(cfg);
  auto& task = *task_holder;
  const auto all = task.val_lengths(torch::arange(task.val_size(), torch::kLong));
  const auto sorted = std::get<0>(all.sort());
  const int64_t cap = sorted[static_cast<int64_t>(0.9 * static_cast<double>(task.val_size() - 1))].item<int64_t>();
  const auto p = task.default_probes(1000);
  EXPECT_GT(p.lengths.size(0), task.val_size() * 8 / 10) << "all the shorter molecules";
  EXPECT_LT(p.lengths.size(0), task.val_size());
  EXPECT_LE(p.lengths.max().item<int64_t>(), cap);
  EXPECT_EQ(p.inputs.size(1), p.lengths.max().item<int64_t>()) << "padded to the longest probe only";
  const auto few = task.default_probes(4);
  ASSERT_EQ(few.source.size(), 4u);
  EXPECT_LT(few.source.front(), few.source.back()) << "spread over the split";
}

// The fingerprint baseline: same data and split as the fine-tuning run, better than the mean.
TEST(Baseline, EcfpForestAndBoostedTreesOnTheRunsSplit) {
  testing::TempDir d;
  const std::string esol = testing::source_path("data/esol/delaney-processed.csv");
  ASSERT_EQ(testing::run_cli({"baseline", testing::source_path("configs/chemberta-esol.yaml"), "--out", d.path("bl"), "--set",
                              "data.csv=" + esol, "run.threads=1"}),
            0);
  std::ifstream f(d.path("bl/baseline_metrics.json"));
  const auto j = nlohmann::json::parse(f);
  EXPECT_EQ(j["split"], "scaffold");
  EXPECT_EQ(j["sizes"]["test"], 113);
  // the test split's spread: a model that predicts a constant scores about this RMSE
  const auto table = data::read_molecule_csv(esol, "smiles", {"measured log solubility in mols per litre"});
  Config cfg = resolve_config(testing::source_path("configs/chemberta-esol.yaml"), {"data.csv=" + esol}).config;
  const auto split = data::config_split(cfg.data, table, 0);
  std::vector<float> y;
  for (int64_t r : split.test) y.push_back(table.targets[r]);
  const double sd = torch::tensor(y).std(false).item<double>();
  for (const char* m : {"rf", "xgb"}) {
    EXPECT_LT(j[m]["test_rmse"].get<double>(), 0.9 * sd) << m << ": clearly better than the mean";
    EXPECT_GT(j[m]["test_r2"].get<double>(), 0.1) << m;
  }
  EXPECT_EQ(data::read_split_file(d.path("bl/split.json"), table.size()).test, split.test) << "the run's split";
  // an existing result is not overwritten; a non-molecular task is refused
  EXPECT_EQ(testing::run_cli({"baseline", testing::source_path("configs/chemberta-esol.yaml"), "--out", d.path("bl"), "--set",
                              "data.csv=" + esol}),
            2);
  EXPECT_EQ(testing::run_cli({"baseline", testing::source_path("configs/minmax.yaml"), "--out", d.path("mm")}), 2);
  EXPECT_FALSE(std::filesystem::exists(d.path("mm")));
}

// The ESOL preset at 2 layers of width 32 with 4 heads.
Config tiny_esol() {
  return resolve_config(testing::source_path("configs/chemberta-esol.yaml"),
                        {"data.csv=" + testing::source_path("data/esol/delaney-processed.csv"), "model.n_layers=2",
                         "model.d_model=32", "model.n_heads=4", "model.d_ff=64", "run.threads=1"})
      .config;
}

// The per-head metrics a recorder takes from evaluate()'s own forward passes equal those of a pass
// of its own over the validation split, and handing the sink changes no evaluation metric.
TEST(MoleculeTask, EvaluationFeedsTheRecorderTheSameAttentionAndTheSameMetrics) {
  const Config cfg = tiny_esol();
  auto task_holder = train::make_task(cfg);
  auto& task = *task_holder;
  const auto plain = task.evaluate();
  std::vector<hooks::HeadMetrics> fused(2), own(2);
  int64_t batches = 0, rows = 0;
  ASSERT_TRUE(task.attention_with_next_evaluate({0, 1}, [&](const std::vector<torch::Tensor>& probs, const torch::Tensor& len) {
    ASSERT_EQ(probs.size(), 2u);
    EXPECT_EQ(probs[0].size(0), len.size(0));
    for (int l = 0; l < 2; ++l) fused[l].add(probs[l], len);
    ++batches;
    rows += len.size(0);
  }));
  const auto with_sink = task.evaluate();
  EXPECT_EQ(plain, with_sink);
  EXPECT_EQ(rows, task.val_size());
  EXPECT_GT(batches, 1) << "evaluation batches by length";
  const auto again = task.evaluate();  // the sink served one evaluation only
  EXPECT_EQ(rows, task.val_size());
  EXPECT_EQ(plain, again);
  const auto idx = torch::arange(task.val_size(), torch::kLong);
  const auto probs = task.val_attention_layers(idx, {0, 1});
  for (int l = 0; l < 2; ++l) {
    own[l].add(probs[l], task.val_lengths(idx));
    const auto a = fused[l].result(), b = own[l].result();
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, v] : a) {
      EXPECT_TRUE(torch::allclose(v, b.at(name), 1e-5, 1e-7)) << name << " layer " << l << ": " << v << " vs " << b.at(name);
    }
  }
}

// Recording on (per-head metrics every epoch, from the evaluation's passes) or off: the same
// metrics.jsonl to the bit, for a molecule run as for min/max.
TEST(MoleculeTask, RecordingLeavesTrainingBitIdentical) {
  testing::TempDir d;
  auto run = [&](const std::string& out, bool on) {
    return testing::run_cli({"train", testing::source_path("configs/chemberta-esol.yaml"), "--out", out, "--set",
                             "data.csv=" + testing::source_path("data/esol/delaney-processed.csv"), "model.n_layers=2",
                             "model.d_model=32", "model.n_heads=4", "model.d_ff=64", "train.epochs=3",
                             "train.batch_size=64", "hooks.attention.every=2", "hooks.attention.probes=4",
                             "hooks.attention.metrics_every=1", std::string("hooks.attention.enabled=") + (on ? "true" : "false"),
                             "run.threads=1", "train.progress=none", "run.log_level=warn"});
  };
  ASSERT_EQ(run(d.path("on"), true), 0);
  ASSERT_EQ(run(d.path("off"), false), 0);
  EXPECT_EQ(testing::metrics_without_seconds(d.path("on/metrics.jsonl")),
            testing::metrics_without_seconds(d.path("off/metrics.jsonl")));
  store::Reader r(d.path("on/attention.h5"));
  EXPECT_EQ(r.metric_epochs(), (std::vector<int64_t>{0, 1, 2, 3}));
}

// Head importance of a molecule model (Michel et al. 2019): gates of 1 change nothing, a gate of 0
// silences its head; the importance from a copy of the weights (the recorder's thread) equals the
// one from the module, is finite, non-negative and of unit norm per layer; copying moves no RNG.
TEST(MoleculeTask, HeadImportanceFromHeadGates) {
  const Config cfg = tiny_esol();
  auto task_holder = train::make_task(cfg);
  auto& task = *task_holder;
  auto& m = dynamic_cast<models::RobertaForSequenceClassificationImpl&>(task.module());
  m.eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::tensor({{0, 20, 21, 22, 2}, {0, 23, 2, 1, 1}}, torch::kLong);
  const auto mask = (ids != 1).to(torch::kLong);
  const auto plain = m.forward(ids, mask);
  models::Taps ones, off;
  for (int64_t l = 0; l < 2; ++l) ones.set_head_gate(l, torch::ones({2, 4}));
  EXPECT_TRUE(torch::equal(m.forward(ids, mask, &ones), plain));
  auto g = torch::ones({2, 4});
  g[0][1] = 0;
  off.set_head_gate(1, g);
  const auto silenced = m.forward(ids, mask, &off);
  EXPECT_FALSE(torch::allclose(silenced[0], plain[0]));
  EXPECT_TRUE(torch::equal(silenced[1], plain[1])) << "the gate is per example";

  torch::manual_seed(7);
  const auto direct = task.head_importance();
  const auto snap = task.snapshot();
  const auto after = torch::randint(1000000, {1}).item<int64_t>();
  torch::manual_seed(7);
  EXPECT_EQ(after, torch::randint(1000000, {1}).item<int64_t>()) << "the run's generator is untouched";
  const auto from_copy = snap->head_importance();
  models::Taps mine, its;
  mine.request(models::site::kAttnProbs);
  its.request(models::site::kAttnProbs);
  task.forward_taps(ids, mine);
  snap->forward_taps(ids, its);
  EXPECT_TRUE(torch::equal(mine.get(models::site::kAttnProbs, 1), its.get(models::site::kAttnProbs, 1)));
  ASSERT_TRUE(direct.defined());
  EXPECT_EQ(direct.sizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_TRUE(torch::allclose(direct, from_copy, 1e-9, 1e-12)) << direct << from_copy;
  EXPECT_TRUE(torch::isfinite(direct).all().item<bool>());
  EXPECT_GE(direct.min().item<double>(), 0.0);
  EXPECT_TRUE(torch::allclose(direct.norm(2, -1), torch::ones({2}, torch::kDouble), 1e-9, 1e-9));
}

}  // namespace
// The task registry builds one class per task kind; each names its kind in file headers and
// writes the problem_type of its kind into the run's config.json.
TEST(TaskRegistry, OneClassPerTaskKind) {
  Config cfg = tiny_esol();
  auto regression = train::make_task(cfg);
  EXPECT_NE(dynamic_cast<train::RegressionTask*>(regression.get()), nullptr);
  EXPECT_EQ(regression->task_name(), "regression");
  cfg.data.task = "classification";
  cfg.data.csv = testing::source_path("data/moleculenet/BBBP.csv");
  cfg.data.targets = {"p_np"};
  cfg.train.best_metric = "val_roc_auc";
  cfg.train.best_mode = "max";
  auto classification = train::make_task(cfg);
  EXPECT_NE(dynamic_cast<train::ClassificationTask*>(classification.get()), nullptr);
  EXPECT_EQ(classification->task_name(), "classification");
  cfg.data.task = "multiclass";
  cfg.train.best_metric = "val_acc";
  auto multiclass = train::make_task(cfg);
  EXPECT_NE(dynamic_cast<train::MulticlassTask*>(multiclass.get()), nullptr);
  testing::TempDir d;
  multiclass->write_run_files(d.path());
  const auto hf = read_json_file(d.path("config.json"));
  EXPECT_EQ(hf.at("problem_type"), "single_label_classification");
  EXPECT_EQ(hf.at("id2label").at("1"), "p_np=1");
  EXPECT_EQ(read_json_file(d.path("targets.json")).at("num_classes"), 2);
  Config minmax;
  minmax.train.epochs = 1;
  auto mm = train::make_task(minmax);
  EXPECT_NE(dynamic_cast<train::MinMaxTask*>(mm.get()), nullptr);
  EXPECT_EQ(mm->task_name(), "minmax");
  for (const auto& t : all_tasks()) EXPECT_TRUE(static_cast<bool>(train::task_factory(t.kind))) << t.name;
}

}  // namespace attnscope

namespace attnscope::train {
namespace {

// Gradient attribution against finite differences of the model itself: scaling every embedding
// by (1 + eps) changes the prediction by eps * sum_t grad_input[t]; scaling one head's attention
// by (1 + eps) changes it by eps * attn_grad[l][h] (central differences). BERT with padding
// and GPT-2 (its classifier reads the last token); padding gets no attribution.
TEST(Attribution, GradientTimesInputAndAttentionTimesGradientMatchFiniteDifferences) {
  const std::string fx = testing::fixture_path("");
  for (const std::string dir : {fx + "/hf-bert-tiny/bert-tiny-classification", fx + "/hf-gpt2-tiny/gpt2-tiny-classification"}) {
    auto m = models::load_model(dir);
    auto& model = *m.hf.model;
    model.eval();
    const bool bert = m.config().model_type == "bert";
    std::vector<std::vector<int64_t>> rows;
    for (const char* text : {"the cat sat on the mat", "spam spam offer"}) rows.push_back(m.tok().encode_pair(text, nullptr, 0).ids);
    if (!bert) rows.resize(1);  // (no padding for the decoder)
    const int64_t P = static_cast<int64_t>(rows.size()), T = static_cast<int64_t>(rows[0].size());
    auto inputs = torch::full({P, T}, bert ? int64_t{0} : rows[0][0], torch::kLong);
    for (int64_t p = 0; p < P; ++p) {
      for (size_t t = 0; t < rows[static_cast<size_t>(p)].size() && static_cast<int64_t>(t) < T; ++t) inputs[p][static_cast<int64_t>(t)] = rows[static_cast<size_t>(p)][t];
    }
    const auto a = attribution_of(model, m.tok(), inputs);
    ASSERT_TRUE(a.grad_input.defined() && a.attn_grad.defined()) << dir;
    const int64_t L = m.config().num_hidden_layers, H = m.config().num_attention_heads;
    ASSERT_EQ(a.attn_grad.sizes().vec(), (std::vector<int64_t>{P, L, H}));
    torch::NoGradGuard ng;
    const auto mask = attention_mask_of(model, m.tok(), inputs), types = token_types_of(model, m.tok(), inputs);
    models::Taps plain;
    plain.request(models::site::kEmbedOut, {0});
    const auto out0 = model.forward(inputs, mask, &plain, types);
    const auto cls = out0.argmax(1, true);
    const auto x = plain.get(models::site::kEmbedOut, 0);
    auto y = [&](double embed_scale, int64_t gl, int64_t gh, double gate) {
      models::Taps t;
      t.set_embed_delta(x * (embed_scale - 1.0));
      if (gl >= 0) {
        auto g = torch::ones({P, H, T, T});
        g.select(1, gh).fill_(gate);
        t.set_probs_gate(gl, g);
      }
      return model.forward(inputs, mask, &t, types).gather(1, cls).squeeze(1).to(torch::kDouble);
    };
    const double eps = 1e-2;
    const auto fd_input = (y(1 + eps, -1, 0, 1) - y(1 - eps, -1, 0, 1)) / (2 * eps);
    for (int64_t p = 0; p < P; ++p) {
      const double want = fd_input[p].item<double>(), got = a.grad_input[p].sum().item<double>();
      EXPECT_NEAR(got, want, 2e-3 + 0.02 * std::abs(want)) << dir << " probe " << p << ": sum of gradient x input";
    }
    if (bert) EXPECT_EQ(a.grad_input[1].masked_select(mask[1] == 0).abs().sum().item<double>(), 0.0) << "padding";
    for (int64_t l = 0; l < L; ++l) {
      for (int64_t h = 0; h < H; ++h) {
        const auto fd = (y(1, l, h, 1 + eps) - y(1, l, h, 1 - eps)) / (2 * eps);
        for (int64_t p = 0; p < P; ++p) {
          const double want = fd[p].item<double>(), got = a.attn_grad[p][l][h].item<double>();
          EXPECT_NEAR(got, want, 2e-3 + 0.02 * std::abs(want)) << dir << " probe " << p << " layer " << l << " head " << h;
        }
      }
    }
  }
  // min/max: the answer token's logit, through the same attribution points of its own network
  {
    Config c = resolve_config(testing::source_path("configs/minmax.yaml"), {"data.minmax_numbers=16"}).config;
    MinMaxTask task(c);
    const auto inputs = task.val_inputs(torch::arange(3, torch::kLong));
    const auto a = task.attribution(inputs);
    ASSERT_TRUE(a.attn_grad.defined());
    auto& net = dynamic_cast<models::MinMaxNetImpl&>(task.module());
    torch::NoGradGuard ng;
    models::Taps plain;
    plain.request(models::site::kEmbedOut, {0});
    const auto cls = net.forward(inputs, &plain).argmax(1, true);
    const auto x = plain.get(models::site::kEmbedOut, 0);
    const int64_t H = a.attn_grad.size(2);
    auto y = [&](double embed_scale, int64_t gh, double gate) {
      models::Taps t;
      t.set_embed_delta(x * (embed_scale - 1.0));
      auto g = torch::ones({inputs.size(0), H, inputs.size(1), inputs.size(1)});
      if (gh >= 0) g.select(1, gh).fill_(gate);
      t.set_probs_gate(0, g);
      return net.forward(inputs, &t).gather(1, cls).squeeze(1).to(torch::kDouble);
    };
    const double eps = 1e-2;
    const auto fd_input = (y(1 + eps, -1, 1) - y(1 - eps, -1, 1)) / (2 * eps);
    for (int64_t p = 0; p < inputs.size(0); ++p) {
      EXPECT_NEAR(a.grad_input[p].sum().item<double>(), fd_input[p].item<double>(), 2e-3 + 0.02 * std::abs(fd_input[p].item<double>()));
      for (int64_t h = 0; h < H; ++h) {
        const double want = ((y(1, h, 1 + eps) - y(1, h, 1 - eps)) / (2 * eps))[p].item<double>();
        EXPECT_NEAR(a.attn_grad[p][0][h].item<double>(), want, 2e-3 + 0.02 * std::abs(want)) << "min/max head " << h;
      }
    }
  }
  // a masked-LM has no single prediction to attribute
  auto mlm = models::load_model(testing::fixture_path("") + "/hf-bert-tiny/bert-tiny-mlm");
  EXPECT_FALSE(attribution_of(*mlm.hf.model, mlm.tok(), torch::ones({1, 4}, torch::kLong)).grad_input.defined());
}

}  // namespace
}  // namespace attnscope::train
