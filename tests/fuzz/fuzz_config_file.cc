// libFuzzer target: the config file parser (atlasd/config.h, ParseConfig with --config). An
// operator's typo must give an InvalidArgument naming the setting, never a crash or an uncaught
// exception. Input: byte 0 selects extra command-line flags (flags override the file), the rest
// is the file. Checks beyond "no crash": a parsed config has the invariants the daemon relies on.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "atlasd/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const std::string path = "/tmp/atlas-fuzz-config-" + std::to_string(getpid()) + ".toml";
  FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return 0;
  std::fwrite(data + 1, 1, size - 1, file);
  std::fclose(file);

  std::vector<std::string> args = {"atlasd", "--config", path};
  switch (data[0] % 4) {
    case 1: args.insert(args.end(), {"--fn", "1"}); break;
    case 2: args.insert(args.end(), {"--data-dir", "/tmp/x", "--log-level", "debug"}); break;
    case 3: args.insert(args.end(), {"--region", "z9", "--io-threads", "3"}); break;
    default: break;
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  auto config = atlas::ParseConfig(static_cast<int>(argv.size()), argv.data());
  if (!config.ok()) {
    if (config.status().message().empty()) std::abort();  // Errors must say what is wrong.
    return 0;
  }
  if (config->data_dir.empty() || config->socket.empty()) std::abort();
  if (config->fn < 0 || config->fz < 0 || config->io_threads < 1) std::abort();
  if (config->max_line_bytes < 1024 || config->max_inflight_per_conn == 0) std::abort();
  if (config->socket_mode_bits > 07777) std::abort();
  return 0;
}
