#include <gtest/gtest.h>

#include "test_support.hpp"
#include "xlhost/sdk/layers.hpp"

using namespace xlhost;

namespace {

std::shared_ptr<sdk::Model> make_model(const core::LoadedPlugin& plugin,
                                       std::vector<std::pair<std::string, int64_t>> settings) {
  auto config = sdk::SectionValues::defaults(plugin.descriptor().schema);
  for (auto& [k, v] : settings) config.set(k, v);
  return plugin.create(config);
}

}  // namespace

// MODELS.md §2.2: 25,829,888 with 32/8 heads (the seed-001 baseline), 26,878,464 with 16/8.
TEST(ModelOriginal, ParameterCountsMatchModelsMd) {
  auto plugin = core::load_plugin(test::plugin_path("model_original"));
  EXPECT_EQ(make_model(plugin, {})->parameter_count(), 25829888);
  EXPECT_EQ(make_model(plugin, {{"n_heads", 16}, {"n_kv_heads", 8}})->parameter_count(), 26878464);
  EXPECT_EQ(make_model(plugin, {{"n_heads", 8}, {"n_kv_heads", 2}})->parameter_count(), 25829888);
}

TEST(ModelOriginal, ForwardShapesAndTiedWeights) {
  auto plugin = core::load_plugin(test::plugin_path("model_original"));
  auto model = make_model(plugin, {{"dim", 64}, {"n_layers", 2}, {"n_heads", 8}, {"n_kv_heads", 2}, {"vocab_size", 300}});
  auto out = model->forward(torch::randint(0, 300, {2, 16}, torch::kInt64));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 16, 300}));
  EXPECT_FALSE(out.aux_loss.defined());
  auto params = model->named_parameters();
  EXPECT_TRUE(params.contains("tok_embeddings.weight"));
  EXPECT_FALSE(params.contains("output.weight")) << "the output head is the embedding, registered once";
  EXPECT_TRUE(params.contains("layers.1.feed_forward.w3.weight"));
}

TEST(ModelOriginal, IsCausal) {
  auto plugin = core::load_plugin(test::plugin_path("model_original"));
  auto model = make_model(plugin, {{"dim", 64}, {"n_layers", 2}, {"n_heads", 8}, {"n_kv_heads", 2}, {"vocab_size", 300}});
  model->eval();
  auto tokens = torch::randint(0, 300, {1, 12}, torch::kInt64);
  auto changed = tokens.clone();
  changed[0][7] = (changed[0][7].item<int64_t>() + 1) % 300;
  auto a = model->forward(tokens).logits, b = model->forward(changed).logits;
  EXPECT_TRUE(torch::equal(a.slice(1, 0, 7), b.slice(1, 0, 7)));
  EXPECT_FALSE(torch::allclose(a.slice(1, 7, 8), b.slice(1, 7, 8)));
}

TEST(ModelOriginal, KvCacheMatchesFullForward) {
  auto plugin = core::load_plugin(test::plugin_path("model_original"));
  auto model = make_model(plugin, {{"dim", 64}, {"n_layers", 2}, {"n_heads", 8}, {"n_kv_heads", 2}, {"vocab_size", 300}});
  model->eval();
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(0, 300, {2, 10}, torch::kInt64);
  auto full = model->forward(tokens).logits;
  auto cache = model->new_cache();
  ASSERT_NE(cache, nullptr);
  std::vector<torch::Tensor> pieces{model->forward(tokens.slice(1, 0, 6), cache.get()).logits};
  for (int t = 6; t < 10; ++t) pieces.push_back(model->forward(tokens.slice(1, t, t + 1), cache.get()).logits);
  EXPECT_EQ(cache->length, 10);
  EXPECT_TRUE(torch::allclose(torch::cat(pieces, 1), full, 1e-5, 1e-5));
}

