// Exports and initial weights: the host's side of sdk/weight_interop.hpp. The comparisons
// with transformers and a MiniMind reference model are tests/python/hf_interop_oracle.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_support.hpp"
#include "xlhost/core/checkpoint/checkpoint.hpp"
#include "xlhost/core/checkpoint/hugging_face.hpp"
#include "xlhost/core/checkpoint/initial_weights.hpp"
#include "xlhost/core/checkpoint/torch_state_dict.hpp"
#include "xlhost/core/util/file_io.hpp"

using namespace xlhost;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<sdk::Model> memory_model(const core::LoadedPlugin& plugin, uint64_t seed) {
  auto config = sdk::SectionValues::defaults(plugin.descriptor().schema);
  for (const auto& [k, v] : std::vector<std::pair<std::string, sdk::Value>>{
           {"dim", int64_t{32}}, {"n_layers", int64_t{2}}, {"n_heads", int64_t{4}}, {"n_kv_heads", int64_t{2}},
           {"vocab_size", int64_t{259}}, {"knowledge_num", int64_t{64}}, {"knowledge_length", int64_t{12}},
           {"knowledge_dim", int64_t{16}}, {"num_selected", int64_t{4}}, {"fusion_heads", int64_t{4}}})
    config.set(k, v);
  torch::manual_seed(seed);
  return plugin.create(config);
}

}  // namespace

TEST(WeightInterop, ExportingAPluginWithoutAMappingNamesIt) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  const auto message = test::error_of([&] { core::Trainer(test::bigram_job(dir, {"train.export_interval=10"})); });
  EXPECT_NE(message.find("no Hugging Face mapping for plugin bigram"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir / "out/0.0.1/checkpoints")) << "refused before training";
}

TEST(WeightInterop, ExportIntervalWritesFoldersBesideSelectedCheckpoints) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  const auto plugin = core::load_plugin(test::plugin_path("model_original"));
  core::TrainJob job;
  job.model = core::model_source(plugin);
  job.config = test::tiny_config(plugin, dir, {"train.max_steps=6", "train.checkpoint_interval=2", "train.export_interval=4",
                                               "data.tokenizer=" + dir / "data/tokenizer/tokenizer.json",
                                               "model.vocab_size=512"});
  job.log = &test::discard();
  core::train(job);
  const fs::path exports = dir / "out/0.0.1/exports";
  EXPECT_FALSE(fs::exists(exports / "step_00000002")) << "2 is no multiple of export_interval";
  for (const char* step : {"step_00000004", "step_00000006"}) {  // a multiple of 4, and the end
    for (const char* file : {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                             "tokenizer_config.json", "xlhost_source.json"})
      EXPECT_TRUE(fs::exists(exports / step / file)) << step << "/" << file;
  }
  const auto config = core::read_text_file((exports / "step_00000006/config.json").string());
  EXPECT_NE(config.find("\"LlamaForCausalLM\""), std::string::npos) << config;
  EXPECT_NE(config.find("\"vocab_size\": 512"), std::string::npos) << config;
}

// Issue 28, defect 11: before, this export was written, and transformers computed the
// sequential Llama block from it (another greedy next token).
TEST(WeightInterop, AnExportTransformersWouldComputeDifferentlyIsRefused) {
  test::TempDir dir;
  auto small = [](const core::LoadedPlugin& plugin) {
    auto config = sdk::SectionValues::defaults(plugin.descriptor().schema);
    for (const auto& [k, v] : std::vector<std::pair<std::string, sdk::Value>>{
             {"dim", int64_t{32}}, {"n_layers", int64_t{2}}, {"n_heads", int64_t{4}}, {"n_kv_heads", int64_t{2}},
             {"vocab_size", int64_t{259}}})
      config.set(k, v);
    torch::manual_seed(3);
    return plugin.create(config);
  };
  core::ExportSpec spec;
  spec.tokenizer = "byte", spec.config_json = "{}\n";
  const auto variant_plugin = core::load_plugin(std::string(XLHOST_TEST_PLUGIN_DIR) + "/parallel_block_plugin.so");
  auto variant = small(variant_plugin);
  spec.plugin_name = "parallel_block_plugin";
  const auto message = test::error_of([&] { core::export_model(*variant, spec, dir / "variant"); });
  EXPECT_NE(message.find("would compute other logits than the plugin"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir / "variant")) << "nothing written";

  const auto original_plugin = core::load_plugin(test::plugin_path("model_original"));
  auto original = small(original_plugin);
  spec.plugin_name = "model_original";
  EXPECT_TRUE(core::export_model(*original, spec, dir / "original").hugging_face) << "the Llama block itself passes";
}

TEST(WeightInterop, MemoryModelsExportTheirOwnNamesAndLoadThemBack) {
  test::TempDir dir;
  const auto plugin = core::load_plugin(test::plugin_path("model_memory"));
  auto trained = memory_model(plugin, 1);
  core::ExportSpec spec;
  spec.plugin_name = "model_memory", spec.tokenizer = "byte", spec.config_json = "{\"model\": {}}\n";
  const auto result = core::export_model(*trained, spec, dir / "export");
  EXPECT_FALSE(result.hugging_face);
  EXPECT_NE(result.note.find("no Hugging Face form"), std::string::npos) << result.note;
  EXPECT_NE(result.note.find("byte tokenizer"), std::string::npos) << result.note;
  EXPECT_EQ(core::read_text_file(dir / "export/config.json"), spec.config_json);
  EXPECT_NE(test::error_of([&] { core::export_model(*trained, spec, dir / "export"); }).find("exists"), std::string::npos);

  auto fresh = memory_model(plugin, 2);
  const auto origin = core::locate_weights(dir / "export");
  EXPECT_EQ(origin.format, core::WeightsFormat::kSafetensors) << "a native export holds the model's own names";
  core::load_initial_weights(*fresh, origin, "model_memory");
  const auto a = core::state_tensors(*trained), b = core::state_tensors(*fresh);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
}

TEST(WeightInterop, InitialWeightsFromAnotherTokenizerAreWarnedAbout) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  core::train(test::bigram_job(dir, {"model.vocab_size=512", "train.max_steps=2"}));  // the byte tokenizer
  auto s = core::train(test::bigram_job(
      dir, {"model.vocab_size=512", "train.max_steps=2", "experiment.id=0.0.2", "train.init_from=" + dir / "out/0.0.1",
            "data.tokenizer=" + dir / "data/tokenizer/tokenizer.json"}));
  ASSERT_FALSE(s.warnings.empty());
  EXPECT_NE(s.warnings[0].find("were trained with tokenizer byte"), std::string::npos) << s.warnings[0];
  auto same = core::train(test::bigram_job(
      dir, {"model.vocab_size=512", "train.max_steps=2", "experiment.id=0.0.3", "train.init_from=" + dir / "out/0.0.1"}));
  EXPECT_TRUE(same.warnings.empty()) << same.warnings[0];
}

TEST(WeightInterop, InitFromNamesWhatItCannotRead) {
  test::TempDir dir;
  test::write_text(dir / "weights.pth", "not a zip archive");
  test::write_text(dir / "notes.txt", "text");
  fs::create_directories(dir / "empty");
  EXPECT_NE(test::error_of([&] { core::load_torch_state_dict(dir / "weights.pth"); }).find("not a torch.save archive"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { core::locate_weights(dir / "notes.txt"); }).find("a PyTorch state dict (.pth"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { core::locate_weights(dir / "empty"); }).find("neither an xlhost run"), std::string::npos);
  EXPECT_NE(test::error_of([&] { core::locate_weights(dir / "missing"); }).find("no such file"), std::string::npos);
}
