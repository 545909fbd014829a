#include "xlhost/core/train_log.hpp"

#include <iomanip>
#include <sstream>

namespace xlhost::core {

namespace {

std::string json_number(double x) {
  if (!std::isfinite(x)) return "null";
  std::ostringstream out;
  out << std::setprecision(9) << x;
  return out.str();
}

}  // namespace

TrainLogWriter::TrainLogWriter(const std::string& path, bool append)
    : out_(path, append ? std::ios::app : std::ios::trunc) {}

void TrainLogWriter::on_step(const StepRecord& r) {
  if (!r.log_line) return;
  out_ << "{\"step\":" << r.step << ",\"total_steps\":" << r.total_steps << ",\"loss\":" << json_number(r.loss)
       << ",\"lr\":" << json_number(r.lr) << ",\"grad_norm\":" << json_number(r.grad_norm)
       << ",\"tokens\":" << r.tokens_seen << ",\"tokens_per_s\":" << json_number(r.tokens_per_second)
       << ",\"step_s\":" << json_number(r.step_seconds) << ",\"forward_s\":" << json_number(r.forward_seconds)
       << ",\"backward_s\":" << json_number(r.backward_seconds) << ",\"optimizer_s\":" << json_number(r.optimizer_seconds);
  // loss is what was minimised; loss - aux_loss is the cross-entropy, comparable across plugins
  if (!std::isnan(r.aux_loss)) out_ << ",\"aux_loss\":" << json_number(r.aux_loss);
  for (const auto& [name, value] : r.diagnostics) out_ << ",\"" << name << "\":" << json_number(value);
  out_ << "}\n" << std::flush;
}

void TrainLogWriter::on_eval(int64_t step, const EvalResult& r) {
  out_ << "{\"step\":" << step << ",\"val_loss\":" << json_number(r.loss)
       << ",\"val_perplexity\":" << json_number(r.perplexity) << "}\n" << std::flush;
}

void TrainLogWriter::on_fact_recall(int64_t step, const FactRecall& r) {
  out_ << "{\"step\":" << step << ",\"fact_recall\":" << json_number(r.rate())
       << ",\"fact_recall_seen\":" << json_number(r.seen_rate())
       << ",\"fact_recall_unseen\":" << json_number(r.unseen_rate()) << "}\n" << std::flush;
}

}  // namespace xlhost::core
