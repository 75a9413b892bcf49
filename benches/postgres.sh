#!/usr/bin/env bash
# tenure on PostgreSQL beside sled, in one sitting (issue: several replicas).
#
#   benches/postgres.sh [target/release/tenure]
#
# Starts a throwaway PostgreSQL from Debian's binaries in a temporary
# directory (as the `postgres` user when run as root), durable as tenure
# requires: fsync=on, synchronous_commit=on. Then, for each scenario, three
# 10 s runs (after 2 s of warm-up, 32 connections in all) of:
#   sled        one tenure on the embedded store
#   pg-1        one tenure on PostgreSQL
#   pg-2        two tenure replicas on the same database, 16 connections each
#               (two load generators at once; their rates are added)
# each on a fresh store or database. Prints one JSON line per run, then the
# medians. Loopback only; bounded in time (about 6 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
tenure=$(realpath "${1:-target/release/tenure}")
bench=$(realpath "$(dirname "$tenure")/tenure-bench")
[ -x "$bench" ] || { echo "no tenure-bench next to $tenure: cargo build --release -p tenure -p tenure-bench" >&2; exit 2; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "no PostgreSQL under /usr/lib/postgresql (apt install postgresql)" >&2; exit 2; }

duration=${BENCH_DURATION:-10s}  # shorter for a smoke run: BENCH_DURATION=2s
work=$(mktemp -d)
chmod 755 "$work"
servers=()
started=()  # every server pid, to check at the end that none is left
pg_pid=""
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for s in "${servers[@]}"; do kill "$s" 2>/dev/null || true; done
  [ -n "$pg_pid" ] && kill "$pg_pid" 2>/dev/null && wait "$pg_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/pg" "$work/sock"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg" "$work/sock"
as_pg "$pgbin/initdb" -D "$work/pg/data" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$pgbin/postgres" -D "$work/pg/data" -c listen_addresses=127.0.0.1 -c port="$port" \
  -c unix_socket_directories="$work/sock" -c fsync=on -c synchronous_commit=on \
  -c max_connections=200 -c shared_buffers=128MB -c log_min_messages=warning >"$work/pg.log" 2>&1 &
pg_pid=$!
for _ in $(seq 100); do "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" && break; sleep 0.1; done
admin="postgres://postgres@127.0.0.1:$port/postgres"

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

[[users]]
username = "alice"
password = "alice-password"
TOML

fresh_db() {
  psql -q "$admin" -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench" >/dev/null
  TENURE_STORE=postgres TENURE_DATABASE_URL="postgres://postgres@127.0.0.1:$port/bench" \
    "$tenure" --config "$work/tenure.toml" migrate >/dev/null
}
# Not called inside $(...): a subshell would keep the pid it records and
# stop_all would stop nothing (every run then left its servers behind).
start() { # mode index -> sets $url
  local mode=$1 i=$2 out="$work/server-$2.out"
  : > "$out"
  if [ "$mode" = sled ]; then
    (cd "$work" && exec env TENURE_DATA_DIR="$work/data" TENURE_KEYS_DIR="$work/keys" \
      "$tenure" --config tenure.toml >"$out" 2>"$work/server-$i.err") &
  else
    (cd "$work" && exec env TENURE_STORE=postgres TENURE_DATABASE_URL="postgres://postgres@127.0.0.1:$port/bench" \
      TENURE_DATABASE_POOL_SIZE=32 TENURE_KEYS_DIR="$work/keys" TENURE_ISSUER="http://tenure.bench.invalid" \
      "$tenure" --config tenure.toml >"$out" 2>"$work/server-$i.err") &
  fi
  servers+=($!); started+=($!)
  for _ in $(seq 200); do grep -q listening "$out" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -nE 's/^tenure listening on (http:\/\/[^ ]+).*/\1/p' "$out")
}
stop_all() { for s in "${servers[@]}"; do kill "$s" 2>/dev/null || true; wait "$s" 2>/dev/null || true; done; servers=(); }
args_for() { # scenario url
  case $1 in
    token-cc) echo token-cc --url "$2" --client-id bench --client-secret bench-secret --scope orders:read ;;
    refresh) echo refresh --scope profile --url "$2" --client-id web --client-secret web-secret \
      --redirect-uri http://127.0.0.1:9000/callback --username alice --password alice-password ;;
    introspect) echo introspect --scope openid --url "$2" --client-id web --client-secret web-secret \
      --redirect-uri http://127.0.0.1:9000/callback --username alice --password alice-password ;;
  esac
}
run() { # scenario mode run
  local scen=$1 mode=$2 n=$3
  rm -rf "$work/data" "$work/keys"
  [ "$mode" != sled ] && fresh_db
  if [ "$mode" = pg-2 ]; then
    start pg 0; a=$url; start pg 1; b=$url
    # shellcheck disable=SC2046
    "$bench" $(args_for "$scen" "$a") --connections 16 --duration "$duration" --warmup 2s --json >"$work/a.json" 2>/dev/null &
    pa=$!
    # shellcheck disable=SC2046
    "$bench" $(args_for "$scen" "$b") --connections 16 --duration "$duration" --warmup 2s --json >"$work/b.json" 2>/dev/null || echo '{"error":"failed"}' >"$work/b.json"
    wait "$pa" || echo '{"error":"failed"}' >"$work/a.json"
    out=$(python3 - "$work/a.json" "$work/b.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print(json.dumps({"rps": a.get("rps", 0) + b.get("rps", 0), "p99_ms": max(a.get("p99_ms", 0), b.get("p99_ms", 0)),
                  "errors": a.get("errors", 0) + b.get("errors", 0), "replicas": [a, b]}))
PY
)
  else
    start "${mode%%-*}" 0
    # shellcheck disable=SC2046
    out=$("$bench" $(args_for "$scen" "$url") --connections 32 --duration "$duration" --warmup 2s --json 2>/dev/null || echo '{"error":"failed"}')
  fi
  stop_all
  echo "{\"scenario\":\"$scen\",\"mode\":\"$mode\",\"run\":$n,\"result\":$out}" | tee -a "$work/results.jsonl"
}
for scen in refresh token-cc introspect; do
  for n in 1 2 3; do
    for mode in sled pg-1 pg-2; do run "$scen" "$mode" "$n"; done
  done
done
stop_all
left=0
for s in "${started[@]}"; do kill -0 "$s" 2>/dev/null && { echo "postgres.sh: server $s is still running" >&2; left=$((left + 1)); }; done
echo "servers started: ${#started[@]}, still running: $left"
python3 - "$work/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\nmedians of 3 runs (req/s, p99 ms):")
for scen in ["refresh", "token-cc", "introspect"]:
    for mode in ["sled", "pg-1", "pg-2"]:
        rs = [r["result"] for r in rows if r["scenario"] == scen and r["mode"] == mode]
        rps = statistics.median(r.get("rps", 0) for r in rs)
        p99 = statistics.median(r.get("p99_ms", 0) for r in rs)
        print(f"  {scen:<11} {mode:<5} {rps:>9,.0f}/s  p99 {p99:.1f} ms")
PY
