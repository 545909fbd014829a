// `xlhost exp show`: one run's record, in brief or whole.
#include <rapidjson/document.h>

#include <iomanip>
#include <iostream>

#include "cli.hpp"
#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::host {

namespace {

void line(const std::string& name, const std::string& value) {
  std::cout << "  " << std::left << std::setw(33) << name << value << "\n";
}

// exp show's lines below the rows: the segments a resume made, the samples, the benchmarks.
void print_segments_and_extras(const rapidjson::Document& record, const core::RunDirectory& run) {
  const rapidjson::Value none;
  const auto& r = record.HasMember("results") && record["results"].IsObject() ? record["results"] : none;
  if (r.IsObject() && r.HasMember("segment_history") && r["segment_history"].IsArray() && r["segment_history"].Size() > 1)
    for (const auto& s : r["segment_history"].GetArray()) {
      std::string changes;
      if (s.HasMember("config_changes") && s["config_changes"].IsArray())
        for (const auto& c : s["config_changes"].GetArray())
          changes += (changes.empty() ? " (" : ", ") + core::member_string(c, "key") + " " + core::member_string(c, "before") +
                     " -> " + core::member_string(c, "after");
      line("segment", "steps " + core::format_fixed(core::member_number(s, "first_step"), 0) + "-" +
                          core::format_fixed(core::member_number(s, "steps"), 0) + (changes.empty() ? "" : changes + ")"));
    }
  if (r.IsObject() && r.HasMember("generation") && r["generation"].IsObject()) {
    const auto& g = r["generation"];
    line("samples", "distinct-1 " + core::format_fixed(core::member_number(g, "distinct_1"), 3) + ", distinct-2 " +
                        core::format_fixed(core::member_number(g, "distinct_2"), 3) + ", repeated 4-grams " +
                        core::format_fixed(core::member_number(g, "repetition_4"), 3) +
                        (core::member_string(g, "reference_run").empty()
                             ? ""
                             : ", perplexity under " + core::member_string(g, "reference_run") + " " +
                                   core::format_fixed(core::member_number(g, "reference_perplexity"), 2)));
  }
  const auto benchmarks = core::benchmark_summaries(run);
  if (!benchmarks.empty())
    line("benchmarks", join(benchmarks, ", "));
}

}  // namespace

int exp_show_command(const std::vector<std::string>& args) {
  std::string out_dir;
  auto options = records_options(out_dir);
  options.add_options()("id", po::value<std::string>()->required(), "experiment id")
      ("json", "print the whole record.json instead");
  po::positional_options_description positional;
  positional.add("id", 1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost exp show ID [--out DIR] [--json]",
                  "A run's record in brief: status, code version, results, segments (resumes and what they\n"
                  "changed), the samples' figures and benchmarks, how to reproduce it; for a run started with\n"
                  "--init-from, first the chain of runs its weights come from (pretrain -> SFT). --json: the\n"
                  "whole record.json (data checksums, environment, every result).", vm))
    return 0;
  const std::string id = vm["id"].as<std::string>();
  const auto record = core::read_record(out_dir, id);  // refuses a missing or corrupted record
  const auto lineage = core::record_lineage(record);
  if (lineage.size() > 2) {  // a run that started from other weights: where they came from
    std::cout << "lineage (newest first):\n";
    for (size_t i = 0; i < lineage.size(); ++i) std::cout << (i ? "  <- " : "     ") << lineage[i] << "\n";
    std::cout << "\n";
  }
  const core::RunDirectory run(out_dir, id);
  if (vm.count("json")) {
    std::cout << core::read_text_file(run.record().string(), "record");
    return 0;
  }
  std::cout << "experiment " << id << ": " << core::member_string(record["experiment"], "description") << "\n";
  for (const auto& [name, value] : core::record_rows(record)) line(name, value);
  print_segments_and_extras(record, run);
  std::cout << "whole record: xlhost exp show " << id << " --json (" << run.record().string() << ")\n";
  return 0;
}

}  // namespace xlhost::host
