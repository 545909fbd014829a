#include "xlhost/core/experiments/memory_page.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "xlhost/core/data/knowledge_file.hpp"
#include "xlhost/core/experiments/memory_usage_file.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/json_writer.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBands = 64, kColumns = 60, kListed = 20;
constexpr uint64_t kMaxRows = uint64_t{1} << 24;  // the page holds a few numbers per row
constexpr uintmax_t kMaxUsageBytes = uintmax_t{512} << 20, kMaxKnowledgeBytes = uintmax_t{256} << 20;

// The knowledge file's lines (row i: line i), when the run's config names one inside the project.
std::vector<std::string> row_texts(const RunDirectory& run, const fs::path& project) {
  try {
    const auto config_text = run.read(run.config(), "config", kMaxRecordBytes);
    if (!config_text) return {};
    const auto config = parse_json(*config_text, run.config().string());
    if (!config.HasMember("data") || !config["data"].IsObject() || !config["data"].HasMember("knowledge_path") ||
        !config["data"]["knowledge_path"].IsString())
      return {};
    const fs::path knowledge = config["data"]["knowledge_path"].GetString();
    if (knowledge.empty()) return {};
    const auto file = RunDirectory(project).resolve(fs::absolute(knowledge), "knowledge file", kMaxKnowledgeBytes);
    return file ? read_knowledge_entries(file->string()) : std::vector<std::string>{};
  } catch (const UserError&) {  // no text then: the page shows row ids alone
    return {};
  }
}

// key: a JSON file's "rows" array as it is (ablations.json, memory_changes.json); null when
// the file is absent or broken.
void write_rows(JsonWriter& w, const char* key, const std::optional<std::string>& file) {
  w.Key(key);
  rapidjson::Document doc;
  if (file && !doc.Parse(file->c_str()).HasParseError() && doc.IsObject() && doc.HasMember("rows") && doc["rows"].IsArray())
    doc["rows"].Accept(w);
  else
    w.Null();
}

}  // namespace

std::optional<std::string> memory_page_json(const fs::path& run_dir, const fs::path& project) {
  const RunDirectory run(run_dir);
  const auto path = run.resolve(run.memory_usage(), "memory usage", kMaxUsageBytes);
  if (!path) return std::nullopt;
  const auto usage = read_memory_usage(*path);
  if (usage.rows > kMaxRows)
    throw UserError(path->string() + ": a bank of " + std::to_string(usage.rows) + " rows, more than the " +
                    std::to_string(kMaxRows) + " the memory page shows");
  const size_t rows = usage.rows;
  std::vector<uint64_t> total(rows, 0);
  std::vector<int64_t> steps;
  for (const auto& r : usage.records) {
    for (const auto& [row, n] : r.reads) total[row] += n;
    steps.push_back(r.step);
  }
  std::sort(steps.begin(), steps.end());  // a file written by a resumed run, or by hand, need not be in order
  steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
  std::vector<uint32_t> order(rows);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return total[a] > total[b]; });
  const size_t bands = std::max<size_t>(1, std::min(kBands, rows)), columns = std::min(kColumns, steps.size());
  std::vector<uint32_t> band_of(rows);
  for (size_t i = 0; i < rows; ++i) band_of[order[i]] = static_cast<uint32_t>(i * bands / rows);
  auto column_of = [&](int64_t step) {
    const size_t i = static_cast<size_t>(std::lower_bound(steps.begin(), steps.end(), step) - steps.begin());
    return i * columns / steps.size();
  };
  std::vector<std::vector<uint64_t>> heat(bands, std::vector<uint64_t>(columns, 0));
  for (const auto& r : usage.records)
    for (const auto& [row, n] : r.reads) heat[band_of[row]][column_of(r.step)] += n;
  const auto texts = row_texts(run, project);
  auto text = [&](uint32_t row) { return row < texts.size() ? texts[row] : std::string(); };
  const auto ablations = run.read(run.ablations(), "ablations", kMaxRecordBytes);
  const auto changes = run.read(run.memory_changes(), "memory changes", kMaxRecordBytes);
  return write_json([&](JsonWriter& w) {
    w.StartObject();
    w.Key("layers"), w.Uint(usage.layers);
    w.Key("rows"), w.Uint64(rows);
    w.Key("band_rows"), w.Uint64((rows + bands - 1) / bands);
    w.Key("knowledge_lines"), w.Uint64(texts.size());
    w.Key("columns"), w.StartArray();
    for (size_t c = 0; c < columns; ++c) w.Int64(steps[std::min(steps.size() - 1, ((c + 1) * steps.size() - 1) / columns)]);
    w.EndArray();
    w.Key("heatmap"), w.StartArray();
    for (const auto& band : heat) {
      w.StartArray();
      for (uint64_t v : band) w.Uint64(v);
      w.EndArray();
    }
    w.EndArray();
    w.Key("top"), w.StartArray();
    for (size_t i = 0; i < std::min(kListed, rows) && total[order[i]] > 0; ++i) {
      w.StartObject();
      w.Key("row"), w.Uint(order[i]);
      w.Key("reads"), w.Uint64(total[order[i]]);
      write_string(w, "text", text(order[i]));
      w.EndObject();
    }
    w.EndArray();
    const auto never = std::count(total.begin(), total.end(), uint64_t{0});
    w.Key("never_read"), w.Int64(never);
    w.Key("never"), w.StartArray();
    size_t listed = 0;
    for (uint32_t row = 0; row < rows && listed < kListed; ++row) {
      if (total[row] != 0) continue;
      w.StartObject();
      w.Key("row"), w.Uint(row);
      write_string(w, "text", text(row));
      w.EndObject();
      ++listed;
    }
    w.EndArray();
    write_rows(w, "ablations", ablations);
    write_rows(w, "changes", changes);
    w.EndObject();
  });
}

}  // namespace xlhost::core
