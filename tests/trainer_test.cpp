// The Trainer without a plugin file: a model made by a factory written here, trained
// through the same set-up, step and observers as a plugin's.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "test_support.hpp"
#include "xlhost/core/train/trainer.hpp"

using namespace xlhost;

namespace {

class CountingObserver : public core::TrainingObserver {
 public:
  void on_step(const core::StepRecord& r) override {
    ++steps;
    log_lines += r.log_line;
    last_step = r.step;
    saw_diagnostic = !r.diagnostics.empty() && r.diagnostics[0].first == "table_norm";
  }
  void on_checkpoint(const std::string&, double) override { ++checkpoints; }
  int steps = 0, log_lines = 0, checkpoints = 0;
  int64_t last_step = 0;
  bool saw_diagnostic = false;
};

}  // namespace

TEST(Trainer, TrainsAModelFromAnInProcessFactory) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto job = test::bigram_job(dir);

  CountingObserver observer;
  job.observers.push_back(&observer);
  auto s = core::Trainer(job).run();

  ASSERT_EQ(s.losses.size(), 40u);
  EXPECT_NEAR(s.losses.front(), std::log(259.0), 1e-4) << "a zero table predicts uniformly";
  EXPECT_LT(s.losses.back(), s.losses.front() - 2.0);
  EXPECT_GT(s.val.tokens, 0);
  EXPECT_EQ(observer.steps, 40);
  EXPECT_EQ(observer.log_lines, 5) << "steps 1, 10, 20, 30, 40";
  EXPECT_EQ(observer.last_step, 40);
  EXPECT_EQ(observer.checkpoints, 2);  // step 20 and the final one
  EXPECT_TRUE(observer.saw_diagnostic);
  EXPECT_TRUE(std::filesystem::exists(s.checkpoint + "/model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(s.run_dir + "/train.log"));
}

// A bigram table and a parameter the forward never reads.
class BigramWithUnusedParameter : public test::BigramModel {
 public:
  explicit BigramWithUnusedParameter(const sdk::ModelConfig& c) : BigramModel(c) {
    unused = register_parameter("unused_scale", torch::ones({7}));
  }
  torch::Tensor unused;
};

TEST(Trainer, ParametersThatReceiveNoGradientAreNamedOnceAndRecorded) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto job = test::bigram_job(dir, {"train.max_steps=6"});
  job.model.create = [](const sdk::ModelConfig& c) { return std::make_shared<BigramWithUnusedParameter>(c); };
  std::ostringstream log;
  job.log = &log;
  const auto s = core::Trainer(job).run();
  EXPECT_EQ(s.dead_parameters, std::vector<std::string>{"unused_scale"});
  EXPECT_EQ(s.parameters_receiving_gradient, 259 * 259) << "the table's values, not the unused 7";
  const auto text = log.str();
  const auto warning = text.find("warning: bigram: 1 of 2 trainable parameter tensors (7 values) received no gradient");
  EXPECT_NE(warning, std::string::npos) << text;
  EXPECT_EQ(text.find("received no gradient", text.find("received no gradient") + 1), std::string::npos) << "said once:\n" << text;
  EXPECT_NE(text.find("unused_scale", warning), std::string::npos);

  auto healthy = test::bigram_job(dir, {"train.max_steps=2", "run.out_dir=" + dir / "out2"});
  const auto h = core::Trainer(healthy).run();
  EXPECT_TRUE(h.dead_parameters.empty());
  EXPECT_EQ(h.parameters_receiving_gradient, 259 * 259) << "measured over the 2 steps there were";
}
