// out/<id>/record.json: what a run was (command, code commit and dirty state, plugin and
// data hashes, resolved hyper-parameters, environment), how it ended, and how to
// reproduce it. Written when the run starts (status "running") and rewritten at its end,
// so a run killed outright still leaves a record (see `xlhost exp list`).
#pragma once

#include <rapidjson/document.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "xlhost/core/checkpoint/weights_origin.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/run/run_results.hpp"
#include "xlhost/core/run/runtime_info.hpp"

namespace xlhost::core {

// How many processes trained the run together, and where.
struct DistributedRun {
  int world_size = 1;
  std::string backend, launcher;   // "" for a single process
  std::vector<std::string> hosts;  // by rank
};

// What a record says of a run before it starts. The experiments code knows no LibTorch:
// the host fills these from the config, the plugin and the trainer's summary.
struct RunDescription {
  std::string run_dir, id, description;
  std::string run_uid;      // this run's identity (TrainJob::run_uid), kept across resumes
  std::string config_json;  // the fully resolved config
  std::string config_path, command_line, metrics_url;
  std::vector<std::string> data_files;  // their md5 goes into the record (as DVC would)
  std::optional<WeightsOrigin> parent;  // train.init_from: where the initial weights came from
  DistributedRun distributed;
};

struct PluginIdentity {
  std::string path, name, version, torch_version;
  unsigned abi_version = 0;
};

class ExperimentRecord {
 public:
  ExperimentRecord(RunDescription run, PluginIdentity plugin, const RuntimeInfo& runtime);
  // status: completed, interrupted or failed (with `failure`).
  void finish(const RunResults* results, const std::string& status, const std::string& failure = "");
  // For a run that trained nothing (it failed during set-up, was stopped before its first
  // step, or was resumed at its last step): puts back the finished record this run
  // replaced, results and all. Returns false, writing nothing, when there was none.
  bool restore_previous();
  const std::string& path() const { return path_; }

 private:
  void write(const RunResults* results, const std::string& status, const std::string& failure);
  RunDescription run_;
  std::string path_, start_time_, versions_json_, environment_json_, reproduce_json_;
  std::string previous_record_, previous_diff_;  // what this run overwrote; "" when nothing
};

struct RecordSummary {
  std::string id, run_dir, start_time, plugin, status, metrics_url;
  std::string run_uid;  // "" in records written before runs had one
  int64_t pid = 0;
  std::string last_checkpoint;  // newest complete checkpoint on disk, "" if none
  std::string crash;            // status "crashed": the line the crash printed
  double final_loss = 0, val_loss = std::nan(""), tokens_per_second = 0;
  double final_loss_std = std::nan(""), val_loss_std = std::nan("");  // runs with --seeds
  bool has_results = false;
  std::vector<std::string> benchmarks;  // "<task file> acc%" from benchmarks.json (xlhost eval --task)
};

// "<task file> 43.1%" (acc) or "<task file> 0.538 bpb" for each entry of the run folder's
// benchmarks.json (xlhost eval --task); nothing when it has none or it cannot be read.
std::vector<std::string> benchmark_summaries(const RunDirectory& run);

// The record in run_dir, summarised; UserError when it is missing or corrupted. A record
// still "running" whose process is gone (same host) is reported "crashed" when the process
// left a crash report (RunDirectory::crash_report), else "interrupted".
RecordSummary read_record_summary(const std::string& run_dir);
// The same from a record already read (read_record) from run_dir.
RecordSummary summarize_record(const rapidjson::Document& record, const std::string& run_dir);

// Every out_dir/*/record.json. A record still "running" whose process is gone (same host)
// is reported "interrupted". Unreadable records are reported, not skipped silently.
std::vector<RecordSummary> list_records(const std::string& out_dir, std::vector<std::string>* problems);

// out_dir/<id>/record.json, parsed and checked against the schema; UserError names the file
// when it is missing or corrupted.
rapidjson::Document read_record(const std::string& out_dir, const std::string& id);

// A fresh identity for a run that starts from scratch: 16 random hex digits.
std::string new_run_uid();

// This machine's name, as records keep it (a running record's process is looked for only here).
std::string hostname();

// Lenient readers of a record's members: "" or NaN when absent or of another type.
std::string member_string(const rapidjson::Value& object, const char* key);
double member_number(const rapidjson::Value& object, const char* key);

// The code a run used, from its versions.git: "<commit> on <branch>" (or the short commit),
// then the uncommitted files when the tree was dirty.
std::string describe_code_version(const rapidjson::Value& git, bool full_commit);

// The chain of runs whose weights a run started from, newest first: one line per run,
// "0.0.3 (this run)", "0.0.2 step 300: xlhost checkpoint out/0.0.2/…", ending with where the
// first one's weights came from. Follows parent.run_dir records; a missing one ends the chain.
std::vector<std::string> record_lineage(const rapidjson::Value& record);

// The experiment folder's record.md (beside the run's config file: the researcher's plan,
// tracked in git) with the run's outcome between these marker lines, written to the run
// folder's record.md (RunDirectory::record_markdown): a run never changes a tracked file, so
// the tree stays clean for the next --require-clean run. Returns "" when there is no
// record.md beside the config, else the path written.
// The record's outcome as (name, value) rows: status, times and host, code, plugin, steps,
// losses, val loss, fact recall, tokens/s, checkpoint, command. record.md's results block
// and `exp show` print them.
std::vector<std::pair<std::string, std::string>> record_rows(const rapidjson::Document& record);

inline constexpr const char* kRecordResultsBegin = "<!-- xlhost:results -->";
inline constexpr const char* kRecordResultsEnd = "<!-- /xlhost:results -->";
std::string fill_record_markdown(const rapidjson::Document& record, const std::filesystem::path& run_dir);

}  // namespace xlhost::core
