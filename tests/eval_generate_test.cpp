#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include "test_support.hpp"
#include "xlhost/core/data/window_batch.hpp"
#include "xlhost/core/eval/evaluation.hpp"
#include "xlhost/core/eval/generation_quality.hpp"
#include "xlhost/core/eval/generator.hpp"

using namespace xlhost;

namespace {

// Predicts token (t + 1) mod V after token t with near-certainty: the right target shift
// scores ~0 loss on an ascending sequence, any other shift scores badly.
class SuccessorModel : public sdk::Model {
 public:
  explicit SuccessorModel(int64_t vocab) : vocab_(vocab) {}
  sdk::ForwardResult forward(const torch::Tensor& tokens, sdk::DecodeCache* = nullptr) override {
    auto next = (tokens + 1).remainder(vocab_);
    return {torch::one_hot(next, vocab_).to(torch::kFloat32) * 30.0, {}, {}, {}};
  }

 private:
  int64_t vocab_;
};

}  // namespace

TEST(EvalShift, SuccessorModelIsPerfectOnlyWithTheRightShift) {
  SuccessorModel model(50);
  const std::vector<int64_t> prompt{5, 6, 7, 8}, continuation{9, 10, 11};
  EXPECT_LT(core::continuation_loss(model, prompt, continuation, torch::kCPU), 1e-6);

  // The seed-001 bug: the last P rows of the logits, which predict one position too far.
  auto ids = torch::tensor(std::vector<int64_t>{5, 6, 7, 8, 9, 10, 11}).unsqueeze(0);
  auto logits = model.forward(ids).logits[0];
  auto buggy = torch::nn::functional::cross_entropy(logits.slice(0, 4, 7), torch::tensor(continuation));
  EXPECT_GT(buggy.item<double>(), 20.0);

  auto rows = core::logits_predicting(logits, 4, 3);
  EXPECT_TRUE(torch::equal(rows, logits.slice(0, 3, 6)));
}

TEST(EvalShift, LmLossIgnoresUnpredictedTargets) {
  SuccessorModel model(10);
  auto x = torch::tensor(std::vector<int64_t>{1, 2, 3, 4}).unsqueeze(0);
  const int64_t no = core::kIgnoredTarget;
  auto y = torch::tensor(std::vector<int64_t>{2, 3, no, no}).unsqueeze(0);  // two targets, then none
  EXPECT_LT(core::lm_loss(model.forward(x).logits, y).item<double>(), 1e-6);
  auto wrong = torch::tensor(std::vector<int64_t>{2, 7, no, no}).unsqueeze(0);
  EXPECT_NEAR(core::lm_loss(model.forward(x).logits, wrong).item<double>(), 15.0, 0.1);
}

TEST(Generate, LengthLimitCountsNewTokensEvenAfterALongPrompt) {
  SuccessorModel model(1000);
  core::GenerateOptions o;
  o.temperature = 0, o.max_new_tokens = 5, o.eos_id = 999;
  std::vector<int64_t> prompt(40);
  for (int i = 0; i < 40; ++i) prompt[i] = 100 + i;
  auto g = core::generate(model, prompt, o, torch::kCPU);
  EXPECT_EQ(g.tokens, (std::vector<int64_t>{140, 141, 142, 143, 144}));
  EXPECT_FALSE(g.hit_eos);
}

TEST(Generate, StopsAtEosAndReportsRates) {
  SuccessorModel model(10);
  core::GenerateOptions o;
  o.temperature = 0, o.max_new_tokens = 6, o.eos_id = 2;
  auto g = core::generate(model, {8, 9}, o, torch::kCPU);
  EXPECT_EQ(g.tokens, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_TRUE(g.hit_eos);

  auto report = core::generate_all(model, {{8, 9}, {3}}, o, torch::kCPU);  // 4,5,6,7,8,9: no EOS within 6
  EXPECT_DOUBLE_EQ(report.eos_rate, 0.5);
  EXPECT_DOUBLE_EQ(report.mean_new_tokens, (3 + 6) / 2.0);
}

TEST(Generate, TopPKeepsOnlyTheNucleus) {
  core::GenerateOptions o;
  o.temperature = 1.0, o.top_p = 0.5;
  auto logits = torch::tensor({5.0f, 0.0f, 0.0f, 0.0f});  // token 0 holds ~98% of the mass
  std::set<int64_t> drawn;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto rng = at::make_generator<at::CPUGeneratorImpl>(seed);
    drawn.insert(core::sample_next(logits, {}, o, rng));
  }
  EXPECT_EQ(drawn, std::set<int64_t>{0});
  o.top_p = 1.0, o.temperature = 50.0;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto rng = at::make_generator<at::CPUGeneratorImpl>(seed);
    drawn.insert(core::sample_next(logits, {}, o, rng));
  }
  EXPECT_GT(drawn.size(), 2u);
}

TEST(Generate, RepetitionPenaltyDividesSeenLogits) {
  core::GenerateOptions o;
  o.temperature = 0, o.repetition_penalty = 2.0;
  auto rng = at::make_generator<at::CPUGeneratorImpl>(0);
  auto logits = torch::tensor({2.0f, 1.9f, -1.0f});
  EXPECT_EQ(core::sample_next(logits, {}, o, rng), 0);
  EXPECT_EQ(core::sample_next(logits, {0, 0}, o, rng), 1);
}

TEST(Generate, KvCacheGivesTheSameGreedyText) {
  auto plugin = core::load_plugin(test::plugin_path("model_original"));
  auto config = sdk::SectionValues::defaults(plugin.descriptor().schema);
  config.set("dim", int64_t{32}), config.set("n_layers", int64_t{2}), config.set("n_heads", int64_t{4});
  config.set("n_kv_heads", int64_t{2}), config.set("vocab_size", int64_t{64});
  auto model = plugin.create(config);
  core::GenerateOptions o;
  o.temperature = 0, o.max_new_tokens = 12, o.eos_id = -1;
  auto cached = core::generate(*model, {1, 5, 9}, o, torch::kCPU);
  o.use_cache = false;
  auto recomputed = core::generate(*model, {1, 5, 9}, o, torch::kCPU);
  EXPECT_EQ(cached.tokens, recomputed.tokens);
  EXPECT_EQ(cached.tokens.size(), 12u);
}

TEST(GenerationQuality, DistinctNgramsAndRepetitionByHand) {
  core::GenerationReport report;
  report.generations = {{{1, 2, 3, 1, 2, 3, 1, 2}, false}, {{4, 4, 4, 4, 4}, true}};
  report.eos_rate = 0.5, report.mean_new_tokens = 6.5;
  const auto q = core::generation_quality(report);
  EXPECT_EQ(q.samples, 2);
  EXPECT_DOUBLE_EQ(q.distinct_1, 4.0 / 13);  // {1, 2, 3, 4} of 13 tokens
  EXPECT_DOUBLE_EQ(q.distinct_2, 4.0 / 11);  // {12, 23, 31} of 7 and {44} of 4
  EXPECT_DOUBLE_EQ(q.repetition_4, (0.4 + 0.5) / 2);  // 3 distinct of 5 4-grams; 1 of 2
  EXPECT_DOUBLE_EQ(q.eos_rate, 0.5);
}
