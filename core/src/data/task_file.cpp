#include "xlhost/core/data/task_file.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <fstream>
#include <regex>

#include "xlhost/core/data/json_lines.hpp"
#include "xlhost/core/util/checksum.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"

namespace xlhost::core {

namespace {

const std::vector<std::string> kFormats{"xlhost", "hellaswag", "arc", "piqa", "ceval", "text"};

std::string format_of_keys(const rapidjson::Value& line) {
  auto has = [&](const char* key) { return line.IsObject() && line.HasMember(key); };
  if (has("context") && has("choices")) return "xlhost";
  if (has("ctx_a") || has("endings")) return "hellaswag";
  if (has("answerKey")) return "arc";
  if (has("goal") && has("sol1")) return "piqa";
  if (has("text")) return "text";
  return "";
}

std::string strip(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

// lm-eval's hellaswag utils.preprocess.
std::string hellaswag_preprocess(const std::string& text) {
  std::string s = strip(text);
  for (size_t at; (at = s.find(" [title]")) != std::string::npos;) s.replace(at, 8, ". ");
  static const std::regex brackets("\\[.*?\\]");
  s = std::regex_replace(s, brackets, "");
  for (size_t at = 0; (at = s.find("  ", at)) != std::string::npos; at += 1) s.erase(at, 1);  // "  " -> " "
  return s;
}

// Python's str.capitalize() for ASCII: the first letter upper case, the rest lower.
std::string capitalize(std::string s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (static_cast<unsigned char>(s[i]) < 128) s[i] = static_cast<char>(i ? std::tolower(s[i]) : std::toupper(s[i]));
  return s;
}

std::vector<std::string> strings_of(const rapidjson::Value& array, const std::string& what) {
  std::vector<std::string> out;
  for (const auto& v : array.GetArray()) {
    if (!v.IsString()) throw UserError(what + " holds " + describe_json(v) + ", expected strings");
    out.emplace_back(v.GetString(), v.GetStringLength());
  }
  return out;
}

int64_t index_of(const std::vector<std::string>& labels, const std::string& label, const std::string& what) {
  const auto it = std::find(labels.begin(), labels.end(), label);
  if (it == labels.end()) throw UserError(what + " \"" + label + "\" is not one of the choices' labels");
  return it - labels.begin();
}

ChoiceItem arc_item(const JsonFields& f, const rapidjson::Value& line) {
  ChoiceItem item;
  std::vector<std::string> labels;
  std::string question;
  if (line["question"].IsObject()) {  // AI2's form
    JsonFields q(line["question"], "field \"question\"");
    question = q.string("stem");
    for (const auto& c : q.array("choices").GetArray()) {
      JsonFields choice(c, "a choice");
      item.choices.push_back(choice.string("text"));
      labels.push_back(choice.string("label"));
    }
  } else {
    question = f.string("question");
    JsonFields choices(f.object("choices"), "field \"choices\"");
    item.choices = strings_of(choices.array("text"), "choices.text");
    labels = strings_of(choices.array("label"), "choices.label");
  }
  item.context = "Question: " + question + "\nAnswer:";
  item.gold = index_of(labels, f.string("answerKey"), "answerKey");
  return item;
}

// One JSON line as an item of `format`; "" or what is wrong.
std::string read_item(const rapidjson::Value& line, const std::string& format, TaskFile& task) {
  try {
    JsonFields f(line, "item");
    if (format == "text") {
      task.texts.push_back(f.string("text"));
      return "";
    }
    ChoiceItem item;
    bool fewshot = false;
    if (format == "xlhost") {
      item.context = f.string("context");
      item.choices = strings_of(f.array("choices"), "field \"choices\"");
      item.gold = f.integer("gold", 0);
      if (f.has("group")) item.group = f.string("group");
      if (f.has("fewshot")) {
        if (!line["fewshot"].IsBool()) return "field \"fewshot\" is " + describe_json(line["fewshot"]) + ", expected true or false";
        fewshot = line["fewshot"].GetBool();
      }
    } else if (format == "hellaswag") {
      item.context = hellaswag_preprocess(f.string("activity_label") + ": " + f.string("ctx_a") + " " +
                                          capitalize(f.string("ctx_b")));
      for (const auto& e : strings_of(f.array("endings"), "field \"endings\"")) item.choices.push_back(hellaswag_preprocess(e));
      const auto& label = line["label"];
      item.gold = label.IsString() ? std::stoll(std::string(label.GetString())) : f.integer("label", 0);
    } else if (format == "arc") {
      item = arc_item(f, line);
    } else {  // piqa
      item.context = "Question: " + f.string("goal") + "\nAnswer:";
      item.choices = {f.string("sol1"), f.string("sol2")};
      item.gold = f.integer("label", 0, 1);
    }
    if (item.choices.size() < 2) return "expected at least two choices";
    if (item.gold < 0 || item.gold >= static_cast<int64_t>(item.choices.size()))
      return "gold " + std::to_string(item.gold) + " is not an index of its " + std::to_string(item.choices.size()) +
             " choices";
    (fewshot ? task.fewshot : task.items).push_back(std::move(item));
    return "";
  } catch (const std::exception& e) {  // JsonFields' errors and a non-numeric label
    return e.what();
  }
}

void read_csv_task(TaskFile& task) {
  std::ifstream in(task.path, std::ios::binary);
  std::vector<std::string> header, fields;
  int64_t line = 0;
  if (!read_csv_record(in, header, line)) throw UserError(task.path + ": empty CSV file");
  for (auto& h : header) {
    h = strip(h);
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::tolower(c); });
  }
  if (!header.empty() && header[0].rfind("\xEF\xBB\xBF", 0) == 0) header[0].erase(0, 3);  // a byte-order mark
  auto column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end())
      throw UserError(task.path + ":1: the header has no column \"" + name +
                      "\" (expected C-Eval's question,A,B,C,D,answer or CMMLU's Question,A,B,C,D,Answer)");
    return static_cast<size_t>(it - header.begin());
  };
  const size_t question = column("question"), answer = column("answer");
  const size_t options[] = {column("a"), column("b"), column("c"), column("d")};
  const std::vector<std::string> letters{"A", "B", "C", "D"};
  for (int64_t start = line + 1; read_csv_record(in, fields, line); start = line + 1) {
    if (fields.size() == 1 && strip(fields[0]).empty()) continue;
    const std::string where = task.path + ":" + std::to_string(start) + ": ";
    if (fields.size() != header.size())
      throw UserError(where + std::to_string(fields.size()) + " fields, the header has " + std::to_string(header.size()));
    ChoiceItem item;
    item.context = strip(fields[question]);
    for (size_t i = 0; i < 4; ++i) item.context += "\n" + letters[i] + ". " + fields[options[i]];
    item.context += "\n答案：";
    item.choices = letters;
    const auto gold = std::find(letters.begin(), letters.end(), strip(fields[answer]));
    if (gold == letters.end()) throw UserError(where + "answer \"" + fields[answer] + "\" is not one of A, B, C, D");
    item.gold = gold - letters.begin();
    task.items.push_back(std::move(item));
  }
}

std::string detect_format(const std::string& path) {
  const auto dot = path.rfind('.');
  const std::string ext = dot == std::string::npos ? "" : path.substr(dot + 1);
  if (ext == "csv") return "ceval";
  if (ext == "txt") return "text";
  std::ifstream in(path, std::ios::binary);
  std::string line;
  while (std::getline(in, line) && line.find_first_not_of(" \t\r") == std::string::npos) {
  }
  rapidjson::Document doc;
  if (line.empty() || parse_json_into(doc, line)) return "";  // the reader says what is wrong with it
  const auto format = format_of_keys(doc);
  if (format.empty())
    throw UserError(path + ": cannot tell the task format from its first line's keys; pass --task-format (one of "
                    "xlhost, hellaswag, arc, piqa, ceval, text)");
  return format;
}

}  // namespace

bool read_csv_record(std::istream& in, std::vector<std::string>& fields, int64_t& line) {
  fields.assign(1, "");
  bool quoted = false, any = false;
  for (int c; (c = in.get()) != EOF;) {
    any = true;
    if (quoted) {
      if (c == '"') {
        if (in.peek() == '"') fields.back() += static_cast<char>(in.get());
        else quoted = false;
      } else {
        if (c == '\n') ++line;
        fields.back() += static_cast<char>(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c == '\n') {
      ++line;
      return true;
    } else if (c != '\r') {
      fields.back() += static_cast<char>(c);
    }
  }
  if (any) ++line;
  return any;
}

TaskFile read_task_file(const std::string& path, const std::string& format) {
  require_regular_file(path, "task");
  TaskFile task;
  task.path = path;
  task.checksum = checksum_file(path);
  task.format = format == "auto" ? detect_format(path) : format;
  if (format != "auto" && std::find(kFormats.begin(), kFormats.end(), format) == kFormats.end())
    throw UserError("--task-format " + format + ": expected auto, xlhost, hellaswag, arc, piqa, ceval or text");
  if (task.format == "ceval") {
    read_csv_task(task);
  } else if (task.format == "text" && path.size() > 4 && path.substr(path.size() - 4) == ".txt") {
    task.texts.push_back(read_text_file(path, "task"));
  } else {
    read_json_objects(
        path, false, [&](const rapidjson::Value& line) { return read_item(line, task.format.empty() ? "xlhost" : task.format, task); },
        " (task format " + (task.format.empty() ? std::string("xlhost") : task.format) + ")");
  }
  task.rolling = task.format == "text";
  if (task.items.empty() && task.texts.empty()) throw UserError(path + ": no items to score");
  return task;
}

std::string fewshot_context(const ChoiceItem& item, const std::vector<const ChoiceItem*>& shots) {
  std::string context;
  for (const auto* shot : shots) context += shot->context + " " + shot->choices[static_cast<size_t>(shot->gold)] + "\n\n";
  return context + item.context;
}

}  // namespace xlhost::core
