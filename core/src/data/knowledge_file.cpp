#include "xlhost/core/data/knowledge_file.hpp"

#include <rapidjson/document.h>

#include <fstream>
#include <sstream>

#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"

namespace xlhost::core {

namespace {

const rapidjson::Value* sentence_of(const rapidjson::Value& item) {
  if (item.IsString()) return &item;
  if (!item.IsObject()) return nullptr;
  for (const char* key : {"sentence", "text"})
    if (item.HasMember(key) && item[key].IsString()) return &item[key];
  if (item.HasMember("target") && item["target"].IsArray() && !item["target"].Empty()) {
    const auto& first = item["target"][0];
    if (first.IsObject() && first.HasMember("sentence") && first["sentence"].IsString()) return &first["sentence"];
  }
  return nullptr;
}

}  // namespace

std::vector<std::string> read_knowledge_entries(const std::string& path) {
  const std::string text = read_text_file(path, "knowledge file (data.knowledge_path)");
  std::vector<std::string> entries;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    rapidjson::Document doc;
    if (const auto problem = parse_json_into(doc, text))
      throw UserError(path + (problem.line ? ":" + std::to_string(problem.line) : "") + ": invalid JSON knowledge file (" +
                      problem.reason + ")");
    for (rapidjson::SizeType i = 0; i < doc.Size(); ++i) {
      const auto* sentence = sentence_of(doc[i]);
      if (!sentence)
        throw UserError(path + ": entry " + std::to_string(i) +
                        " has no sentence (expected a string, or an object with \"sentence\", \"text\" or "
                        "\"target\": [{\"sentence\": ...}])");
      entries.emplace_back(sentence->GetString(), sentence->GetStringLength());
    }
  } else {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) entries.push_back(line);
    }
  }
  if (entries.empty()) throw UserError(path + ": knowledge file has no entries");
  return entries;
}

}  // namespace xlhost::core
