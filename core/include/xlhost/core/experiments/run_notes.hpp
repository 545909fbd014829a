// A run's tags and free-text note: the researcher's words about it, kept in the run folder
// (out/<id>/notes.json), never in tracked files, and written only by the dashboard's POST.
#pragma once

#include <string>
#include <vector>

#include "xlhost/core/run/run_directory.hpp"

namespace xlhost::core {

struct RunNotes {
  std::vector<std::string> tags;
  std::string note;
};

inline constexpr size_t kMaxTags = 32, kMaxTagBytes = 64, kMaxNoteBytes = 64 << 10;

// Nothing (empty notes) when the run has none or they cannot be read.
RunNotes read_run_notes(const RunDirectory& run);

// {"tags": [string, ...], "note": string} within the limits above; UserError saying what is
// wrong otherwise.
RunNotes parse_run_notes(const std::string& json);

void write_run_notes(const RunDirectory& run, const RunNotes& notes);

}  // namespace xlhost::core
