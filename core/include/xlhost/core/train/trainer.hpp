// Training. A Trainer is set up once — model from a ModelSource, tokenizer, data, AdamW
// with warm-up + cosine, resume — and its loop reads like llm.c's: next batch →
// forward_backward (accumulated) → optimizer_step (gradient average, clip, update) →
// observers. train.log, metrics and progress observe StepRecords; evaluation, checkpoints
// and fact recall run between steps at the intervals of the config.
#pragma once

#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "xlhost/core/checkpoint/checkpoint.hpp"
#include "xlhost/core/config/config.hpp"
#include "xlhost/core/config/options.hpp"
#include "xlhost/core/data/token_data.hpp"
#include "xlhost/core/data/tokenizer.hpp"
#include "xlhost/core/distributed/communicator.hpp"
#include "xlhost/core/data/window_batch.hpp"
#include "xlhost/core/eval/evaluation.hpp"
#include "xlhost/core/plugin/model_source.hpp"
#include "xlhost/core/run/run_results.hpp"
#include "xlhost/core/run/training_observer.hpp"
#include "xlhost/core/train/fused_adamw.hpp"
#include "xlhost/core/train/gradient_watch.hpp"
#include "xlhost/core/train/run_observers.hpp"
#include "xlhost/core/train/memory_usage.hpp"
#include "xlhost/core/train/step_guard.hpp"
#include "xlhost/core/train/step_profiler.hpp"

namespace xlhost::core {

struct TrainJob {
  RunConfig config;  // validated and decoded; its model section goes to the plugin
  ModelSource model;
  std::string resume_from;  // checkpoint or run directory; empty = fresh start
  // This run's identity, kept in every checkpoint's state.json: a resume refuses a
  // checkpoint another run wrote. Empty: adopt the resumed checkpoint's (tests, old runs).
  std::string run_uid;
  // Data micro-batches [first, end) are passed over (a region that made the loss spike,
  // after rewinding to a checkpoint before it); empty when first == end.
  int64_t skip_batches_first = 0, skip_batches_end = 0;
  // Polled after every optimizer step; true saves a checkpoint and ends the run.
  std::function<bool(int64_t step)> should_stop;
  std::ostream* log = nullptr;                 // human-readable progress; nullptr = std::cerr (ranks > 0: discard it)
  std::vector<TrainingObserver*> observers;    // metrics, tests' recorders: built by the caller (run_metrics)
  Communicator* communicator = nullptr;        // the other ranks; nullptr = this process alone
};

// A run's results, and the trained model for what follows (samples, tests).
struct TrainSummary : RunResults {
  std::string run_dir;
  bool interrupted = false;
  std::shared_ptr<sdk::Model> model;
  torch::Device device = torch::kCPU;
};

class Trainer {
 public:
  // Set-up, in this order: the model (seeded), its initial weights, the data, the optimizer,
  // the run folder (and a resume from a checkpoint of it).
  explicit Trainer(const TrainJob& job);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  sdk::Model& model() { return *setup_.model; }
  // One optimizer step: the next micro-batches → forward_backward each → optimizer_step.
  // Returns nothing when a stop was requested inside an accumulated step (the partial step
  // is dropped, so a resume repeats it exactly).
  std::optional<StepRecord> train_step();
  // Steps until max_steps or a stop, then the final checkpoint, evaluation and fact recall.
  TrainSummary run();

 private:
  struct MicroBatchLoss {
    double cross_entropy = 0, aux_loss = 0;
    bool has_aux_loss = false;
  };
  void build_model();
  void open_data();
  void load_initial_weights();
  torch::Tensor probe_batch() const;
  void set_up_optimizer();
  void prepare_run_folder();
  void announce();
  void resume(const std::string& path);
  void note_config_changes(const std::string& checkpoint_dir);
  WindowBatch next_micro_batch();
  MicroBatchLoss forward_backward(const WindowBatch& window, bool last_of_step, StepRecord& r);
  void optimizer_step(StepRecord& r, bool has_aux_loss, double aux_loss);
  void count_step(StepRecord& r);
  void report(const StepRecord& record);
  void warn(const std::string& warning);
  [[noreturn]] void diverged(const StepRecord& record);
  void conclude();
  EvalResult evaluate();
  void checkpoint();
  void export_weights();
  void synchronize_buffers();
  int64_t data_micro_batches(const CheckpointState& saved, const std::string& dir) const;
  void conclude_gradient_watch();  // summary figures and the warning, once
  static std::vector<torch::Tensor> model_tensors(sdk::Model& model);

  TrainJob job_;
  std::ostream& log_;
  const Options& options_ = job_.config.options;
  const TrainOptions& train_ = options_.train;
  const DataOptions& data_ = options_.data;
  const EvalOptions& eval_ = options_.eval;
  LocalCommunicator local_;
  Communicator& communicator_;
  ModelSetup setup_;
  bool autocast_ = false;
  std::optional<TokenFile> train_tokens_, val_tokens_;
  std::optional<WindowSampler> sampler_;
  std::unique_ptr<FusedAdamW> optimizer_;
  std::vector<torch::Tensor> trainable_;  // what the gradient norm, clipping and averaging cover
  CheckpointState state_;
  std::optional<CheckpointWriter> checkpoints_;
  StepGuard guard_;
  std::optional<GradientWatch> gradient_watch_;
  std::optional<MemoryUsage> memory_usage_;  // train.memory_usage: the bank rows read over training
  std::string config_json_;
  int64_t total_steps_ = 0;
  double window_tokens_ = 0, window_seconds_ = 0;  // since the last log line
  double window_cpu_seconds_ = 0;                   // process CPU time at the last log line
  std::chrono::steady_clock::time_point window_start_;
  std::unique_ptr<TrainLogObserver> train_log_;     // the run folder's train.log (rank 0)
  std::unique_ptr<ProgressReport> progress_;        // the console; job_.observers follow it
  std::unique_ptr<StepProfiler> profiler_;          // train.profile_steps (rank 0)
  std::vector<TrainingObserver*> observers_;
  bool buffers_diverged_ = false;                   // warned once
  TrainSummary summary_;
};

TrainSummary train(const TrainJob& job);  // Trainer(job).run()

// Learning rate at optimizer step `step` (0-based) of `total`.
double learning_rate(int64_t step, int64_t total, double peak, int64_t warmup, double min_ratio);

}  // namespace xlhost::core
