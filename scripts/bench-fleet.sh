#!/usr/bin/env bash
# Measures what a sidecar pays for a refresh of a large policy, by how the
# policy reaches it, in one run on one machine:
#   json      a file upstream holding the canonical JSON document (compiled
#             by the sidecar, as every sidecar without a hub does)
#   snapshot  a file upstream holding a bundle written by rolecall policy build
#   hub       an http upstream reading bundles from a hub (rolecall serve
#             --publish-addr) with long polling; the hub compiles the JSON
# For each: steady RSS with revision 1 loaded, peak RSS (VmHWM, reset with
# /proc/PID/clear_refs just before the change) while it installs revision 2,
# and the time from the change to serving revision 2. Usage:
#   bash scripts/bench-fleet.sh [SUBJECTS]      (default 1000000; several GB, minutes)
# MODES="snapshot hub" runs only some of json, snapshot and hub.
set -euo pipefail
cd "$(dirname "$0")/.."
subjects=${1:-1000000}
orgs=$(( subjects / 100 > 10 ? subjects / 100 : 10 ))
dir=$(mktemp -d)
trap 'for f in "$dir"/*/pid; do kill "$(cat "$f")" 2>/dev/null || true; done; rm -rf "$dir"' EXIT
go build -o "$dir/rolecall" ./cmd/rolecall
rc="$dir/rolecall"

for seed in 1 2; do
  "$rc" policy generate --subjects "$subjects" --orgs "$orgs" --roles 200 --memberships-per-subject 2 \
    --seed "$seed" --checks 1 --out "$dir/v$seed.json" 2>/dev/null
  "$rc" policy build "$dir/v$seed.json" -o "$dir/v$seed.snap" 2>/dev/null
done
echo "policy: $subjects subjects, $orgs organizations; JSON $(stat -c %s "$dir/v1.json") bytes, bundle $(stat -c %s "$dir/v1.snap") bytes"

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
revision() { curl -sf "http://$1/v1/status" | sed -n 's/.*"revision": *"\([^"]*\)".*/\1/p'; }
wait_revision() { # admin address, revision, limit in seconds
  local deadline=$(( $(date +%s) + $3 ))
  until [ "$(revision "$1" || true)" = "$2" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for $2 at $1" >&2; exit 1; }
    sleep 0.01
  done
}
rev_of() { sed -n 's/.*"revision": *"\([^"]*\)".*/\1/p' "$1" | head -1; }
r1=$(rev_of "$dir/v1.json"); r2=$(rev_of "$dir/v2.json")

# serve NAME ADMIN_PORT ARGS...: starts rolecall serve in the background.
serve() {
  local name=$1 port=$2; shift 2
  mkdir -p "$dir/$name"
  "$rc" serve --grpc-addr "" --authz-addr "" --admin-addr "127.0.0.1:$port" \
    --unix-socket "$dir/$name/rolecall.sock" --cache "$dir/$name/rolecall.db" --upstream-max-bytes 1073741824 "$@" \
    >"$dir/$name/serve.log" 2>&1 &
  echo $! >"$dir/$name/pid"
  echo $!
}

# measure NAME PID ADMIN CHANGE...: steady RSS, then the change, then the
# peak while it is installed, and the time it took.
measure() {
  local name=$1 pid=$2 admin=$3; shift 3
  wait_revision "$admin" "$r1" 600
  sleep 3
  local steady; steady=$(kib "$pid" VmRSS)
  echo 5 >"/proc/$pid/clear_refs"
  local start; start=$(date +%s.%N)
  "$@"
  wait_revision "$admin" "$r2" 600
  local end; end=$(date +%s.%N)
  local peak; peak=$(kib "$pid" VmHWM)
  printf '%-9s steady %5s MiB   peak during refresh %5s MiB (%.2fx steady)   refresh %.2f s\n' \
    "$name" "$(mib "$steady")" "$(mib "$peak")" "$(awk -v p="$peak" -v s="$steady" 'BEGIN {print p / s}')" \
    "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')"
}

# change_file SRC DST: replaces DST with SRC atomically, as a deploy would.
change_file() { cp "$1" "$2.new" && mv "$2.new" "$2"; }

modes=${MODES:-json snapshot hub}
for mode in json snapshot; do
  case " $modes " in *" $mode "*) ;; *) continue ;; esac
  ext=$mode; [ "$mode" = snapshot ] && ext=snap
  cp "$dir/v1.$ext" "$dir/$mode.$ext"
  pid=$(serve "$mode" 50262 --policy "$dir/$mode.$ext" --refresh-interval 100ms)
  measure "$mode" "$pid" 127.0.0.1:50262 change_file "$dir/v2.$ext" "$dir/$mode.$ext"
  kill "$pid"
done

# The hub compiles the JSON; the sidecar installs the hub's bundle.
case " $modes " in *" hub "*) ;; *) exit 0 ;; esac
cp "$dir/v1.json" "$dir/hub.json"
hub=$(serve hub 50271 --policy "$dir/hub.json" --refresh-interval 100ms --publish-addr 127.0.0.1:50270)
wait_revision 127.0.0.1:50271 "$r1" 600
side=$(serve sidecar 50272 --upstream http://127.0.0.1:50270/v1/policy --refresh-interval 1h)
echo 5 >"/proc/$hub/clear_refs"
measure "hub→sidecar" "$side" 127.0.0.1:50272 change_file "$dir/v2.json" "$dir/hub.json"
printf '%-9s steady —          peak during refresh %5s MiB (the hub compiles the JSON once for the fleet)\n' hub "$(mib "$(kib "$hub" VmHWM)")"
grep -h '"policy loaded"\|policy loaded' "$dir/sidecar/serve.log" | tail -1 | grep -o 'propagation_delay=[^ ]*' || true
