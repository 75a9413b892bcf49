#!/usr/bin/env bash
# Compare two builds of tenure in one sitting: BEFORE and AFTER are release
# binaries of the server (the load generator is the tenure-bench beside AFTER,
# built by `cargo build --release -p tenure-bench` in AFTER's tree, so both
# face the same client). For each scenario the two servers run alternately,
# three times each (10 s measured after 2 s warmup, 32 connections), each on
# a fresh throw-away store. Loopback only; bounded in time.
#   benches/compare.sh OLD_TREE/target/release/tenure target/release/tenure
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(realpath "$1"); after=$(realpath "$2")
bench=$(realpath "$(dirname "$after")/tenure-bench")
if [ ! -x "$bench" ]; then
  echo "compare.sh: no load generator at $bench: build it with 'cargo build --release -p tenure-bench'" >&2
  exit 2
fi
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/tenure.toml" <<'TOML'
listen = "127.0.0.1:0"
log = "warn"

[[clients]]
id = "bench"
secret = "bench-secret"
grant_types = ["client_credentials"]
scopes = ["orders:read"]

[[clients]]
id = "web"
secret = "web-secret"
redirect_uris = ["http://127.0.0.1:9000/callback"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "profile", "email"]

[[clients]]
id = "spa"
public = true
redirect_uris = ["http://127.0.0.1:9000/callback"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid", "profile", "email"]

[[users]]
username = "alice"
password = "alice-password"
TOML
start() { # binary -> sets $server and $url
  rm -rf "$work/data" "$work/keys"
  (cd "$work" && exec "$1" --config tenure.toml >server.out 2>server.err) &
  server=$!
  for _ in $(seq 100); do grep -q listening "$work/server.out" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -nE 's/^tenure listening on (http:\/\/[^ ]+).*/\1/p' "$work/server.out")
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; : > "$work/server.out"; }
flow() { echo --url "$url" --client-id web --client-secret web-secret --redirect-uri http://127.0.0.1:9000/callback --username alice --password alice-password; }
scenario() { # name args...
  local name=$1; shift
  for i in 1 2 3; do
    for side in before after; do
      start "${!side}"
      # shellcheck disable=SC2046
      out=$("$bench" "$@" $( [ "$name" = token-cc ] && echo --url "$url" --client-id bench --client-secret bench-secret --scope orders:read || flow ) --connections 32 --duration 10s --warmup 2s --json 2>/dev/null || echo '{"error":"failed"}')
      echo "{\"scenario\":\"$name\",\"side\":\"$side\",\"run\":$i,\"result\":$out}"
      stop
    done
  done
}
# One unmeasured warm-up of each binary.
for side in before after; do start "${!side}"; "$bench" token-cc --url "$url" --client-id bench --client-secret bench-secret --duration 3s --warmup 1s >/dev/null 2>&1 || true; stop; done
scenario token-cc token-cc
scenario refresh-profile refresh --scope profile
scenario refresh-openid refresh --scope openid
scenario introspect introspect --scope openid
# AFTER only: a public client's refresh chains with and without DPoP proofs
# (a fresh ES256 proof per refresh), alternating.
for i in 1 2 3; do
  for mode in plain dpop; do
    start "$after"
    extra=(); [ "$mode" = dpop ] && extra=(--dpop)
    out=$("$bench" refresh "${extra[@]}" --url "$url" --client-id spa --redirect-uri http://127.0.0.1:9000/callback \
      --username alice --password alice-password --scope profile --connections 32 --duration 10s --warmup 2s --json 2>/dev/null || echo '{"error":"failed"}')
    echo "{\"scenario\":\"refresh-public-$mode\",\"side\":\"after\",\"run\":$i,\"result\":$out}"
    stop
  done
done
