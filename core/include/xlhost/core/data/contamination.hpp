// Contamination of benchmark items: does text a model has seen (its training data, the
// text its memory was initialised from) contain an item word for word? An item is
// contaminated when one of its 13-word sequences appears in the text (lm-eval's
// decontamination n), or, for an item of fewer than 13 words, the whole item does: a
// synthetic fact is 6 words and a text-initialised memory may hold it verbatim.
// Words are runs of ASCII letters and digits, lower-cased, and each non-ASCII character on
// its own (so 13 Chinese characters make a 13-gram); n-grams do not cross documents.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace xlhost::core {

constexpr int kContaminationWords = 13;

class NgramOverlap {
 public:
  explicit NgramOverlap(const std::vector<std::string>& items, int n = kContaminationWords);
  void scan(const std::string& document);   // marks the items whose n-gram appears in it
  const std::vector<bool>& hits() const { return hits_; }
  int64_t count() const;

 private:
  // word-sequence length → hash of an item's n-gram → the items that have it
  std::unordered_map<size_t, std::unordered_map<uint64_t, std::vector<size_t>>> grams_;
  std::vector<bool> hits_;
};

// The documents of a data file: JSON lines' "text", or a conversation's contents joined,
// or each line of a plain text file (a knowledge file). UserError naming file and line.
void for_each_document(const std::string& path, const std::function<void(const std::string&)>& on_document);

}  // namespace xlhost::core
