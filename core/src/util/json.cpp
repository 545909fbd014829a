#include "xlhost/core/util/json.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <sstream>
#include <vector>

#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

namespace {

// The deepest nesting of `text`, counted outside strings in one pass, so that nothing
// that walks the parsed document recursively can overflow the stack.
int nesting_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

constexpr unsigned kStrict = rapidjson::kParseIterativeFlag;
constexpr unsigned kRelaxed = kStrict | rapidjson::kParseCommentsFlag | rapidjson::kParseTrailingCommasFlag;

// Reads a document's structure (values are skipped) and notes where each member's name ends.
class MemberLines : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, MemberLines> {
 public:
  MemberLines(std::string_view text, const rapidjson::MemoryStream& in) : text_(text), in_(in) {}
  bool StartObject() { return enter(); }
  bool EndObject(rapidjson::SizeType) { return leave(); }
  bool StartArray() {
    ++arrays_;
    return enter();
  }
  bool EndArray(rapidjson::SizeType) {
    --arrays_;
    return leave();
  }
  bool Key(const char* name, rapidjson::SizeType length, bool) {
    key_.assign(name, length);
    if (arrays_ == 0) lines[prefix() + key_] = line_at(in_.Tell());
    return true;
  }
  std::map<std::string, size_t> lines;

 private:
  bool enter() {
    path_.push_back(key_);
    return true;
  }
  bool leave() {
    path_.pop_back();
    return true;
  }
  std::string prefix() const {  // path_[0] is the root's (empty) name
    std::string p;
    for (size_t i = 1; i < path_.size(); ++i) p += path_[i] + ".";
    return p;
  }
  size_t line_at(size_t offset) {  // offsets only grow: count the newlines since the last call
    for (; scanned_ < offset && scanned_ < text_.size(); ++scanned_) line_ += text_[scanned_] == '\n';
    return line_;
  }
  std::string_view text_;
  const rapidjson::MemoryStream& in_;
  std::vector<std::string> path_;
  std::string key_;
  int arrays_ = 0;
  size_t scanned_ = 0, line_ = 1;
};

}  // namespace

std::map<std::string, size_t> json_member_lines(std::string_view text) {
  if (nesting_depth(text) > kMaxJsonDepth) return {};
  rapidjson::MemoryStream in(text.data(), text.size());
  MemberLines handler(text, in);
  rapidjson::Reader reader;
  if (reader.Parse<kRelaxed>(in, handler).IsError()) return {};
  return std::move(handler.lines);
}

JsonProblem parse_json_into(rapidjson::Document& doc, std::string_view text, bool relaxed) {
  if (nesting_depth(text) > kMaxJsonDepth) return {"nested deeper than " + std::to_string(kMaxJsonDepth) + " levels"};
  if (relaxed) doc.Parse<kRelaxed>(text.data(), text.size());
  else doc.Parse<kStrict>(text.data(), text.size());
  if (!doc.HasParseError()) return {};
  JsonProblem problem{rapidjson::GetParseError_En(doc.GetParseError()), 1, 1};
  for (size_t i = 0; i < doc.GetErrorOffset() && i < text.size(); ++i) {
    if (text[i] == '\n') ++problem.line, problem.column = 1;
    else ++problem.column;
  }
  return problem;
}

rapidjson::Document parse_json(std::string_view text, const std::string& source, bool relaxed) {
  rapidjson::Document doc;
  if (const auto problem = parse_json_into(doc, text, relaxed)) {
    std::string where = source;
    if (problem.line) where += ':' + std::to_string(problem.line) + ':' + std::to_string(problem.column);
    throw UserError(where + ": invalid JSON: " + problem.reason);
  }
  return doc;
}

std::string describe_json(const rapidjson::Value& v) {
  if (v.IsString()) return std::string("string \"") + v.GetString() + "\"";
  if (v.IsBool()) return v.GetBool() ? "true" : "false";
  if (v.IsNumber()) {
    std::ostringstream out;
    out << "number " << v.GetDouble();
    return out.str();
  }
  if (v.IsObject()) return "an object";
  if (v.IsArray()) return "an array";
  return "null";
}

JsonFields::JsonFields(const rapidjson::Value& object, std::string source) : object_(object), source_(std::move(source)) {
  if (!object_.IsObject()) throw UserError(source_ + ": expected a JSON object, got " + describe_json(object_));
}

bool JsonFields::has(const char* key) const { return object_.HasMember(key); }

void JsonFields::fail(const char* key, const std::string& problem) const {
  throw UserError(source_ + ": field \"" + key + "\" " + problem);
}

const rapidjson::Value& JsonFields::field(const char* key, const char* expected) const {
  if (!object_.HasMember(key)) fail(key, std::string("is missing (expected ") + expected + ")");
  return object_[key];
}

int64_t JsonFields::integer(const char* key, int64_t min, int64_t max) const {
  const auto& v = field(key, "an integer");
  if (!v.IsInt64()) fail(key, "is " + describe_json(v) + ", expected an integer");
  const int64_t x = v.GetInt64();
  if (x < min || x > max)
    fail(key, "is " + std::to_string(x) + ", expected " + std::to_string(min) + " to " + std::to_string(max));
  return x;
}

uint64_t JsonFields::unsigned_integer(const char* key) const {
  const auto& v = field(key, "a non-negative integer");
  if (!v.IsUint64()) fail(key, "is " + describe_json(v) + ", expected a non-negative integer");
  return v.GetUint64();
}

std::string JsonFields::string(const char* key) const {
  const auto& v = field(key, "a string");
  if (!v.IsString()) fail(key, "is " + describe_json(v) + ", expected a string");
  return {v.GetString(), v.GetStringLength()};
}

const rapidjson::Value& JsonFields::array(const char* key) const {
  const auto& v = field(key, "an array");
  if (!v.IsArray()) fail(key, "is " + describe_json(v) + ", expected an array");
  return v;
}

const rapidjson::Value& JsonFields::object(const char* key) const {
  const auto& v = field(key, "an object");
  if (!v.IsObject()) fail(key, "is " + describe_json(v) + ", expected an object");
  return v;
}

}  // namespace xlhost::core
