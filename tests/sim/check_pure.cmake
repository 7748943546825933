# Fails if consensus/ uses anything beyond the standard library and Abseil, or reaches for I/O,
# threads, clocks or global randomness (docs/consensus.md, "Purity").
# Usage: cmake -DCONSENSUS_DIR=<dir> -P check_pure.cmake
file(GLOB sources ${CONSENSUS_DIR}/*.h ${CONSENSUS_DIR}/*.cc)
set(banned
  "grpc" "google/protobuf" "boost" "rocksdb" "asio"
  "#include <thread>" "#include <mutex>" "#include <random>" "#include <chrono>"
  "#include <iostream>" "#include <fstream>" "#include <filesystem>"
  "system_clock::now" "steady_clock::now" "high_resolution_clock" "random_device"
  "fopen" "std::cout" "std::cerr" "std::thread" "std::mutex" "absl::Mutex" "absl::Now"
  "getenv" "srand" "rand()" "time(nullptr)"
  "#include \"storage/" "#include \"proto/" "#include \"socketproto/" "#include \"atlasd/"
  "#include \"tests/")
set(failures "")
foreach(f ${sources})
  file(READ ${f} text)
  foreach(word ${banned})
    string(FIND "${text}" "${word}" pos)
    if(NOT pos EQUAL -1)
      list(APPEND failures "${f}: uses banned '${word}'")
    endif()
  endforeach()
endforeach()
list(LENGTH sources n)
if(n EQUAL 0)
  message(FATAL_ERROR "no sources found under ${CONSENSUS_DIR}")
endif()
if(failures)
  string(REPLACE ";" "\n" msg "${failures}")
  message(FATAL_ERROR "consensus/ must stay pure:\n${msg}")
endif()
message(STATUS "consensus/ is pure (${n} files checked)")
