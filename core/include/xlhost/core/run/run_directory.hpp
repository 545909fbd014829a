// A run's folder, <out_dir>/<experiment.id>/, and the one place that names what is in it.
// Checkpoint folders have their own owner (checkpoint/); record.md is the researcher's
// and lives beside the experiment's config, not here.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace xlhost::core {

class RunDirectory {
 public:
  explicit RunDirectory(std::filesystem::path root) : root_(std::move(root)) {}
  // `id` is an experiment id under out_dir, or, when it has a '/' (which no id has), the
  // path of a run folder anywhere: `exp compare 0.0.1 ../plugin/out/0.1.0`.
  RunDirectory(const std::string& out_dir, const std::string& id)
      : root_(id.find('/') != std::string::npos ? std::filesystem::path(id) : std::filesystem::path(out_dir) / id) {}

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path config() const { return root_ / "config.json"; }     // the validated config, every default filled in
  std::filesystem::path train_log() const { return root_ / "train.log"; }    // JSON lines: steps, evaluations, fact recall
  std::filesystem::path record() const { return root_ / "record.json"; }     // provenance and results
  std::filesystem::path diff_patch() const { return root_ / "diff.patch"; }  // uncommitted changes at start
  std::filesystem::path run_log() const { return root_ / "run.log"; }        // what the terminal showed
  std::filesystem::path samples() const { return root_ / "samples.txt"; }
  std::filesystem::path record_markdown() const { return root_ / "record.md"; }  // the plan with this run's results
  std::filesystem::path notes() const { return root_ / "notes.json"; }  // tags and a note, from the dashboard
  std::filesystem::path lock() const { return root_ / "run.lock"; }  // held by the process that runs it (rank 0)
  std::filesystem::path crash_report() const { return root_ / "crash.txt"; }  // the line of a crash that ended the run
  std::filesystem::path ablations() const { return root_ / "ablations.json"; }  // eval --ablate: losses with the memory taken away
  std::filesystem::path benchmarks() const { return root_ / "benchmarks.json"; }  // eval --task: one entry per task file
  std::filesystem::path memory_usage() const { return root_ / "memory_usage.bin"; }  // per-row reads over training
  std::filesystem::path memory_changes() const { return root_ / "memory_changes.json"; }  // an EMA bank's most-changed rows
  std::filesystem::path exports() const { return root_ / "exports"; }  // train.export_interval
  std::filesystem::path checkpoints() const { return root_ / "checkpoints"; }
  std::filesystem::path seeds() const { return root_ / "seeds"; }  // sub-runs of `xlhost run --seeds N`
  std::filesystem::path report() const { return root_ / "report"; }  // `xlhost exp report`'s default destination

  // One of the folder's files as the exp commands and the dashboard read it: a regular
  // file that resolves inside the folder, of at most max_bytes. A link elsewhere, a link
  // loop, a FIFO or a device is refused: UserError naming the file and the reason.
  // Nothing when there is no such entry at all. resolve() checks the same, reading nothing.
  std::optional<std::string> read(const std::filesystem::path& file, const std::string& what, uintmax_t max_bytes) const;
  std::optional<std::filesystem::path> resolve(const std::filesystem::path& file, const std::string& what,
                                               uintmax_t max_bytes) const;
  // Whether `entry` (a folder's entry) is a run folder: a directory holding a record or a
  // train.log entry. False, never an exception, for a link loop or a vanished entry.
  static bool is_run_folder(const std::filesystem::path& entry);
  // The run folders directly inside `dir`, by name; none when it is not a folder.
  static std::vector<std::filesystem::path> run_folders_in(const std::filesystem::path& dir);

 private:
  std::filesystem::path root_;
};

// What a run folder's file may weigh when read back: a record, a crash report, samples.
inline constexpr uintmax_t kMaxRecordBytes = 16u << 20, kMaxCrashReportBytes = 64u << 10, kMaxSamplesBytes = 4u << 20;
inline constexpr uintmax_t kMaxTrainLogBytes = uintmax_t{1} << 30;  // ~4M logged steps

// The researcher's plan and findings for an experiment: record.md beside its config file.
std::filesystem::path record_markdown_beside(const std::string& config_path);

}  // namespace xlhost::core
