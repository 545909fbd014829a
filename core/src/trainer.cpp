#include "xlhost/core/trainer.hpp"

#include <ATen/autocast_mode.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "xlhost/core/checkpoint.hpp"
#include "xlhost/core/device_info.hpp"
#include "xlhost/core/file_io.hpp"
#include "xlhost/core/error.hpp"
#include "xlhost/core/knowledge_file.hpp"
#include "xlhost/core/progress.hpp"
#include "xlhost/core/token_data.hpp"
#include "xlhost/core/training_metrics.hpp"
#include "xlhost/core/window_batch.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double learning_rate(int64_t step, int64_t total, double peak, int64_t warmup, double min_ratio) {
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  const double floor = peak * min_ratio;
  return floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

torch::Device resolve_device(const std::string& name) {
  if (name == "cuda" && !torch::cuda::is_available())
    throw UserError("train.device=cuda but LibTorch " TORCH_VERSION " sees no CUDA device on this machine "
                    "(use train.device=cpu, or auto to take a GPU when there is one)");
  if (name == "cuda" || (name == "auto" && torch::cuda::is_available())) return torch::kCUDA;
  return torch::kCPU;
}

void configure_threads(int64_t threads) {
  const int n = threads > 0 ? static_cast<int>(threads) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
}

int64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// bfloat16 autocast for the forward pass on CUDA.
class AutocastScope {
 public:
  explicit AutocastScope(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  }
  ~AutocastScope() {
    if (!enabled_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
  }

 private:
  bool enabled_;
};

std::string json_number(double x) {
  if (!std::isfinite(x)) return "null";
  std::ostringstream out;
  out << std::setprecision(9) << x;
  return out.str();
}

}  // namespace

TrainSummary train(const TrainJob& job) {
  std::ostream& log = job.log ? *job.log : std::cerr;
  const auto& cfg = job.config;
  const auto& data = cfg.section("data");
  const auto& tc = cfg.section("train");
  const auto& run = cfg.section("run");
  const auto& descriptor = job.plugin.descriptor();

  configure_threads(tc.get_int("threads"));
  TrainSummary summary;
  summary.device = resolve_device(tc.get_string("device"));
  const bool autocast = tc.get_string("dtype") == "bfloat16" ||
                        (tc.get_string("dtype") == "auto" && summary.device.is_cuda());
  if (autocast && !summary.device.is_cuda())
    throw UserError("train.dtype=bfloat16 needs a CUDA device; use float32 on the CPU");
  torch::manual_seed(static_cast<uint64_t>(tc.get_int("seed")));

  auto tokenizer = make_tokenizer(data.get_string("tokenizer"));
  auto model = job.plugin.create(cfg.section("model"));
  sdk::DataContext context;
  context.encode = [&](const std::string& s) { return tokenizer->encode(s); };
  context.vocab_size = tokenizer->vocab_size();
  context.pad_id = tokenizer->pad_id(), context.bos_id = tokenizer->bos_id(), context.eos_id = tokenizer->eos_id();
  context.knowledge_path = data.get_string("knowledge_path");
  if (!context.knowledge_path.empty()) context.knowledge_entries = read_knowledge_entries(context.knowledge_path);
  context.log = [&](const std::string& line) { log << line << "\n"; };
  model->init_from_data(context);
  if (auto warning = model->causality_warning(); !warning.empty())
    log << "warning: " << descriptor.name << " is not causal as configured: " << warning << "\n";
  model->to(summary.device);
  summary.model = model;
  summary.parameters = model->parameter_count();

  {
    torch::NoGradGuard no_grad;
    auto probe = model->forward(torch::full({1, 1}, tokenizer->bos_id(), torch::kInt64).to(summary.device));
    if (probe.logits.size(-1) < tokenizer->vocab_size())
      throw UserError("model.vocab_size: the model has " + std::to_string(probe.logits.size(-1)) +
                      " output ids but the tokenizer uses " + std::to_string(tokenizer->vocab_size()));
  }

  auto train_tokens = TokenFile::open_or_build(data.get_string("train_path"), *tokenizer, data.get_string("cache_dir"),
                                               data.get_bool("skip_malformed"), log);
  const int64_t seq_len = data.get_int("seq_len"), batch_size = tc.get_int("batch_size");
  const int64_t accumulation = tc.get_int("accumulation_steps");
  WindowSampler sampler(train_tokens, seq_len, batch_size, static_cast<uint64_t>(tc.get_int("seed")), true);
  std::unique_ptr<TokenFile> val_tokens;
  if (!data.get_string("val_path").empty())
    val_tokens = std::make_unique<TokenFile>(TokenFile::open_or_build(
        data.get_string("val_path"), *tokenizer, data.get_string("cache_dir"), data.get_bool("skip_malformed"), log));

  auto groups = model->parameter_groups();
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  auto options = [&](double decay) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(tc.get_float("lr"))
            .betas({tc.get_float("beta1"), tc.get_float("beta2")})
            .weight_decay(decay));
  };
  if (!groups.decay.empty()) param_groups.emplace_back(groups.decay, options(tc.get_float("weight_decay")));
  if (!groups.no_decay.empty()) param_groups.emplace_back(groups.no_decay, options(0.0));
  if (param_groups.empty()) throw UserError(descriptor.name + ": the model has no trainable parameters");
  torch::optim::AdamW optimizer(param_groups, torch::optim::AdamWOptions(tc.get_float("lr")));

  const int64_t total_steps = tc.get_int("max_steps") > 0
                                  ? tc.get_int("max_steps")
                                  : std::max<int64_t>(1, tc.get_int("epochs") * sampler.batches_per_epoch() / accumulation);
  summary.run_dir = (fs::path(run.get_string("out_dir")) / cfg.section("experiment").get_string("id")).string();
  fs::create_directories(summary.run_dir);

  CheckpointState state;
  state.plugin_name = descriptor.name, state.plugin_version = descriptor.version;
  state.plugin_path = fs::absolute(job.plugin.path()).string();
  if (!job.resume_from.empty()) {
    const std::string dir = resolve_checkpoint(job.resume_from);
    const CheckpointState saved = read_checkpoint_state(dir);
    if (saved.plugin_name != descriptor.name)
      throw UserError(dir + ": checkpoint of plugin " + saved.plugin_name + ", not " + descriptor.name);
    load_model_weights(*model, (fs::path(dir) / "model.safetensors").string());
    load_optimizer_state(optimizer, dir);
    restore_rng_state(dir);
    state.step = saved.step, state.micro_batches = saved.micro_batches, state.tokens = saved.tokens;
    log << "resumed from " << dir << " at step " << state.step << "\n";
  }
  summary.first_step = state.step;
  const std::string config_json = cfg.to_json();
  write_file_atomically((fs::path(summary.run_dir) / "config.json").string(), config_json);
  std::ofstream train_log((fs::path(summary.run_dir) / "train.log").string(),
                          job.resume_from.empty() ? std::ios::trunc : std::ios::app);

  log << descriptor.name << " " << descriptor.version << ": " << format_count(summary.parameters)
      << " trainable parameters (" << summary.parameters << "), " << total_steps << " steps of " << batch_size << "×"
      << accumulation << "×" << seq_len << " tokens on " << summary.device << "\n";

  std::unique_ptr<TrainingMetrics> metrics;
  if (job.metrics) {
    const auto& mc = cfg.section("metrics");
    const double peak = mc.get_float("peak_flops") > 0 ? mc.get_float("peak_flops")
                                                      : measure_peak_flops(summary.device.is_cuda());
    metrics = std::make_unique<TrainingMetrics>(
        *job.metrics,
        metrics::Labels{{"experiment", cfg.section("experiment").get_string("id")},
                        {"plugin", descriptor.name},
                        {"rank", std::to_string(job.rank)}},
        model->flops_per_token(seq_len), peak, total_steps, summary.device.is_cuda() ? summary.device.index() : -1);
  }

  auto checkpoint = [&] {
    auto t0 = Clock::now();
    summary.checkpoint = write_checkpoint(summary.run_dir, *model, optimizer, state, config_json, run.get_int("keep_checkpoints"));
    if (metrics) metrics->on_checkpoint(seconds_since(t0));
    log << "checkpoint " << summary.checkpoint << " (" << std::fixed << std::setprecision(2) << seconds_since(t0) << " s)\n"
        << std::defaultfloat;
  };
  // Held-out loss, recorded in train.log and the metrics; tokens == 0 without val data.
  auto evaluate = [&]() -> EvalResult {
    if (!val_tokens) return {};
    const auto& ec = cfg.section("eval");
    const int64_t eval_batch = ec.get_int("batch_size") > 0 ? ec.get_int("batch_size") : batch_size;
    auto r = evaluate_loss(*model, *val_tokens, seq_len, eval_batch, ec.get_int("max_batches"), tokenizer->pad_id(),
                           summary.device);
    if (r.tokens == 0) return r;
    if (metrics) metrics->on_eval(r.loss, r.perplexity);
    train_log << "{\"step\":" << state.step << ",\"val_loss\":" << json_number(r.loss)
              << ",\"val_perplexity\":" << json_number(r.perplexity) << "}\n" << std::flush;
    return r;
  };
  std::vector<torch::Tensor> trainable;  // what the gradient norm and clipping cover
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) trainable.push_back(p);
  const double grad_clip = tc.get_float("grad_clip");

  model->train();
  ProgressLine progress(log, total_steps, state.step);
  const auto run_start = Clock::now();
  const int64_t eval_interval = cfg.section("eval").get_int("interval");
  const int64_t checkpoint_interval = tc.get_int("checkpoint_interval");
  const int64_t log_interval = tc.get_int("log_interval");
  int64_t tokens_this_run = 0;
  double window_tokens = 0, window_seconds = 0;

  while (state.step < total_steps) {
    const auto step_start = Clock::now();
    const double lr = learning_rate(state.step, total_steps, tc.get_float("lr"), tc.get_int("warmup_steps"),
                                    tc.get_float("min_lr_ratio"));
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);

    double step_loss = 0, step_aux_loss = 0, forward_s = 0, backward_s = 0;
    bool has_aux_loss = false;
    std::vector<std::pair<std::string, double>> diagnostics;
    const int64_t micro_batches_at_start = state.micro_batches;
    bool abandoned = false;
    for (int64_t micro = 0; micro < accumulation; ++micro) {
      // A long accumulated step must not delay a stop by minutes: drop the partial step
      // and checkpoint the last complete one, so a resume repeats it exactly.
      if (micro > 0 && job.should_stop && job.should_stop(state.step)) {
        state.micro_batches = micro_batches_at_start;
        abandoned = true;
        break;
      }
      auto window = window_batch(train_tokens, sampler.window_starts(state.micro_batches++), seq_len).to(summary.device);
      auto t0 = Clock::now();
      torch::Tensor loss;
      {
        AutocastScope scope(autocast);
        auto out = model->forward(window.slice(1, 0, seq_len));
        loss = lm_loss(out.logits, window.slice(1, 1, seq_len + 1), tokenizer->pad_id());
        if (out.aux_loss.defined()) {
          loss = loss + out.aux_loss;
          step_aux_loss += out.aux_loss.item<double>() / static_cast<double>(accumulation);
          has_aux_loss = true;
        }
        diagnostics = std::move(out.diagnostics);
      }
      synchronize(summary.device);
      auto t1 = Clock::now();
      (loss / static_cast<double>(accumulation)).backward();
      synchronize(summary.device);
      forward_s += std::chrono::duration<double>(t1 - t0).count();
      backward_s += seconds_since(t1);
      step_loss += loss.item<double>() / static_cast<double>(accumulation);
      progress.within_step(state.step + 1, micro + 1, accumulation, seconds_since(step_start));
    }
    if (abandoned) {
      optimizer.zero_grad();
      progress.finish();
      log << "stop requested: abandoning the partial step " << state.step + 1 << ", saving a checkpoint at step "
          << state.step << "\n";
      summary.interrupted = true;
      break;
    }
    auto t_opt = Clock::now();
    double grad_norm = 0;
    if (std::isfinite(step_loss)) {
      grad_norm = torch::nn::utils::clip_grad_norm_(trainable, grad_clip > 0 ? grad_clip
                                                                            : std::numeric_limits<double>::infinity());
      optimizer.step();
      model->on_optimizer_step(state.step + 1);
    } else {
      ++summary.skipped_steps;
      log << "\nstep " << state.step + 1 << ": non-finite loss, update skipped\n";
    }
    optimizer.zero_grad();
    synchronize(summary.device);
    const double optimizer_s = seconds_since(t_opt);
    const double step_s = seconds_since(step_start);
    summary.step_seconds += step_s, summary.forward_seconds += forward_s;
    summary.backward_seconds += backward_s, summary.optimizer_seconds += optimizer_s;

    ++state.step;
    const int64_t step_tokens = batch_size * accumulation * seq_len;
    state.tokens += step_tokens;
    tokens_this_run += step_tokens;
    window_tokens += static_cast<double>(step_tokens);
    window_seconds += step_s;
    summary.losses.push_back(step_loss);
    summary.final_aux_loss = has_aux_loss ? step_aux_loss : std::nan("");

    const bool log_now = state.step % log_interval == 0 || state.step == total_steps;
    const double tokens_per_s = log_now ? window_tokens / std::max(window_seconds, 1e-9) : 0.0;
    if (metrics) {
      StepRecord record;
      record.step = state.step, record.tokens = step_tokens, record.samples = batch_size * accumulation;
      record.loss = step_loss, record.lr = lr, record.grad_norm = grad_norm, record.tokens_per_second = tokens_per_s;
      record.step_seconds = step_s, record.forward_seconds = forward_s, record.backward_seconds = backward_s;
      record.optimizer_seconds = optimizer_s, record.skipped = !std::isfinite(step_loss);
      record.diagnostics = &diagnostics;
      metrics->on_step(record);
    }
    if (log_now) {
      window_tokens = window_seconds = 0;
      train_log << "{\"step\":" << state.step << ",\"total_steps\":" << total_steps << ",\"loss\":" << json_number(step_loss) << ",\"lr\":" << json_number(lr)
                << ",\"grad_norm\":" << json_number(grad_norm) << ",\"tokens\":" << state.tokens
                << ",\"tokens_per_s\":" << json_number(tokens_per_s) << ",\"step_s\":" << json_number(step_s)
                << ",\"forward_s\":" << json_number(forward_s) << ",\"backward_s\":" << json_number(backward_s)
                << ",\"optimizer_s\":" << json_number(optimizer_s);
      // loss is what was minimised; loss - aux_loss is the cross-entropy, comparable across plugins
      if (has_aux_loss) train_log << ",\"aux_loss\":" << json_number(step_aux_loss);
      for (const auto& [name, value] : diagnostics) train_log << ",\"" << name << "\":" << json_number(value);
      train_log << "}\n" << std::flush;
      progress.update(state.step, step_loss, lr, tokens_per_s);
    }
    if (eval_interval > 0 && state.step % eval_interval == 0 && state.step < total_steps) {
      auto r = evaluate();
      if (r.tokens > 0)
        progress.note("eval at step " + std::to_string(state.step) + ": loss " + format_fixed(r.loss, 4) +
                      ", perplexity " + format_fixed(r.perplexity, 2));
    }
    if (job.should_stop && job.should_stop(state.step) && state.step < total_steps) {
      progress.finish();
      log << "stop requested: saving a checkpoint at step " << state.step << "\n";
      summary.interrupted = true;
      break;
    }
    if (checkpoint_interval > 0 && state.step % checkpoint_interval == 0 && state.step < total_steps) {
      progress.finish();
      checkpoint();
    }
  }
  progress.finish();
  summary.wall_seconds = seconds_since(run_start);
  summary.tokens_per_second = static_cast<double>(tokens_this_run) / std::max(summary.wall_seconds, 1e-9);
  summary.steps = state.step;
  checkpoint();
  if (!summary.interrupted) {
    summary.val = evaluate();
    const auto& ec = cfg.section("eval");
    if (!ec.get_string("facts_path").empty()) {
      summary.facts = fact_recall(*model, *tokenizer, ec.get_string("facts_path"), ec.get_int("max_facts"), summary.device);
      train_log << "{\"step\":" << state.step << ",\"fact_recall\":" << json_number(summary.facts.rate())
                << ",\"fact_recall_seen\":" << json_number(summary.facts.seen_rate())
                << ",\"fact_recall_unseen\":" << json_number(summary.facts.unseen_rate()) << "}\n" << std::flush;
      if (metrics) metrics->on_fact_recall(summary.facts.rate());
    }
  }
  summary.peak_rss_bytes = peak_rss_bytes();
  if (summary.device.is_cuda()) summary.peak_cuda_bytes = cuda_memory(summary.device.index()).peak_allocated;
  return summary;
}

}  // namespace xlhost::core
