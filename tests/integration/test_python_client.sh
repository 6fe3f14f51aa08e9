#!/usr/bin/env bash
# test_python_client.sh - the Python client (client/python/jetprof_client.py) and
# the Pareto example (client/examples/pareto_energy.py) against a real jetprofd
# (sim sensor, CPU executor, fast measure and training settings).
#
# The checks themselves are Python, in tests/integration/python_client_checks.py,
# which prints "ok - NAME" / "not ok - NAME" lines; run_checks turns them into
# lib.sh's results. Two daemons on the same database:
#   1. auth off: every method (health, device, kernels, power, power_stream,
#      metrics, set_sampling, measure, measurements and iter_measurements paging,
#      measurements_csv, export_csv/jsonl/sqlite, measurement, submit_jobs, jobs,
#      iter_jobs, job, cancel_job, batch, cancel_batch, wait_batch, train, models,
#      export_models, predict, estimate, estimate_many), their error paths as
#      JetprofError (400, 404, 409, 422 with the daemon's detail), a small dataset
#      of linear_bn_relu and linear measured with random sweeps and trained with
#      quality "any", the example end to end on a small CSV of MLPs; and the
#      client's connection handling against in-process test servers (a dropped
#      keep-alive connection, a non-JSON error answer).
#   2. auth on (--token-file): every mutating method without a token and with a
#      wrong one is JetprofError 401; with the right one (a file, or
#      $JETPROF_TOKEN_FILE) it succeeds.
. "$(dirname "$0")/lib.sh"

CHECKS=tests/integration/python_client_checks.py
[ -f "$CHECKS" ] || bail "$CHECKS exists"

# Measurements as short as the protocol allows, never re-measured or marked
# suspect for noise (this tests the client, not the protocol), and small
# models, so the whole dataset takes seconds.
set_measure measure.min_window_ms=10
set_measure measure.idle_ms=10
set_measure measure.warmup_ms=0
set_measure measure.warmup_launches=1
set_measure measure.min_samples=5
set_measure measure.repeats=1
set_measure measure.max_cv=1
set_measure measure.min_sample_ratio=0
TRAIN=(--set predict.train_rounds=20 --set predict.train_ensemble=2)

# run_checks PHASE ARGS...: runs the Python checks and records each result line;
# '# ' lines after a 'not ok' become its diagnostics.
run_checks() {
  local phase=$1
  shift
  local out="$TMP/py-$phase.out" err="$TMP/py-$phase.err" rc=0
  env SLOW="$SLOW" PYTHONDONTWRITEBYTECODE=1 "$PY" "$CHECKS" "$phase" "$@" >"$out" 2>"$err" || rc=$?
  STATUS="" # no curl exchange to show in not_ok's diagnostics
  local line name="" done_seen=0
  local -a diag=()
  flush() {
    [ -n "$name" ] && not_ok "$name" "${diag[@]}"
    name=""
    diag=()
  }
  while IFS= read -r line; do
    case "$line" in
    "ok - "*)
      flush
      ok "${line#ok - }"
      ;;
    "not ok - "*)
      flush
      name=${line#not ok - }
      ;;
    "# done: "*)
      flush
      done_seen=1
      echo "$line"
      ;;
    "#"*)
      if [ -n "$name" ]; then diag+=("${line#\# }"); else echo "$line"; fi
      ;;
    *) [ -n "$name" ] && diag+=("$line") ;;
    esac
  done <"$out"
  flush
  if [ "$rc" -ne 0 ] || [ "$done_seen" = 0 ]; then
    not_ok "python checks ($phase) ran to the end" "exit status $rc" "$(tail -n 15 "$err")"
  fi
}

start_daemon "${TRAIN[@]}" || bail "jetprofd starts (auth off)"
ok "jetprofd starts (auth off, fast measure and training settings)"
run_checks main "$BASE" "$TMP"
stop_daemon

printf 's3cret-py-token\n' >"$TMP/token"
chmod 600 "$TMP/token"
start_daemon --token-file "$TMP/token" "${TRAIN[@]}" || bail "jetprofd starts with --token-file"
ok "jetprofd starts with --token-file on the same database"
run_checks auth "$BASE" "$TMP" "$TMP/token"
stop_daemon "jetprofd with a token stops on SIGTERM with exit status 0"

finish
