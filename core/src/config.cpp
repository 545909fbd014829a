#include "xlhost/core/config.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

#include "xlhost/core/error.hpp"
#include "xlhost/core/file_io.hpp"

namespace xlhost::core {

using sdk::SchemaEntry;
using sdk::Value;
using sdk::ValueType;

ConfigSchema full_schema(const Schema& model_schema) {
  using namespace sdk;
  return {
      {"experiment",
       {string_key("id", "0.0.0", "experiment version X.Y.Z (major = architecture, minor = feature, patch = tuning)"),
        string_key("description", "", "one line saying what this run tests")}},
      {"model", model_schema},
      {"data",
       {string_key("train_path", "data/synth/train.jsonl", "training data: JSON lines with a \"text\" field"),
        string_key("val_path", "data/synth/val.jsonl", "held-out data in the same format; empty = none"),
        string_key("tokenizer", "byte", "tokenizer: \"byte\" (byte-level, 259 ids)", {"byte"}),
        int_key("seq_len", 256, "tokens per training sequence", 2, 1 << 20),
        bool_key("skip_malformed", false, "skip (and count) malformed lines instead of refusing to start"),
        string_key("cache_dir", "cache", "where tokenised data is cached (keyed by content hash)"),
        string_key("knowledge_path", "", "knowledge file handed to the plugin's init_from_data; empty = none")}},
      {"train",
       {int_key("batch_size", 16, "sequences per micro-batch", 1, 1 << 20),
        int_key("accumulation_steps", 1, "micro-batches per optimizer step", 1, 1 << 20),
        int_key("max_steps", 0, "optimizer steps; 0 = as many as `epochs` gives", 0, 1e15),
        int_key("epochs", 1, "passes over the training data when max_steps is 0", 1, 1e6),
        float_key("lr", 3e-4, "peak learning rate", 0.0, 10.0),
        float_key("min_lr_ratio", 0.1, "cosine schedule floor as a fraction of lr", 0.0, 1.0),
        int_key("warmup_steps", 0, "linear warm-up steps", 0, 1e15),
        float_key("weight_decay", 0.1, "AdamW weight decay (matrices only)", 0.0, 10.0),
        float_key("beta1", 0.9, "AdamW beta1", 0.0, 1.0),
        float_key("beta2", 0.95, "AdamW beta2", 0.0, 1.0),
        float_key("grad_clip", 1.0, "clip the global gradient norm to this; 0 = off", 0.0, 1e9),
        int_key("seed", 1337, "seed for initialisation, data order and dropout", 0, 9.2e18),
        int_key("log_interval", 10, "steps between train.log lines and progress updates", 1, 1e9),
        int_key("checkpoint_interval", 0, "steps between checkpoints; 0 = only at the end", 0, 1e15),
        int_key("threads", 0, "CPU threads for LibTorch; 0 = all cores", 0, 4096),
        string_key("device", "cpu", "cpu, cuda, or auto (cuda when available)", {"cpu", "cuda", "auto"}),
        string_key("dtype", "float32", "float32; bfloat16 autocast (CUDA only); auto = bfloat16 on CUDA, else float32",
                   {"float32", "bfloat16", "auto"})}},
      {"eval",
       {int_key("interval", 0, "steps between evaluations on val_path; 0 = only at the end", 0, 1e15),
        int_key("max_batches", 20, "batches of val data per evaluation", 1, 1e9),
        int_key("batch_size", 0, "0 = train.batch_size", 0, 1 << 20),
        string_key("facts_path", "", "facts.jsonl for fact recall after training and in `xlhost eval`; empty = none"),
        int_key("max_facts", 0, "facts scored for fact recall; 0 = all", 0, 1e9)}},
      {"generate",
       {string_key("prompts_path", "", "text file, one prompt per line; empty = no samples after training"),
        int_key("max_new_tokens", 64, "new tokens per prompt (the prompt does not count)", 1, 1 << 20),
        float_key("temperature", 0.75, "softmax temperature; 0 = greedy", 0.0, 100.0),
        float_key("top_p", 0.9, "nucleus sampling mass", 0.0, 1.0),
        float_key("repetition_penalty", 1.0, "divide logits of tokens already present by this", 0.01, 100.0),
        int_key("seed", 0, "sampling seed", 0, 9.2e18),
        int_key("samples", 3, "prompts whose completion is printed after training", 0, 1 << 20)}},
      {"metrics",
       {bool_key("enabled", true, "serve Prometheus metrics while training"),
        string_key("listen", "127.0.0.1:9464", "host:port of /metrics and /healthz; port 0 picks a free port"),
        bool_key("allow_remote", false, "allow a listen address other than loopback (exposes the endpoint)"),
        float_key("linger_seconds", 0.0, "keep serving this long after the run ends, for a last scrape", 0.0, 86400.0),
        float_key("peak_flops", 0.0, "device peak FLOP/s for xl_train_mfu_ratio; 0 = measure a matmul at start", 0.0,
                  1e18)}},
      {"run",
       {string_key("out_dir", "out", "runs write to <out_dir>/<experiment.id>/"),
        int_key("keep_checkpoints", 3, "checkpoints kept per run (oldest removed first)", 1, 1 << 20)}},
  };
}

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

template <typename Names>
std::string did_you_mean(const std::string& name, const Names& candidates, const std::string& prefix) {
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

std::string line_col(const std::string& text, size_t offset) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') ++line, col = 1;
    else ++col;
  }
  return std::to_string(line) + ":" + std::to_string(col);
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

Config Config::parse(const std::string& json_text, const std::string& source, const ConfigSchema& schema,
                     const std::vector<std::string>& overrides) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseCommentsFlag | rapidjson::kParseTrailingCommasFlag>(json_text.c_str(),
                                                                                 json_text.size());
  if (doc.HasParseError())
    throw UserError(source + ":" + line_col(json_text, doc.GetErrorOffset()) + ": invalid JSON: " +
                    rapidjson::GetParseError_En(doc.GetParseError()));
  if (!doc.IsObject()) throw UserError(source + ": expected a JSON object with sections, got " + describe_json(doc));

  Config config = defaults(schema);
  std::vector<std::string> errors, placeholders;

  // Overrides first: a --set may replace a [PLACEHOLDER] the file still holds.
  std::map<std::string, std::string> override_values;
  for (const auto& o : overrides) {
    auto eq = o.find('=');
    auto dot = o.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq) {
      errors.push_back("--set " + o + ": expected section.key=value");
      continue;
    }
    override_values[o.substr(0, eq)] = o.substr(eq + 1);
  }

  for (auto& member : doc.GetObject()) {
    const std::string section_name = member.name.GetString();
    auto schema_it = std::find_if(schema.begin(), schema.end(), [&](auto& s) { return s.first == section_name; });
    if (schema_it == schema.end()) {
      errors.push_back(section_name + ": unknown section" + did_you_mean(section_name, section_names(schema), ""));
      continue;
    }
    if (!member.value.IsObject()) {
      errors.push_back(section_name + ": expected an object, got " + describe_json(member.value));
      continue;
    }
    auto& values = config.section(section_name);
    for (auto& kv : member.value.GetObject()) {
      const std::string key = kv.name.GetString();
      const std::string path = section_name + "." + key;
      const SchemaEntry* entry = find_entry(schema_it->second, key);
      if (!entry) {
        errors.push_back(path + ": unknown key" + did_you_mean(key, keys_of(schema_it->second), section_name + "."));
        continue;
      }
      if (override_values.count(path)) continue;
      if (kv.value.IsString() && is_placeholder(kv.value.GetString())) {
        placeholders.push_back(path + " = " + kv.value.GetString());
        continue;
      }
      Value value;
      std::string why;
      if (!from_json(kv.value, *entry, value, why)) {
        errors.push_back(path + ": " + why);
        continue;
      }
      if (auto range = check_range(value, *entry); !range.empty()) {
        errors.push_back(path + ": " + range);
        continue;
      }
      values.set(key, value);
    }
  }

  for (const auto& [path, text] : override_values) {
    auto dot = path.find('.');
    const std::string section_name = path.substr(0, dot), key = path.substr(dot + 1);
    auto schema_it = std::find_if(schema.begin(), schema.end(), [&](auto& s) { return s.first == section_name; });
    if (schema_it == schema.end()) {
      errors.push_back("--set " + path + ": unknown section" + did_you_mean(section_name, section_names(schema), ""));
      continue;
    }
    const SchemaEntry* entry = find_entry(schema_it->second, key);
    if (!entry) {
      errors.push_back("--set " + path + ": unknown key" +
                       did_you_mean(key, keys_of(schema_it->second), section_name + "."));
      continue;
    }
    Value value;
    std::string why;
    if (!from_text(text, *entry, value, why)) {
      errors.push_back("--set " + path + ": " + why);
      continue;
    }
    if (auto range = check_range(value, *entry); !range.empty()) {
      errors.push_back("--set " + path + ": " + range);
      continue;
    }
    config.section(section_name).set(key, value);
  }

  if (!placeholders.empty()) {
    std::string list;
    for (const auto& p : placeholders) list += "\n    " + p;
    errors.push_back(std::to_string(placeholders.size()) + " unreplaced placeholder" +
                     (placeholders.size() > 1 ? "s" : "") + " (fill them in or pass --set):" + list);
  }
  throw_if_errors(errors, source);
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

}  // namespace xlhost::core
