#!/usr/bin/env bash
# Ladle write benchmark: POST /push throughput against a Redis online store, with the
# POST /floor endpoint (no store access) measured in the same server run as the floor.
#
# Usage (from anywhere; needs root only to apt-get install wrk when it is missing):
#
#     bash bench/push.sh
#
# What it does, every step time-bounded with `timeout`:
#   1. starts a throwaway redis-server on a free loopback port (never 6379);
#   2. `ladle init` writes the demo repo in a temp dir (push source
#      driver_stats_push_source -> view driver_hourly_stats_fresh), its online store is
#      switched to that Redis, then `ladle apply`;
#   3. serves bench.floor_app:app (Ladle's app + POST /floor) with hypercorn configured as
#      `ladle serve --workers $WORKERS --no-access-log` configures it: uvloop workers, no
#      access log, keep-alive connections never closed after N requests;
#   4. for each scenario (rows per push x connections): dumps the first body wrk will send
#      (bench/push-load-profile.lua itself writes it), POSTs it with curl (must be 200 with
#      an empty body), reads the pushed entities back with /get-online-features (values
#      and event timestamps must be the pushed ones), runs a warm-up, then the measured
#      `wrk --latency` run with CPU accounting and Redis `INFO commandstats` deltas
#      (EVALSHA = write-script calls, HSET = rows written, HGET = rows checked);
#   5. measures POST /floor with a 1-row /get-online-features body (bench/load-profile.lua)
#      at FLOOR_CONNS connections on the same server;
#   6. prints the markdown table (bench/report.py). Everything it started is killed on exit.
#
# Knobs (environment variables):
#   DURATION=10s     measured run length per scenario (N, Ns or Nm)
#   WARMUP=3s        warm-up length per scenario (0 to skip)
#   WORKERS=2        hypercorn worker processes
#   ROWS_LIST="1 100"   rows per push
#   CONNS_LIST="1 16"   wrk connections (1 -> -t1 and NTHREADS=1, more -> -t2 and NTHREADS=2)
#   FLOOR_CONNS=16      connections for the POST /floor run(s); "" skips the floor
#   TO=online        push target: online or online_and_offline (offline is not measured:
#                    nothing could be read back to check it)
#   ID_START=1001    first driver id
#   ID_COUNT=100000  distinct driver ids the pushes rotate through (split per wrk thread)
#   RESULTS_DIR=bench/results/push-<UTC stamp>  (bench/results/latest-push links the newest)
#   WAIT_QUIET=30    seconds to wait for other load to settle (<=10% CPU) before measuring
#   RETRY_NOISY=0    measure a scenario again (up to N more times) when other processes
#                    took more than 15% CPU during it; the least disturbed attempt is kept
#   KEEP_TMP=1       keep the temp dir (repo) for inspection
#   PYTHON=.venv/bin/python   interpreter with Ladle installed
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_TAG=push
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"   # ROOT, PY, LADLE, HYPERCORN, log/die, cleanup trap, helpers
PUSH_LUA="$HERE/push-load-profile.lua"
FLOOR_LUA="$HERE/load-profile.lua"
REFERENCE_LUA=/work/shared/feast-reference/push-load-profile.lua

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
WORKERS=${WORKERS:-2}
ROWS_LIST=${ROWS_LIST:-"1 100"}
CONNS_LIST=${CONNS_LIST:-"1 16"}
FLOOR_CONNS=${FLOOR_CONNS-16}
TO=${TO:-online}
ID_START=${ID_START:-1001}
ID_COUNT=${ID_COUNT:-100000}
WAIT_QUIET=${WAIT_QUIET:-30}
RETRY_NOISY=${RETRY_NOISY:-0}
NOISY_PCT=15
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$HERE/results/push-$STAMP}
PUSH_SOURCE=driver_stats_push_source
PUSH_VIEW=driver_hourly_stats_fresh
PUSH_FEATURES=conv_rate,acc_rate,avg_daily_trips

DUR_S=$(seconds "$DURATION")
WARM_S=$(seconds "$WARMUP")
[[ "$DUR_S" =~ ^[0-9]+$ && "$DUR_S" -ge 1 ]] || die "DURATION=$DURATION: use N, Ns or Nm"
[[ "$WARM_S" =~ ^[0-9]+$ ]] || die "WARMUP=$WARMUP: use N, Ns or Nm"
[[ "$TO" == online || "$TO" == online_and_offline ]] || die "TO=$TO: use online or online_and_offline"
[[ -x "$PY" && -x "$LADLE" && -x "$HYPERCORN" ]] || die "need $ROOT/.venv with Ladle installed"
[[ -f "$PUSH_LUA" ]] || die "$PUSH_LUA is missing (copy $REFERENCE_LUA there, unchanged)"
if [[ -f "$REFERENCE_LUA" ]] && ! cmp -s "$PUSH_LUA" "$REFERENCE_LUA"; then
  log "WARNING: $PUSH_LUA differs from $REFERENCE_LUA"
fi

n_scen=0
for _ in $ROWS_LIST; do for _ in $CONNS_LIST; do n_scen=$((n_scen + 1)); done; done
for _ in $FLOOR_CONNS; do n_scen=$((n_scen + 1)); done
# Upper bound for the background processes' lifetime (they are killed long before).
BUDGET=$(( 300 + WAIT_QUIET + n_scen * (DUR_S + WARM_S + 45 + RETRY_NOISY * (DUR_S + 25)) ))

# ---------------------------------------------------------------- 1. tools + redis ------
ensure_tool wrk
command -v redis-server >/dev/null 2>&1 || die "redis-server not found (apt-get install redis-server)"
command -v curl >/dev/null 2>&1 || die "curl not found"

prepare_results latest-push
TMP=$(mktemp -d /tmp/ladle-push-bench.XXXXXX)
REPO="$TMP/repo"

read -r REDIS_PORT SERVER_PORT <<< "$(free_ports 2)"
[[ "$REDIS_PORT" != 6379 && "$SERVER_PORT" != 6379 ]] || die "port picker returned 6379"
log "results -> $RESULTS_DIR"
log "redis 127.0.0.1:$REDIS_PORT, server 127.0.0.1:$SERVER_PORT, $WORKERS worker(s), temp $TMP"
LOGFILE="$RESULTS_DIR/raw/redis.log"
start_redis "$REDIS_PORT"

# ---------------------------------------------------------------- 2. repo ---------------
timeout 120 "$LADLE" init "$REPO" > "$RESULTS_DIR/raw/init.txt" 2>&1 \
  || { cat "$RESULTS_DIR/raw/init.txt" >&2; die "ladle init failed"; }
# The demo repo uses the embedded SQLite store; point it at the throwaway Redis instead.
"$PY" - "$REPO/feature_store.yaml" "127.0.0.1:$REDIS_PORT" <<'EOF' || die "cannot switch the repo to Redis"
import re, sys
path, address = sys.argv[1:]
text = open(path).read()
block = f'online_store:\n  type: redis\n  connection_string: "{address}"\n'
new, count = re.subn(r"online_store:\n(?:  .*\n)+", block, text)
if count != 1:
    sys.exit(f"{path}: no online_store block to replace")
open(path, "w").write(new)
EOF
grep -q "connection_string: \"127.0.0.1:$REDIS_PORT\"" "$REPO/feature_store.yaml" \
  || die "the repo does not point at the benchmark redis"
timeout 300 "$LADLE" -c "$REPO" apply > "$RESULTS_DIR/raw/apply.txt" 2>&1 \
  || { cat "$RESULTS_DIR/raw/apply.txt" >&2; die "ladle apply failed"; }
grep -q "feature view $PUSH_VIEW" "$RESULTS_DIR/raw/apply.txt" \
  || die "ladle init's repo has no view $PUSH_VIEW (see raw/apply.txt)"

# ---------------------------------------------------------------- 3. server -------------
# hypercorn's CLI has no flag for keep_alive_max_requests; app/server.py (ladle serve)
# sets it to 2**31, so do the same through a config file.
cat > "$TMP/hypercorn.toml" <<'EOF'
keep_alive_max_requests = 2147483648
EOF
LOGFILE="$RESULTS_DIR/raw/server.log"
export LADLE_REPO="$REPO"
start_server bench.floor_app:app --config "$TMP/hypercorn.toml"
log "server up (group $SERVER_GROUP, workers: $WORKER_PIDS)"

"$PY" "$HERE/meta.py" "$RESULTS_DIR/meta.json" --root "$ROOT" --stamp "$STAMP" \
  --packages hypercorn starlette msgspec redis hiredis uvloop \
  --set server "hypercorn --config keep_alive_max_requests=2**31 --worker-class uvloop --workers $WORKERS bench.floor_app:app (no access log)" \
  --set repo "ladle init, online store switched to the throwaway redis" \
  --set knobs "{\"DURATION\": \"$DURATION\", \"WARMUP\": \"$WARMUP\", \"WORKERS\": $WORKERS, \"ROWS_LIST\": \"$ROWS_LIST\", \"CONNS_LIST\": \"$CONNS_LIST\", \"FLOOR_CONNS\": \"$FLOOR_CONNS\", \"TO\": \"$TO\", \"ID_START\": $ID_START, \"ID_COUNT\": $ID_COUNT}"

# ---------------------------------------------------------------- 4. scenarios ----------
# One measured attempt (or several with RETRY_NOISY), then the least disturbed one goes
# into results.jsonl. Extra key=value fields for report.py --merge come as arguments.
measure_attempts() {  # label threads conns url -- fields...
  local label=$1 threads=$2 conns=$3 url=$4; shift 4
  local attempt tag out other merged=() c0 c1 keys delta
  for (( attempt = 0; attempt <= RETRY_NOISY; attempt++ )); do
    tag=$label; (( attempt > 0 )) && tag="$label.retry$attempt"
    out="$RESULTS_DIR/raw/$tag.json"
    rm -f "$out"
    read -r -a c0 <<< "$(redis_calls evalsha hset hget)"
    measure "$tag" "$threads" "$conns" "$url" "$out"
    sleep 1   # let requests still in flight when wrk stopped finish their writes
    read -r -a c1 <<< "$(redis_calls evalsha hset hget)"
    keys=$(rcli dbsize)
    delta="evalsha=$(( c1[0] - c0[0] )) hset=$(( c1[1] - c0[1] )) hget=$(( c1[2] - c0[2] ))"
    # shellcheck disable=SC2086
    other=$("$PY" "$HERE/report.py" --merge "$out" "$RESULTS_DIR/raw/$tag.merged.json" \
      "$@" conns="$conns" threads="$threads" workers="$WORKERS" attempt="$attempt" \
      $delta keys_after="$keys" cpu="$CPU_SAMPLE")
    log "$tag: redis commandstats during the run: $delta; DBSIZE now $keys"
    merged+=("$RESULTS_DIR/raw/$tag.merged.json")
    (( other <= NOISY_PCT )) && break
    (( attempt < RETRY_NOISY )) && log "$label: other processes took ${other}% CPU; measuring again"
  done
  "$PY" "$HERE/report.py" --pick "$RESULTS" "${merged[@]}"
}

run_push() {  # rows conns
  local rows=$1 conns=$2 threads label body code
  threads=$(threads_for "$conns")
  label="push_c${conns}_r${rows}"
  body="$RESULTS_DIR/raw/$label.body.json"
  kill -0 "$SERVER_GROUP" 2>/dev/null || die "server died before $label"
  export ROWS=$rows TO PUSH_SOURCE ID_START ID_COUNT NTHREADS=$threads LABEL=$label
  LUA=$PUSH_LUA   # measure() runs $LUA

  # The body is dumped right before it is sent: its event timestamps are "now", so they
  # are newer than anything earlier runs stored for these ids and the push must win.
  wrk_dump_body "$LUA" "$body" || die "could not dump the $label body with wrk"
  code=$(curl -sS -m 10 -o "$RESULTS_DIR/raw/$label.sanity.push.txt" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary @"$body" "$BASE/push") || code=000
  "$PY" "$HERE/check.py" pushed "$body" --http-code "$code" \
    --response "$RESULTS_DIR/raw/$label.sanity.push.txt" --url "$BASE/get-online-features" \
    --view "$PUSH_VIEW" --features "$PUSH_FEATURES" > "$RESULTS_DIR/raw/$label.sanity.txt" 2>&1 \
    || { cat "$RESULTS_DIR/raw/$label.sanity.txt" >&2
         die "sanity check for $label: POST $BASE/push with $body"; }
  log "$label: $(cat "$RESULTS_DIR/raw/$label.sanity.txt")"

  if (( WARM_S > 0 )); then
    RESULT_FILE="$RESULTS_DIR/raw/$label.warmup.json" \
      bounded $((WARM_S + 20)) wrk -t"$threads" -c"$conns" -d"${WARM_S}s" --latency \
      -s "$LUA" "$BASE/push" > "$RESULTS_DIR/raw/$label.warmup.txt" 2>&1 \
      || die "warm-up wrk for $label failed or timed out"
    sleep 1   # the measured run must start in a later second (see the Lua header)
  fi
  measure_attempts "$label" "$threads" "$conns" "$BASE/push" endpoint=/push id_count="$ID_COUNT"
}

run_floor() {  # conns
  local conns=$1 threads label body code
  threads=$(threads_for "$conns")
  label="floor_c${conns}_r1"
  body="$RESULTS_DIR/raw/$label.body.json"
  kill -0 "$SERVER_GROUP" 2>/dev/null || die "server died before $label"
  export ROWS=1 ID_START ID_COUNT=1000 LABEL=$label
  unset NTHREADS
  LUA=$FLOOR_LUA   # measure() runs $LUA
  wrk_dump_body "$LUA" "$body" || die "could not dump the $label body with wrk"
  code=$(curl -sS -m 5 -o "$RESULTS_DIR/raw/$label.sanity.json" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary @"$body" "$BASE/floor") || code=000
  "$PY" "$HERE/check.py" response "$RESULTS_DIR/raw/$label.sanity.json" --http-code "$code" \
    --body "$body" --floor > "$RESULTS_DIR/raw/$label.sanity.txt" 2>&1 \
    || { cat "$RESULTS_DIR/raw/$label.sanity.txt" >&2; die "sanity check for $label"; }
  if (( WARM_S > 0 )); then
    RESULT_FILE="$RESULTS_DIR/raw/$label.warmup.json" \
      bounded $((WARM_S + 20)) wrk -t"$threads" -c"$conns" -d"${WARM_S}s" --latency \
      -s "$LUA" "$BASE/floor" > "$RESULTS_DIR/raw/$label.warmup.txt" 2>&1 \
      || die "warm-up wrk for $label failed or timed out"
  fi
  measure_attempts "$label" "$threads" "$conns" "$BASE/floor" endpoint=/floor
}

wait_quiet
log "scenarios: rows/push [$ROWS_LIST] x conns [$CONNS_LIST] to=$TO, then /floor at" \
    "conns [$FLOOR_CONNS]; warm-up ${WARM_S}s + ${DUR_S}s each"
for rows in $ROWS_LIST; do
  for conns in $CONNS_LIST; do
    run_push "$rows" "$conns"
  done
done
for conns in $FLOOR_CONNS; do
  run_floor "$conns"
done

kill -0 "$SERVER_GROUP" 2>/dev/null || die "server died during the run"
if grep -qE 'Traceback|ERROR' "$RESULTS_DIR/raw/server.log"; then
  log "WARNING: the server log has errors: $RESULTS_DIR/raw/server.log"
fi
log "redis after the run: DBSIZE $(rcli dbsize), used_memory" \
    "$(redis_info_field memory used_memory_human)"
rcli info commandstats | tr -d '\r' > "$RESULTS_DIR/raw/redis_commandstats.txt"

# ---------------------------------------------------------------- 5. report -------------
"$PY" "$HERE/report.py" "$RESULTS" | tee "$RESULTS_DIR/table.md"
log "done: $RESULTS_DIR (table.md, results.jsonl, meta.json, raw/)"
