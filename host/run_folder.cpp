#include "run_folder.hpp"

#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <vector>

#include "cli.hpp"
#include "xlhost/core/checkpoint/checkpoint_directory.hpp"
#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/experiments/train_log.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"

namespace fs = std::filesystem;

namespace xlhost::host {

namespace {

// What of an earlier run's training the folder holds, for the refusal: "" when nothing
// (a run stopped before its first step leaves nothing to inherit).
std::string training_held(const core::RunDirectory& run_dir) {
  std::vector<std::string> held;
  std::error_code ec;
  if (const auto last = core::last_logged_step(run_dir.train_log()))
    held.push_back("train.log to step " + std::to_string(last->step));
  if (const auto n = core::list_checkpoints(run_dir.checkpoints().string()).size())
    held.push_back(std::to_string(n) + " checkpoint" + (n > 1 ? "s" : ""));
  if (fs::is_directory(run_dir.seeds(), ec) && !fs::is_empty(run_dir.seeds(), ec)) held.push_back("seed runs");
  std::string text;
  for (const auto& h : held) text += (text.empty() ? "" : ", ") + h;
  return text;
}

std::string utc_stamp() {
  const std::time_t t = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", std::gmtime(&t));
  return text;
}

// Moves everything but the lock this process holds into the archive folder.
fs::path archive_run(const core::RunDirectory& run_dir, const std::string& id) {
  const fs::path archives = run_dir.root().parent_path() / ".archive";
  fs::create_directories(archives);
  fs::path archive = archives / (id + "-" + utc_stamp());
  for (int n = 2; !fs::create_directory(archive); ++n)  // two archives in one second
    archive = archives / (id + "-" + utc_stamp() + "-" + std::to_string(n));
  for (const auto& entry : fs::directory_iterator(run_dir.root()))
    if (entry.path() != run_dir.lock()) fs::rename(entry.path(), archive / entry.path().filename());
  return archive;
}

}  // namespace

core::FileLock claim_run_folder(const core::RunDirectory& run_dir, const std::string& id) {
  core::ensure_directory(run_dir.root().string(), "run");
  auto lock = core::FileLock::try_acquire(run_dir.lock().string());
  if (!lock)
    throw core::UserError("experiment " + id + " is already running (another process holds " + run_dir.lock().string() +
                          "); stop it with `xlhost exp stop " + id + "` or pick another experiment.id");
  return std::move(*lock);
}

void refuse_if_running(const core::RunDirectory& run_dir, const std::string& id) {
  std::optional<core::RecordSummary> previous;
  try {
    previous = core::read_record_summary(run_dir.root().string());
  } catch (const core::UserError&) {  // no record yet, or an unreadable one this run replaces
  }
  if (previous && previous->status == "running")
    throw core::UserError("experiment " + id + " is already running (pid " + std::to_string(previous->pid) +
                          "); stop it with `xlhost exp stop " + id + "` or pick another experiment.id");
}

std::string run_identity(const core::RunDirectory& run_dir, const std::string& id, bool fresh, bool overwrite) {
  if (!fresh) {
    try {
      return core::read_record_summary(run_dir.root().string()).run_uid;
    } catch (const core::UserError&) {  // no record: the checkpoint's identity is adopted
      return "";
    }
  }
  if (const auto held = training_held(run_dir); !held.empty()) {
    if (!overwrite)
      throw core::UserError("experiment " + id + ": " + run_dir.root().string() + " holds an earlier run (" + held +
                            "); continue it with --resume, start under another experiment.id, or pass --overwrite "
                            "to archive it and start afresh");
    std::cerr << "experiment " << id << ": the earlier run is archived in " << archive_run(run_dir, id).string() << "\n";
  }
  return core::new_run_uid();
}

int exp_archive_command(const std::vector<std::string>& args) {
  std::string out_dir;
  auto options = records_options(out_dir);
  options.add_options()("id", po::value<std::vector<std::string>>()->required()->multitoken(), "experiment ids");
  po::positional_options_description positional;
  positional.add("id", -1);
  po::variables_map vm;
  if (!parse_args(args, options, positional, "xlhost exp archive ID [ID ...] [--out DIR]",
                  "Moves runs out of the way (a failed or abandoned one): each folder's files go to\n"
                  "<out>/.archive/<id>-<UTC time>/, where nothing lists them and nothing is deleted. A running\n"
                  "run is refused.",
                  vm))
    return 0;
  for (const auto& id : vm["id"].as<std::vector<std::string>>()) {
    const core::RunDirectory run_dir(out_dir, id);
    if (!core::RunDirectory::is_run_folder(run_dir.root()))
      throw core::UserError("no run " + id + " in " + out_dir + " (" + run_dir.record().string() + " is missing)");
    refuse_if_running(run_dir, id);
    const auto archive = [&] {
      const auto lock = claim_run_folder(run_dir, id);  // a run starting now waits for this, or this for it
      return archive_run(run_dir, id);
    }();
    fs::remove(run_dir.lock());
    fs::remove(run_dir.root());  // empty now: refused (an error) if a run started meanwhile wrote into it
    std::cout << "archived " << id << " in " << archive.string() << "\n";
  }
  return 0;
}

}  // namespace xlhost::host
