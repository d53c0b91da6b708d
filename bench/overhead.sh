#!/usr/bin/env bash
# What the optional request steps cost on the read path: Prometheus metrics, oidc auth
# and the JSON access log, each switched on alone and all together, against a baseline
# with all three off. Same dataset, same server and the same request bodies for each.
#
# Usage (from anywhere; root is needed only to apt-get install wrk when it is missing):
#
#     bash bench/overhead.sh                 # 5 configs x 1/10 rows x 1/16 conns, ~6 min
#     bash bench/overhead.sh --quick         # 3 s per run, to see that it works
#     bash bench/overhead.sh --help
#
# Steps, each bounded in time (and the whole script by --timeout):
#   1. the suite dataset (bench/suite_lib.sh): a throwaway redis-server on a free loopback
#      port, the repo of bench/suite_spec.py, `ladle apply`, `ladle materialize`;
#   2. a copy of that repo made an oidc repo (bench/overhead_configs.py: RSA key, JWKS
#      file, one Permission, two signed tokens), then `ladle apply` on it;
#   3. for each round and each config: bench.floor_app:app under hypercorn with 2 uvloop
#      workers, started fresh with the config's environment and repo; checks that the
#      config is really what it says (a curl of the exact body and header must get a
#      full, all-PRESENT answer; with auth, no token must get 401 and a token without the
#      role 403; with metrics, the request must be counted; with the access log, it
#      must be logged, and without it, not); then for each rows x conns a warm-up and
#      the measured `wrk --latency` run of the `features` scenario with CPU accounting;
#   4. prints one table (bench/overhead_report.py) and writes results.json. Everything
#      it started is stopped on exit.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_TAG=overhead
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
# shellcheck source=bench/suite_lib.sh
source "$HERE/suite_lib.sh"
LUA="$HERE/suite-profile.lua"

usage() {
  cat <<'EOF'
Usage: bash bench/overhead.sh [OPTIONS]

  --configs "..."     server configs, in this order (default
                      "baseline metrics auth access_log all"):
                        baseline    metrics off, auth no_auth, access log off
                        metrics     every metrics category on (multiprocess files)
                        auth        oidc with a JWKS file, one read_online Permission,
                                    every request with a valid bearer token
                        access_log  the JSON access log on, to the server's log file
                        all         metrics, auth and the access log together
  --rows "1 10"       entity rows per request
  --conns "1 16"      wrk connections (1 -> wrk -t1, more -> -t2)
  --rounds N          repeat every config N times, interleaved (default 1); the table
                      shows medians over the rounds
  --duration D        measured time per run (N, Ns or Nm; default 10s)
  --warmup D          warm-up per run (default 3s; 0 skips it)
  --quick             --duration 3s --warmup 1s
  --workers N         hypercorn worker processes (default 2)
  --entities N        entities in the dataset (default 100000)
  --nbodies N         request bodies per wrk thread (default 10000)
  --seed N            random seed of the bodies (default 1)
  --timeout S         overall limit in seconds (default: computed from the plan)
  --results DIR       output folder (default bench/results/overhead-<UTC stamp>;
                      bench/results/latest-overhead links the newest)
  --keep-tmp          keep the temp dir (repos, key, tokens, metric files)
Environment: PYTHON (interpreter with Ladle's dependencies, default .venv/bin/python),
WAIT_QUIET (30: seconds to wait for a quiet machine), RETRY_NOISY (0: measure a run again
up to N times while other processes take more than 15% CPU).
EOF
}

CONFIGS=${CONFIGS:-"baseline metrics auth access_log all"}
ROWS_LIST=${ROWS_LIST:-"1 10"}
CONNS_LIST=${CONNS_LIST:-"1 16"}
ROUNDS=${ROUNDS:-1}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
WORKERS=${WORKERS:-2}
ENTITIES=${ENTITIES:-100000}
NBODIES=${NBODIES:-10000}
SEED=${SEED:-1}
WAIT_QUIET=${WAIT_QUIET:-30}
RETRY_NOISY=${RETRY_NOISY:-0}
NOISY_PCT=15
OVERALL=""
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$HERE/results/overhead-$STAMP}

while (( $# )); do
  case "$1" in
    --configs) CONFIGS=$2; shift 2 ;;
    --rows) ROWS_LIST=$2; shift 2 ;;
    --conns) CONNS_LIST=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --quick) DURATION=3s; WARMUP=1s; shift ;;
    --workers) WORKERS=$2; shift 2 ;;
    --entities) ENTITIES=$2; shift 2 ;;
    --nbodies) NBODIES=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --timeout) OVERALL=$2; shift 2 ;;
    --results) RESULTS_DIR=$2; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done

# config -> "metrics auth access_log" (1 = on)
config_steps() {
  case "$1" in
    baseline) echo "0 0 0" ;;
    metrics) echo "1 0 0" ;;
    auth) echo "0 1 0" ;;
    access_log) echo "0 0 1" ;;
    all) echo "1 1 1" ;;
    *) return 1 ;;
  esac
}

DUR_S=$(seconds "$DURATION")
WARM_S=$(seconds "$WARMUP")
[[ "$DUR_S" =~ ^[0-9]+$ && "$DUR_S" -ge 1 ]] || die "--duration $DURATION: use N, Ns or Nm"
[[ "$WARM_S" =~ ^[0-9]+$ ]] || die "--warmup $WARMUP: use N, Ns or Nm"
for n in $ROWS_LIST $CONNS_LIST "$ROUNDS" "$WORKERS" "$NBODIES" "$ENTITIES"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "$n: rows, conns, rounds, workers, bodies and entities are positive integers"
done
[[ -n "$CONFIGS" ]] || die "--configs is empty"
NEED_AUTH=0
for c in $CONFIGS; do
  steps=$(config_steps "$c") || die "--configs: unknown config $c (see --help)"
  if [[ "$(cut -d' ' -f2 <<< "$steps")" == 1 ]]; then NEED_AUTH=1; fi
done
[[ " $CONFIGS " == *" baseline "* ]] || log "no baseline in --configs: 'vs baseline' will be n/a"
[[ -x "$PY" ]] || die "no Python at $PY (set PYTHON)"
n_configs=$(wc -w <<< "$CONFIGS")
n_runs=$(( n_configs * ROUNDS * $(wc -w <<< "$ROWS_LIST") * $(wc -w <<< "$CONNS_LIST") ))
BUDGET=$(( 900 + WAIT_QUIET + n_configs * ROUNDS * 60 \
  + n_runs * (DUR_S + WARM_S + 30 + RETRY_NOISY * (DUR_S + 25)) ))
OVERALL=${OVERALL:-$(( BUDGET + 120 ))}
[[ "$OVERALL" =~ ^[1-9][0-9]*$ ]] || die "--timeout $OVERALL: use seconds"
watchdog "$OVERALL"

# ---------------------------------------------------------------- 1. dataset ------------
ensure_tool wrk
command -v curl >/dev/null 2>&1 || die "curl not found"
prepare_results latest-overhead
TMP=$(mktemp -d /tmp/ladle-overhead.XXXXXX)
log "results -> $RESULTS_DIR; $n_runs runs of ${WARM_S}s + ${DUR_S}s; overall limit ${OVERALL}s"
read -r REDIS_PORT SERVER_PORT <<< "$(free_ports 2)"
suite_dataset "$ENTITIES"   # sets REPO

# ---------------------------------------------------------------- 2. the auth repo ------
AUTH_REPO="$TMP/repo-auth" TOKEN="" TOKEN_NOROLE=""
if (( NEED_AUTH )); then
  cp -a "$REPO" "$AUTH_REPO"
  timeout 60 "$PY" -m bench.overhead_configs auth "$AUTH_REPO" "$TMP/tokens" >&2 \
    || die "bench/overhead_configs.py auth failed"
  timeout 300 "$LADLE" -c "$AUTH_REPO" apply > "$RESULTS_DIR/raw/apply-auth.txt" 2>&1 \
    || { cat "$RESULTS_DIR/raw/apply-auth.txt" >&2; die "ladle apply of the auth repo failed"; }
  grep -q 'bench-readers' "$RESULTS_DIR/raw/apply-auth.txt" \
    || { cat "$RESULTS_DIR/raw/apply-auth.txt" >&2; die "ladle apply did not store the permission"; }
  cp "$AUTH_REPO/feature_store.yaml" "$RESULTS_DIR/raw/feature_store-auth.yaml"
  cp "$AUTH_REPO/bench_permissions.py" "$RESULTS_DIR/raw/"
  TOKEN=$(cat "$TMP/tokens/token")
  TOKEN_NOROLE=$(cat "$TMP/tokens/token_norole")
fi

"$PY" "$HERE/meta.py" "$RESULTS_DIR/meta.json" --root "$ROOT" --stamp "$STAMP" \
  --packages hypercorn starlette msgspec redis hiredis uvloop prometheus-client pyjwt \
  cryptography orjson \
  --set knobs "$(knobs_json CONFIGS ROWS_LIST CONNS_LIST ROUNDS DURATION WARMUP WORKERS \
    ENTITIES NBODIES SEED)"

# ---------------------------------------------------------------- 3. runs ---------------
# The first body wrk sends at each row count, written by the Lua script itself.
export ENTITY_KEY=user_id ID_START=1 ID_COUNT=$ENTITIES NBODIES SEED FULL_NAMES=0
FEATURES=$("$PY" -m bench.suite_spec features)
export FEATURES FEATURE_SERVICE=""
for rows in $ROWS_LIST; do
  export ROWS=$rows
  wrk_dump_body "$LUA" "$RESULTS_DIR/raw/body_r$rows.json" \
    || die "could not dump the $rows-row body"
done

# post OUT [HEADER...]: POST the 1-row body to /get-online-features; prints the status.
post() {
  local out=$1; shift
  local headers=(-H 'Content-Type: application/json') h
  for h in "$@"; do headers+=(-H "$h"); done
  curl -sS -m 10 -o "$out" -w '%{http_code}' "${headers[@]}" \
    --data-binary @"$RESULTS_DIR/raw/body_r${ROWS_LIST%% *}.json" \
    "$BASE/get-online-features" || echo 000
}

# access_lines: access-log lines of POST /get-online-features in the server log.
access_lines() { grep -c '"path":"/get-online-features"' "$LOGFILE" || true; }

# check_config NAME METRICS AUTH LOG: the config's steps are on, and the others are off.
check_config() {
  local name=$1 metrics=$2 auth=$3 access=$4 out="$RESULTS_DIR/raw/$1$SUFFIX" code n
  if (( auth )); then
    code=$(post "$out.no_token.json")
    [[ "$code" == 401 ]] && grep -q not_authenticated "$out.no_token.json" \
      || die "$name: a request without a token got HTTP $code, not 401 (auth not active?)"
    code=$(post "$out.no_role.json" "Authorization: Bearer $TOKEN_NOROLE")
    [[ "$code" == 403 ]] && grep -q forbidden "$out.no_role.json" \
      || die "$name: a token without the role got HTTP $code, not 403 (permission not active?)"
    log "$name: no token -> 401, a token without the role -> 403"
  fi
  for _ in $(seq 20); do
    n=$(access_lines); (( n > 0 )) && break; sleep 0.1
  done
  if (( access )); then
    (( n > 0 )) || die "$name: the access log is on, but no line for /get-online-features"
    log "$name: $n access-log lines so far"
  else
    (( n == 0 )) || die "$name: the access log is off, but $n lines were logged"
  fi
  if (( metrics )); then
    timeout 30 "$PY" -m bench.overhead_configs metrics "$PROMETHEUS_MULTIPROC_DIR" >&2 \
      || die "$name: metrics are on, but no request was counted"
  fi
}

# start_config NAME: the config's repo and environment, then a fresh server.
start_config() {
  local name=$1 metrics auth access
  read -r metrics auth access <<< "$(config_steps "$name")"
  if (( metrics )); then
    export PROMETHEUS_MULTIPROC_DIR="$TMP/metrics-$name$SUFFIX" LADLE_METRICS=true
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  else
    unset PROMETHEUS_MULTIPROC_DIR LADLE_METRICS
  fi
  if (( auth )); then
    export LADLE_REPO=$AUTH_REPO AUTHORIZATION="Bearer $TOKEN"
  else
    export LADLE_REPO=$REPO AUTHORIZATION=""
  fi
  if (( access )); then export LADLE_ACCESS_LOG=true; else export LADLE_ACCESS_LOG=false; fi
  LOGFILE="$RESULTS_DIR/raw/server_$name$SUFFIX.log"
  start_suite_server hypercorn
  log "$name (metrics $metrics, auth $auth, access log $access): parent $SERVER_PARENT," \
      "workers $WORKER_PIDS"
  CONFIG_STEPS="$metrics $auth $access"
}

run_one() {  # config round rows conns
  local config=$1 round=$2 rows=$3 conns=$4 threads label code auth_header=()
  label="${config}_r${rows}_c${conns}$SUFFIX"
  threads=$(threads_for "$conns")
  local body="$RESULTS_DIR/raw/body_r$rows.json" url="$BASE/get-online-features"
  [[ -n "$AUTHORIZATION" ]] && auth_header=(-H "Authorization: $AUTHORIZATION")
  kill -0 "$SERVER_GROUP" 2>/dev/null || die "server died before $label"
  code=$(curl -sS -m 10 -o "$RESULTS_DIR/raw/$label.sanity.json" -w '%{http_code}' \
    -H 'Content-Type: application/json' "${auth_header[@]}" --data-binary @"$body" "$url") \
    || code=000
  "$PY" "$HERE/check.py" response "$RESULTS_DIR/raw/$label.sanity.json" --http-code "$code" \
    --body "$body" > "$RESULTS_DIR/raw/$label.sanity.txt" 2>&1 \
    || { cat "$RESULTS_DIR/raw/$label.sanity.txt" >&2; die "sanity check of $label"; }
  if [[ -n "$CONFIG_STEPS" ]]; then  # once per server: is the config what it claims?
    check_config "$config" $CONFIG_STEPS
    CONFIG_STEPS=""
  fi

  export ROWS=$rows LABEL=$label
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
      server=hypercorn config="$config" round="$round" rows="$rows" conns="$conns" \
      threads="$threads" workers="$WORKERS" attempt="$attempt" cpu="$CPU_SAMPLE")
    merged+=("$RESULTS_DIR/raw/$tag.merged.json")
    (( other <= NOISY_PCT )) && break
    (( attempt < RETRY_NOISY )) && log "$label: other processes took ${other}% CPU; measuring again"
  done
  "$PY" "$HERE/report.py" --pick "$RESULTS" "${merged[@]}"
}

covered=0
wait_quiet
for (( round = 1; round <= ROUNDS; round++ )); do
  SUFFIX=""; (( ROUNDS > 1 )) && SUFFIX="_round$round"
  for config in $CONFIGS; do
    start_config "$config"
    if (( covered == 0 )) && [[ -z "$AUTHORIZATION" ]]; then
      log "coverage check of all $ENTITIES ids"
      timeout 600 "$PY" "$HERE/check.py" coverage "$BASE/get-online-features" \
        --id-start 1 --id-count "$ENTITIES" --features "$FEATURES" --entity-key user_id >&2 \
        || die "coverage check failed"
      covered=1
    fi
    for rows in $ROWS_LIST; do
      for conns in $CONNS_LIST; do
        run_one "$config" "$round" "$rows" "$conns"
      done
    done
    grep -qE 'Traceback|ERROR' "$LOGFILE" && log "WARNING: errors in $LOGFILE"
    stop_server
  done
done

# ---------------------------------------------------------------- 4. report -------------
"$PY" -m bench.overhead_report "$RESULTS_DIR" --json "$RESULTS_DIR/results.json" \
  | tee "$RESULTS_DIR/table.md"
log "done: $RESULTS_DIR (table.md, results.json, results.jsonl, meta.json, raw/)"
