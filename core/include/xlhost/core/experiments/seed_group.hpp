// Repeated seeds: `xlhost run --seeds N` trains the experiment N times (train.seed, +1,
// ...) as sub-runs under out/<id>/seeds/, then writes out/<id>/record.json summarising
// them: every numeric result as the mean over seeds in "results" and the sample standard
// deviation in "results_std". exp list/compare read it like any record.
#pragma once

#include <filesystem>
#include <map>
#include <optional>

#include <string>
#include <vector>

#include "xlhost/core/experiments/train_log.hpp"

namespace xlhost::core {

// The folder of the sub-run with this seed: <group_dir>/seeds/<id>-seed<seed>.
std::string seed_run_id(const std::string& id, long long seed);

// Writes <group_dir>/record.json from the records of `run_dirs` (at least one).
// command_line: the command as typed (with --seeds), for the reproduction fields.
void write_seed_group_record(const std::string& group_dir, const std::string& id, const std::vector<std::string>& run_dirs,
                             const std::vector<long long>& seeds, const std::string& command_line);

// The curves of a seed group, which has no train.log of its own: at each step every seed
// logged, the mean of each figure over the seeds, and the loss's minimum and maximum (a band).
struct SeedGroupLog {
  std::vector<std::string> seeds;  // the sub-runs' folder names
  TrainLogContents mean;
  std::map<int64_t, std::pair<double, double>> loss_band;  // step -> (min, max)
};
// Nothing when group_dir has no seeds/ sub-runs with a train.log.
std::optional<SeedGroupLog> read_seed_group_log(const std::filesystem::path& group_dir);

}  // namespace xlhost::core
