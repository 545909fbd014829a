#include "xlhost/core/experiments/run_notes.hpp"

#include <rapidjson/document.h>

#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/json_writer.hpp"
#include "xlhost/core/util/printable_text.hpp"

namespace xlhost::core {

RunNotes parse_run_notes(const std::string& json) {
  rapidjson::Document doc;
  if (const auto problem = parse_json_into(doc, json)) throw UserError("notes: not valid JSON (" + problem.reason + ")");
  const JsonFields fields(doc, "notes");
  RunNotes notes;
  for (const auto& tag : fields.array("tags").GetArray()) {
    if (!tag.IsString() || tag.GetStringLength() == 0 || tag.GetStringLength() > kMaxTagBytes)
      throw UserError("notes: a tag is " + describe_json(tag) + ", expected a string of 1 to " + std::to_string(kMaxTagBytes) +
                      " bytes");
    notes.tags.emplace_back(tag.GetString(), tag.GetStringLength());
  }
  if (notes.tags.size() > kMaxTags) throw UserError("notes: at most " + std::to_string(kMaxTags) + " tags");
  notes.note = fields.string("note");
  if (notes.note.size() > kMaxNoteBytes) throw UserError("notes: the note is longer than 64 KiB");
  for (const auto& text : notes.tags)
    if (first_invalid_utf8(text) != std::string::npos) throw UserError("notes: a tag is not UTF-8 text");
  if (first_invalid_utf8(notes.note) != std::string::npos) throw UserError("notes: the note is not UTF-8 text");
  return notes;
}

RunNotes read_run_notes(const RunDirectory& run) {
  try {
    const auto text = run.read(run.notes(), "notes", kMaxNoteBytes * 2);
    return text ? parse_run_notes(*text) : RunNotes{};
  } catch (const UserError&) {  // mangled by hand: shown as none, replaced by the next save
    return {};
  }
}

void write_run_notes(const RunDirectory& run, const RunNotes& notes) {
  const auto json = write_json([&](JsonWriter& w) {
    w.StartObject();
    w.Key("tags"), w.StartArray();
    for (const auto& tag : notes.tags) w.String(tag.c_str(), static_cast<rapidjson::SizeType>(tag.size()));
    w.EndArray();
    write_string(w, "note", notes.note);
    w.EndObject();
  });
  write_file_atomically(run.notes().string(), json + "\n");
}

}  // namespace xlhost::core
