// The host's config sections as typed values, each declared beside its schema and decoded
// once from a validated Config: a key is spelled in one file, and a mistyped field is a
// compile error rather than a failure in the middle of a run. The model section belongs to
// the plugin (its descriptor's schema) and stays a SectionValues.
#pragma once

#include <cstdint>
#include <string>

#include "xlhost/core/config/config.hpp"
#include "xlhost/core/data/token_data.hpp"
#include "xlhost/core/run/run_directory.hpp"

namespace xlhost::core {

struct ExperimentOptions {
  std::string id, description;
  static Schema schema();
  static ExperimentOptions from(const SectionValues& s);
};

struct DataOptions {
  std::string train_path, val_path, tokenizer, cache_dir, knowledge_path;
  int64_t seq_len = 0;
  bool skip_malformed = false;
  DocumentFormat format = DocumentFormat::kText;
  static Schema schema();
  static DataOptions from(const SectionValues& s);
};

struct TrainOptions {
  int64_t batch_size = 0, accumulation_steps = 1, max_steps = 0, epochs = 1, warmup_steps = 0, seed = 0;
  int64_t log_interval = 1, checkpoint_interval = 0, export_interval = 0, threads = 0;
  int64_t max_bad_steps = 0, spike_window = 0, profile_steps = 0;
  double spike_sigma = 0;
  double lr = 0, min_lr_ratio = 0, weight_decay = 0, beta1 = 0, beta2 = 0, grad_clip = 0;
  std::string device, dtype;
  std::string init_from;  // "" = the plugin's initialisation
  bool memory_usage = true;
  static Schema schema();
  static TrainOptions from(const SectionValues& s);
};

struct EvalOptions {
  int64_t interval = 0, max_batches = 0, batch_size = 0, max_facts = 0;
  std::string facts_path;
  static Schema schema();
  static EvalOptions from(const SectionValues& s);
};

struct GenerateSectionOptions {
  std::string prompts_path, reference_run;
  int64_t max_new_tokens = 0, seed = 0, samples = 0;
  double temperature = 0, top_p = 0, repetition_penalty = 1;
  static Schema schema();
  static GenerateSectionOptions from(const SectionValues& s);
};

struct MetricsOptions {
  bool enabled = true, allow_remote = false;
  std::string listen;
  double linger_seconds = 0;
  double peak_flops = 0;  // 0 = measure
  static Schema schema();
  static MetricsOptions from(const SectionValues& s);
};

struct RunOptions {
  std::string out_dir;
  int64_t keep_checkpoints = 1;
  static Schema schema();
  static RunOptions from(const SectionValues& s);
};

struct DistOptions {
  std::string backend;
  double bucket_mb = 32, timeout_s = 300;
  static Schema schema();
  static DistOptions from(const SectionValues& s);
};

struct Options {
  ExperimentOptions experiment;
  DataOptions data;
  TrainOptions train;
  EvalOptions eval;
  GenerateSectionOptions generate;
  MetricsOptions metrics;
  RunOptions run;
  DistOptions dist;
  static Options from(const Config& config);

  RunDirectory run_directory() const { return RunDirectory(run.out_dir, experiment.id); }
  int64_t eval_batch_size() const { return eval.batch_size > 0 ? eval.batch_size : train.batch_size; }
};

// A validated config with its host sections decoded, once: what the trainer, the record,
// exports and evaluation are handed. The model section stays the plugin's to read.
struct RunConfig {
  RunConfig() = default;
  RunConfig(Config validated) : values(std::move(validated)), options(Options::from(values)) {}  // NOLINT: implicit
  Config values;
  Options options;
};

// Every section's schema, the model's (from the plugin) among them: what Config::load checks.
ConfigSchema full_schema(const Schema& model_schema);

}  // namespace xlhost::core
