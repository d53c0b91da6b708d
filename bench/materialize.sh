#!/usr/bin/env bash
# Ladle materialization benchmark: `ladle materialize` from a large Parquet source into a
# throwaway Redis, with wall time, peak RSS (GNU time -v) and Redis memory per entity.
#
# Usage (from anywhere; needs root only to apt-get install `time` when /usr/bin/time is
# missing):
#
#     bash bench/materialize.sh
#
# What it does, every step time-bounded with `timeout`:
#   1. starts a throwaway redis-server on a free loopback port (never 6379);
#   2. for each size in SIZES (IDSxHOURS): bench/materialize_data.py writes a repo in a
#      temp dir (Redis online store, one view driver_hourly_stats with 6 features like
#      Feast's template: conv_rate, acc_rate, avg_daily_trips, driver_metadata (Map),
#      driver_config (Json), driver_profile (Map of a STRUCT column)) and its Parquet
#      source with DuckDB: IDS drivers x HOURS hourly rows; then `ladle apply`;
#   3. RUNS times per size: FLUSHALL, read the empty server's used_memory, then
#          /usr/bin/time -v timeout $TIME_LIMIT ladle -c REPO materialize START END -v driver_hourly_stats
#      (START/END: one hour either side of the data), CPU of redis and of the whole
#      machine during the run, then Redis used_memory, DBSIZE and the average
#      MEMORY USAGE of 2000 random keys; 500 random entities are read back and compared
#      with their newest Parquet row (the run fails if any differs, or if the number of
#      entities written or keys is not the number of drivers);
#   4. prints the markdown table (bench/materialize_data.py report). Everything it started
#      is killed on exit.
#
# Knobs (environment variables):
#   SIZES="100000x10 200000x10 100000x20"   drivers x hourly rows per driver, per dataset
#                    (1M rows; 2M rows with 2x the entities; 2M rows with the same entities)
#   RUNS=3           materialize runs per size (Redis flushed before each)
#   TIME_LIMIT=480   seconds for one `ladle materialize` (timeout)
#   WAIT_QUIET=30    seconds to wait for other load to settle (<=10% CPU) before each run
#   RETRY_NOISY=0    run again (up to N more times) when other processes took more than
#                    15% CPU during a run; the least disturbed attempt is kept
#   RESULTS_DIR=bench/results/materialize-<UTC stamp>
#                    (bench/results/latest-materialize links the newest)
#   KEEP_TMP=1       keep the temp dir (repos, Parquet files)
#   PYTHON=.venv/bin/python   interpreter with Ladle installed
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_TAG=materialize
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"   # ROOT, PY, LADLE, log/die, cleanup trap, helpers

SIZES=${SIZES:-"100000x10 200000x10 100000x20"}
RUNS=${RUNS:-3}
TIME_LIMIT=${TIME_LIMIT:-480}
WAIT_QUIET=${WAIT_QUIET:-30}
RETRY_NOISY=${RETRY_NOISY:-0}
NOISY_PCT=15
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$HERE/results/materialize-$STAMP}
VIEW=driver_hourly_stats
GNU_TIME=/usr/bin/time

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS=$RUNS: use a positive integer"
[[ "$TIME_LIMIT" =~ ^[1-9][0-9]*$ ]] || die "TIME_LIMIT=$TIME_LIMIT: use seconds"
for size in $SIZES; do
  [[ "$size" =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || die "SIZES: $size is not IDSxHOURS"
done
[[ -x "$PY" && -x "$LADLE" ]] || die "need $ROOT/.venv with Ladle installed"
n_sizes=$(wc -w <<< "$SIZES")
# Upper bound for redis-server's lifetime (it is killed long before).
BUDGET=$(( 300 + n_sizes * (900 + RUNS * (RETRY_NOISY + 1) * (TIME_LIMIT + WAIT_QUIET + 120)) ))

# ---------------------------------------------------------------- 1. tools + redis ------
ensure_tool "$GNU_TIME" time
command -v redis-server >/dev/null 2>&1 || die "redis-server not found (apt-get install redis-server)"

prepare_results latest-materialize
TMP=$(mktemp -d /tmp/ladle-mat-bench.XXXXXX)
read -r REDIS_PORT <<< "$(free_ports 1)"
[[ "$REDIS_PORT" != 6379 ]] || die "port picker returned 6379"
REDIS_ADDR="127.0.0.1:$REDIS_PORT"
log "results -> $RESULTS_DIR"
log "redis $REDIS_ADDR, temp $TMP, sizes [$SIZES], $RUNS run(s) each"
LOGFILE="$RESULTS_DIR/raw/redis.log"
start_redis "$REDIS_PORT"

"$PY" "$HERE/meta.py" "$RESULTS_DIR/meta.json" --root "$ROOT" --stamp "$STAMP" \
  --packages duckdb msgspec redis hiredis \
  --set command "/usr/bin/time -v timeout $TIME_LIMIT ladle -c REPO materialize START END -v $VIEW" \
  --set knobs "{\"SIZES\": \"$SIZES\", \"RUNS\": $RUNS, \"TIME_LIMIT\": $TIME_LIMIT, \"RETRY_NOISY\": $RETRY_NOISY}"

# Run GNU time over `timeout ... ladle materialize` in a process group of its own. timeout(1)
# moves itself (and ladle) into yet another group, so that group is tracked as well: the
# cleanup trap kills both if the script is interrupted.
run_timed() {  # time_file log_file repo start end
  local time_file=$1 log_file=$2 repo=$3 start=$4 end=$5
  setsid "$GNU_TIME" -o "$time_file" -v \
    timeout "$TIME_LIMIT" "$LADLE" -c "$repo" materialize "$start" "$end" -v "$VIEW" \
    > "$log_file" 2>&1 < /dev/null &
  local pid=$! inner="" rc=0 i
  PGIDS+=("$pid")
  for _ in $(seq 100); do
    inner=$(pgrep -P "$pid" -x timeout || true)
    [[ -n "$inner" ]] && { PGIDS+=("$inner"); break; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  wait "$pid" || rc=$?
  for i in "${!PGIDS[@]}"; do
    [[ "${PGIDS[$i]}" == "$pid" || "${PGIDS[$i]}" == "$inner" ]] && unset 'PGIDS[i]'
  done
  PGIDS=("${PGIDS[@]}")
  return "$rc"
}

# ---------------------------------------------------------------- 2.-3. sizes x runs ----
for size in $SIZES; do
  ids=${size%x*}
  hours=${size#*x}
  repo="$TMP/repo_$size"
  log "$size: writing $ids drivers x $hours hours of Parquet with DuckDB"
  timeout 600 "$PY" "$HERE/materialize_data.py" generate --repo "$repo" --redis "$REDIS_ADDR" \
    --ids "$ids" --hours "$hours" > "$RESULTS_DIR/raw/generate_$size.json" \
    || die "bench/materialize_data.py generate failed for $size"
  read -r START END ROWS MB <<< "$("$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))
print(m["start"], m["end"], m["rows"], round(m["bytes"] / 1e6, 1))' "$repo/bench_meta.json")"
  log "$size: $ROWS rows, $MB MB of Parquet; window $START .. $END"
  timeout 300 "$LADLE" -c "$repo" apply > "$RESULTS_DIR/raw/apply_$size.txt" 2>&1 \
    || { cat "$RESULTS_DIR/raw/apply_$size.txt" >&2; die "ladle apply failed for $size"; }

  for (( run = 1; run <= RUNS; run++ )); do
    attempts=()
    for (( attempt = 0; attempt <= RETRY_NOISY; attempt++ )); do
      tag="${size}_run$run"
      (( attempt > 0 )) && tag+=".retry$attempt"
      wait_quiet
      [[ "$(rcli flushall)" == OK ]] || die "FLUSHALL failed"
      baseline=$(redis_info_field memory used_memory)
      r0=$(proc_ticks "$REDIS_PID"); h0=$(host_busy_ticks)
      log "$tag: /usr/bin/time -v timeout $TIME_LIMIT ladle -c REPO materialize $START $END -v $VIEW"
      rc=0
      run_timed "$RESULTS_DIR/raw/$tag.time.txt" "$RESULTS_DIR/raw/$tag.log" "$repo" \
        "$START" "$END" || rc=$?
      r1=$(proc_ticks "$REDIS_PID"); h1=$(host_busy_ticks)
      if (( rc != 0 )); then
        tail -20 "$RESULTS_DIR/raw/$tag.log" >&2
        (( rc == 124 )) && die "$tag: ladle materialize did not finish within $TIME_LIMIT s"
        die "$tag: ladle materialize failed (exit $rc); see raw/$tag.log"
      fi
      rm -f "$RESULTS_DIR/raw/$tag.json"
      other=$("$PY" "$HERE/materialize_data.py" record --out "$RESULTS_DIR/raw/$tag.json" \
        --repo "$repo" --redis "$REDIS_ADDR" --time-file "$RESULTS_DIR/raw/$tag.time.txt" \
        --log "$RESULTS_DIR/raw/$tag.log" --baseline-used-memory "$baseline" \
        --redis-cpu-s "$(awk -v a="$r0" -v b="$r1" -v t="$CLK_TCK" 'BEGIN { print (b - a) / t }')" \
        --host-busy-s "$(awk -v a="$h0" -v b="$h1" -v t="$CLK_TCK" 'BEGIN { print (b - a) / t }')" \
        --label "$size" --run "$run") \
        || die "$tag: the materialized data failed its checks (see above)"
      attempts+=("$RESULTS_DIR/raw/$tag.json")
      (( other <= NOISY_PCT )) && break
      (( attempt < RETRY_NOISY )) && log "$tag: other processes took ${other}% CPU; measuring again"
    done
    "$PY" "$HERE/materialize_data.py" pick "$RESULTS" "${attempts[@]}"
  done
done
rcli info memory | tr -d '\r' > "$RESULTS_DIR/raw/redis_info_memory_last.txt"

# ---------------------------------------------------------------- 4. report -------------
"$PY" "$HERE/materialize_data.py" report "$RESULTS" | tee "$RESULTS_DIR/table.md"
log "done: $RESULTS_DIR (table.md, results.jsonl, meta.json, raw/)"
