#!/usr/bin/env bash
# Ladle HTTP benchmark: POST /get-online-features against a Redis online store, next to
# POST /floor (same server, same process, no store access) as the framework floor.
#
# Usage (from anywhere; needs root only to apt-get install wrk when it is missing):
#
#     bash bench/run.sh
#
# What it does, every step time-bounded with `timeout`:
#   1. installs wrk with apt-get if missing;
#   2. starts a throwaway redis-server on a free loopback port (never 6379);
#   3. writes a feature repo in a temp dir with bench/dataset.py (Redis online store),
#      then runs `ladle apply` and `ladle materialize START now`;
#   4. serves bench.floor_app:app (Ladle's app + POST /floor) with
#      `hypercorn --worker-class uvloop --workers $WORKERS`, access log off;
#   5. checks every entity id is served PRESENT, then for each scenario
#      (rows x connections x endpoint): sanity curl with the exact wrk body, a warm-up
#      run, a measured `wrk --latency` run with bench/load-profile.lua, CPU accounting;
#   6. prints the markdown table (bench/report.py). Everything it started is killed on exit.
#
# Knobs (environment variables):
#   DURATION=10s     measured run length per scenario (N, Ns or Nm)
#   WARMUP=3s        warm-up length per scenario (0 to skip)
#   WORKERS=2        hypercorn worker processes
#   ENTITIES=1000    drivers in the dataset (ids ID_START..ID_START+ENTITIES-1)
#   ID_START=1001    first driver id
#   VIEWS=1          feature views in the dataset (3 features each)
#   FEATURES=...     comma-separated feature refs to request
#                    (default: every feature of every view; 3 features for VIEWS=1)
#   FULL_NAMES=0|1   send "full_feature_names": true (default 1 when VIEWS > 1, since the
#                    views share feature names)
#   NBODIES=200      distinct request bodies per wrk thread (Lua knob): with many
#                    ENTITIES raise it so the bodies cover more ids (200 x ROWS ids)
#   ROWS_LIST="1 10"                          entity rows per request
#   CONNS_LIST="1 16"                         wrk connections (1 -> -t1, more -> -t2)
#   ENDPOINTS="get-online-features floor"     endpoints to measure
#   RESULTS_DIR=bench/results/<UTC stamp>     where results go (bench/results/latest links it)
#   WAIT_QUIET=30    seconds to wait for other load on the machine to settle (<=10% CPU)
#                    before measuring; the run goes ahead (with a warning) after that
#   RETRY_NOISY=0    measure a scenario again (up to N more times) when other processes
#                    took more than 15% CPU during it; the least disturbed attempt is kept
#   KEEP_TMP=1       keep the temp dir (repo, data) for inspection
#   PYTHON=.venv/bin/python                   interpreter with Ladle installed
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"   # ROOT, PY, LADLE, HYPERCORN, log/die, cleanup trap, helpers
LUA="$HERE/load-profile.lua"

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
WORKERS=${WORKERS:-2}
ENTITIES=${ENTITIES:-1000}
ID_START=${ID_START:-1001}
VIEWS=${VIEWS:-1}
ROWS_LIST=${ROWS_LIST:-"1 10"}
CONNS_LIST=${CONNS_LIST:-"1 16"}
ENDPOINTS=${ENDPOINTS:-"get-online-features floor"}
KEEP_TMP=${KEEP_TMP:-0}
WAIT_QUIET=${WAIT_QUIET:-30}
RETRY_NOISY=${RETRY_NOISY:-0}
NOISY_PCT=15
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$HERE/results/$STAMP}

DUR_S=$(seconds "$DURATION")
WARM_S=$(seconds "$WARMUP")
[[ "$DUR_S" =~ ^[0-9]+$ && "$DUR_S" -ge 1 ]] || die "DURATION=$DURATION: use N, Ns or Nm"
[[ "$WARM_S" =~ ^[0-9]+$ ]] || die "WARMUP=$WARMUP: use N, Ns or Nm"
[[ -x "$PY" && -x "$LADLE" && -x "$HYPERCORN" ]] || die "need $ROOT/.venv with Ladle installed"

n_scen=0
for _ in $ROWS_LIST; do for _ in $CONNS_LIST; do for _ in $ENDPOINTS; do
  n_scen=$((n_scen + 1)); done; done; done
# Upper bound for the background processes' lifetime (they are killed long before).
BUDGET=$(( 300 + WAIT_QUIET + n_scen * (DUR_S + WARM_S + 40 + RETRY_NOISY * (DUR_S + 25)) ))

# ---------------------------------------------------------------- 1. wrk ----------------
ensure_tool wrk
command -v redis-server >/dev/null 2>&1 || die "redis-server not found (apt-get install redis-server)"
command -v curl >/dev/null 2>&1 || die "curl not found"

prepare_results latest
TMP=$(mktemp -d /tmp/ladle-bench.XXXXXX)
REPO="$TMP/repo"

read -r REDIS_PORT SERVER_PORT <<< "$(free_ports 2)"
[[ "$REDIS_PORT" != 6379 && "$SERVER_PORT" != 6379 ]] || die "port picker returned 6379"
BASE="http://127.0.0.1:$SERVER_PORT"
log "results -> $RESULTS_DIR"
log "redis 127.0.0.1:$REDIS_PORT, server 127.0.0.1:$SERVER_PORT, $WORKERS worker(s), temp $TMP"

# ---------------------------------------------------------------- 2. redis --------------
LOGFILE="$RESULTS_DIR/raw/redis.log"
start_redis "$REDIS_PORT"

# ---------------------------------------------------------------- 3. repo + data --------
log "dataset: $ENTITIES drivers from $ID_START, $VIEWS view(s)"
timeout 600 "$PY" "$HERE/dataset.py" --repo "$REPO" --redis "127.0.0.1:$REDIS_PORT" \
  --entities "$ENTITIES" --id-start "$ID_START" --views "$VIEWS" \
  || die "bench/dataset.py failed"
if [[ -z "${FEATURES:-}" ]]; then
  FEATURES=$("$PY" -c 'import json,sys; print(",".join(json.load(open(sys.argv[1]))["features"]))' \
    "$REPO/bench_meta.json")
fi
export FEATURES
# Views share feature names, so several views need Feast's full_feature_names.
if [[ -z "${FULL_NAMES:-}" ]]; then
  if (( VIEWS > 1 )); then FULL_NAMES=1; else FULL_NAMES=0; fi
fi
export FULL_NAMES
timeout 300 "$LADLE" -c "$REPO" apply > "$RESULTS_DIR/raw/apply.txt" 2>&1 \
  || { cat "$RESULTS_DIR/raw/apply.txt" >&2; die "ladle apply failed"; }
MAT_START=$(date -u -d '-2 days' +%Y-%m-%dT%H:%M:%S)
log "ladle materialize $MAT_START now"
timeout 900 "$LADLE" -c "$REPO" materialize "$MAT_START" now \
  > "$RESULTS_DIR/raw/materialize.txt" 2>&1 \
  || { cat "$RESULTS_DIR/raw/materialize.txt" >&2; die "ladle materialize failed"; }
grep 'entities read' "$RESULTS_DIR/raw/materialize.txt" >&2 || true
KEYS=$(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" dbsize)
log "redis holds $KEYS keys"

# ---------------------------------------------------------------- 4. server -------------
LOGFILE="$RESULTS_DIR/raw/server.log"
export LADLE_REPO="$REPO"
start_server bench.floor_app:app
log "server up (group $SERVER_GROUP, workers: $WORKER_PIDS)"

timeout 300 "$PY" "$HERE/check.py" coverage "$BASE/get-online-features" \
  --id-start "$ID_START" --id-count "$ENTITIES" --features "$FEATURES" \
  --full-names "$FULL_NAMES" >&2 \
  || die "coverage check failed"

# Record the setup.
"$PY" "$HERE/meta.py" "$RESULTS_DIR/meta.json" --root "$ROOT" --stamp "$STAMP" \
  --packages hypercorn starlette msgspec redis hiredis uvloop \
  --set server "hypercorn --worker-class uvloop --workers $WORKERS bench.floor_app:app (no access log)" \
  --set knobs "{\"DURATION\": \"$DURATION\", \"WARMUP\": \"$WARMUP\", \"WORKERS\": $WORKERS, \"ENTITIES\": $ENTITIES, \"ID_START\": $ID_START, \"VIEWS\": $VIEWS, \"FEATURES\": \"$FEATURES\", \"FULL_NAMES\": \"$FULL_NAMES\", \"NBODIES\": \"${NBODIES:-200}\", \"ROWS_LIST\": \"$ROWS_LIST\", \"CONNS_LIST\": \"$CONNS_LIST\", \"ENDPOINTS\": \"$ENDPOINTS\"}"

# ---------------------------------------------------------------- 5. scenarios ----------
# The bodies wrk sends first (make_body(0)), dumped by the Lua script itself: wrk runs
# 1 s against a socket that listens but never accepts, so init() writes DUMP_BODY and no
# request reaches the server. One file per ROWS value: raw/body_rows<N>.json.
dump_bodies() {
  local rows
  for rows in $ROWS_LIST; do
    ID_COUNT=$ENTITIES ROWS=$rows wrk_dump_body "$LUA" "$RESULTS_DIR/raw/body_rows$rows.json" \
      || return 1
  done
}

run_scenario() {  # endpoint conns rows
  local ep=$1 conns=$2 rows=$3
  local label="${ep}_c${conns}_r${rows}" threads url body code
  threads=$(threads_for "$conns")
  url="$BASE/$ep"
  body="$RESULTS_DIR/raw/body_rows$rows.json"

  kill -0 "$SERVER_GROUP" 2>/dev/null || die "server died before $label"
  code=$(curl -sS -m 5 -o "$RESULTS_DIR/raw/$label.sanity.json" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary @"$body" "$url") || code=000
  local floor_flag=()
  [[ "$ep" == floor ]] && floor_flag=(--floor)
  "$PY" "$HERE/check.py" response "$RESULTS_DIR/raw/$label.sanity.json" --http-code "$code" \
    --body "$body" "${floor_flag[@]}" > "$RESULTS_DIR/raw/$label.sanity.txt" 2>&1 \
    || { cat "$RESULTS_DIR/raw/$label.sanity.txt" >&2
         die "sanity check for $label: POST $url with $body"; }

  export ROWS=$rows ID_START ID_COUNT=$ENTITIES LABEL=$label
  if (( WARM_S > 0 )); then
    RESULT_FILE="$RESULTS_DIR/raw/$label.warmup.json" \
      bounded $((WARM_S + 20)) wrk -t"$threads" -c"$conns" -d"${WARM_S}s" --latency \
      -s "$LUA" "$url" > "$RESULTS_DIR/raw/$label.warmup.txt" 2>&1 \
      || die "warm-up wrk for $label failed or timed out"
  fi

  # Measured run; repeated up to RETRY_NOISY times while other processes on the machine
  # take more than NOISY_PCT % CPU. The least disturbed attempt goes into results.jsonl.
  local attempt tag out other merged=()
  for (( attempt = 0; attempt <= RETRY_NOISY; attempt++ )); do
    tag=$label; (( attempt > 0 )) && tag="$label.retry$attempt"
    out="$RESULTS_DIR/raw/$tag.json"
    rm -f "$out"
    measure "$tag" "$threads" "$conns" "$url" "$out"
    other=$("$PY" "$HERE/report.py" --merge "$out" "$RESULTS_DIR/raw/$tag.merged.json" \
      endpoint="/$ep" conns="$conns" threads="$threads" workers="$WORKERS" \
      entities="$ENTITIES" features="$(tr ',' '\n' <<< "$FEATURES" | wc -l)" \
      attempt="$attempt" cpu="$CPU_SAMPLE")
    merged+=("$RESULTS_DIR/raw/$tag.merged.json")
    (( other <= NOISY_PCT )) && break
    (( attempt < RETRY_NOISY )) && log "$label: other processes took ${other}% CPU; measuring again"
  done
  "$PY" "$HERE/report.py" --pick "$RESULTS" "${merged[@]}"
}

dump_bodies || die "could not dump the request bodies with wrk"
wait_quiet
log "scenarios: rows [$ROWS_LIST] x conns [$CONNS_LIST] x [$ENDPOINTS]," \
    "warm-up ${WARM_S}s + ${DUR_S}s each"
for rows in $ROWS_LIST; do
  for conns in $CONNS_LIST; do
    for ep in $ENDPOINTS; do
      run_scenario "$ep" "$conns" "$rows"
    done
  done
done

kill -0 "$SERVER_GROUP" 2>/dev/null || die "server died during the run"
if grep -qE 'Traceback|ERROR' "$RESULTS_DIR/raw/server.log"; then
  log "WARNING: the server log has errors: $RESULTS_DIR/raw/server.log"
fi

# ---------------------------------------------------------------- 6. report -------------
"$PY" "$HERE/report.py" "$RESULTS" | tee "$RESULTS_DIR/table.md"
log "done: $RESULTS_DIR (table.md, results.jsonl, meta.json, raw/)"
