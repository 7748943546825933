#include "socketproto/frame_parser.h"

#include <charconv>
#include <vector>

#include "absl/strings/ascii.h"
#include "socketproto/str.h"

namespace atlas::socketproto {

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

std::vector<Token> Tokenize(std::string_view line, size_t max_tokens) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < line.size() && out.size() < max_tokens) {
    while (i < line.size() && IsAsciiSpace(line[i])) ++i;
    if (i == line.size()) break;
    size_t start = i;
    while (i < line.size() && !IsAsciiSpace(line[i])) ++i;
    out.push_back(Token{line.substr(start, i - start), start});
  }
  return out;
}

bool SplitRequestId(std::string_view line, std::optional<std::string>* id, std::string_view* rest,
                    std::string* error) {
  size_t i = 0;
  while (i < line.size() && IsAsciiSpace(line[i])) ++i;
  std::string_view s = line.substr(i);
  if (s.size() < 4 || !EqualsIgnoreCase(s.substr(0, 4), "[ID:")) {
    id->reset();
    *rest = s;
    return true;
  }
  size_t close = s.find(']');
  if (close == std::string_view::npos) {
    *error = "invalid request id: missing ']'";
    return false;
  }
  std::string_view tag = s.substr(4, close - 4);
  if (tag.empty() || tag.size() > 64) {
    *error = "invalid request id: must be 1-64 printable characters";
    return false;
  }
  for (char c : tag) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      *error = "invalid request id: must be 1-64 printable characters";
      return false;
    }
  }
  *id = std::string(tag);
  *rest = s.substr(close + 1);
  return true;
}

ParseStatus FrameParser::Next(std::string_view* input, Frame* frame, std::string* error) {
  for (;;) {
    Frame f;
    ParseStatus st = NextLine(input, &f, error);
    if (st != ParseStatus::kFrame) return st;
    if (!txn_) {
      if (!InspectTxn(f, error)) return ParseStatus::kFatal;
      if (!txn_) {
        *frame = std::move(f);
        return ParseStatus::kFrame;
      }
    } else {
      // Over a limit, the rest is read and dropped: the stream stays framed.
      const size_t bytes = f.line.size() + (f.blob ? f.blob->size() : 0);
      txn_bytes_ += bytes;
      if (txn_->body_error.empty() && txn_bytes_ > limits_.max_blob_bytes) {
        txn_->body_error = StrCat("more than ", limits_.max_blob_bytes, " bytes");
        std::vector<Frame>().swap(txn_->body);
        txn_held_bytes_ = 0;
      }
      if (txn_->body_error.empty()) {
        txn_->body.push_back(std::move(f));
        txn_held_bytes_ += bytes;
      }
      --txn_remaining_;
    }
    if (txn_remaining_ == 0) {
      *frame = std::move(*txn_);
      txn_.reset();
      txn_bytes_ = 0;
      txn_held_bytes_ = 0;
      return ParseStatus::kFrame;
    }
  }
}

bool FrameParser::InspectTxn(Frame& frame, std::string* error) {
  if (!handshake_done_) return true;
  std::optional<std::string> id;
  std::string_view rest;
  std::string ignored;
  if (!SplitRequestId(frame.line, &id, &rest, &ignored)) return true;  // ParseCommand says why
  std::vector<Token> t = Tokenize(rest, 3);
  if (t.empty() || !EqualsIgnoreCase(t[0].text, "TXN")) return true;
  // The commands that follow cannot be told from ordinary ones without their count: run one
  // by one, they would not be atomic. So a count that cannot be read ends the connection.
  uint64_t n = 0;
  std::string_view count = t.size() > 1 ? t[1].text : std::string_view();
  auto [ptr, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
  if (t.size() != 2 || ec != std::errc() || ptr != count.data() + count.size()) {
    *error = StrCat("invalid transaction length '", count.substr(0, 32), "'");
    return false;
  }
  txn_ = std::move(frame);
  txn_remaining_ = n;
  if (n > kTxnCommandsMax) {
    txn_->body_error = StrCat(n, " commands (limit ", kTxnCommandsMax, ")");
  }
  return true;
}

ParseStatus FrameParser::NextLine(std::string_view* input, Frame* frame, std::string* error) {
  while (!input->empty()) {
    if (in_payload_) {
      size_t take = static_cast<size_t>(
          std::min<uint64_t>(payload_remaining_, static_cast<uint64_t>(input->size())));
      payload_.append(input->data(), take);
      input->remove_prefix(take);
      payload_remaining_ -= take;
      if (payload_remaining_ == 0) {
        in_payload_ = false;
        frame->line = std::move(pending_line_);
        frame->blob = std::move(payload_);
        pending_line_.clear();
        payload_.clear();
        return ParseStatus::kFrame;
      }
      continue;
    }
    size_t nl = input->find('\n');
    size_t take = nl == std::string_view::npos ? input->size() : nl;
    // The limit applies to the line without its terminator; a CR before LF is terminator.
    if (line_.size() + take > limits_.max_line_bytes + 1) {
      *error = StrCat("line too large (limit ", limits_.max_line_bytes, " bytes)");
      return ParseStatus::kFatal;
    }
    line_.append(input->data(), take);
    if (nl == std::string_view::npos) {
      input->remove_prefix(take);
      if (line_.size() > limits_.max_line_bytes + (line_.back() == '\r' ? 1 : 0)) {
        *error = StrCat("line too large (limit ", limits_.max_line_bytes, " bytes)");
        return ParseStatus::kFatal;
      }
      return ParseStatus::kNeedMore;
    }
    input->remove_prefix(take + 1);
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (line_.size() > limits_.max_line_bytes) {
      *error = StrCat("line too large (limit ", limits_.max_line_bytes, " bytes)");
      return ParseStatus::kFatal;
    }
    bool blank = true;
    for (char c : line_) {
      if (!IsAsciiSpace(c)) {
        blank = false;
        break;
      }
    }
    if (blank) {
      line_.clear();
      continue;
    }
    if (handshake_done_) {
      if (!InspectLine(error)) return ParseStatus::kFatal;
      if (in_payload_) {
        pending_line_ = std::move(line_);
        line_.clear();
        if (payload_remaining_ == 0) {  // zero-length blob: complete right away
          in_payload_ = false;
          frame->line = std::move(pending_line_);
          frame->blob = std::string();
          pending_line_.clear();
          return ParseStatus::kFrame;
        }
        payload_.reserve(static_cast<size_t>(std::min<uint64_t>(payload_remaining_, 1 << 20)));
        continue;
      }
    }
    frame->line = std::move(line_);
    frame->blob.reset();
    line_.clear();
    return ParseStatus::kFrame;
  }
  return ParseStatus::kNeedMore;
}

namespace {

// Whether the tokens of `text` contain KEY BLOB SET anywhere.
bool AnnouncesBlob(std::string_view text) {
  std::vector<Token> t = Tokenize(text);
  for (size_t i = 0; i + 2 < t.size(); ++i) {
    if (EqualsIgnoreCase(t[i].text, "KEY") && EqualsIgnoreCase(t[i + 1].text, "BLOB") &&
        EqualsIgnoreCase(t[i + 2].text, "SET")) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool FrameParser::InspectLine(std::string* error) {
  std::optional<std::string> id;
  std::string_view rest;
  std::string ignored;
  if (!SplitRequestId(line_, &id, &rest, &ignored)) {
    // A malformed tag is normally a WARN (ParseCommand reports it). But if the line announces
    // a blob, its payload follows and where it ends cannot be trusted: treating the payload as
    // command lines would execute whatever the blob contains. The stream is unframeable.
    // The verb may follow the tag's ']' with no space, so the text after it is looked at too.
    std::string_view line = line_;
    size_t close = line.find(']');
    if (AnnouncesBlob(line) ||
        (close != std::string_view::npos && AnnouncesBlob(line.substr(close + 1)))) {
      *error = "invalid request id on KEY BLOB SET: the blob cannot be framed";
      return false;
    }
    return true;
  }
  std::vector<Token> t = Tokenize(rest, 3);  // a KEY PUT's value is not split into words
  if (t.size() < 3 || !EqualsIgnoreCase(t[0].text, "KEY") ||
      !EqualsIgnoreCase(t[1].text, "BLOB") || !EqualsIgnoreCase(t[2].text, "SET")) {
    return true;
  }
  t = Tokenize(rest);
  if (t.size() < 5) return true;  // no length: a usage error, and no payload follows
  // The length is the last word, after any options (shared/spec/transactions.md §2).
  std::string_view len = t.back().text;
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(len.data(), len.data() + len.size(), n);
  if (ec == std::errc::result_out_of_range) {
    *error = StrCat("invalid blob length: blob too large (limit ", limits_.max_blob_bytes,
                          " bytes)");
    return false;
  }
  if (ec != std::errc() || ptr != len.data() + len.size() || len[0] == '+' || len[0] == '-') {
    *error = StrCat("invalid blob length '", len.substr(0, 32), "'");
    return false;
  }
  if (n > limits_.max_blob_bytes) {
    *error = StrCat("invalid blob length: blob too large (", n, " > limit ",
                          limits_.max_blob_bytes, " bytes)");
    return false;
  }
  in_payload_ = true;
  payload_remaining_ = n;
  return true;
}

}  // namespace atlas::socketproto
