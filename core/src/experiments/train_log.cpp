#include "xlhost/core/experiments/train_log.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/json_writer.hpp"

namespace xlhost::core {

namespace {

// One line's object, its fields written by `fields`; a diverged value is written as null.
template <typename Fields>
std::string json_object(Fields fields) {
  return write_json([&](JsonWriter& w) {
    w.StartObject();
    fields(w);
    w.EndObject();
  });
}

void integer(JsonWriter& w, const char* key, int64_t value) {
  w.Key(key);
  w.Int64(value);
}

double read_number(const rapidjson::Value& v, const char* key, double missing = 0) {
  if (!v.HasMember(key)) return missing;
  if (v[key].IsNull()) return std::nan("");
  return v[key].IsNumber() ? v[key].GetDouble() : missing;
}

int64_t read_integer(const rapidjson::Value& v, const char* key) {
  return v.HasMember(key) && v[key].IsInt64() ? v[key].GetInt64() : 0;
}

// A step line's keys and the StepRecord members they hold (an integer or a number), in the
// order they are written. A new per-step figure needs one line here, its member, and the
// trainer's value for it.
struct StepKey {
  const char* key;
  int64_t StepRecord::*integer;
  double StepRecord::*number;
};
constexpr StepKey kStepKeys[] = {
    {"step", &StepRecord::step, nullptr},
    {"total_steps", &StepRecord::total_steps, nullptr},
    {"loss", nullptr, &StepRecord::loss},
    {"lr", nullptr, &StepRecord::lr},
    {"grad_norm", nullptr, &StepRecord::grad_norm},
    {"tokens", &StepRecord::tokens_seen, nullptr},
    {"tokens_per_s", nullptr, &StepRecord::tokens_per_second},
    {"step_s", nullptr, &StepRecord::step_seconds},
    {"forward_s", nullptr, &StepRecord::forward_seconds},
    {"backward_s", nullptr, &StepRecord::backward_seconds},
    {"optimizer_s", nullptr, &StepRecord::optimizer_seconds},
    {"data_s", nullptr, &StepRecord::data_seconds},
    {"cpu_percent", nullptr, &StepRecord::cpu_percent},
    {"rss_mib", nullptr, &StepRecord::rss_mib},
};

StepRecord read_step(const rapidjson::Value& v) {
  StepRecord s;
  for (const auto& k : kStepKeys)
    if (k.integer) s.*k.integer = read_integer(v, k.key);
    else s.*k.number = read_number(v, k.key);
  s.aux_loss = read_number(v, "aux_loss", std::nan(""));
  s.gpu_memory_mib = read_number(v, "gpu_memory_mib", std::nan(""));
  s.gpu_util_percent = read_number(v, "gpu_util_percent", std::nan(""));
  // Logs written before "objective" existed had the objective (cross-entropy + aux) as "loss".
  if (!std::isnan(s.aux_loss) && !v.HasMember("objective")) s.loss -= s.aux_loss;
  if (v.HasMember("skipped") && v["skipped"].IsString()) s.skip_reason = v["skipped"].GetString();
  if (v.HasMember("diagnostics") && v["diagnostics"].IsObject())
    for (const auto& d : v["diagnostics"].GetObject())
      s.diagnostics.emplace_back(d.name.GetString(), d.value.IsNumber() ? d.value.GetDouble() : std::nan(""));
  return s;
}

// Which kind of line `line` is, if it parses: the one key each kind alone has decides.
void read_line(const std::string& line, TrainLogContents& into) {
  rapidjson::Document d;
  if (parse_json_into(d, line) || !d.IsObject() || !d.HasMember("step") || !d["step"].IsInt64()) return;
  if (d.HasMember("loss")) {
    into.steps.push_back(read_step(d));
  } else if (d.HasMember("val_loss")) {
    into.evals.push_back({d["step"].GetInt64(), read_number(d, "val_loss"), read_number(d, "val_perplexity")});
  } else if (d.HasMember("fact_recall")) {
    into.fact_recalls.push_back({d["step"].GetInt64(), read_number(d, "fact_recall"), read_number(d, "fact_recall_seen"),
                                 read_number(d, "fact_recall_unseen")});
  }
}

// The lines of `path` that parse and belong to steps up to `step`.
std::string lines_through(const std::filesystem::path& path, int64_t step) {
  std::ifstream in(path);
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    rapidjson::Document d;
    if (!parse_json_into(d, line) && d.IsObject() && d.HasMember("step") && d["step"].IsInt64() &&
        d["step"].GetInt64() <= step)
      kept += line + "\n";
  }
  return kept;
}

}  // namespace

TrainLogWriter::TrainLogWriter(const std::filesystem::path& path, std::optional<int64_t> resumed_at) : path_(path) {
  if (resumed_at) write_file_atomically(path.string(), lines_through(path, *resumed_at));
  out_.open(path, std::ios::app);
  if (!out_) throw UserError(path.string() + ": cannot open for writing (" + std::strerror(errno) + ")");
}

// Every line reaches the file before training goes on: a full disk stops the run at this
// step, with its last checkpoint, instead of losing the rest of the curve unnoticed.
void TrainLogWriter::write_line(const std::string& json) {
  errno = 0;
  out_ << json << "\n" << std::flush;
  if (!out_)
    throw UserError(path_.string() + ": cannot write (" + (errno ? std::strerror(errno) : "stream error") +
                    "); the run stops here");
}

void TrainLogWriter::write(const StepRecord& s) {
  write_line(json_object([&](JsonWriter& w) {
    for (const auto& k : kStepKeys)
      if (k.integer) integer(w, k.key, s.*k.integer);
      else write_number(w, k.key, s.*k.number);
    if (!std::isnan(s.aux_loss)) write_number(w, "aux_loss", s.aux_loss), write_number(w, "objective", s.objective());
    if (!std::isnan(s.gpu_memory_mib)) write_number(w, "gpu_memory_mib", s.gpu_memory_mib);
    if (!std::isnan(s.gpu_util_percent)) write_number(w, "gpu_util_percent", s.gpu_util_percent);
    if (s.skipped()) w.Key("skipped"), w.String(s.skip_reason.c_str());
    if (!s.diagnostics.empty()) {
      w.Key("diagnostics");
      w.StartObject();
      for (const auto& [name, value] : s.diagnostics) write_number(w, name.c_str(), value);
      w.EndObject();
    }
  }));
}

void TrainLogWriter::write(const TrainLogEval& e) {
  write_line(json_object([&](JsonWriter& w) {
    integer(w, "step", e.step), write_number(w, "val_loss", e.val_loss), write_number(w, "val_perplexity", e.val_perplexity);
  }));
}

void TrainLogWriter::write(const TrainLogFactRecall& f) {
  write_line(json_object([&](JsonWriter& w) {
    integer(w, "step", f.step), write_number(w, "fact_recall", f.rate);
    write_number(w, "fact_recall_seen", f.seen), write_number(w, "fact_recall_unseen", f.unseen);
  }));
}

TrainLogContents read_train_log(const std::filesystem::path& path) {
  TrainLogContents contents;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return contents;  // a FIFO would block, a device never end
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) read_line(line, contents);
  return contents;
}

std::optional<StepRecord> last_logged_step(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return std::nullopt;
  // A step line is a few hundred bytes; 16 KiB holds the last one even with many diagnostics
  // and evaluation lines after it.
  const std::streamoff size = in.tellg(), start = std::max<std::streamoff>(0, size - 16384);
  in.seekg(start);
  std::string tail(static_cast<size_t>(size - start), '\0');
  in.read(tail.data(), size - start);
  std::istringstream lines(tail);
  TrainLogContents contents;
  for (std::string line; std::getline(lines, line);) read_line(line, contents);
  if (contents.steps.empty()) return std::nullopt;
  return contents.steps.back();
}

}  // namespace xlhost::core
