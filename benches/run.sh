#!/usr/bin/env bash
# Reproduce docs/benchmarks.md: build release, start tenure on a free
# loopback port with a throw-away store, run each load scenario three times
# (10 s measured after 2 s warmup, 32 connections) and the revoke-user
# benchmark, then stop the server. Loopback only; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
# The server and the load generator (its own crate, bench/): both land in
# target/release/ (one workspace target directory).
cargo build --release -p tenure -p tenure-bench >/dev/null
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
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
(cd "$work" && exec "$OLDPWD/target/release/tenure" --config tenure.toml >server.out 2>server.err) &
server=$!
for _ in $(seq 50); do grep -q listening "$work/server.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -nE 's/^tenure listening on (http:\/\/[^ ]+).*/\1/p' "$work/server.out")
bench=target/release/tenure-bench
flow=(--url "$url" --client-id web --client-secret web-secret --redirect-uri http://127.0.0.1:9000/callback --username alice --password alice-password)
# One unmeasured run first: the machine has just built the release binary.
"$bench" token-cc --url "$url" --client-id bench --client-secret bench-secret --duration 5s --warmup 1s >/dev/null 2>&1 || true
run() { for i in 1 2 3; do "$bench" "$@" --connections 32 --duration 10s --warmup 2s --json 2>/dev/null; done; }
echo "# token-cc";                run token-cc --url "$url" --client-id bench --client-secret bench-secret --scope orders:read
echo "# refresh, scope profile";  run refresh "${flow[@]}" --scope profile
echo "# refresh, scope openid";   run refresh "${flow[@]}" --scope openid
echo "# refresh DPoP (public client, a fresh ES256 proof per refresh), scope profile"
run refresh --dpop --url "$url" --client-id spa --redirect-uri http://127.0.0.1:9000/callback \
    --username alice --password alice-password --scope profile
echo "# introspect";              run introspect "${flow[@]}" --scope openid
kill "$server"; wait "$server" 2>/dev/null || true
echo "# revoke-user"
cargo bench --bench revoke_user 2>/dev/null
