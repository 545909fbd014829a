#pragma once

#include <string>

namespace xlhost::core {

// Generated text for logs, samples.txt and report.md. A byte-level model emits any byte
// sequence; written raw, a stray byte makes the log "binary" to grep and breaks markdown
// viewers, and a newline splits one sample over lines. Valid UTF-8 passes through; each
// byte of an invalid sequence becomes U+FFFD; \n, \r and \t become those two-character
// escapes and other control bytes \xNN.
std::string printable_text(const std::string& bytes);

// The offset of the first byte that begins no well-formed UTF-8 sequence; npos when the
// whole text is valid UTF-8.
size_t first_invalid_utf8(const std::string& text);

}  // namespace xlhost::core
