// The training-data text format: JSON lines, one document per line in a "text" field.
#pragma once

#include <rapidjson/fwd.h>

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

// Calls `on_object` with every line's JSON object; it returns "" or what is wrong with the
// line ("expected a string field \"text\""). A line that is not a JSON object, or that
// on_object finds wrong, throws UserError naming file and line, unless skip_malformed, in
// which case it is counted and skipped.
JsonLinesReport read_json_objects(const std::string& path, bool skip_malformed,
                                  const std::function<std::string(const rapidjson::Value&)>& on_object);

// Calls `on_text` with the "text" field of every line of `path`. A malformed line (not
// JSON, not an object, no string "text") throws UserError naming file and line, unless
// skip_malformed, in which case it is counted and skipped.
JsonLinesReport read_json_lines(const std::string& path, bool skip_malformed,
                                const std::function<void(const std::string&)>& on_text);

// The same, delivering the texts in blocks of about `block_bytes` so that each block can be
// worked on by several threads. The callback may move the strings out of the block.
JsonLinesReport read_json_line_blocks(const std::string& path, bool skip_malformed, size_t block_bytes,
                                      const std::function<void(std::vector<std::string>& texts)>& on_block);

}  // namespace xlhost::core
