// Helpers shared by the tests: temporary directories and tiny configurations.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include "xlhost/core/config/config.hpp"
#include "xlhost/core/config/options.hpp"
#include "xlhost/core/data/synthetic_facts.hpp"
#include "xlhost/core/plugin/model_source.hpp"
#include "xlhost/core/plugin/plugin_loader.hpp"
#include "xlhost/core/train/trainer.hpp"
#include "xlhost/core/util/error.hpp"

namespace xlhost::test {

inline std::string plugin_path(const std::string& name) { return std::string(XLHOST_PLUGIN_DIR) + "/" + name + ".so"; }

// A fresh directory under the system temp dir, removed when the fixture ends.
class TempDir {
 public:
  TempDir() {
    auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("xlhost_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A small synthetic corpus in dir/data.
inline void write_tiny_corpus(const TempDir& dir) {
  core::SynthOptions o;
  o.entities = 20;
  o.train_documents = 300;
  o.val_documents = 40;
  core::write_synthetic_facts(dir / "data", o);
}

// A tiny model_original training config over write_tiny_corpus's data.
inline core::Config tiny_config(const core::LoadedPlugin& plugin, const TempDir& dir,
                                std::vector<std::string> overrides = {}) {
  std::vector<std::string> all = {
      "model.dim=32",         "model.n_layers=2",          "model.n_heads=4",
      "model.n_kv_heads=2",   "model.vocab_size=259",      "data.train_path=" + dir / "data/train.jsonl",
      "data.val_path=" + dir / "data/val.jsonl", "data.seq_len=32", "data.cache_dir=" + dir / "cache",
      "train.batch_size=8",   "train.max_steps=40",        "train.lr=3e-3",
      "train.warmup_steps=5", "train.threads=2",           "train.log_interval=10",
      "eval.max_batches=4",   "run.out_dir=" + dir / "out", "experiment.id=0.0.1"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  return core::Config::parse("{}", "tiny", core::full_schema(plugin.descriptor().schema), all);
}

// Next-token logits from the current token alone: a table of vocab x vocab logits. A
// model written in the test, trained without a plugin file. `fault` makes training-mode
// forwards fault_step .. fault_step + fault_steps - 1 (counted from 1) misbehave:
// nan_loss (NaN logits), nan_grad (finite loss, NaN gradient) or spike (logits x 50).
class BigramModel : public sdk::Model {
 public:
  explicit BigramModel(const sdk::ModelConfig& c)
      : fault_(c.get_string("fault")), fault_step_(c.get_int("fault_step")), fault_steps_(c.get_int("fault_steps")) {
    const int64_t vocab = c.get_int("vocab_size");
    table = register_parameter("table", torch::zeros({vocab, vocab}));
  }
  sdk::ForwardResult forward(const torch::Tensor& tokens, sdk::DecodeCache*) override {
    sdk::ForwardResult r;
    r.logits = torch::nn::functional::embedding(tokens, table);
    if (torch::GradMode::is_enabled() && ++forwards_ >= fault_step_ && forwards_ < fault_step_ + fault_steps_) {
      if (fault_ == "nan_loss") r.logits = r.logits * std::nan("");
      // sqrt'(0) is infinite: the value stays finite, the gradient becomes NaN
      if (fault_ == "nan_grad") r.logits = r.logits + torch::sqrt(table.sum() * 0) * 0;
      if (fault_ == "spike") r.logits = r.logits * 50 + 20 * torch::randn_like(r.logits);
    }
    r.diagnostics = {{"table_norm", table.norm().item<double>()}};
    return r;
  }
  torch::Tensor table;

 private:
  std::string fault_;
  int64_t fault_step_, fault_steps_, forwards_ = 0;
};

inline core::ModelSource bigram_source() {
  core::ModelSource source;
  source.descriptor.name = "bigram", source.descriptor.version = "0.1";
  source.descriptor.schema = {sdk::int_key("vocab_size", 259, "vocabulary", 2, 1 << 20),
                              sdk::string_key("fault", "none", "injected fault", {"none", "nan_loss", "nan_grad", "spike"}),
                              sdk::int_key("fault_step", 0, "first faulty training forward", 0, 1 << 20),
                              sdk::int_key("fault_steps", 0, "faulty forwards in a row", 0, 1 << 20)};
  source.create = [](const sdk::ModelConfig& c) { return std::make_shared<BigramModel>(c); };
  return source;
}

// The message of the UserError that f throws, "(no error)" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const core::UserError& e) {
    return e.what();
  }
  return "(no error)";
}

// A stream that discards what is written to it (a null buffer writes nothing).
inline std::ostream& discard() {
  static std::ostream sink(nullptr);
  return sink;
}

// A bigram training job over write_tiny_corpus's data; its progress log is discarded.
inline core::TrainJob bigram_job(const TempDir& dir, std::vector<std::string> overrides = {}) {
  core::TrainJob job;
  job.model = bigram_source();
  std::vector<std::string> all = {
      "data.train_path=" + dir / "data/train.jsonl", "data.val_path=" + dir / "data/val.jsonl", "data.seq_len=32",
      "data.cache_dir=" + dir / "cache", "train.batch_size=8", "train.max_steps=40", "train.lr=0.1",
      "train.threads=2", "train.log_interval=10", "train.checkpoint_interval=20", "eval.max_batches=4",
      "run.out_dir=" + dir / "out", "experiment.id=0.0.1"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  job.config = core::Config::parse("{}", "test", core::full_schema(job.model.descriptor.schema), all);
  job.log = &discard();
  return job;
}

}  // namespace xlhost::test
