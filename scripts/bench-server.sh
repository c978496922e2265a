#!/usr/bin/env bash
# Runs rolecall bench against a fresh rolecall serve on the example policy,
# over TCP and a Unix socket at concurrency 1, 16 and 64, with the server's
# CPU time read from /proc. Prints one table per run. Usage:
#   bash scripts/bench-server.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5s}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
go build -o "$dir/rolecall" ./cmd/rolecall
"$dir/rolecall" serve --policy examples/bookstore.yaml --cache "$dir/rolecall.db" \
  --grpc-addr 127.0.0.1:50151 --unix-socket "$dir/rolecall.sock" --admin-addr "" --authz-addr "" \
  >"$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  "$dir/rolecall" check --addr 127.0.0.1:50151 --timeout 200ms --subject alice \
    --resource https://api.store.io/orders --action read:order >/dev/null 2>&1 && break
  sleep 0.1
done
for c in 1 16 64; do
  conns=$(( c < 4 ? 1 : 4 ))
  for target in "--addr 127.0.0.1:50151" "--unix-socket $dir/rolecall.sock"; do
    # shellcheck disable=SC2086
    "$dir/rolecall" bench $target --policy examples/bookstore.yaml --generate \
      --concurrency "$c" --connections "$conns" --duration "$duration" --server-pid "$pid"
    echo
  done
done
