// What the client prints to a person's terminal: stored data may hold escape sequences (move the
// cursor, rewrite the screen, set the window title, ...) that a terminal would obey. On a
// terminal they are shown escaped instead; scripts (stdout not a terminal) get the exact bytes.
#pragma once

#include <string>
#include <string_view>

namespace atlas::client {

// `text` with every control character (C0, DEL, C1), Unicode format character that reorders
// or hides text (bidi controls, zero-width characters) and invalid UTF-8 byte replaced by a
// visible escape (\x1b, \u202e).
std::string ForTerminal(std::string_view text);

// True when stdout is a terminal (then print through ForTerminal).
bool StdoutIsTerminal();

}  // namespace atlas::client
