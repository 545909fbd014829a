#include "xlhost/core/checkpoint/checkpoint_directory.hpp"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <cstdio>
#include <regex>

#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/util/checksum.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/md5.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

namespace {

// The checkpoints folder of `path` (a run directory or the folder itself).
fs::path checkpoints_folder(const fs::path& path) {
  const fs::path inside = RunDirectory(path).checkpoints();
  return fs::is_directory(inside) ? inside : path;
}

// The checkpoint `latest` names; nothing when the file is missing or holds anything but
// a step_N name (an absolute path or ../ must not lead outside the folder).
std::optional<fs::path> read_latest(const fs::path& folder, std::ostream* warnings) {
  const fs::path file = folder / "latest";
  if (!fs::is_regular_file(file)) return std::nullopt;
  std::string name = read_text_file(file.string(), "checkpoint pointer");
  name.erase(name.find_last_not_of(" \n\r\t") + 1);
  if (!checkpoint_step(name)) {
    if (warnings) *warnings << "warning: " << file.string() << " holds '" << name.substr(0, 80) << "', not a step_N name; ignored\n";
    return std::nullopt;
  }
  return folder / name;
}

}  // namespace

std::string CheckpointFolder::weights_md5() const { return fs::exists(weights()) ? md5_file(weights().string()) : ""; }

std::string checkpoint_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld", static_cast<long long>(step));
  return name;
}

std::optional<int64_t> checkpoint_step(const std::string& name) {
  static const std::regex pattern("step_([0-9]{1,18})");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) return std::nullopt;
  return std::stoll(m[1].str());
}

std::vector<fs::path> list_checkpoints(const fs::path& checkpoints_dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(checkpoints_dir, ec))
    if (auto step = checkpoint_step(entry.path().filename().string()); step && entry.is_directory())
      found.emplace_back(*step, entry.path());
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<fs::path> paths;
  for (auto& f : found) paths.push_back(f.second);
  return paths;
}

void write_manifest(const fs::path& dir) {
  const fs::path manifest = CheckpointFolder(dir).manifest();
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().filename() != manifest.filename()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("checksum"), w.String("xxh3-128");
  w.Key("files"), w.StartObject();
  for (const auto& f : files) {
    w.Key(f.filename().c_str());
    w.StartObject();
    w.Key("bytes"), w.Uint64(fs::file_size(f));
    w.Key("xxh3"), w.String(checksum_file(f.string()).c_str());
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();
  write_file(manifest.string(), std::string(buffer.GetString()) + "\n");
}

std::string verify_checkpoint(const fs::path& dir, bool* legacy) {
  if (legacy) *legacy = false;
  const CheckpointFolder folder(dir);
  const fs::path manifest = folder.manifest();
  if (!fs::exists(manifest)) {
    // Written before manifests: complete when it has the files a load needs.
    if (fs::exists(folder.weights()) && fs::exists(folder.state())) {
      if (legacy) *legacy = true;
      return "";
    }
    return "no manifest.json (an incomplete checkpoint)";
  }
  rapidjson::Document doc;
  try {
    doc = parse_json(read_text_file(manifest.string(), "checkpoint manifest"), manifest.string());
  } catch (const UserError& e) {
    return e.what();
  }
  if (!doc.IsObject() || !doc.HasMember("files") || !doc["files"].IsObject()) return manifest.string() + ": no files";
  for (const auto& f : doc["files"].GetObject()) {
    const fs::path file = dir / f.name.GetString();
    if (file.filename() != fs::path(f.name.GetString()))
      return manifest.string() + ": lists '" + f.name.GetString() + "', not a file name";
    if (!f.value.IsObject() || !f.value.HasMember("bytes") || !f.value["bytes"].IsUint64() || !f.value.HasMember("xxh3") ||
        !f.value["xxh3"].IsString())
      return manifest.string() + ": entry '" + f.name.GetString() + "' lacks bytes or xxh3";
    if (!fs::is_regular_file(file)) return file.string() + " is missing";
    if (fs::file_size(file) != f.value["bytes"].GetUint64())
      return file.string() + " has " + std::to_string(fs::file_size(file)) + " bytes, the manifest says " +
             std::to_string(f.value["bytes"].GetUint64());
    if (checksum_file(file.string()) != f.value["xxh3"].GetString())
      return file.string() + " does not match its checksum (corrupted)";
  }
  return "";
}

std::string resolve_checkpoint(const std::string& path, std::ostream* warnings) {
  const fs::path p(path);
  if (fs::exists(CheckpointFolder(p).weights()) || fs::exists(CheckpointFolder(p).manifest())) {
    if (auto problem = verify_checkpoint(p); !problem.empty()) throw UserError(path + ": checkpoint fails verification: " + problem);
    return p.string();
  }
  const fs::path folder = checkpoints_folder(p);
  std::vector<fs::path> candidates;
  if (auto latest = read_latest(folder, warnings)) candidates.push_back(*latest);
  for (const auto& c : list_checkpoints(folder))
    if (candidates.empty() || c != candidates.front()) candidates.push_back(c);
  for (const auto& c : candidates) {
    bool legacy = false;
    const std::string problem = fs::is_directory(c) ? verify_checkpoint(c, &legacy) : "missing";
    if (problem.empty()) {
      if (legacy && warnings) *warnings << "warning: " << c.string() << " has no manifest (written by an older xlhost); not verified\n";
      return c.string();
    }
    if (warnings) *warnings << "warning: skipping checkpoint " << c.string() << ": " << problem << "\n";
  }
  throw UserError(path + ": no valid checkpoint here (expected a checkpoint directory, or a run directory with "
                         "checkpoints/step_N)");
}

std::string latest_checkpoint(const std::string& run_dir) {
  auto latest = read_latest(checkpoints_folder(run_dir), nullptr);
  return latest && fs::is_directory(*latest) ? latest->string() : "";
}

CheckpointState read_checkpoint_state(const std::string& dir) {
  const std::string path = CheckpointFolder(dir).state().string();
  const auto doc = parse_json(read_text_file(path, "checkpoint state"), path);
  const JsonFields fields(doc, path);
  CheckpointState s;
  s.step = fields.integer("step", 0);
  s.micro_batches = fields.integer("micro_batches", 0);
  s.tokens = fields.integer("tokens", 0);
  if (fields.has("windows_per_micro_batch")) s.windows_per_micro_batch = fields.integer("windows_per_micro_batch", 1);
  s.plugin_name = fields.string("plugin_name");
  s.plugin_version = fields.string("plugin_version");
  s.plugin_path = fields.string("plugin_path");
  if (fields.has("run_uid")) s.run_uid = fields.string("run_uid");
  return s;
}

std::string read_checkpoint_config(const std::string& dir) {
  return read_text_file(CheckpointFolder(dir).config().string(), "checkpoint config");
}

}  // namespace xlhost::core
