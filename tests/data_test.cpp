// Tokenizers: byte-level BPE against Hugging Face's golden tokenizations of ChemBERTa; molecule
// CSVs, Murcko scaffolds and splits (DeepChem's scaffold split on ESOL), split files, `attnscope split`.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
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

}  // namespace
}  // namespace attnscope::data
