#include "xlhost/core/data/bpe_tokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <queue>

#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

namespace {

std::string utf8_of(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12)), s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18)), s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others
// (control characters, space, ...) for 256, 257, ... in byte order.
const std::array<std::string, 256>& byte_level_table() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = utf8_of(printable ? b : next++);
    }
    return t;
  }();
  return table;
}

const std::unordered_map<std::string, uint8_t>& byte_level_inverse() {
  static const std::unordered_map<std::string, uint8_t> inverse = [] {
    std::unordered_map<std::string, uint8_t> m;
    for (int b = 0; b < 256; ++b) m[byte_level_table()[b]] = static_cast<uint8_t>(b);
    return m;
  }();
  return inverse;
}

size_t utf8_length(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

// The raw bytes a vocabulary token stands for: each byte-level character mapped back; a
// token with any other character is its own UTF-8 (as the ByteLevel decoder does).
std::string token_to_bytes(const std::string& token) {
  std::string bytes;
  const auto& inverse = byte_level_inverse();
  for (size_t i = 0; i < token.size();) {
    const size_t n = std::min(utf8_length(static_cast<unsigned char>(token[i])), token.size() - i);
    auto it = inverse.find(token.substr(i, n));
    if (it == inverse.end()) return token;
    bytes += static_cast<char>(it->second);
    i += n;
  }
  return bytes;
}

// Oniguruma's \s (Unicode White_Space), which `tokenizers` uses; PCRE2's \s lacks U+0085.
constexpr const char* kSpace = R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

std::string gpt2_pattern() {
  const std::string s = kSpace;
  return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^)" + s + R"(\p{L}\p{N}]+|[)" + s + "]+(?![^" + s + "])|[" + s +
         "]+";
}


}  // namespace

const std::string& byte_level_char(uint8_t byte) { return byte_level_table()[byte]; }

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte (no overlongs, surrogates or > U+10FFFF)
    if (c < 0x80) n = 1;
    else if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    size_t valid = n ? 1 : 0;
    while (valid > 0 && valid < n && i + valid < s.size()) {
      const auto b = static_cast<unsigned char>(s[i + valid]);
      if (b < (valid == 1 ? lo : 0x80) || b > (valid == 1 ? hi : 0xBF)) break;
      ++valid;
    }
    if (n && valid == n) {
      out.append(s.substr(i, n));
      i += n;
    } else {  // one replacement character per maximal invalid subpart
      out += "\xEF\xBF\xBD";
      i += std::max<size_t>(valid, 1);
    }
  }
  return out;
}

// ---- pre-tokenisation ----

struct TextSplitter::Regex {
  pcre2_code* code = nullptr;
  explicit Regex(const std::string& pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &error,
                         &offset, nullptr);
    if (!code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      throw UserError("pre-tokenizer pattern /" + pattern + "/ does not compile at offset " + std::to_string(offset) +
                      ": " + reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter where JIT is unavailable
  }
  ~Regex() { pcre2_code_free(code); }

  // Calls on_piece for the text between matches and for each match (tokenizers' "Isolated").
  void isolate(std::string_view text, const std::function<void(std::string_view)>& on_piece) const {
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
        pcre2_match_data_create_from_pattern(code, nullptr), pcre2_match_data_free);
    size_t at = 0;
    uint32_t options = 0;
    while (at < text.size()) {
      const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), at, options,
                                 match.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
          throw UserError("text is not valid UTF-8 (at byte " + std::to_string(pcre2_get_startchar(match.get())) + ")");
        throw UserError("pre-tokenizer: regular expression match failed (PCRE2 error " + std::to_string(rc) + ")");
      }
      options = PCRE2_NO_UTF_CHECK;  // checked once for the whole text, not again per match
      const PCRE2_SIZE* range = pcre2_get_ovector_pointer(match.get());
      size_t start = range[0], end = range[1];
      if (end == start) {  // an empty match isolates nothing; step over one character
        at = start + utf8_length(static_cast<unsigned char>(text[start]));
        continue;
      }
      if (start > at) on_piece(text.substr(at, start - at));
      on_piece(text.substr(start, end - start));
      at = end;
    }
    if (at < text.size()) on_piece(text.substr(at));
  }
};

TextSplitter::TextSplitter(const std::vector<AddedToken>& added, const std::vector<PreTokenizerStep>& steps)
    : added_(added), steps_(steps) {
  std::stable_sort(added_.begin(), added_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  for (const auto& token : added_)
    if (!token.content.empty()) starts_added_[static_cast<unsigned char>(token.content[0])] = true;
  for (const auto& step : steps_) {
    if (step.kind == PreTokenizerStep::kSplit) regexes_.push_back(std::make_unique<Regex>(step.pattern));
    else if (step.use_regex) regexes_.push_back(std::make_unique<Regex>(gpt2_pattern()));
    else regexes_.push_back(nullptr);
  }
}

TextSplitter::~TextSplitter() = default;

void TextSplitter::split(std::string_view text, const std::function<void(const AddedToken&)>& on_added,
                         const std::function<void(std::string_view)>& on_word) const {
  size_t segment = 0;
  for (size_t i = 0; i < text.size();) {
    const AddedToken* found = nullptr;
    if (starts_added_[static_cast<unsigned char>(text[i])]) {  // leftmost, then longest (added_ is longest first)
      for (const auto& token : added_)
        if (!token.content.empty() && text.compare(i, token.content.size(), token.content) == 0) {
          found = &token;
          break;
        }
    }
    if (!found) {
      ++i;
      continue;
    }
    if (i > segment) pre_tokenize(text.substr(segment, i - segment), on_word);
    on_added(*found);
    i += found->content.size();
    segment = i;
  }
  if (segment < text.size()) pre_tokenize(text.substr(segment), on_word);
}

void TextSplitter::pre_tokenize(std::string_view segment, const std::function<void(std::string_view)>& on_word) const {
  // Each step cuts every piece of the previous one; pieces own their text because
  // add_prefix_space makes new strings.
  std::vector<std::string> pieces{std::string(segment)};
  for (size_t s = 0; s < steps_.size(); ++s) {
    std::vector<std::string> next;
    for (auto& piece : pieces) {
      if (steps_[s].kind == PreTokenizerStep::kByteLevel && steps_[s].add_prefix_space && piece[0] != ' ')
        piece.insert(piece.begin(), ' ');
      if (regexes_[s]) regexes_[s]->isolate(piece, [&](std::string_view p) { next.emplace_back(p); });
      else next.push_back(std::move(piece));
    }
    pieces = std::move(next);
  }
  for (const auto& piece : pieces) on_word(piece);
}

// ---- byte-pair encoding ----

BpeTokenizer::BpeTokenizer(BpeDefinition definition, std::string fingerprint)
    : definition_(std::move(definition)),
      fingerprint_(std::move(fingerprint)),
      splitter_(definition_.added, definition_.pre_tokenizer) {
  const auto& vocab = definition_.vocab;
  std::unordered_map<std::string, int32_t> ids;
  for (size_t id = 0; id < vocab.size(); ++id)
    if (!vocab[id].empty()) ids.emplace(vocab[id], static_cast<int32_t>(id));
  for (int b = 0; b < 256; ++b) {
    auto it = ids.find(byte_level_char(static_cast<uint8_t>(b)));
    byte_ids_[b] = it == ids.end() ? -1 : it->second;
  }
  for (size_t rank = 0; rank < definition_.merges.size(); ++rank) {
    const auto [a, b] = definition_.merges[rank];
    auto merged = ids.find(vocab[a] + vocab[b]);
    if (merged == ids.end())
      throw UserError("merge " + std::to_string(rank) + " (\"" + vocab[a] + "\" \"" + vocab[b] +
                      "\") makes a token that is not in the vocabulary");
    merges_.emplace(bpe_pair_key(a, b), std::make_pair(static_cast<int32_t>(rank), merged->second));
  }
  if (definition_.ignore_merges) word_ids_ = std::move(ids);
  bytes_.resize(vocab.size());
  special_.assign(vocab.size(), false);
  for (size_t id = 0; id < vocab.size(); ++id) bytes_[id] = token_to_bytes(vocab[id]);
  for (const auto& t : definition_.added) {
    bytes_[t.id] = t.content;
    special_[t.id] = t.special;
  }
  auto id_of = [&](const std::string& content, const char* role) -> int64_t {
    const int64_t id = special_id(content);
    if (id < 0)
      throw UserError("the tokenizer's " + std::string(role) + " token \"" + content + "\" is not one of its added tokens");
    return id;
  };
  bos_ = id_of(definition_.bos, "bos"), eos_ = id_of(definition_.eos, "eos"), pad_ = id_of(definition_.pad, "pad");
}

int64_t BpeTokenizer::special_id(const std::string& content) const {
  for (const auto& t : definition_.added)
    if (t.content == content) return t.id;
  return -1;
}

std::string BpeTokenizer::token_bytes(int64_t id) const {
  return id >= 0 && id < vocab_size() ? bytes_[static_cast<size_t>(id)] : std::string();
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int64_t>& out) const {
  if (definition_.ignore_merges) {
    std::string chars;
    for (unsigned char c : word) chars += byte_level_char(c);
    if (auto it = word_ids_.find(chars); it != word_ids_.end()) return out.push_back(it->second);
  }
  struct Symbol {
    int32_t id;
    int32_t prev, next;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (unsigned char c : word) {
    if (byte_ids_[c] < 0) continue;  // a byte missing from the vocabulary is dropped, as tokenizers does without unk
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({byte_ids_[c], n - 1, n + 1});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;
  // tokenizers' order: the lowest rank first, the leftmost among equal ranks. A queued
  // merge whose symbols have changed since is skipped when it comes up.
  struct Candidate {
    int32_t rank, pos, merged;
    bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate> queue;
  auto consider = [&](int32_t pos) {
    if (pos < 0 || symbols[pos].next < 0) return;
    auto it = merges_.find(bpe_pair_key(symbols[pos].id, symbols[symbols[pos].next].id));
    if (it != merges_.end()) queue.push({it->second.first, pos, it->second.second});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.id < 0 || left.next < 0) continue;
    auto it = merges_.find(bpe_pair_key(left.id, symbols[left.next].id));
    if (it == merges_.end() || it->second.second != top.merged) continue;
    Symbol& right = symbols[left.next];
    left.id = top.merged;
    right.id = -1;  // removed
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    consider(left.prev);
    consider(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

std::vector<int64_t> BpeTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  splitter_.split(
      text, [&](const AddedToken& t) { ids.push_back(t.id); }, [&](std::string_view word) { encode_word(word, ids); });
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string bytes;
  for (int64_t id : ids)
    if (id >= 0 && id < vocab_size() && !special_[static_cast<size_t>(id)]) bytes += bytes_[static_cast<size_t>(id)];
  return utf8_lossy(bytes);
}

}  // namespace xlhost::core
