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
// on_object finds wrong, throws UserError naming file and line (then `hint`), unless
// skip_malformed, in which case it is counted and skipped.
JsonLinesReport read_json_objects(const std::string& path, bool skip_malformed,
                                  const std::function<std::string(const rapidjson::Value&)>& on_object,
                                  const std::string& hint = " (set data.skip_malformed=true to skip such lines)");

// Calls `on_text` with the "text" field of every line of `path`. A malformed line (not
// JSON, not an object, no string "text") throws UserError naming file and line, unless
// skip_malformed, in which case it is counted and skipped.
JsonLinesReport read_json_lines(const std::string& path, bool skip_malformed,
                                const std::function<void(const std::string&)>& on_text);

// A line's string field "text" into `text`; "" or what is wrong (for read_json_objects).
std::string read_text_field(const rapidjson::Value& line, std::string& text);

// How much text an item of a block holds (see read_json_object_blocks).
inline size_t text_bytes(const std::string& text) { return text.size(); }

// read_json_objects, with the items on_object(line, block) appends to `block` handed to
// on_block(block) whenever they hold about `block_bytes` of text, and at the end, so that
// each block can be worked on by several threads. on_block may move the items out.
template <typename Item, typename OnObject, typename OnBlock>
JsonLinesReport read_json_object_blocks(const std::string& path, bool skip_malformed, size_t block_bytes,
                                        OnObject&& on_object, OnBlock&& on_block) {
  std::vector<Item> block;
  size_t bytes = 0;
  auto report = read_json_objects(path, skip_malformed, [&](const rapidjson::Value& line) -> std::string {
    const size_t before = block.size();
    std::string problem = on_object(line, block);
    for (size_t i = before; i < block.size(); ++i) bytes += text_bytes(block[i]);
    if (bytes >= block_bytes) {
      on_block(block);
      block.clear(), bytes = 0;
    }
    return problem;
  });
  if (!block.empty()) on_block(block);
  return report;
}

}  // namespace xlhost::core
