#include "xlhost/core/config/config.hpp"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"

namespace xlhost::core {

using sdk::SchemaEntry;
using sdk::Value;
using sdk::ValueType;

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

namespace {

// What other trainers (Hugging Face, MiniMind, nanoGPT) call a key: too far from xlhost's
// name for the edit distance to find it.
const std::map<std::string, std::string> kOtherNames{
    {"learning_rate", "lr"}, {"num_train_epochs", "epochs"}, {"num_epochs", "epochs"},
    {"gradient_accumulation_steps", "accumulation_steps"}, {"grad_accum", "accumulation_steps"},
    {"accumulation_step", "accumulation_steps"}, {"max_grad_norm", "grad_clip"}, {"clip_grad", "grad_clip"},
    {"per_device_train_batch_size", "batch_size"}, {"warmup", "warmup_steps"}, {"max_seq_len", "seq_len"},
    {"max_length", "seq_len"}, {"block_size", "seq_len"}, {"hidden_size", "dim"}, {"n_embd", "dim"},
    {"num_hidden_layers", "n_layers"}, {"n_layer", "n_layers"}, {"num_attention_heads", "n_heads"},
    {"n_head", "n_heads"}, {"num_key_value_heads", "n_kv_heads"}, {"max_steps_per_epoch", "max_steps"}};

template <typename Names>
std::string did_you_mean(const std::string& name, const Names& candidates, const std::string& prefix) {
  if (const auto other = kOtherNames.find(name); other != kOtherNames.end())
    for (const auto& candidate : candidates)
      if (candidate == other->second) return "; did you mean '" + prefix + candidate + "'? (xlhost's name for it)";
  std::string best;
  size_t best_distance = std::max<size_t>(2, name.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    size_t d = edit_distance(name, candidate);
    if (d < best_distance) best_distance = d, best = candidate;
  }
  return best.empty() ? "" : "; did you mean '" + prefix + best + "'?";
}

bool is_placeholder(const std::string& s) {
  static const std::regex pattern(R"(^\[[A-Z][A-Z0-9_]*\]$)");
  return std::regex_match(s, pattern);
}

// Converts JSON to the schema's type, or explains why it cannot.
bool from_json(const rapidjson::Value& v, const SchemaEntry& entry, Value& out, std::string& why) {
  switch (entry.type) {
    case ValueType::Int:
      if (v.IsInt64()) return out = v.GetInt64(), true;
      if (v.IsDouble() && std::floor(v.GetDouble()) == v.GetDouble() && std::abs(v.GetDouble()) < 9.2e18)
        return out = static_cast<int64_t>(v.GetDouble()), true;
      break;
    case ValueType::Float:
      if (v.IsNumber()) return out = v.GetDouble(), true;
      break;
    case ValueType::Bool:
      if (v.IsBool()) return out = v.GetBool(), true;
      break;
    case ValueType::String:
      if (v.IsString()) return out = std::string(v.GetString(), v.GetStringLength()), true;
      break;
  }
  why = std::string("expected ") + sdk::type_name(entry.type) + ", got " + describe_json(v);
  return false;
}

bool from_text(const std::string& text, const SchemaEntry& entry, Value& out, std::string& why) {
  try {
    size_t used = 0;
    switch (entry.type) {
      case ValueType::Int: {
        long long n = std::stoll(text, &used);
        if (used == text.size()) return out = static_cast<int64_t>(n), true;
        break;
      }
      case ValueType::Float: {
        double d = std::stod(text, &used);
        if (used == text.size()) return out = d, true;
        break;
      }
      case ValueType::Bool:
        if (text == "true" || text == "1") return out = true, true;
        if (text == "false" || text == "0") return out = false, true;
        break;
      case ValueType::String:
        return out = text, true;
    }
  } catch (const std::exception&) {
  }
  why = std::string("expected ") + sdk::type_name(entry.type) + ", got \"" + text + "\"";
  return false;
}

std::string check_range(const Value& value, const SchemaEntry& entry) {
  if (entry.type == ValueType::Int || entry.type == ValueType::Float) {
    double x = entry.type == ValueType::Int ? static_cast<double>(std::get<int64_t>(value)) : std::get<double>(value);
    if ((entry.min && x < *entry.min) || (entry.max && x > *entry.max)) {
      std::ostringstream out;
      out << sdk::to_string(value) << " is out of range [" << (entry.min ? std::to_string(*entry.min) : "-inf")
          << ", " << (entry.max ? std::to_string(*entry.max) : "inf") << "]";
      return out.str();
    }
  }
  if (entry.type == ValueType::String && !entry.choices.empty()) {
    const auto& s = std::get<std::string>(value);
    if (std::find(entry.choices.begin(), entry.choices.end(), s) == entry.choices.end()) {
      std::string list;
      for (const auto& c : entry.choices) list += (list.empty() ? "" : ", ") + c;
      return "\"" + s + "\" is not one of: " + list;
    }
  }
  return "";
}

const SchemaEntry* find_entry(const Schema& schema, const std::string& key) {
  for (const auto& e : schema)
    if (e.key == key) return &e;
  return nullptr;
}

std::vector<std::string> keys_of(const Schema& schema) {
  std::vector<std::string> keys;
  for (const auto& e : schema) keys.push_back(e.key);
  return keys;
}

std::vector<std::string> section_names(const ConfigSchema& schema) {
  std::vector<std::string> names;
  for (const auto& s : schema) names.push_back(s.first);
  return names;
}

void throw_if_errors(const std::vector<std::string>& errors, const std::string& source) {
  if (errors.empty()) return;
  std::string message = source + ": " + std::to_string(errors.size()) + " config error" +
                        (errors.size() > 1 ? "s" : "") + ":";
  for (const auto& e : errors) message += "\n  " + e;
  throw UserError(message);
}

}  // namespace

Config Config::defaults(const ConfigSchema& schema) {
  Config config;
  for (const auto& [name, section_schema] : schema)
    config.sections_.emplace_back(name, SectionValues::defaults(section_schema));
  return config;
}

Config Config::load(const std::string& path, const ConfigSchema& schema, const std::vector<std::string>& overrides) {
  return parse(read_text_file(path, "config file"), path, schema, overrides);
}

namespace {

// "section.key=value" strings by "section.key"; malformed ones become errors.
std::map<std::string, std::string> split_overrides(const std::vector<std::string>& overrides,
                                                   std::vector<std::string>& errors) {
  std::map<std::string, std::string> values;
  for (const auto& o : overrides) {
    auto eq = o.find('='), dot = o.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq)
      errors.push_back("--set " + o + ": expected section.key=value");
    else
      values[o.substr(0, eq)] = o.substr(eq + 1);
  }
  return values;
}

const Schema* find_section(const ConfigSchema& schema, const std::string& name) {
  auto it = std::find_if(schema.begin(), schema.end(), [&](auto& s) { return s.first == name; });
  return it == schema.end() ? nullptr : &it->second;
}

// Stores a converted value after its range check. `where` prefixes a problem.
void store(Config& config, const std::string& section, const SchemaEntry& entry, const Value& value,
           const std::string& where, std::vector<std::string>& errors) {
  if (auto range = check_range(value, entry); !range.empty())
    errors.push_back(where + ": " + range);
  else
    config.section(section).set(entry.key, value);
}

// "exp.json:12: train.lr": a key of the config file after the file and line that hold it, for
// errors an editor or terminal can jump to.
class FilePlaces {
 public:
  FilePlaces(std::string source, std::string_view text) : source_(std::move(source)), lines_(json_member_lines(text)) {}
  std::string operator()(const std::string& path) const {
    const auto line = lines_.find(path);
    return line == lines_.end() ? path : source_ + ":" + std::to_string(line->second) + ": " + path;
  }

 private:
  std::string source_;
  std::map<std::string, size_t> lines_;
};

// One section of the config file. Keys that an override replaces are not read, so a
// --set may replace a [PLACEHOLDER] the file still holds.
void read_section(const std::string& name, const rapidjson::Value& section, const FilePlaces& at,
                  const ConfigSchema& schema, const std::map<std::string, std::string>& overridden, Config& config,
                  std::vector<std::string>& errors, std::vector<std::string>& placeholders) {
  const Schema* section_schema = find_section(schema, name);
  if (!section_schema) {
    errors.push_back(at(name) + ": unknown section" + did_you_mean(name, section_names(schema), ""));
    return;
  }
  if (!section.IsObject()) {
    errors.push_back(at(name) + ": expected an object, got " + describe_json(section));
    return;
  }
  for (auto& kv : section.GetObject()) {
    const std::string key = kv.name.GetString(), path = name + "." + key;
    const SchemaEntry* entry = find_entry(*section_schema, key);
    if (!entry) {
      errors.push_back(at(path) + ": unknown key" + did_you_mean(key, keys_of(*section_schema), name + "."));
    } else if (overridden.count(path)) {
      continue;
    } else if (kv.value.IsString() && is_placeholder(kv.value.GetString())) {
      placeholders.push_back(at(path) + " = " + kv.value.GetString());
    } else {
      Value value;
      std::string why;
      if (from_json(kv.value, *entry, value, why)) store(config, name, *entry, value, at(path), errors);
      else errors.push_back(at(path) + ": " + why);
    }
  }
}

void apply_override(const std::string& path, const std::string& text, const ConfigSchema& schema, Config& config,
                    std::vector<std::string>& errors) {
  const auto dot = path.find('.');
  const std::string section = path.substr(0, dot), key = path.substr(dot + 1), where = "--set " + path;
  const Schema* section_schema = find_section(schema, section);
  if (!section_schema) {
    errors.push_back(where + ": unknown section" + did_you_mean(section, section_names(schema), ""));
    return;
  }
  const SchemaEntry* entry = find_entry(*section_schema, key);
  if (!entry) {
    errors.push_back(where + ": unknown key" + did_you_mean(key, keys_of(*section_schema), section + "."));
    return;
  }
  Value value;
  std::string why;
  if (from_text(text, *entry, value, why)) store(config, section, *entry, value, where, errors);
  else errors.push_back(where + ": " + why);
}

// "model.fusion_heads has no effect: ..." for each given key whose only_when does not hold.
std::vector<std::string> inactive_keys(const Config& config, const ConfigSchema& schema, const rapidjson::Value& doc,
                                       const FilePlaces& at, const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> warnings;
  for (const auto& [section, entries] : schema) {
    const auto& values = config.section(section).values();
    for (const auto& entry : entries) {
      const std::string path = section + "." + entry.key;
      const bool in_file = doc.HasMember(section.c_str()) && doc[section.c_str()].IsObject() &&
                           doc[section.c_str()].HasMember(entry.key.c_str());
      const bool set = overrides.count(path) > 0;  // a --set replaces the file's value
      if ((!in_file && !set) || entry.applies(values)) continue;
      std::string wanted;
      for (const auto& v : entry.applies_when_values) wanted += (wanted.empty() ? "" : " or ") + v;
      warnings.push_back((set ? path : at(path)) + " has no effect: it applies when " + section + "." +
                         entry.applies_when_key + " is " + wanted + ", and it is " +
                         sdk::plain_text(values.at(entry.applies_when_key)));
    }
  }
  return warnings;
}

}  // namespace

Config Config::parse(const std::string& json_text, const std::string& source, const ConfigSchema& schema,
                     const std::vector<std::string>& overrides) {
  const auto doc = parse_json(json_text, source, /*relaxed=*/true);
  if (!doc.IsObject()) throw UserError(source + ": expected a JSON object with sections, got " + describe_json(doc));

  Config config = defaults(schema);
  std::vector<std::string> errors, placeholders;
  const auto override_values = split_overrides(overrides, errors);
  const FilePlaces at(source, json_text);
  for (auto& member : doc.GetObject())
    read_section(member.name.GetString(), member.value, at, schema, override_values, config, errors, placeholders);
  for (const auto& [path, text] : override_values) apply_override(path, text, schema, config, errors);
  if (!placeholders.empty()) {
    std::string list;
    for (const auto& p : placeholders) list += "\n    " + p;
    errors.push_back(std::to_string(placeholders.size()) + " unreplaced placeholder" +
                     (placeholders.size() > 1 ? "s" : "") + " (fill them in or pass --set):" + list);
  }
  throw_if_errors(errors, source);
  config.warnings_ = inactive_keys(config, schema, doc, at, override_values);
  return config;
}

const SectionValues& Config::section(const std::string& name) const {
  for (const auto& s : sections_)
    if (s.first == name) return s.second;
  throw std::out_of_range("config has no section '" + name + "'");
}

SectionValues& Config::section(const std::string& name) {
  return const_cast<SectionValues&>(static_cast<const Config&>(*this).section(name));
}

std::string Config::to_json() const {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
  writer.SetIndent(' ', 2);
  writer.StartObject();
  for (const auto& [name, values] : sections_) {
    writer.Key(name.c_str());
    writer.StartObject();
    for (const auto& [key, value] : values.values()) {
      writer.Key(key.c_str());
      switch (sdk::type_of(value)) {
        case ValueType::Int: writer.Int64(std::get<int64_t>(value)); break;
        case ValueType::Float: writer.Double(std::get<double>(value)); break;
        case ValueType::Bool: writer.Bool(std::get<bool>(value)); break;
        case ValueType::String: writer.String(std::get<std::string>(value).c_str()); break;
      }
    }
    writer.EndObject();
  }
  writer.EndObject();
  return std::string(buffer.GetString()) + "\n";
}

namespace {

void flatten_into(const rapidjson::Value& v, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (v.IsObject() && !prefix.empty() && prefix.find('.') != std::string::npos) {  // an object-valued key
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    v.Accept(w);
    out[prefix] = buffer.GetString();
    return;
  }
  if (v.IsObject()) {
    for (const auto& m : v.GetObject())
      flatten_into(m.value, prefix.empty() ? m.name.GetString() : prefix + "." + m.name.GetString(), out);
    return;
  }
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  v.Accept(w);
  out[prefix] = buffer.GetString();
}

}  // namespace

std::vector<ConfigChange> config_changes(const std::string& before_json, const std::string& after_json,
                                         const std::string& before_source) {
  std::map<std::string, std::string> before, after;
  flatten_into(parse_json(before_json, before_source), "", before);
  flatten_into(parse_json(after_json, "the run's config"), "", after);
  std::vector<ConfigChange> changes;
  for (const auto& [key, value] : before) {
    const auto it = after.find(key);
    if (it == after.end()) changes.push_back({key, value, "-"});
    else if (it->second != value) changes.push_back({key, value, it->second});
  }
  for (const auto& [key, value] : after)
    if (!before.count(key)) changes.push_back({key, "-", value});
  std::sort(changes.begin(), changes.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  return changes;
}

}  // namespace xlhost::core
