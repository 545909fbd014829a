// Writing JSON (records, train.log lines, the dashboard's answers): one compact writer and
// the two field forms every writer needs.
#pragma once

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <string>

namespace xlhost::core {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// The text that `build(writer)` writes.
template <typename Build>
std::string write_json(Build build) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  build(w);
  return buffer.GetString();
}

// key: the string, whatever bytes it holds (NUL included).
inline void write_string(JsonWriter& w, const char* key, const std::string& value) {
  w.Key(key);
  w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
}

// key: the number; JSON has no NaN or infinity, so those are written as null.
inline void write_number(JsonWriter& w, const char* key, double value) {
  w.Key(key);
  if (std::isfinite(value)) w.Double(value);
  else w.Null();
}

}  // namespace xlhost::core
