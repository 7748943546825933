// Process-wide log setup: readable text (default) or one JSON object per line.
#pragma once

#include <string>

namespace atlas {

void SetupLogging(const std::string& level, const std::string& format);

}  // namespace atlas
