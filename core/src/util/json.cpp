#include "xlhost/core/util/json.hpp"

#include <rapidjson/error/en.h>

#include <algorithm>
#include <cctype>

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

std::string line_col(std::string_view text, size_t offset) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') ++line, col = 1;
    else ++col;
  }
  return std::to_string(line) + ":" + std::to_string(col);
}

std::string describe(const rapidjson::Value& v) {
  if (v.IsString()) return std::string("the string \"") + std::string(v.GetString()).substr(0, 40) + "\"";
  if (v.IsBool()) return v.GetBool() ? "true" : "false";
  if (v.IsNumber()) return "the number " + std::to_string(v.GetDouble());
  if (v.IsObject()) return "an object";
  if (v.IsArray()) return "an array";
  return "null";
}

}  // namespace

std::string parse_json_into(rapidjson::Document& doc, std::string_view text, bool relaxed) {
  if (nesting_depth(text) > kMaxJsonDepth) return "invalid JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
  constexpr unsigned kStrict = rapidjson::kParseIterativeFlag;
  constexpr unsigned kRelaxed = kStrict | rapidjson::kParseCommentsFlag | rapidjson::kParseTrailingCommasFlag;
  if (relaxed) doc.Parse<kRelaxed>(text.data(), text.size());
  else doc.Parse<kStrict>(text.data(), text.size());
  if (!doc.HasParseError()) return "";
  return line_col(text, doc.GetErrorOffset()) + ": invalid JSON: " + rapidjson::GetParseError_En(doc.GetParseError());
}

rapidjson::Document parse_json(std::string_view text, const std::string& source, bool relaxed) {
  rapidjson::Document doc;
  if (auto problem = parse_json_into(doc, text, relaxed); !problem.empty())
    throw UserError(source + (std::isdigit(static_cast<unsigned char>(problem[0])) ? ":" : ": ") + problem);
  return doc;
}

JsonFields::JsonFields(const rapidjson::Value& object, std::string source) : object_(object), source_(std::move(source)) {
  if (!object_.IsObject()) throw UserError(source_ + ": expected a JSON object, got " + describe(object_));
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
  if (!v.IsInt64()) fail(key, "is " + describe(v) + ", expected an integer");
  const int64_t x = v.GetInt64();
  if (x < min || x > max)
    fail(key, "is " + std::to_string(x) + ", expected " + std::to_string(min) + " to " + std::to_string(max));
  return x;
}

uint64_t JsonFields::unsigned_integer(const char* key) const {
  const auto& v = field(key, "a non-negative integer");
  if (!v.IsUint64()) fail(key, "is " + describe(v) + ", expected a non-negative integer");
  return v.GetUint64();
}

std::string JsonFields::string(const char* key) const {
  const auto& v = field(key, "a string");
  if (!v.IsString()) fail(key, "is " + describe(v) + ", expected a string");
  return {v.GetString(), v.GetStringLength()};
}

const rapidjson::Value& JsonFields::array(const char* key) const {
  const auto& v = field(key, "an array");
  if (!v.IsArray()) fail(key, "is " + describe(v) + ", expected an array");
  return v;
}

const rapidjson::Value& JsonFields::object(const char* key) const {
  const auto& v = field(key, "an object");
  if (!v.IsObject()) fail(key, "is " + describe(v) + ", expected an object");
  return v;
}

}  // namespace xlhost::core
