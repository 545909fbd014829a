#include "xlhost/core/train/step_profiler.hpp"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <vector>

#include "xlhost/core/util/file_io.hpp"

namespace xlhost::core {
namespace {

namespace profiler = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

struct OperatorTime {
  uint64_t self_ns = 0;
  int64_t calls = 0;
};

// Self time: an event's duration less that of the events it encloses on its thread (an
// operator's time in its own kernels, not in the operators it calls).
std::map<std::string, OperatorTime> self_times(const std::vector<profiler::KinetoEvent>& events) {
  std::vector<const profiler::KinetoEvent*> cpu;
  for (const auto& e : events)
    if (e.deviceType() == c10::DeviceType::CPU && !e.isAsync()) cpu.push_back(&e);
  std::sort(cpu.begin(), cpu.end(), [](const auto* a, const auto* b) {
    if (a->startThreadId() != b->startThreadId()) return a->startThreadId() < b->startThreadId();
    return a->startNs() != b->startNs() ? a->startNs() < b->startNs() : a->durationNs() > b->durationNs();
  });
  std::map<std::string, OperatorTime> times;
  std::vector<const profiler::KinetoEvent*> open;  // enclosing events, innermost last
  for (const auto* e : cpu) {
    while (!open.empty() && (open.back()->startThreadId() != e->startThreadId() || open.back()->endNs() <= e->startNs()))
      open.pop_back();
    auto& t = times[e->name()];
    t.self_ns += e->durationNs(), ++t.calls;
    if (!open.empty()) {
      auto& parent = times[open.back()->name()].self_ns;
      parent -= std::min(e->durationNs(), parent);
    }
    open.push_back(e);
  }
  return times;
}

}  // namespace

StepProfiler::StepProfiler(std::filesystem::path folder, std::string title, int64_t first_step, int64_t steps,
                           std::ostream& log)
    : folder_(std::move(folder)), title_(std::move(title)), first_(first_step + 3), last_(first_step + 2 + steps),
      log_(log) {}

StepProfiler::~StepProfiler() {
  if (running_) profiler::disableProfiler();  // an exception ended the run: nothing to write
}

void StepProfiler::before_step(int64_t step) {
  if (step != first_ || running_) return;
  const ProfilerConfig config(ProfilerState::KINETO);
  const std::set<ActivityType> activities{ActivityType::CPU, ActivityType::CUDA};
  profiler::prepareProfiler(config, activities);
  profiler::enableProfiler(config, activities);
  running_ = true;
}

void StepProfiler::after_step(int64_t step) {
  if (!running_) return;
  ++profiled_;
  if (step >= last_) write();
}

void StepProfiler::finish() {
  if (running_) write();
}

void StepProfiler::write() {
  auto result = profiler::disableProfiler();
  running_ = false;
  const auto trace = folder_ / "profile.trace.json";
  result->save(trace.string());
  const auto times = self_times(result->events());
  std::vector<std::pair<std::string, OperatorTime>> rows(times.begin(), times.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.self_ns > b.second.self_ns; });
  uint64_t total = 0;
  for (const auto& [name, t] : rows) total += t.self_ns;
  const double steps = static_cast<double>(std::max<int64_t>(profiled_, 1));
  std::string text = title_ + "\nsteps " + std::to_string(first_) + "-" + std::to_string(first_ + profiled_ - 1) +
                     " profiled; operators by self time (in their own kernels, not in operators they call), "
                     "per step:\n\n  self ms    share  calls  operator\n";
  char line[64];
  for (const auto& [name, t] : rows) {
    std::snprintf(line, sizeof line, "%9.2f  %6.1f%%  %5.0f  ", static_cast<double>(t.self_ns) / 1e6 / steps,
                  100.0 * static_cast<double>(t.self_ns) / static_cast<double>(std::max<uint64_t>(total, 1)),
                  static_cast<double>(t.calls) / steps);
    text += line + name + "\n";
  }
  const auto table = folder_ / "profile.txt";
  write_file_atomically(table.string(), text);
  log_ << "profile of steps " << first_ << "-" << first_ + profiled_ - 1 << ": " << table.string() << " (operators), "
       << trace.string() << " (trace)\n";
}

}  // namespace xlhost::core
