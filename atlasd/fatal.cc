#include "atlasd/fatal.h"

#include <cstdio>
#include <cstdlib>

#include "spdlog/spdlog.h"

namespace atlas {

void Fatal(std::string_view what) {
  spdlog::critical("FATAL: {}", what);
  spdlog::default_logger()->flush();
  std::fprintf(stderr, "FATAL: %.*s\n", static_cast<int>(what.size()), what.data());
  std::fflush(stderr);
  std::abort();
}

}  // namespace atlas
