#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <numeric>
#include <sstream>

#include "test_support.hpp"
#include "xlhost/core/checkpoint/checkpoint.hpp"
#include "xlhost/core/checkpoint/safetensors.hpp"
#include "xlhost/core/eval/trained_model.hpp"
#include "xlhost/core/experiments/train_log.hpp"
#include "xlhost/core/train/trainer.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/sdk/linear.hpp"

using namespace xlhost;

namespace {

core::TrainSummary train_tiny(const test::TempDir& dir, std::vector<std::string> overrides,
                              std::function<bool(int64_t)> should_stop = {}, std::string resume = "") {
  std::ostringstream log;
  core::TrainJob job;
  const auto plugin = core::load_plugin(test::plugin_path("model_original"));
  job.model = core::model_source(plugin);
  job.config = test::tiny_config(plugin, dir, std::move(overrides));
  job.should_stop = std::move(should_stop);
  job.resume_from = std::move(resume);
  job.log = &log;
  return core::train(job);
}

double mean(const std::vector<double>& v, size_t from, size_t to) {
  return std::accumulate(v.begin() + from, v.begin() + to, 0.0) / static_cast<double>(to - from);
}

}  // namespace

TEST(Training, LossFallsOnTheSyntheticCorpus) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto s = train_tiny(dir, {});
  ASSERT_EQ(s.losses.size(), 40u);
  EXPECT_GT(s.losses.front(), 5.0) << "initial loss should be near ln(259) = 5.56";
  EXPECT_LT(mean(s.losses, 35, 40), mean(s.losses, 0, 5) - 2.0);
  EXPECT_GT(s.val.tokens, 0);
  EXPECT_LT(s.val.loss, 3.5);
  EXPECT_TRUE(std::filesystem::exists(s.run_dir + "/config.json"));
  std::ifstream log(s.run_dir + "/train.log");
  std::string first_line;
  std::getline(log, first_line);
  EXPECT_EQ(first_line.rfind("{\"step\":1,\"total_steps\":40,\"loss\":", 0), 0u) << "step 1 is always logged: " << first_line;
}

// The CUDA path (device selection, bf16 autocast, CUDA RNG state in checkpoints, CUDA
// memory) runs where a GPU is present (scripts/gpu_check.sh) and is skipped elsewhere.
TEST(Training, CudaBfloat16TrainsAndCheckpointsOnTheGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto s = train_tiny(dir, {"train.device=cuda", "train.dtype=bfloat16"});
  ASSERT_EQ(s.losses.size(), 40u);
  EXPECT_LT(mean(s.losses, 35, 40), mean(s.losses, 0, 5) - 1.5);
  EXPECT_GT(s.peak_cuda_bytes, 0);
  EXPECT_TRUE(std::filesystem::exists(s.checkpoint + "/cuda_rng.pt"));
  // The dashboard's GPU panels: memory LibTorch holds, and utilisation from the driver's NVML.
  const auto logged = core::read_train_log(s.run_dir + "/train.log");
  ASSERT_FALSE(logged.steps.empty());
  EXPECT_GT(logged.steps.back().gpu_memory_mib, 0);
  const double util = logged.steps.back().gpu_util_percent;
  EXPECT_TRUE(util >= 0 && util <= 100) << "NVML utilisation: " << util;
}

// bfloat16 autocast on the CPU (float32 weights and optimizer state): 200 steps follow the
// float32 curve. Tolerance: every mean over 20 steps within 5% (+0.02) of float32's.
TEST(Training, Bfloat16OnTheCpuFollowsTheFloat32Curve) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  const auto fp32 = train_tiny(dir, {"train.max_steps=200", "train.log_interval=50", "experiment.id=fp32"});
  const auto bf16 =
      train_tiny(dir, {"train.max_steps=200", "train.log_interval=50", "experiment.id=bf16", "train.dtype=bfloat16"});
  ASSERT_EQ(fp32.losses.size(), 200u);
  ASSERT_EQ(bf16.losses.size(), 200u);
  EXPECT_NE(fp32.losses, bf16.losses) << "autocast changed nothing: was it on?";
  for (size_t from = 0; from < 200; from += 20) {
    const double a = mean(fp32.losses, from, from + 20), b = mean(bf16.losses, from, from + 20);
    EXPECT_LT(std::abs(a - b), 0.05 * a + 0.02) << "steps " << from + 1 << "-" << from + 20;
  }
  EXPECT_LT(mean(bf16.losses, 180, 200), mean(bf16.losses, 0, 20) - 2.0);
}

// Where ATen's bfloat16 products fall back to its slow kernel (a CPU without AVX-512, or oneDNN
// held to AVX2 as ctest's sdk_without_avx512 does), a bfloat16 run says so; float32 runs do not.
TEST(Training, Bfloat16WarnsWhereTheCpuRunsItSlowly) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto warned = [](const core::TrainSummary& s) {
    return std::any_of(s.warnings.begin(), s.warnings.end(), [](const std::string& w) {
      return w.find("without oneDNN's bfloat16 kernels") != std::string::npos;
    });
  };
  const auto bf16 = train_tiny(dir, {"train.max_steps=2", "experiment.id=bf16", "train.dtype=bfloat16"});
  EXPECT_EQ(warned(bf16), !sdk::onednn_runs_bfloat16());
  EXPECT_FALSE(warned(train_tiny(dir, {"train.max_steps=2", "experiment.id=fp32"})));
}

TEST(Training, CudaDeviceWithoutAGpuIsAUserError) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has a CUDA device";
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  try {
    train_tiny(dir, {"train.device=cuda"});
    FAIL() << "trained on cuda without a GPU";
  } catch (const core::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("sees no CUDA device"), std::string::npos) << e.what();
  }
}

TEST(Training, CheckpointReloadGivesIdenticalLogits) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto s = train_tiny(dir, {"train.max_steps=5"});
  auto reloaded = core::load_trained_model(s.run_dir, "", {});
  EXPECT_EQ(reloaded.checkpoint, s.checkpoint);
  auto tokens = torch::randint(0, 259, {2, 16}, torch::kInt64);
  s.model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(s.model->forward(tokens).logits, reloaded.model->forward(tokens).logits));
}

TEST(Training, ResumedRunReproducesTheUninterruptedLossesExactly) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  // Dropout on, so the restored RNG state matters too.
  auto straight = train_tiny(dir, {"run.out_dir=" + dir / "straight", "model.dropout=0.1"});
  auto stopped = train_tiny(dir, {"run.out_dir=" + dir / "split", "model.dropout=0.1"}, [](int64_t step) { return step == 17; });
  EXPECT_TRUE(stopped.interrupted);
  ASSERT_EQ(stopped.losses.size(), 17u);
  EXPECT_EQ(core::read_checkpoint_state(core::resolve_checkpoint(stopped.run_dir)).step, 17);
  auto resumed = train_tiny(dir, {"run.out_dir=" + dir / "split", "model.dropout=0.1"}, {}, stopped.run_dir);
  ASSERT_EQ(resumed.first_step, 17);
  ASSERT_EQ(resumed.losses.size(), 23u);
  for (size_t i = 0; i < 17; ++i) EXPECT_EQ(stopped.losses[i], straight.losses[i]) << "step " << i + 1;
  for (size_t i = 0; i < 23; ++i) EXPECT_EQ(resumed.losses[i], straight.losses[17 + i]) << "step " << 18 + i;
}

// A stop in the middle of an accumulated step drops that partial step; the resumed run
// repeats it from its first micro-batch and still matches the uninterrupted run.
TEST(Training, StopInsideAnAccumulatedStepResumesExactly) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  const std::vector<std::string> common{"train.accumulation_steps=3", "train.max_steps=10"};
  auto with = [&](std::string out) {
    auto o = common;
    o.push_back("run.out_dir=" + dir / out);
    return o;
  };
  auto straight = train_tiny(dir, with("straight"));
  int calls_at_step_4 = 0;  // the first call is the check after step 4, the second is inside step 5
  auto stopped = train_tiny(dir, with("split"), [&](int64_t step) { return step == 4 && ++calls_at_step_4 == 2; });
  EXPECT_TRUE(stopped.interrupted);
  ASSERT_EQ(stopped.losses.size(), 4u);
  auto state = core::read_checkpoint_state(core::resolve_checkpoint(stopped.run_dir));
  EXPECT_EQ(state.step, 4);
  EXPECT_EQ(state.micro_batches, 12) << "the partial step's micro-batches are not counted";
  auto resumed = train_tiny(dir, with("split"), {}, stopped.run_dir);
  ASSERT_EQ(resumed.losses.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(resumed.losses[i], straight.losses[4 + i]) << "step " << 5 + i;
}

TEST(Training, ResumeRejectsAnotherPluginsCheckpoint) {
  test::TempDir dir;
  std::filesystem::create_directories(dir / "ckpt");
  test::write_text(dir / "ckpt/model.safetensors", "");
  test::write_text(dir / "ckpt/state.json",
                   R"({"step":1,"micro_batches":1,"tokens":1,"plugin_name":"other","plugin_version":"1","plugin_path":"x"})");
  test::write_tiny_corpus(dir);
  try {
    train_tiny(dir, {}, {}, dir / "ckpt");
    FAIL() << "expected an error";
  } catch (const core::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint of plugin other, not model_original"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, RoundTripsDtypesShapesAndMetadata) {
  test::TempDir dir;
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"a", torch::randn({3, 5})},
      {"b.int", torch::arange(7, torch::kInt64)},
      {"c.half", torch::randn({2, 2}).to(torch::kBFloat16)},
      {"d.bool", torch::tensor({true, false, true})},
      {"e.scalar", torch::tensor(3.5)}};
  core::save_safetensors(dir / "t.safetensors", tensors, {{"format", "pt"}});
  std::map<std::string, std::string> metadata;
  auto loaded = core::load_safetensors(dir / "t.safetensors", &metadata);
  EXPECT_EQ(metadata["format"], "pt");
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(loaded.count(name)) << name;
    EXPECT_EQ(loaded[name].scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(loaded[name], t)) << name;
  }
  std::ifstream in(dir / "t.safetensors", std::ios::binary);
  uint64_t header = 0;
  in.read(reinterpret_cast<char*>(&header), 8);
  EXPECT_EQ(header % 8, 0u) << "data must start 8-byte aligned";
}

TEST(Safetensors, TruncatedFileIsAClearError) {
  test::TempDir dir;
  core::save_safetensors(dir / "t.safetensors", {{"a", torch::randn({64, 64})}});
  std::filesystem::resize_file(dir / "t.safetensors", 200);
  EXPECT_THROW(core::load_safetensors(dir / "t.safetensors"), core::UserError);
}

TEST(Schedule, WarmupThenCosineToFloor) {
  EXPECT_DOUBLE_EQ(core::learning_rate(0, 100, 1.0, 10, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(core::learning_rate(9, 100, 1.0, 10, 0.1), 1.0);
  EXPECT_DOUBLE_EQ(core::learning_rate(10, 100, 1.0, 10, 0.1), 1.0);
  EXPECT_NEAR(core::learning_rate(55, 100, 1.0, 10, 0.1), 0.55, 1e-12);
  EXPECT_NEAR(core::learning_rate(100, 100, 1.0, 10, 0.1), 0.1, 1e-12);
}
