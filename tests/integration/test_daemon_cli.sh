#!/usr/bin/env bash
# test_daemon_cli.sh - jetprofd's command line: --help, --version,
# --check-config (effective values with their sources, loadable again), and
# start-up errors with their exit codes (2 configuration, 1 runtime) and
# messages that name the key, value, file:line or path at fault.
. "$(dirname "$0")/lib.sh"

# run_d ARGS...: runs jetprofd (with a time limit) and sets RC, OUT, ERR.
run_d() {
  timeout $((20 * SLOW)) "$JETPROFD" "$@" >"$TMP/out" 2>"$TMP/err"
  RC=$?
  OUT=$(cat "$TMP/out")
  ERR=$(cat "$TMP/err")
}

# expect NAME RC STREAM NEEDLE...: the last run_d exited RC and STREAM (out|err)
# contains every NEEDLE; no sanitizer report.
expect() {
  local name=$1 want=$2 stream=$3
  shift 3
  local text why=()
  [ "$stream" = out ] && text=$OUT || text=$ERR
  [ "$RC" = "$want" ] || why+=("exit status $RC, wanted $want")
  local n
  for n in "$@"; do contains "$text" "$n" || why+=("std$stream lacks '$n'"); done
  if sanitizer_report_in "$TMP/err"; then why+=("sanitizer report on stderr"); fi
  if [ ${#why[@]} -eq 0 ]; then
    ok "$name"
  else
    not_ok "$name" "${why[@]}" "stdout: $(head -c 400 <<<"$OUT" | tr '\n' ' ')" \
      "stderr: $(head -c 600 <<<"$ERR" | tr '\n' ' ')"
  fi
}

SAFE=(--listen 127.0.0.1:0 --port-file "$TMP/port" --db "$TMP/cli.db")

run_d --help
expect "--help exits 0 and documents --listen, --check-config, --set, --config" 0 out \
  --listen --check-config --set --config
run_d -h
expect "-h is --help" 0 out --listen
run_d --version
expect "--version exits 0 and prints 0.1.0" 0 out 0.1.0
run_d -V
expect "-V is --version" 0 out 0.1.0

# ---- --check-config ----
run_d --config none --check-config --db "$TMP/x.db" --set measure.repeats=5
expect "--check-config exits 0 and prints every section" 0 out server.listen storage.db \
  sensor.period_us executor.executor measure.repeats log.level
check "--check-config: a default value says 'default'" \
  grep -qE '^server\.listen *= *127\.0\.0\.1:9740 +#.*default' "$TMP/out"
check "--check-config: --db's value says it came from the flag" \
  grep -qE "^storage\.db *= *$TMP/x\.db +#.*(flag|--db)" "$TMP/out"
check "--check-config: --set's value says it came from --set" \
  grep -qE '^measure\.repeats *= *5 +#.*--set' "$TMP/out"
check "--check-config does not create the database" [ ! -e "$TMP/x.db" ]

cat >"$TMP/good.conf" <<'EOF'
# a comment
[server]
threads = 2

[measure]
repeats = 7
EOF
run_d --config "$TMP/good.conf" --check-config --db "$TMP/x.db"
expect "--check-config with a file exits 0" 0 out
check "--check-config: a value from the file names file:line" \
  grep -qE "^measure\.repeats *= *7 +#.*$TMP/good\.conf:6" "$TMP/out"
run_d --config "$TMP/good.conf" --check-config --db "$TMP/x.db" --set measure.repeats=4
check "--check-config: a flag wins over the file" grep -qE '^measure\.repeats *= *4 ' "$TMP/out"

run_d --config "$TMP/good.conf" --check-config --db "$TMP/x.db"
cp "$TMP/out" "$TMP/effective.conf"
run_d --config "$TMP/effective.conf" --check-config
expect "the --check-config output loads again as a config file" 0 out
check "... and gives the same values" \
  eval 'diff <(sed -n "s/ *#.*//p" "$TMP/effective.conf" | grep =) \
    <(sed -n "s/ *#.*//p" "$TMP/out" | grep =) >/dev/null'

# ---- configuration errors: exit 2 ----
cat >"$TMP/unknown.conf" <<'EOF'
[server]
threads = 2
bogus_key = 1
EOF
run_d --config "$TMP/unknown.conf" "${SAFE[@]}"
expect "an unknown key in the file: exit 2 naming the key and file:line" 2 err \
  bogus_key "$TMP/unknown.conf:3"

cat >"$TMP/badvalue.conf" <<'EOF'
[measure]
repeats = lots
EOF
run_d --config "$TMP/badvalue.conf" "${SAFE[@]}"
expect "a bad value in the file: exit 2 naming value, key and file:line" 2 err \
  lots repeats "$TMP/badvalue.conf:2"

cat >"$TMP/range.conf" <<'EOF'

[sensor]
period_us = 0
EOF
run_d --config "$TMP/range.conf" "${SAFE[@]}"
expect "an out-of-range value in the file: exit 2 naming value, key and file:line" 2 err \
  period_us "$TMP/range.conf:3"

printf '[server]\nthis is not ini\n' >"$TMP/syntax.conf"
run_d --config "$TMP/syntax.conf" "${SAFE[@]}"
expect "a syntax error in the file: exit 2 naming file:line" 2 err "$TMP/syntax.conf:2"

run_d --config "$TMP/does-not-exist.conf" "${SAFE[@]}"
expect "a --config path that does not exist: exit 2 naming it" 2 err "$TMP/does-not-exist.conf"

run_d --config none "${SAFE[@]}" --set measure.nonsense=1
expect "--set with an unknown key: exit 2 naming it" 2 err measure.nonsense
run_d --config none "${SAFE[@]}" --set measure.repeats=abc
expect "--set with a bad value: exit 2 naming value and key" 2 err abc measure.repeats
run_d --config none "${SAFE[@]}" --log-level loud
expect "--log-level loud: exit 2 naming the value" 2 err loud
run_d --config none "${SAFE[@]}" --frobnicate
expect "an unknown option: exit 2 naming it" 2 err --frobnicate
run_d --config none "${SAFE[@]}" --listen nonsense
expect "--listen without a port: exit 2 naming the value" 2 err nonsense

run_d --config none --listen 0.0.0.0:9740 --port-file "$TMP/port" --db "$TMP/cli.db"
expect "--listen 0.0.0.0:9740 without a token file: exit 2 asking for one" 2 err 0.0.0.0 token
check "... and it did not create the database" [ ! -e "$TMP/cli.db" ]

# ---- runtime failures: exit 1 ----
if [ "$HAVE_GPU" = 1 ]; then
  echo "ok - --executor cuda without a GPU exits 1 with the reason # SKIP this machine has a GPU"
else
  run_d --config none "${SAFE[@]}" --executor cuda
  RC_CUDA=$RC
  expect "--executor cuda without a GPU: exit 1 with the reason" 1 err
  check "... the reason mentions CUDA" eval 'grep -qi cuda "$TMP/err"'
  check "... and nothing is left listening (no port file)" [ ! -s "$TMP/port" ]
  [ "$RC_CUDA" = 124 ] && echo "# jetprofd --executor cuda was still running after $((20 * SLOW)) s"
fi

printf 'not a directory\n' >"$TMP/afile"
run_d --config none --listen 127.0.0.1:0 --port-file "$TMP/port" --db "$TMP/afile/jetprof.db"
expect "a db path whose parent is a file: exit 1 naming the path" 1 err "$TMP/afile/jetprof.db"
if [ "$(id -u)" != 0 ]; then
  mkdir "$TMP/readonly" && chmod 500 "$TMP/readonly"
  run_d --config none --listen 127.0.0.1:0 --port-file "$TMP/port" --db "$TMP/readonly/sub/j.db"
  expect "a db path in a read-only directory: exit 1 naming the path" 1 err "$TMP/readonly/sub/j.db"
  chmod 700 "$TMP/readonly"
fi
printf 'this is not a database, just text that is long enough to be a header....\n%.0s' {1..20} \
  >"$TMP/garbage.db"
run_d --config none --listen 127.0.0.1:0 --port-file "$TMP/port" --db "$TMP/garbage.db"
expect "a db file that is not a database: exit 1 naming the path" 1 err "$TMP/garbage.db"

# port already in use: a second daemon on the first one's port
start_daemon || bail "jetprofd starts"
run_d --config none --listen "127.0.0.1:$PORT" --db "$TMP/other.db"
expect "a listen port already in use: exit 1 naming the address" 1 err "127.0.0.1:$PORT"
stop_daemon

finish
