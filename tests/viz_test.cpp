// viz/: figures drawn where the data say (pixels read back with cairo), `attnscope render` on a
// real run, the report's embedded data, and bad input (exit 2, nothing in the output removed).
#include <cairo.h>
#include <hdf5.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <strings.h>
#include <sys/wait.h>
#include <signal.h>

#include <cmath>
#include <map>
#include <set>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <chrono>
#include <thread>

#include "analysis/analysis.h"
#include "core/core.h"
#include "store/store.h"
#include "test_util.h"
#include "viz/figures.h"
#include "viz/plot.h"
#include "viz/report.h"
#include "viz/run.h"
#include "viz/viz.h"

namespace fs = std::filesystem;
using namespace attnscope;
using namespace attnscope::testing;

namespace {

struct Pixel {
  int r, g, b;
};

// The colour at (x, y) of a PNG (0,0 top left).
Pixel pixel_at(const std::string& png, int x, int y) {
  cairo_surface_t* s = cairo_image_surface_create_from_png(png.c_str());
  EXPECT_EQ(cairo_surface_status(s), CAIRO_STATUS_SUCCESS) << png;
  cairo_surface_flush(s);
  const unsigned char* data = cairo_image_surface_get_data(s);
  const int stride = cairo_image_surface_get_stride(s);
  const uint32_t v = *reinterpret_cast<const uint32_t*>(data + y * stride + 4 * x);  // ARGB32, native endian
  cairo_surface_destroy(s);
  return {static_cast<int>((v >> 16) & 255), static_cast<int>((v >> 8) & 255), static_cast<int>(v & 255)};
}

bool is_png(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char sig[8] = {};
  in.read(sig, 8);
  return in && std::string(sig + 1, 3) == "PNG";
}

// A short recorded min/max run shared by the tests below (built once).
const std::string& recorded_run() {
  static TempDir dir;
  static const std::string run = [] {
    const std::string out = dir.path() + "/mm";
    auto args = small_minmax(out, 30);
    args.push_back("--set");
    args.push_back("hooks.attention.every=10");
    EXPECT_EQ(run_cli(args), 0);
    return out;
  }();
  return run;
}

std::string stderr_of(const std::vector<std::string>& args, int* code) {
  ::testing::internal::CaptureStderr();
  *code = run_cli(args);
  return ::testing::internal::GetCapturedStderr();
}

}  // namespace

TEST(Plot, HeatmapPutsRowZeroAtTheTopAndColumnZeroLeft) {
  TempDir dir;
  const std::string png = dir.path() + "/map.png";
  {
    viz::Canvas c(png, "png", 600, 600);
    viz::HeatmapStyle st;
    st.xlabels = st.ylabels = {"a", "b"};
    // row 0 = [1, 0], row 1 = [0, 0]: the one bright cell must be drawn top left
    c.heatmap({0.2, 0.8, 0.2, 0.8}, {1.f, 0.f, 0.f, 0.f}, 2, 2, st);
    c.finish();
  }
  ASSERT_TRUE(is_png(png));
  // panel spans x 120..480, y 120..480 (page y grows downwards); cell centres at 210 and 390
  const Pixel top_left = pixel_at(png, 210, 210), top_right = pixel_at(png, 390, 210),
              bottom_left = pixel_at(png, 210, 390);
  EXPECT_GT(top_left.r, 200) << "viridis(1) is yellow";
  EXPECT_GT(top_left.g, 200);
  EXPECT_LT(top_right.g, 40) << "viridis(0) is dark purple";
  EXPECT_LT(bottom_left.g, 40);
  EXPECT_FALSE(fs::exists(png + ".part"));
}

TEST(Plot, PlplotEscapeCharacterIsDoubled) { EXPECT_EQ(viz::pl_escape("C#N"), "C##N"); }

TEST(Viz, PcaRecoversTheDominantDirection) {
  // points on a line along (1, 2, 0) plus a small uncorrelated offset along z: PC1 is the
  // position on the line (times |(1,2)| = sqrt 5), PC2 the offset
  const float z[10] = {1, -1, 1, -1, 0, 0, -1, 1, -1, 1};  // even in i <-> 9-i, zero mean
  std::vector<float> x;
  for (int i = 0; i < 10; ++i) {
    const float t = static_cast<float>(i) - 4.5f;
    x.insert(x.end(), {t, 2 * t, 0.1f * z[i]});
  }
  const auto pc = viz::pca2(x, 10, 3);
  for (int i = 0; i < 10; ++i) {
    EXPECT_NEAR(std::fabs(pc[i][0]), std::fabs(i - 4.5) * std::sqrt(5.0), 1e-4);
    EXPECT_NEAR(std::fabs(pc[i][1]), 0.1 * std::fabs(z[i]), 1e-4);
  }
}

// The validation projection's numerics: pca_rows (through X, for thousands of rows) equals the
// Gram-matrix PCA up to sign; k-means finds three separated blobs whatever the order of rows,
// numbered by size.
TEST(Viz, PcaRowsEqualsPcaAndKmeansFindsSeparatedBlobs) {
  std::vector<float> x;
  std::vector<int64_t> truth;
  uint64_t s = 11;
  auto noise = [&] {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<float>((s >> 40) % 1000) / 1000.0f - 0.5f;
  };
  const float centres[3][4] = {{10, 0, 0, 0}, {0, 10, 0, 0}, {0, 0, 10, 5}};
  for (int i = 0; i < 60; ++i) {  // the blobs interleaved, of different sizes
    const int b = i % 3 == 2 && i < 30 ? 2 : i % 2 == 1 && i < 41 ? 1 : 0;
    truth.push_back(b);
    for (int j = 0; j < 4; ++j) x.push_back(centres[b][j] + noise());
  }
  int64_t count[3] = {0, 0, 0};
  for (auto b : truth) ++count[b];
  const auto a = analysis::pca(x, 60, 4, 2), b = analysis::pca_rows(x, 60, 4, 2);
  for (int i = 0; i < 60; ++i) {
    for (int c = 0; c < 2; ++c) EXPECT_NEAR(std::fabs(a[i][c]), std::fabs(b[i][c]), 1e-4) << i << " " << c;
  }
  const auto k = analysis::kmeans(x, 60, 4, 3);
  ASSERT_EQ(k.label.size(), 60u);
  // the same partition as the truth, and cluster 0 the largest
  std::map<int64_t, int64_t> to;
  for (int i = 0; i < 60; ++i) {
    auto [it, added] = to.emplace(truth[i], k.label[i]);
    EXPECT_EQ(it->second, k.label[i]) << "row " << i << " split from its blob";
  }
  EXPECT_EQ(std::set<int64_t>(k.label.begin(), k.label.end()).size(), 3u);
  int64_t largest = 0;
  for (int b2 = 0; b2 < 3; ++b2) {
    if (count[b2] > count[largest]) largest = b2;
  }
  EXPECT_EQ(to[largest], 0);
}

TEST(Viz, SpreadKeepsFirstAndLast) {
  EXPECT_EQ(viz::spread(3, 8), (std::vector<int64_t>{0, 1, 2}));
  const auto s = viz::spread(76, 8);
  EXPECT_EQ(s.size(), 8u);
  EXPECT_EQ(s.front(), 0);
  EXPECT_EQ(s.back(), 75);
}

TEST(Store, HyperslabReadsEqualTheWholeEpochRead) {
  store::Reader r(recorded_run() + "/attention.h5");
  const auto& p = r.probes();
  const int64_t L = r.header().layer_ids.size(), H = r.header().head_ids.size(), T = p.max_len;
  const auto all = r.map("attn.probs", 1);
  const auto probe = r.probe_map("attn.probs", 1, 3);
  ASSERT_EQ(probe.size(), static_cast<size_t>(L * H * T * T));
  for (size_t i = 0; i < probe.size(); ++i) ASSERT_EQ(probe[i], all[3 * L * H * T * T + i]);
  const auto head = r.head_map("attn.probs", 1, 3, 0, 1);
  for (int64_t i = 0; i < T * T; ++i) ASSERT_EQ(head[i], all[(3 * L * H + 1) * T * T + i]);
  EXPECT_THROW(r.head_map("attn.probs", 1, p.count, 0, 0), UsageError);
  EXPECT_THROW(r.head_map("attn.probs", 1, 0, 0, H), UsageError);
}

TEST(Store, PooledVectorsAndTaskArraysAreRecorded) {
  store::Reader r(recorded_run() + "/attention.h5");
  const auto& h = r.header();
  EXPECT_EQ(h.pooled_dim, 32);
  const auto pooled = r.pooled(0);
  ASSERT_EQ(pooled.size(), static_cast<size_t>(r.probes().count * 32));
  EXPECT_NE(pooled, r.pooled(static_cast<int64_t>(r.epochs().size()) - 1)) << "the readout changes with training";
  ASSERT_TRUE(h.arrays.count("minmax_grid_probs"));
  EXPECT_EQ(h.arrays.at("minmax_grid_probs"), (std::vector<int64_t>{2, 2, 32, 32, 3}));
  const auto grid = r.array("minmax_grid_probs");
  // attention from "=" to a, op, b and to "=" itself sums to 1: the three stored parts are <= 1
  for (size_t i = 0; i < grid.size(); i += 3) {
    ASSERT_TRUE(std::isfinite(grid[i])) << "written when training ended";
    ASSERT_LE(grid[i] + grid[i + 1] + grid[i + 2], 1.0f + 1e-5f);
    ASSERT_GE(grid[i], 0.f);
  }
}

TEST(Render, DrawsTheDefaultFigureSetOfAMinMaxRun) {
  TempDir out;
  EXPECT_EQ(run_cli({"render", recorded_run(), "--out", out.path(), "--format", "png"}), 0);
  const auto figs = out.path() + "/figures/";
  for (const char* f : {"head_grid_p1_e30.png", "head_map_probs_L0_H0_p1_e30.png", "head_map_scores_L0_H1_p1_e30.png",
                        "evolution_L0_H0_p1.png", "specialisation_timeline.png", "pattern_classes.png", "head_redundancy.png",
                        "training_curves.png", "positions_e30.png", "focus_regions_e30.png",
                        "attention_river_p1_e30.png", "minmax_grid_probs.png", "minmax_grid_scores.png",
                        "minmax_mechanism.png", "projection_pca.png"}) {
    EXPECT_TRUE(is_png(figs + f)) << f;
  }
  std::vector<std::string> parts;
  for (const auto& e : fs::directory_iterator(figs)) {
    if (e.path().extension() == ".part") parts.push_back(e.path().string());
  }
  EXPECT_TRUE(parts.empty());
}

// Average linkage (UPGMA) on distances with a known structure: two tight groups far apart.
TEST(HeadRedundancy, AverageLinkageFindsTheGroupsInOrder) {
  // items 0, 2, 4 close together (0.1 apart), 1 and 3 close (0.05), the groups 0.9 apart
  const int64_t n = 5;
  std::vector<double> d(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      if (i != j) d[static_cast<size_t>(i * n + j)] = (i % 2 == j % 2) ? (i % 2 ? 0.05 : 0.1) : 0.9;
    }
  }
  const auto m = viz::average_linkage(d, n);
  ASSERT_EQ(m.size(), 4u);
  for (size_t k = 1; k < m.size(); ++k) EXPECT_GE(m[k].height, m[k - 1].height) << "heights never decrease";
  EXPECT_DOUBLE_EQ(m[0].height, 0.05);  // 1 and 3 first
  EXPECT_EQ(std::min(m[0].a, m[0].b), 1);
  EXPECT_EQ(std::max(m[0].a, m[0].b), 3);
  EXPECT_NEAR(m.back().height, 0.9, 1e-12);  // the groups: every cross pair at 0.9
  EXPECT_EQ(m.back().size, 5);
  EXPECT_EQ(viz::clusters_at(m, n, 0.0), 5);
  EXPECT_EQ(viz::clusters_at(m, n, 0.2), 2);
  EXPECT_EQ(viz::clusters_at(m, n, 1.0), 1);
  // the leaf order keeps each group contiguous
  const auto order = viz::dendrogram_order(m, n);
  ASSERT_EQ(order.size(), 5u);
  std::vector<int64_t> parity;
  for (int64_t i : order) parity.push_back(i % 2);
  const auto changes = std::inner_product(parity.begin() + 1, parity.end(), parity.begin(), 0, std::plus<>(),
                                          [](int64_t a, int64_t b) { return a != b ? 1 : 0; });
  EXPECT_EQ(changes, 1) << "groups interleaved in the dendrogram's order";
  EXPECT_THROW(viz::average_linkage({0.0, 1.0}, 2), std::invalid_argument);
}

TEST(Render, SelectionsAndSvg) {
  TempDir out;
  EXPECT_EQ(run_cli({"render", recorded_run() + "/attention.h5", "--out", out.path(), "--format", "svg", "--epochs",
                     "0,20", "--probes", "5", "--heads", "1"}),
            0);
  EXPECT_TRUE(fs::exists(out.path() + "/figures/head_map_probs_L0_H1_p5_e0.svg"));
  EXPECT_TRUE(fs::exists(out.path() + "/figures/head_map_probs_L0_H1_p5_e20.svg"));
  EXPECT_FALSE(fs::exists(out.path() + "/figures/head_map_probs_L0_H0_p5_e20.svg"));
}

TEST(Render, ReportDataFollowsTheContract) {
  viz::Run run = viz::open_run(recorded_run());
  const auto rd = viz::report_data(run, {}, {}, 1u << 30);
  const auto d = nlohmann::json::parse(rd.json);
  EXPECT_EQ(d["version"], 1);
  EXPECT_EQ(d["epochs"], (nlohmann::json{0, 10, 20, 30}));
  EXPECT_EQ(d["probes"].size(), static_cast<size_t>(run.P));
  EXPECT_EQ(d["probes"][1]["tokens"].size(), 4u);
  EXPECT_EQ(d["metrics"]["values"]["entropy_norm"].size(), d["metrics"]["epochs"].size());
  EXPECT_EQ(d["minmax"]["grid"]["probs"].size(), 2u);
  EXPECT_EQ(d["pooled"]["values"].size(), 4u);
  EXPECT_FALSE(d["maps"]["probs"]["zlib_base64"].get<std::string>().empty());
  EXPECT_TRUE(d["maps"].contains("scores"));
  // with a small budget, probes are embedded in order while they fit, and the report says so
  const auto small = viz::report_data(run, {}, {}, 300);
  EXPECT_GE(small.probes_embedded, 1);
  EXPECT_LT(small.probes_embedded, run.P);
  EXPECT_TRUE(small.scores_omitted);
  EXPECT_EQ(nlohmann::json::parse(small.json)["probes"].size(), static_cast<size_t>(small.probes_embedded));
}

TEST(Render, BadInputNamesTheProblemAndRemovesNothing) {
  TempDir out;
  write_text(out.path() + "/keep.txt", "earlier results");
  int code = 0;
  std::string err = stderr_of({"render", out.path() + "/missing", "--out", out.path()}, &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;

  err = stderr_of({"render", recorded_run(), "--out", out.path(), "--epochs", "7"}, &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("epoch 7 was not recorded"), std::string::npos) << err;
  EXPECT_NE(err.find("0, 10, 20, 30"), std::string::npos) << err;

  err = stderr_of({"render", recorded_run(), "--out", out.path(), "--probes", "999"}, &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("probe 999"), std::string::npos) << err;

  err = stderr_of({"render", recorded_run(), "--out", out.path(), "--heads", "5"}, &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("recorded heads: 0, 1"), std::string::npos) << err;

  err = stderr_of({"render", recorded_run(), "--out", out.path(), "--format", "gif"}, &code);
  EXPECT_EQ(code, 2);

  // a truncated attention file
  const std::string cut = out.path() + "/cut/attention.h5";
  fs::create_directories(out.path() + "/cut");
  fs::copy_file(recorded_run() + "/attention.h5", cut);
  fs::resize_file(cut, fs::file_size(cut) / 3);
  err = stderr_of({"render", out.path() + "/cut", "--out", out.path()}, &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("attention.h5"), std::string::npos) << err;

  // a schema version it does not know
  const std::string future = out.path() + "/future.h5";
  fs::copy_file(recorded_run() + "/attention.h5", future);
  {
    const hid_t f = H5Fopen(future.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
    const int64_t v = 99;
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Fclose(f);
  }
  err = stderr_of({"render", future, "--out", out.path()}, &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("schema version 99"), std::string::npos) << err;
  EXPECT_EQ(fs::exists(out.path() + "/keep.txt"), true);
  EXPECT_FALSE(fs::exists(out.path() + "/figures"));
  EXPECT_FALSE(fs::exists(out.path() + "/report.html"));
}

// ---- hostile attention files: every dataset the readers use is validated ---------------------

namespace {
void delete_link(hid_t f, const char* path) { ASSERT_GE(H5Ldelete(f, path, H5P_DEFAULT), 0) << path; }
void float_dataset(hid_t f, const char* path, std::vector<hsize_t> dims) {
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  const hid_t d = H5Dcreate2(f, path, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  EXPECT_GE(d, 0) << path;
  H5Dclose(d);
  H5Pclose(lcpl);
  H5Sclose(space);
}
void fill_lengths(hid_t f, int32_t value) {
  const hid_t d = H5Dopen2(f, "probes/lengths", H5P_DEFAULT);
  const hid_t space = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  std::vector<int32_t> v(n, value);
  H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Sclose(space);
  H5Dclose(d);
}
void string_attribute(hid_t f, const char* name, const std::string& value) {
  H5Adelete(f, name);
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(f, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
  const char* p = value.c_str();
  H5Awrite(a, t, &p);
  H5Aclose(a);
  H5Sclose(space);
  H5Tclose(t);
}
}  // namespace

// Each damaged file makes render and metrics exit 2 naming the dataset or attribute, without a
// signal, an internal error, or an output folder (run as child processes: a crash is seen).
TEST(Render, HostileAttentionFilesAreRefusedNamingTheDataset) {
  TempDir d;
  const std::string good = recorded_run() + "/attention.h5";
  const store::Reader r(good);
  const hsize_t E = r.epochs().size(), P = r.probes().count, L = r.header().layer_ids.size(), H = r.header().head_ids.size(),
                T = r.probes().max_len;
  struct Case {
    const char* name;
    std::function<void(hid_t)> edit;
    std::string named;
  };
  const std::string metric = "metrics/" + r.header().metrics.front();
  const std::vector<Case> cases = {
      {"lengths_past_the_maps", [](hid_t f) { fill_lengths(f, 1000); }, "probes/lengths"},
      {"negative_lengths", [](hid_t f) { fill_lengths(f, -3); }, "probes/lengths"},
      {"probs_missing", [](hid_t f) { delete_link(f, "attn/probs"); }, "attn/probs' is missing"},
      {"probs_strings",
       [](hid_t f) {
         delete_link(f, "attn/probs");
         const hid_t t = H5Tcopy(H5T_C_S1);
         H5Tset_size(t, H5T_VARIABLE);
         const hsize_t n = 1;
         const hid_t space = H5Screate_simple(1, &n, nullptr);
         H5Dclose(H5Dcreate2(f, "attn/probs", t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
         H5Sclose(space);
         H5Tclose(t);
       },
       "attn/probs' has the wrong type"},
      {"probs_rank_5", [&](hid_t f) { delete_link(f, "attn/probs"), float_dataset(f, "attn/probs", {E, P, L, H, T}); },
       "attn/probs' has shape"},
      {"probs_other_probe_count", [&](hid_t f) { delete_link(f, "attn/probs"), float_dataset(f, "attn/probs", {E, P + 3, L, H, T, T}); },
       "attn/probs' has shape"},
      {"input_ids_missing", [](hid_t f) { delete_link(f, "probes/input_ids"); }, "probes/input_ids' is missing"},
      {"metric_rank_2", [&](hid_t f) { delete_link(f, metric.c_str()), float_dataset(f, metric.c_str(), {E, L}); },
       metric + "' has shape"},
      {"epochs_fewer_steps", [&](hid_t f) { delete_link(f, "epochs/step"), float_dataset(f, "epochs/step", {E}); },
       "epochs/step' has the wrong type"},
      {"layer_ids_garbage", [](hid_t f) { string_attribute(f, "layer_ids", "0,x"); }, "layer_ids"},
      {"unknown_dtype", [](hid_t f) { string_attribute(f, "dtype", "int8"); }, "dtype"},
      {"internals_without_dataset", [](hid_t f) { string_attribute(f, "internals", "attn.q"); },
       "'internals' names 'attn.q' but dataset 'internals/attn/q' is missing"},
      {"internals_unknown_site",
       [&](hid_t f) { string_attribute(f, "internals", "attn.x"), float_dataset(f, "internals/attn/x", {E, P, L, H, T, 4}); },
       "names an unknown site 'attn.x'"},
      {"internals_wrong_rank",
       [&](hid_t f) { string_attribute(f, "internals", "attn.q"), float_dataset(f, "internals/attn/q", {E, P, T, 4}); },
       "internals/attn/q' has shape"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string file = d.path(std::string(c.name) + ".h5"), out = d.path(std::string("out-") + c.name);
    fs::copy_file(good, file);
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    c.edit(f);
    H5Fclose(f);
    for (const std::vector<std::string>& args : {std::vector<std::string>{"render", file, "--out", out},
                                                 std::vector<std::string>{"metrics", file}}) {
      const auto [code, err] = attnscope::testing::run_child(args);
      EXPECT_EQ(code, 2) << args[0] << ": " << err;
      EXPECT_NE(err.find(c.named), std::string::npos) << args[0] << ": " << err;
      EXPECT_EQ(err.find("internal error"), std::string::npos) << err;
      EXPECT_FALSE(fs::exists(out)) << "nothing written";
    }
  }
}

// Issue 33: a damaged attention file was refused after 11-37 s with a 4 GB peak: HDF5 allocates
// and clears as many bytes as a stored string length says before it reads the string. A length
// past the file's size is refused before HDF5 reads it, naming the dataset.
TEST(Render, DamagedStringLengthIsRefusedBeforeHdf5AllocatesIt) {
  TempDir d;
  const std::string file = d.path("long-string.h5");
  fs::copy_file(recorded_run() + "/attention.h5", file);
  haddr_t offset = HADDR_UNDEF;
  {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t ds = H5Dopen2(f, "probes/tokens", H5P_DEFAULT);
    offset = H5Dget_offset(ds);  // contiguous: each element is its length (4 bytes) and a heap id
    H5Dclose(ds);
    H5Fclose(f);
  }
  ASSERT_NE(offset, HADDR_UNDEF);
  {
    std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(static_cast<std::streamoff>(offset));
    const unsigned char length[4] = {0x00, 0x00, 0x00, 0xF0};  // 4,026,531,840 bytes, little-endian
    io.write(reinterpret_cast<const char*>(length), 4);
  }
  for (const std::vector<std::string>& args : {std::vector<std::string>{"metrics", file},
                                               std::vector<std::string>{"render", file, "--out", d.path("out")}}) {
    const auto [code, err] = attnscope::testing::run_child(args);
    EXPECT_EQ(code, 2) << args[0] << ": " << err;
    EXPECT_NE(err.find("dataset 'probes/tokens' element 0 claims a string of 4026531840 bytes"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(d.path("out")));
  }
  // the size of an object in the string heap the element points into (HDF5 copied that many
  // bytes into the string's buffer: a crash)
  const std::string heap = d.path("heap.h5");
  fs::copy_file(recorded_run() + "/attention.h5", heap);
  {
    std::fstream io(heap, std::ios::in | std::ios::out | std::ios::binary);
    unsigned char element[16];  // length (4), heap collection address (8), object index (4)
    io.seekg(static_cast<std::streamoff>(offset));
    io.read(reinterpret_cast<char*>(element), 16);
    uint64_t collection = 0;
    for (int k = 7; k >= 0; --k) collection = (collection << 8) | element[4 + k];
    char signature[4];
    io.seekg(static_cast<std::streamoff>(collection));
    io.read(signature, 4);
    ASSERT_EQ(std::string(signature, 4), "GCOL");
    io.seekp(static_cast<std::streamoff>(collection + 16 + 8));  // the first object's size
    const unsigned char size[8] = {0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0};
    io.write(reinterpret_cast<const char*>(size), 8);
  }
  const auto [code, err] = attnscope::testing::run_child({"metrics", heap});
  EXPECT_EQ(code, 2) << err;
  EXPECT_NE(err.find("dataset 'probes/tokens' element 0 points to a string heap at byte"), std::string::npos) << err;
}

// The other side of refusing damaged files at once: a file a live run is writing (SWMR, a flush
// after every epoch) is read while it grows, never refused as damaged (issue 33: epochs/step and
// wall_time, appended before the epoch index, were required to have exactly its rows).
TEST(Render, AFileALiveRunWritesIsReadWhileItGrows) {
  TempDir d;
  const std::string run = d.path("live");
  auto args = small_minmax(run, 100000);
  args.insert(args.end(), {"--set", "hooks.attention.every=1"});
  const pid_t pid = spawn(args);
  ASSERT_GT(pid, 0);
  const std::string file = run + "/attention.h5";
  std::set<size_t> seen;  // epoch counts read, from the first read that succeeded on
  std::string failure;
  for (int i = 0; i < 3000 && seen.size() < 12 && failure.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    try {
      store::Reader r(file);
      const auto epochs = r.epochs();
      if (!epochs.empty()) r.map(store::kProbs, static_cast<int64_t>(epochs.size()) - 1);
      seen.insert(epochs.size());
    } catch (const std::exception& e) {
      if (!seen.empty()) failure = e.what();  // (before the recorder's first flush the file may not exist yet)
    }
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(failure, "") << "a live file was refused";
  EXPECT_GE(seen.size(), 12u) << "the run did not record 12 epochs' worth of reads";
}

// The state a live run's file is in between its two flushes of an epoch (and a run killed there
// leaves): epochs/step and epochs/wall_time one row ahead of the epoch index. It is read with the
// complete epochs, not refused as damaged.
TEST(Render, AFileBetweenTheTwoFlushesOfAnEpochIsRead) {
  TempDir d;
  const std::string file = d.path("between.h5");
  fs::copy_file(recorded_run() + "/attention.h5", file);
  const size_t epochs = store::Reader(file).epochs().size();
  {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    for (const char* path : {"epochs/step", "epochs/wall_time"}) {
      const hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
      const hsize_t rows = epochs + 1;
      ASSERT_GE(H5Dset_extent(ds, &rows), 0) << path;
      H5Dclose(ds);
    }
    H5Fclose(f);
  }
  std::string error;
  try {
    const store::Reader r(file);
    EXPECT_EQ(r.epochs().size(), epochs);
  } catch (const std::exception& e) {
    error = e.what();
  }
  EXPECT_EQ(error, "");
  const auto [code, err] = attnscope::testing::run_child({"metrics", file});
  EXPECT_EQ(code, 0) << err;
}

// Flipped bytes in an object header: a SWMR reader retried the failing checksum with sleeps
// doubling from 1 us (a hang of hours); now render and metrics refuse the file at once.
TEST(Render, DamagedObjectHeaderIsRefusedNotWaitedOn) {
  TempDir d;
  const std::string file = d.path("flipped.h5");
  fs::copy_file(recorded_run() + "/attention.h5", file);
  haddr_t addr = 0;
  {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    H5O_info_t info;
    ASSERT_GE(H5Oget_info_by_name2(f, "attn/probs", &info, H5O_INFO_BASIC, H5P_DEFAULT), 0);
    addr = info.addr;
    H5Fclose(f);
  }
  {
    std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
    for (int k = 0; k < 8; ++k) {
      io.seekg(static_cast<std::streamoff>(addr + 8 + k));
      const char c = static_cast<char>(io.get() ^ 0xFF);
      io.seekp(static_cast<std::streamoff>(addr + 8 + k));
      io.put(c);
    }
  }
  for (const std::vector<std::string>& args : {std::vector<std::string>{"metrics", file},
                                               std::vector<std::string>{"render", file, "--out", d.path("out")}}) {
    const auto [code, err] = attnscope::testing::run_child(args);  // (ctest's timeout guards the hang)
    EXPECT_EQ(code, 2) << args[0] << ": " << err;
    EXPECT_NE(err.find("attn/probs"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(d.path("out")));
  }
}

TEST(Molecules, TokenAttentionMapsOntoAtomsThroughSpans) {
  // BPE-like tokens of "c1ccccc1Cl": "ccccc" covers five atoms (1/5 each); ring digits none
  const std::vector<std::string> tokens = {"<s>", "c", "1", "ccccc", "1", "Cl", "</s>"};
  const std::vector<double> weight = {0.1, 0.2, 0.05, 0.5, 0.05, 0.1, 0.0};
  const auto w = viz::atom_weights("c1ccccc1Cl", tokens, weight);
  ASSERT_EQ(w.size(), 7u);  // 6 aromatic carbons + Cl, in SMILES order
  EXPECT_DOUBLE_EQ(w[0], 0.2);
  for (int a = 1; a <= 5; ++a) EXPECT_DOUBLE_EQ(w[a], 0.1);
  EXPECT_DOUBLE_EQ(w[6], 0.1);
  // bracket atoms and two-letter elements are one atom each
  const auto b = viz::atom_weights("[nH]Br", {"<s>", "[nH]", "Br", "</s>"}, {0, 0.3, 0.7, 0});
  EXPECT_EQ(b, (std::vector<double>{0.3, 0.7}));
  // tokens that do not spell the SMILES (an <unk>, a truncated probe) give nothing
  EXPECT_TRUE(viz::atom_weights("CCO", {"<s>", "C", "<unk>", "</s>"}, {0, 1, 0, 0}).empty());
  EXPECT_TRUE(viz::atom_weights("CCO", {"<s>", "C", "C"}, {0, 1, 0}).empty());
}

namespace {

struct Script {
  std::string type, text;  // type: "" when absent
};

// Every <script> element of a page: its type attribute and its text.
std::vector<Script> scripts_of(const std::string& page) {
  std::vector<Script> out;
  for (size_t pos = 0; (pos = page.find("<script", pos)) != std::string::npos;) {
    const size_t open_end = page.find('>', pos);
    const std::string tag = page.substr(pos, open_end - pos);
    Script s;
    if (const auto t = tag.find("type=\""); t != std::string::npos)
      s.type = tag.substr(t + 6, tag.find('"', t + 6) - t - 6);
    size_t close = open_end + 1;
    while (close < page.size() && strncasecmp(page.c_str() + close, "</script", 8) != 0) ++close;
    s.text = page.substr(open_end + 1, close - open_end - 1);
    out.push_back(s);
    pos = close + 8;
  }
  return out;
}

// 'sha256-<base64>' of a text, computed here with OpenSSL independently of viz.
std::string sha256_source(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  unsigned char b64[64] = {};
  EVP_EncodeBlock(b64, digest, SHA256_DIGEST_LENGTH);
  return "'sha256-" + std::string(reinterpret_cast<char*>(b64)) + "'";
}

// The sources of one directive of a policy ("" when absent).
std::string directive(const std::string& csp, const std::string& name) {
  std::istringstream in(csp);
  for (std::string d; std::getline(in, d, ';');) {
    d.erase(0, d.find_first_not_of(' '));
    if (d.rfind(name + " ", 0) == 0) return d.substr(name.size() + 1);
  }
  return "";
}

// The page's policy lets its own scripts run by hash, never inline code in general; returns
// the non-executable (data) scripts.
std::vector<Script> expect_hashed_scripts(const std::string& page, const std::string& what) {
  const std::string csp = viz::content_security_policy(page);
  const std::string src = directive(csp, "script-src");
  EXPECT_FALSE(src.empty()) << what << ": " << csp;
  EXPECT_EQ(src.find("'unsafe-inline'"), std::string::npos) << what << ": " << csp;
  EXPECT_EQ(directive(csp, "default-src"), "'none'") << what << ": " << csp;
  std::vector<Script> data;
  int executable = 0;
  for (const auto& s : scripts_of(page)) {
    if (s.type == "application/json") {
      data.push_back(s);
      continue;
    }
    EXPECT_TRUE(s.type.empty() || s.type == "text/javascript") << what << ": " << s.type;
    ++executable;
    EXPECT_NE(src.find(sha256_source(s.text)), std::string::npos)
        << what << ": a script of " << s.text.size() << " bytes is not listed";
  }
  EXPECT_EQ(executable, 3) << what << ": plotly.js, umap-js and the app";
  // as many hashes as scripts: nothing else may run
  size_t hashes = 0;
  for (size_t p = 0; (p = src.find("'sha256-", p)) != std::string::npos; ++p) ++hashes;
  EXPECT_EQ(hashes, 3u) << what << ": " << src;
  return data;
}

}  // namespace

// Issue 33 (5): the pages of attnscope carry a Content-Security-Policy that runs their own
// inlined scripts by SHA-256 and nothing else, so that an inline handler injected through a
// name never runs; data can neither close its <script> nor open another.
TEST(ReportPage, PolicyListsTheHashOfEveryScriptAndNoUnsafeInline) {
  const auto report = expect_hashed_scripts(viz::report_html(recorded_run()), "report.html");
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(report[0].text)["version"], 1);
  expect_hashed_scripts(viz::serve_page(), "serve.html");
  // hostile strings in the data: parsed back unchanged, never markup
  const nlohmann::json hostile = {{"runs", {{{"name", "x\"><img src=x onerror=alert(1)>"}}}},
                                  {"probe", "</script><script>alert(2)</script>"},
                                  {"comment", "<!--<script>alert(3)</script>"},
                                  {"placeholder", "<!--ATTNSCOPE:app--> <!--ATTNSCOPE:script-hashes-->"}};
  const std::string page = viz::assemble_report(hostile.dump(), viz::default_web_dir(),
                                                viz::WebDir::kComparePage, viz::WebDir::kCompareApp);
  const auto data = expect_hashed_scripts(page, "compare.html");
  ASSERT_EQ(data.size(), 1u);
  EXPECT_EQ(data[0].text.find('<'), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(data[0].text), hostile);
  // the policy is found only in its meta tag
  EXPECT_EQ(viz::content_security_policy(
                R"(<head><meta http-equiv="Content-Security-Policy" content="default-src 'none'"></head>)"),
            "default-src 'none'");
  EXPECT_THROW(viz::content_security_policy("<html><head><title>x</title></head></html>"),
               std::runtime_error);
  EXPECT_THROW(viz::content_security_policy(
                   R"(<script>"<meta http-equiv=\"Content-Security-Policy\" content=\"x\">"</script>)"),
               std::runtime_error);
}
