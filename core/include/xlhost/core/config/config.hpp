// Experiment configuration: one JSON file, validated against the host's sections and the
// plugin's `model` schema before anything runs, with `--set section.key=value` overrides.
#pragma once

#include "xlhost/core/run/run_results.hpp"

#include <map>
#include <string>
#include <vector>

#include "xlhost/sdk/config_schema.hpp"

namespace xlhost::core {

using sdk::Schema;
using sdk::SectionValues;

// Section name → schema, in the order sections are written out.
using ConfigSchema = std::vector<std::pair<std::string, Schema>>;

class Config {
 public:
  // Reads and validates `path`; `overrides` are "section.key=value" strings applied
  // on top. Throws UserError listing every problem found (file, key path, expectation).
  static Config load(const std::string& path, const ConfigSchema& schema,
                     const std::vector<std::string>& overrides = {});
  static Config parse(const std::string& json_text, const std::string& source_name, const ConfigSchema& schema,
                      const std::vector<std::string>& overrides = {});
  // Every key at its default.
  static Config defaults(const ConfigSchema& schema);

  const SectionValues& section(const std::string& name) const;
  SectionValues& section(const std::string& name);

  // The fully resolved config (every key, defaults filled in) as pretty JSON.
  std::string to_json() const;

  // Keys the file or a --set gave that have no effect with the other values (a schema
  // entry's only_when), one sentence each; the trainer prints them and keeps them in the record.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  std::vector<std::pair<std::string, SectionValues>> sections_;
  std::vector<std::string> warnings_;
};

// The "section.key"s whose values differ between two resolved configs (Config::to_json()),
// in key order; values as JSON text, "-" for a key one side lacks.
std::vector<ConfigChange> config_changes(const std::string& before_json, const std::string& after_json,
                                         const std::string& before_source);

// Edit distance, for "did you mean" suggestions.
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace xlhost::core
