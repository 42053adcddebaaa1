// The min/max network, its tap points, and the fused path's equality with the plain module;
// the RoBERTa encoder's parity with Hugging Face transformers.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>

#include "core/core.h"
#include <caffe2/serialize/inline_container.h>

#include "data/data.h"
#include "models/models.h"
#include "test_util.h"

namespace attnscope::models {
namespace {

MinMaxNet make_net(uint64_t seed, double scale = 1.0) {
  MinMaxNet net(MinMaxNetOptions{});
  auto gen = at::detail::createCPUGenerator(seed);
  net->reset_parameters(gen);
  torch::NoGradGuard g;
  for (auto& p : net->parameters()) p.mul_(scale);
  return net;
}

TEST(MinMaxNet, HasThePublishedParameters) {
  auto net = make_net(0);
  int64_t n = 0;
  for (const auto& p : net->parameters()) n += p.numel();
  EXPECT_EQ(n, 8416);
  const auto params = net->named_parameters();
  EXPECT_EQ(params["W_E"].sizes(), (std::vector<int64_t>{131, 32}));
  EXPECT_EQ(params["W_pos"].sizes(), (std::vector<int64_t>{4, 32}));
  EXPECT_EQ(params["W_Q"].sizes(), (std::vector<int64_t>{2, 16, 32}));
  EXPECT_EQ(params["W_O"].sizes(), (std::vector<int64_t>{2, 32, 16}));
  EXPECT_NEAR(params["W_E"].std().item<double>(), 1 / std::sqrt(32.0), 0.01);
}

TEST(MinMaxNet, InitIsAFunctionOfTheSeed) {
  auto a = make_net(7), b = make_net(7), c = make_net(8);
  EXPECT_TRUE(torch::equal(a->W_Q, b->W_Q));
  EXPECT_FALSE(torch::equal(a->W_Q, c->W_Q));
}

TEST(Taps, OnlyRequestedSitesAreCaptured) {
  auto net = make_net(1);
  data::MinMaxVocab v;
  auto x = data::minmax_grid(v, true).inputs.slice(0, 0, 10);
  Taps none;
  net->forward(x, &none);
  EXPECT_TRUE(none.captured().empty());

  Taps taps;
  taps.request(site::kAttnProbs, {0}, {1});
  taps.request(site::kPooled);
  const auto logits = net->forward(x, &taps);
  EXPECT_EQ(taps.captured().size(), 2u);
  const auto probs = taps.get(site::kAttnProbs, 0);
  ASSERT_TRUE(probs.defined());
  EXPECT_EQ(probs.sizes(), (std::vector<int64_t>{10, 1, 4, 4}));  // head 1 only
  EXPECT_TRUE(torch::allclose(probs.sum(-1), torch::ones({10, 1, 4})));
  EXPECT_FALSE(probs.requires_grad());
  EXPECT_FALSE(taps.get(site::kAttnScores, 0).defined());
  EXPECT_EQ(taps.get(site::kPooled, 0).sizes(), (std::vector<int64_t>{10, 32}));
  // the tap is a copy: the logits do not depend on what the taps hold
  EXPECT_TRUE(torch::allclose(logits, torch::matmul(taps.get(site::kPooled, 0), net->W_E.t().detach())));
}

TEST(Taps, ScoresAndProbsAgree) {
  auto net = make_net(2);
  data::MinMaxVocab v;
  auto x = data::minmax_grid(v, false).inputs.slice(0, 0, 5);
  Taps taps;
  taps.request(site::kAttnScores);
  taps.request(site::kAttnProbs);
  net->forward(x, &taps);
  EXPECT_TRUE(torch::allclose(torch::softmax(taps.get(site::kAttnScores, 0), -1),
                              taps.get(site::kAttnProbs, 0)));
}

// Loss, correct count and every parameter gradient: fused path vs the module through autograd.
void expect_fused_matches_module(double scale, int threads) {
  at::set_num_threads(threads);
  auto net = make_net(3, scale);
  auto gen = at::detail::createCPUGenerator(11);
  const int64_t B = 1000;
  auto x = torch::randint(0, 131, {B, 4}, gen, torch::kLong);  // any token anywhere
  auto y = torch::randint(0, 131, {B}, gen, torch::kLong);

  net->zero_grad();
  auto logits = net->forward(x);
  auto loss = torch::nn::functional::cross_entropy(logits, y);
  loss.backward();
  std::map<std::string, torch::Tensor> ref;
  for (const auto& p : net->named_parameters()) ref[p.key()] = p.value().grad().clone();
  const int64_t ref_correct = (logits.argmax(-1) == y).sum().item<int64_t>();

  net->zero_grad();
  const auto r = minmax_fused_step(*net, x, y, true);
  EXPECT_NEAR(r.loss_sum / B, loss.item<double>(), 1e-5 * std::max(1.0, loss.item<double>()));
  EXPECT_EQ(r.correct, ref_correct);
  for (const auto& p : net->named_parameters()) {
    const auto& g = p.value().grad();
    const double tol = 1e-4 * ref[p.key()].abs().max().item<double>() + 1e-7;
    EXPECT_LT((g - ref[p.key()]).abs().max().item<double>(), tol) << p.key() << " scale " << scale;
  }
  at::set_num_threads(1);
}

TEST(MinMaxFast, SameLossAndGradientsAsTheModule) { expect_fused_matches_module(1.0, 1); }
TEST(MinMaxFast, SameOnTwoThreads) { expect_fused_matches_module(1.0, 2); }
// Large weights: scores spread far beyond exp's range, exercising the exact-softmax fallback.
TEST(MinMaxFast, SameWithExtremeScores) { expect_fused_matches_module(6.0, 1); }

TEST(MinMaxFast, ForwardOnlyNeedsNoGradients) {
  auto net = make_net(4);
  data::MinMaxVocab v;
  const auto ex = data::minmax_grid(v, true);
  const auto r = minmax_fused_step(*net, ex.inputs, ex.targets, false);
  EXPECT_FALSE(r.gS.defined());
  EXPECT_FALSE(net->W_E.grad().defined());
  torch::NoGradGuard g;
  const auto loss = torch::nn::functional::cross_entropy(net->forward(ex.inputs), ex.targets,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  EXPECT_NEAR(r.loss_sum, loss.item<double>(), 1e-4 * loss.item<double>());
}

TEST(MinMaxData, GridAndSplitFollowThePublishedCode) {
  data::MinMaxVocab v;
  const auto g = data::minmax_grid(v, true);
  EXPECT_EQ(g.size(), 128 * 128);
  EXPECT_TRUE(torch::equal(g.inputs[130], torch::tensor({1, 128, 2, 130}, torch::kLong)));  // a-major
  EXPECT_EQ(g.targets[130].item<int64_t>(), 2);
  auto gen = at::detail::createCPUGenerator(0);
  const auto s = data::make_minmax_split(128, 1.0 / 3.0, gen);
  EXPECT_EQ(s.train.size(), 10922);
  EXPECT_EQ(s.val.size(), 21846);
  EXPECT_EQ(data::minmax_text(v, s.train.inputs[0]).back(), '=');
  // every example appears exactly once across the split
  auto all = torch::cat({s.train.inputs, s.val.inputs});
  auto key = all.select(1, 0) * 1000000 + all.select(1, 2) * 1000 + all.select(1, 1);
  EXPECT_EQ(std::get<0>(at::_unique(key)).size(0), 32768);
}

// Golden values from the original PyTorch code (torch 1.13, `torch.manual_seed(0)`, then
// `torch.randperm(32768)` and `torch.randn(131, 32) / sqrt(32)`): attnscope draws the split and the
// initialisation from the same stream in the same order, so seed s here is seed s there.
TEST(MinMaxData, SeedGivesThePyTorchReferenceSplitAndInit) {
  auto gen = at::detail::createCPUGenerator(0);
  const auto s = data::make_minmax_split(128, 1.0 / 3.0, gen);
  // randperm(32768)[:2] = [2732, 22971]: 2732 = max(21, 44); 22971 - 16384 = 6587 = min(51, 59)
  EXPECT_TRUE(torch::equal(s.train.inputs[0], torch::tensor({21, 128, 44, 130}, torch::kLong)));
  EXPECT_TRUE(torch::equal(s.train.inputs[1], torch::tensor({51, 129, 59, 130}, torch::kLong)));
  MinMaxNet net(MinMaxNetOptions{});
  net->reset_parameters(gen);
  EXPECT_FLOAT_EQ(net->W_E[0][0].item<float>(), 0.10685187578201294f);
  EXPECT_FLOAT_EQ(net->W_E[0][1].item<float>(), -0.17288976907730103f);
  EXPECT_FLOAT_EQ(net->W_E[0][2].item<float>(), 0.10674555599689484f);
}

TEST(Batching, EpochOrderIsSeededAndComplete) {
  const auto a = data::epoch_order(100, 5, 1), b = data::epoch_order(100, 5, 1), c = data::epoch_order(100, 5, 2);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_TRUE(torch::equal(std::get<0>(a.sort()), torch::arange(100)));
  const auto batches = data::make_batches(a, 32);
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches.back().size(0), 4);
  EXPECT_EQ(data::make_batches(a, 0).size(), 1u);
}

}  // namespace
}  // namespace attnscope::models

// ---- RoBERTa: parity with Hugging Face transformers on the tiny fixtures (tests/fixtures) -------

namespace attnscope::models {
namespace {

std::string fixtures() { return attnscope::testing::fixture_path("hf-roberta-tiny"); }


nlohmann::json expected() {
  std::ifstream in(fixtures() + "/roberta-tiny-expected.json");
  return nlohmann::json::parse(in);
}

torch::Tensor to_tensor(const nlohmann::json& j, torch::ScalarType type = torch::kFloat) {
  std::vector<double> flat;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& x) {
    if (x.is_array()) for (const auto& y : x) walk(y); else flat.push_back(x.get<double>());
  };
  walk(j);
  return torch::tensor(flat, torch::kDouble).to(type);
}

TEST(Roberta, SubmoduleNamesAreHuggingFaceStateDictNames) {
  TransformerConfig c;
  c.num_hidden_layers = 1;
  RobertaForSequenceClassification m(c);
  std::vector<std::string> names;
  for (const auto& p : m->named_parameters()) names.push_back(p.key());
  const std::vector<std::string> golden = {
      "roberta.embeddings.word_embeddings.weight", "roberta.embeddings.position_embeddings.weight",
      "roberta.embeddings.token_type_embeddings.weight", "roberta.embeddings.LayerNorm.weight",
      "roberta.embeddings.LayerNorm.bias", "roberta.encoder.layer.0.attention.self.query.weight",
      "roberta.encoder.layer.0.attention.self.query.bias", "roberta.encoder.layer.0.attention.self.key.weight",
      "roberta.encoder.layer.0.attention.self.key.bias", "roberta.encoder.layer.0.attention.self.value.weight",
      "roberta.encoder.layer.0.attention.self.value.bias", "roberta.encoder.layer.0.attention.output.dense.weight",
      "roberta.encoder.layer.0.attention.output.dense.bias", "roberta.encoder.layer.0.attention.output.LayerNorm.weight",
      "roberta.encoder.layer.0.attention.output.LayerNorm.bias", "roberta.encoder.layer.0.intermediate.dense.weight",
      "roberta.encoder.layer.0.intermediate.dense.bias", "roberta.encoder.layer.0.output.dense.weight",
      "roberta.encoder.layer.0.output.dense.bias", "roberta.encoder.layer.0.output.LayerNorm.weight",
      "roberta.encoder.layer.0.output.LayerNorm.bias", "classifier.dense.weight", "classifier.dense.bias",
      "classifier.out_proj.weight", "classifier.out_proj.bias"};
  EXPECT_EQ(names, golden);
  RobertaForMaskedLM mlm(c);
  std::vector<std::string> heads;
  for (const auto& p : mlm->named_parameters()) if (p.key().rfind("lm_head", 0) == 0) heads.push_back(p.key());
  EXPECT_EQ(heads, (std::vector<std::string>{"lm_head.bias", "lm_head.dense.weight", "lm_head.dense.bias",
                                             "lm_head.layer_norm.weight", "lm_head.layer_norm.bias"}));
}

TEST(Roberta, RegressionModelMatchesTransformers) {
  const auto dir = fixtures() + "/roberta-tiny-regression";
  const auto c = read_hf_config(dir + "/config.json");
  EXPECT_EQ(c.hidden_size, 48);
  EXPECT_EQ(c.num_labels, 1);
  RobertaForSequenceClassification m(c);
  load_hf_state(*m, read_safetensors(dir + "/model.safetensors"), dir + "/model.safetensors");
  m->eval();
  const auto e = expected();
  const auto ids = to_tensor(e["input_ids"], torch::kLong).view({7, -1});
  const auto mask = to_tensor(e["attention_mask"], torch::kLong).view({7, -1});
  const int64_t T = ids.size(1);
  Taps taps;
  taps.request(site::kAttnProbs);
  taps.request(site::kBlockOut);
  torch::NoGradGuard ng;
  const auto logits = m->forward(ids, mask, &taps);
  const auto& r = e["models"]["regression"];
  EXPECT_LT((logits.flatten() - to_tensor(r["logits"]).flatten()).abs().max().item<double>(), 1e-5);
  for (int64_t l = 0; l < 2; ++l) {
    const auto want = to_tensor(r["attentions"][l]).view({7, 4, T, T});
    EXPECT_LT((taps.get(site::kAttnProbs, l) - want).abs().max().item<double>(), 1e-5) << "layer " << l;
  }
  const auto hidden = to_tensor(r["last_hidden_state"]).view({7, T, 48});
  // padded positions differ by design between implementations only if masking were wrong: compare all
  EXPECT_LT((taps.get(site::kBlockOut, 1) - hidden).abs().max().item<double>(), 1e-5);
}

TEST(Roberta, MaskedLMMatchesTransformersWithTiedDecoder) {
  const auto dir = fixtures() + "/roberta-tiny-mlm";
  RobertaForMaskedLM m(read_hf_config(dir + "/config.json"));
  load_hf_state(*m, read_safetensors(dir + "/model.safetensors"), dir + "/model.safetensors");
  m->eval();
  const auto e = expected();
  const auto ids = to_tensor(e["input_ids"], torch::kLong).view({7, -1});
  const auto mask = to_tensor(e["attention_mask"], torch::kLong).view({7, -1});
  torch::NoGradGuard ng;
  const auto logits = m->forward(ids, mask);  // [7,T,V]
  const auto sample = logits.slice(1, 1, 4).slice(2, 0, 20);
  const auto want = to_tensor(e["models"]["mlm"]["logits_masked_positions_sample"]).view({7, 3, 20});
  EXPECT_LT((sample - want).abs().max().item<double>(), 1e-5);
}

TEST(Roberta, SafetensorsRoundTrip) {
  const auto dir = fixtures() + "/roberta-tiny-regression";
  RobertaForSequenceClassification m(read_hf_config(dir + "/config.json"));
  load_hf_state(*m, read_safetensors(dir + "/model.safetensors"), dir);
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : m->named_parameters()) state[p.key()] = p.value();
  const auto out = (std::filesystem::temp_directory_path() / "attnscope-roundtrip.safetensors").string();
  write_safetensors(out, state);
  const auto back = read_safetensors(out);
  std::filesystem::remove(out);
  ASSERT_EQ(back.size(), state.size());
  for (const auto& [name, t] : state) EXPECT_TRUE(torch::equal(back.at(name), t)) << name;
  // the same bytes a Hugging Face file holds for the same tensors
  const auto original = read_safetensors(dir + "/model.safetensors");
  for (const auto& [name, t] : state) EXPECT_TRUE(torch::equal(original.at(name), t)) << name;
}

TEST(Roberta, PytorchModelBinEqualsSafetensors) {
  const auto dir = fixtures() + "/roberta-tiny-regression";
  const auto bin = read_torch_state_dict(dir + "/pytorch_model.bin");
  const auto st = read_safetensors(dir + "/model.safetensors");
  EXPECT_TRUE(bin.count("roberta.embeddings.position_ids"));  // the buffer torch.save kept
  for (const auto& [name, t] : st) {
    ASSERT_TRUE(bin.count(name)) << name;
    EXPECT_TRUE(torch::equal(bin.at(name), t)) << name;
  }
  RobertaForSequenceClassification m(read_hf_config(dir + "/config.json"));
  load_hf_state(*m, bin, dir + "/pytorch_model.bin");  // strict: only the optional buffer is extra
  EXPECT_THROW(read_torch_state_dict(dir + "/model.safetensors"), UsageError);
}

TEST(Roberta, MlmCheckpointLoadsItsEncoderUnderANewHead) {
  const auto dir = fixtures() + "/roberta-tiny-mlm";
  const auto tensors = read_safetensors(dir + "/model.safetensors");
  RobertaForSequenceClassification m(read_hf_config(dir + "/config.json"));
  EXPECT_THROW(load_hf_state(*m, tensors, dir), UsageError);  // strict by default
  std::vector<std::string> fresh;
  load_hf_state(*m, tensors, dir, &fresh);
  EXPECT_EQ(fresh, (std::vector<std::string>{"classifier.dense.weight", "classifier.dense.bias",
                                             "classifier.out_proj.weight", "classifier.out_proj.bias"}));
  EXPECT_TRUE(torch::equal(m->body->embeddings->word_embeddings->weight,
                           tensors.at("roberta.embeddings.word_embeddings.weight")));
}

TEST(TorchPickle, ForeignGlobalsAreRefusedByName) {
  const auto path = (std::filesystem::temp_directory_path() / "attnscope-evil.bin").string();
  {
    caffe2::serialize::PyTorchStreamWriter writer(path);
    const std::string pkl = std::string("\x80\x02") + "cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85R.";
    writer.writeRecord("data.pkl", pkl.data(), pkl.size());
    writer.writeEndOfFile();
  }
  try {
    read_torch_state_dict(path);
    FAIL() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'os.system'"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(Roberta, ParityFromPytorchModelBin) {
  const auto dir = fixtures() + "/roberta-tiny-regression";
  RobertaForSequenceClassification m(read_hf_config(dir + "/config.json"));
  load_hf_state(*m, read_torch_state_dict(dir + "/pytorch_model.bin"), dir);
  m->eval();
  const auto e = expected();
  const auto ids = to_tensor(e["input_ids"], torch::kLong).view({7, -1});
  const auto mask = to_tensor(e["attention_mask"], torch::kLong).view({7, -1});
  torch::NoGradGuard ng;
  const auto logits = m->forward(ids, mask);
  EXPECT_LT((logits.flatten() - to_tensor(e["models"]["regression"]["logits"]).flatten()).abs().max().item<double>(), 1e-5);
}

TEST(Safetensors, MalformedFilesAreRefused) {
  const auto path = (std::filesystem::temp_directory_path() / "attnscope-bad.safetensors").string();
  std::ofstream(path) << std::string("\x10\0\0\0\0\0\0\0{\"a\": 1}      ", sizeof("\x10\0\0\0\0\0\0\0{\"a\": 1}      ") - 1);
  EXPECT_THROW(read_safetensors(path), UsageError);
  std::ofstream(path) << "short";
  EXPECT_THROW(read_safetensors(path), UsageError);
  std::filesystem::remove(path);
}

TEST(Roberta, StrictLoadNamesEveryProblem) {
  const auto dir = fixtures() + "/roberta-tiny-regression";
  auto tensors = read_safetensors(dir + "/model.safetensors");
  tensors.erase("classifier.dense.bias");
  tensors["classifier.extra.weight"] = torch::zeros({1});
  tensors["roberta.embeddings.LayerNorm.weight"] = torch::zeros({47});
  RobertaForSequenceClassification m(read_hf_config(dir + "/config.json"));
  try {
    load_hf_state(*m, tensors, "x.safetensors");
    FAIL();
  } catch (const UsageError& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("missing tensor 'classifier.dense.bias'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unexpected tensor 'classifier.extra.weight'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'roberta.embeddings.LayerNorm.weight' has shape [47]"), std::string::npos) << msg;
  }

}

// ---- the model registry --------------------------------------------------------------------------

TEST(Registry, FamiliesByModelTypeAndOneLoaderForEveryForm) {
  const auto& roberta = model_family("roberta", "here");
  EXPECT_EQ(&model_family("", "here"), &roberta) << "config.json without model_type: RoBERTa, as transformers";
  EXPECT_EQ(roberta.architecture_for(TaskKind::MaskedLM), kRobertaMaskedLM);
  EXPECT_EQ(roberta.architecture_for(TaskKind::Regression), kRobertaClassifier);
  EXPECT_EQ(model_family("bert", "here").architecture_for(TaskKind::Multiclass), kBertClassifier);
  EXPECT_EQ(model_family("gpt2", "here").architecture_for(TaskKind::CausalLM), kGpt2LM);
  try {
    model_family("t5", "'x/config.json'");
    ADD_FAILURE() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("model_type 't5' is not supported (known: roberta, bert, gpt2)"), std::string::npos) << e.what();
  }
  // a Hugging Face directory through the registry: the same module as load_hf_model
  const std::string dir = fixtures() + "/roberta-tiny-regression";
  auto m = load_model(dir);
  EXPECT_TRUE(m.run_dir.empty());
  EXPECT_EQ(m.hf.architecture, kRobertaClassifier);
  ASSERT_NE(m.tokenizer, nullptr);
  const auto direct = load_hf_model(dir);
  const auto a = m.hf.module().named_parameters(), b = direct.model->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : a) EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
  // a fresh model of each architecture
  for (const char* arch : {kRobertaClassifier, kRobertaMaskedLM, kRobertaEncoder}) {
    auto fresh = roberta.build(m.config(), arch);
    EXPECT_EQ(fresh.architecture, arch);
    EXPECT_GT(fresh.module().parameters().size(), 0u);
  }
}

TEST(StateDict, OneStrictCheckNamesEveryProblem) {
  torch::nn::Linear lin(3, 2);
  std::vector<std::pair<std::string, torch::Tensor>> module;
  for (const auto& p : lin->named_parameters()) module.emplace_back(p.key(), p.value());
  std::map<std::string, torch::Tensor> given = {{"weight", torch::ones({2, 4})}, {"extra", torch::zeros({1})}};
  try {
    copy_state(module, given, "'f' does not fit the model:");
    ADD_FAILURE() << "expected a UsageError";
  } catch (const UsageError& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("'f' does not fit the model:\n  - "), std::string::npos) << w;
    EXPECT_NE(w.find("tensor 'weight' has shape [2, 4], the model expects [2, 3]"), std::string::npos) << w;
    EXPECT_NE(w.find("missing tensor 'bias'"), std::string::npos) << w;
    EXPECT_NE(w.find("unexpected tensor 'extra'"), std::string::npos) << w;
  }
  EXPECT_FALSE(torch::equal(lin->weight, torch::ones({2, 3}))) << "nothing copied on refusal";
  // tolerated: a missing bias, an extra tensor, another shape (kept as initialised)
  StateRules rules;
  rules.may_be_missing = [](const std::string& n) { return n == "bias"; };
  rules.may_be_extra = [](const std::string& n) { return n == "extra"; };
  rules.may_differ = [](const std::string& n) { return n == "weight"; };
  const auto fit = copy_state(module, given, "h", rules);
  EXPECT_EQ(fit.absent, std::vector<std::string>{"bias"});
  EXPECT_EQ(fit.reshaped, std::vector<std::string>{"weight"});
  given = {{"weight", torch::full({2, 3}, 2.0, torch::kDouble)}, {"bias", torch::ones({2})}};
  copy_state(module, given, "h");
  EXPECT_TRUE(torch::equal(lin->weight, torch::full({2, 3}, 2.0))) << "converted to the module's dtype";
}

}  // namespace
}  // namespace attnscope::models

// ---- BERT and GPT-2: parity with transformers on the tiny fixtures (tests/fixtures) -------------

namespace attnscope::models {
namespace {

nlohmann::json expected_of(const std::string& family) {
  std::ifstream in(attnscope::testing::fixture_path("hf-" + family + "-tiny") + "/" + family + "-tiny-expected.json");
  return nlohmann::json::parse(in);
}

// Every layer's attention, the last hidden state and the logits (or the LM slice [:, :4, :20])
// of `dir` loaded through the one loader, against transformers' within 1e-5. `pad`: the pad id
// padded positions hold (their outputs are compared too).
void expect_parity(const std::string& family, const std::string& model_key, const std::string& dir, const std::string& arch) {
  const auto e = expected_of(family);
  const auto& r = e["models"][model_key];
  auto m = load_hf_model(dir);
  EXPECT_EQ(m.architecture, arch);
  EXPECT_TRUE(m.new_heads.empty());
  const auto shape = r["attentions_shape"].get<std::vector<int64_t>>();  // [B,H,T,T]
  const int64_t B = shape[0], H = shape[1], T = shape[2];
  const auto ids = to_tensor(e["input_ids"], torch::kLong).view({B, T});
  const auto mask = to_tensor(e["attention_mask"], torch::kLong).view({B, T});
  const auto types = e.contains("token_type_ids") ? to_tensor(e["token_type_ids"], torch::kLong).view({B, T}) : torch::Tensor();
  Taps taps;
  taps.request(site::kAttnProbs);
  torch::NoGradGuard ng;
  const auto out = m.model->forward(ids, mask, &taps, types);
  const auto hidden = m.model->hidden(ids, mask, nullptr, types);
  for (int64_t l = 0; l < m.config.num_hidden_layers; ++l) {
    const auto want = to_tensor(r["attentions"][static_cast<size_t>(l)]).view({B, H, T, T});
    EXPECT_LT((taps.get(site::kAttnProbs, l) - want).abs().max().item<double>(), 1e-5) << dir << " layer " << l;
  }
  const int64_t D = m.config.hidden_size;
  EXPECT_LT((hidden - to_tensor(r["last_hidden_state"]).view({B, T, D})).abs().max().item<double>(), 1e-5) << dir;
  const auto logits_shape = r["logits_shape"].get<std::vector<int64_t>>();
  if (r.contains("logits")) {
    EXPECT_EQ(out.sizes().vec(), logits_shape);
    EXPECT_LT((out - to_tensor(r["logits"]).view(out.sizes())).abs().max().item<double>(), 1e-5) << dir;
  } else {
    ASSERT_EQ(out.sizes().vec(), logits_shape);
    const auto sample = out.slice(1, 0, 4).slice(2, 0, 20);
    EXPECT_LT((sample - to_tensor(r["logits_sample"]).view({B, 4, 20})).abs().max().item<double>(), 1e-5) << dir;
  }
}

std::string bert_dir(const std::string& m) { return attnscope::testing::fixture_path("hf-bert-tiny") + "/bert-tiny-" + m; }
std::string gpt2_dir(const std::string& m) { return attnscope::testing::fixture_path("hf-gpt2-tiny") + "/gpt2-tiny-" + m; }

TEST(Bert, ClassifierMatchesTransformersOnTextsAndPairs) {
  expect_parity("bert", "classification", bert_dir("classification"), kBertClassifier);
}
TEST(Bert, MaskedLMMatchesTransformersWithTiedDecoder) { expect_parity("bert", "mlm", bert_dir("mlm"), kBertMaskedLM); }
TEST(Gpt2, LMHeadModelMatchesTransformersWithCausalMask) { expect_parity("gpt2", "lm", gpt2_dir("lm"), kGpt2LM); }
TEST(Gpt2, ClassifierScoresTheLastRealToken) {
  expect_parity("gpt2", "classification", gpt2_dir("classification"), kGpt2Classifier);
}

// pytorch_model.bin (with GPT-2's causal-mask buffers and the tied lm_head.weight; BERT's
// position_ids) loads to the same tensors as model.safetensors.
TEST(Bert, PytorchModelBinEqualsSafetensorsForBothFamilies) {
  for (const auto& dir : {bert_dir("classification"), gpt2_dir("lm")}) {
    const auto bin = read_torch_state_dict(dir + "/pytorch_model.bin");
    const auto st = read_safetensors(dir + "/model.safetensors");
    const auto config = read_hf_config(dir + "/config.json");
    auto a = build_transformer(config, config.model_type == "gpt2" ? kGpt2LM : kBertClassifier);
    auto b = build_transformer(config, config.model_type == "gpt2" ? kGpt2LM : kBertClassifier);
    load_hf_state(*a, bin, dir + "/pytorch_model.bin");
    load_hf_state(*b, st, dir + "/model.safetensors");
    const auto pa = a->named_parameters(), pb = b->named_parameters();
    for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << dir << " " << p.key();
  }
}

TEST(Gpt2, CausalMapsAreLowerTriangles) {
  auto m = load_hf_model(gpt2_dir("lm"));
  const auto ids = torch::tensor({{39, 695, 78, 11, 995}}, torch::kLong);
  Taps taps;
  taps.request(site::kAttnProbs);
  torch::NoGradGuard ng;
  m.model->hidden(ids, torch::ones_like(ids), &taps);
  const auto p = taps.get(site::kAttnProbs, 0);
  EXPECT_EQ(p.triu(1).abs().max().item<float>(), 0.0f);
  EXPECT_LT((p.sum(-1) - 1).abs().max().item<float>(), 1e-6);
  EXPECT_NEAR(p[0][0][0][0].item<float>(), 1.0f, 1e-7);  // the first token sees itself only
}

// The internal tap sites compose the forward: embeddings by component sum (BERT: then LayerNorm)
// to embed.out; q . k / sqrt(d) + mask is attn.scores; probs x v is attn.context; the context
// through the output projection, the residual and feed-forward output give block.out (and BERT's
// last block.out is transformers' last hidden state).
template <typename M>
M& submodule(torch::nn::Module& model, const std::string& suffix) {
  for (const auto& item : model.named_modules()) {
    const auto& k = item.key();
    if (k.size() >= suffix.size() && k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0) {
      if (auto* m = item.value()->as<M>()) return *m;
    }
  }
  throw std::runtime_error("no submodule " + suffix);
}

void expect_internals_compose(const std::string& family, const std::string& model_key, const std::string& dir) {
  const auto e = expected_of(family);
  const auto& r = e["models"][model_key];
  auto m = load_hf_model(dir);
  const auto shape = r["attentions_shape"].get<std::vector<int64_t>>();
  const int64_t B = shape[0], H = shape[1], T = shape[2], D = m.config.hidden_size, d = D / H, L = m.config.num_hidden_layers;
  const auto ids = to_tensor(e["input_ids"], torch::kLong).view({B, T});
  const auto mask = to_tensor(e["attention_mask"], torch::kLong).view({B, T});
  const auto types = e.contains("token_type_ids") ? to_tensor(e["token_type_ids"], torch::kLong).view({B, T}) : torch::Tensor();
  Taps taps;
  for (const char* s : {site::kEmbedWord, site::kEmbedPosition, site::kEmbedType, site::kEmbedOut, site::kAttnQ, site::kAttnK,
                        site::kAttnV, site::kAttnContext, site::kAttnScores, site::kAttnProbs, site::kFfnOut, site::kBlockOut}) {
    taps.request(s);
  }
  torch::NoGradGuard ng;
  m.model->eval();
  const auto hidden = m.model->hidden(ids, mask, &taps, types);
  const bool bert = family == "bert";
  const auto near = [](const torch::Tensor& a, const torch::Tensor& b, double tol) { return (a - b).abs().max().item<double>() < tol; };
  // embeddings
  auto sum = taps.get(site::kEmbedWord, 0) + taps.get(site::kEmbedPosition, 0);
  ASSERT_EQ(taps.get(site::kEmbedWord, 0).sizes(), (std::vector<int64_t>{B, T, D}));
  EXPECT_EQ(taps.get(site::kEmbedType, 0).defined(), bert) << "segment embeddings: BERT only";
  if (bert) sum = submodule<torch::nn::LayerNormImpl>(*m.model, "embeddings.LayerNorm").forward(sum + taps.get(site::kEmbedType, 0));
  EXPECT_TRUE(near(sum, taps.get(site::kEmbedOut, 0), 1e-5)) << dir;
  auto x = taps.get(site::kEmbedOut, 0);
  for (int64_t l = 0; l < L; ++l) {
    const auto q = taps.get(site::kAttnQ, l), k = taps.get(site::kAttnK, l), v = taps.get(site::kAttnV, l);
    ASSERT_EQ(q.sizes(), (std::vector<int64_t>{B, H, T, d}));
    const auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(d));
    const auto recorded = taps.get(site::kAttnScores, l);
    const auto allowed = recorded > -1e30;  // (masked keys hold the dtype's lowest value plus the scores)
    EXPECT_TRUE(near(scores.masked_select(allowed), recorded.masked_select(allowed), 1e-4)) << dir << " layer " << l;
    const auto context = taps.get(site::kAttnContext, l);
    EXPECT_TRUE(near(torch::matmul(taps.get(site::kAttnProbs, l), v), context, 1e-5)) << dir << " layer " << l;
    const auto merged = context.transpose(1, 2).reshape({B, T, D});
    const std::string at = (bert ? "layer." : "h.") + std::to_string(l) + ".";
    torch::Tensor out;
    if (bert) {
      const auto attended = submodule<torch::nn::LayerNormImpl>(*m.model, at + "attention.output.LayerNorm")
                                .forward(submodule<torch::nn::LinearImpl>(*m.model, at + "attention.output.dense").forward(merged) + x);
      out = submodule<torch::nn::LayerNormImpl>(*m.model, at + "output.LayerNorm").forward(taps.get(site::kFfnOut, l) + attended);
    } else {
      const auto& proj = submodule<Conv1DImpl>(*m.model, at + "attn.c_proj");
      out = x + (torch::matmul(merged, proj.weight) + proj.bias) + taps.get(site::kFfnOut, l);
    }
    EXPECT_TRUE(near(out, taps.get(site::kBlockOut, l), 1e-4)) << dir << " layer " << l;
    x = taps.get(site::kBlockOut, l);
  }
  if (bert) EXPECT_TRUE(near(x, hidden, 1e-6)) << "the last block.out is the last hidden state";
}

TEST(Taps, InternalSitesComposeTheForward) {
  expect_internals_compose("bert", "classification", bert_dir("classification"));
  expect_internals_compose("gpt2", "lm", gpt2_dir("lm"));
}

// Names are transformers' state-dict names, so a file maps one to one.
TEST(Bert, SubmoduleNamesAreTransformersNames) {
  const auto check = [](const std::string& dir, const std::string& arch) {
    const auto st = read_safetensors(dir + "/model.safetensors");
    auto m = build_transformer(read_hf_config(dir + "/config.json"), arch);
    for (const auto& p : m->named_parameters()) {
      if (!m->is_optional_tensor(p.key())) EXPECT_TRUE(st.count(p.key())) << arch << " " << p.key();
    }
  };
  check(bert_dir("classification"), kBertClassifier);
  check(bert_dir("mlm"), kBertMaskedLM);
  check(gpt2_dir("lm"), kGpt2LM);
  check(gpt2_dir("classification"), kGpt2Classifier);
}

TEST(Registry, UnknownModelTypeListsTheSupportedOnes) {
  attnscope::testing::TempDir d;
  std::filesystem::create_directories(d.path("m"));
  write_file_atomic(d.path("m/config.json"), R"({"model_type": "t5", "d_model": 8})");
  try {
    load_model(d.path("m"));
    FAIL() << "t5 loaded";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("t5"), std::string::npos) << msg;
    EXPECT_NE(msg.find("roberta, bert, gpt2"), std::string::npos) << msg;
  }
}

// A BERT MLM checkpoint fine-tuned for classification: the body loads, the pooler and classifier
// are new heads (as transformers warns).
TEST(Bert, MlmCheckpointLoadsItsBodyUnderAClassifier) {
  const auto dir = bert_dir("mlm");
  auto c = read_hf_config(dir + "/config.json");
  c.num_labels = 2;
  auto m = build_transformer(c, kBertClassifier);
  std::vector<std::string> fresh;
  load_hf_state(*m, read_safetensors(dir + "/model.safetensors"), dir, &fresh);
  EXPECT_EQ(fresh, (std::vector<std::string>{"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight",
                                             "classifier.bias"}));
}

// Export writes what the loader (and transformers) read back: same tensors, same outputs.
TEST(Export, BertAndGpt2RoundTrip) {
  attnscope::testing::TempDir d;
  for (const auto& dir : {bert_dir("classification"), gpt2_dir("lm")}) {
    auto m = load_hf_model(dir);
    const std::string out = d.path(m.config.model_type);
    export_hf_model(m.module(), m.config, m.architecture, dir, out);
    auto back = load_hf_model(out);
    EXPECT_EQ(back.architecture, m.architecture);
    EXPECT_EQ(back.config.model_type, m.config.model_type);
    const auto pa = m.model->named_parameters(), pb = back.model->named_parameters();
    for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << out << " " << p.key();
    EXPECT_TRUE(data::load_tokenizer(out)->vocab_size() > 0);
    const auto tc = read_json_file(out + "/tokenizer_config.json");
    EXPECT_EQ(tc["tokenizer_class"], m.config.model_type == "gpt2" ? "GPT2Tokenizer" : "BertTokenizer");
  }
}

// Attention-only blocks: the MLP is skipped and its weights are zero, so the export (whose
// config.json transformers reads as a plain GPT-2) computes the same logits without the flag.
TEST(Gpt2, AttentionOnlyExportsAsAPlainGpt2WithTheSameOutputs) {
  attnscope::testing::TempDir d;
  auto c = read_hf_config(gpt2_dir("lm") + "/config.json");
  c.attn_only = true;
  c.intermediate_size = 1;
  torch::manual_seed(3);
  auto m = build_transformer(c, kGpt2LM);
  m->eval();
  for (const auto& p : m->named_parameters()) {
    const bool mlp = p.key().find(".mlp.") != std::string::npos, ln_2 = p.key().find(".ln_2.") != std::string::npos;
    if (mlp) EXPECT_TRUE(p.value().eq(0).all().item<bool>()) << p.key();
    EXPECT_EQ(p.value().requires_grad(), !mlp && !ln_2) << p.key() << ": only what the blocks use is trained";
  }
  const std::string out = d.path("attn-only");
  export_hf_model(*m, c, kGpt2LM, gpt2_dir("lm"), out);
  EXPECT_TRUE(read_hf_config(out + "/config.json").attn_only);
  // as transformers sees it: the same file without attnscope's key
  auto cfg = read_json_file(out + "/config.json");
  cfg.erase("attnscope_attn_only");
  write_file_atomic(out + "/config.json", cfg.dump());
  auto plain = load_hf_model(out);
  EXPECT_FALSE(plain.config.attn_only);
  const auto ids = torch::tensor({{5, 9, 2, 7, 7, 1}}, torch::kLong);
  const auto mask = torch::ones_like(ids);
  torch::NoGradGuard ng;
  const auto a = m->forward(ids, mask), b = plain.model->forward(ids, mask);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_GT(a.abs().max().item<double>(), 0);
}

// Rotary positions make layer 0's scores a function of the relative position only: the same
// tokens one position later score the same; wpe is unused (zero, frozen), and export refuses.
TEST(Gpt2, RotaryScoresDependOnRelativePositionOnly) {
  auto c = read_hf_config(gpt2_dir("lm") + "/config.json");
  c.position_embedding = "rotary";
  torch::manual_seed(4);
  auto m = build_transformer(c, kGpt2LM);
  m->eval();  // no dropout
  const auto tokens = torch::tensor({{5, 9, 2, 7, 3}}, torch::kLong);
  const auto shifted = torch::tensor({{11, 5, 9, 2, 7, 3}}, torch::kLong);
  const auto lower = torch::ones({5, 5}, torch::kBool).tril();
  torch::NoGradGuard ng;
  // layer 0's scores of the five tokens, alone and one position later
  const auto shift_gap = [&](Transformer& model) {
    Taps ta, tb;
    ta.request(site::kAttnScores);
    tb.request(site::kAttnScores);
    model->forward(tokens, torch::ones_like(tokens), &ta);
    model->forward(shifted, torch::ones_like(shifted), &tb);
    const auto gap = ta.get(site::kAttnScores, 0) - tb.get(site::kAttnScores, 0).slice(2, 1).slice(3, 1);
    return gap.index({0}).masked_select(lower.expand_as(gap.index({0}))).abs().max().item<double>();
  };
  EXPECT_LT(shift_gap(m), 1e-5);
  // absolute positions do differ: the same check on the plain model fails
  auto plain_c = c;
  plain_c.position_embedding = "absolute";
  torch::manual_seed(4);
  auto plain = build_transformer(plain_c, kGpt2LM);
  plain->eval();
  EXPECT_GT(shift_gap(plain), 1e-4);
  for (const auto& p : m->named_parameters()) {
    if (p.key().find("wpe.") == std::string::npos) continue;
    EXPECT_TRUE(p.value().eq(0).all().item<bool>());
    EXPECT_FALSE(p.value().requires_grad());
  }
  attnscope::testing::TempDir d;
  EXPECT_THROW(export_hf_model(*m, c, kGpt2LM, gpt2_dir("lm"), d.path("rotary")), UsageError);
  EXPECT_FALSE(std::filesystem::exists(d.path("rotary") + "/model.safetensors"));
  EXPECT_EQ(nlohmann::json::parse(hf_config_json(c, kGpt2LM))["attnscope_position_embedding"], "rotary");
}

}  // namespace
}  // namespace attnscope::models
