#include "xlhost/core/config/options.hpp"

#include <regex>

#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

using namespace sdk;

Schema ExperimentOptions::schema() {
  return {string_key("id", "0.0.0", "experiment version X.Y.Z (major = architecture, minor = feature, patch = tuning)"),
          string_key("description", "", "one line saying what this run tests")};
}

ExperimentOptions ExperimentOptions::from(const SectionValues& s) {
  // The id names the run's folder: one path component, nothing that climbs out of out_dir.
  static const std::regex usable("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  const std::string id = s.get_string("id");
  if (!std::regex_match(id, usable))
    throw UserError("experiment.id: '" + id.substr(0, 80) + (id.size() > 80 ? "...'" : "'") +
                    " cannot name a run folder (expected 1 to 128 letters, digits, '.', '_' or '-', starting with a "
                    "letter or digit, e.g. 1.4.0)");
  return {id, s.get_string("description")};
}

Schema DataOptions::schema() {
  return {string_key("train_path", "data/synth/train.jsonl", "training data: JSON lines with a \"text\" field"),
          string_key("val_path", "data/synth/val.jsonl", "held-out data in the same format; empty = none"),
          string_key("tokenizer", "byte",
                     "tokenizer: \"byte\" (byte-level, 259 ids) or the path of a Hugging Face tokenizer.json (byte-level BPE)"),
          string_key("format", "text",
                     "\"text\": lines {\"text\": ...}, every token in the loss; \"chat\": lines {\"conversations\": "
                     "[{\"role\", \"content\"}, ...]} rendered as ChatML, only assistant tokens in the loss",
                     {"text", "chat"}),
          int_key("seq_len", 256, "tokens per training sequence", 2, 1 << 20),
          bool_key("skip_malformed", false, "skip (and count) malformed lines instead of refusing to start"),
          string_key("cache_dir", "cache", "where tokenised data is cached (keyed by content hash)"),
          string_key("knowledge_path", "", "knowledge file handed to the plugin's init_from_data; empty = none")};
}

DataOptions DataOptions::from(const SectionValues& s) {
  DataOptions o;
  o.train_path = s.get_string("train_path"), o.val_path = s.get_string("val_path");
  o.tokenizer = s.get_string("tokenizer"), o.seq_len = s.get_int("seq_len");
  o.format = s.get_string("format") == "chat" ? DocumentFormat::kChat : DocumentFormat::kText;
  o.skip_malformed = s.get_bool("skip_malformed"), o.cache_dir = s.get_string("cache_dir");
  o.knowledge_path = s.get_string("knowledge_path");
  return o;
}

Schema TrainOptions::schema() {
  return {int_key("batch_size", 16, "sequences per micro-batch", 1, 1 << 20),
          int_key("accumulation_steps", 1, "micro-batches per optimizer step", 1, 1 << 20),
          int_key("max_steps", 0, "optimizer steps; 0 = as many as `epochs` gives", 0, 1e15),
          int_key("epochs", 1, "passes over the training data when max_steps is 0", 1, 1e6),
          float_key("lr", 3e-4, "peak learning rate", 0.0, 10.0),
          float_key("min_lr_ratio", 0.1, "cosine schedule floor as a fraction of lr", 0.0, 1.0),
          int_key("warmup_steps", 0, "linear warm-up steps", 0, 1e15),
          float_key("weight_decay", 0.1, "AdamW weight decay (matrices only)", 0.0, 10.0),
          float_key("beta1", 0.9, "AdamW beta1", 0.0, 1.0),
          float_key("beta2", 0.95, "AdamW beta2", 0.0, 1.0),
          float_key("grad_clip", 1.0, "clip the global gradient norm to this; 0 = off", 0.0, 1e9),
          int_key("seed", 1337, "seed for initialisation, data order and dropout", 0, 9.2e18),
          int_key("log_interval", 10, "steps between train.log lines and progress updates", 1, 1e9),
          int_key("checkpoint_interval", 0, "steps between checkpoints; 0 = only at the end", 0, 1e15),
          int_key("export_interval", 0,
                  "write a Hugging Face export (exports/step_N) at every checkpoint whose step is a multiple of this, "
                  "and at the end; 0 = off",
                  0, 1e15),
          string_key("init_from", "",
                     "initial weights (a fresh optimizer and schedule): an xlhost run or checkpoint, a Hugging Face "
                     "folder, a PyTorch state dict (.pth) or a .safetensors file; \"\" = the plugin's initialisation. "
                     "Ignored when the run resumes from its own checkpoint"),
          int_key("threads", 0, "CPU threads for LibTorch; 0 = all cores", 0, 4096),
          int_key("profile_steps", 0,
                  "profile this many steps with LibTorch's profiler, from the run's third (the first two warm up): "
                  "operators by self time in profile.txt and a Chrome trace in profile.trace.json in the run "
                  "folder; the steps profiled run slower. 0 = off",
                  0, 1e6),
          bool_key("memory_usage", true,
                   "memory models: count the bank rows each layer reads (memory_usage.bin in the run folder; rows "
                   "read and never read, hot rows, per-layer entropy and Gini in train.log); false = no memory probes "
                   "during training"),
          float_key("spike_sigma", 6.0,
                    "skip a step whose loss or gradient norm exceeds the rolling mean by this many standard "
                    "deviations; 0 = off",
                    0.0, 1e6),
          int_key("spike_window", 128, "accepted steps the rolling mean and deviation cover", 2, 1e6),
          int_key("max_bad_steps", 16,
                  "consecutive skipped steps (non-finite or spiking) that end the run as diverged; 0 = never", 0, 1e9),
          string_key("device", "cpu", "cpu, cuda, or auto (cuda when available)", {"cpu", "cuda", "auto"}),
          string_key("dtype", "float32", "float32; bfloat16 autocast (float32 weights and optimizer state, matmuls in bfloat16; CUDA or CPU); "
                     "auto = bfloat16 on CUDA and on CPUs with AMX-BF16 matrix units, else float32 (on a CPU without "
                     "AVX-512, bfloat16 runs at a fraction of float32's speed: a warning says so)",
                     {"float32", "bfloat16", "auto"})};
}

TrainOptions TrainOptions::from(const SectionValues& s) {
  TrainOptions o;
  o.batch_size = s.get_int("batch_size"), o.accumulation_steps = s.get_int("accumulation_steps");
  o.max_steps = s.get_int("max_steps"), o.epochs = s.get_int("epochs");
  o.lr = s.get_float("lr"), o.min_lr_ratio = s.get_float("min_lr_ratio"), o.warmup_steps = s.get_int("warmup_steps");
  o.weight_decay = s.get_float("weight_decay"), o.beta1 = s.get_float("beta1"), o.beta2 = s.get_float("beta2");
  o.grad_clip = s.get_float("grad_clip"), o.seed = s.get_int("seed"), o.log_interval = s.get_int("log_interval");
  o.checkpoint_interval = s.get_int("checkpoint_interval"), o.threads = s.get_int("threads");
  o.export_interval = s.get_int("export_interval"), o.init_from = s.get_string("init_from");
  o.spike_sigma = s.get_float("spike_sigma"), o.spike_window = s.get_int("spike_window");
  o.max_bad_steps = s.get_int("max_bad_steps"), o.memory_usage = s.get_bool("memory_usage");
  o.device = s.get_string("device"), o.dtype = s.get_string("dtype"), o.profile_steps = s.get_int("profile_steps");
  return o;
}

Schema EvalOptions::schema() {
  return {int_key("interval", 0, "steps between evaluations on val_path; 0 = only at the end", 0, 1e15),
          int_key("max_batches", 20, "batches of val data per evaluation", 1, 1e9),
          int_key("batch_size", 0, "0 = train.batch_size", 0, 1 << 20),
          string_key("facts_path", "", "facts.jsonl for fact recall after training and in `xlhost eval`; empty = none"),
          int_key("max_facts", 0, "facts scored for fact recall; 0 = all", 0, 1e9)};
}

EvalOptions EvalOptions::from(const SectionValues& s) {
  EvalOptions o;
  o.interval = s.get_int("interval"), o.max_batches = s.get_int("max_batches"), o.batch_size = s.get_int("batch_size");
  o.facts_path = s.get_string("facts_path"), o.max_facts = s.get_int("max_facts");
  return o;
}

Schema GenerateSectionOptions::schema() {
  return {string_key("prompts_path", "", "text file, one prompt per line; empty = no samples after training"),
          int_key("max_new_tokens", 64, "new tokens per prompt (the prompt does not count)", 1, 1 << 20),
          float_key("temperature", 0.75, "softmax temperature; 0 = greedy", 0.0, 100.0),
          float_key("top_p", 0.9, "nucleus sampling mass", 0.0, 1.0),
          float_key("repetition_penalty", 1.0, "divide logits of tokens already present by this", 0.01, 100.0),
          int_key("seed", 0, "sampling seed", 0, 9.2e18),
          int_key("samples", 3, "prompts whose completion is printed after training", 0, 1 << 20),
          string_key("reference_run", "",
                     "a run (its id under run.out_dir, or its folder) whose model scores the samples: their perplexity "
                     "under it goes into the record; empty = none")};
}

GenerateSectionOptions GenerateSectionOptions::from(const SectionValues& s) {
  GenerateSectionOptions o;
  o.prompts_path = s.get_string("prompts_path"), o.max_new_tokens = s.get_int("max_new_tokens");
  o.temperature = s.get_float("temperature"), o.top_p = s.get_float("top_p");
  o.repetition_penalty = s.get_float("repetition_penalty"), o.seed = s.get_int("seed"), o.samples = s.get_int("samples");
  o.reference_run = s.get_string("reference_run");
  return o;
}

Schema MetricsOptions::schema() {
  return {bool_key("enabled", true, "serve Prometheus metrics while training"),
          string_key("listen", "127.0.0.1:9464", "host:port of /metrics and /healthz; port 0 picks a free port"),
          bool_key("allow_remote", false, "allow a listen address other than loopback (exposes the endpoint)"),
          float_key("linger_seconds", 0.0, "keep serving this long after the run ends, for a last scrape", 0.0, 86400.0),
          float_key("peak_flops", 0.0, "device peak FLOP/s for xl_train_mfu_ratio; 0 = measure a matmul at start", 0.0,
                    1e18)};
}

MetricsOptions MetricsOptions::from(const SectionValues& s) {
  MetricsOptions o;
  o.enabled = s.get_bool("enabled"), o.listen = s.get_string("listen"), o.allow_remote = s.get_bool("allow_remote");
  o.linger_seconds = s.get_float("linger_seconds"), o.peak_flops = s.get_float("peak_flops");
  return o;
}

Schema RunOptions::schema() {
  return {string_key("out_dir", "out", "runs write to <out_dir>/<experiment.id>/"),
          int_key("keep_checkpoints", 3, "checkpoints kept per run (oldest removed first)", 1, 1 << 20)};
}

RunOptions RunOptions::from(const SectionValues& s) { return {s.get_string("out_dir"), s.get_int("keep_checkpoints")}; }

Schema DistOptions::schema() {
  return {string_key("backend", "auto",
                     "c10d backend of a data-parallel run (torchrun or Slurm sets the ranks): gloo (CPU), nccl (CUDA), "
                     "auto = nccl on CUDA, else gloo",
                     {"auto", "gloo", "nccl"}),
          float_key("bucket_mb", 32.0,
                    "gradients are all-reduced in buckets of about this many MiB, each as soon as backward has "
                    "produced it (overlapping the rest of backward)",
                    0.001, 1e6),
          float_key("timeout_s", 300.0,
                    "seconds a rank waits in a collective (or for the others to join) before it gives up and names the "
                    "ranks that stopped",
                    1.0, 1e6)};
}

DistOptions DistOptions::from(const SectionValues& s) {
  return {s.get_string("backend"), s.get_float("bucket_mb"), s.get_float("timeout_s")};
}

Options Options::from(const Config& config) {
  return {ExperimentOptions::from(config.section("experiment")), DataOptions::from(config.section("data")),
          TrainOptions::from(config.section("train")),           EvalOptions::from(config.section("eval")),
          GenerateSectionOptions::from(config.section("generate")), MetricsOptions::from(config.section("metrics")),
          RunOptions::from(config.section("run")),                DistOptions::from(config.section("dist"))};
}

ConfigSchema full_schema(const Schema& model_schema) {
  return {{"experiment", ExperimentOptions::schema()}, {"model", model_schema},
          {"data", DataOptions::schema()},             {"train", TrainOptions::schema()},
          {"eval", EvalOptions::schema()},             {"generate", GenerateSectionOptions::schema()},
          {"metrics", MetricsOptions::schema()},       {"run", RunOptions::schema()},
          {"dist", DistOptions::schema()}};
}

}  // namespace xlhost::core
