#include "xlhost/core/train/trainer.hpp"

#include <ATen/autocast_mode.h>

#include <chrono>
#include <filesystem>
#include <iomanip>

#include "xlhost/core/checkpoint/hugging_face.hpp"
#include "xlhost/core/checkpoint/initial_weights.hpp"
#include "xlhost/core/data/knowledge_file.hpp"
#include "xlhost/core/data/window_batch.hpp"
#include "xlhost/core/experiments/run_directory.hpp"
#include "xlhost/core/metrics/training_metrics.hpp"
#include "xlhost/core/train/device_info.hpp"
#include "xlhost/core/train/train_log_observer.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double learning_rate(int64_t step, int64_t total, double peak, int64_t warmup, double min_ratio) {
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  const double floor = peak * min_ratio;
  return floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

namespace {


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

// The console: an in-place progress line, evaluation notes and checkpoint lines.
class ProgressReport final : public TrainingObserver {
 public:
  ProgressReport(std::ostream& log, int64_t total_steps, int64_t first_step)
      : log_(log), line_(log, total_steps, first_step), total_steps_(total_steps) {}
  void on_step(const StepRecord& r) override {
    if (r.skipped) {
      line_.finish();
      log_ << "step " << r.step << ": " << r.skip_reason << ", update skipped\n";
    }
    if (r.log_line) line_.update(r.step, r.loss, r.lr, r.tokens_per_second);
  }
  void on_eval(int64_t step, const EvalResult& r) override {
    if (step < total_steps_)
      line_.note("eval at step " + std::to_string(step) + ": loss " + format_fixed(r.loss, 4) + ", perplexity " +
                 format_fixed(r.perplexity, 2));
  }
  void on_checkpoint(const std::string& dir, double seconds) override {
    line_.finish();
    log_ << "checkpoint " << dir << " (" << std::fixed << std::setprecision(2) << seconds << " s)\n"
         << std::defaultfloat;
  }
  ProgressLine& line() { return line_; }

 private:
  std::ostream& log_;
  ProgressLine line_;
  int64_t total_steps_;
};

// Hands the plugin what it may initialise itself from (the tokenizer, the knowledge file).
sdk::DataContext data_context(const Tokenizer& tokenizer, const DataOptions& data, std::ostream& log) {
  sdk::DataContext context;
  context.encode = [&tokenizer](const std::string& s) { return tokenizer.encode(s); };
  context.vocab_size = tokenizer.vocab_size();
  context.pad_id = tokenizer.pad_id(), context.bos_id = tokenizer.bos_id(), context.eos_id = tokenizer.eos_id();
  context.knowledge_path = data.knowledge_path;
  if (!context.knowledge_path.empty()) context.knowledge_entries = read_knowledge_entries(context.knowledge_path);
  context.log = [&log](const std::string& line) { log << line << "\n"; };
  return context;
}

// Every parameter and buffer: what the ranks must agree on.
std::vector<torch::Tensor> model_tensors(sdk::Model& model) {
  std::vector<torch::Tensor> tensors;
  for (const auto& [name, t] : state_tensors(model)) tensors.push_back(t);
  return tensors;
}

void check_vocabulary(sdk::Model& model, const Tokenizer& tokenizer, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  auto probe = model.forward(torch::full({1, 1}, tokenizer.bos_id(), torch::kInt64).to(device));
  if (probe.logits.size(-1) < tokenizer.vocab_size())
    throw UserError("model.vocab_size: the model has " + std::to_string(probe.logits.size(-1)) +
                    " output ids but the tokenizer uses " + std::to_string(tokenizer.vocab_size()));
}

}  // namespace

Trainer::Trainer(const TrainJob& job)
    : job_(job),
      log_(job.log ? *job.log : std::cerr),
      options_(Options::from(job.config)),
      communicator_(job.communicator ? *job.communicator : local_),
      guard_(options_.train.spike_sigma, options_.train.spike_window, options_.train.max_bad_steps) {
  const auto& descriptor = job_.model.descriptor;
  torch::manual_seed(static_cast<uint64_t>(train_.seed));  // before the model draws its initial weights
  setup_ = set_up_model(job_.model, job_.config);
  autocast_ = train_.dtype == "bfloat16" || (train_.dtype == "auto" && setup_.device.is_cuda());
  if (autocast_ && !setup_.device.is_cuda())
    throw UserError("train.dtype=bfloat16 needs a CUDA device; use float32 on the CPU");
  auto& model = *setup_.model;
  model.init_from_data(data_context(*setup_.tokenizer, data_, log_));
  if (!train_.init_from.empty() && job_.resume_from.empty()) {  // a resumed run has its own weights
    const auto origin = locate_weights(train_.init_from);
    load_initial_weights(model, origin, descriptor.name);
    log_ << "initial weights: " << describe_origin(origin) << "\n";
    if (auto warning = tokenizer_mismatch(origin, data_.tokenizer); !warning.empty()) {
      summary_.warnings.push_back(warning);
      log_ << "warning: " << warning << "\n";
    }
  }
  if (train_.export_interval > 0) require_exportable(model, descriptor.name);
  if (auto warning = model.causality_warning(); !warning.empty()) {
    summary_.warnings.push_back(descriptor.name + " is not causal as configured: " + warning);
    log_ << "warning: " << summary_.warnings.back() << "\n";
  }
  model.to(setup_.device);
  communicator_.broadcast(model_tensors(model));  // rank 0's initial weights everywhere
  summary_.model = setup_.model, summary_.device = setup_.device;
  summary_.parameters = model.parameter_count();
  check_vocabulary(model, *setup_.tokenizer, setup_.device);

  // Rank 0 tokenises into the cache; the other ranks wait for it, then open the same file.
  auto tokens_of = [&](const std::string& path) {
    if (communicator_.rank() != 0) communicator_.any(false);
    auto file = TokenFile::open_or_build(path, *setup_.tokenizer, data_.cache_dir, data_.skip_malformed, log_, data_.format);
    if (communicator_.rank() == 0) communicator_.any(false);
    return file;
  };
  train_tokens_.emplace(tokens_of(data_.train_path));
  // One order of windows for the whole world: a data micro-batch is batch_size windows per
  // rank, and rank r reads the r-th slice of it.
  sampler_.emplace(*train_tokens_, data_.seq_len, train_.batch_size * communicator_.world_size(),
                   static_cast<uint64_t>(train_.seed), true);
  state_.windows_per_micro_batch = train_.batch_size * communicator_.world_size();
  if (!data_.val_path.empty()) {
    val_tokens_.emplace(tokens_of(data_.val_path));
    WindowSampler(*val_tokens_, data_.seq_len, options_.eval_batch_size(), 0, false);  // too small: say so now
  }
  set_up_optimizer();
  gradient_watch_.emplace(model.named_parameters());
  total_steps_ = train_.max_steps > 0 ? train_.max_steps
                                      : std::max<int64_t>(1, train_.epochs * sampler_->batches_per_epoch() /
                                                                 train_.accumulation_steps);
  const RunDirectory run_dir = options_.run_directory();
  summary_.run_dir = run_dir.root().string();
  ensure_directory(run_dir.root().string(), "run");
  checkpoints_.emplace(run_dir.checkpoints().string(), options_.run.keep_checkpoints);
  state_.plugin_name = descriptor.name, state_.plugin_version = descriptor.version;
  state_.plugin_path = job_.model.path.empty() ? "" : fs::absolute(job_.model.path).string();
  if (!job_.resume_from.empty()) resume(job_.resume_from);
  summary_.first_step = state_.step;
  config_json_ = job_.config.to_json();
  const bool first_rank = communicator_.rank() == 0;  // the one that writes the run's files
  if (first_rank) write_file_atomically(run_dir.config().string(), config_json_);

  const int world = communicator_.world_size();
  log_ << descriptor.name << " " << descriptor.version << ": " << format_count(summary_.parameters)
       << " trainable parameters (" << summary_.parameters << "), " << total_steps_ << " steps of " << train_.batch_size
       << "×" << train_.accumulation_steps << (world > 1 ? "×" + std::to_string(world) + " ranks" : "") << "×"
       << data_.seq_len << " tokens on " << setup_.device << "\n";

  if (first_rank)
    own_observers_.push_back(std::make_unique<TrainLogObserver>(
        run_dir.train_log(), job_.resume_from.empty() ? std::nullopt : std::optional<int64_t>(state_.step)));
  auto progress = std::make_unique<ProgressReport>(log_, total_steps_, state_.step);
  progress_line_ = &progress->line();
  own_observers_.push_back(std::move(progress));
  if (job_.metrics) {
    const double peak = options_.metrics.peak_flops > 0 ? options_.metrics.peak_flops : measure_peak_flops(setup_.device.is_cuda());
    own_observers_.push_back(std::make_unique<TrainingMetrics>(
        *job_.metrics,
        metrics::Labels{{"experiment", options_.experiment.id},
                        {"plugin", descriptor.name},
                        {"rank", std::to_string(communicator_.rank())}},
        model.flops_per_token(data_.seq_len), peak, total_steps_, setup_.device.is_cuda() ? setup_.device.index() : -1));
  }
  for (auto& observer : own_observers_) observers_.push_back(observer.get());
}

Trainer::~Trainer() = default;

void Trainer::add_observer(TrainingObserver& observer) { observers_.push_back(&observer); }

void Trainer::set_up_optimizer() {
  auto groups = setup_.model->parameter_groups();
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  auto options = [&](double decay) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(train_.lr).betas({train_.beta1, train_.beta2}).weight_decay(decay));
  };
  if (!groups.decay.empty()) param_groups.emplace_back(groups.decay, options(train_.weight_decay));
  if (!groups.no_decay.empty()) param_groups.emplace_back(groups.no_decay, options(0.0));
  if (param_groups.empty()) throw UserError(job_.model.descriptor.name + ": the model has no trainable parameters");
  optimizer_ = std::make_unique<torch::optim::AdamW>(param_groups, torch::optim::AdamWOptions(train_.lr));
  for (auto& group : optimizer_->param_groups())
    for (auto& p : group.params()) trainable_.push_back(p);
}

void Trainer::resume(const std::string& path) {
  const std::string dir = resolve_checkpoint(path, &log_);
  const CheckpointState saved = read_checkpoint_state(dir);
  if (saved.plugin_name != state_.plugin_name)
    throw UserError(dir + ": checkpoint of plugin " + saved.plugin_name + ", not " + state_.plugin_name);
  load_model_weights(*setup_.model, (fs::path(dir) / "model.safetensors").string());
  load_optimizer_state(*optimizer_, dir);
  restore_rng_state(dir);
  state_.step = saved.step, state_.tokens = saved.tokens;
  state_.micro_batches = data_micro_batches(saved, dir);
  summary_.checkpoint = dir;
  log_ << "resumed from " << dir << " at step " << state_.step << "\n";
}

// The data position of a checkpoint in this run's micro-batches. A run on another number of
// ranks (or another batch_size with the same global batch) reads the same windows on.
int64_t Trainer::data_micro_batches(const CheckpointState& saved, const std::string& dir) const {
  const int64_t saved_windows = saved.windows_per_micro_batch > 0 ? saved.windows_per_micro_batch : train_.batch_size;
  const int64_t windows = saved.micro_batches * saved_windows, per_micro_batch = state_.windows_per_micro_batch;
  if (windows % per_micro_batch != 0)
    throw UserError(dir + ": the checkpoint read " + std::to_string(windows) + " windows, not a whole number of this run's " +
                    std::to_string(per_micro_batch) + " per micro-batch (batch_size x ranks); keep batch_size x "
                    "accumulation_steps x ranks as it was");
  return windows / per_micro_batch;
}

std::optional<StepRecord> Trainer::train_step() {
  auto& model = *setup_.model;
  const auto step_start = Clock::now();
  const int64_t accumulation = train_.accumulation_steps, seq_len = data_.seq_len;
  StepRecord r;
  r.step = state_.step + 1, r.total_steps = total_steps_;
  r.lr = learning_rate(state_.step, total_steps_, train_.lr, train_.warmup_steps, train_.min_lr_ratio);
  for (auto& group : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(r.lr);

  const int64_t micro_batches_at_start = state_.micro_batches;
  double aux_loss = 0;
  bool has_aux_loss = false;
  for (int64_t micro = 0; micro < accumulation; ++micro) {
    // A long accumulated step must not delay a stop by minutes: drop the partial step.
    if (micro > 0 && job_.should_stop && communicator_.any(job_.should_stop(state_.step))) {
      state_.micro_batches = micro_batches_at_start;
      optimizer_->zero_grad();
      return std::nullopt;
    }
    if (state_.micro_batches >= job_.skip_batches_first && state_.micro_batches < job_.skip_batches_end)
      state_.micro_batches = job_.skip_batches_end;
    const auto starts = sampler_->window_starts(state_.micro_batches++);
    const auto mine = starts.begin() + communicator_.rank() * train_.batch_size;
    auto window = window_batch(*train_tokens_, {mine, mine + train_.batch_size}, seq_len).to(setup_.device);
    auto t0 = Clock::now();
    torch::Tensor cross_entropy, objective;
    {
      AutocastScope scope(autocast_);
      auto out = model.forward(window.inputs);
      objective = cross_entropy = lm_loss(out.logits, window.targets);
      if (out.aux_loss.defined()) {
        objective = cross_entropy + out.aux_loss;
        aux_loss += out.aux_loss.item<double>() / static_cast<double>(accumulation);
        has_aux_loss = true;
      }
      r.diagnostics = std::move(out.diagnostics);
    }
    synchronize(setup_.device);
    auto t1 = Clock::now();
    if (micro == accumulation - 1) communicator_.expect_gradients(trainable_);  // reduce during this backward
    (objective / static_cast<double>(accumulation)).backward();
    synchronize(setup_.device);
    r.forward_seconds += std::chrono::duration<double>(t1 - t0).count();
    r.backward_seconds += seconds_since(t1);
    r.loss += cross_entropy.item<double>() / static_cast<double>(accumulation);
    progress_line_->within_step(r.step, micro + 1, accumulation, seconds_since(step_start));
  }

  auto t_update = Clock::now();
  communicator_.average_gradients(trainable_);
  if (!gradient_watch_->done()) {
    gradient_watch_->observe();
    if (gradient_watch_->done()) conclude_gradient_watch();
  }
  r.loss = communicator_.average(r.loss);
  if (has_aux_loss) aux_loss = communicator_.average(aux_loss);
  const double clip = train_.grad_clip > 0 ? train_.grad_clip : std::numeric_limits<double>::infinity();
  r.grad_norm = torch::nn::utils::clip_grad_norm_(trainable_, clip);  // the norm before clipping
  r.skip_reason = guard_.judge(has_aux_loss ? r.loss + aux_loss : r.loss, r.grad_norm);  // the minimised objective
  r.skipped = !r.skip_reason.empty();
  if (!r.skipped) {
    optimizer_->step();
    model.on_optimizer_step(r.step);
    synchronize_buffers();
  }
  optimizer_->zero_grad();
  synchronize(setup_.device);
  r.optimizer_seconds = seconds_since(t_update);
  r.step_seconds = seconds_since(step_start);

  ++state_.step;
  r.samples = train_.batch_size * accumulation * communicator_.world_size();  // every rank's
  r.tokens = r.samples * seq_len;
  state_.tokens += r.tokens;
  r.tokens_seen = state_.tokens;
  r.aux_loss = has_aux_loss ? aux_loss : std::nan("");
  window_tokens_ += static_cast<double>(r.tokens), window_seconds_ += r.step_seconds;
  // Step 1 is always logged, so that curves start where training does.
  r.log_line = state_.step % train_.log_interval == 0 || state_.step == total_steps_ || r.skipped || state_.step == 1;
  if (r.log_line) {
    r.tokens_per_second = window_tokens_ / std::max(window_seconds_, 1e-9);
    window_tokens_ = window_seconds_ = 0;
  }
  return r;
}

// Buffers a plugin updates by a rule from its own batch (an EMA memory) drift apart between
// ranks. As DDP does, rank 0's are copied to the others, after every step that changed them.
void Trainer::synchronize_buffers() {
  if (communicator_.world_size() == 1) return;
  std::vector<torch::Tensor> buffers;
  for (const auto& b : setup_.model->named_buffers()) buffers.push_back(b.value());
  if (!communicator_.synchronize(buffers) || buffers_diverged_) return;
  buffers_diverged_ = true;
  summary_.warnings.push_back(job_.model.descriptor.name + "'s buffers differ between the ranks after on_optimizer_step "
                              "(state updated from each rank's own batch): rank 0's are copied to every rank after each "
                              "step, as DDP does, so the run is not that of one process with the global batch");
  progress_line_->note("warning: " + summary_.warnings.back());
}

void Trainer::report(const StepRecord& r) {
  summary_.losses.push_back(r.loss);
  summary_.final_aux_loss = r.aux_loss;
  summary_.skipped_steps += r.skipped ? 1 : 0;
  summary_.step_seconds += r.step_seconds, summary_.forward_seconds += r.forward_seconds;
  summary_.backward_seconds += r.backward_seconds, summary_.optimizer_seconds += r.optimizer_seconds;
  for (auto* observer : observers_) observer->on_step(r);
}

// Held-out loss; tokens == 0 without val data.
EvalResult Trainer::evaluate() {
  if (!val_tokens_) return {};
  const int64_t batch = options_.eval_batch_size();
  auto r = evaluate_loss(*setup_.model, *val_tokens_, data_.seq_len, batch, eval_.max_batches, setup_.device);
  if (r.tokens > 0)
    for (auto* observer : observers_) observer->on_eval(state_.step, r);
  return r;
}

void Trainer::conclude_gradient_watch() {
  summary_.parameters_receiving_gradient = gradient_watch_->values_receiving_gradient();
  summary_.dead_parameters = gradient_watch_->dead();
  if (const auto warning = gradient_watch_->warning(); !warning.empty()) {
    summary_.warnings.push_back(job_.model.descriptor.name + ": " + warning);
    if (progress_line_) progress_line_->note("warning: " + summary_.warnings.back());
    else log_ << "warning: " << summary_.warnings.back() << "\n";
  }
}

void Trainer::checkpoint() {
  const auto start = Clock::now();
  if (communicator_.rank() != 0) {  // rank 0 writes the checkpoint every rank would
    summary_.checkpoint = (options_.run_directory().checkpoints() / checkpoint_name(state_.step)).string();
    return;
  }
  summary_.checkpoint = checkpoints_->write(*setup_.model, *optimizer_, state_, config_json_);
  for (auto* observer : observers_) observer->on_checkpoint(summary_.checkpoint, seconds_since(start));
  const int64_t every = train_.export_interval;
  if (every > 0 && (state_.step % every == 0 || state_.step == total_steps_)) export_weights();
}

// exports/step_N beside the checkpoint just written, for evaluation harnesses during training.
void Trainer::export_weights() {
  auto spec = export_spec(job_.config, *setup_.tokenizer, job_.model.descriptor);
  spec.checkpoint = summary_.checkpoint, spec.step = state_.step;
  const auto dir = options_.run_directory().exports() / checkpoint_name(state_.step);
  const auto result = export_model(*setup_.model, spec, dir.string(), /*replace=*/true);
  progress_line_->finish();
  log_ << "export " << dir.string() << (result.hugging_face ? " (Hugging Face)" : " (xlhost tensor names)") << "\n";
}

TrainSummary Trainer::run() {
  setup_.model->train();
  const auto run_start = Clock::now();
  const int64_t first_tokens = state_.tokens;
  const double communication_at_start = communicator_.communication_seconds();
  auto due = [&](int64_t interval) { return interval > 0 && state_.step % interval == 0 && state_.step < total_steps_; };
  auto stop_requested = [&] { return job_.should_stop && communicator_.any(job_.should_stop(state_.step)); };
  if (state_.step < total_steps_ && stop_requested()) {  // a signal during set-up: nothing to save
    log_ << "stop requested before the first step\n";
    summary_.interrupted = true;
  }
  while (state_.step < total_steps_ && !summary_.interrupted) {
    auto record = train_step();
    if (!record) {
      progress_line_->finish();
      log_ << "stop requested: abandoning the partial step " << state_.step + 1
           << ", saving a checkpoint at step " << state_.step << "\n";
      summary_.interrupted = true;
      break;
    }
    report(*record);
    if (guard_.diverged()) {
      progress_line_->finish();
      const int64_t bad = guard_.consecutive_bad();
      throw UserError("diverged: " + std::to_string(bad) + " steps in a row skipped (the last at step " +
                      std::to_string(state_.step) + ": " + record->skip_reason + "); parameters are those of step " +
                      std::to_string(state_.step - bad) +
                      (summary_.checkpoint.empty() ? "" : ", the last checkpoint is " + summary_.checkpoint) +
                      ". To go on without the data of those steps: --rewind-to STEP --skip-batches " +
                      std::to_string(state_.micro_batches - bad * train_.accumulation_steps) + ":" +
                      std::to_string(state_.micro_batches));
    }
    if (due(eval_.interval)) evaluate();
    if (state_.step < total_steps_ && stop_requested()) {
      progress_line_->finish();
      log_ << "stop requested: saving a checkpoint at step " << state_.step << "\n";
      summary_.interrupted = true;
      break;
    }
    if (due(train_.checkpoint_interval)) checkpoint();
  }
  if (gradient_watch_->observed_any() && !gradient_watch_->done()) conclude_gradient_watch();  // a run of 1-2 steps
  summary_.wall_seconds = seconds_since(run_start);
  summary_.tokens_per_second = static_cast<double>(state_.tokens - first_tokens) / std::max(summary_.wall_seconds, 1e-9);
  summary_.steps = state_.step;
  summary_.communication_seconds = communicator_.communication_seconds() - communication_at_start;
  if (communicator_.world_size() > 1) {
    communicator_.require_identical(model_tensors(*setup_.model), "the parameters at step " + std::to_string(state_.step));
    log_ << "parameters identical on all " << communicator_.world_size() << " ranks at step " << state_.step << "\n";
  }
  if (state_.step > summary_.first_step) checkpoint();  // a run resumed at its last step has nothing new to save
  if (!summary_.interrupted) {
    summary_.val = evaluate();
    if (!eval_.facts_path.empty()) {
      summary_.facts = fact_recall(*setup_.model, *setup_.tokenizer, eval_.facts_path, eval_.max_facts, setup_.device,
                                   data_.format == DocumentFormat::kChat);
      for (auto* observer : observers_) observer->on_fact_recall(state_.step, summary_.facts);
    }
  }
  summary_.peak_rss_bytes = peak_rss_bytes();
  if (setup_.device.is_cuda()) summary_.peak_cuda_bytes = cuda_memory(setup_.device.index()).peak_allocated;
  return summary_;
}

TrainSummary train(const TrainJob& job) { return Trainer(job).run(); }

}  // namespace xlhost::core
