// train.profile_steps: LibTorch's (Kineto) profiler over a window of training steps, the
// third of the run and those after it (the first two warm up allocators and caches). It
// writes, in the run folder, profile.txt (operators by self time per step: what to make
// faster first) and profile.trace.json (the Chrome trace format; chrome://tracing or
// ui.perfetto.dev). The steps it covers run slower; their train.log figures say so.
#pragma once

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>

namespace xlhost::core {

class StepProfiler {
 public:
  // `title` heads profile.txt (the model, batch, dtype, device, threads); the window is `steps` steps from
  // first_step + 3 (first_step: the step the run starts from, 0 or a resumed step); `log`
  // is told where the files are.
  StepProfiler(std::filesystem::path folder, std::string title, int64_t first_step, int64_t steps, std::ostream& log);
  ~StepProfiler();
  StepProfiler(const StepProfiler&) = delete;
  StepProfiler& operator=(const StepProfiler&) = delete;

  void before_step(int64_t step);  // step: the one about to run (1-based)
  void after_step(int64_t step);   // after the window's last, the files are written
  // A run that ends inside the window: the steps profiled so far are written.
  void finish();

 private:
  void write();
  std::filesystem::path folder_;
  std::string title_;
  int64_t first_, last_, profiled_ = 0;
  bool running_ = false;
  std::ostream& log_;
};

}  // namespace xlhost::core
