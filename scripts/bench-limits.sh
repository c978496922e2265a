#!/usr/bin/env bash
# Start and refresh limits of one sidecar by policy size, for sizing its
# memory limit. For each size (subjects) and each delivery (the canonical
# JSON document, or a bundle from rolecall policy build), from a file
# upstream:
#   first load   peak RSS (VmHWM) from start until revision 1 is served
#   steady       RSS with revision 1 loaded, after a few seconds
#   refresh      peak RSS (VmHWM reset through /proc/PID/clear_refs) and time
#                while revision 2 is installed
#   warm start   time from starting again on the filled cache to serving,
#                with the upstream file gone
# Usage: bash scripts/bench-limits.sh [SIZES]   (default "10000 100000 1000000";
# the largest needs several GB and minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${1:-10000 100000 1000000}
dir=$(mktemp -d)
trap 'for f in "$dir"/*/pid; do kill "$(cat "$f")" 2>/dev/null || true; done; rm -rf "$dir"' EXIT
go build -o "$dir/rolecall" ./cmd/rolecall
rc="$dir/rolecall"
admin=127.0.0.1:50292

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }
served() { curl -sf "http://$admin/v1/status" | sed -n 's/.*"revision": *"\([^"]*\)".*/\1/p'; }
wait_served() { # revision, limit in seconds
  local deadline=$(( $(date +%s) + $2 ))
  until [ "$(served || true)" = "$1" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for $1" >&2; exit 1; }
    sleep 0.01
  done
}
serve() { # name, policy file
  mkdir -p "$dir/$1"
  "$rc" serve --grpc-addr "" --authz-addr "" --admin-addr "$admin" --unix-socket "$dir/$1/s.sock" \
    --cache "$dir/$1/c.db" --policy "$2" --refresh-interval 100ms >>"$dir/$1/log" 2>&1 &
  echo $! >"$dir/$1/pid"
  echo $!
}
stop() { kill "$1"; while kill -0 "$1" 2>/dev/null; do sleep 0.05; done; }

printf '%-9s %-8s %10s %12s %10s %12s %9s %10s\n' subjects delivery "doc MB" "first peak" steady "refresh peak" refresh "warm start"
for n in $sizes; do
  orgs=$(( n / 100 > 10 ? n / 100 : 10 ))
  for seed in 1 2; do
    "$rc" policy generate --subjects "$n" --orgs "$orgs" --roles 200 --memberships-per-subject 2 \
      --seed "$seed" --checks 1 --out "$dir/v$seed.json" 2>/dev/null
    "$rc" policy build "$dir/v$seed.json" -o "$dir/v$seed.snap" 2>/dev/null
  done
  r1=$(sed -n 's/.*"revision": *"\([^"]*\)".*/\1/p' "$dir/v1.json" | head -1)
  r2=$(sed -n 's/.*"revision": *"\([^"]*\)".*/\1/p' "$dir/v2.json" | head -1)
  for ext in json snap; do
    name="$n-$ext"
    cp "$dir/v1.$ext" "$dir/p.$ext"
    pid=$(serve "$name" "$dir/p.$ext")
    wait_served "$r1" 900
    first=$(kib "$pid" VmHWM)
    sleep 3
    steady=$(kib "$pid" VmRSS)
    echo 5 >"/proc/$pid/clear_refs"
    start=$(now)
    cp "$dir/v2.$ext" "$dir/p.$ext.new" && mv "$dir/p.$ext.new" "$dir/p.$ext"
    wait_served "$r2" 900
    took=$(since "$start")
    peak=$(kib "$pid" VmHWM)
    stop "$pid"
    rm "$dir/p.$ext"
    start=$(now)
    pid=$(serve "$name" "$dir/p.$ext")
    wait_served "$r2" 900
    warm=$(since "$start")
    stop "$pid"
    printf '%-9s %-8s %10.1f %9s MiB %6s MiB %8s MiB %8ss %9ss\n' "$n" "$([ $ext = json ] && echo JSON || echo bundle)" \
      "$(awk -v b="$(stat -c %s "$dir/v1.$ext")" 'BEGIN {print b / 1e6}')" "$(mib "$first")" "$(mib "$steady")" "$(mib "$peak")" "$took" "$warm"
  done
done
