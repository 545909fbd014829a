// The training-data text format: JSON lines, one document per line in a "text" field.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace xlhost::core {

struct JsonLinesReport {
  size_t lines = 0;      // non-empty lines seen
  size_t documents = 0;  // lines whose text was delivered
  size_t skipped = 0;    // malformed lines skipped (only with skip_malformed)
  std::vector<std::string> first_problems;  // "file:line: what", at most 5
};

// Calls `on_text` with the "text" field of every line of `path`. A malformed line (not
// JSON, not an object, no string "text") throws UserError naming file and line, unless
// skip_malformed, in which case it is counted and skipped.
JsonLinesReport read_json_lines(const std::string& path, bool skip_malformed,
                                const std::function<void(const std::string&)>& on_text);

}  // namespace xlhost::core
