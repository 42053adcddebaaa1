// Tokenizers: byte-level BPE against Hugging Face's golden tokenizations of ChemBERTa.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/data.h"
#include "test_util.h"

namespace attnscope::data {
namespace {

std::string tokenizer_dir() {
  return std::string(ATTNSCOPE_SOURCE_DIR) + "/../shared/fixtures/chemberta-zinc-base-v1-tokenizer";
}

TEST(Gpt2Pretokenize, FollowsThePattern) {
  using V = std::vector<std::string>;
  EXPECT_EQ(gpt2_pretokenize("hello world"), (V{"hello", " world"}));
  EXPECT_EQ(gpt2_pretokenize("a  b"), (V{"a", " ", " b"}));
  EXPECT_EQ(gpt2_pretokenize("it's 42!"), (V{"it", "'s", " 42", "!"}));
  EXPECT_EQ(gpt2_pretokenize("x\n\ny"), (V{"x", "\n", "\n", "y"}));
  EXPECT_EQ(gpt2_pretokenize("C[C@@H](N)C(=O)O"), (V{"C", "[", "C", "@@", "H", "](", "N", ")", "C", "(=", "O", ")", "O"}));
  EXPECT_EQ(gpt2_pretokenize("c1ccccc1Cl"), (V{"c", "1", "ccccc", "1", "Cl"}));
  EXPECT_EQ(gpt2_pretokenize("end  "), (V{"end", "  "}));
}

TEST(BpeTokenizer, ReproducesHuggingFaceOnChemBERTa) {
  if (!std::filesystem::exists(tokenizer_dir())) GTEST_SKIP() << "../shared/fixtures not found beside the source tree";
  const auto tok = BpeTokenizer::from_dir(tokenizer_dir());
  EXPECT_EQ(tok.vocab_size(), 767);
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.pad_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 3);
  EXPECT_EQ(tok.mask_id(), 4);
  std::ifstream in(tokenizer_dir() + "/golden_tokenization.json");
  const auto golden = nlohmann::json::parse(in);
  ASSERT_EQ(golden["cases"].size(), 26u);
  for (const auto& c : golden["cases"]) {
    const std::string smiles = c["smiles"];
    EXPECT_EQ(tok.tokenize(smiles), c["tokens"].get<std::vector<std::string>>()) << smiles;
    EXPECT_EQ(tok.encode(smiles), c["input_ids"].get<std::vector<int64_t>>()) << smiles;
  }
}

TEST(BpeTokenizer, TruncationPaddingAndMasks) {
  if (!std::filesystem::exists(tokenizer_dir())) GTEST_SKIP() << "../shared/fixtures not found beside the source tree";
  const auto tok = BpeTokenizer::from_dir(tokenizer_dir());
  const auto ids = tok.encode("CCCCCCCCCC(C)O", 5);  // <s> + 3 tokens + </s>
  EXPECT_EQ(ids, (std::vector<int64_t>{0, 285, 365, 12, 2}));
  const auto b = tok.encode_batch({"CCO", "CCCCCCCCCC(C)O"});
  EXPECT_EQ(b.input_ids.sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(b.input_ids[0][3].item<int64_t>(), tok.pad_id());
  EXPECT_EQ(b.attention_mask[0].sum().item<int64_t>(), 3);
  EXPECT_EQ(b.attention_mask[1].sum().item<int64_t>(), 8);
}

TEST(BpeTokenizer, BadFilesNameTheProblem) {
  testing::TempDir d;
  testing::write_text(d.path("vocab.json"), "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3, \"<mask>\": 4}");
  testing::write_text(d.path("merges.txt"), "#version: 0.2\nc c\nbroken\n");
  try {
    BpeTokenizer::from_dir(d.path());
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("merges.txt:3"), std::string::npos) << e.what();
  }
  testing::write_text(d.path("vocab.json"), "[1, 2]");
  EXPECT_THROW(BpeTokenizer::from_dir(d.path()), UsageError);
}

}  // namespace
}  // namespace attnscope::data
