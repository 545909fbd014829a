#include "xlhost/core/train/trainer.hpp"

#include <ATen/record_function.h>

#include <chrono>

#include "xlhost/core/data/window_batch.hpp"
#include "xlhost/core/device/autocast.hpp"
#include "xlhost/core/device/device_info.hpp"
#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

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

}  // namespace

std::optional<StepRecord> Trainer::train_step() {
  const auto step_start = Clock::now();
  const int64_t accumulation = train_.accumulation_steps;
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
    const auto data_start = Clock::now();
    const auto window = next_micro_batch();
    r.data_seconds += seconds_since(data_start);
    const auto loss = forward_backward(window, micro == accumulation - 1, r);
    r.loss += loss.cross_entropy / static_cast<double>(accumulation);
    if (loss.has_aux_loss) aux_loss += loss.aux_loss / static_cast<double>(accumulation), has_aux_loss = true;
    progress_->line().within_step(r.step, micro + 1, accumulation, seconds_since(step_start));
  }
  optimizer_step(r, has_aux_loss, aux_loss);
  r.step_seconds = seconds_since(step_start);
  count_step(r);
  return r;
}

// This rank's slice of the next data micro-batch, on the device.
WindowBatch Trainer::next_micro_batch() {
  if (state_.micro_batches >= job_.skip_batches_first && state_.micro_batches < job_.skip_batches_end)
    state_.micro_batches = job_.skip_batches_end;
  const auto starts = sampler_->window_starts(state_.micro_batches++);
  const auto mine = starts.begin() + communicator_.rank() * train_.batch_size;
  return window_batch(*train_tokens_, {mine, mine + train_.batch_size}, data_.seq_len).to(setup_.device);
}

// One micro-batch: forward, loss, and its share of the step's gradient (the last one of a
// step also starts the ranks' gradient reduction during its backward).
Trainer::MicroBatchLoss Trainer::forward_backward(const WindowBatch& window, bool last_of_step, StepRecord& r) {
  const auto accumulation = static_cast<double>(train_.accumulation_steps);
  MicroBatchLoss loss;
  auto t0 = Clock::now();
  torch::Tensor cross_entropy, objective;
  {
    RECORD_FUNCTION("xlhost::forward", std::vector<c10::IValue>());  // the phases, named in a profile
    AutocastScope scope(autocast_, setup_.device);
    auto out = setup_.model->forward(window.inputs);
    objective = cross_entropy = lm_loss(out.logits, window.targets);
    if (out.aux_loss.defined()) {
      objective = cross_entropy + out.aux_loss;
      loss.aux_loss = out.aux_loss.item<double>(), loss.has_aux_loss = true;
    }
    r.diagnostics = std::move(out.diagnostics);
    if (memory_usage_) memory_usage_->add(out.memory_reads);
  }
  synchronize(setup_.device);
  auto t1 = Clock::now();
  if (last_of_step) communicator_.expect_gradients(trainable_);  // reduce during this backward
  {
    RECORD_FUNCTION("xlhost::backward", std::vector<c10::IValue>());
    (objective / accumulation).backward();
  }
  synchronize(setup_.device);
  r.forward_seconds += std::chrono::duration<double>(t1 - t0).count();
  r.backward_seconds += seconds_since(t1);
  loss.cross_entropy = cross_entropy.item<double>();
  return loss;
}

// The ranks' gradients averaged, clipped, judged by the guard, and applied unless judged bad.
void Trainer::optimizer_step(StepRecord& r, bool has_aux_loss, double aux_loss) {
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
  if (!r.skipped()) {
    RECORD_FUNCTION("xlhost::optimizer_step", std::vector<c10::IValue>());
    optimizer_->step();
    setup_.model->on_optimizer_step(r.step);
    synchronize_buffers();
  }
  optimizer_->zero_grad();
  synchronize(setup_.device);
  r.optimizer_seconds = seconds_since(t_update);
  r.aux_loss = has_aux_loss ? aux_loss : std::nan("");
}

// The step counted: tokens, and the throughput of a step that is logged.
void Trainer::count_step(StepRecord& r) {
  ++state_.step;
  r.samples = train_.batch_size * train_.accumulation_steps * communicator_.world_size();  // every rank's
  r.tokens = r.samples * data_.seq_len;
  state_.tokens += r.tokens;
  r.tokens_seen = state_.tokens;
  window_tokens_ += static_cast<double>(r.tokens), window_seconds_ += r.step_seconds;
  // Step 1 is always logged, so that curves start where training does.
  r.log_line = state_.step % train_.log_interval == 0 || state_.step == total_steps_ || r.skipped() || state_.step == 1;
  if (r.log_line) {
    r.tokens_per_second = window_tokens_ / std::max(window_seconds_, 1e-9);
    window_tokens_ = window_seconds_ = 0;
    const double cpu = process_cpu_seconds();
    r.cpu_percent = 100 * (cpu - window_cpu_seconds_) / std::max(seconds_since(window_start_), 1e-9);
    window_cpu_seconds_ = cpu, window_start_ = Clock::now();
    r.rss_mib = static_cast<double>(resident_memory_bytes()) / (1 << 20);
    if (setup_.device.is_cuda()) {
      r.gpu_memory_mib = static_cast<double>(cuda_memory(setup_.device.index()).reserved) / (1 << 20);
      r.gpu_util_percent = gpu_utilization_percent(setup_.device.index());
    }
    if (memory_usage_) {
      const size_t before = r.diagnostics.size();
      memory_usage_->flush(state_.step, r.diagnostics);
      if (r.diagnostics.size() > before) summary_.memory_usage.assign(r.diagnostics.begin() + before, r.diagnostics.end());
    }
  }
}

// Buffers a plugin updates by a rule from its own batch (an EMA memory) drift apart between
// ranks. As DDP does, rank 0's are copied to the others, after every step that changed them.
void Trainer::synchronize_buffers() {
  if (communicator_.world_size() == 1) return;
  std::vector<torch::Tensor> buffers;
  for (const auto& b : setup_.model->named_buffers()) buffers.push_back(b.value());
  if (!communicator_.synchronize(buffers) || buffers_diverged_) return;
  buffers_diverged_ = true;
  warn(job_.model.descriptor.name + "'s buffers differ between the ranks after on_optimizer_step "
       "(state updated from each rank's own batch): rank 0's are copied to every rank after each "
       "step, as DDP does, so the run is not that of one process with the global batch");
}

void Trainer::report(const StepRecord& r) {
  summary_.losses.push_back(r.loss);
  summary_.final_aux_loss = r.aux_loss;
  summary_.skipped_steps += r.skipped() ? 1 : 0;
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
  if (const auto warning = gradient_watch_->warning(); !warning.empty()) warn(job_.model.descriptor.name + ": " + warning);
}

TrainSummary Trainer::run() {
  RunStart start;
  start.first_step = state_.step, start.total_steps = total_steps_, start.resumed = !job_.resume_from.empty();
  start.parameters = summary_.parameters, start.flops_per_token = setup_.model->flops_per_token(data_.seq_len);
  summary_.flops_per_token = start.flops_per_token;
  start.cuda_device = setup_.device.is_cuda() ? setup_.device.index() : -1;
  for (auto* observer : observers_) observer->on_start(start);
  setup_.model->train();
  const auto run_start = Clock::now();
  window_start_ = run_start, window_cpu_seconds_ = process_cpu_seconds();
  const int64_t first_tokens = state_.tokens;
  const double communication_at_start = communicator_.communication_seconds();
  auto due = [&](int64_t interval) { return interval > 0 && state_.step % interval == 0 && state_.step < total_steps_; };
  auto stop_requested = [&] { return job_.should_stop && communicator_.any(job_.should_stop(state_.step)); };
  if (state_.step < total_steps_ && stop_requested()) {  // a signal during set-up: nothing to save
    log_ << "stop requested before the first step\n";
    summary_.interrupted = true;
  }
  while (state_.step < total_steps_ && !summary_.interrupted) {
    if (profiler_) profiler_->before_step(state_.step + 1);
    auto record = train_step();
    if (profiler_ && record) profiler_->after_step(state_.step);
    if (!record) {
      progress_->line().finish();
      log_ << "stop requested: abandoning the partial step " << state_.step + 1
           << ", saving a checkpoint at step " << state_.step << "\n";
      summary_.interrupted = true;
      break;
    }
    report(*record);
    // Diverged: too many bad steps in a row, or every step of a run that ends now (NaN
    // initial weights in a run shorter than max_bad_steps).
    const bool last = state_.step == total_steps_;
    if (guard_.diverged() || (last && record->skipped() && guard_.consecutive_bad() == state_.step - summary_.first_step))
      diverged(*record);
    if (due(eval_.interval)) evaluate();
    if (state_.step < total_steps_ && stop_requested()) {
      progress_->line().finish();
      log_ << "stop requested: saving a checkpoint at step " << state_.step << "\n";
      summary_.interrupted = true;
      break;
    }
    if (due(train_.checkpoint_interval)) checkpoint();
  }
  if (profiler_) profiler_->finish();
  if (gradient_watch_->observed_any() && !gradient_watch_->done()) conclude_gradient_watch();  // a run of 1-2 steps
  summary_.wall_seconds = seconds_since(run_start);
  summary_.tokens_per_second = static_cast<double>(state_.tokens - first_tokens) / std::max(summary_.wall_seconds, 1e-9);
  summary_.steps = state_.step;
  summary_.communication_seconds = communicator_.communication_seconds() - communication_at_start;
  conclude();
  return summary_;
}

// After the last step: the ranks agree, the final checkpoint, evaluation and fact recall.
void Trainer::conclude() {
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
}

// Too many bad steps in a row: the error says where the run stands and how to go on.
void Trainer::diverged(const StepRecord& record) {
  progress_->line().finish();
  const int64_t bad = guard_.consecutive_bad();
  throw UserError("diverged: " + std::to_string(bad) + " steps in a row skipped (the last at step " +
                  std::to_string(state_.step) + ": " + record.skip_reason + "); parameters are those of step " +
                  std::to_string(state_.step - bad) +
                  (summary_.checkpoint.empty() ? "" : ", the last checkpoint is " + summary_.checkpoint) +
                  ". To go on without the data of those steps: --rewind-to STEP --skip-batches " +
                  std::to_string(state_.micro_batches - bad * train_.accumulation_steps) + ":" +
                  std::to_string(state_.micro_batches));
}

TrainSummary train(const TrainJob& job) { return Trainer(job).run(); }

}  // namespace xlhost::core

