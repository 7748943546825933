# Sourced by the WAN-lab tests: sets `bin` (the build's bin dir, $1) and `root` (the source
# tree), and skips the test (exit 77) unless we are root with network namespaces.
bin=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }
ip netns add atlas-probe-$$ 2>/dev/null || { echo "skipped: no network namespaces"; exit 77; }
ip netns del atlas-probe-$$
