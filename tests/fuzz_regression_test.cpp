// The fuzz corpora and every input a fuzzer crashed on, replayed in the normal (GCC) build through
// the entry points the libFuzzer programs use (fuzz/fuzz_entries.h): fuzz/corpus/<target>/ and
// fuzz/regressions/<target>/. An input passes when the entry returns; a reader's exception is a
// fine answer to bad input, a crash or a broken invariant (abort) fails the test. `make fuzz`
// writes new crash inputs into fuzz/regressions/. Inputs too large to keep as files (deep nests,
// long SMILES) are built here.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/core.h"
#include "fuzz/fuzz_entries.h"
#include "test_util.h"

namespace attnscope::fuzz {
namespace {

using Entry = int (*)(const uint8_t*, size_t);

std::vector<std::filesystem::path> inputs(const std::string& dir_kind, const std::string& target) {
  std::vector<std::filesystem::path> out;
  const auto dir = std::filesystem::path(ATTNSCOPE_SOURCE_DIR) / "fuzz" / dir_kind / target;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().filename().string().rfind('.', 0) != 0) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

int replay(const std::string& dir_kind, const std::string& target, Entry entry) {
  int n = 0;
  for (const auto& file : inputs(dir_kind, target)) {
    SCOPED_TRACE(file.string());
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    entry(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++n;
  }
  return n;
}

int run(const std::string& bytes, Entry entry) {
  return entry(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

TEST(FuzzCorpus, Safetensors) { EXPECT_GT(replay("corpus", "fuzz_safetensors", fuzz_safetensors), 0); }
TEST(FuzzCorpus, TorchPickle) { EXPECT_GT(replay("corpus", "fuzz_torch_pickle", fuzz_torch_pickle), 0); }
TEST(FuzzCorpus, Bpe) { EXPECT_GT(replay("corpus", "fuzz_bpe", fuzz_bpe), 0); }
TEST(FuzzCorpus, Smiles) { EXPECT_GT(replay("corpus", "fuzz_smiles", fuzz_smiles), 0); }
TEST(FuzzCorpus, WordPiece) { EXPECT_GT(replay("corpus", "fuzz_wordpiece", fuzz_wordpiece), 0); }

TEST(FuzzRegressions, Safetensors) { replay("regressions", "fuzz_safetensors", fuzz_safetensors); }
TEST(FuzzRegressions, TorchPickle) { replay("regressions", "fuzz_torch_pickle", fuzz_torch_pickle); }
TEST(FuzzRegressions, Bpe) { replay("regressions", "fuzz_bpe", fuzz_bpe); }
TEST(FuzzRegressions, Smiles) { replay("regressions", "fuzz_smiles", fuzz_smiles); }
TEST(FuzzRegressions, WordPiece) { replay("regressions", "fuzz_wordpiece", fuzz_wordpiece); }
TEST(FuzzCorpus, HfConfig) { EXPECT_GT(replay("corpus", "fuzz_hf_config", fuzz_hf_config), 0); }
TEST(FuzzCorpus, AttentionH5) { EXPECT_GT(replay("corpus", "fuzz_attention_h5", fuzz_attention_h5), 0); }
TEST(FuzzCorpus, MoleculeCsv) { EXPECT_GT(replay("corpus", "fuzz_molecule_csv", fuzz_molecule_csv), 0); }
TEST(FuzzRegressions, HfConfig) { replay("regressions", "fuzz_hf_config", fuzz_hf_config); }
TEST(FuzzRegressions, AttentionH5) { replay("regressions", "fuzz_attention_h5", fuzz_attention_h5); }
TEST(FuzzRegressions, MoleculeCsv) { replay("regressions", "fuzz_molecule_csv", fuzz_molecule_csv); }
TEST(FuzzCorpus, RequestJson) { EXPECT_GT(replay("corpus", "fuzz_request_json", fuzz_request_json), 0); }
TEST(FuzzRegressions, RequestJson) { replay("regressions", "fuzz_request_json", fuzz_request_json); }

// The seeds are valid files: the readers accept them (the corpus replay alone would also pass if
// every seed were refused).
TEST(FuzzCorpus, SeedsAreAccepted) {
  const auto st = inputs("corpus", "fuzz_safetensors");
  ASSERT_FALSE(st.empty());
  for (const auto& f : st) EXPECT_NO_THROW(models::read_safetensors(f.string())) << f;
  const auto bin = std::filesystem::path(ATTNSCOPE_SOURCE_DIR) / "fuzz/corpus/fuzz_torch_pickle/tiny_model.bin";
  const auto tensors = models::read_torch_state_dict(bin.string());
  ASSERT_EQ(tensors.size(), 4u);
  EXPECT_TRUE(torch::equal(tensors.at("layer.bias"), torch::tensor({3.0f, 4.0f, 5.0f})));  // a view at offset 3
  EXPECT_TRUE(torch::equal(tensors.at("layer.weight_t"), tensors.at("embeddings.weight").t()));
  // the new targets' seeds: valid configs, the unedited attention file, a plain CSV
  for (const char* f : {"tiny-regression.json", "chemberta-zinc-base-v1.json", "labels.json"}) {
    EXPECT_NO_THROW(models::read_hf_config((std::filesystem::path(ATTNSCOPE_SOURCE_DIR) / "fuzz/corpus/fuzz_hf_config" / f).string()))
        << f;
  }
  EXPECT_NO_THROW(read_like_render(store::Reader(attention_seed())));
  const auto csv = data::read_molecule_csv(
      (std::filesystem::path(ATTNSCOPE_SOURCE_DIR) / "fuzz/corpus/fuzz_molecule_csv/plain.csv").string(), "smiles", {"y"}, true);
  EXPECT_EQ(csv.size(), 2);
}

// std::regex recursed once per character of a bracket atom: ~40 KB overflowed the stack.
TEST(FuzzRegressions, LongBracketAtomSplitsWithoutRecursion) {
  const std::string atom = "[" + std::string(1 << 20, 'C') + "]";
  const auto tokens = attnscope::smiles_split("C" + atom + "O");
  ASSERT_EQ(tokens.size(), 3u);
  EXPECT_EQ(tokens[1], atom);
  EXPECT_THROW(attnscope::smiles_split("C[" + std::string(1 << 20, 'C')), UsageError);
  run("C" + atom, fuzz_smiles);
}

// Deeply nested pickle values were destroyed recursively (one frame per level).
TEST(FuzzRegressions, DeeplyNestedPickleIsRefusedWithoutRecursion) {
  std::string pkl = "\x80\x02)";
  pkl += std::string(1 << 20, '\x85');  // TUPLE1 a million times: ((((),),),)...
  pkl += ".";
  run(pkl, fuzz_torch_pickle);
  std::string lists = "\x80\x02";
  for (int i = 0; i < 200000; ++i) lists += "]";
  for (int i = 0; i < 199999; ++i) lists += "a";
  lists += ".";
  run(lists, fuzz_torch_pickle);
}

// Sizes claimed by a file are checked against the file before anything is allocated.
template <typename F>
std::string usage_error_of(F f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no UsageError)";
}

TEST(FuzzRegressions, ClaimedSizesAreCheckedBeforeAllocating) {
  auto file = [](const std::string& kind, const std::string& name) {
    return (std::filesystem::path(ATTNSCOPE_SOURCE_DIR) / "fuzz/regressions" / kind / name).string();
  };
  EXPECT_NE(usage_error_of([&] { models::read_safetensors(file("fuzz_safetensors", "crash-shape-product-overflows")); })
                .find("larger than the file"),
            std::string::npos);
  EXPECT_NE(usage_error_of([&] { models::read_safetensors(file("fuzz_safetensors", "crash-shape-float-1e300")); })
                .find("non-negative integer"),
            std::string::npos);
  EXPECT_NE(usage_error_of([&] { models::read_torch_state_dict(file("fuzz_torch_pickle", "oom-zip-entry-claims-4GiB")); })
                .find("claims 4294967280 bytes"),
            std::string::npos);
  // The pickles are wrapped into a zip by the fuzz entry; here by hand.
  for (const char* name : {"oom-storage-claims-2pow40-elements", "oom-stride-0-view-of-one-float"}) {
    std::ifstream in(file("fuzz_torch_pickle", name), std::ios::binary);
    const std::string pkl((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    TempFile zip("claims.bin");
    {
      caffe2::serialize::PyTorchStreamWriter writer(zip.path());
      writer.writeRecord("data.pkl", pkl.data(), pkl.size());
      const std::string storage(256, '\x01');
      writer.writeRecord("data/0", storage.data(), 64);
      writer.writeRecord("data/1", storage.data(), 256);
      writer.writeEndOfFile();
    }
    const auto what = usage_error_of([&] { models::read_torch_state_dict(zip.path()); });
    EXPECT_TRUE(what.find("too short") != std::string::npos || what.find("larger than the file") != std::string::npos)
        << name << ": " << what;
  }
}


// ---- every command on a directory of hostile inputs --------------------------------------------

// The fuzzers' seeds and regressions, and hand-made cases, through every command that reads them,
// as child processes: each run exits 0 or 2 (never 1, never a signal), says no "internal error",
// and a refused run leaves no output behind. (Three tests, so that ctest runs them side by side.)
class Hostile {
 public:
  Hostile() {
    char tmpl[] = "/tmp/attnscope-hostile-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~Hostile() { std::filesystem::remove_all(dir); }
  void check(const std::vector<std::string>& args, const std::vector<std::string>& outputs) {
    std::string line;
    for (const auto& x : args) line += x + " ";
    SCOPED_TRACE(line);
    const auto [code, err] = attnscope::testing::run_child(args);
    ++runs;
    EXPECT_TRUE(code == 0 || code == 2) << "exit " << code << ": " << err;
    EXPECT_EQ(err.find("internal error"), std::string::npos) << err;
    if (code == 2) {
      for (const auto& o : outputs) EXPECT_FALSE(std::filesystem::exists(o)) << o << " left behind: " << err;
    }
    for (const auto& o : outputs) std::filesystem::remove_all(o);
  }
  std::filesystem::path dir;
  int runs = 0;
  const std::filesystem::path src{ATTNSCOPE_SOURCE_DIR};
  const std::string tiny = (src / "tests/fixtures/hf-roberta-tiny/roberta-tiny-regression").string();
};

// Models: the tiny model with each fuzz config.json, each safetensors file and each pickle.
TEST(HostileInputs, ModelCommandsExitZeroOrTwoAndARefusalWritesNothing) {
  namespace fs = std::filesystem;
  Hostile h;
  std::vector<fs::path> models;
  auto model_with = [&](const std::string& name, const std::string& file, const fs::path& from) {
    const fs::path m = h.dir / ("model-" + name);
    fs::create_directories(m);
    for (const char* f : {"config.json", "vocab.json", "merges.txt", "model.safetensors"}) {
      if (std::string(f) != file && !(file == "pytorch_model.bin" && std::string(f) == "model.safetensors")) {
        fs::copy_file(fs::path(h.tiny) / f, m / f);
      }
    }
    fs::copy_file(from, m / file);
    models.push_back(m);
  };
  for (const char* kind : {"corpus", "regressions"}) {
    for (const auto& f : inputs(kind, "fuzz_hf_config")) model_with(std::string(kind) + "-cfg-" + f.filename().string(), "config.json", f);
    for (const auto& f : inputs(kind, "fuzz_safetensors")) model_with(std::string(kind) + "-st-" + f.filename().string(), "model.safetensors", f);
    for (const auto& f : inputs(kind, "fuzz_torch_pickle")) {
      if (f.filename().string().rfind("oom-storage", 0) == 0 || f.filename().string().rfind("oom-stride", 0) == 0) continue;  // bare pickles
      model_with(std::string(kind) + "-pkl-" + f.filename().string(), "pytorch_model.bin", f);
    }
  }
  for (const auto& m : models) {
    const std::string out = (h.dir / "out").string();
    h.check({"predict", "--model", m.string(), "--smiles", "CCO", "--output", out + ".csv"}, {out + ".csv"});
    h.check({"export", "--model", m.string(), "--hf", out}, {out});
    h.check({"snapshot", "--model", m.string(), "--smiles", "CCO", "--out", out + ".h5"}, {out + ".h5"});
    if (m.filename().string().find("-cfg-") != std::string::npos) {  // (tokenize reads no weights)
      h.check({"tokenize", "--model", m.string(), "--smiles", "CCO"}, {});
    }
  }
  EXPECT_GT(h.runs, 40);
}

// Attention files: the fuzz seed file edited by each fuzz input, through render and metrics.
TEST(HostileInputs, AttentionFileCommandsExitZeroOrTwoAndARefusalWritesNothing) {
  namespace fs = std::filesystem;
  Hostile h;
  for (const char* kind : {"corpus", "regressions"}) {
    for (const auto& f : inputs(kind, "fuzz_attention_h5")) {
      std::ifstream in(f, std::ios::binary);
      const std::string edits((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const fs::path h5 = h.dir / (std::string(kind) + "-" + f.filename().string() + ".h5");
      fs::copy_file(attention_seed(), h5);
      const hid_t file = H5Fopen(h5.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
      ASSERT_GE(file, 0);
      for (size_t i = 0; i + 4 <= edits.size(); i += 4) edit_attention_file(file, reinterpret_cast<const uint8_t*>(edits.data()) + i);
      H5Fclose(file);
      h.check({"render", h5.string(), "--out", (h.dir / "fig").string()}, {(h.dir / "fig").string()});
      h.check({"metrics", h5.string()}, {});
    }
  }
  EXPECT_GT(h.runs, 10);
}

// Molecule CSVs: split, predict, and a one-epoch training run.
TEST(HostileInputs, CsvCommandsExitZeroOrTwoAndARefusalWritesNothing) {
  Hostile h;
  for (const char* kind : {"corpus", "regressions"}) {
    for (const auto& f : inputs(kind, "fuzz_molecule_csv")) {
      const std::string out = (h.dir / "out").string();
      h.check({"split", f.string(), "--method", "scaffold", "--out", out + ".json"}, {out + ".json"});
      h.check({"predict", "--model", h.tiny, "--smiles-file", f.string(), "--output", out + ".csv"}, {out + ".csv"});
      h.check({"train", (h.src / "configs/chemberta-esol.yaml").string(), "--out", out, "--set", "data.csv=" + f.string(),
               "data.targets=[y]", "data.split=random", "data.frac_train=0.5", "data.frac_val=0.25", "model.n_layers=1",
               "model.d_model=16", "model.n_heads=2", "model.d_ff=16", "train.epochs=1", "hooks.attention.enabled=false",
               "train.progress=none", "run.threads=1"},
              {out});
    }
  }
  EXPECT_GT(h.runs, 15);
}

}  // namespace
}  // namespace attnscope::fuzz
