// The dashboard's memory page of one run (GET /api/memory): the bank rows' reads over
// training from memory_usage.bin as a heatmap (rows sorted by reads, in bands, against
// logged steps), the most-read and never-read rows with their text (the knowledge file's
// line of that row: the bank's text at initialisation), and eval --ablate's table.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace xlhost::core {

// JSON {"layers","rows","knowledge_lines","columns":[step...],"heatmap":[[reads per column]...] (bands, most
// read first),"band_rows":N,"top":[{"row","reads","text"}],"never_read":COUNT,
// "never":[{"row","text"}],"ablations":[...]|null,"changes":[{"row","tokens_changed","before",
// "after"}]|null (an EMA bank's most-changed rows)}; nothing when the run has no memory
// usage file. The knowledge file is read only inside `project` (the served folder).
std::optional<std::string> memory_page_json(const std::filesystem::path& run_dir, const std::filesystem::path& project);

}  // namespace xlhost::core
