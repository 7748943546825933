#!/usr/bin/env bash
# A rolling upgrade from the previous release (docs/operations.md §Rolling upgrades): a 3-node
# cluster (one zone, Fn=1) started with the previous release's binaries is restarted one node
# at a time with this build's, writes going through every running node before, during and
# after each restart; at the end every node holds every row written. Joins too: one while the
# cluster is mixed (a voter's join, as the older release answers and applies it) and one after
# (a learner's, then promoted: docs/cluster.md §Learners).
#
#   upgrade_test.sh NEW_BIN_DIR [PREVIOUS_BIN_DIR]
#
# PREVIOUS_BIN_DIR defaults to $ATLAS_PREVIOUS_BIN; without one the test is skipped (exit 77).
# docs/testing.md says how to build the previous release beside this one.
set -euo pipefail

new=$(cd "$1" && pwd)
prev=${2:-${ATLAS_PREVIOUS_BIN:-}}
if [ -z "$prev" ] || [ ! -x "$prev/atlasd" ]; then
  echo "no previous release's atlasd (ATLAS_PREVIOUS_BIN): skipped"
  exit 77
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d /tmp/atlas-upgrade-XXXXXX)
base=$((20000 + (RANDOM % 60) * 300))
cluster() { ATLAS_BIN=$1 "$root/tools/cluster" "${@:2}" --dir "$dir/c" >/dev/null; }
ok=0
finish() {
  ATLAS_BIN=$new "$root/tools/cluster" down --dir "$dir/c" --keep >/dev/null 2>&1 || true
  if [ "$ok" = 1 ]; then rm -rf "$dir"; else echo "kept $dir"; fi
}
trap finish EXIT

atlas() { "$new/atlas" --socket "$dir/c/n$1/atlas.sock" -c "$2" 2>&1; }
# A put through `node`, retried for 30 s: a forward to a node that is restarting can be
# refused with an unknown outcome, and a put is safe to repeat.
put() {
  local until=$((SECONDS + 30))
  while [ "$SECONDS" -lt "$until" ]; do
    [ "$(atlas "$1" "KEY PUT $2 v-$2")" = OK ] && return 0
    sleep 0.1
  done
  echo "FAIL: KEY PUT $2 through node $1: $(atlas "$1" "KEY PUT $2 v-$2")"
  exit 1
}
written=0
write_through() {  # nodes...
  local node
  for node in "$@"; do
    written=$((written + 1))
    put "$node" "up.k$written"
  done
}
holds_all() {  # node: its replica has every row written
  [ "$(atlas "$1" 'COUNT up')" = "COUNT:$written
OK" ]
}
runs() {  # node binary-dir: the node's process runs that directory's atlasd
  [ "$(readlink -f "/proc/$(cat "$dir/c/n$1.pid")/exe")" = "$(readlink -f "$2/atlasd")" ]
}
members=3
all_active() {  # node: it sees every member ACTIVE, none a learner
  local list
  list=$(atlas "$1" 'NODE LIST')
  [ "$(grep -c 'status=ACTIVE' <<<"$list")" = "$members" ] && ! grep -q 'role=learner' <<<"$list"
}
join_new() {  # a node of this release joins through node 1; every member sees it ACTIVE
  cluster "$new" add
  members=$((members + 1))
  local node
  for node in "$@"; do wait_for 60 all_active "$node"; done
  write_through "$members"
}
wait_for() {  # seconds, command...
  local until=$((SECONDS + $1))
  while [ "$SECONDS" -lt "$until" ]; do "${@:2}" && return 0; sleep 0.1; done
  echo "FAIL: waited $1 s for: ${*:2}"
  exit 1
}

cluster "$prev" up --zones 1 --nodes-per-zone 3 --fn 1 --base-port "$base"
for node in 1 2 3; do runs "$node" "$prev" || { echo "FAIL: node $node is not $prev"; exit 1; }; done
echo "previous release: $(atlas 1 'NODE INFO 1' | grep -o 'version=[^ ]*')"
wait_for 30 all_active 1
write_through 1 2 3 1 2 3
for node in 3 2 1; do
  cluster "$prev" stop "$node"
  others=$(printf '%s\n' 1 2 3 | grep -vx "$node" | tr '\n' ' ')
  # shellcheck disable=SC2086
  write_through $others
  cluster "$new" start "$node"
  runs "$node" "$new" || { echo "FAIL: node $node is not $new"; exit 1; }
  wait_for 60 all_active "$node"
  write_through 1 2 3
  echo "node $node upgraded: $(atlas "$node" "NODE INFO $node" | grep -o 'version=[^ ]*')"
  if [ "$node" = 3 ]; then
    join_new 1 2 3  # nodes 1 and 2 still run the previous release: a voter's join
    grep -q 'joined as a learner' "$dir/c/n1.log" && { echo "FAIL: a learner join, mixed"; exit 1; }
    echo "node 4 joined the mixed cluster"
  fi
done
join_new 1 2 3 4
grep -q 'node 5 joined as a learner' "$dir/c/n1.log" || { echo "FAIL: node 5 no learner"; exit 1; }
grep -q 'node 5 votes now' "$dir/c/n5.log" || { echo "FAIL: node 5 did not ask to vote"; exit 1; }
echo "node 5 joined as a learner and votes"


# Every row on every node, read locally once each has caught up.
for node in 1 2 3 4 5; do
  wait_for 60 holds_all "$node"
  for ((k = 1; k <= written; k++)); do
    got=$(atlas "$node" "KEY GET up.k$k")
    [ "$got" = "VALUE:v-up.k$k
OK" ] || { echo "FAIL: node $node: KEY GET up.k$k: $got"; exit 1; }
  done
done
ok=1
echo "rolling upgrade: $written rows through 3 restarts and 2 joins, all on every node: ok"
