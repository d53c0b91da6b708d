#!/usr/bin/env bash
# Profile the request path: py-spy samples the server's worker while wrk sends the suite's
# requests, for 1-row and 10-row bodies, and bench/profile_summary.py prints where the
# CPU time goes (by layer, top frames by self and by total time).
#
# Usage (as root: py-spy attaches with ptrace; root also installs wrk when it is missing):
#
#     bash bench/profile.sh                      # hypercorn, 1 worker, 1 and 10 rows
#     bash bench/profile.sh --server uvicorn --rows "1 10 100" --duration 20s
#     bash bench/profile.sh --help
#
# Steps, each bounded in time (and the whole script by --timeout):
#   1. installs wrk (apt-get) and py-spy (pip, into the interpreter's environment) when
#      missing;
#   2. the suite dataset in a throwaway Redis (bench/suite_lib.sh: bench/suite_data.py,
#      `ladle apply`, `ladle materialize`);
#   3. serves bench.floor_app:app with --workers workers (default 1, so one process takes
#      every request), as bench/suite.sh does;
#   4. for each rows x scenario: a sanity curl of the first body, a warm-up, then wrk
#      (bench/suite-profile.lua) for the duration + 3 s while `py-spy record --format raw
#      --function --nonblocking` samples every worker for the duration;
#   5. writes summary.md (bench/profile_summary.py) and prints it. py-spy's raw files
#      (collapsed stacks, the input of flamegraph.pl or speedscope) stay in raw/.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_TAG=profile
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
# shellcheck source=bench/suite_lib.sh
source "$HERE/suite_lib.sh"
LUA="$HERE/suite-profile.lua"

usage() {
  cat <<'EOF'
Usage: bash bench/profile.sh [OPTIONS]

  --rows "1 10"       entity rows per request, one profile each
  --scenarios NAMES   scenarios of bench/suite_spec.py to profile (default "features")
  --server KIND       hypercorn (default) or uvicorn
  --workers N         server workers (default 1; every worker is sampled)
  --conns N           wrk connections (default 4: keeps one worker busy)
  --duration D        sampling time per profile (default 15s)
  --rate N            py-spy samples per second (default 250)
  --native            also sample C extensions (py-spy --native; pauses the worker for
                      each sample, so it slows it more than the default --nonblocking)
  --entities N        entities in the dataset (default 100000)
  --top N             frames per summary table (default 15)
  --timeout S         overall limit in seconds (default: computed)
  --results DIR       output folder (default bench/results/profile-<UTC stamp>;
                      bench/results/latest-profile links the newest)
  --keep-tmp          keep the temp dir
Environment: PYTHON (interpreter with Ladle's dependencies, default .venv/bin/python).
EOF
}

ROWS_LIST="1 10" SCENARIOS=features SERVER=hypercorn WORKERS=1 CONNS=4 DURATION=15s
RATE=250 NATIVE=0 ENTITIES=100000 TOP=15 OVERALL="" WARMUP_S=3
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$HERE/results/profile-$STAMP}
while (( $# )); do
  case "$1" in
    --rows) ROWS_LIST=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --server) SERVER=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --native) NATIVE=1; shift ;;
    --entities) ENTITIES=$2; shift 2 ;;
    --top) TOP=$2; shift 2 ;;
    --timeout) OVERALL=$2; shift 2 ;;
    --results) RESULTS_DIR=$2; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
DUR_S=$(seconds "$DURATION")
for n in $ROWS_LIST "$WORKERS" "$CONNS" "$DUR_S" "$RATE" "$ENTITIES" "$TOP"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "$n: expected a positive integer"
done
[[ "$SERVER" == hypercorn || "$SERVER" == uvicorn ]] || die "--server $SERVER?"
[[ -x "$PY" ]] || die "no Python at $PY (set PYTHON)"
PLAN=$("$PY" -m bench.suite_spec plan --rows "$ROWS_LIST" --conns "$CONNS" \
  --scenarios "$SCENARIOS") || die "bad --scenarios"
n_runs=$(wc -l <<< "$PLAN")
BUDGET=$(( 900 + n_runs * (DUR_S + WARMUP_S + 60) ))
OVERALL=${OVERALL:-$(( BUDGET + 120 ))}
watchdog "$OVERALL"

# ---------------------------------------------------------------- 1. tools ---------------
ensure_tool wrk
command -v curl >/dev/null 2>&1 || die "curl not found"
PYSPY="$VENV_BIN/py-spy"
if [[ ! -x "$PYSPY" ]]; then
  log "py-spy not found: pip install py-spy into $VENV_BIN"
  timeout 300 "$PY" -m pip install -q py-spy >&2 || die "pip install py-spy failed"
fi
prepare_results latest-profile
TMP=$(mktemp -d /tmp/ladle-profile.XXXXXX)
log "results -> $RESULTS_DIR"

# ---------------------------------------------------------------- 2. dataset ------------
read -r REDIS_PORT SERVER_PORT <<< "$(free_ports 2)"
suite_dataset "$ENTITIES"
REFS=$("$PY" -m bench.suite_spec features)

# ---------------------------------------------------------------- 3. server -------------
LOGFILE="$RESULTS_DIR/raw/server.log"
start_suite_server "$SERVER"
log "$SERVER up: parent $SERVER_PARENT, workers $WORKER_PIDS"
"$PY" "$HERE/meta.py" "$RESULTS_DIR/meta.json" --root "$ROOT" --stamp "$STAMP" \
  --packages hypercorn uvicorn httptools starlette msgspec redis hiredis uvloop py-spy \
  --set knobs "$(knobs_json ROWS_LIST SCENARIOS SERVER WORKERS CONNS DURATION RATE NATIVE ENTITIES)"

# ---------------------------------------------------------------- 4. profiles -----------
# py-spy reads the stacks without stopping the process (--nonblocking), except with
# --native, which needs the process paused for each sample (and so slows it more).
sampling=(--nonblocking); (( NATIVE )) && sampling=(--native)
SUMMARY="$RESULTS_DIR/summary.md"
{
  echo "# Request-path profile ($STAMP, commit $(git -C "$ROOT" rev-parse --short HEAD))"
  echo
  echo "$SERVER, $WORKERS worker(s), wrk -c$CONNS, py-spy --rate $RATE --function" \
       "${sampling[*]}; $DUR_S s of samples per profile."
  echo
} > "$SUMMARY"
titles=() files=()
while read -r scen rows _conns path svc; do
  label="${scen}_r${rows}"
  body="$RESULTS_DIR/raw/body_$label.json"
  export ENTITY_KEY=user_id ID_START=1 ID_COUNT=$ENTITIES ROWS=$rows LABEL=$label
  if [[ "$svc" == - ]]; then export FEATURES=$REFS FEATURE_SERVICE=""
  else export FEATURES="" FEATURE_SERVICE=$svc; fi
  wrk_dump_body "$LUA" "$body" || die "could not dump the body of $label"
  code=$(curl -sS -m 10 -o "$RESULTS_DIR/raw/$label.sanity.json" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary @"$body" "$BASE$path") || code=000
  floor=(); [[ "$path" == /floor ]] && floor=(--floor)
  "$PY" "$HERE/check.py" response "$RESULTS_DIR/raw/$label.sanity.json" --http-code "$code" \
    --body "$body" "${floor[@]}" >&2 || die "sanity check of $label failed"

  threads=$(threads_for "$CONNS")
  bounded $((WARMUP_S + 20)) wrk -t"$threads" -c"$CONNS" -d"${WARMUP_S}s" -s "$LUA" \
    "$BASE$path" > "$RESULTS_DIR/raw/$label.warmup.txt" 2>&1 || die "warm-up of $label failed"
  LOGFILE="$RESULTS_DIR/raw/$label.wrk.txt"
  RESULT_FILE="$RESULTS_DIR/raw/$label.json" spawn_group $((DUR_S + 30)) \
    wrk -t"$threads" -c"$CONNS" -d"$((DUR_S + 3))s" --latency -s "$LUA" "$BASE$path"
  wrk_pid=$STARTED_PID
  sleep 1
  spies=() parts=()
  for pid in $WORKER_PIDS; do
    LOGFILE="$RESULTS_DIR/raw/$label.py-spy.$pid.log"
    spawn_group $((DUR_S + 60)) "$PYSPY" record --pid "$pid" --duration "$DUR_S" \
      --rate "$RATE" --format raw --function "${sampling[@]}" \
      --output "$RESULTS_DIR/raw/profile_$label.$pid.txt"
    spies+=("$STARTED_PID") parts+=("$RESULTS_DIR/raw/profile_$label.$pid.txt")
  done
  for spy in "${spies[@]}"; do
    reap_group "$spy" || die "py-spy failed for $label; see raw/$label.py-spy.*.log (root? ptrace?)"
  done
  reap_group "$wrk_pid" || die "wrk failed during the $label profile"
  cat "${parts[@]}" > "$RESULTS_DIR/raw/profile_$label.txt"
  log "$label: $("$PY" -m bench.profile_summary --wrk-line "$RESULTS_DIR/raw/$label.json")"
  titles+=(--title "$scen, $rows row(s) per request" --wrk "$RESULTS_DIR/raw/$label.json")
  files+=("$RESULTS_DIR/raw/profile_$label.txt")
done <<< "$PLAN"
kill -0 "$SERVER_GROUP" 2>/dev/null || die "server died during the profiles"
stop_server

# ---------------------------------------------------------------- 5. summary ------------
"$PY" -m bench.profile_summary "${files[@]}" "${titles[@]}" --top "$TOP" >> "$SUMMARY"
cat "$SUMMARY"
log "done: $RESULTS_DIR (summary.md, raw/profile_*.txt: py-spy collapsed stacks)"
