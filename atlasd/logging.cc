#include "atlasd/logging.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>

#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace atlas {
namespace {

std::atomic<uint64_t> log_node{0};
// The fields of the LogEvent being logged on this thread. spdlog's synchronous logger formats
// on the calling thread, inside the log call, so the flags below see them.
thread_local std::initializer_list<LogField>* current_fields = nullptr;

void AppendJsonEscaped(std::string_view text, spdlog::memory_buf_t& dest) {
  for (char c : text) {
    switch (c) {
      case '"': dest.append(std::string_view("\\\"")); break;
      case '\\': dest.append(std::string_view("\\\\")); break;
      case '\n': dest.append(std::string_view("\\n")); break;
      case '\r': dest.append(std::string_view("\\r")); break;
      case '\t': dest.append(std::string_view("\\t")); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          dest.append(std::string_view(buf));
        } else {
          dest.push_back(c);
        }
    }
  }
}

// %j: the message, escaped as a JSON string body.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    AppendJsonEscaped(std::string_view(msg.payload.data(), msg.payload.size()), dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

// %N: the node id, when known (" n3" in text, ,"node":3 in JSON).
class NodeFlag : public spdlog::custom_flag_formatter {
 public:
  explicit NodeFlag(bool json) : json_(json) {}
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    uint64_t node = log_node.load(std::memory_order_relaxed);
    if (node == 0) return;
    dest.append(std::string_view(json_ ? ",\"node\":" : " n"));
    dest.append(std::to_string(node));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<NodeFlag>(json_);
  }

 private:
  bool json_;
};

// %F: the current LogEvent's fields (" key=value" in text, ,"key":"value" in JSON).
class FieldsFlag : public spdlog::custom_flag_formatter {
 public:
  explicit FieldsFlag(bool json) : json_(json) {}
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    if (current_fields == nullptr) return;
    for (const LogField& f : *current_fields) {
      if (json_) {
        dest.append(std::string_view(",\""));
        dest.append(f.key);
        dest.append(std::string_view("\":\""));
        AppendJsonEscaped(f.value, dest);
        dest.push_back('"');
        continue;
      }
      dest.push_back(' ');
      dest.append(f.key);
      dest.push_back('=');
      const bool quote = f.value.empty() || f.value.find_first_of(" \"=") != std::string::npos;
      if (quote) dest.push_back('"');
      for (char c : f.value) {
        if (c == '"' || c == '\\') dest.push_back('\\');
        dest.push_back(c);
      }
      if (quote) dest.push_back('"');
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<FieldsFlag>(json_);
  }

 private:
  bool json_;
};

class SpdlogRocksLogger : public rocksdb::Logger {
 public:
  SpdlogRocksLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::WARN_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel() || level == rocksdb::InfoLogLevel::HEADER_LEVEL) return;
    char buf[1024];
    std::vsnprintf(buf, sizeof buf, format, ap);
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL) {
      spdlog::error("rocksdb: {}", buf);
    } else {
      spdlog::warn("rocksdb: {}", buf);
    }
  }
};

}  // namespace

std::shared_ptr<rocksdb::Logger> RocksDbLogger() { return std::make_shared<SpdlogRocksLogger>(); }

void SetLogNode(uint64_t node) { log_node.store(node, std::memory_order_relaxed); }

void LogEvent(spdlog::level::level_enum level, std::string_view msg,
              std::initializer_list<LogField> fields) {
  if (!spdlog::should_log(level)) return;
  current_fields = &fields;
  spdlog::log(level, "{}", msg);
  current_fields = nullptr;
}

void SetupLogging(const std::string& level, const std::string& format, spdlog::sink_ptr sink) {
  std::shared_ptr<spdlog::logger> logger;
  if (sink) {
    logger = std::make_shared<spdlog::logger>("atlasd", sink);
  } else {
    spdlog::drop("atlasd");
    logger = spdlog::stderr_logger_mt("atlasd");
  }
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  auto formatter = std::make_unique<spdlog::pattern_formatter>(
      format == "json" ? spdlog::pattern_time_type::utc : spdlog::pattern_time_type::local);
  const bool json = format == "json";
  formatter->add_flag<NodeFlag>('N', json).add_flag<FieldsFlag>('F', json);
  if (json) {
    formatter->add_flag<JsonMessageFlag>('j').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l"%N,"msg":"%j"%F})");
  } else {
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%e %L atlasd%N: %v%F");
  }
  spdlog::set_formatter(std::move(formatter));
  spdlog::flush_on(spdlog::level::info);
}

}  // namespace atlas
