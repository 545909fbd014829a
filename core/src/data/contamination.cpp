#include "xlhost/core/data/contamination.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <fstream>

#include "xlhost/core/data/json_lines.hpp"
#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

namespace {

constexpr uint64_t kMultiplier = 0x100000001b3ULL;

uint64_t word_hash(const std::string& word) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  for (unsigned char c : word) h = (h ^ c) * kMultiplier;
  return h | 1;
}

std::vector<uint64_t> word_hashes(const std::string& text) {
  std::vector<uint64_t> words;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) words.push_back(word_hash(word)), word.clear();
  };
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {  // one UTF-8 character is one word
      flush();
      size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      words.push_back(word_hash(text.substr(i, length)));
      i += length;
    } else if (std::isalnum(c)) {
      word += static_cast<char>(std::tolower(c));
      ++i;
    } else {
      flush();
      ++i;
    }
  }
  flush();
  return words;
}

// Polynomial hash of words[first, first + n).
uint64_t gram_hash(const std::vector<uint64_t>& words, size_t first, size_t n) {
  uint64_t h = 0;
  for (size_t i = first; i < first + n; ++i) h = h * kMultiplier + words[i];
  return h;
}

}  // namespace

NgramOverlap::NgramOverlap(const std::vector<std::string>& items, int n) : hits_(items.size(), false) {
  for (size_t i = 0; i < items.size(); ++i) {
    const auto words = word_hashes(items[i]);
    if (words.empty()) continue;
    const size_t length = std::min(words.size(), static_cast<size_t>(n));
    for (size_t first = 0; first + length <= words.size(); ++first) grams_[length][gram_hash(words, first, length)].push_back(i);
  }
}

void NgramOverlap::scan(const std::string& document) {
  const auto words = word_hashes(document);
  for (const auto& [length, grams] : grams_) {
    if (words.size() < length) continue;
    uint64_t power = 1;  // kMultiplier^(length-1): what the word leaving the window contributed
    for (size_t i = 1; i < length; ++i) power *= kMultiplier;
    uint64_t h = gram_hash(words, 0, length);
    for (size_t first = 0;; ++first) {
      if (const auto it = grams.find(h); it != grams.end())
        for (size_t item : it->second) hits_[item] = true;
      if (first + length >= words.size()) break;
      h = (h - words[first] * power) * kMultiplier + words[first + length];
    }
  }
}

int64_t NgramOverlap::count() const { return static_cast<int64_t>(std::count(hits_.begin(), hits_.end(), true)); }

void for_each_document(const std::string& path, const std::function<void(const std::string&)>& on_document) {
  const bool json_lines = path.size() >= 6 && path.substr(path.size() - 6) == ".jsonl";
  if (!json_lines) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw UserError(path + ": cannot open");
    for (std::string line; std::getline(in, line);) on_document(line);
    return;
  }
  std::string text;
  read_json_objects(path, false, [&](const rapidjson::Value& line) -> std::string {
    if (line.HasMember("conversations") && line["conversations"].IsArray()) {
      text.clear();
      for (const auto& turn : line["conversations"].GetArray())
        if (turn.IsObject() && turn.HasMember("content") && turn["content"].IsString())
          text.append(turn["content"].GetString(), turn["content"].GetStringLength()).append("\n");
      on_document(text);
      return "";
    }
    auto problem = read_text_field(line, text);
    if (problem.empty()) on_document(text);
    return problem;
  });
}

}  // namespace xlhost::core
