#!/usr/bin/env bash
# What the optional request steps cost on the read path: Prometheus metrics, oidc auth
# and the JSON access log, each switched on alone and all together, against a baseline
# with all three off. Same dataset, same server and the same request bodies for each.
#
# Usage (from anywhere; root is needed only to apt-get install wrk when it is missing):
#
#     bash bench/overhead.sh                 # 5 configs x 1/10 rows x 1/16 conns x 3
#                                            # rounds of 2 s warm-up + 5 s: ~9 min
#     bash bench/overhead.sh --quick         # 3 s per run, to see that it works
#     bash bench/overhead.sh --help
#
# Steps, each bounded in time (and the whole script by --timeout):
#   1. the suite dataset (bench/suite_lib.sh): a throwaway redis-server on a free loopback
#      port, the repo of bench/suite_spec.py, `ladle apply`, `ladle materialize`;
#   2. a copy of that repo made an oidc repo (bench/overhead_configs.py: RSA key, JWKS
#      file, one Permission, two signed tokens), then `ladle apply` on it;
#   3. one server per config, all started fresh up front: bench.floor_app:app under
#      hypercorn with 2 uvloop workers (as the suite starts it), each with its config's
#      environment and repo, on its own port. Each is checked to be what it says: a
#      curl of the exact body and header must get a full, all-PRESENT answer; with auth,
#      no token must get 401 and a token without the role 403; with metrics, the request
#      must be counted; with the access log it must be logged, and without it not;
#   4. for each round, rows and conns, every config in turn (reversed every other
#      round): a sanity curl, a warm-up and the measured `wrk --latency` run of the
#      `features` scenario (bench/suite-profile.lua) with CPU accounting;
#   5. the apps of all configs in one process (bench/overhead_inproc.py), called
#      directly, in short blocks in turn: CPU time per request without HTTP and wrk,
#      and with the machine's other load falling on every config alike;
#   6. prints the tables (bench/overhead_report.py) and writes results.json. Everything
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
  --rounds N          measure every point N times (default 3); the table shows
                      medians over the rounds
  --duration D        measured time per run (N, Ns or Nm; default 5s)
  --warmup D          warm-up per run (default 2s; 0 skips it)
  --quick             --duration 3s --warmup 1s --rounds 1
  --workers N         hypercorn worker processes (default 2)
  --entities N        entities in the dataset (default 100000)
  --nbodies N         request bodies per wrk thread (default 10000)
  --seed N            random seed of the bodies (default 1)
  --inproc N          after the wrk runs, the app's CPU time per request measured in
                      one process (bench/overhead_inproc.py), N blocks of 100 requests
                      per config and rows, the configs in turn (default 40; 0 skips it)
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
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2s}
WORKERS=${WORKERS:-2}
ENTITIES=${ENTITIES:-100000}
NBODIES=${NBODIES:-10000}
SEED=${SEED:-1}
WAIT_QUIET=${WAIT_QUIET:-30}
RETRY_NOISY=${RETRY_NOISY:-0}
INPROC=${INPROC:-40}
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
    --quick) DURATION=3s; WARMUP=1s; ROUNDS=1; shift ;;
    --workers) WORKERS=$2; shift 2 ;;
    --entities) ENTITIES=$2; shift 2 ;;
    --nbodies) NBODIES=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --inproc) INPROC=$2; shift 2 ;;
    --timeout) OVERALL=$2; shift 2 ;;
    --results) RESULTS_DIR=$2; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done

# config_steps NAME -> "metrics auth access_log" (1 = on), from bench/overhead_configs.py
config_steps() { "$PY" -m bench.overhead_configs steps "$1"; }

DUR_S=$(seconds "$DURATION")
WARM_S=$(seconds "$WARMUP")
[[ "$DUR_S" =~ ^[0-9]+$ && "$DUR_S" -ge 1 ]] || die "--duration $DURATION: use N, Ns or Nm"
[[ "$WARM_S" =~ ^[0-9]+$ ]] || die "--warmup $WARMUP: use N, Ns or Nm"
[[ "$INPROC" =~ ^[0-9]+$ ]] || die "--inproc $INPROC: a number of blocks (0 skips it)"
for n in $ROWS_LIST $CONNS_LIST "$ROUNDS" "$WORKERS" "$NBODIES" "$ENTITIES"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "$n: rows, conns, rounds, workers, bodies and entities are positive integers"
done
[[ -x "$PY" ]] || die "no Python at $PY (set PYTHON)"
[[ -n "$CONFIGS" ]] || die "--configs is empty"
NEED_AUTH=0
for c in $CONFIGS; do
  steps=$(config_steps "$c") || die "--configs: unknown config $c (see --help)"
  (( $(tr -s ' ' '\n' <<< "$CONFIGS" | grep -cx "$c") == 1 )) \
    || die "--configs: $c is listed more than once"
  if [[ "$(cut -d' ' -f2 <<< "$steps")" == 1 ]]; then NEED_AUTH=1; fi
done
[[ " $CONFIGS " == *" baseline "* ]] || log "no baseline in --configs: 'vs baseline' will be n/a"
n_configs=$(wc -w <<< "$CONFIGS")
n_runs=$(( n_configs * ROUNDS * $(wc -w <<< "$ROWS_LIST") * $(wc -w <<< "$CONNS_LIST") ))
BUDGET=$(( 900 + WAIT_QUIET + n_configs * ROUNDS * 60 \
  + n_runs * (DUR_S + WARM_S + 30 + RETRY_NOISY * (DUR_S + 25)) \
  + 120 + INPROC * 20 ))
OVERALL=${OVERALL:-$(( BUDGET + 120 ))}
[[ "$OVERALL" =~ ^[1-9][0-9]*$ ]] || die "--timeout $OVERALL: use seconds"
watchdog "$OVERALL"

# ---------------------------------------------------------------- 1. dataset ------------
ensure_tool wrk
command -v curl >/dev/null 2>&1 || die "curl not found"
prepare_results latest-overhead
TMP=$(mktemp -d /tmp/ladle-overhead.XXXXXX)
log "results -> $RESULTS_DIR; $n_runs runs of ${WARM_S}s + ${DUR_S}s; overall limit ${OVERALL}s"
REDIS_PORT=$(free_ports 1)
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
    ENTITIES NBODIES SEED INPROC)"

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

# Every config gets its own server, all started fresh up front and kept running, so that
# the configs can be measured in turn at each rows x conns point: load from elsewhere on
# the machine then falls on all of them alike instead of on whichever ran last.
declare -A SRV_GROUP SRV_PIDS SRV_WORKERS SRV_BASE SRV_LOG SRV_AUTH SRV_STEPS SRV_METRICS

# use_config NAME: make NAME's server the current one (for measure and the checks).
use_config() {
  SERVER_GROUP=${SRV_GROUP[$1]} SERVER_PIDS=${SRV_PIDS[$1]} WORKER_PIDS=${SRV_WORKERS[$1]}
  BASE=${SRV_BASE[$1]} LOGFILE=${SRV_LOG[$1]}
  export AUTHORIZATION=${SRV_AUTH[$1]}
}

# start_config NAME PORT: a fresh server for NAME on PORT, with NAME's repo and
# environment (the server reads them at startup).
start_config() {
  local name=$1 metrics auth access
  read -r metrics auth access <<< "$(config_steps "$name")"
  SRV_METRICS[$name]=""
  if (( metrics )); then
    SRV_METRICS[$name]="$TMP/metrics-$name"
    mkdir -p "${SRV_METRICS[$name]}"
    export PROMETHEUS_MULTIPROC_DIR=${SRV_METRICS[$name]} LADLE_METRICS=true
  else
    unset PROMETHEUS_MULTIPROC_DIR LADLE_METRICS
  fi
  SRV_AUTH[$name]=""
  if (( auth )); then
    SRV_AUTH[$name]="Bearer $TOKEN"
    export LADLE_REPO=$AUTH_REPO
  else
    export LADLE_REPO=$REPO
  fi
  if (( access )); then export LADLE_ACCESS_LOG=true; else export LADLE_ACCESS_LOG=false; fi
  SRV_STEPS[$name]="$metrics $auth $access"
  LOGFILE="$RESULTS_DIR/raw/server_$name.log" SERVER_PORT=$2
  start_suite_server hypercorn
  SRV_GROUP[$name]=$SERVER_GROUP SRV_PIDS[$name]=$SERVER_PIDS SRV_WORKERS[$name]=$WORKER_PIDS
  SRV_BASE[$name]=$BASE SRV_LOG[$name]=$LOGFILE
  log "$name (metrics, auth, access log: ${SRV_STEPS[$name]}) on $BASE:" \
      "parent $SERVER_PARENT, workers $WORKER_PIDS"
}

# post_sanity NAME ROWS: POST the exact first body wrk sends, with the header it sends;
# the answer must be complete and all PRESENT.
post_sanity() {
  local name=$1 rows=$2 code headers=(-H 'Content-Type: application/json')
  local body="$RESULTS_DIR/raw/body_r$rows.json" out="$RESULTS_DIR/raw/$1_r$2.sanity"
  [[ -n "$AUTHORIZATION" ]] && headers+=(-H "Authorization: $AUTHORIZATION")
  kill -0 "$SERVER_GROUP" 2>/dev/null || die "the $name server died"
  code=$(curl -sS -m 10 -o "$out.json" -w '%{http_code}' "${headers[@]}" \
    --data-binary @"$body" "$BASE/get-online-features") || code=000
  "$PY" "$HERE/check.py" response "$out.json" --http-code "$code" --body "$body" \
    > "$out.txt" 2>&1 || { cat "$out.txt" >&2; die "sanity check of $name at $rows rows"; }
}

# post_status OUT [HEADER...]: POST the first 1-row body; prints the HTTP status.
post_status() {
  local out=$1; shift
  local headers=(-H 'Content-Type: application/json') h
  for h in "$@"; do headers+=(-H "$h"); done
  curl -sS -m 10 -o "$out" -w '%{http_code}' "${headers[@]}" \
    --data-binary @"$RESULTS_DIR/raw/body_r${ROWS_LIST%% *}.json" \
    "$BASE/get-online-features" || echo 000
}

# check_config NAME: after a sanity request, NAME's steps are on and the others off.
check_config() {
  local name=$1 metrics auth access out="$RESULTS_DIR/raw/$1" code n=0
  read -r metrics auth access <<< "${SRV_STEPS[$name]}"
  post_sanity "$name" "${ROWS_LIST%% *}"
  if (( auth )); then
    code=$(post_status "$out.no_token.json")
    [[ "$code" == 401 ]] && grep -q not_authenticated "$out.no_token.json" \
      || die "$name: a request without a token got HTTP $code, not 401 (auth not active?)"
    code=$(post_status "$out.no_role.json" "Authorization: Bearer $TOKEN_NOROLE")
    [[ "$code" == 403 ]] && grep -q forbidden "$out.no_role.json" \
      || die "$name: a token without the role got HTTP $code, not 403 (permission not active?)"
    log "$name: no token -> 401, a token without the role -> 403"
  fi
  for _ in $(seq 20); do  # the access log writes at the end of a loop iteration
    n=$(grep -c '"path":"/get-online-features"' "$LOGFILE" || true)
    (( n > 0 )) && break
    sleep 0.1
  done
  if (( access )); then
    (( n > 0 )) || die "$name: the access log is on, but no line for /get-online-features"
    log "$name: the access log has $n line(s) for /get-online-features"
  else
    (( n == 0 )) || die "$name: the access log is off, but $n lines were logged"
  fi
  if (( metrics )); then
    timeout 30 "$PY" -m bench.overhead_configs metrics "${SRV_METRICS[$name]}" >&2 \
      || die "$name: metrics are on, but no request was counted"
  fi
}

run_one() {  # config round rows conns
  local config=$1 round=$2 rows=$3 conns=$4 threads label url
  label="${config}_r${rows}_c${conns}"
  (( ROUNDS > 1 )) && label+="_round$round"
  threads=$(threads_for "$conns")
  use_config "$config"
  url="$BASE/get-online-features"
  post_sanity "$config" "$rows"
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

read -r -a ports <<< "$(free_ports "$n_configs")"
i=0
for config in $CONFIGS; do
  start_config "$config" "${ports[i]}"
  i=$(( i + 1 ))
done
unset PROMETHEUS_MULTIPROC_DIR LADLE_METRICS LADLE_ACCESS_LOG LADLE_REPO
covered=0
for config in $CONFIGS; do
  use_config "$config"
  check_config "$config"
  if (( covered == 0 )) && [[ -z "$AUTHORIZATION" ]]; then
    log "coverage check of all $ENTITIES ids on the $config server"
    timeout 600 "$PY" "$HERE/check.py" coverage "$BASE/get-online-features" \
      --id-start 1 --id-count "$ENTITIES" --features "$FEATURES" --entity-key user_id >&2 \
      || die "coverage check failed"
    covered=1
  fi
done
(( covered )) || log "every config has auth: the coverage check is skipped"

# At each point the configs run in turn, in reverse order every other round, so that a
# trend in the machine's other load does not favour the configs that come first.
wait_quiet
read -r -a order <<< "$CONFIGS"
for (( round = 1; round <= ROUNDS; round++ )); do
  for rows in $ROWS_LIST; do
    for conns in $CONNS_LIST; do
      for config in "${order[@]}"; do run_one "$config" "$round" "$rows" "$conns"; done
    done
  done
  read -r -a order <<< "$(printf '%s\n' "${order[@]}" | tac | tr '\n' ' ')"
done
for config in $CONFIGS; do
  use_config "$config"
  grep -qE 'Traceback|ERROR' "$LOGFILE" && log "WARNING: errors in $LOGFILE"
  stop_server
done

# In process (bench/overhead_inproc.py): the app's CPU time per request in each config,
# all apps in one process, timed in short blocks in turn.
if (( INPROC > 0 )); then
  log "in process: $INPROC blocks of 100 requests per config and rows"
  bounded $(( 120 + INPROC * 20 )) "$PY" -m bench.overhead_inproc --repo "$REPO" \
    --auth-repo "$AUTH_REPO" --token-file "$TMP/tokens/token" \
    --metrics-dir "$TMP/metrics-inproc" --configs "$CONFIGS" --rows "$ROWS_LIST" \
    --entities "$ENTITIES" --blocks "$INPROC" --out "$RESULTS_DIR/results-inproc.jsonl" \
    --log "$RESULTS_DIR/raw/inproc_access.log" || die "the in-process measurement failed"
fi

# ---------------------------------------------------------------- 4. report -------------
"$PY" -m bench.overhead_report "$RESULTS_DIR" --json "$RESULTS_DIR/results.json" \
  | tee "$RESULTS_DIR/table.md"
log "done: $RESULTS_DIR (table.md, results.json, results.jsonl, meta.json, raw/)"
