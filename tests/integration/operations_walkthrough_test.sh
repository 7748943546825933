#!/usr/bin/env bash
# docs/operations.md, "A 3-region cluster on three hosts", run as a user would: every code block
# of that section whose header names a host (```sh host=A, ```toml file=... host=B) runs in
# document order on that host, then the end state is checked (three members in three regions,
# all ACTIVE; /metrics over HTTPS from every node; the backup restored into a fresh cluster
# and read back; the firewall closing the ports to other addresses).
#
# Substitutions (the doc lists the same ones, in "How this walkthrough is tested"):
#  - Hosts A, B, C, D are network namespaces on a private bridge (10.231.0.0/24, .11 to .14),
#    each with its own /etc, /var, /usr/local and /run: overlays of the machine's, kept in a
#    temporary directory, so useradd, nft and the blocks' files change only that host.
#  - Install: /usr/local/bin/{atlasd,atlas} link to copies of the build's binaries, and
#    /usr/local/lib/systemd/system/atlasd.service is tools/packaging/atlasd.service.
#  - sudo, systemctl and scp are small scripts first in PATH (below): sudo runs the command;
#    systemctl runs a unit's ExecStart as its User/Group with its UMask, StateDirectory and
#    RuntimeDirectory (no timers); scp copies from another host's file system.
#  - PASTE-THE-JOIN-TOKEN becomes the token in the CA holder's /var/lib/atlasd/join-token.
#  - "<!-- walkthrough-test: host X fails here -->": X's atlasd is killed (SIGKILL) and its
#    /var/lib/atlasd emptied.
#
# Usage: operations_walkthrough_test.sh [BIN_DIR]  (default build/bin). Needs root, network
# namespaces, overlayfs and nft; exits 77 (ctest: skipped) without them. ATLOPS_KEEP=1 keeps
# the temporary directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:-$root/build/bin}" && pwd)
doc=$root/docs/operations.md
started=$(date +%s)

[ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }
for tool in ip unshare nsenter setpriv useradd nft curl openssl python3; do
  command -v "$tool" >/dev/null || { echo "skipped: needs $tool"; exit 77; }
done
ip netns add "atlops-probe-$$" 2>/dev/null || { echo "skipped: no network namespaces"; exit 77; }
ip netns del "atlops-probe-$$"
grep -qw overlay /proc/filesystems || { echo "skipped: no overlayfs"; exit 77; }

tmp=$(mktemp -d /tmp/atlas-ops.XXXXXX)
chmod 0755 "$tmp"  # the hosts' atlasd user runs the binaries from here
mkdir -p "$tmp/bin" "$tmp/shim" "$tmp/state" "$tmp/logs" "$tmp/steps"
sw=atlops$$sw
declare -A addr=([A]=10.231.0.11 [B]=10.231.0.12 [C]=10.231.0.13 [D]=10.231.0.14)
declare -A holder=()
hosts=(A B C D)

cleanup() {
  local rc=$? f p
  set +e
  for f in "$tmp"/state/*.pid; do [ -e "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done
  for _ in $(seq 50); do
    p=0
    for f in "$tmp"/state/*.pid; do [ -e "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && p=1; done
    [ $p = 0 ] && break
    sleep 0.1
  done
  for f in "$tmp"/state/*.pid; do
    [ -e "$f" ] || continue
    p=$(cat "$f")
    kill -KILL "$p" 2>/dev/null
    for _ in $(seq 50); do
      [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null || echo Z)" = Z ] && break
      sleep 0.1
    done
  done
  for p in "${holder[@]}"; do kill -KILL "$p" 2>/dev/null; done
  # A namespace cannot be deleted while a dying holder's mount namespace still mounts it.
  for p in "${holder[@]}"; do
    for _ in $(seq 50); do
      [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null || echo Z)" = Z ] && break
      sleep 0.1
    done
  done
  for h in "${hosts[@]}" sw; do
    for _ in $(seq 20); do
      ip netns del "atlops$$$h" 2>/dev/null && break
      ip netns list | grep -q "^atlops$$$h\b" || break
      sleep 0.1
    done
  done
  if [ $rc != 0 ]; then
    for f in "$tmp"/logs/*.log; do [ -e "$f" ] && { echo "== $f"; tail -n 15 "$f"; }; done
  fi
  if [ "${ATLOPS_KEEP:-}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
  # Again after the logs, so that the cause ends the output.
  [ -z "$failure" ] || echo "$failure"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
failure=""
fail() { failure="FAIL: $*"; echo "$failure" >&2; exit 1; }

# --- The binaries, copied so that a rebuild during the run cannot swap them. --------------
cp "$bin/atlasd" "$bin/atlas" "$tmp/bin/"

# --- sudo, systemctl, scp --------------------------------------------------------------------
cat >"$tmp/shim/sudo" <<'EOF'
#!/bin/sh
# The test runs as root.
exec "$@"
EOF
cat >"$tmp/shim/systemctl" <<'EOF'
#!/usr/bin/env bash
# The systemctl verbs the walkthrough uses, for one host of the test (ATLOPS_HOST): a service
# is its unit's ExecStart, run as its User/Group with its UMask, after creating its
# StateDirectory and RuntimeDirectory; Type=oneshot runs in the foreground. Timers never fire.
set -euo pipefail
host=$ATLOPS_HOST
state=$ATLOPS_DIR/state
unit_file() {
  local d
  for d in /etc/systemd/system /usr/local/lib/systemd/system /lib/systemd/system; do
    [ -f "$d/$1" ] && { echo "$d/$1"; return; }
  done
  echo "systemctl: unit $1 not found" >&2
  exit 5
}
key() { sed -n "s/^$1=//p" "$2" | tail -n 1; }
pidfile() { echo "$state/$host.$1.pid"; }
running() {
  local p
  p=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
  kill -0 "$p" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ]
}
start() {
  local u=$1 f user group um type sd sdm rd rdm
  f=$(unit_file "$u")
  running "$u" && return 0
  user=$(key User "$f"); group=$(key Group "$f"); um=$(key UMask "$f"); type=$(key Type "$f")
  sd=$(key StateDirectory "$f"); sdm=$(key StateDirectoryMode "$f")
  rd=$(key RuntimeDirectory "$f"); rdm=$(key RuntimeDirectoryMode "$f")
  local own=() as=() cmd=()
  [ -n "$user" ] && own=(-o "$user" -g "${group:-$user}") \
    && as=(setpriv --reuid="$user" --regid="${group:-$user}" --init-groups)
  [ -n "$sd" ] && install -d -m "${sdm:-0755}" "${own[@]}" "/var/lib/$sd"
  [ -n "$rd" ] && install -d -m "${rdm:-0755}" "${own[@]}" "/run/$rd"
  read -ra cmd <<<"$(key ExecStart "$f")"
  local log=$ATLOPS_DIR/logs/$host.$u.log
  if [ "$type" = oneshot ]; then
    (umask "${um:-0022}" && exec "${as[@]}" "${cmd[@]}") >>"$log" 2>&1 </dev/null
  else
    (umask "${um:-0022}" && exec setsid "${as[@]}" "${cmd[@]}") >>"$log" 2>&1 </dev/null &
    echo $! >"$(pidfile "$u")"
  fi
}
stop() {
  local u=$1 p rd
  running "$u" || { rm -f "$(pidfile "$u")"; return 0; }
  p=$(cat "$(pidfile "$u")")
  kill -TERM "$p"
  for _ in $(seq 300); do running "$u" || break; sleep 0.1; done  # TimeoutStopSec=30
  running "$u" && kill -KILL "$p"
  rm -f "$(pidfile "$u")"
  rd=$(key RuntimeDirectory "$(unit_file "$u")")
  [ -z "$rd" ] || rm -rf "/run/$rd"
}
unit() { case $1 in *.*) echo "$1" ;; *) echo "$1.service" ;; esac; }
verb=$1; shift
now=0
[ "${1:-}" = --now ] && { now=1; shift; }
for u in "$@"; do
  u=$(unit "$u")
  unit_file "$u" >/dev/null
  case $u in *.timer) continue ;; esac  # enabled, but nothing fires in the test
  case $verb in
    start) start "$u" ;;
    enable) [ $now = 1 ] && start "$u" ;;
    stop) stop "$u" ;;
    restart) stop "$u"; start "$u" ;;
    *) echo "systemctl (test): unsupported: $verb" >&2; exit 1 ;;
  esac
done
case $verb in daemon-reload|start|enable|stop|restart) ;; *) exit 1 ;; esac
EOF
cat >"$tmp/shim/scp" <<'EOF'
#!/usr/bin/env bash
# scp ADDRESS:PATH DEST: the file as host ADDRESS sees it (a relative PATH is in that host's
# home), with its mode, as scp copies it.
set -euo pipefail
[ $# = 2 ] || { echo "scp (test): only scp ADDRESS:PATH DEST" >&2; exit 1; }
src_addr=${1%%:*} path=${1#*:} dest=$2
read -r _ _ pid home < <(grep " $src_addr " "$ATLOPS_DIR/hosts") || {
  echo "scp (test): no host $src_addr" >&2; exit 1; }
case $path in /*) ;; *) path=$home/$path ;; esac
[ -d "$dest" ] && dest=$dest/$(basename "$path")
mode=$(nsenter -t "$pid" -m -- stat -L -c %a "$path")
nsenter -t "$pid" -m -- cat "$path" >"$dest.scp"
chmod "$mode" "$dest.scp"
mv "$dest.scp" "$dest"
EOF
chmod 0755 "$tmp"/shim/*

# --- Network: a bridge in its own namespace, one namespace per host. -------------------------
ip netns add "$sw"
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
for h in "${hosts[@]}"; do
  ns=atlops$$$h
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "veth$$$h" netns "$ns" type veth peer name "p$h" netns "$sw"
  ip -n "$ns" link set "veth$$$h" name eth0
  ip -n "$ns" addr add "${addr[$h]}/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$sw" link set "p$h" master br0
  ip -n "$sw" link set "p$h" up
done

# --- Each host's file system: overlays, and the installed files in /usr/local. ---------------
for h in "${hosts[@]}"; do
  d=$tmp/$h
  mkdir -p "$d/home"
  for fs in etc var usr-local run; do mkdir -p "$d/$fs-upper" "$d/$fs-work"; done
  mkdir -p "$d/usr-local-upper/bin" "$d/usr-local-upper/lib/systemd/system" \
    "$d/usr-local-upper/etc/atlasd" "$d/usr-local-upper/sbin" "$d/etc-upper/systemd/system"
  ln -s "$tmp/bin/atlasd" "$d/usr-local-upper/bin/atlasd"
  ln -s "$tmp/bin/atlas" "$d/usr-local-upper/bin/atlas"
  cp "$root/tools/packaging/atlasd.service" "$d/usr-local-upper/lib/systemd/system/"
  cp "$root/tools/packaging/atlasd.toml" "$d/usr-local-upper/etc/atlasd/"
  ip netns exec "atlops$$$h" unshare --mount --propagation private -- bash -c '
    set -e
    # Let go of the network namespaces mounted so far: ip netns del of another host fails
    # while any mount namespace still mounts it.
    for m in /run/netns/*; do umount -l "$m" 2>/dev/null || true; done
    umount -l /run/netns 2>/dev/null || true
    for fs in etc var usr/local run; do
      n=${fs//\//-}
      mount -t overlay overlay -o "lowerdir=/$fs,upperdir=$1/$n-upper,workdir=$1/$n-work" "/$fs"
    done
    touch "$1/ready"
    exec sleep 100000' _ "$d" </dev/null >"$tmp/logs/$h.holder.log" 2>&1 &
  holder[$h]=$!
  disown "${holder[$h]}"  # killed by pid in cleanup, without a job report
  for _ in $(seq 50); do [ -e "$d/ready" ] && break; sleep 0.1; done
  [ -e "$d/ready" ] || fail "host $h: no overlays (see $tmp/logs/$h.holder.log)"
  echo "$h ${addr[$h]} ${holder[$h]} $d/home" >>"$tmp/hosts"
done

# Runs a command on host $1: its network, its file system, the shims first in PATH.
on() {
  local h=$1; shift
  nsenter -t "${holder[$h]}" -m -n -- env -i \
    PATH="$tmp/shim:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    HOME="$tmp/$h/home" USER=root LANG=C.UTF-8 ATLOPS_HOST="$h" ATLOPS_DIR="$tmp" "$@"
}
atlas_on() { on "$1" atlas --socket /run/atlasd/atlas.sock "${@:2}"; }

token() {
  local h
  for h in A B C; do
    on "$h" cat /var/lib/atlasd/join-token 2>/dev/null && return
  done
  fail "no host holds /var/lib/atlasd/join-token"
}

# --- The walkthrough's blocks, in document order. ------------------------------------------
python3 - "$doc" "$tmp/steps" <<'EOF'
import os, re, sys
doc, out = sys.argv[1], sys.argv[2]
lines = open(doc).read().split("\n")
start = lines.index("## A 3-region cluster on three hosts")
steps, block = [], None
for n, line in enumerate(lines[start + 1:], start + 2):
    if block is None:
        if line.startswith("## "):
            break
        m = re.match(r"<!-- walkthrough-test: host ([A-Z]) fails", line)
        if m:
            steps.append(("fail", m.group(1), "-", n, ""))
        elif line.startswith("```"):
            words = line[3:].split()
            attrs = dict(w.split("=", 1) for w in words[1:] if "=" in w)
            block = (attrs, n, [])
        continue
    if line.startswith("```"):
        attrs, at, body = block
        if "host" in attrs:
            kind = "file" if "file" in attrs else "sh"
            steps.append((kind, attrs["host"], attrs.get("file", "-"), at, "\n".join(body) + "\n"))
        block = None
    else:
        block[2].append(line)
with open(os.path.join(out, "manifest"), "w") as m:
    for i, (kind, hosts, path, at, body) in enumerate(steps):
        with open(os.path.join(out, f"{i}.txt"), "w") as f:
            f.write(body)
        m.write(f"{i}\t{kind}\t{hosts}\t{path}\t{at}\n")
EOF
[ "$(wc -l <"$tmp/steps/manifest")" -ge 20 ] || fail "found only $(wc -l <"$tmp/steps/manifest") steps in $doc"

host_fails() {
  local h=$1 f
  echo "== host $h fails: atlasd killed, /var/lib/atlasd emptied"
  for f in "$tmp/state/$h".*.pid; do [ -e "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
  for _ in $(seq 50); do
    kill -0 "$(cat "$tmp/state/$h.atlasd.service.pid")" 2>/dev/null || break
    sleep 0.1
  done
  on "$h" find /var/lib/atlasd -mindepth 1 -delete
}

while IFS=$'\t' read -r i kind step_hosts path at <&3; do
  body=$tmp/steps/$i.txt
  if grep -q PASTE-THE-JOIN-TOKEN "$body"; then
    t=$(token)
    sed -i "s/PASTE-THE-JOIN-TOKEN/$t/" "$body"
  fi
  for h in ${step_hosts//,/ }; do
    case $kind in
      fail) host_fails "$h" ;;
      file)
        echo "== line $at, host $h: $path"
        on "$h" sh -c 'cat >"$1"' _ "$path" <"$body" ;;
      sh)
        echo "== line $at, host $h"
        sed "s/^/  \$ /" "$body"
        on "$h" timeout 150 bash -eo pipefail -c 'cd "$HOME" && source "$1"' _ "$body" </dev/null \
          2>&1 | tee "$tmp/block.out" | sed 's/^/  | /' \
          || fail "the block at docs/operations.md:$at failed on host $h; it ended with:
$(tail -n 8 "$tmp/block.out")"
        ;;
    esac
  done
done 3<"$tmp/steps/manifest"

# --- The end state. -------------------------------------------------------------------------
echo "== checks"
members() { atlas_on "$1" -c 'NODE LIST' | grep '^NODE ' | grep -v 'status=LEFT'; }
for _ in $(seq 40); do
  ok=1
  for h in A B C; do
    m=$(members "$h") || { ok=0; break; }
    [ "$(echo "$m" | wc -l)" = 3 ] && ! grep -qv 'status=ACTIVE' <<<"$m" || ok=0
  done
  [ $ok = 1 ] && break
  sleep 0.5
done
for h in A B C; do members "$h" | sed "s/^/  $h: /"; done
[ $ok = 1 ] || fail "not three ACTIVE members seen from every host"
regions=$(members A | sed -n 's/.* region=\([^ ]*\) .*/\1/p' | sort -u | tr '\n' ' ')
[ "$regions" = "ap-south eu-west us-east " ] || fail "members' regions: $regions"

# Fz=1 still (a node that answers joins imposes its own fz): Q2 spans two regions.
grep -qx 'Q2 size=2' <<<"$(atlas_on B -c 'QUORUM INFO users')" || fail "Q2 is not 2 nodes: Fz is no longer 1"

# The daemons run as the unit's user, not as root.
for h in A B C D; do
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$(cat "$tmp/state/$h.atlasd.service.pid")/status")
  [ "$uid" != 0 ] || fail "atlasd on $h runs as root"
done

# /metrics over HTTPS from every member, verified against the cluster CA, from D.
while read -r id ip; do
  # The certificate names the host's address: no --resolve needed to verify it.
  # A loaded CI host can briefly see a just-joined peer SUSPECT: wait for the view to settle.
  for _ in $(seq 20); do
    out=$(on D curl -sf --cacert "$tmp/D/home/atlasd-ca.pem" "https://$ip:7480/metrics") \
      || fail "no /metrics from node $id at $ip"
    grep -qx 'atlas_cluster_members{status="ACTIVE"} 3' <<<"$out" && break
    sleep 0.5
  done
  grep -q '^atlas_command_duration_seconds_bucket{command="KEY PUT",' <<<"$out" \
    || fail "node $id: no atlas_command_duration_seconds"
  grep -qx 'atlas_cluster_members{status="ACTIVE"} 3' <<<"$out" \
    || fail "node $id: not 3 ACTIVE: $(echo "$out" | grep '^atlas_cluster_members')"
  [ "$(echo "$out" | grep -c '^atlas_peer_up{.*} 1$')" = 2 ] || fail "node $id: atlas_peer_up"
  grep -q '^atlas_peer_rtt_seconds{' <<<"$out" || fail "node $id: no atlas_peer_rtt_seconds"
  echo "  metrics ok: node $id ($ip)"
done < <(members A | sed -n 's/^NODE id=\([0-9]*\) .* addr=\([0-9.]*\) .*/\1 \2/p')

# The backup restored on D: the dump of D is the backup but for the revisions (the copy's
# own), and every row of the backup reads back the same from D and from the live cluster.
backup=$tmp/D/home/atlas-latest.jsonl
norev() { sed -E 's/,"rev":[0-9]+//'; }
on D atlas --socket /run/atlasd/atlas.sock dump 2>/dev/null | norev | cmp - <(norev <"$backup") \
  || fail "D's dump differs from the backup"
python3 - "$backup" "$tmp/read.script" "$tmp/read.expected" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"key"' in l]
assert len(rows) >= 202, f"only {len(rows)} rows in the backup"
keys = {r["key"] for r in rows}
assert {"users.alice", "orders.200", "sessions.s1"} <= keys, keys
with open(sys.argv[2], "w") as s, open(sys.argv[3], "w") as e:
    s.write("PRINCIPAL ASSUME alice\n")
    e.write("OK\n")
    for r in rows:
        s.write(f"KEY GET {r['key']}\n")
        e.write(f"VALUE:{r['value']}\nOK\n")
EOF
on D atlas --socket /run/atlasd/atlas.sock <"$tmp/read.script" >"$tmp/read.D" \
  || fail "reading the restored rows on D"
cmp -s "$tmp/read.D" "$tmp/read.expected" || fail "rows read on D differ from the backup"
on C atlas --socket /run/atlasd/atlas.sock <"$tmp/read.script" >"$tmp/read.C" \
  || fail "reading the backed-up rows on the cluster"
cmp -s "$tmp/read.C" "$tmp/read.expected" || fail "rows read on the cluster differ from the backup"
echo "  restore ok: $(grep -c '"key"' "$backup") rows read back from D and from the cluster"

# The firewall: D (monitoring) reaches 7480 but not 7400; another address reaches neither;
# cluster hosts reach both.
port_open() { on "$1" timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; }
port_open B 10.231.0.11 7400 || fail "B cannot reach A:7400"
port_open D 10.231.0.11 7480 || fail "D cannot reach A:7480"
! port_open D 10.231.0.11 7400 || fail "D reaches A:7400"
on D ip addr add 10.231.0.99/24 dev eth0
! on D curl -s --interface 10.231.0.99 --connect-timeout 2 -k https://10.231.0.12:7480/health \
  >/dev/null || fail "10.231.0.99 reaches B:7480"
echo "  firewall ok"

# The replaced nodes' addresses are held by their replacements: once each departure settled,
# the members that were running stopped dialling the departed node there (else they would log
# TLS name errors forever). B restarted after node 1 left (to take the CA role), so it never
# dialled node 1 again; C (node 4) was up throughout.
for check in "B 3" "C 1"; do
  read -r h gone <<<"$check"
  for _ in $(seq 40); do
    grep -q "node $gone left at epoch" "$tmp/logs/$h.atlasd.service.log" && break
    sleep 0.5
  done
  grep -q "node $gone left at epoch" "$tmp/logs/$h.atlasd.service.log" \
    || fail "$h still connects to departed node $gone"
done
echo "  departed nodes forgotten"

echo "PASS in $(( $(date +%s) - started )) s"
