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

TEST(BpeTokenizer, SpansCoverTheInput) {
  if (!std::filesystem::exists(tokenizer_dir())) GTEST_SKIP() << "../shared/fixtures not found beside the source tree";
  const auto tok = BpeTokenizer::from_dir(tokenizer_dir());
  std::vector<Span> spans;
  const std::string s = "CCCCCCCCCC(C)O";
  const auto toks = tok.tokenize(s, &spans);
  ASSERT_EQ(spans.size(), toks.size());
  EXPECT_EQ(spans, (std::vector<Span>{{0, 4}, {4, 10}, {10, 11}, {11, 12}, {12, 13}, {13, 14}}));
  std::string joined;
  for (const auto& [b, e] : spans) joined += s.substr(b, e - b);
  EXPECT_EQ(joined, s);
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

TEST(SmilesSplit, AtomLevelTokensWithSpans) {
  using V = std::vector<std::string>;
  std::vector<Span> spans;
  EXPECT_EQ(smiles_split("C[C@@H](N)C(=O)O", &spans), (V{"C", "[C@@H]", "(", "N", ")", "C", "(", "=", "O", ")", "O"}));
  EXPECT_EQ(spans[1], (Span{1, 7}));
  EXPECT_EQ(smiles_split("N#Cc1ccccc1Cl"), (V{"N", "#", "C", "c", "1", "c", "c", "c", "c", "c", "1", "Cl"}));
  EXPECT_EQ(smiles_split("C%10CCBr.[Na+]"), (V{"C", "%10", "C", "C", "Br", ".", "[Na+]"}));
  EXPECT_EQ(smiles_split("F/C=C/F"), (V{"F", "/", "C", "=", "C", "/", "F"}));
  EXPECT_THROW(smiles_split("CCX"), UsageError);
  for (const std::string s : {"OCC3OC(OCC2OC(OC(C#N)c1ccccc1)C(O)C(O)C2O)C(O)C(O)C3O", "[CH][I-][Br-]"}) {
    std::string joined;
    for (const auto& t : smiles_split(s)) joined += t;
    EXPECT_EQ(joined, s);  // round trip
  }
}

TEST(SmilesTokenizer, VocabularyFromACorpusSavedAndLoaded) {
  const auto tok = SmilesTokenizer::build({"CCO", "c1ccccc1", "CC#N"});
  EXPECT_EQ(tok.id_token(0), "<s>");
  EXPECT_EQ(tok.id_token(5), "c");  // the most frequent first (6 times), then C (4)
  EXPECT_EQ(tok.id_token(6), "C");
  std::vector<Span> spans;
  const auto ids = tok.encode("CCBr", 0, &spans);
  EXPECT_EQ(ids.front(), SmilesTokenizer::kBos);
  EXPECT_EQ(ids.back(), SmilesTokenizer::kEos);
  EXPECT_EQ(ids[3], SmilesTokenizer::kUnk);  // Br is not in the corpus
  EXPECT_EQ(spans, (std::vector<Span>{{0, 1}, {1, 2}, {2, 4}}));
  testing::TempDir d;
  tok.save(d.path("vocab.json"));
  const auto back = SmilesTokenizer::load(d.path("vocab.json"));
  EXPECT_EQ(back.vocab_size(), tok.vocab_size());
  EXPECT_EQ(back.encode("CC#N"), tok.encode("CC#N"));
  EXPECT_EQ(tok.encode("CCCCC", 4).size(), 4u);
}

}  // namespace
}  // namespace attnscope::data
