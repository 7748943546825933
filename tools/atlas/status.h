// atlas status: a readable overview of the cluster as one node sees it.
#pragma once

#include <iosfwd>

#include "socketproto/client.h"

namespace atlas::client {

// Members (region, status, address, version, uptime, tables owned, certificate expiry), the
// RTT matrix and tables owned per region, from NODE STATUS: the document of the console's
// GET /v1/status (docs/console.md), printed as is with `as_json`. Returns 0, 1 (an ERROR reply)
// or 2 (the connection failed).
int Status(Connection& conn, bool as_json, std::ostream& out, std::ostream& err);

}  // namespace atlas::client
