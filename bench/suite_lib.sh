# Shell helpers shared by bench/suite.sh, bench/profile.sh and bench/soak.sh: the suite
# dataset in a throwaway Redis, and the servers started the way the suite measures them.
# Source it after bench/lib.sh. Uses RESULTS_DIR, TMP, REDIS_PORT, SERVER_PORT, WORKERS.

# suite_dataset ENTITIES: a throwaway redis-server on $REDIS_PORT, the repo of
# bench/suite_spec.py in $TMP/repo (bench/suite_data.py), `ladle apply`, then
# `ladle materialize` of the last two days; checks that Redis holds one key per entity.
# Sets REPO, exports LADLE_REPO; MATERIALIZE_S is the materialize wall time.
suite_dataset() {
  local entities=$1 t0 t1 keys
  REPO="$TMP/repo"
  LOGFILE="$RESULTS_DIR/raw/redis.log"
  start_redis "$REDIS_PORT"
  log "redis 127.0.0.1:$REDIS_PORT; writing $entities entities x $(
    "$PY" -c 'from bench import suite_spec as s; print(len(s.VIEWS), "views x", len(s.KINDS))'
  ) features of Parquet"
  timeout 600 "$PY" -m bench.suite_data --repo "$REPO" --redis "127.0.0.1:$REDIS_PORT" \
    --entities "$entities" 2> "$RESULTS_DIR/raw/dataset.txt" \
    || { cat "$RESULTS_DIR/raw/dataset.txt" >&2; die "bench/suite_data.py failed"; }
  cat "$RESULTS_DIR/raw/dataset.txt" >&2
  cp "$REPO/features.py" "$REPO/bench_meta.json" "$RESULTS_DIR/raw/"
  timeout 300 "$LADLE" -c "$REPO" apply > "$RESULTS_DIR/raw/apply.txt" 2>&1 \
    || { cat "$RESULTS_DIR/raw/apply.txt" >&2; die "ladle apply failed"; }
  log "ladle materialize (last two days)"
  t0=$(date +%s.%N)
  timeout 1200 "$LADLE" -c "$REPO" materialize "$(date -u -d '-2 days' +%Y-%m-%dT%H:%M:%S)" now \
    > "$RESULTS_DIR/raw/materialize.txt" 2>&1 \
    || { tail -20 "$RESULTS_DIR/raw/materialize.txt" >&2; die "ladle materialize failed"; }
  t1=$(date +%s.%N)
  MATERIALIZE_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  grep 'entities read' "$RESULTS_DIR/raw/materialize.txt" >&2 || true
  local services
  services=$("$PY" -m bench.suite_spec precomputed-services)
  if [[ -n "$services" ]]; then
    log "ladle precompute $services"
    # shellcheck disable=SC2086
    timeout 1200 "$LADLE" -c "$REPO" precompute $services \
      > "$RESULTS_DIR/raw/precompute.txt" 2>&1 \
      || { tail -20 "$RESULTS_DIR/raw/precompute.txt" >&2; die "ladle precompute failed"; }
  fi
  keys=$(rcli dbsize)
  [[ "$keys" == "$entities" ]] || die "redis holds $keys keys after materialize, not $entities"
  log "materialized in ${MATERIALIZE_S}s; redis holds $keys keys," \
      "used_memory $(redis_info_field memory used_memory_human)"
  export LADLE_REPO="$REPO"
}

# start_suite_server KIND [APP]: APP (default bench.floor_app:app) under hypercorn or
# uvicorn, configured as `ladle serve --workers $WORKERS --no-access-log` configures
# hypercorn (uvloop workers, no access log, keep-alive connections never closed after a
# number of requests), or uvicorn with uvloop and httptools. KIND ladle runs `ladle serve`
# itself on $REPO (app:main, no /floor).
start_suite_server() {
  local kind=$1 app=${2:-bench.floor_app:app} extra=()
  # The app writes its JSON access log unless told not to (it is on by default, also
  # under plain hypercorn and uvicorn); a caller that sets LADLE_ACCESS_LOG keeps it.
  export LADLE_ACCESS_LOG=${LADLE_ACCESS_LOG:-false}
  case "$kind" in
    hypercorn)
      printf 'keep_alive_max_requests = 2147483648\n' > "$TMP/hypercorn.toml"
      extra=(--config "$TMP/hypercorn.toml") ;;
    ladle) app=$REPO ;;
  esac
  SERVER_KIND=$kind start_server "$app" "${extra[@]}"
}

# knobs_json NAME...: the named shell variables as one JSON object (for meta.json).
knobs_json() {
  local name args=()
  for name in "$@"; do args+=("$name=${!name-}"); done
  "$PY" -c 'import json, sys
print(json.dumps(dict(a.split("=", 1) for a in sys.argv[1:])))' "${args[@]}"
}
