// Small text helpers for messages.
#pragma once
#include <string>
#include <string_view>

namespace cf {

// `text` as one line: trailing newlines and spaces dropped, every other
// newline turned into a space. For text from elsewhere (a helper's stderr,
// a library's error buffer, a multi-line message) that ends up inside one
// `childflow: error: ...` line.
std::string one_line(std::string_view text);

// How a failed TCP connect is worded in the flow log and the summary, the
// same for the engine's flows and the rootful relay's ("connection
// refused", "timed out", ...; strerror for the rest).
const char* connect_error_text(int err);

}  // namespace cf
