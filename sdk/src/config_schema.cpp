#include "xlhost/sdk/config_schema.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace xlhost::sdk {

const char* type_name(ValueType type) {
  switch (type) {
    case ValueType::Int: return "integer";
    case ValueType::Float: return "number";
    case ValueType::Bool: return "boolean";
    case ValueType::String: return "string";
  }
  return "?";
}

ValueType type_of(const Value& value) { return static_cast<ValueType>(value.index()); }

std::string to_string(const Value& value) {
  std::ostringstream out;
  switch (type_of(value)) {
    case ValueType::Int: out << std::get<int64_t>(value); break;
    case ValueType::Float: out << std::get<double>(value); break;
    case ValueType::Bool: out << (std::get<bool>(value) ? "true" : "false"); break;
    case ValueType::String: out << '"' << std::get<std::string>(value) << '"'; break;
  }
  return out.str();
}

std::string plain_text(const Value& value) {
  return type_of(value) == ValueType::String ? std::get<std::string>(value) : to_string(value);
}

SchemaEntry SchemaEntry::only_when(std::string key, std::vector<std::string> values) && {
  applies_when_key = std::move(key);
  applies_when_values = std::move(values);
  return std::move(*this);
}

bool SchemaEntry::applies(const std::map<std::string, Value>& section) const {
  if (applies_when_key.empty()) return true;
  const auto it = section.find(applies_when_key);
  if (it == section.end()) return true;
  const std::string now = plain_text(it->second);
  for (const auto& v : applies_when_values)
    if (v == now) return true;
  return false;
}

SchemaEntry int_key(std::string key, int64_t def, std::string doc, std::optional<double> min,
                    std::optional<double> max) {
  return {std::move(key), ValueType::Int, def, std::move(doc), min, max, {}, {}, {}};
}

SchemaEntry float_key(std::string key, double def, std::string doc, std::optional<double> min,
                      std::optional<double> max) {
  return {std::move(key), ValueType::Float, def, std::move(doc), min, max, {}, {}, {}};
}

SchemaEntry bool_key(std::string key, bool def, std::string doc) {
  return {std::move(key), ValueType::Bool, def, std::move(doc), std::nullopt, std::nullopt, {}, {}, {}};
}

SchemaEntry string_key(std::string key, std::string def, std::string doc, std::vector<std::string> choices) {
  return {std::move(key), ValueType::String, std::move(def), std::move(doc), std::nullopt, std::nullopt,
          std::move(choices), {}, {}};
}

const Value& SectionValues::at(const std::string& key, ValueType expected) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw std::out_of_range("config key '" + key + "' is not in the schema");
  if (type_of(it->second) != expected)
    throw std::invalid_argument("config key '" + key + "' holds a " + type_name(type_of(it->second)) +
                                ", read as " + type_name(expected));
  return it->second;
}

int64_t SectionValues::get_int(const std::string& key) const { return std::get<int64_t>(at(key, ValueType::Int)); }
double SectionValues::get_float(const std::string& key) const { return std::get<double>(at(key, ValueType::Float)); }
bool SectionValues::get_bool(const std::string& key) const { return std::get<bool>(at(key, ValueType::Bool)); }
const std::string& SectionValues::get_string(const std::string& key) const {
  return std::get<std::string>(at(key, ValueType::String));
}

SectionValues SectionValues::defaults(const Schema& schema) {
  std::map<std::string, Value> values;
  for (const auto& entry : schema) values[entry.key] = entry.default_value;
  return SectionValues(std::move(values));
}

}  // namespace xlhost::sdk
