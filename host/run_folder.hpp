// Who owns a run folder: one process at a time (a lock held for the run's life), and one
// run at a time (a fresh run never starts in a folder holding another run's training).
#pragma once

#include <string>

#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/util/file_lock.hpp"

namespace xlhost::host {

// The run folder for this process alone: the lock is held until the process ends, so a
// second run of the same id started at the same moment is refused, not interleaved.
core::FileLock claim_run_folder(const core::RunDirectory& run_dir, const std::string& id);

// Refuses when the folder's record says its run is still running (another process).
void refuse_if_running(const core::RunDirectory& run_dir, const std::string& id);

// The identity of the run this process trains (kept in record.json and in every
// checkpoint's state.json). A resume continues the folder's run: its record's identity
// ("" for records older than identities). A fresh run gets a new one, and never starts in
// a folder that holds another run's train.log, checkpoints or seed runs: refused, or with
// `overwrite` those are first moved to <out_dir>/.archive/<id>-<UTC time>/.
std::string run_identity(const core::RunDirectory& run_dir, const std::string& id, bool fresh, bool overwrite);

}  // namespace xlhost::host
