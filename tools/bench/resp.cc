#include "tools/bench/resp.h"

#include <charconv>

namespace atlas::bench::resp {
namespace {

// Nesting and sizes a sane server never exceeds; beyond them the input is called invalid
// rather than allocating what a corrupt length asks for.
constexpr int kMaxDepth = 32;
constexpr int64_t kMaxBulk = int64_t{512} << 20;  // Redis's own proto-max-bulk-len
constexpr int64_t kMaxElements = int64_t{1} << 24;

void AppendDecimal(std::string* out, size_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out->append(buf, end);
}

// The line at `pos` without its CRLF; false if no complete line yet.
bool Line(std::string_view in, size_t pos, std::string_view* line, size_t* next) {
  size_t cr = in.find("\r\n", pos);
  if (cr == std::string_view::npos) return false;
  *line = in.substr(pos, cr - pos);
  *next = cr + 2;
  return true;
}

bool ToInt(std::string_view s, int64_t* v) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && ptr == s.data() + s.size();
}

ParseResult ParseAt(std::string_view in, size_t* pos, Reply* r, int depth) {
  if (depth > kMaxDepth) return ParseResult::kInvalid;
  if (*pos >= in.size()) return ParseResult::kIncomplete;
  char type = in[*pos];
  std::string_view line;
  size_t next;
  if (!Line(in, *pos + 1, &line, &next)) {
    // A line longer than any length prefix or status could be is garbage, not a slow server.
    return in.size() - *pos > (size_t{64} << 20) ? ParseResult::kInvalid : ParseResult::kIncomplete;
  }
  switch (type) {
    case '+':
      r->type = Reply::Type::kSimple;
      r->text.assign(line);
      *pos = next;
      return ParseResult::kOk;
    case '-':
      r->type = Reply::Type::kError;
      r->text.assign(line);
      *pos = next;
      return ParseResult::kOk;
    case ':':
      r->type = Reply::Type::kInteger;
      if (!ToInt(line, &r->integer)) return ParseResult::kInvalid;
      *pos = next;
      return ParseResult::kOk;
    case '$': {
      int64_t len;
      if (!ToInt(line, &len) || len < -1 || len > kMaxBulk) return ParseResult::kInvalid;
      if (len == -1) {
        r->type = Reply::Type::kNull;
        *pos = next;
        return ParseResult::kOk;
      }
      auto n = static_cast<size_t>(len);
      if (in.size() < next + n + 2) return ParseResult::kIncomplete;
      if (in.substr(next + n, 2) != "\r\n") return ParseResult::kInvalid;
      r->type = Reply::Type::kBulk;
      r->text.assign(in.substr(next, n));
      *pos = next + n + 2;
      return ParseResult::kOk;
    }
    case '*': {
      int64_t count;
      if (!ToInt(line, &count) || count < -1 || count > kMaxElements) {
        return ParseResult::kInvalid;
      }
      if (count == -1) {
        r->type = Reply::Type::kNull;
        *pos = next;
        return ParseResult::kOk;
      }
      r->type = Reply::Type::kArray;
      r->elements.clear();
      size_t p = next;
      for (int64_t i = 0; i < count; ++i) {
        Reply e;
        if (ParseResult res = ParseAt(in, &p, &e, depth + 1); res != ParseResult::kOk) return res;
        r->elements.push_back(std::move(e));
      }
      *pos = p;
      return ParseResult::kOk;
    }
    default:
      return ParseResult::kInvalid;
  }
}

}  // namespace

void AppendCommand(std::string* out, std::initializer_list<std::string_view> args) {
  out->push_back('*');
  AppendDecimal(out, args.size());
  out->append("\r\n");
  for (std::string_view a : args) {
    out->push_back('$');
    AppendDecimal(out, a.size());
    out->append("\r\n");
    out->append(a);
    out->append("\r\n");
  }
}

ParseResult Parse(std::string_view in, Reply* reply, size_t* consumed) {
  size_t pos = 0;
  ParseResult r = ParseAt(in, &pos, reply, 0);
  if (r == ParseResult::kOk) *consumed = pos;
  return r;
}

}  // namespace atlas::bench::resp
