#include "xlhost/core/data/knowledge_file.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

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
    const std::string problem = parse_json_into(doc, text);
    if (!problem.empty() && !doc.HasParseError()) throw UserError(path + ": " + problem);
    if (doc.HasParseError()) {
      size_t line = 1;
      for (size_t i = 0; i < doc.GetErrorOffset() && i < text.size(); ++i) line += text[i] == '\n';
      throw UserError(path + ":" + std::to_string(line) + ": invalid JSON knowledge file (" +
                      rapidjson::GetParseError_En(doc.GetParseError()) + ")");
    }
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
