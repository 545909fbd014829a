#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace xlhost::core {

std::string format_count(double n);          // 25829888 → "25.83M"
std::string format_fixed(double x, int digits);
std::string format_duration(double seconds);  // 65 → "1m05s"
double seconds_since(std::chrono::steady_clock::time_point start);

// One status line for long work: step/total, loss, lr, tokens/s and ETA. Redrawn in place
// on a terminal, one line per update otherwise (logs, CI).
class ProgressLine {
 public:
  ProgressLine(std::ostream& out, int64_t total, int64_t start);
  void update(int64_t step, double loss, double lr, double tokens_per_second);
  // Inside a long accumulated step (a CPU run of the seed's 48x12 batch takes an hour):
  // micro-batch progress once the step has run 10 s, every second on a terminal, every
  // 30 s in a log.
  void within_step(int64_t step, int64_t micro_batches_done, int64_t micro_batches, double step_seconds);
  // Progress of other long work (merges, bytes tokenised): "<what> done/total | elapsed | ETA",
  // at most every second on a terminal, every 10 s in a log.
  void count(int64_t done, const std::string& what);
  void note(const std::string& line);  // a line that stays above the progress line
  void finish();                       // ends an in-place line

 private:
  void show(const std::string& line);
  std::ostream& out_;
  int64_t total_, start_;
  bool interactive_, open_line_ = false;
  std::chrono::steady_clock::time_point started_, last_line_;
};

}  // namespace xlhost::core
