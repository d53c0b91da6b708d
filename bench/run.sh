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
ROOT=$(dirname "$HERE")
VENV_BIN="$ROOT/.venv/bin"
PY=${PYTHON:-$VENV_BIN/python}
LADLE="$VENV_BIN/ladle"
HYPERCORN="$VENV_BIN/hypercorn"
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

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '\n[bench] FAILED: %s\n' "$*" >&2; exit 1; }

# "10s" / "10" / "1m" -> seconds
seconds() {
  local v=$1
  case "$v" in
    *m) echo $(( ${v%m} * 60 )) ;;
    *s) echo "${v%s}" ;;
    *)  echo "$v" ;;
  esac
}
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

# ---------------------------------------------------------------- cleanup ---------------
PGIDS=()         # process groups we started (each is a setsid'd `timeout` + children)
BOUNDED_PID=""   # the foreground-ish command `bounded` is waiting for
TMP=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local g
  [[ -n "$BOUNDED_PID" ]] && kill -TERM "$BOUNDED_PID" 2>/dev/null || true
  for g in "${PGIDS[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for g in "${PGIDS[@]}"; do kill -0 -- "-$g" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for g in "${PGIDS[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n "$TMP" && -d "$TMP" ]]; then
    if [[ "$KEEP_TMP" == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted (SIGINT): stopping everything"; exit 130' INT
trap 'log "terminated (SIGTERM): stopping everything"; exit 143' TERM

# Start "$@" in its own session/process group, bounded by $BUDGET seconds. In a
# non-interactive shell a background job is not a group leader, so setsid does not fork
# and $! is the group id. Output goes to file $LOGFILE.
start_group() {
  setsid timeout -k 5 "$BUDGET" "$@" >"$LOGFILE" 2>&1 < /dev/null &
  local pid=$! pgid
  PGIDS+=("$pid")
  STARTED_PID=$pid
  pgid=$(ps -o pgid= -p "$pid" | tr -d ' ') || true
  [[ -z "$pgid" || "$pgid" == "$pid" ]] || die "setsid did not make $pid a group leader"
}

# Run a bounded foreground command in the background and wait, so signals act at once.
bounded() {
  local limit=$1; shift
  timeout -k 5 "$limit" "$@" &
  BOUNDED_PID=$!
  local rc=0
  wait "$BOUNDED_PID" || rc=$?
  BOUNDED_PID=""
  return "$rc"
}

free_ports() {  # N distinct free loopback ports
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# ---------------------------------------------------------------- 1. wrk ----------------
if ! command -v wrk >/dev/null 2>&1; then
  log "wrk not found: installing it with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! timeout 300 apt-get install -y -q wrk >/dev/null 2>&1; then
    timeout 300 apt-get update -q >/dev/null || die "apt-get update failed"
    timeout 300 apt-get install -y -q wrk >/dev/null || die "apt-get install wrk failed"
  fi
  command -v wrk >/dev/null 2>&1 || die "wrk still missing after apt-get install"
fi
command -v redis-server >/dev/null 2>&1 || die "redis-server not found (apt-get install redis-server)"
command -v curl >/dev/null 2>&1 || die "curl not found"

mkdir -p "$RESULTS_DIR/raw"
RESULTS_DIR=$(cd "$RESULTS_DIR" && pwd)
RESULTS="$RESULTS_DIR/results.jsonl"
: > "$RESULTS"
if [[ "$(dirname "$RESULTS_DIR")" == "$HERE/results" ]]; then
  ln -sfn "$(basename "$RESULTS_DIR")" "$HERE/results/latest"
fi
TMP=$(mktemp -d /tmp/ladle-bench.XXXXXX)
REPO="$TMP/repo"

read -r REDIS_PORT SERVER_PORT <<< "$(free_ports 2)"
[[ "$REDIS_PORT" != 6379 && "$SERVER_PORT" != 6379 ]] || die "port picker returned 6379"
BASE="http://127.0.0.1:$SERVER_PORT"
log "results -> $RESULTS_DIR"
log "redis 127.0.0.1:$REDIS_PORT, server 127.0.0.1:$SERVER_PORT, $WORKERS worker(s), temp $TMP"

# ---------------------------------------------------------------- 2. redis --------------
LOGFILE="$RESULTS_DIR/raw/redis.log"
start_group redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize no
REDIS_GROUP=$STARTED_PID
for _ in $(seq 100); do
  [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] && break
  kill -0 "$REDIS_GROUP" 2>/dev/null || die "redis-server exited; see $LOGFILE"
  sleep 0.1
done
[[ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping)" == PONG ]] \
  || die "redis-server on $REDIS_PORT does not answer"
REDIS_PID=$(pgrep -g "$REDIS_GROUP" -x redis-server | head -1)
[[ -n "$REDIS_PID" ]] || die "cannot find the redis-server pid"

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
cd "$ROOT"   # so that `bench` is importable by the hypercorn workers
export LADLE_REPO="$REPO"
start_group "$HYPERCORN" --worker-class uvloop --workers "$WORKERS" \
  --bind "127.0.0.1:$SERVER_PORT" bench.floor_app:app
SERVER_GROUP=$STARTED_PID
ready=0
for _ in $(seq 300); do
  if [[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$BASE/health" 2>/dev/null)" == 200 ]]; then
    ready=1; break
  fi
  kill -0 "$SERVER_GROUP" 2>/dev/null || { cat "$LOGFILE" >&2; die "server exited"; }
  sleep 0.1
done
[[ $ready == 1 ]] || { cat "$LOGFILE" >&2; die "server not healthy after 30 s"; }
# /health answered from one worker; wait until every worker logged "Running on".
for _ in $(seq 300); do
  (( $(grep -c 'Running on' "$LOGFILE" || true) >= WORKERS )) && break
  sleep 0.1
done
(( $(grep -c 'Running on' "$LOGFILE" || true) >= WORKERS )) \
  || { cat "$LOGFILE" >&2; die "not all $WORKERS workers started"; }
SERVER_PIDS=$(pgrep -g "$SERVER_GROUP" | tr '\n' ' ')
WORKER_PIDS=$(pgrep -g "$SERVER_GROUP" -f spawn_main | tr '\n' ' ')
log "server up (group $SERVER_GROUP, workers: $WORKER_PIDS)"

timeout 300 "$PY" "$HERE/check.py" coverage "$BASE/get-online-features" \
  --id-start "$ID_START" --id-count "$ENTITIES" --features "$FEATURES" \
  --full-names "$FULL_NAMES" >&2 \
  || die "coverage check failed"

# Record the setup.
"$PY" - "$RESULTS_DIR/meta.json" <<EOF
import json, platform, subprocess, sys, os
def out(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception as exc:
        return f"? ({exc})"
from importlib.metadata import version
meta = {
    "stamp": "$STAMP",
    "git_commit": out("git", "-C", "$ROOT", "rev-parse", "--short", "HEAD"),
    # uncommitted changes to the server code measured by this run, if any
    "git_dirty": [l.strip() for l in out("git", "-C", "$ROOT", "status", "--porcelain", "--",
                                         "app", "stores", "registry").splitlines()],
    "cpus": os.cpu_count(),
    "python": platform.python_version(),
    "packages": {p: version(p) for p in ("hypercorn", "starlette", "msgspec", "redis", "hiredis", "uvloop")},
    "redis_server": out("redis-server", "--version"),
    "wrk": out("sh", "-c", "wrk -v 2>&1 | head -1"),
    "server": "hypercorn --worker-class uvloop --workers $WORKERS bench.floor_app:app (no access log)",
    "knobs": {"DURATION": "$DURATION", "WARMUP": "$WARMUP", "WORKERS": $WORKERS,
              "ENTITIES": $ENTITIES, "ID_START": $ID_START, "VIEWS": $VIEWS,
              "FEATURES": "$FEATURES", "FULL_NAMES": "$FULL_NAMES", "NBODIES": "${NBODIES:-200}", "ROWS_LIST": "$ROWS_LIST", "CONNS_LIST": "$CONNS_LIST",
              "ENDPOINTS": "$ENDPOINTS"},
}
json.dump(meta, open(sys.argv[1], "w"), indent=2)
EOF

# ---------------------------------------------------------------- 5. scenarios ----------
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() {  # summed utime+stime (ticks) of the given pids; missing pids count 0
  local total=0 pid f
  for pid in "$@"; do
    f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    f=${f##*) }   # fields after "(comm) "; utime, stime are fields 12, 13 from here
    read -r -a a <<< "$f"
    total=$(( total + a[11] + a[12] ))
  done
  echo "$total"
}
host_busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
# user+sys seconds of this shell's waited-for children (wrk, via timeout). `times` must
# run in this shell, not in a $(...) subshell, hence the file.
children_cpu_to() { times > "$1"; }
children_seconds() {
  awk 'NR==2 { s=0; for (i=1;i<=2;i++) { split($i, p, "m"); sub("s", "", p[2]);
       s += p[1]*60 + p[2] } printf "%.3f\n", s }' "$1"
}

# The bodies wrk sends first (make_body(0)), dumped by the Lua script itself: wrk runs
# 1 s against a socket that listens but never accepts, so init() writes DUMP_BODY and no
# request reaches the server. One file per ROWS value: raw/body_rows<N>.json.
dump_bodies() {
  ID_COUNT=$ENTITIES timeout 120 "$PY" - "$LUA" "$RESULTS_DIR/raw" $ROWS_LIST <<'EOF'
import os, socket, subprocess, sys
lua, out_dir, *rows_list = sys.argv[1:]
sink = socket.socket()
sink.bind(("127.0.0.1", 0))
sink.listen(64)  # never accepted: connections complete in the kernel, nothing answers
url = f"http://127.0.0.1:{sink.getsockname()[1]}/"
for rows in rows_list:
    path = os.path.join(out_dir, f"body_rows{rows}.json")
    env = dict(os.environ, ROWS=rows, DUMP_BODY=path)
    subprocess.run(["wrk", "-t1", "-c1", "-d1s", "-s", lua, url], env=env, timeout=20,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not (os.path.exists(path) and os.path.getsize(path)):
        sys.exit(f"wrk did not dump a body for ROWS={rows}")
sink.close()
EOF
}

threads_for() { if (( $1 >= 2 )); then echo 2; else echo 1; fi; }

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

# One measured wrk run with CPU accounting; sets CPU_SAMPLE (see report.py --merge).
measure() {  # tag threads conns url result_file
  local tag=$1 threads=$2 conns=$3 url=$4 out=$5
  local s0 r0 h0 t0 s1 r1 h1 t1 k0 k1 pid
  s0=$(proc_ticks $SERVER_PIDS); r0=$(proc_ticks "$REDIS_PID"); h0=$(host_busy_ticks)
  k0=""; for pid in $WORKER_PIDS; do k0+="$(proc_ticks "$pid"):"; done
  children_cpu_to "$TMP/times0"; t0=$(date +%s.%N)
  RESULT_FILE="$out" LABEL="$tag" bounded $((DUR_S + 20)) wrk -t"$threads" -c"$conns" \
    -d"${DUR_S}s" --latency -s "$LUA" "$url" > "$RESULTS_DIR/raw/$tag.txt" 2>&1 \
    || die "wrk for $tag failed or timed out (see raw/$tag.txt)"
  t1=$(date +%s.%N); children_cpu_to "$TMP/times1"
  s1=$(proc_ticks $SERVER_PIDS); r1=$(proc_ticks "$REDIS_PID"); h1=$(host_busy_ticks)
  k1=""; for pid in $WORKER_PIDS; do k1+="$(proc_ticks "$pid"):"; done
  [[ -s "$out" ]] || die "wrk wrote no result for $tag"
  # wall_s,clk_tck,server0,server1,redis0,redis1,wrk_s0,wrk_s1,host0,host1,workers0,workers1
  CPU_SAMPLE="$t0,$t1,$CLK_TCK,$s0,$s1,$r0,$r1,$(children_seconds "$TMP/times0"),"
  CPU_SAMPLE+="$(children_seconds "$TMP/times1"),$h0,$h1,${k0%:},${k1%:}"
}

dump_bodies || die "could not dump the request bodies with wrk"
# Other load on the machine skews everything: measure it (2 s samples) while we are idle,
# waiting up to WAIT_QUIET seconds for it to drop to 10% of one core or less.
quiet_deadline=$(( $(date +%s) + WAIT_QUIET ))
while :; do
  h0=$(host_busy_ticks); sleep 2; h1=$(host_busy_ticks)
  IDLE_BUSY=$(( (h1 - h0) * 100 / CLK_TCK / 2 ))
  (( IDLE_BUSY <= 10 || $(date +%s) >= quiet_deadline )) && break
  log "machine ${IDLE_BUSY}% busy before any load; waiting for it to settle"
done
echo "$IDLE_BUSY" > "$RESULTS_DIR/raw/background_cpu_pct.txt"
if (( IDLE_BUSY > 10 )); then
  log "WARNING: other processes use ${IDLE_BUSY}% CPU (of $(( $(nproc) * 100 ))%) before any" \
      "load; results will be noisy (see the 'other' CPU column)"
else
  log "background load before the run: ${IDLE_BUSY}% CPU"
fi
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
