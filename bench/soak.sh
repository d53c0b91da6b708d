#!/usr/bin/env bash
# Soak test: mixed reads and pushes against `ladle serve` for a long time (10 minutes by
# default), sampling every server process's RSS and the p99 of each interval, to catch
# leaks, errors and slow drift that a 10-second benchmark cannot show.
#
# Usage (root is needed only to apt-get install wrk when it is missing):
#
#     bash bench/soak.sh                          # 10 minutes, 30 s intervals
#     bash bench/soak.sh --duration 2m            # a short check
#     bash bench/soak.sh --server uvicorn --duration 30m --interval 60s
#     bash bench/soak.sh --help
#
# Steps, each bounded in time (and the whole script by --timeout):
#   1. installs wrk with apt-get if missing;
#   2. the suite dataset in a throwaway Redis (bench/suite_lib.sh), whose first view is
#      fed by a push source;
#   3. serves it with `ladle serve --workers N --no-access-log` (production: app:main
#      under hypercorn), or hypercorn/uvicorn as bench/suite.sh starts them;
#   4. sanity checks: a read of the first read body (all PRESENT), and a push of the first
#      push body read back with the pushed values;
#   5. every interval, two wrk runs side by side for the interval's length: reads
#      (bench/suite-profile.lua: random ids, 1/10/100 rows, features list and feature
#      service in turn) and pushes (bench/suite-push.lua: rows with growing timestamps),
#      both counting 4xx and 5xx; then the RSS of the server's parent, each worker and
#      redis-server from /proc, and the error lines in the server log so far;
#   6. prints the table over time and the RSS growth per process after warm-up
#      (bench/soak_report.py), writes soak.json. Exit status 2 when something is flagged
#      (errors, 5xx, a worker replaced, log errors, RSS growth past --growth-mib).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_TAG=soak
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
# shellcheck source=bench/suite_lib.sh
source "$HERE/suite_lib.sh"
READ_LUA="$HERE/suite-profile.lua"
PUSH_LUA="$HERE/suite-push.lua"

usage() {
  cat <<'EOF'
Usage: bash bench/soak.sh [OPTIONS]

  --duration D        soak length (N, Ns or Nm; default 10m)
  --interval D        sampling interval (default 30s; one wrk run per interval)
  --warmup D          RSS growth is measured after this, rounded up to whole intervals
                      (default 1m)
  --growth-mib N      flag a process whose RSS grew more than N MiB after warm-up (default 8)
  --server KIND       ladle (default: `ladle serve`), hypercorn or uvicorn (app:main)
  --workers N         server workers (default 2)
  --read-conns N      read connections (default 8)
  --read-rows LIST    rows per read body, in turn (default "1,10,100")
  --push-conns N      push connections (default 2)
  --push-rows N       rows per push (default 10)
  --entities N        entities in the dataset (default 100000)
  --timeout S         overall limit in seconds (default: computed)
  --results DIR       output folder (default bench/results/soak-<UTC stamp>;
                      bench/results/latest-soak links the newest)
  --keep-tmp          keep the temp dir
Environment: PYTHON (interpreter with Ladle's dependencies, default .venv/bin/python).
EOF
}

DURATION=10m INTERVAL=30s WARMUP=1m GROWTH_MIB=8 SERVER=ladle WORKERS=2 READ_CONNS=8
READ_ROWS="1,10,100" PUSH_CONNS=2 PUSH_ROWS=10 ENTITIES=100000 OVERALL=""
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$HERE/results/soak-$STAMP}
while (( $# )); do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --interval) INTERVAL=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --growth-mib) GROWTH_MIB=$2; shift 2 ;;
    --server) SERVER=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --read-conns) READ_CONNS=$2; shift 2 ;;
    --read-rows) READ_ROWS=$2; shift 2 ;;
    --push-conns) PUSH_CONNS=$2; shift 2 ;;
    --push-rows) PUSH_ROWS=$2; shift 2 ;;
    --entities) ENTITIES=$2; shift 2 ;;
    --timeout) OVERALL=$2; shift 2 ;;
    --results) RESULTS_DIR=$2; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
DUR_S=$(seconds "$DURATION")
INT_S=$(seconds "$INTERVAL")
WARM_S=$(seconds "$WARMUP")
for n in "$DUR_S" "$INT_S" "$WORKERS" "$READ_CONNS" "$PUSH_CONNS" "$PUSH_ROWS" "$ENTITIES"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "$n: expected a positive integer (durations: N, Ns or Nm)"
done
[[ "$WARM_S" =~ ^[0-9]+$ ]] || die "--warmup $WARMUP: use N, Ns or Nm"
[[ "$GROWTH_MIB" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--growth-mib $GROWTH_MIB: a number"
[[ "$READ_ROWS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--read-rows $READ_ROWS: e.g. 1,10,100"
[[ "$SERVER" =~ ^(ladle|hypercorn|uvicorn)$ ]] || die "--server $SERVER?"
(( INT_S >= 5 && INT_S <= DUR_S )) || die "--interval must be at least 5 s and at most --duration"
[[ -x "$PY" ]] || die "no Python at $PY (set PYTHON)"
N_INTERVALS=$(( DUR_S / INT_S ))
WARM_INTERVALS=$(( (WARM_S + INT_S - 1) / INT_S ))   # intervals that end within the warm-up
(( WARM_INTERVALS < N_INTERVALS )) || die "--warmup leaves no interval after it"
BUDGET=$(( 900 + DUR_S + N_INTERVALS * 30 ))
OVERALL=${OVERALL:-$(( BUDGET + 120 ))}
watchdog "$OVERALL"

# ---------------------------------------------------------------- 1.-2. tools, dataset --
ensure_tool wrk
command -v curl >/dev/null 2>&1 || die "curl not found"
prepare_results latest-soak
TMP=$(mktemp -d /tmp/ladle-soak.XXXXXX)
log "results -> $RESULTS_DIR; $N_INTERVALS intervals of ${INT_S}s; overall limit ${OVERALL}s"
read -r REDIS_PORT SERVER_PORT <<< "$(free_ports 2)"
suite_dataset "$ENTITIES"
read -r PUSH_SOURCE PUSH_VIEW PUSH_COLUMNS SERVICE <<< "$("$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))
print(m["push"]["source"], m["push"]["view"], m["push"]["columns"], m["services"][0])' \
  "$REPO/bench_meta.json")"
REFS=$("$PY" -m bench.suite_spec features)

# ---------------------------------------------------------------- 3. server -------------
LOGFILE="$RESULTS_DIR/raw/server.log"
if [[ "$SERVER" == ladle ]]; then start_suite_server ladle; else start_suite_server "$SERVER" app:main; fi
log "$SERVER up: parent $SERVER_PARENT, workers $WORKER_PIDS"
"$PY" "$HERE/meta.py" "$RESULTS_DIR/meta.json" --root "$ROOT" --stamp "$STAMP" \
  --packages hypercorn uvicorn httptools starlette msgspec redis hiredis uvloop \
  --set knobs "$(knobs_json DURATION INTERVAL WARMUP GROWTH_MIB SERVER WORKERS READ_CONNS \
    READ_ROWS PUSH_CONNS PUSH_ROWS ENTITIES)"

# ---------------------------------------------------------------- 4. sanity -------------
export ENTITY_KEY=user_id ID_START=1 ID_COUNT=$ENTITIES COUNT_STATUS=1 NTHREADS=1
export FEATURES=$REFS FEATURE_SERVICE=$SERVICE PUSH_SOURCE PUSH_COLUMNS
ROWS=$READ_ROWS wrk_dump_body "$READ_LUA" "$RESULTS_DIR/raw/read_body.json" \
  || die "could not dump the read body"
code=$(curl -sS -m 10 -o "$RESULTS_DIR/raw/read.sanity.json" -w '%{http_code}' \
  -H 'Content-Type: application/json' --data-binary @"$RESULTS_DIR/raw/read_body.json" \
  "$BASE/get-online-features") || code=000
"$PY" "$HERE/check.py" response "$RESULTS_DIR/raw/read.sanity.json" --http-code "$code" \
  --body "$RESULTS_DIR/raw/read_body.json" >&2 || die "read sanity check failed"
ROWS=$PUSH_ROWS wrk_dump_body "$PUSH_LUA" "$RESULTS_DIR/raw/push_body.json" \
  || die "could not dump the push body"
code=$(curl -sS -m 10 -o "$RESULTS_DIR/raw/push.sanity.txt" -w '%{http_code}' \
  -H 'Content-Type: application/json' --data-binary @"$RESULTS_DIR/raw/push_body.json" \
  "$BASE/push") || code=000
"$PY" "$HERE/check.py" pushed "$RESULTS_DIR/raw/push_body.json" --http-code "$code" \
  --response "$RESULTS_DIR/raw/push.sanity.txt" --url "$BASE/get-online-features" \
  --view "$PUSH_VIEW" --entity-key user_id \
  --features "$(tr ',' '\n' <<< "$PUSH_COLUMNS" | cut -d: -f1 | paste -sd,)" >&2 \
  || die "push sanity check failed"
sleep 1   # the soak's pushes must start in a later second than the sanity push

# ---------------------------------------------------------------- 5. intervals ----------
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
processes() {  # "role:pid:kib ..." for the server's parent, its workers and redis
  local out="parent:$SERVER_PARENT:$(rss_kib "$SERVER_PARENT")" pid
  for pid in $(pgrep -g "$SERVER_GROUP" -f spawn_main | sort -n); do
    out+=" worker:$pid:$(rss_kib "$pid")"
  done
  echo "$out redis:$REDIS_PID:$(rss_kib "$REDIS_PID")"
}
T0=$(date +%s)
log "soak: reads (c=$READ_CONNS, rows $READ_ROWS) + pushes (c=$PUSH_CONNS, $PUSH_ROWS rows)" \
    "for ${DUR_S}s"
for (( i = 1; i <= N_INTERVALS; i++ )); do
  kill -0 "$SERVER_GROUP" 2>/dev/null || die "the server died before interval $i"
  LOGFILE="$RESULTS_DIR/raw/reads_$i.txt"
  ROWS=$READ_ROWS LABEL="reads_$i" RESULT_FILE="$RESULTS_DIR/raw/reads_$i.json" \
    spawn_group $((INT_S + 30)) wrk -t1 -c"$READ_CONNS" -d"${INT_S}s" --latency \
    -s "$READ_LUA" "$BASE/get-online-features"
  reads=$STARTED_PID
  LOGFILE="$RESULTS_DIR/raw/pushes_$i.txt"
  ROWS=$PUSH_ROWS LABEL="pushes_$i" RESULT_FILE="$RESULTS_DIR/raw/pushes_$i.json" \
    spawn_group $((INT_S + 30)) wrk -t1 -c"$PUSH_CONNS" -d"${INT_S}s" --latency \
    -s "$PUSH_LUA" "$BASE/push"
  pushes=$STARTED_PID
  reap_group "$reads" || die "read wrk failed in interval $i (see raw/reads_$i.txt)"
  reap_group "$pushes" || die "push wrk failed in interval $i (see raw/pushes_$i.txt)"
  log_errors=$(grep -cE 'Traceback|ERROR' "$RESULTS_DIR/raw/server.log" || true)
  "$PY" -m bench.soak_report record "$RESULTS_DIR/soak.jsonl" --interval "$i" \
    --t $(( $(date +%s) - T0 )) --reads "$RESULTS_DIR/raw/reads_$i.json" \
    --pushes "$RESULTS_DIR/raw/pushes_$i.json" --rss "$(processes)" --log-errors "$log_errors"
done
kill -0 "$SERVER_GROUP" 2>/dev/null || die "the server died during the soak"
stop_server

# ---------------------------------------------------------------- 6. report -------------
rc=0
"$PY" -m bench.soak_report report "$RESULTS_DIR" --warmup-intervals "$WARM_INTERVALS" \
  --growth-mib "$GROWTH_MIB" --json "$RESULTS_DIR/soak.json" > "$RESULTS_DIR/table.md" || rc=$?
cat "$RESULTS_DIR/table.md"
(( rc == 0 || rc == 2 )) || die "bench/soak_report.py failed"
log "done: $RESULTS_DIR (table.md, soak.json, soak.jsonl, meta.json, raw/)"
exit "$rc"
