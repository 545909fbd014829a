// `xlhost exp compare`: what differs between runs (hyper-parameters, plugin, code) and
// their results side by side, with the best value of each metric marked. Reads only the
// records (a few kB each), never the training curves, so it stays fast over many runs.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace xlhost::core {

struct ComparisonRow {
  std::string name;
  std::vector<std::string> values;  // one per run, "-" where a run has none
  int best = -1;                    // index of the best run for this metric, -1 when not ranked
};

struct RecordComparison {
  std::vector<std::string> ids;
  std::vector<ComparisonRow> differences;  // config keys (dotted), plugin and code version that differ
  std::vector<ComparisonRow> results;
};

// Every id must have a readable record under out_dir (UserError otherwise).
RecordComparison compare_records(const std::string& out_dir, const std::vector<std::string>& ids);
// The same for run folders anywhere (several --out folders); a "(folder)" row says where
// each run is when they differ. Columns are headed by `labels`, else the folders' names.
RecordComparison compare_runs(const std::vector<std::filesystem::path>& run_dirs, std::vector<std::string> labels = {});

// A fixed-width text table (best marked with '*'), or a markdown table (best in bold).
std::string format_comparison(const RecordComparison& comparison, bool markdown);

}  // namespace xlhost::core
