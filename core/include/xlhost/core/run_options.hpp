// The host's config sections as typed values, decoded once from a validated Config, so
// that a mistyped key is a compile error rather than a failure in the middle of a run.
#pragma once

#include <cstdint>
#include <string>

#include "xlhost/core/config.hpp"

namespace xlhost::core {

struct DataOptions {
  std::string train_path, val_path, tokenizer, cache_dir, knowledge_path;
  int64_t seq_len = 0;
  bool skip_malformed = false;
  static DataOptions from(const Config& config);
};

struct TrainOptions {
  int64_t batch_size = 0, accumulation_steps = 1, max_steps = 0, epochs = 1, warmup_steps = 0, seed = 0;
  int64_t log_interval = 1, checkpoint_interval = 0, threads = 0;
  double lr = 0, min_lr_ratio = 0, weight_decay = 0, beta1 = 0, beta2 = 0, grad_clip = 0;
  std::string device, dtype;
  static TrainOptions from(const Config& config);
};

struct EvalOptions {
  int64_t interval = 0, max_batches = 0, batch_size = 0, max_facts = 0;
  std::string facts_path;
  static EvalOptions from(const Config& config);
};

struct RunOptions {
  std::string experiment_id, out_dir;
  int64_t keep_checkpoints = 1;
  double peak_flops = 0;  // metrics.peak_flops: 0 = measure
  std::string run_dir() const;  // <out_dir>/<experiment_id>
  static RunOptions from(const Config& config);
};

}  // namespace xlhost::core
