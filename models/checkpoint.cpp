// Checkpoint writing and strict loading (models/checkpoint.h).
#include "models/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/core.h"
#include "models/state_dict.h"

namespace attnscope::models {
namespace {

using Dict = c10::impl::GenericDict;

Dict make_dict() { return Dict(c10::StringType::get(), c10::AnyType::get()); }

torch::Tensor bytes_tensor(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr(), s.data(), s.size());
  return t;
}

std::string tensor_bytes(const torch::Tensor& t) {
  auto c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel());
}

}  // namespace

void save_checkpoint(const std::string& path, torch::nn::Module& model,
                     torch::optim::Optimizer& optimizer, const TrainState& state,
                     const Config& config) {
  Dict weights = make_dict();
  for (const auto& p : model.named_parameters()) weights.insert(p.key(), p.value().detach().clone());
  for (const auto& b : model.named_buffers()) weights.insert(b.key(), b.value().detach().clone());

  std::ostringstream opt_bytes;
  {
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    archive.save_to(opt_bytes);
  }
  Dict st = make_dict();
  st.insert("epoch", state.epoch);
  st.insert("step", state.step);
  st.insert("best_value", state.best_value);
  st.insert("best_epoch", state.best_epoch);
  st.insert("bad_evals", state.bad_evals);
  st.insert("elapsed_seconds", state.elapsed_seconds);

  Dict root = make_dict();
  root.insert("format", std::string("attnscope-checkpoint"));
  root.insert("format_version", kCheckpointFormat);
  root.insert("producer", std::string(kVersion));
  root.insert("config", to_yaml(config));
  root.insert("config_hash", static_cast<int64_t>(config_hash(config)));
  root.insert("state", st);
  root.insert("model", weights);
  root.insert("optimizer", bytes_tensor(opt_bytes.str()));
  root.insert("rng_cpu", at::detail::getDefaultCPUGenerator().get_state());

  const std::vector<char> data = torch::pickle_save(c10::IValue(root));
  write_file_atomic(path, std::string(data.begin(), data.end()));
}

namespace {

c10::impl::GenericDict read_root(const std::string& path) {
  const std::string bytes = read_file(path);
  c10::IValue v;
  try {
    v = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const std::exception& e) {
    throw UsageError("checkpoint '" + path + "' is not readable (" +
                     without_trace(e.what(), 200) + "); expected a file written by attnscope");
  }
  if (!v.isGenericDict()) throw UsageError("checkpoint '" + path + "': expected a dict at the top level");
  const auto root = v.toGenericDict();
  if (!root.contains("format") || root.at("format").toStringRef() != "attnscope-checkpoint") {
    throw UsageError("checkpoint '" + path + "': not an attnscope checkpoint");
  }
  return root;
}

}  // namespace

Config checkpoint_config(const std::string& path) {
  const auto root = read_root(path);
  if (!root.contains("config")) throw UsageError("checkpoint '" + path + "': missing entry 'config'");
  return config_from_yaml(root.at("config").toStringRef(), path);
}

CheckpointInfo load_checkpoint(const std::string& path, torch::nn::Module& model,
                               torch::optim::Optimizer* optimizer, bool restore_rng) {
  const auto root = read_root(path);
  auto need = [&](const char* key) {
    if (!root.contains(key)) throw UsageError("checkpoint '" + path + "': missing entry '" + key + "'");
    return root.at(key);
  };
  const int64_t fv = need("format_version").toInt();
  if (fv != kCheckpointFormat) {
    throw UsageError("checkpoint '" + path + "' has format version " + std::to_string(fv) +
                     "; this attnscope reads version " + std::to_string(kCheckpointFormat) +
                     ": use the attnscope version that wrote it (" + need("producer").toStringRef() + ")");
  }

  // strict weights
  const auto weights = need("model").toGenericDict();
  std::map<std::string, torch::Tensor> given;
  for (const auto& kv : weights) given[kv.key().toStringRef()] = kv.value().toTensor();
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (const auto& p : model.named_parameters()) targets.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers()) targets.emplace_back(b.key(), b.value());
  copy_state(targets, given, "checkpoint '" + path + "' does not fit the model:");
  if (optimizer != nullptr) {
    const std::string ob = tensor_bytes(need("optimizer").toTensor());
    torch::serialize::InputArchive archive;
    archive.load_from(ob.data(), ob.size());
    optimizer->load(archive);
  }
  if (restore_rng) {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(need("rng_cpu").toTensor());
  }

  CheckpointInfo info;
  const auto st = need("state").toGenericDict();
  info.state.epoch = st.at("epoch").toInt();
  info.state.step = st.at("step").toInt();
  info.state.best_value = st.at("best_value").toDouble();
  info.state.best_epoch = st.at("best_epoch").toInt();
  info.state.bad_evals = st.at("bad_evals").toInt();
  info.state.elapsed_seconds = st.at("elapsed_seconds").toDouble();
  info.config_yaml = need("config").toStringRef();
  info.config_hash = static_cast<uint64_t>(need("config_hash").toInt());
  info.producer = need("producer").toStringRef();
  return info;
}

std::string run_checkpoint(const std::string& run_dir) {
  const RunDir run{run_dir};
  return std::filesystem::exists(run.best_checkpoint()) ? run.best_checkpoint() : run.last_checkpoint();
}

}  // namespace attnscope::models
