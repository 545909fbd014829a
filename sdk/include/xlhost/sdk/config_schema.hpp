// Typed configuration values and the schema a plugin declares for its `model` section.
// Deliberately free of LibTorch and of any JSON library: the host validates and parses,
// the plugin only reads typed values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace xlhost::sdk {

enum class ValueType { Int, Float, Bool, String };

using Value = std::variant<int64_t, double, bool, std::string>;

const char* type_name(ValueType type);
ValueType type_of(const Value& value);
std::string to_string(const Value& value);
std::string plain_text(const Value& value);  // as to_string, strings without quotes

struct SchemaEntry {
  std::string key;
  ValueType type = ValueType::Int;
  Value default_value;
  std::string doc;
  std::optional<double> min;  // inclusive bounds for Int and Float
  std::optional<double> max;
  std::vector<std::string> choices;  // allowed values for String; empty = any
  // A key that takes effect only while another key of its section holds one of these
  // values (fusion_heads only with fusion=cross_attention); empty: always. A value given for
  // a key not in effect is accepted with a warning, so that a sweep over the other key
  // needs no edits, and a researcher sees that the value changed nothing.
  std::string applies_when_key;
  std::vector<std::string> applies_when_values;

  SchemaEntry only_when(std::string key, std::vector<std::string> values) &&;
  // Whether `section` (every key of the schema present) puts this key in effect.
  bool applies(const std::map<std::string, Value>& section) const;
};

using Schema = std::vector<SchemaEntry>;

// Helpers so a plugin's schema reads as a table.
SchemaEntry int_key(std::string key, int64_t def, std::string doc,
                    std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt);
SchemaEntry float_key(std::string key, double def, std::string doc,
                      std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt);
SchemaEntry bool_key(std::string key, bool def, std::string doc);
SchemaEntry string_key(std::string key, std::string def, std::string doc,
                       std::vector<std::string> choices = {});

// The validated values of one config section, every schema key present.
class SectionValues {
 public:
  SectionValues() = default;
  explicit SectionValues(std::map<std::string, Value> values) : values_(std::move(values)) {}

  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  const std::map<std::string, Value>& values() const { return values_; }
  void set(const std::string& key, Value value) { values_[key] = std::move(value); }

  // Every key of `schema` with its default, for tests and tools that build a model
  // without a config file.
  static SectionValues defaults(const Schema& schema);

 private:
  const Value& at(const std::string& key, ValueType expected) const;
  std::map<std::string, Value> values_;
};

using ModelConfig = SectionValues;

}  // namespace xlhost::sdk
