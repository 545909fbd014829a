#pragma once

#include <string>
#include <vector>

namespace xlhost::core {

// Entries of a knowledge file for memory plugins. Two formats:
//   - text: one entry per non-empty line;
//   - JSON (first character '['): a list of strings, or of objects with a "sentence" or
//     "text" field, or with "target": [{"sentence": ...}] (the group's sentence_trex_data.json).
// A missing, empty or malformed file throws UserError naming the file and the place.
std::vector<std::string> read_knowledge_entries(const std::string& path);

}  // namespace xlhost::core
