// train.log, a run's history as JSON lines: one line per logged step (a StepRecord), per
// evaluation and per fact-recall result. The trainer writes it; exp status, exp report and
// the dashboard read it back through the same types, so a key is spelled only here.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "xlhost/core/run/step_record.hpp"

namespace xlhost::core {

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
  // UserError naming the file when it cannot be opened, or a line cannot be written.
  TrainLogWriter(const std::filesystem::path& path, std::optional<int64_t> resumed_at);
  void write(const StepRecord& s);
  void write(const TrainLogEval& e);
  void write(const TrainLogFactRecall& f);

 private:
  void write_line(const std::string& json);
  std::filesystem::path path_;
  std::ofstream out_;
};

struct TrainLogContents {
  std::vector<StepRecord> steps;
  std::vector<TrainLogEval> evals;
  std::vector<TrainLogFactRecall> fact_recalls;
};

// Every line that parses; a line that does not (the half-written last line of a running
// or killed run) is skipped. A missing file, or one that is not a regular file (a FIFO, a
// device), reads as empty.
TrainLogContents read_train_log(const std::filesystem::path& path);

// The last logged step, reading only the file's tail (cheap on a long run's log).
std::optional<StepRecord> last_logged_step(const std::filesystem::path& path);

}  // namespace xlhost::core
