// Helpers shared by the tests: temporary directories and tiny configurations.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "xlhost/core/config/config.hpp"
#include "xlhost/core/config/options.hpp"
#include "xlhost/core/data/synthetic_facts.hpp"
#include "xlhost/core/plugin/plugin_loader.hpp"

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

}  // namespace xlhost::test
