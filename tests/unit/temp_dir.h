// A temporary directory removed at scope exit, for tests that use real RocksDB.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace atlas::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "atlas-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace atlas::testing
