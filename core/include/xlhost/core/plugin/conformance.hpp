// `xlhost plugin check`: a conformance suite any plugin can be run through. Above all it
// catches future-token leaks (position t reading tokens after t), which make training
// loss optimistic and generation incoherent (seeds/002).
#pragma once

#include <string>
#include <vector>

#include "xlhost/core/plugin/plugin_loader.hpp"

namespace xlhost::core {

struct CheckResult {
  enum class Status { Pass, Fail, KnownLeak, Skip, Info };
  std::string name;
  Status status = Status::Pass;
  std::string detail;
};

const char* status_name(CheckResult::Status status);

struct ConformanceOptions {
  int64_t seq_len = 16;
  int64_t batch = 2;
  uint64_t seed = 0;
  int causality_probes = 6;  // random positions t whose later tokens are changed (plus 0, T/2, T-2)
};

// Builds models from `model_config` and runs every check. Never throws for a failing
// check; throws UserError only when the model cannot be built at all.
std::vector<CheckResult> run_conformance(const LoadedPlugin& plugin, const sdk::ModelConfig& model_config,
                                         const ConformanceOptions& options);

}  // namespace xlhost::core
