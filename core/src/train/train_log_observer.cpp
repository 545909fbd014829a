#include "xlhost/core/train/train_log_observer.hpp"

namespace xlhost::core {

void TrainLogObserver::on_step(const StepRecord& r) {
  if (!r.log_line) return;
  TrainLogStep s;
  s.step = r.step, s.total_steps = r.total_steps, s.loss = r.loss, s.aux_loss = r.aux_loss;
  s.lr = r.lr, s.grad_norm = r.grad_norm, s.tokens = r.tokens_seen, s.tokens_per_s = r.tokens_per_second;
  s.step_s = r.step_seconds, s.forward_s = r.forward_seconds, s.backward_s = r.backward_seconds;
  s.optimizer_s = r.optimizer_seconds, s.diagnostics = r.diagnostics, s.skipped = r.skip_reason;
  log_.write(s);
}

void TrainLogObserver::on_eval(int64_t step, const EvalResult& r) { log_.write(TrainLogEval{step, r.loss, r.perplexity}); }

void TrainLogObserver::on_fact_recall(int64_t step, const FactRecall& r) {
  log_.write(TrainLogFactRecall{step, r.rate(), r.seen_rate(), r.unseen_rate()});
}

}  // namespace xlhost::core
