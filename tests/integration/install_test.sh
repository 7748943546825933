#!/usr/bin/env bash
# cmake --install into a temporary prefix: the layout an operator gets, the sample config runs
# (with the paths overridden on the command line), it names every setting atlasd has, and the
# systemd unit passes systemd-analyze verify (when systemd is there).
set -euo pipefail
build=$1
tmp=$(mktemp -d /tmp/atlas-install.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
for f in bin/atlasd bin/atlas etc/atlasd/atlasd.toml lib/systemd/system/atlasd.service \
         share/doc/atlasd/README.md share/doc/atlasd/docs/metrics.md; do
  [ -e "$tmp/prefix/$f" ] || fail "cmake --install did not install $f"
done
[ -x "$tmp/prefix/bin/atlasd" ] || fail "bin/atlasd is not executable"

# Every setting of `atlasd --help` is in the sample config (commented or not).
conf=$tmp/prefix/etc/atlasd/atlasd.toml
for name in $("$tmp/prefix/bin/atlasd" --help | grep -o -- '^  --[a-z-]*' | sed 's/^  --//'); do
  [ "$name" = config ] && continue
  grep -Eq "^#? ?$name = " "$conf" || fail "the sample config does not mention '$name'"
done

# The sample config as shipped, with its paths moved into the temporary directory.
"$tmp/prefix/bin/atlasd" --config "$conf" --data-dir "$tmp/data" --socket "$tmp/atlas.sock" \
  --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$tmp/atlas.sock" ] && break; sleep 0.1; done
out=$("$tmp/prefix/bin/atlas" --socket "$tmp/atlas.sock" -c 'KEY PUT pkg.k installed' -c 'KEY GET pkg.k') \
  || { cat "$tmp/log" >&2; fail "the installed atlas could not talk to the installed atlasd"; }
[ "$out" = "$(printf 'OK\nVALUE:installed\nOK')" ] || fail "unexpected replies: $out"
# The shipped config makes a client its Unix user (peercred), and says so at start if not.
who=$("$tmp/prefix/bin/atlas" --socket "$tmp/atlas.sock" -c 'PRINCIPAL WHOAMI' -c 'PRINCIPAL ASSUME mallory' || true)
[ "$(echo "$who" | head -1)" = "PRINCIPAL $(id -un)" ] || fail "shipped config is not peercred: $who"
grep -q "only admin-users may assume another principal" <<<"$who" || fail "assume allowed: $who"
grep -q "principal-mode assume" "$tmp/log" && fail "the shipped config started in assume mode"
# The Python client, installed where python3 looks for it (under the prefix here).
pymod=$(ls "$tmp"/prefix/lib/python3*/dist-packages/atlas_client.py 2>/dev/null | head -1)
[ -n "$pymod" ] || fail "cmake --install did not install atlas_client.py"
py=$(PYTHONPATH=$(dirname "$pymod") python3 -c 'import atlas_client, sys
with atlas_client.connect(sys.argv[1]) as db:
    print(db.get("pkg.k").decode())' "$tmp/atlas.sock") || fail "the installed Python client failed"
[ "$py" = installed ] || fail "the installed Python client read: $py"
kill "$pid"; wait "$pid" || fail "atlasd did not exit 0 on SIGTERM"
pid=

if command -v systemd-analyze >/dev/null; then
  unit=$tmp/atlasd.service
  sed "s|/usr/local/bin/atlasd|$tmp/prefix/bin/atlasd|" "$tmp/prefix/lib/systemd/system/atlasd.service" >"$unit"
  warnings=$(systemd-analyze verify "$unit" 2>&1 | grep -v 'Failed to .*bus\|not running' || true)
  [ -z "$warnings" ] || fail "systemd-analyze verify: $warnings"
fi
echo "install layout, sample config and systemd unit OK"
