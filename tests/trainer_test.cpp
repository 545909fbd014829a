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

// train.profile_steps: the window starts at the run's third step; a run that ends inside it
// writes the steps it profiled.
TEST(Trainer, ProfileStepsWritesTheOperatorsAndATrace) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto read = [](const std::string& path) {
    std::ostringstream text;
    text << std::ifstream(path).rdbuf();
    return text.str();
  };
  auto s = core::Trainer(test::bigram_job(dir, {"train.profile_steps=3", "train.max_steps=10"})).run();
  const auto table = read(s.run_dir + "/profile.txt");
  EXPECT_NE(table.find("steps 3-5 profiled"), std::string::npos) << table.substr(0, 300);
  EXPECT_NE(table.find("aten::embedding"), std::string::npos) << "the bigram forward";
  for (const char* phase : {"xlhost::forward", "xlhost::backward", "xlhost::optimizer_step"})
    EXPECT_NE(table.find(phase), std::string::npos) << phase;
  EXPECT_NE(read(s.run_dir + "/profile.trace.json").find("\"traceEvents\""), std::string::npos);

  // The title names the arithmetic the run used (train.dtype float32 by default).
  auto short_run = core::Trainer(test::bigram_job(dir, {"train.profile_steps=5", "train.max_steps=4",
                                                        "experiment.id=0.0.2", "train.dtype=bfloat16"})).run();
  const auto short_table = read(short_run.run_dir + "/profile.txt");
  EXPECT_NE(short_table.find("steps 3-4 profiled"), std::string::npos);
  EXPECT_NE(short_table.find("bfloat16 autocast on cpu"), std::string::npos) << short_table.substr(0, 200);
  EXPECT_NE(table.find("float32 on cpu"), std::string::npos) << table.substr(0, 200);
  auto off = core::Trainer(test::bigram_job(dir, {"train.max_steps=4", "experiment.id=0.0.3"})).run();
  EXPECT_FALSE(std::filesystem::exists(off.run_dir + "/profile.txt"));
}

// FusedAdamW against LibTorch's AdamW (the oracle): two groups (one without weight decay), a
// parameter whose gradient is missing at one step, five steps; then the state of one loads
// into the other and both go on alike.
TEST(Trainer, FusedAdamWFollowsLibTorchsAdamW) {
  torch::manual_seed(2);
  auto make = [] {
    torch::manual_seed(9);
    return std::vector<torch::Tensor>{torch::randn({33, 17}).requires_grad_(), torch::randn({5}).requires_grad_(),
                                      torch::randn({4, 4}).requires_grad_()};
  };
  auto a = make(), b = make();
  auto groups = [](std::vector<torch::Tensor>& p) {
    auto decay = torch::optim::AdamWOptions(0.01).betas({0.9, 0.95}).weight_decay(0.1);
    auto none = torch::optim::AdamWOptions(0.01).betas({0.9, 0.95}).weight_decay(0.0);
    return std::vector<torch::optim::OptimizerParamGroup>{
        {{p[0], p[2]}, std::make_unique<torch::optim::AdamWOptions>(decay)},
        {{p[1]}, std::make_unique<torch::optim::AdamWOptions>(none)}};
  };
  core::FusedAdamW fused(groups(a), torch::optim::AdamWOptions(0.01));
  torch::optim::AdamW reference(groups(b), torch::optim::AdamWOptions(0.01));
  auto step = [&](int64_t i) {
    for (size_t j = 0; j < a.size(); ++j) {
      if (i == 2 && j == 2) continue;  // no gradient this step: the parameter and its state stay
      auto g = torch::randn(a[j].sizes());
      a[j].mutable_grad() = g.clone(), b[j].mutable_grad() = g.clone();
    }
    fused.step(), reference.step();
    fused.zero_grad(), reference.zero_grad();
  };
  for (int64_t i = 0; i < 5; ++i) step(i);
  for (size_t j = 0; j < a.size(); ++j) EXPECT_TRUE(torch::allclose(a[j], b[j], 1e-5, 1e-6)) << "parameter " << j;
  EXPECT_FALSE(torch::allclose(a[0], make()[0])) << "the parameters moved";

  std::stringstream archive;
  torch::serialize::OutputArchive out;
  fused.save(out);
  out.save_to(archive);
  torch::serialize::InputArchive in;
  in.load_from(archive);
  torch::optim::AdamW restored(groups(a), torch::optim::AdamWOptions(0.01));
  restored.load(in);
  for (int64_t i = 5; i < 7; ++i) {
    for (size_t j = 0; j < a.size(); ++j) {
      auto g = torch::randn(a[j].sizes());
      a[j].mutable_grad() = g.clone(), b[j].mutable_grad() = g.clone();
    }
    restored.step(), reference.step();
  }
  for (size_t j = 0; j < a.size(); ++j) EXPECT_TRUE(torch::allclose(a[j], b[j], 1e-5, 1e-6)) << "parameter " << j;
}
