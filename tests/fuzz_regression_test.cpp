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

#include "core/error.h"
#include "fuzz/fuzz_entries.h"

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

TEST(FuzzRegressions, Safetensors) { replay("regressions", "fuzz_safetensors", fuzz_safetensors); }
TEST(FuzzRegressions, TorchPickle) { replay("regressions", "fuzz_torch_pickle", fuzz_torch_pickle); }
TEST(FuzzRegressions, Bpe) { replay("regressions", "fuzz_bpe", fuzz_bpe); }
TEST(FuzzRegressions, Smiles) { replay("regressions", "fuzz_smiles", fuzz_smiles); }

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
}

// std::regex recursed once per character of a bracket atom: ~40 KB overflowed the stack.
TEST(FuzzRegressions, LongBracketAtomSplitsWithoutRecursion) {
  const std::string atom = "[" + std::string(1 << 20, 'C') + "]";
  const auto tokens = data::smiles_split("C" + atom + "O");
  ASSERT_EQ(tokens.size(), 3u);
  EXPECT_EQ(tokens[1], atom);
  EXPECT_THROW(data::smiles_split("C[" + std::string(1 << 20, 'C')), UsageError);
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

}  // namespace
}  // namespace attnscope::fuzz
