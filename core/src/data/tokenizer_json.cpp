#include "xlhost/core/data/tokenizer_json.hpp"

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <filesystem>

#include "xlhost/core/util/checksum.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

const char* const kChatMlTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

namespace {

std::string str(const rapidjson::Value& v) { return {v.GetString(), v.GetStringLength()}; }

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void refuse(const std::string& field, const rapidjson::Value& value, const std::string& supported) const {
    throw UserError(path_ + ": " + field + " is " + describe_json(value) + ", which xlhost does not support (supported: " +
                    supported + ")");
  }
  const rapidjson::Value* member(const rapidjson::Value& object, const char* key) const {
    auto it = object.FindMember(key);
    return it == object.MemberEnd() ? nullptr : &it->value;
  }
  // A field that must be absent, null or equal to `allowed` (as JSON text: "false", "\"\"").
  void require_default(const rapidjson::Value& object, const std::string& where, const char* key,
                       const std::vector<std::string>& allowed) const {
    const auto* v = member(object, key);
    if (!v || v->IsNull()) return;
    for (const auto& a : allowed)
      if ((a == "false" && v->IsBool() && !v->GetBool()) || (a == "true" && v->IsBool() && v->GetBool()) ||
          (a == "\"\"" && v->IsString() && v->GetStringLength() == 0))
        return;
    refuse(where + "." + key, *v, "null" + (allowed.empty() ? "" : " or " + allowed.front()));
  }
  const std::string& path() const { return path_; }
  // A field this loader does not know could change ids: refused rather than ignored.
  void require_known(const rapidjson::Value& object, const std::string& where,
                     std::initializer_list<const char*> known) const {
    for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
      const std::string key = str(it->name);
      if (std::none_of(known.begin(), known.end(), [&](const char* k) { return key == k; }))
        throw UserError(path_ + ": " + where + (where.empty() ? "" : ".") + key +
                        " is a field xlhost does not know, so it cannot promise the ids of `tokenizers`");
    }
  }

  std::vector<PreTokenizerStep> pre_tokenizer(const rapidjson::Value& v, const std::string& where) const {
    if (!v.IsObject() || !member(v, "type") || !(*member(v, "type")).IsString())
      refuse(where, v, "ByteLevel, Split, or a Sequence of them");
    const std::string type = str(v["type"]);
    if (type == "Sequence") {
      const auto* parts = member(v, "pretokenizers");
      if (!parts || !parts->IsArray()) refuse(where + ".pretokenizers", parts ? *parts : v, "an array");
      std::vector<PreTokenizerStep> steps;
      for (rapidjson::SizeType i = 0; i < parts->Size(); ++i) {
        for (auto& s : pre_tokenizer((*parts)[i], where + ".pretokenizers[" + std::to_string(i) + "]")) {
          if (!steps.empty() && steps.back().kind == PreTokenizerStep::kByteLevel && s.kind == PreTokenizerStep::kSplit)
            refuse(where + ".pretokenizers[" + std::to_string(i) + "]", (*parts)[i], "Split before ByteLevel, not after");
          steps.push_back(s);
        }
      }
      return steps;
    }
    PreTokenizerStep step;
    if (type == "ByteLevel") {
      require_known(v, where, {"type", "add_prefix_space", "trim_offsets", "use_regex"});
      if (const auto* a = member(v, "add_prefix_space"); a && a->IsBool()) step.add_prefix_space = a->GetBool();
      if (const auto* r = member(v, "use_regex"); r && r->IsBool()) step.use_regex = r->GetBool();
      return {step};
    }
    if (type == "Split") {
      require_known(v, where, {"type", "pattern", "behavior", "invert"});
      step.kind = PreTokenizerStep::kSplit;
      const auto* pattern = member(v, "pattern");
      if (pattern && pattern->IsObject() && member(*pattern, "Regex") && (*pattern)["Regex"].IsString()) {
        step.pattern = str((*pattern)["Regex"]);
      } else if (pattern && pattern->IsObject() && member(*pattern, "String") && (*pattern)["String"].IsString()) {
        step.pattern = "\\Q" + str((*pattern)["String"]) + "\\E";
      } else {
        refuse(where + ".pattern", pattern ? *pattern : v, "{\"Regex\": ...} or {\"String\": ...}");
      }
      const auto* behavior = member(v, "behavior");
      if (!behavior || !behavior->IsString() || str(*behavior) != "Isolated")
        refuse(where + ".behavior", behavior ? *behavior : v, "\"Isolated\"");
      require_default(v, where, "invert", {"false"});
      return {step};
    }
    refuse(where + ".type", v["type"], "ByteLevel, Split, Sequence");
  }

  // post_processor: only kinds that leave the ids alone.
  void post_processor(const rapidjson::Value& v, const std::string& where) const {
    if (v.IsNull()) return;
    const auto* type = v.IsObject() ? member(v, "type") : nullptr;
    if (type && type->IsString() && str(*type) == "ByteLevel") return;
    if (type && type->IsString() && str(*type) == "Sequence" && member(v, "processors") && v["processors"].IsArray()) {
      for (rapidjson::SizeType i = 0; i < v["processors"].Size(); ++i)
        post_processor(v["processors"][i], where + ".processors[" + std::to_string(i) + "]");
      return;
    }
    refuse(where + (type ? ".type" : ""), type ? *type : v, "null or ByteLevel: other post-processors add ids");
  }

 private:
  std::string path_;
};

// bos/eos/pad and the chat template from tokenizer_config.json beside tokenizer.json;
// `<|endoftext|>` for any it does not name.
void read_config_beside(const std::string& tokenizer_path, BpeDefinition& d) {
  d.bos = d.eos = d.pad = "<|endoftext|>";
  const fs::path config_path = fs::path(tokenizer_path).parent_path() / "tokenizer_config.json";
  if (!fs::exists(config_path)) return;
  const auto doc = parse_json(read_text_file(config_path.string(), "tokenizer config"), config_path.string());
  if (!doc.IsObject()) throw UserError(config_path.string() + ": expected a JSON object");
  auto name = [&](const char* key, std::string& out) {
    auto it = doc.FindMember(key);
    if (it == doc.MemberEnd() || it->value.IsNull()) return;
    const auto& v = it->value;
    if (v.IsString()) out = str(v);
    else if (v.IsObject() && v.HasMember("content") && v["content"].IsString()) out = str(v["content"]);
    else throw UserError(config_path.string() + ": " + key + " is " + describe_json(v) + ", expected a token string");
  };
  name("bos_token", d.bos), name("eos_token", d.eos), name("pad_token", d.pad);
  auto t = doc.FindMember("chat_template");
  if (t != doc.MemberEnd() && t->value.IsString()) {
    const std::string tpl = str(t->value);
    d.chatml = tpl.find("<|im_start|>") != std::string::npos && tpl.find("<|im_end|>") != std::string::npos;
  }
}

}  // namespace

std::unique_ptr<BpeTokenizer> load_tokenizer_json(const std::string& path) {
  const std::string text = read_text_file(path, "tokenizer");
  const auto doc = parse_json(text, path);
  const Reader r(path);
  if (!doc.IsObject()) throw UserError(path + ": expected a JSON object (a Hugging Face tokenizer.json)");
  r.require_known(doc, "", {"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer",
                            "post_processor", "decoder", "model"});
  for (const char* key : {"truncation", "padding", "normalizer"})
    if (const auto* v = r.member(doc, key); v && !v->IsNull()) r.refuse(key, *v, "null");
  if (const auto* v = r.member(doc, "post_processor")) r.post_processor(*v, "post_processor");
  const auto* decoder = r.member(doc, "decoder");
  if (!decoder || !decoder->IsObject() || !r.member(*decoder, "type") || !(*decoder)["type"].IsString() ||
      str((*decoder)["type"]) != "ByteLevel")
    r.refuse("decoder", decoder ? *decoder : doc, "ByteLevel");
  const auto* model = r.member(doc, "model");
  if (!model || !model->IsObject()) throw UserError(path + ": no \"model\" object (not a tokenizer.json?)");
  r.require_known(*model, "model", {"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix",
                                    "fuse_unk", "byte_fallback", "ignore_merges", "vocab", "merges"});
  const auto* type = r.member(*model, "type");
  if (!type || !type->IsString() || str(*type) != "BPE") r.refuse("model.type", type ? *type : *model, "\"BPE\"");
  for (const char* key : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"})
    r.require_default(*model, "model", key, {"\"\""});
  r.require_default(*model, "model", "byte_fallback", {"false"});

  BpeDefinition d;
  if (const auto* v = r.member(*model, "ignore_merges"); v && v->IsBool()) d.ignore_merges = v->GetBool();
  const JsonFields model_fields(*model, path + ": model");
  const auto& vocab = model_fields.object("vocab");
  std::unordered_map<std::string, int32_t> ids;
  constexpr int64_t kMaxId = (1 << 24) - 1;
  auto place = [&](const std::string& token, int64_t id, const std::string& where) {
    if (id < 0 || id > kMaxId) throw UserError(path + ": " + where + ": id " + std::to_string(id) + " out of range");
    if (static_cast<size_t>(id) >= d.vocab.size()) d.vocab.resize(static_cast<size_t>(id) + 1);
    if (!d.vocab[id].empty() && d.vocab[id] != token)
      throw UserError(path + ": " + where + ": id " + std::to_string(id) + " is given to both \"" + d.vocab[id] +
                      "\" and \"" + token + "\"");
    d.vocab[id] = token;
    ids[token] = static_cast<int32_t>(id);
  };
  for (auto it = vocab.MemberBegin(); it != vocab.MemberEnd(); ++it) {
    const std::string token = str(it->name);
    if (!it->value.IsInt64()) throw UserError(path + ": model.vocab[\"" + token + "\"] is " + describe_json(it->value) + ", expected an id");
    if (token.empty()) throw UserError(path + ": model.vocab has an empty token");
    place(token, it->value.GetInt64(), "model.vocab[\"" + token + "\"]");
  }
  if (const auto* unk = r.member(*model, "unk_token"); unk && !unk->IsNull()) {
    for (int b = 0; b < 256; ++b)
      if (!ids.count(byte_level_char(static_cast<uint8_t>(b))))
        r.refuse("model.unk_token", *unk, "null, or a vocabulary that has every byte");
  }
  const auto& merges = model_fields.array("merges");
  for (rapidjson::SizeType i = 0; i < merges.Size(); ++i) {
    const auto& m = merges[i];
    std::string a, b;
    if (m.IsString()) {  // "a b": exactly one space, as tokenizers requires
      const std::string s = str(m);
      const auto space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        throw UserError(path + ": model.merges[" + std::to_string(i) + "] is \"" + s + "\", expected two tokens separated by one space");
      a = s.substr(0, space), b = s.substr(space + 1);
    } else if (m.IsArray() && m.Size() == 2 && m[0].IsString() && m[1].IsString()) {
      a = str(m[0]), b = str(m[1]);
    } else {
      throw UserError(path + ": model.merges[" + std::to_string(i) + "] is " + describe_json(m) +
                      ", expected \"a b\" or [\"a\", \"b\"]");
    }
    auto ia = ids.find(a), ib = ids.find(b);
    if (ia == ids.end() || ib == ids.end())
      throw UserError(path + ": model.merges[" + std::to_string(i) + "]: \"" + (ia == ids.end() ? a : b) +
                      "\" is not in model.vocab");
    d.merges.emplace_back(ia->second, ib->second);
  }
  if (const auto* added = r.member(doc, "added_tokens"); added && !added->IsNull()) {
    if (!added->IsArray()) r.refuse("added_tokens", *added, "an array");
    for (rapidjson::SizeType i = 0; i < added->Size(); ++i) {
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      const JsonFields t((*added)[i], path + ": " + where);
      r.require_known((*added)[i], where, {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"});
      for (const char* key : {"single_word", "lstrip", "rstrip"}) r.require_default((*added)[i], where, key, {"false"});
      AddedToken token{t.string("content"), t.integer("id", 0, kMaxId), true};
      if (token.content.empty()) throw UserError(path + ": " + where + ".content is empty");
      if (t.has("special")) {
        if (!(*added)[i]["special"].IsBool()) r.refuse(where + ".special", (*added)[i]["special"], "true or false");
        token.special = (*added)[i]["special"].GetBool();
      }
      place(token.content, token.id, where);
      d.added.push_back(token);
    }
  }
  const auto* pre = r.member(doc, "pre_tokenizer");
  if (!pre || pre->IsNull()) r.refuse("pre_tokenizer", pre ? *pre : doc, "ByteLevel, or a Sequence with one");
  d.pre_tokenizer = r.pre_tokenizer(*pre, "pre_tokenizer");
  if (d.pre_tokenizer.empty() || d.pre_tokenizer.back().kind != PreTokenizerStep::kByteLevel)
    r.refuse("pre_tokenizer", *pre, "a ByteLevel step (this is a byte-level BPE loader)");
  read_config_beside(path, d);
  try {
    return std::make_unique<BpeTokenizer>(std::move(d), checksum_bytes(text.data(), text.size()));
  } catch (const UserError& e) {
    throw UserError(path + ": " + e.what());
  }
}

namespace {

using Writer = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

void key_string(Writer& w, const char* key, const std::string& value) {
  w.Key(key);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void added_token_fields(Writer& w, const AddedToken& t) {
  for (const char* key : {"single_word", "lstrip", "rstrip", "normalized"}) {
    w.Key(key);
    w.Bool(false);
  }
  w.Key("special");
  w.Bool(t.special);
}

std::string tokenizer_json(const BpeDefinition& d) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.SetIndent(' ', 2);
  w.StartObject();
  key_string(w, "version", "1.0");
  for (const char* key : {"truncation", "padding"}) {
    w.Key(key);
    w.Null();
  }
  w.Key("added_tokens");
  w.StartArray();
  for (const auto& t : d.added) {
    w.StartObject();
    w.Key("id");
    w.Int64(t.id);
    key_string(w, "content", t.content);
    added_token_fields(w, t);
    w.EndObject();
  }
  w.EndArray();
  w.Key("normalizer");
  w.Null();
  auto byte_level = [&](bool add_prefix_space, bool use_regex) {
    w.StartObject();
    key_string(w, "type", "ByteLevel");
    w.Key("add_prefix_space");
    w.Bool(add_prefix_space);
    w.Key("trim_offsets");
    w.Bool(true);
    w.Key("use_regex");
    w.Bool(use_regex);
    w.EndObject();
  };
  w.Key("pre_tokenizer");
  byte_level(d.pre_tokenizer.at(0).add_prefix_space, d.pre_tokenizer.at(0).use_regex);
  w.Key("post_processor");
  w.Null();
  w.Key("decoder");
  byte_level(true, true);
  w.Key("model");
  w.StartObject();
  key_string(w, "type", "BPE");
  for (const char* key : {"dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix"}) {
    w.Key(key);
    w.Null();
  }
  for (const char* key : {"fuse_unk", "byte_fallback"}) {
    w.Key(key);
    w.Bool(false);
  }
  w.Key("ignore_merges");
  w.Bool(d.ignore_merges);
  w.Key("vocab");
  w.StartObject();
  for (size_t id = 0; id < d.vocab.size(); ++id) {
    w.Key(d.vocab[id].data(), static_cast<rapidjson::SizeType>(d.vocab[id].size()));
    w.Int64(static_cast<int64_t>(id));
  }
  w.EndObject();
  w.Key("merges");
  w.StartArray();
  w.SetFormatOptions(rapidjson::kFormatSingleLineArray);
  for (const auto& [a, b] : d.merges) {
    w.StartArray();
    w.String(d.vocab[a].data(), static_cast<rapidjson::SizeType>(d.vocab[a].size()));
    w.String(d.vocab[b].data(), static_cast<rapidjson::SizeType>(d.vocab[b].size()));
    w.EndArray();
  }
  w.EndArray();
  w.EndObject();
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

std::string tokenizer_config_json(const BpeDefinition& d) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.SetIndent(' ', 2);
  w.StartObject();
  for (const char* key : {"add_bos_token", "add_eos_token", "add_prefix_space", "clean_up_tokenization_spaces"}) {
    w.Key(key);
    w.Bool(key == std::string("add_prefix_space") && d.pre_tokenizer.at(0).add_prefix_space);
  }
  w.Key("added_tokens_decoder");
  w.StartObject();
  for (const auto& t : d.added) {
    w.Key(std::to_string(t.id).c_str());
    w.StartObject();
    key_string(w, "content", t.content);
    added_token_fields(w, t);
    w.EndObject();
  }
  w.EndObject();
  key_string(w, "bos_token", d.bos);
  key_string(w, "eos_token", d.eos);
  key_string(w, "pad_token", d.pad);
  key_string(w, "unk_token", d.pad);
  key_string(w, "chat_template", kChatMlTemplate);
  w.Key("model_max_length");
  w.Int64(32768);
  key_string(w, "tokenizer_class", "PreTrainedTokenizerFast");
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

}  // namespace

void write_tokenizer_files(const BpeDefinition& definition, const std::string& directory) {
  if (definition.pre_tokenizer.size() != 1 || definition.pre_tokenizer[0].kind != PreTokenizerStep::kByteLevel)
    throw UserError("write_tokenizer_files: only a single ByteLevel pre-tokenizer is written");
  ensure_directory(directory, "tokenizer output (--out)");
  write_file_atomically((fs::path(directory) / "tokenizer.json").string(), tokenizer_json(definition));
  write_file_atomically((fs::path(directory) / "tokenizer_config.json").string(), tokenizer_config_json(definition));
}

}  // namespace xlhost::core
