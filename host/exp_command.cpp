// `xlhost exp`: the experiments recorded under out/.
#include <iomanip>
#include <iostream>

#include "cli.hpp"
#include "xlhost/core/error.hpp"
#include "xlhost/core/experiment_record.hpp"
#include "xlhost/core/progress.hpp"

namespace xlhost::host {

int exp_command(const std::vector<std::string>& args) {
  if (args.empty() || args[0] != "list") {
    if (!args.empty() && args[0] != "--help" && args[0] != "-h")
      throw core::UserError("unknown exp subcommand '" + args[0] + "' (available: list)");
    std::cout << "usage: xlhost exp list [--out DIR]\n\nLists the runs recorded in DIR/*/record.json (default out/).\n";
    return args.empty() ? 2 : 0;
  }
  po::options_description options("options");
  std::string out_dir;
  options.add_options()("out,o", po::value(&out_dir)->default_value("out"), "directory holding <id>/record.json");
  po::variables_map vm;
  if (!parse_args(std::vector<std::string>(args.begin() + 1, args.end()), options, {}, "xlhost exp list [--out DIR]",
                  "One line per run: id, start time, plugin, status, final training loss, tokens/s. A run whose\n"
                  "process died without finishing its record shows as interrupted.",
                  vm))
    return 0;
  std::vector<std::string> problems;
  const auto records = core::list_records(out_dir, &problems);
  std::cout << std::left << std::setw(12) << "id" << std::setw(22) << "started" << std::setw(16) << "plugin"
            << std::setw(13) << "status" << std::setw(12) << "final loss" << "tokens/s\n";
  for (const auto& r : records)
    std::cout << std::setw(12) << r.id << std::setw(22) << r.start_time << std::setw(16) << r.plugin << std::setw(13)
              << r.status << std::setw(12) << (r.has_results ? core::format_fixed(r.final_loss, 4) : "-")
              << (r.has_results ? core::format_count(r.tokens_per_second) : "-") << "\n";
  for (const auto& r : records)
    if (r.status == "interrupted" && !r.last_checkpoint.empty())
      std::cout << r.id << ": interrupted; last good checkpoint " << r.last_checkpoint << " (xlhost run ... --resume)\n";
  for (const auto& p : problems) std::cerr << "warning: " << p << "\n";
  return 0;
}

}  // namespace xlhost::host
