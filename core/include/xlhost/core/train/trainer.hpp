// Training. A Trainer is set up once — model from a ModelSource, tokenizer, data, AdamW
// with warm-up + cosine, resume — and its loop reads like llm.c's: next batch →
// forward/backward (accumulated) → gradient average → update → observers. train.log,
// metrics and progress observe StepRecords; evaluation, checkpoints and fact recall run
// between steps at the intervals of the config.
#pragma once

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
#include "xlhost/core/eval/evaluation.hpp"
#include "xlhost/core/metrics/metrics_registry.hpp"
#include "xlhost/core/plugin/model_source.hpp"
#include "xlhost/core/train/gradient_watch.hpp"
#include "xlhost/core/train/step_guard.hpp"
#include "xlhost/core/train/training_observer.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::core {

struct TrainJob {
  Config config;
  ModelSource model;
  std::string resume_from;  // checkpoint or run directory; empty = fresh start
  // Data micro-batches [first, end) are passed over (a region that made the loss spike,
  // after rewinding to a checkpoint before it); empty when first == end.
  int64_t skip_batches_first = 0, skip_batches_end = 0;
  // Polled after every optimizer step; true saves a checkpoint and ends the run.
  std::function<bool(int64_t step)> should_stop;
  std::ostream* log = nullptr;            // human-readable progress; nullptr = std::cerr (ranks > 0: discard it)
  metrics::Registry* metrics = nullptr;   // training metrics are registered here when set
  Communicator* communicator = nullptr;   // the other ranks; nullptr = this process alone
};

struct TrainSummary {
  std::string run_dir, checkpoint;
  int64_t parameters = 0;
  int64_t parameters_receiving_gradient = -1;  // over the first GradientWatch::kSteps steps; -1 before a step
  std::vector<std::string> dead_parameters;    // trainable, but no gradient reached them
  std::vector<std::string> warnings;           // what the run warned about (causality, dead parameters)
  int64_t first_step = 0, steps = 0;  // steps run by this call: (first_step, steps]
  int64_t skipped_steps = 0;          // update skipped: non-finite or spiking loss or gradient norm
  std::vector<double> losses;         // per optimizer step run by this call: cross-entropy (final_aux_loss apart)
  double final_aux_loss = std::nan("");  // the plugin's aux loss in the last step; NaN when it has none
  EvalResult val;                     // at the end; tokens == 0 when there is no val data
  FactRecall facts;                   // at the end; facts == 0 without eval.facts_path
  double tokens_per_second = 0, wall_seconds = 0;
  // Where the steps' time went, summed over the steps of this call (evaluation and
  // checkpoints excluded): forward + backward + optimizer <= step.
  double step_seconds = 0, forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0;
  double communication_seconds = 0;  // in collectives (data-parallel runs); part of optimizer_seconds
  int64_t peak_rss_bytes = 0;
  int64_t peak_cuda_bytes = 0;  // most CUDA memory held by tensors; 0 on the CPU
  bool interrupted = false;
  std::shared_ptr<sdk::Model> model;
  torch::Device device = torch::kCPU;
};

class Trainer {
 public:
  explicit Trainer(const TrainJob& job);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  void add_observer(TrainingObserver& observer);  // observers added before run() see every step
  sdk::Model& model() { return *setup_.model; }
  // One optimizer step: the next micro-batches → forward/backward → gradient average →
  // update. Returns nothing when a stop was requested inside an accumulated step (the
  // partial step is dropped, so a resume repeats it exactly).
  std::optional<StepRecord> train_step();
  // Steps until max_steps or a stop, then the final checkpoint, evaluation and fact recall.
  TrainSummary run();

 private:
  void set_up_optimizer();
  void resume(const std::string& path);
  void report(const StepRecord& record);
  EvalResult evaluate();
  void checkpoint();
  void export_weights();
  void synchronize_buffers();
  int64_t data_micro_batches(const CheckpointState& saved, const std::string& dir) const;
  void conclude_gradient_watch();  // summary figures and the warning, once

  TrainJob job_;
  std::ostream& log_;
  const Options options_;
  const TrainOptions& train_ = options_.train;
  const DataOptions& data_ = options_.data;
  const EvalOptions& eval_ = options_.eval;
  LocalCommunicator local_;
  Communicator& communicator_;
  ModelSetup setup_;
  bool autocast_ = false;
  std::optional<TokenFile> train_tokens_, val_tokens_;
  std::optional<WindowSampler> sampler_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<torch::Tensor> trainable_;  // what the gradient norm, clipping and averaging cover
  CheckpointState state_;
  std::optional<CheckpointWriter> checkpoints_;
  StepGuard guard_;
  std::optional<GradientWatch> gradient_watch_;
  std::string config_json_;
  int64_t total_steps_ = 0;
  double window_tokens_ = 0, window_seconds_ = 0;  // since the last log line
  std::vector<std::unique_ptr<TrainingObserver>> own_observers_;
  std::vector<TrainingObserver*> observers_;
  ProgressLine* progress_line_ = nullptr;  // micro-batch progress inside long accumulated steps
  bool buffers_diverged_ = false;          // warned once
  TrainSummary summary_;
};

TrainSummary train(const TrainJob& job);  // Trainer(job).run()

// Learning rate at optimizer step `step` (0-based) of `total`.
double learning_rate(int64_t step, int64_t total, double peak, int64_t warmup, double min_ratio);

}  // namespace xlhost::core
