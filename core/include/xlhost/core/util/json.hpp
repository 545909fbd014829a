// JSON from files that a user, a crash or a disk may have mangled: parsed without
// recursion and with a nesting limit (a document nested a million deep is an error, not a
// stack overflow), and read through typed accessors that name the file and the field
// when a value is missing or of the wrong type.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <string_view>

namespace xlhost::core {

constexpr int kMaxJsonDepth = 128;

// What is wrong with a JSON text, if anything. Callers word it for their file format.
struct JsonProblem {
  std::string reason;           // "" when the text parsed; "Missing a comma ...", "nested deeper than 128 levels"
  size_t line = 0, column = 0;  // 1-based position of a syntax error; 0 when the problem has none
  explicit operator bool() const { return !reason.empty(); }
};

// Parses `text` into `doc`. relaxed: comments and trailing commas allowed (configs).
JsonProblem parse_json_into(rapidjson::Document& doc, std::string_view text, bool relaxed = false);

// The same, throwing UserError "<source>:<line>:<col>: invalid JSON: <reason>".
rapidjson::Document parse_json(std::string_view text, const std::string& source, bool relaxed = false);

// The line (1-based) of each object member's name in a text that parses (relaxed or not), by
// its dotted path ("train.lr"); members of objects inside arrays are not listed. For errors
// about a value's meaning, found after parsing, that should point into the file.
std::map<std::string, size_t> json_member_lines(std::string_view text);

// Typed reads of one JSON object's fields. Every failure is a UserError naming the
// source, the field and what was expected.
// A JSON value in a few words for an error message: `string "wide"`, `number 3.5`, `an object`.
std::string describe_json(const rapidjson::Value& v);

class JsonFields {
 public:
  JsonFields(const rapidjson::Value& object, std::string source);
  bool has(const char* key) const;
  int64_t integer(const char* key, int64_t min = std::numeric_limits<int64_t>::min(),
                  int64_t max = std::numeric_limits<int64_t>::max()) const;
  uint64_t unsigned_integer(const char* key) const;
  std::string string(const char* key) const;
  const rapidjson::Value& array(const char* key) const;
  const rapidjson::Value& object(const char* key) const;

 private:
  const rapidjson::Value& field(const char* key, const char* expected) const;
  [[noreturn]] void fail(const char* key, const std::string& problem) const;
  const rapidjson::Value& object_;
  std::string source_;
};

}  // namespace xlhost::core
