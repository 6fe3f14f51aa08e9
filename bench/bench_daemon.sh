# shellcheck shell=bash
# bench_daemon.sh - sourced by the shell benchmarks: a scratch jetprofd on the
# simulated sensor and the CPU executor, with the shortened measurement
# protocol the benches use, stopped (and its scratch directory removed) on exit.
#
#   NAME=bench_x; . bench/bench_daemon.sh
#   bench_start_daemon [--set key=value ...]   # sets PID, PORT; $TMP is the scratch dir
#
# Needs JETPROFD; KEEP_TMP=1 keeps the scratch directory.

die() {
  echo "$NAME.sh: $*" >&2
  exit 1
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/jetprof-$NAME.XXXXXX")
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "# kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# bench_start_daemon [EXTRA ARGS...]: the daemon on 127.0.0.1 and a port the
# kernel picks; later --set options override the defaults here.
bench_start_daemon() {
  "$JETPROFD" --config none --listen 127.0.0.1:0 --port-file "$TMP/port" --db "$TMP/jetprof.db" \
    --sensor sim --executor cpu --log-level warn \
    --set measure.min_window_ms=20 --set measure.idle_ms=20 --set measure.warmup_ms=5 \
    --set measure.warmup_launches=5 --set measure.min_samples=10 "$@" \
    >"$TMP/jetprofd.log" 2>&1 &
  PID=$!
  for _ in $(seq 200); do
    [ -s "$TMP/port" ] && break
    kill -0 "$PID" 2>/dev/null || { tail -n 20 "$TMP/jetprofd.log" >&2; die "jetprofd exited"; }
    sleep 0.1
  done
  [ -s "$TMP/port" ] || die "jetprofd wrote no port file"
  PORT=$(head -n 1 "$TMP/port") # read by the sourcing script
  export PORT
}
