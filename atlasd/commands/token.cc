// TOKEN CREATE / LIST / REVOKE: join tokens, replicated in atlas.nodes
// (docs/cluster-bootstrap.md §Join tokens); CA STATUS / ROTATE: the cluster CAs, replicated
// there too (docs/security.md §Rotating the CA). Changes only by admin-users, when configured
// (kRules).
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "atlasd/commands/call.h"
#include "socketproto/str.h"

namespace atlas {

namespace sp = socketproto;

namespace {

std::string TimeText(int64_t ms) { return ms == 0 ? "never" : sp::FormatRfc3339Ms(ms); }

// A TOKEN line: `TOKEN id=<id> created=<t> expires=<t|never> uses=<n>/<max|unlimited>
// status=<s>` (TOKEN CREATE adds `token=<token>`).
std::string TokenLine(const TokenView& t) {
  std::string line = StrCat("TOKEN id=", t.id, " created=", TimeText(t.created_ms),
                            " expires=", TimeText(t.expires_ms), " uses=", t.uses, "/",
                            t.uses_max == 0 ? "unlimited" : StrCat(t.uses_max),
                            " status=", absl::StrReplaceAll(t.status, {{" ", "-"}}));
  if (!t.token.empty()) StrAppend(&line, " token=", t.token);
  return line;
}

constexpr std::string_view kNoCluster = "TOKEN: this node runs without a cluster";

// `CA phase=<idle|trusting|renewing> signing=<fp> trusted=<fp>[,<fp>] waiting=<ids>|-`.
std::string CaLine(const cluster::RotationStatus& s) {
  std::string waiting = s.waiting.empty() ? "-" : absl::StrJoin(s.waiting, ",");
  return StrCat("CA phase=", s.phase, " signing=", s.signing,
                " trusted=", absl::StrJoin(s.trusted, ","), " waiting=", waiting);
}

}  // namespace

void Executor::Run(const CallPtr& call, const sp::TokenCreate& c) {
  if (!options_.cluster) return call->Warn(kNoCluster);
  options_.cluster->CreateToken(c.ttl_ms, c.uses, [call](absl::StatusOr<TokenView> t) {
    if (!t.ok()) return call->Warn(ToStd(t.status().message()));
    call->reply.Line(TokenLine(*t));
    call->Ok();
  });
}

void Executor::Run(const CallPtr& call, const sp::TokenList&) {
  if (!options_.cluster) return call->Warn(kNoCluster);
  for (const TokenView& t : options_.cluster->Tokens()) call->reply.Line(TokenLine(t));
  call->Ok();
}

void Executor::Run(const CallPtr& call, const sp::CaStatus&) {
  if (!options_.cluster) return call->Warn("CA: this node runs without a cluster");
  call->reply.Line(CaLine(options_.cluster->CaStatus()));
  call->Ok();
}

void Executor::Run(const CallPtr& call, const sp::CaRotate&) {
  if (!options_.cluster) return call->Warn("CA: this node runs without a cluster");
  options_.cluster->RotateCa([call](absl::StatusOr<cluster::RotationStatus> s) {
    if (!s.ok()) return call->Warn(ToStd(s.status().message()));
    call->reply.Line(CaLine(*s));
    call->Ok();
  });
}

void Executor::Run(const CallPtr& call, const sp::TokenRevoke& c) {
  if (!options_.cluster) return call->Warn(kNoCluster);
  options_.cluster->RevokeToken(c.id, [call](absl::Status s) {
    if (!s.ok()) return call->Warn(ToStd(s.message()));
    call->Ok();
  });
}

}  // namespace atlas
