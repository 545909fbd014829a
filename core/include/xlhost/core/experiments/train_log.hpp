// train.log, a run's history as JSON lines: one line per logged step, per evaluation and
// per fact-recall result. The trainer writes it; exp status, exp report and the dashboard
// read it back through the same types, so a key is spelled only here.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace xlhost::core {

struct TrainLogStep {
  int64_t step = 0, total_steps = 0;
  double loss = 0;                 // cross-entropy of the step's targets
  double aux_loss = std::nan("");  // the plugin's auxiliary loss, minimised with it; NaN when it has none
  double lr = 0, grad_norm = 0;
  int64_t tokens = 0;              // training tokens seen since the run began
  double tokens_per_s = 0, step_s = 0, forward_s = 0, backward_s = 0, optimizer_s = 0;
  std::string skipped;  // why the update was not applied; empty when it was
  // The plugin's named scalars, under their own key so that no name can shadow the trainer's.
  std::vector<std::pair<std::string, double>> diagnostics;
  double objective() const { return std::isnan(aux_loss) ? loss : loss + aux_loss; }  // what was minimised
};

struct TrainLogEval {
  int64_t step = 0;
  double val_loss = 0, val_perplexity = 0;
};

struct TrainLogFactRecall {
  int64_t step = 0;
  double rate = 0, seen = 0, unseen = 0;
};

class TrainLogWriter {
 public:
  // Without resumed_at the file starts afresh. A run resumed at step S continues the file
  // after dropping what the earlier run logged beyond S (those steps are trained again)
  // and any half-written last line.
  TrainLogWriter(const std::filesystem::path& path, std::optional<int64_t> resumed_at);
  void write(const TrainLogStep& s);
  void write(const TrainLogEval& e);
  void write(const TrainLogFactRecall& f);

 private:
  void write_line(const std::string& json);
  std::ofstream out_;
};

struct TrainLogContents {
  std::vector<TrainLogStep> steps;
  std::vector<TrainLogEval> evals;
  std::vector<TrainLogFactRecall> fact_recalls;
};

// Every line that parses; a line that does not (the half-written last line of a running
// or killed run) is skipped. A missing file reads as empty.
TrainLogContents read_train_log(const std::filesystem::path& path);

// The last logged step, reading only the file's tail (cheap on a long run's log).
std::optional<TrainLogStep> last_logged_step(const std::filesystem::path& path);

}  // namespace xlhost::core
