// Looking inside a memory model (issue 29): the probes' rows decode to the knowledge file's
// lines and match the gate recomputed on the same queries; ablations change the loss;
// a model without a memory and an override that cannot take effect are clear errors.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "test_support.hpp"
#include "xlhost/core/data/knowledge_file.hpp"
#include "xlhost/core/eval/evaluation.hpp"
#include "xlhost/core/eval/generator.hpp"
#include "xlhost/core/eval/memory_inspection.hpp"
#include "xlhost/core/eval/trained_model.hpp"
#include "xlhost/core/experiments/memory_usage_file.hpp"
#include "xlhost/core/experiments/train_log.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/train/trainer.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/sdk/memory.hpp"

using namespace xlhost;
namespace fs = std::filesystem;

namespace {

// A model_memory run of a few steps whose bank holds the whole knowledge file, one line a row.
core::TrainSummary train_memory_run(const test::TempDir& dir, const std::string& id, int steps,
                             std::vector<std::string> more = {}) {
  test::write_tiny_corpus(dir);
  std::ostringstream log;
  core::TrainJob job;
  const auto plugin = core::load_plugin(test::plugin_path("model_memory"));
  job.model = core::model_source(plugin);
  std::vector<std::string> overrides{"model.knowledge_num=256", "model.knowledge_length=64", "model.knowledge_dim=16",
                                     "model.num_selected=4", "model.fusion_heads=4", "model.fusion_mask=causal",
                                     "train.max_steps=" + std::to_string(steps),
                                     "data.knowledge_path=" + dir / "data/knowledge.txt", "experiment.id=" + id};
  overrides.insert(overrides.end(), more.begin(), more.end());
  job.config = test::tiny_config(plugin, dir, overrides);
  job.log = &log;
  return core::train(job);
}

}  // namespace

TEST(MemoryInspection, RowsReadDecodeToTheirKnowledgeLinesAndMatchTheGate) {
  test::TempDir dir;
  auto t = core::load_trained_model(train_memory_run(dir, "inspect", 2).run_dir, "", {});
  const auto lines = core::read_knowledge_entries(dir / "data/knowledge.txt");
  const auto inspection = core::inspect_memory(*t.model, *t.tokenizer,
                                               core::prompt_ids(*t.tokenizer, "The capital of", false), 4, 3, t.device);
  ASSERT_EQ(inspection.prompt.size(), 15u) << "BOS and 14 bytes";
  EXPECT_EQ(inspection.generated.size(), 3u);
  size_t checked = 0;
  for (const auto& p : inspection.prompt) {
    ASSERT_EQ(p.layers.size(), 2u);
    for (const auto& layer : p.layers) {
      ASSERT_EQ(layer.size(), 4u);
      for (const auto& r : layer) {
        ASSERT_GE(r.row, 0);
        EXPECT_EQ(r.text, static_cast<size_t>(r.row) < lines.size() ? lines[r.row] : "") << "row " << r.row;
        checked += static_cast<size_t>(r.row) < lines.size();
      }
    }
  }
  EXPECT_GT(checked, 0u) << "no read of a knowledge line at all";

  // The probes are the gate's own top-k: recomputed from the recorded queries.
  torch::NoGradGuard no_grad;
  t.model->set_memory_probes(true);
  const auto result = t.model->forward(torch::randint(3, 200, {2, 16}, torch::kInt64));
  ASSERT_EQ(result.memory_reads.size(), 2u);
  for (const auto& read : result.memory_reads) {
    auto gate = t.model->named_modules()["layers." + std::to_string(read.layer) + ".gate"]->as<sdk::ProductKeyGateImpl>();
    ASSERT_NE(gate, nullptr);
    const auto [indices, scores] = gate->forward(read.query, 4);
    EXPECT_TRUE(torch::equal(indices, read.rows)) << "layer " << read.layer;
    EXPECT_TRUE(torch::allclose(scores, read.scores)) << "layer " << read.layer;
  }
  t.model->set_memory_probes(false);
  EXPECT_TRUE(t.model->forward(torch::randint(3, 200, {1, 8}, torch::kInt64)).memory_reads.empty()) << "probes off";
}

TEST(MemoryInspection, AModelWithoutAMemoryIsOneClearError) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  const auto plugin = core::load_plugin(test::plugin_path("model_original"));
  core::TrainJob job;
  job.model = core::model_source(plugin);
  job.config = test::tiny_config(plugin, dir, {"train.max_steps=1"});
  job.log = &test::discard();
  auto t = core::load_trained_model(core::train(job).run_dir, "", {});
  const auto message =
      test::error_of([&] { core::inspect_memory(*t.model, *t.tokenizer, {1, 70, 71}, 3, 0, t.device); });
  EXPECT_NE(message.find("records no memory reads"), std::string::npos) << message;
  EXPECT_TRUE(t.model->memory_ablations().empty());
  EXPECT_THROW(t.model->ablate_memory(sdk::MemoryAblation::kOff, 0), std::invalid_argument);
}

TEST(MemoryAblation, OffShuffleAndRandomEachChangeTheLoss) {
  test::TempDir dir;
  const auto run = train_memory_run(dir, "ablate", 30).run_dir;
  auto loss_with = [&](sdk::MemoryAblation how) {
    auto t = core::load_trained_model(run, "", {});
    if (how != sdk::MemoryAblation::kNone) t.model->ablate_memory(how, 7);
    auto tokens = core::TokenFile::open_or_build(dir / "data/val.jsonl", *t.tokenizer, dir / "cache", false,
                                                 test::discard());
    return core::evaluate_loss(*t.model, tokens, 32, 8, 4, t.device).loss;
  };
  std::set<double> losses;
  for (auto how : {sdk::MemoryAblation::kNone, sdk::MemoryAblation::kOff, sdk::MemoryAblation::kShuffle,
                   sdk::MemoryAblation::kRandom})
    losses.insert(loss_with(how));
  EXPECT_EQ(losses.size(), 4u) << "four different losses";
  EXPECT_DOUBLE_EQ(loss_with(sdk::MemoryAblation::kShuffle), loss_with(sdk::MemoryAblation::kShuffle)) << "seeded";

  const auto message = test::error_of([&] {
    core::load_trained_model(run, "", {"data.knowledge_path=" + dir / "data/knowledge.txt"});
  });
  EXPECT_NE(message.find("comes from its checkpoint, so this cannot take effect"), std::string::npos) << message;
}

// Issue 29: the reads of every logged step sum to B·T·S for each layer (log_interval 1),
// and train.log's rows-never-read figure is what the file's totals say.
TEST(MemoryUsage, CountsSumToEachStepsReadsAndAgreeWithTrainLog) {
  test::TempDir dir;
  const core::RunDirectory run(train_memory_run(dir, "usage", 6, {"train.log_interval=1"}).run_dir);
  const auto file = core::read_memory_usage(run.memory_usage());
  EXPECT_EQ(file.layers, 2u);
  EXPECT_EQ(file.rows, 256u);
  ASSERT_EQ(file.records.size(), 12u) << "6 logged steps x 2 layers";
  std::vector<int64_t> total(256, 0);
  for (const auto& r : file.records) {
    int64_t sum = 0;
    for (const auto& [row, n] : r.reads) sum += n, total[row] += n;
    EXPECT_EQ(sum, 8 * 32 * 4) << "step " << r.step << ", layer " << r.layer << ": batch 8 x 32 tokens x 4 rows";
  }
  const auto never = std::count(total.begin(), total.end(), 0);
  const auto log = core::read_train_log(run.train_log());
  ASSERT_FALSE(log.steps.empty());
  double logged = -1;
  for (const auto& [name, value] : log.steps.back().diagnostics)
    if (name == "memory_rows_never_hit") logged = value;
  EXPECT_EQ(logged, static_cast<double>(never));
  EXPECT_GT(never, 0) << "a 256-row bank is not read whole in 6 steps of this tiny model";
}

// Issue 29: an EMA bank drifts from its text and the figures say by how many rows; a frozen
// one does not; the run's results, which the record keeps, hold the last figures.
TEST(MemoryUsage, RowsChangedCountsAnEmaBanksDriftAndTheRecordKeepsTheFigures) {
  auto last_figure = [](const core::RunDirectory& run, const std::string& name) {
    const auto log = core::read_train_log(run.train_log());  // kept: the loop reads into it
    double value = -1;
    for (const auto& [n, v] : log.steps.back().diagnostics)
      if (n == name) value = v;
    return value;
  };

  test::TempDir frozen_dir, ema_dir;
  const core::RunDirectory frozen(train_memory_run(frozen_dir, "frozen", 4, {"model.freeze_memory=true"}).run_dir);
  const auto ema_summary = train_memory_run(ema_dir, "ema", 4, {"model.freeze_memory=false", "model.ema_update_freq=1"});
  const core::RunDirectory ema(ema_summary.run_dir);
  EXPECT_EQ(last_figure(frozen, "memory_rows_changed"), 0);
  EXPECT_GT(last_figure(ema, "memory_rows_changed"), 0);
  EXPECT_FALSE(ema_summary.memory_usage.empty()) << "the results the record keeps";
  EXPECT_FALSE(fs::exists(frozen.memory_changes()));
  const auto changes = core::parse_json(core::read_text_file(ema.memory_changes().string()), "memory_changes.json");
  ASSERT_GT(changes["rows"].Size(), 0u);
  const auto& top = changes["rows"][0];
  EXPECT_GT(top["tokens_changed"].GetInt64(), 0);
  EXPECT_STRNE(top["before"].GetString(), top["after"].GetString()) << "the text diff of a changed row";
}
