#!/usr/bin/env bash
# The short fault-injection run of the default tests (docs/testing.md, "Fault injection on real
# clusters"): tools/jepsen/run on a 3 x 3 cluster in the WAN lab for JEPSEN_SECONDS (default
# 90) with every fault kind; passes only if the history is linearizable, no acknowledged write
# is lost, the replicas converge and the cluster serves again within 60 s of healing. The seed
# is printed (replay: sudo tools/jepsen/run --seed N). Half of the tables are read locally
# (TABLE READS LOCAL), and two nodes' monotonic clocks drift, one 0.5% fast and one 0.5% slow
# (within max-clock-drift's 1%: the read leases stay safe). Needs root; exits 77 (skipped)
# without.
set -euo pipefail
source "$(dirname "$0")/netns_lab.sh" "$1"
ATLAS_BIN=$bin exec "$root/tools/jepsen/run" --seconds "${JEPSEN_SECONDS:-90}" --lab-id 9 \
  --clock-rate 2:5000 --clock-rate 6:-5000
