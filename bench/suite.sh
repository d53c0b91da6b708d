#!/usr/bin/env bash
# The benchmark suite: POST /get-online-features over a 100,000-entity dataset in Redis,
# for every scenario x rows x connections, under hypercorn and uvicorn, each next to the
# floor (an endpoint that only decodes the body) on the same server.
#
# Usage (from anywhere; root is needed only to apt-get install wrk when it is missing):
#
#     bash bench/suite.sh                 # the full suite, about 11 minutes
#     bash bench/suite.sh --quick         # 3 s per run, to see that it works
#     bash bench/suite.sh --target http://127.0.0.1:6566   # any server that speaks the API
#     bash bench/suite.sh --help
#
# Steps, each bounded in time (and the whole script by --timeout):
#   1. installs wrk with apt-get if missing;
#   2. starts a throwaway redis-server on a free loopback port (never 6379), writes the
#      repo of bench/suite_spec.py with bench/suite_data.py (Parquet by DuckDB), then
#      `ladle apply` and `ladle materialize`;
#   3. for each server in --servers: serves bench.floor_app:app (Ladle's app + POST /floor)
#      with --workers workers, checks that every entity is served PRESENT (first server),
#      then for each run of the plan (`python -m bench.suite_spec plan`): a curl of the
#      exact first body wrk sends (must be a full, all-PRESENT answer), a warm-up, and the
#      measured `wrk --latency` run (bench/suite-profile.lua) with CPU accounting;
#   4. prints one table (bench/suite_report.py) and writes results.json. Everything it
#      started is stopped on exit.
#
# With --target URL, steps 2 and the server start are skipped: the runs go to URL (its
# /get-online-features), with --features / --service / --entity-key / --id-start /
# --id-count describing what it serves; floor runs need --floor-url.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_TAG=suite
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
# shellcheck source=bench/suite_lib.sh
source "$HERE/suite_lib.sh"
LUA="$HERE/suite-profile.lua"

usage() {
  cat <<'EOF'
Usage: bash bench/suite.sh [OPTIONS]

Runs:
  --duration D        measured time per run (N, Ns or Nm; default 10s)
  --warmup D          warm-up per run (default 3s; 0 skips it)
  --quick             --duration 3s --warmup 1s (a short run that proves the setup)
  --rows "1 10 100"   entity rows per request
  --conns "1 16"      wrk connections (1 -> wrk -t1, more -> -t2)
  --scenarios "..."   scenario names from bench/suite_spec.py (default: all of them)
  --servers "..."     hypercorn and/or uvicorn (default "hypercorn uvicorn")
  --workers N         server worker processes (default 2)
  --nbodies N         request bodies per wrk thread (default 10000)
  --seed N            random seed of the bodies (default 1)
  --timeout S         overall limit in seconds (default: computed from the plan)
Dataset (ignored with --target):
  --entities N        entities in the dataset (default 100000)
Another server:
  --target URL        send the runs to URL (e.g. http://127.0.0.1:6566); no Redis, no
                      dataset, no server started here
  --floor-url URL     where floor runs go with --target (default: floor runs skipped)
  --features REFS     comma-separated feature refs for "features" scenarios
                      (default: the suite dataset's 30 refs)
  --service [SCENARIO=]NAME  the feature service a scenario asks for (SCENARIO defaults
                      to "service"); repeatable
  --entity-key KEY    join key (default user_id)
  --id-start N        first entity id (default 1)
  --id-count N        ids drawn from (default: --entities)
  --full-names        send "full_feature_names": true
  --coverage MODE     check entities before measuring: full, sample (2000 random ids) or
                      off (default: full here, sample with --target)
Output:
  --results DIR       output folder (default bench/results/suite-<UTC stamp>;
                      bench/results/latest-suite links the newest)
  --keep-tmp          keep the temp dir (repo, Parquet files)
Environment: PYTHON (interpreter with Ladle's dependencies, default .venv/bin/python),
WAIT_QUIET (30: seconds to wait for a quiet machine), RETRY_NOISY (0: measure a run again
up to N times while other processes take more than 15% CPU).
EOF
}

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
ROWS_LIST=${ROWS_LIST:-"1 10 100"}
CONNS_LIST=${CONNS_LIST:-"1 16"}
SCENARIOS=${SCENARIOS:-}
SERVERS=${SERVERS:-"hypercorn uvicorn"}
WORKERS=${WORKERS:-2}
NBODIES=${NBODIES:-10000}
SEED=${SEED:-1}
ENTITIES=${ENTITIES:-100000}
WAIT_QUIET=${WAIT_QUIET:-30}
RETRY_NOISY=${RETRY_NOISY:-0}
NOISY_PCT=15
TARGET="" FLOOR_URL="" FEATURES="" ENTITY_KEY="" ID_START="" ID_COUNT="" FULL_NAMES=0
COVERAGE="" OVERALL="" SERVICE_ARGS=()
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$HERE/results/suite-$STAMP}

while (( $# )); do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --quick) DURATION=3s; WARMUP=1s; shift ;;
    --rows) ROWS_LIST=$2; shift 2 ;;
    --conns) CONNS_LIST=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --nbodies) NBODIES=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --timeout) OVERALL=$2; shift 2 ;;
    --entities) ENTITIES=$2; shift 2 ;;
    --target) TARGET=${2%/}; shift 2 ;;
    --floor-url) FLOOR_URL=$2; shift 2 ;;
    --features) FEATURES=$2; shift 2 ;;
    --service) SERVICE_ARGS+=("$2"); shift 2 ;;
    --entity-key) ENTITY_KEY=$2; shift 2 ;;
    --id-start) ID_START=$2; shift 2 ;;
    --id-count) ID_COUNT=$2; shift 2 ;;
    --full-names) FULL_NAMES=1; shift ;;
    --coverage) COVERAGE=$2; shift 2 ;;
    --results) RESULTS_DIR=$2; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done

DUR_S=$(seconds "$DURATION")
WARM_S=$(seconds "$WARMUP")
[[ "$DUR_S" =~ ^[0-9]+$ && "$DUR_S" -ge 1 ]] || die "--duration $DURATION: use N, Ns or Nm"
[[ "$WARM_S" =~ ^[0-9]+$ ]] || die "--warmup $WARMUP: use N, Ns or Nm"
for n in $ROWS_LIST $CONNS_LIST "$WORKERS" "$NBODIES" "$ENTITIES"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "$n: rows, connections, workers, bodies and entities are positive integers"
done
[[ -x "$PY" ]] || die "no Python at $PY (set PYTHON)"
if [[ -n "$TARGET" ]]; then
  SERVERS=target
  COVERAGE=${COVERAGE:-sample}
else
  for s in $SERVERS; do [[ "$s" == hypercorn || "$s" == uvicorn ]] || die "--servers: $s?"; done
  COVERAGE=${COVERAGE:-full}
fi
[[ "$COVERAGE" =~ ^(full|sample|off)$ ]] || die "--coverage $COVERAGE: use full, sample or off"
ENTITY_KEY=${ENTITY_KEY:-user_id}
ID_START=${ID_START:-1}
ID_COUNT=${ID_COUNT:-$ENTITIES}
[[ -n "$FEATURES" ]] || FEATURES=$("$PY" -m bench.suite_spec features)
REFS=$FEATURES   # the feature refs of "features" bodies (FEATURES is the Lua knob)

# The plan: "scenario rows conns path service" lines; --service overrides services.
PLAN=$("$PY" -m bench.suite_spec plan --rows "$ROWS_LIST" --conns "$CONNS_LIST" \
  --scenarios "$SCENARIOS") || die "bad --scenarios"
for arg in "${SERVICE_ARGS[@]}"; do
  if [[ "$arg" == *=* ]]; then name=${arg%%=*}; svc=${arg#*=}; else name=service; svc=$arg; fi
  awk -v n="$name" '$1 == n && $5 != "-" { found = 1 } END { exit !found }' <<< "$PLAN" \
    || die "--service $arg: no scenario $name in the plan asks for a service"
  PLAN=$(awk -v n="$name" -v s="$svc" '$1 == n { $5 = s } { print }' <<< "$PLAN")
done
if [[ -n "$TARGET" && -z "$FLOOR_URL" ]]; then
  PLAN=$(awk '$4 != "/floor"' <<< "$PLAN")
  log "no --floor-url: floor runs skipped"
fi
[[ -n "$PLAN" ]] || die "nothing to run"
n_runs=$(( $(wc -l <<< "$PLAN") * $(wc -w <<< "$SERVERS") ))
BUDGET=$(( 900 + WAIT_QUIET + n_runs * (DUR_S + WARM_S + 30 + RETRY_NOISY * (DUR_S + 25)) ))
OVERALL=${OVERALL:-$(( BUDGET + 120 ))}
[[ "$OVERALL" =~ ^[1-9][0-9]*$ ]] || die "--timeout $OVERALL: use seconds"
watchdog "$OVERALL"

# ---------------------------------------------------------------- 1. tools ---------------
ensure_tool wrk
command -v curl >/dev/null 2>&1 || die "curl not found"
prepare_results latest-suite
TMP=$(mktemp -d /tmp/ladle-suite.XXXXXX)
log "results -> $RESULTS_DIR; $n_runs runs of ${WARM_S}s + ${DUR_S}s; overall limit ${OVERALL}s"

# ---------------------------------------------------------------- 2. dataset ------------
if [[ -z "$TARGET" ]]; then
  read -r REDIS_PORT SERVER_PORT <<< "$(free_ports 2)"
  suite_dataset "$ENTITIES"   # redis + repo + apply + materialize; sets REPO
else
  REDIS_PID="" SERVER_PIDS="" WORKER_PIDS=""
fi

"$PY" "$HERE/meta.py" "$RESULTS_DIR/meta.json" --root "$ROOT" --stamp "$STAMP" \
  --packages hypercorn uvicorn httptools starlette msgspec redis hiredis uvloop \
  --set target "${TARGET:-ladle (this checkout)}" \
  --set knobs "$(knobs_json DURATION WARMUP ROWS_LIST CONNS_LIST SCENARIOS SERVERS WORKERS \
    NBODIES SEED ENTITIES ENTITY_KEY ID_START ID_COUNT FULL_NAMES REFS FLOOR_URL)" \
  --set plan "$PLAN"

# ---------------------------------------------------------------- 3. runs ---------------
# The first body wrk will send in each scenario at each row count, written by the Lua
# script itself (no request reaches any server): raw/body_<scenario>_r<rows>.json.
body_env() {  # body_env SERVICE: the Lua knobs for a features (-) or service body
  export ENTITY_KEY ID_START ID_COUNT NBODIES SEED FULL_NAMES
  if [[ "$1" == - ]]; then export FEATURES=$REFS FEATURE_SERVICE=""
  else export FEATURES="" FEATURE_SERVICE=$1; fi
}

run_one() {  # server scenario rows conns path service
  local server=$1 scen=$2 rows=$3 conns=$4 path=$5 svc=$6
  local label="${server}_${scen}_r${rows}_c${conns}" threads url body code floor_flag=()
  threads=$(threads_for "$conns")
  body="$RESULTS_DIR/raw/body_${scen}_r${rows}.json"
  if [[ "$path" == /floor && -n "$TARGET" ]]; then url=$FLOOR_URL; else url="$BASE$path"; fi
  [[ "$path" == /floor ]] && floor_flag=(--floor)
  body_env "$svc"
  export ROWS=$rows
  [[ -s "$body" ]] || wrk_dump_body "$LUA" "$body" || die "could not dump the body of $label"

  [[ -n "$TARGET" ]] || kill -0 "$SERVER_GROUP" 2>/dev/null || die "server died before $label"
  code=$(curl -sS -m 10 -o "$RESULTS_DIR/raw/$label.sanity.json" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary @"$body" "$url") || code=000
  "$PY" "$HERE/check.py" response "$RESULTS_DIR/raw/$label.sanity.json" --http-code "$code" \
    --body "$body" "${floor_flag[@]}" > "$RESULTS_DIR/raw/$label.sanity.txt" 2>&1 \
    || { cat "$RESULTS_DIR/raw/$label.sanity.txt" >&2; die "sanity check of $label: POST $url"; }

  export LABEL=$label
  if (( WARM_S > 0 )); then
    RESULT_FILE="$RESULTS_DIR/raw/$label.warmup.json" \
      bounded $((WARM_S + 30)) wrk -t"$threads" -c"$conns" -d"${WARM_S}s" --latency \
      -s "$LUA" "$url" > "$RESULTS_DIR/raw/$label.warmup.txt" 2>&1 \
      || die "warm-up of $label failed or timed out"
  fi
  local attempt tag out other merged=()
  for (( attempt = 0; attempt <= RETRY_NOISY; attempt++ )); do
    tag=$label; (( attempt > 0 )) && tag="$label.retry$attempt"
    out="$RESULTS_DIR/raw/$tag.json"
    rm -f "$out"
    measure "$tag" "$threads" "$conns" "$url" "$out"
    other=$("$PY" "$HERE/report.py" --merge "$out" "$RESULTS_DIR/raw/$tag.merged.json" \
      server="$server" scenario="$scen" rows="$rows" conns="$conns" threads="$threads" \
      workers="$WORKERS" endpoint="$path" service="$svc" attempt="$attempt" cpu="$CPU_SAMPLE")
    merged+=("$RESULTS_DIR/raw/$tag.merged.json")
    (( other <= NOISY_PCT )) && break
    (( attempt < RETRY_NOISY )) && log "$label: other processes took ${other}% CPU; measuring again"
  done
  "$PY" "$HERE/report.py" --pick "$RESULTS" "${merged[@]}"
}

covered=0
for server in $SERVERS; do
  if [[ "$server" != target ]]; then
    LOGFILE="$RESULTS_DIR/raw/server_$server.log"
    start_suite_server "$server"
    log "$server up: parent $SERVER_PARENT, workers $WORKER_PIDS"
  else
    BASE=$TARGET
  fi
  if [[ "$COVERAGE" != off && $covered == 0 ]]; then
    sample=(); [[ "$COVERAGE" == sample ]] && sample=(--sample 2000)
    full=(); [[ "$FULL_NAMES" == 1 ]] && full=(--full-names 1)
    log "coverage check ($COVERAGE) of $ID_COUNT ids from $ID_START"
    timeout 600 "$PY" "$HERE/check.py" coverage "$BASE/get-online-features" \
      --id-start "$ID_START" --id-count "$ID_COUNT" --features "$REFS" \
      --entity-key "$ENTITY_KEY" "${full[@]}" "${sample[@]}" >&2 \
      || die "coverage check failed"
    covered=1
  fi
  wait_quiet
  while read -r scen rows conns path svc; do
    run_one "$server" "$scen" "$rows" "$conns" "$path" "$svc"
  done <<< "$PLAN"
  if [[ "$server" != target ]]; then
    grep -qE 'Traceback|ERROR' "$LOGFILE" && log "WARNING: errors in $LOGFILE"
    stop_server
  fi
done

# ---------------------------------------------------------------- 4. report -------------
"$PY" -m bench.suite_report "$RESULTS_DIR" --json "$RESULTS_DIR/results.json" \
  | tee "$RESULTS_DIR/table.md"
log "done: $RESULTS_DIR (table.md, results.json, results.jsonl, meta.json, raw/)"
