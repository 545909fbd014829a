#include <gtest/gtest.h>

#include "test_support.hpp"
#include "xlhost/core/plugin/conformance.hpp"

using namespace xlhost;
using Status = core::CheckResult::Status;

namespace {

std::map<std::string, core::CheckResult> check(const std::string& path,
                                                std::vector<std::pair<std::string, sdk::Value>> set = {}) {
  auto plugin = core::load_plugin(path);
  auto config = sdk::SectionValues::defaults(plugin.descriptor().schema);
  for (auto& [k, v] : set) config.set(k, v);
  std::map<std::string, core::CheckResult> by_name;
  for (auto& r : core::run_conformance(plugin, config, {})) by_name[r.name] = r;
  return by_name;
}

std::string fixture(const std::string& name) { return std::string(XLHOST_TEST_PLUGIN_DIR) + "/" + name + ".so"; }

const std::vector<std::pair<std::string, sdk::Value>> kTiny = {
    {"dim", int64_t{32}}, {"n_layers", int64_t{2}}, {"n_heads", int64_t{4}}, {"n_kv_heads", int64_t{2}},
    {"vocab_size", int64_t{64}}};

std::vector<std::pair<std::string, sdk::Value>> tiny_memory(std::vector<std::pair<std::string, sdk::Value>> more) {
  auto s = kTiny;
  for (auto kv : std::vector<std::pair<std::string, sdk::Value>>{{"knowledge_num", int64_t{64}},
                                                                 {"knowledge_length", int64_t{6}},
                                                                 {"knowledge_dim", int64_t{16}}})
    s.push_back(kv);
  s.insert(s.end(), more.begin(), more.end());
  return s;
}

}  // namespace

TEST(PluginCheck, ModelOriginalPassesEverything) {
  auto r = check(test::plugin_path("model_original"), kTiny);
  for (const char* name : {"shapes and dtypes", "finite outputs", "determinism (eval)", "causality", "gradient reach",
                           "save/load", "decode cache"})
    EXPECT_EQ(r[name].status, Status::Pass) << name << ": " << r[name].detail;
}

TEST(PluginCheck, OnePositionFutureLeakIsNamed) {
  auto r = check(fixture("future_leak_plugin"));
  EXPECT_EQ(r["causality"].status, Status::Fail);
  // Position t reads token t+1, so the probe that changes everything after position 0 shows it.
  EXPECT_NE(r["causality"].detail.find("position 0 changes when the tokens after position 0 change"), std::string::npos)
      << r["causality"].detail;
}

TEST(PluginCheck, ParameterWithoutGradientIsNamed) {
  auto r = check(fixture("dead_parameter_plugin"));
  EXPECT_EQ(r["causality"].status, Status::Pass);
  EXPECT_EQ(r["gradient reach"].status, Status::Fail);
  EXPECT_EQ(r["gradient reach"].detail, "no gradient: unused_scale");
}

TEST(PluginCheck, MemoryVariantsFaithfulLeakyCorrectedCausal) {
  auto faithful = check(test::plugin_path("model_memory"), tiny_memory({{"num_selected", int64_t{4}}, {"fusion_heads", int64_t{4}}}));
  EXPECT_EQ(faithful["causality"].status, Status::KnownLeak) << faithful["causality"].detail;
  auto causal = check(test::plugin_path("model_memory"),
                      tiny_memory({{"num_selected", int64_t{4}}, {"fusion_heads", int64_t{4}}, {"fusion_mask", std::string("causal")}}));
  EXPECT_EQ(causal["causality"].status, Status::Pass) << causal["causality"].detail;
  // MODELS.md: the gate's top-k is not differentiable and 1.4.8 does not use its scores.
  EXPECT_NE(causal["gradient reach"].detail.find("gate.keys"), std::string::npos) << causal["gradient reach"].detail;
  EXPECT_NE(causal["gradient reach"].detail.find("gate_proj"), std::string::npos) << causal["gradient reach"].detail;
  // The quickstart's setting: memories weighted by their gate scores, every parameter learns.
  auto weighted = check(test::plugin_path("model_memory"),
                        tiny_memory({{"num_selected", int64_t{4}}, {"fusion_heads", int64_t{4}},
                                     {"fusion_mask", std::string("causal")}, {"selection", std::string("score_weighted")}}));
  EXPECT_EQ(weighted["gradient reach"].status, Status::Pass) << weighted["gradient reach"].detail;
  EXPECT_EQ(weighted["causality"].status, Status::Pass) << weighted["causality"].detail;

  auto model = check(test::plugin_path("model"), tiny_memory({{"cross_attn_heads", int64_t{4}}}));
  EXPECT_EQ(model["causality"].status, Status::KnownLeak);
  auto model_causal = check(test::plugin_path("model"), tiny_memory({{"cross_attn_heads", int64_t{4}},
                                                                     {"retrieval_pooling", std::string("causal_prefix_mean")}}));
  EXPECT_EQ(model_causal["causality"].status, Status::Pass) << model_causal["causality"].detail;
  EXPECT_NE(model_causal["gradient reach"].detail.find("knowledge_dataset.keys"), std::string::npos)
      << model_causal["gradient reach"].detail;
  auto model_weighted = check(test::plugin_path("model"),
                              tiny_memory({{"cross_attn_heads", int64_t{4}}, {"retrieval_pooling", std::string("causal_prefix_mean")},
                                           {"selection", std::string("score_weighted")}}));
  EXPECT_EQ(model_weighted["gradient reach"].status, Status::Pass) << model_weighted["gradient reach"].detail;
  EXPECT_EQ(model_weighted["causality"].status, Status::Pass) << model_weighted["causality"].detail;
}
