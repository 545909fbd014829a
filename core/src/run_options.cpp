#include "xlhost/core/run_options.hpp"

#include <filesystem>

namespace xlhost::core {

DataOptions DataOptions::from(const Config& config) {
  const auto& s = config.section("data");
  DataOptions o;
  o.train_path = s.get_string("train_path"), o.val_path = s.get_string("val_path");
  o.tokenizer = s.get_string("tokenizer"), o.cache_dir = s.get_string("cache_dir");
  o.knowledge_path = s.get_string("knowledge_path");
  o.seq_len = s.get_int("seq_len");
  o.skip_malformed = s.get_bool("skip_malformed");
  return o;
}

TrainOptions TrainOptions::from(const Config& config) {
  const auto& s = config.section("train");
  TrainOptions o;
  o.batch_size = s.get_int("batch_size"), o.accumulation_steps = s.get_int("accumulation_steps");
  o.max_steps = s.get_int("max_steps"), o.epochs = s.get_int("epochs"), o.warmup_steps = s.get_int("warmup_steps");
  o.seed = s.get_int("seed"), o.log_interval = s.get_int("log_interval");
  o.checkpoint_interval = s.get_int("checkpoint_interval"), o.threads = s.get_int("threads");
  o.lr = s.get_float("lr"), o.min_lr_ratio = s.get_float("min_lr_ratio"), o.weight_decay = s.get_float("weight_decay");
  o.beta1 = s.get_float("beta1"), o.beta2 = s.get_float("beta2"), o.grad_clip = s.get_float("grad_clip");
  o.device = s.get_string("device"), o.dtype = s.get_string("dtype");
  return o;
}

EvalOptions EvalOptions::from(const Config& config) {
  const auto& s = config.section("eval");
  EvalOptions o;
  o.interval = s.get_int("interval"), o.max_batches = s.get_int("max_batches"), o.batch_size = s.get_int("batch_size");
  o.max_facts = s.get_int("max_facts"), o.facts_path = s.get_string("facts_path");
  return o;
}

RunOptions RunOptions::from(const Config& config) {
  RunOptions o;
  o.experiment_id = config.section("experiment").get_string("id");
  o.out_dir = config.section("run").get_string("out_dir");
  o.keep_checkpoints = config.section("run").get_int("keep_checkpoints");
  o.peak_flops = config.section("metrics").get_float("peak_flops");
  return o;
}

std::string RunOptions::run_dir() const { return (std::filesystem::path(out_dir) / experiment_id).string(); }

}  // namespace xlhost::core
