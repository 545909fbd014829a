// `xlhost exp report`: a folder a researcher can read or paste into the group's notes.
// report.md holds the record (code, data, command, results), the human plan and findings
// from the experiment's record.md, a comparison with other runs, the run's generation
// samples, and loss / learning-rate / throughput curves drawn by gnuplot as SVG from the
// runs' train.log files (the only command that reads the curves).
#pragma once

#include <string>
#include <vector>

namespace xlhost::core {

struct ReportFiles {
  std::string markdown;               // dest/report.md
  std::vector<std::string> pictures;  // dest/*.svg
  std::string unequal_budgets;        // non-empty when the runs trained different steps or tokens
};

// ids[0] is the reported run, the others are compared with it. UserError when a record is
// missing or corrupted, or gnuplot is not installed or fails.
ReportFiles write_report(const std::string& out_dir, const std::vector<std::string>& ids, const std::string& dest);

}  // namespace xlhost::core
