// atlas status: a readable overview of the cluster as one node sees it.
#pragma once

#include <iosfwd>

#include "socketproto/client.h"

namespace atlas::client {

// Members (region, status, address, version, uptime, tables owned), the RTT matrix and tables
// owned per region, from NODE LIST and NODE INFO of every member. Returns 0, 1 (an ERROR reply) or 2 (the connection failed).
int Status(Connection& conn, std::ostream& out, std::ostream& err);

}  // namespace atlas::client
