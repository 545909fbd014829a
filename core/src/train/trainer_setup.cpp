// The Trainer's set-up, step by step (the constructor lists them), and its checkpoints:
// resuming from one, writing one, exporting one. The step itself is trainer.cpp's.
#include <chrono>
#include <filesystem>
#include <sstream>

#include "xlhost/core/checkpoint/hugging_face.hpp"
#include "xlhost/core/checkpoint/initial_weights.hpp"
#include "xlhost/core/checkpoint/llama_checks.hpp"
#include "xlhost/core/data/knowledge_file.hpp"
#include "xlhost/core/device/autocast.hpp"
#include "xlhost/core/eval/memory_inspection.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/train/trainer.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/printable_text.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

namespace {

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
      communicator_(job.communicator ? *job.communicator : local_),
      guard_(train_.spike_sigma, train_.spike_window, train_.max_bad_steps) {
  build_model();
  open_data();
  load_initial_weights();
  set_up_optimizer();
  gradient_watch_.emplace(setup_.model->named_parameters());
  prepare_run_folder();
  announce();
}

Trainer::~Trainer() = default;

// The plugin's model from the seed, on its device, initialised from the data it asks for.
void Trainer::build_model() {
  torch::manual_seed(static_cast<uint64_t>(train_.seed));  // before the model draws its initial weights
  setup_ = set_up_model(job_.model, job_.config);
  autocast_ = uses_bf16_autocast(train_.dtype, setup_.device);
  if (auto warning = bf16_speed_warning(autocast_, setup_.device); !warning.empty()) warn(warning);
  setup_.model->init_from_data(data_context(*setup_.tokenizer, data_, log_));
}

// train.init_from's weights (a resumed run has its own), the checks that need the model,
// and rank 0's weights on every rank.
void Trainer::load_initial_weights() {
  const auto& descriptor = job_.model.descriptor;
  auto& model = *setup_.model;
  if (!train_.init_from.empty() && job_.resume_from.empty()) {
    const auto origin = locate_weights(train_.init_from);
    core::load_initial_weights(model, origin, descriptor.name);
    log_ << "initial weights: " << describe_origin(origin) << "\n";
    // A file without a config: head counts that give the same shapes would load silently.
    const auto interop = model.weight_interop();
    const bool without_config = origin.format == WeightsFormat::kTorchStateDict || origin.format == WeightsFormat::kSafetensors;
    if (without_config && interop.hugging_face.architecture == "LlamaForCausalLM") {
      const auto probe = probe_batch();
      if (probe.size(0) > 0)
        if (auto warning = check_head_layout(model, interop.hugging_face, probe, origin.path); !warning.empty()) warn(warning);
    }
    if (auto warning = tokenizer_mismatch(origin, data_.tokenizer); !warning.empty()) warn(warning);
  }
  if (train_.export_interval > 0) require_exportable(model, descriptor.name);
  if (auto warning = model.causality_warning(); !warning.empty())
    warn(descriptor.name + " is not causal as configured: " + warning);
  for (const auto& warning : job_.config.values.warnings()) warn(warning);
  model.to(setup_.device);
  communicator_.broadcast(model_tensors(model));  // rank 0's initial weights everywhere
  summary_.model = setup_.model, summary_.device = setup_.device;
  summary_.parameters = model.parameter_count();
  check_vocabulary(model, *setup_.tokenizer, setup_.device);
}

// Up to 4 windows from the start of the training data, for checks of the initial weights.
torch::Tensor Trainer::probe_batch() const {
  const int64_t length = std::min<int64_t>(data_.seq_len, 64) + 1;
  const int64_t n = std::min<int64_t>(4, static_cast<int64_t>(train_tokens_->size()) / length);
  auto batch = torch::empty({n, length}, torch::kInt64);
  auto ids = batch.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n * length; ++i) ids[i / length][i % length] = (*train_tokens_)[static_cast<size_t>(i)];
  return batch;
}

// The token files (rank 0 tokenises into the cache; the other ranks wait for it, then open
// the same file) and one order of windows for the whole world: a data micro-batch is
// batch_size windows per rank, and rank r reads the r-th slice of it.
void Trainer::open_data() {
  auto tokens_of = [&](const std::string& path) {
    if (communicator_.rank() != 0) communicator_.any(false);
    auto file = TokenFile::open_or_build(path, *setup_.tokenizer, data_.cache_dir, data_.skip_malformed, log_, data_.format);
    if (communicator_.rank() == 0) communicator_.any(false);
    return file;
  };
  train_tokens_.emplace(tokens_of(data_.train_path));
  sampler_.emplace(*train_tokens_, data_.seq_len, train_.batch_size * communicator_.world_size(),
                   static_cast<uint64_t>(train_.seed), true);
  state_.windows_per_micro_batch = train_.batch_size * communicator_.world_size();
  if (!data_.val_path.empty()) {
    val_tokens_.emplace(tokens_of(data_.val_path));
    WindowSampler(*val_tokens_, data_.seq_len, options_.eval_batch_size(), 0, false);  // too small: say so now
  }
}

// The step count, the run folder and its checkpoints (resumed from one when asked), and
// the resolved config beside them.
void Trainer::prepare_run_folder() {
  total_steps_ = train_.max_steps > 0 ? train_.max_steps
                                      : std::max<int64_t>(1, train_.epochs * sampler_->batches_per_epoch() /
                                                                 train_.accumulation_steps);
  const RunDirectory run_dir = options_.run_directory();
  summary_.run_dir = run_dir.root().string();
  ensure_directory(run_dir.root().string(), "run");
  checkpoints_.emplace(run_dir.checkpoints().string(), options_.run.keep_checkpoints);
  state_.plugin_name = job_.model.descriptor.name, state_.plugin_version = job_.model.descriptor.version;
  state_.plugin_path = job_.model.path.empty() ? "" : fs::absolute(job_.model.path).string();
  state_.run_uid = job_.run_uid;
  if (!job_.resume_from.empty()) resume(job_.resume_from);
  summary_.first_step = state_.step;
  if (train_.memory_usage) {  // a model without a memory records no reads: nothing is counted
    setup_.model->set_memory_probes(true);
    memory_usage_.emplace(run_dir, communicator_.rank() == 0, state_.step, [tokenizer = setup_.tokenizer.get()](const torch::Tensor& row) {
      return printable_text(bank_row_text(row, *tokenizer));
    });
  }
  config_json_ = job_.config.values.to_json();
  if (communicator_.rank() == 0) write_file_atomically(run_dir.config().string(), config_json_);  // rank 0 writes the run's files
}

// The line that says what will be trained; the run's own observers (train.log, written by
// the rank that writes the run's files, and the console), then the caller's.
void Trainer::announce() {
  const auto& descriptor = job_.model.descriptor;
  const int world = communicator_.world_size();
  log_ << descriptor.name << " " << descriptor.version << ": " << format_count(summary_.parameters)
       << " trainable parameters (" << summary_.parameters << "), " << total_steps_ << " steps of " << train_.batch_size
       << "×" << train_.accumulation_steps << (world > 1 ? "×" + std::to_string(world) + " ranks" : "") << "×"
       << data_.seq_len << " tokens on " << setup_.device << "\n";
  if (communicator_.rank() == 0) {
    train_log_ = std::make_unique<TrainLogObserver>(options_.run_directory().train_log());
    observers_.push_back(train_log_.get());
    if (train_.profile_steps > 0) {
      std::ostringstream title;
      title << descriptor.name << " " << descriptor.version << ", " << train_.batch_size << "×" << data_.seq_len
            << " tokens a micro-batch, " << (autocast_ ? "bfloat16 autocast" : "float32") << " on " << setup_.device
            << ", " << at::get_num_threads() << " threads";
      profiler_ = std::make_unique<StepProfiler>(options_.run_directory().root(), title.str(), state_.step,
                                                 train_.profile_steps, log_);
    }
  }
  progress_ = std::make_unique<ProgressReport>(log_, total_steps_, state_.step);
  observers_.push_back(progress_.get());
  observers_.insert(observers_.end(), job_.observers.begin(), job_.observers.end());
}

void Trainer::warn(const std::string& warning) {
  summary_.warnings.push_back(warning);
  if (progress_) progress_->line().note("warning: " + warning);
  else log_ << "warning: " << warning << "\n";
}

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
  optimizer_ = std::make_unique<FusedAdamW>(param_groups, torch::optim::AdamWOptions(train_.lr));
  for (auto& group : optimizer_->param_groups())
    for (auto& p : group.params()) trainable_.push_back(p);
}

void Trainer::resume(const std::string& path) {
  const std::string dir = resolve_checkpoint(path, &log_);
  const CheckpointState saved = read_checkpoint_state(dir);
  if (saved.plugin_name != state_.plugin_name)
    throw UserError(dir + ": checkpoint of plugin " + saved.plugin_name + ", not " + state_.plugin_name);
  if (!saved.run_uid.empty() && !state_.run_uid.empty() && saved.run_uid != state_.run_uid)
    throw UserError(dir + ": checkpoint of another run (run " + saved.run_uid + ", this is run " + state_.run_uid +
                    "); a resume continues its own run: start from those weights with --set train.init_from=" + dir);
  if (state_.run_uid.empty()) state_.run_uid = saved.run_uid;
  note_config_changes(dir);
  load_model_weights(*setup_.model, CheckpointFolder(dir).weights().string());
  load_optimizer_state(*optimizer_, dir);
  restore_rng_state(dir);
  state_.step = saved.step, state_.tokens = saved.tokens;
  state_.micro_batches = data_micro_batches(saved, dir);
  summary_.checkpoint = dir;
  log_ << "resumed from " << dir << " at step " << state_.step << "\n";
}

// What this run changes of the checkpoint's config: said at the start and kept in the record.
// The model's shape and the tokenizer cannot change under a resume: the weights and the data
// position would no longer mean what they meant.
void Trainer::note_config_changes(const std::string& dir) {
  const auto config = CheckpointFolder(dir).config();
  if (!fs::is_regular_file(config)) return;  // checkpoints written before they held their config
  summary_.config_changes =
      config_changes(read_text_file(config.string(), "checkpoint config"), job_.config.values.to_json(), config.string());
  std::erase_if(summary_.config_changes, [](const ConfigChange& c) { return c.key == "run.out_dir"; });  // a moved folder
  std::string listed;
  for (const auto& c : summary_.config_changes) {
    // A key only one side has is a version difference (a key added since), not a change.
    const bool changed = c.before != "-" && c.after != "-";
    if (changed && (c.key.rfind("model.", 0) == 0 || c.key == "data.tokenizer"))
      throw UserError("--resume with " + c.key + " " + c.before + " -> " + c.after + ": a resumed run keeps its model's "
                      "shape and tokenizer (" + dir + "); to start from its weights with other settings, begin a new "
                      "run with --set train.init_from=" + dir);
    listed += (listed.empty() ? "" : ", ") + c.key + " " + c.before + " -> " + c.after;
  }
  if (!listed.empty()) log_ << "resumed with a changed config: " << listed << "\n";
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

// Every parameter and buffer: what the ranks must agree on.
std::vector<torch::Tensor> Trainer::model_tensors(sdk::Model& model) {
  std::vector<torch::Tensor> tensors;
  for (const auto& [name, t] : state_tensors(model)) tensors.push_back(t);
  return tensors;
}

void Trainer::checkpoint() {
  const auto start = std::chrono::steady_clock::now();
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
  progress_->line().finish();
  log_ << "export " << dir.string() << (result.hugging_face ? " (Hugging Face)" : " (xlhost tensor names)") << "\n";
}

}  // namespace xlhost::core
