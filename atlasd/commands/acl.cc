// PRINCIPAL ASSUME / WHOAMI (who a connection acts as) and ACL GRANT / REVOKE / LIST (who may
// do what on a table): shared/spec/protocol.md §6.
#include "atlasd/commands/call.h"
#include "socketproto/str.h"

namespace atlas {

namespace sp = socketproto;

namespace {

proto::Perm ToProto(sp::Perm p) {
  switch (p) {
    case sp::Perm::kRead:
      return proto::READ;
    case sp::Perm::kWrite:
      return proto::WRITE;
    case sp::Perm::kOwner:
      return proto::OWNER;
  }
  return proto::READ;
}

std::string_view PermText(storage::AclPerm p) {
  switch (p) {
    case storage::AclPerm::kRead:
      return "READ";
    case storage::AclPerm::kWrite:
      return "WRITE";
    case storage::AclPerm::kOwner:
      return "OWNER";
  }
  return "?";
}

// The replicated form of ACL GRANT / ACL REVOKE (the state machine checks the right to
// administer the table when it applies).
template <typename Change>
void BuildAclChange(const Change& c, bool grant, proto::Command* cmd) {
  cmd->set_table(c.table);
  proto::AclChange* a = cmd->mutable_acl();
  a->set_principal(c.principal);
  a->set_perm(ToProto(c.perm));
  a->set_grant(grant);
}

}  // namespace

void Executor::Run(const CallPtr& call, sp::SessionContext& ctx, const sp::PrincipalAssume& c) {
  if (options_.principal_mode == PrincipalMode::kPeercred && c.name != ctx.peer_user &&
      !IsAdmin(ctx.peer_user)) {
    return call->Warn(StrCat("permission denied for principal '", ctx.peer_user,
                             "': PRINCIPAL ASSUME (principal-mode peercred: only admin-users may "
                             "assume another principal)"));
  }
  ctx.principal = c.name;
  call->Ok();
}

void Executor::Run(const CallPtr& call, sp::SessionContext& ctx, const sp::PrincipalWhoami&) {
  call->reply.Line(StrCat("PRINCIPAL ", ctx.principal ? *ctx.principal : "(none)"));
  call->Ok();
}

std::optional<std::string> Executor::Build(Call&, sp::AclGrant& c, proto::Command* cmd) {
  BuildAclChange(c, /*grant=*/true, cmd);
  return std::nullopt;
}

std::optional<std::string> Executor::Build(Call&, sp::AclRevoke& c, proto::Command* cmd) {
  BuildAclChange(c, /*grant=*/false, cmd);
  return std::nullopt;
}

void Executor::Run(const CallPtr& call, const sp::AclList&) {
  // The access check loaded the ACL it allowed this by.
  const storage::TableAcl& acl = *call->acl;
  if (!call->reserved && acl.grants.size() > 64) {
    return ReserveThenResume(call, KeysReplyBytes(acl.grants.size()));
  }
  for (const auto& g : acl.grants) {
    call->reply.Line(StrCat("ACL ", g.principal, " ", PermText(g.perm)));
  }
  call->Ok();
}

}  // namespace atlas
