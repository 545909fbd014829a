#include "xlhost/core/experiments/train_log.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <sstream>

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

TrainLogStep read_step(const rapidjson::Value& v) {
  TrainLogStep s;
  s.step = read_integer(v, "step"), s.total_steps = read_integer(v, "total_steps");
  s.loss = read_number(v, "loss"), s.aux_loss = read_number(v, "aux_loss", std::nan(""));
  // Logs written before "objective" existed had the objective (cross-entropy + aux) as "loss".
  if (!std::isnan(s.aux_loss) && !v.HasMember("objective")) s.loss -= s.aux_loss;
  s.lr = read_number(v, "lr"), s.grad_norm = read_number(v, "grad_norm");
  s.tokens = read_integer(v, "tokens"), s.tokens_per_s = read_number(v, "tokens_per_s");
  s.step_s = read_number(v, "step_s"), s.forward_s = read_number(v, "forward_s");
  s.backward_s = read_number(v, "backward_s"), s.optimizer_s = read_number(v, "optimizer_s");
  if (v.HasMember("skipped") && v["skipped"].IsString()) s.skipped = v["skipped"].GetString();
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

TrainLogWriter::TrainLogWriter(const std::filesystem::path& path, std::optional<int64_t> resumed_at) {
  if (resumed_at) write_file_atomically(path.string(), lines_through(path, *resumed_at));
  out_.open(path, std::ios::app);
}

void TrainLogWriter::write_line(const std::string& json) { out_ << json << "\n" << std::flush; }

void TrainLogWriter::write(const TrainLogStep& s) {
  write_line(json_object([&](JsonWriter& w) {
    integer(w, "step", s.step), integer(w, "total_steps", s.total_steps);
    write_number(w, "loss", s.loss), write_number(w, "lr", s.lr), write_number(w, "grad_norm", s.grad_norm);
    integer(w, "tokens", s.tokens), write_number(w, "tokens_per_s", s.tokens_per_s);
    write_number(w, "step_s", s.step_s), write_number(w, "forward_s", s.forward_s);
    write_number(w, "backward_s", s.backward_s), write_number(w, "optimizer_s", s.optimizer_s);
    if (!std::isnan(s.aux_loss)) write_number(w, "aux_loss", s.aux_loss), write_number(w, "objective", s.objective());
    if (!s.skipped.empty()) w.Key("skipped"), w.String(s.skipped.c_str());
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
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) read_line(line, contents);
  return contents;
}

std::optional<TrainLogStep> last_logged_step(const std::filesystem::path& path) {
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
