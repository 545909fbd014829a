#include "xlhost/core/data/json_lines.hpp"

#include <rapidjson/document.h>

#include <fstream>

#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/json.hpp"

namespace xlhost::core {

JsonLinesReport read_json_objects(const std::string& path, bool skip_malformed,
                                  const std::function<std::string(const rapidjson::Value&)>& on_object,
                                  const std::string& hint) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open data file");
  JsonLinesReport report;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++report.lines;
    rapidjson::Document doc;
    std::string problem;
    if (const auto invalid = parse_json_into(doc, line))
      problem = "not valid JSON (" + invalid.reason + (invalid.column ? " at column " + std::to_string(invalid.column) : "") +
                ")";
    else if (!doc.IsObject())
      problem = "expected a JSON object";
    else
      problem = on_object(doc);
    if (problem.empty()) {
      ++report.documents;
      continue;
    }
    const std::string where = path + ":" + std::to_string(line_no) + ": " + problem;
    if (!skip_malformed)
      throw UserError(where + hint);
    ++report.skipped;
    if (report.first_problems.size() < 5) report.first_problems.push_back(where);
  }
  return report;
}

std::string read_text_field(const rapidjson::Value& line, std::string& text) {
  auto field = line.FindMember("text");
  if (field == line.MemberEnd() || !field->value.IsString()) return "expected a string field \"text\"";
  text.assign(field->value.GetString(), field->value.GetStringLength());
  return "";
}

JsonLinesReport read_json_lines(const std::string& path, bool skip_malformed,
                                const std::function<void(const std::string&)>& on_text) {
  std::string text;
  return read_json_objects(path, skip_malformed, [&](const rapidjson::Value& line) {
    auto problem = read_text_field(line, text);
    if (problem.empty()) on_text(text);
    return problem;
  });
}

}  // namespace xlhost::core
