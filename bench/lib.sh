# Shared shell helpers for the benchmark scripts (run.sh, push.sh, materialize.sh).
# Source it after `set -Eeuo pipefail`:
#
#     HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
#     source "$HERE/lib.sh"
#
# It defines the paths (ROOT, VENV_BIN, PY, LADLE, HYPERCORN, UVICORN), logging (log,
# die), the cleanup trap (every process group in PGIDS is killed on exit, error, Ctrl-C or
# SIGTERM, then TMP is removed unless KEEP_TMP=1), bounded process helpers, an overall
# watchdog, a free-port picker, a throwaway redis-server, the server start-up (hypercorn,
# uvicorn or `ladle serve`), CPU accounting from /proc, the quiet-machine wait, and the
# measured wrk run. Knobs it reads: PYTHON, KEEP_TMP, BENCH_TAG (log prefix).
#
# PYTHONPATH is set to this checkout, so `ladle`, hypercorn and uvicorn run the code next
# to this script even when the virtualenv (PYTHON) belongs to another checkout.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
PY=${PYTHON:-$ROOT/.venv/bin/python}
VENV_BIN=$(dirname "$PY")
LADLE="$VENV_BIN/ladle"
HYPERCORN="$VENV_BIN/hypercorn"
UVICORN="$VENV_BIN/uvicorn"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
KEEP_TMP=${KEEP_TMP:-0}
BENCH_TAG=${BENCH_TAG:-bench}
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[%s %s] %s\n' "$BENCH_TAG" "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '\n[%s] FAILED: %s\n' "$BENCH_TAG" "$*" >&2; exit 1; }

# "10s" / "10" / "1m" -> seconds
seconds() {
  local v=$1
  case "$v" in
    *m) echo $(( ${v%m} * 60 )) ;;
    *s) echo "${v%s}" ;;
    *)  echo "$v" ;;
  esac
}

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
# A command that fails outside a condition stops the script (set -e): say which one.
# Subshells ($(...)) inherit the trap (set -E); only the main shell reports.
on_error() {
  local rc=$1 line=$2 file=$3 command=$4
  (( BASH_SUBSHELL == 0 )) && log "FAILED: line $line of ${file##*/}: $command (exit $rc)"
  return 0
}
trap 'on_error $? $LINENO "${BASH_SOURCE[0]}" "$BASH_COMMAND"' ERR
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

# Run "$@" in its own process group and wait for it; stdout+stderr go to $LOGFILE. The
# command must bound itself (e.g. start with `timeout`). While it runs, the cleanup trap
# kills the whole group; once it has ended, the group is forgotten (its id may be reused).
run_group() {
  setsid "$@" >"$LOGFILE" 2>&1 < /dev/null &
  local pid=$! rc=0 i
  PGIDS+=("$pid")
  wait "$pid" || rc=$?
  for i in "${!PGIDS[@]}"; do [[ "${PGIDS[$i]}" == "$pid" ]] && unset 'PGIDS[i]'; done
  PGIDS=("${PGIDS[@]}")
  return "$rc"
}

# spawn_group LIMIT CMD...: start CMD (bounded by LIMIT seconds) in its own process group
# in the background, output to $LOGFILE; its pid (= group id) goes to STARTED_PID. Collect
# it with reap_group, which returns its exit status.
spawn_group() {
  local limit=$1; shift
  setsid timeout -k 5 "$limit" "$@" >"$LOGFILE" 2>&1 < /dev/null &
  STARTED_PID=$!
  PGIDS+=("$STARTED_PID")
}
reap_group() {
  local pid=$1 rc=0 i
  wait "$pid" || rc=$?
  for i in "${!PGIDS[@]}"; do [[ "${PGIDS[$i]}" == "$pid" ]] && unset 'PGIDS[i]'; done
  PGIDS=("${PGIDS[@]}")
  return "$rc"
}

# watchdog SECONDS: the whole script gets SIGTERM (and so cleans up) after SECONDS.
watchdog() {
  local limit=$1 me=$$
  setsid bash -c "sleep $limit; echo '[$BENCH_TAG] overall timeout ($limit s): stopping' >&2
                  kill -TERM $me" < /dev/null > /dev/null &
  PGIDS+=("$!")
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

# ensure_tool COMMAND [DEBIAN_PACKAGE]: apt-get install the package if COMMAND is missing.
prepare_results() {  # prepare_results LINK: make $RESULTS_DIR, empty $RESULTS, link results/LINK
  mkdir -p "$RESULTS_DIR/raw"
  RESULTS_DIR=$(cd "$RESULTS_DIR" && pwd)
  RESULTS="$RESULTS_DIR/results.jsonl"
  : > "$RESULTS"
  if [[ "$(dirname "$RESULTS_DIR")" == "$BENCH_DIR/results" ]]; then
    ln -sfn "$(basename "$RESULTS_DIR")" "$BENCH_DIR/results/$1"
  fi
}

ensure_tool() {
  local cmd=$1 pkg=${2:-$1}
  if [[ "$cmd" == /* ]]; then [[ -x "$cmd" ]] && return 0
  else command -v "$cmd" >/dev/null 2>&1 && return 0; fi
  log "$cmd not found: installing Debian package $pkg with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! timeout 300 apt-get install -y -q "$pkg" >/dev/null 2>&1; then
    timeout 300 apt-get update -q >/dev/null || die "apt-get update failed"
    timeout 300 apt-get install -y -q "$pkg" >/dev/null || die "apt-get install $pkg failed"
  fi
  if [[ "$cmd" == /* ]]; then [[ -x "$cmd" ]] || die "$cmd still missing after apt-get install"
  else command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after apt-get install"; fi
}

# ---------------------------------------------------------------- redis -----------------
# start_redis PORT: a throwaway redis-server on 127.0.0.1:PORT (never 6379), no persistence,
# output to $LOGFILE. Sets REDIS_GROUP, REDIS_PID, REDIS_PORT.
start_redis() {
  REDIS_PORT=$1
  [[ "$REDIS_PORT" != 6379 ]] || die "refusing to start a benchmark redis on 6379"
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
}

rcli() {  # redis-cli against the benchmark redis, time-bounded
  timeout 30 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}

# redis_calls CMD...: the `INFO commandstats` call counts of the given commands (lowercase,
# e.g. hset evalsha), space-separated, 0 for a command never called.
redis_calls() {
  rcli info commandstats | tr -d '\r' | awk -v want="$*" '
    BEGIN { n = split(want, names, " "); for (i = 1; i <= n; i++) calls[names[i]] = 0 }
    /^cmdstat_/ { split($0, kv, ":"); name = substr(kv[1], 9)
                  if (match(kv[2], /calls=[0-9]+/)) calls[name] = substr(kv[2], RSTART + 6, RLENGTH - 6) }
    END { out = ""; for (i = 1; i <= n; i++) out = out (i > 1 ? " " : "") calls[names[i]]; print out }'
}

redis_info_field() {  # redis_info_field SECTION FIELD -> value
  rcli info "$1" | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'
}

# ---------------------------------------------------------------- server ----------------
# start_server APP [EXTRA ARGS...]: serve on 127.0.0.1:$SERVER_PORT with $WORKERS workers,
# output to $LOGFILE, with the server SERVER_KIND names (default hypercorn):
#   hypercorn  hypercorn [EXTRA ARGS] --worker-class uvloop --workers N --bind ADDR APP
#   uvicorn    uvicorn APP --workers N --loop uvloop --http httptools --no-access-log
#              --host 127.0.0.1 --port P [EXTRA ARGS]
#   ladle      ladle -c APP serve --workers N --no-access-log --host 127.0.0.1 --port P
#              [EXTRA ARGS]: APP is the repo folder; production's app:main under hypercorn
# Waits until /health answers and every worker is up. Sets SERVER_GROUP, SERVER_PIDS (every
# process of the server), SERVER_PARENT (the process that started the workers),
# WORKER_PIDS (the processes that serve; the parent itself when it has no workers), BASE.
start_server() {
  local app=$1; shift
  local kind=${SERVER_KIND:-hypercorn} ready
  BASE="http://127.0.0.1:$SERVER_PORT"
  cd "$ROOT"
  case "$kind" in
    hypercorn)
      start_group "$HYPERCORN" "$@" --worker-class uvloop --workers "$WORKERS" \
        --bind "127.0.0.1:$SERVER_PORT" "$app"
      ready='Running on' ;;
    uvicorn)
      [[ -x "$UVICORN" ]] || die "uvicorn is not installed in $VENV_BIN (pip install -e '.[dev]')"
      "$PY" -c 'import httptools, uvloop' 2>/dev/null \
        || die "uvicorn needs httptools and uvloop (pip install -e '.[dev]')"
      start_group "$UVICORN" "$app" --workers "$WORKERS" --loop uvloop --http httptools \
        --no-access-log --host 127.0.0.1 --port "$SERVER_PORT" "$@"
      ready='Application startup complete' ;;
    ladle)
      start_group "$LADLE" -c "$app" serve --workers "$WORKERS" --no-access-log \
        --host 127.0.0.1 --port "$SERVER_PORT" "$@"
      ready='Running on' ;;
    *) die "SERVER_KIND=$kind: use hypercorn, uvicorn or ladle" ;;
  esac
  SERVER_GROUP=$STARTED_PID
  local ok=0
  for _ in $(seq 300); do
    if [[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$BASE/health" 2>/dev/null)" == 200 ]]; then
      ok=1; break
    fi
    kill -0 "$SERVER_GROUP" 2>/dev/null || { cat "$LOGFILE" >&2; die "server exited"; }
    sleep 0.1
  done
  [[ $ok == 1 ]] || { cat "$LOGFILE" >&2; die "server not healthy after 30 s"; }
  # /health answered from one worker; wait until every worker logged that it is ready.
  for _ in $(seq 300); do
    (( $(grep -c "$ready" "$LOGFILE" || true) >= WORKERS )) && break
    sleep 0.1
  done
  (( $(grep -c "$ready" "$LOGFILE" || true) >= WORKERS )) \
    || { cat "$LOGFILE" >&2; die "not all $WORKERS workers started"; }
  # The group holds `timeout`, the server's parent process and its workers (spawned by
  # multiprocessing); uvicorn with one worker serves from the parent itself.
  SERVER_PIDS=$(pgrep -g "$SERVER_GROUP" | tr '\n' ' ')
  SERVER_PARENT=$(pgrep -P "$SERVER_GROUP" | head -1)
  WORKER_PIDS=$(pgrep -g "$SERVER_GROUP" -f spawn_main | tr '\n' ' ' || true)
  [[ -n "$WORKER_PIDS" ]] || WORKER_PIDS=$SERVER_PARENT
}

# stop_server: stop the server's process group (SIGTERM, then SIGKILL after 10 s).
stop_server() {
  [[ -n "${SERVER_GROUP:-}" ]] || return 0
  kill -TERM -- "-$SERVER_GROUP" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 -- "-$SERVER_GROUP" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$SERVER_GROUP" 2>/dev/null || true
  wait "$SERVER_GROUP" 2>/dev/null || true
  local i
  for i in "${!PGIDS[@]}"; do [[ "${PGIDS[$i]}" == "$SERVER_GROUP" ]] && unset 'PGIDS[i]'; done
  PGIDS=("${PGIDS[@]}")
  SERVER_GROUP=""
}

# ---------------------------------------------------------------- CPU accounting --------
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

# Other load on the machine skews everything: measure it (2 s samples) while we are idle,
# waiting up to WAIT_QUIET seconds for it to drop to 10% of one core or less. Sets
# IDLE_BUSY and writes it to $RESULTS_DIR/raw/background_cpu_pct.txt.
wait_quiet() {
  local quiet_deadline h0 h1
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
}

# ---------------------------------------------------------------- wrk -------------------
# wrk_dump_body LUA OUT: the first body the Lua script would send, written by the script
# itself (DUMP_BODY=OUT; the Lua knobs come from the environment). wrk runs 1 s against
# a socket that listens but never accepts, so no request reaches any server.
wrk_dump_body() {
  timeout 60 "$PY" - "$1" "$2" <<'EOF'
import os, socket, subprocess, sys
lua, path = sys.argv[1:]
sink = socket.socket()
sink.bind(("127.0.0.1", 0))
sink.listen(64)  # never accepted: connections complete in the kernel, nothing answers
url = f"http://127.0.0.1:{sink.getsockname()[1]}/"
if os.path.exists(path):
    os.remove(path)
env = dict(os.environ, DUMP_BODY=path)
subprocess.run(["wrk", "-t1", "-c1", "-d1s", "-s", lua, url], env=env, timeout=20,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
sink.close()
if not (os.path.exists(path) and os.path.getsize(path)):
    sys.exit(f"wrk did not dump a body to {path}")
EOF
}

# One measured wrk run with CPU accounting; sets CPU_SAMPLE (see report.py --merge).
# Uses $LUA, $DUR_S, $SERVER_PIDS, $WORKER_PIDS, $REDIS_PID, $TMP and $RESULTS_DIR; the
# Lua knobs come from the environment.
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

threads_for() { if (( $1 >= 2 )); then echo 2; else echo 1; fi; }
