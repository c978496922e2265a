#!/usr/bin/env bash
# Check latency while a large JSON policy is refreshed: rolecall bench against
# one server over loopback TCP, first idle, then while revision 2 of the policy
# replaces revision 1 (copied in one second into the phase). The ratio of the
# two p99.9 figures is the measure; client and server share the machine.
# Usage: bash scripts/bench-refresh-tail.sh [SUBJECTS] [SECONDS]
# (default 1000000 subjects, 8 s phases; a million needs about 1 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
secs=${2:-8}
dir=$(mktemp -d)
trap 'kill "$(cat "$dir/pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$dir"' EXIT
go build -o "$dir/rolecall" ./cmd/rolecall
rc="$dir/rolecall"
admin=127.0.0.1:50296
grpc=127.0.0.1:50297
orgs=$(( n / 100 > 10 ? n / 100 : 10 ))
for seed in 1 2; do
  "$rc" policy generate --subjects "$n" --orgs "$orgs" --roles 200 --memberships-per-subject 2 \
    --seed "$seed" --checks 1 --out "$dir/v$seed.json" 2>/dev/null
done
revision() { sed -n 's/.*"revision": *"\([^"]*\)".*/\1/p' "$1" | head -1; }
served() { curl -sf "http://$admin/v1/status" | sed -n 's/.*"revision": *"\([^"]*\)".*/\1/p'; }
wait_served() {
  local deadline=$(( $(date +%s) + 600 ))
  until [ "$(served || true)" = "$1" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for $1" >&2; exit 1; }
    sleep 0.05
  done
}
cp "$dir/v1.json" "$dir/p.json"
"$rc" serve --authz-addr "" --admin-addr "$admin" --grpc-addr "$grpc" --unix-socket "$dir/s.sock" \
  --cache "$dir/c.db" --policy "$dir/p.json" --refresh-interval 100ms >"$dir/log" 2>&1 &
echo $! >"$dir/pid"
wait_served "$(revision "$dir/v1.json")"
sleep 2
echo "idle:"
"$rc" bench --addr "$grpc" --policy "$dir/v1.json" --generate --duration "${secs}s" --no-health
( sleep 1; cp "$dir/v2.json" "$dir/p.json.new" && mv "$dir/p.json.new" "$dir/p.json" ) &
echo "during the refresh:"
"$rc" bench --addr "$grpc" --policy "$dir/v1.json" --generate --duration "${secs}s" --no-health
wait_served "$(revision "$dir/v2.json")"
grep 'policy loaded' "$dir/log" | tail -1 | grep -o 'decode=.*'
