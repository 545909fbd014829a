// train.log as written by the trainer's writer and read back by exp status / exp report:
// the JSON on disk is checked with an independent parser (rapidjson on the raw line).
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <fstream>

#include "test_support.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/experiments/train_log.hpp"

using namespace xlhost;

namespace {

core::StepRecord step(int64_t n, double loss) {
  core::StepRecord s;
  s.step = n, s.total_steps = 100, s.loss = loss, s.lr = 1e-3, s.grad_norm = 0.5, s.tokens_seen = n * 64;
  s.tokens_per_second = 1000, s.step_seconds = 0.25;
  return s;
}

}  // namespace

TEST(TrainLog, PluginDiagnosticsCannotShadowTheTrainersKeys) {
  test::TempDir dir;
  const auto path = core::RunDirectory(dir.path(), "1.0.0").train_log();
  std::filesystem::create_directories(path.parent_path());
  auto s = step(10, 2.5);
  s.aux_loss = 0.25;
  s.diagnostics = {{"loss", 99.0}, {"lr", -1.0}, {"memory/coverage", 0.75}};
  core::TrainLogWriter(path, std::nullopt).write(s);

  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  rapidjson::Document d;
  d.Parse(line.c_str());
  ASSERT_FALSE(d.HasParseError()) << line;
  EXPECT_EQ(line.rfind("{\"step\":10,\"total_steps\":100,\"loss\":", 0), 0u) << line;
  EXPECT_DOUBLE_EQ(d["loss"].GetDouble(), 2.5);
  EXPECT_DOUBLE_EQ(d["lr"].GetDouble(), 1e-3);
  EXPECT_DOUBLE_EQ(d["diagnostics"]["loss"].GetDouble(), 99.0);
  EXPECT_DOUBLE_EQ(d["diagnostics"]["memory/coverage"].GetDouble(), 0.75);

  const auto back = core::read_train_log(path);
  ASSERT_EQ(back.steps.size(), 1u);
  EXPECT_DOUBLE_EQ(back.steps[0].loss, 2.5);
  EXPECT_DOUBLE_EQ(back.steps[0].aux_loss, 0.25);
  EXPECT_DOUBLE_EQ(back.steps[0].objective(), 2.75);
  EXPECT_DOUBLE_EQ(d["objective"].GetDouble(), 2.75);
  ASSERT_EQ(back.steps[0].diagnostics.size(), 3u);
  EXPECT_EQ(back.steps[0].diagnostics[0].first, "loss");
  EXPECT_DOUBLE_EQ(back.steps[0].diagnostics[2].second, 0.75);
}

TEST(TrainLog, OlderLogsWhoseLossIncludedTheAuxiliaryLossReadAsCrossEntropy) {
  test::TempDir dir;
  test::write_text(dir / "train.log", "{\"step\":1,\"total_steps\":2,\"loss\":2.5,\"aux_loss\":0.5,\"lr\":0.001}\n");
  const auto back = core::read_train_log(dir / "train.log");
  ASSERT_EQ(back.steps.size(), 1u);
  EXPECT_DOUBLE_EQ(back.steps[0].loss, 2.0);
  EXPECT_DOUBLE_EQ(back.steps[0].objective(), 2.5);
}

TEST(TrainLog, ReadsEveryKindKeepsDivergenceAsNaNAndAResumeDropsReplayedSteps) {
  test::TempDir dir;
  const auto path = dir.path() / "train.log";
  {
    core::TrainLogWriter log(path, std::nullopt);
    log.write(step(1, 3.0));
    log.write(core::TrainLogEval{1, 2.9, 18.2});
    log.write(step(2, std::nan("")));  // a diverged step: JSON has no NaN, the line must stay valid
    log.write(core::TrainLogFactRecall{2, 0.5, 0.75, 0.25});
  }
  std::ofstream(path, std::ios::app) << "{\"step\":3,\"total_steps\":100,\"lo";  // killed mid-write
  const auto back = core::read_train_log(path);
  ASSERT_EQ(back.steps.size(), 2u);
  EXPECT_TRUE(std::isnan(back.steps[1].loss));
  EXPECT_TRUE(std::isnan(back.steps[1].aux_loss));  // absent: the plugin has none
  ASSERT_EQ(back.evals.size(), 1u);
  EXPECT_DOUBLE_EQ(back.evals[0].val_perplexity, 18.2);
  ASSERT_EQ(back.fact_recalls.size(), 1u);
  EXPECT_DOUBLE_EQ(back.fact_recalls[0].unseen, 0.25);

  // Resumed at step 1: step 2's lines are dropped (step 2 is trained again), the broken
  // line too; the last logged step comes from the file's tail.
  core::TrainLogWriter(path, 1).write(step(2, 1.5));
  const auto resumed = core::read_train_log(path);
  ASSERT_EQ(resumed.steps.size(), 2u);
  EXPECT_DOUBLE_EQ(resumed.steps[1].loss, 1.5);
  EXPECT_TRUE(resumed.fact_recalls.empty());
  EXPECT_EQ(resumed.evals.size(), 1u);
  const auto last = core::last_logged_step(path);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->step, 2);
  EXPECT_DOUBLE_EQ(last->loss, 1.5);
  EXPECT_FALSE(core::last_logged_step(dir.path() / "missing.log").has_value());
}

// Issue 32: the system figures of a log line; the GPU's only where there is one.
TEST(TrainLog, SystemFiguresAndGpuOnlyWhereThereIsOne) {
  test::TempDir dir;
  const auto path = core::RunDirectory(dir.path(), "1.0.0").train_log();
  std::filesystem::create_directories(path.parent_path());
  auto cpu = step(1, 2.5), gpu = step(2, 2.4);
  cpu.cpu_percent = 187.5, cpu.rss_mib = 412, cpu.data_seconds = 0.003;
  gpu.gpu_memory_mib = 2048, gpu.gpu_util_percent = 93;
  {
    core::TrainLogWriter writer(path, std::nullopt);
    writer.write(cpu), writer.write(gpu);
  }
  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  EXPECT_NE(first.find("\"cpu_percent\":187.5,\"rss_mib\":412.0"), std::string::npos) << first;
  EXPECT_EQ(first.find("gpu"), std::string::npos) << "no GPU keys for a run without one: " << first;
  const auto back = core::read_train_log(path);
  ASSERT_EQ(back.steps.size(), 2u);
  EXPECT_DOUBLE_EQ(back.steps[0].cpu_percent, 187.5);
  EXPECT_DOUBLE_EQ(back.steps[0].rss_mib, 412);
  EXPECT_DOUBLE_EQ(back.steps[0].data_seconds, 0.003);
  EXPECT_TRUE(std::isnan(back.steps[0].gpu_memory_mib) && std::isnan(back.steps[0].gpu_util_percent));
  EXPECT_DOUBLE_EQ(back.steps[1].gpu_memory_mib, 2048);
  EXPECT_DOUBLE_EQ(back.steps[1].gpu_util_percent, 93);
}
