// Escaping for reports. Everything that comes from a result document (plan
// names, axis values, error messages, facts) is hostile input wherever it
// lands: HTML markup, a Markdown table cell, a terminal line.
#pragma once

#include <string>
#include <string_view>

namespace vmlat::report {

// & < > " ' as entities: safe in element content and quoted attributes.
std::string html_escape(std::string_view text);

// One Markdown table cell / inline text: HTML-significant characters as
// entities (GitHub renders inline HTML), Markdown punctuation backslashed,
// '|' escaped, newlines and other control characters turned into spaces.
std::string markdown_escape(std::string_view text);

// One line of terminal text: control characters (newline, ESC, ...) become
// '?', so a value can neither fake another line nor drive the terminal.
std::string line_safe(std::string_view text);

}  // namespace vmlat::report
