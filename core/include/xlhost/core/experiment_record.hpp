// out/<id>/record.json: what a run was (command, code commit and dirty state, plugin and
// data hashes, resolved hyper-parameters, environment), how it ended, and how to
// reproduce it. Written when the run starts (status "running") and rewritten at its end,
// so a run killed outright still leaves a record (see `xlhost exp list`).
#pragma once

#include <rapidjson/document.h>

#include <string>
#include <vector>

#include "xlhost/core/config.hpp"
#include "xlhost/core/plugin_loader.hpp"
#include "xlhost/core/trainer.hpp"

namespace xlhost::core {

class ExperimentRecord {
 public:
  ExperimentRecord(std::string run_dir, const Config& config, const LoadedPlugin& plugin, std::string config_path,
                   std::string command_line, std::string metrics_url = "");
  // status: completed, interrupted or failed (with `failure`).
  void finish(const TrainSummary* summary, const std::string& status, const std::string& failure = "");
  const std::string& path() const { return path_; }

 private:
  void write(const TrainSummary* summary, const std::string& status, const std::string& failure);
  std::string run_dir_, path_, config_json_, config_path_, command_line_, metrics_url_, start_time_;
  const LoadedPlugin& plugin_;
  std::string id_, description_, versions_json_, environment_json_, reproduce_json_;
};

struct RecordSummary {
  std::string id, run_dir, start_time, plugin, status, metrics_url;
  int64_t pid = 0;
  std::string last_checkpoint;  // newest complete checkpoint on disk, "" if none
  double final_loss = 0, tokens_per_second = 0;
  bool has_results = false;
};

// The record in run_dir, summarised; UserError when it is missing or corrupted. A record
// still "running" whose process is gone (same host) is reported "interrupted".
RecordSummary read_record_summary(const std::string& run_dir);

// Every out_dir/*/record.json. A record still "running" whose process is gone (same host)
// is reported "interrupted". Unreadable records are reported, not skipped silently.
std::vector<RecordSummary> list_records(const std::string& out_dir, std::vector<std::string>* problems);

// out_dir/<id>/record.json, parsed and checked against the schema; UserError names the file
// when it is missing or corrupted.
rapidjson::Document read_record(const std::string& out_dir, const std::string& id);

// Lenient readers of a record's members: "" or NaN when absent or of another type.
std::string member_string(const rapidjson::Value& object, const char* key);
double member_number(const rapidjson::Value& object, const char* key);

// The code a run used, from its versions.git: "<commit> on <branch>" (or the short commit),
// then the uncommitted files when the tree was dirty.
std::string describe_code_version(const rapidjson::Value& git, bool full_commit);

// The experiment folder's record.md (beside the run's config file) gets the run's outcome
// between these marker lines, replacing an earlier run's. Returns "" when there is no
// record.md, else its path.
inline constexpr const char* kRecordResultsBegin = "<!-- xlhost:results -->";
inline constexpr const char* kRecordResultsEnd = "<!-- /xlhost:results -->";
std::string fill_record_markdown(const rapidjson::Document& record);

}  // namespace xlhost::core
