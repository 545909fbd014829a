// Benchmark task files read from local disk (compute nodes have no internet), turned into
// the prompts lm-evaluation-harness builds for the same tasks, so that a score here is the
// score lm-eval reports.
//
// Formats (`format` "auto" picks one from the extension and the first line's keys):
//   xlhost     JSON lines {"context": str, "choices": [str, ...], "gold": int,
//              "group": str (optional: scored separately too), "fewshot": bool (optional:
//              a line of the few-shot pool, not scored)}
//   hellaswag  JSON lines {"activity_label", "ctx_a", "ctx_b", "endings", "label"}, with
//              lm-eval's preprocessing ("[title]" → ". ", brackets dropped)
//   arc        JSON lines {"question", "choices": {"text", "label"}, "answerKey"} (Hugging
//              Face's form) or {"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}
//              (AI2's); prompt "Question: ...\nAnswer:"
//   piqa       JSON lines {"goal", "sol1", "sol2", "label"}; prompt "Question: ...\nAnswer:"
//   ceval      CSV with a header naming question, A, B, C, D, answer (C-Eval; CMMLU's
//              Question/Answer too); prompt "question\nA. ..\nB. ..\nC. ..\nD. ..\n答案：",
//              choices "A".."D"
//   text       a .txt file (one document) or JSON lines {"text"}: rolling log-likelihood
// A malformed file is a UserError "file:line: what was expected".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xlhost::core {

struct ChoiceItem {
  std::string context;               // what lm-eval's doc_to_text gives
  std::vector<std::string> choices;  // each scored as " " + choice after the context
  int64_t gold = 0;
  std::string group;
};

struct TaskFile {
  std::string path, format, checksum;
  bool rolling = false;              // texts to score, not choices
  std::vector<ChoiceItem> items;     // scored
  std::vector<ChoiceItem> fewshot;   // the few-shot pool
  std::vector<std::string> texts;    // rolling: the documents
};

TaskFile read_task_file(const std::string& path, const std::string& format = "auto");

// The context of `item` after `shots` answered examples, laid out as lm-eval does:
// "<shot context> <shot gold choice>\n\n" for each, then the item's context.
std::string fewshot_context(const ChoiceItem& item, const std::vector<const ChoiceItem*>& shots);

// The fields of one CSV record (RFC 4180: quoted fields may hold commas, newlines and "").
// `line` counts the physical lines read, for errors.
bool read_csv_record(std::istream& in, std::vector<std::string>& fields, int64_t& line);

}  // namespace xlhost::core
