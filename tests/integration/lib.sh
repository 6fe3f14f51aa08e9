# tests/integration/lib.sh - shared helpers for the integration scripts: a real
# jetprofd on 127.0.0.1 (ephemeral port), a scratch directory, HTTP and JSON
# helpers, and TAP-like result lines ("ok - name" / "not ok - name") that
# tests/run-tests counts.
#
# Usage in a script (run from the repository root):
#   . "$(dirname "$0")/lib.sh"
#   start_daemon || bail "jetprofd did not start"
#   http GET /v1/health
#   check "health answers 200" [ "$STATUS" = 200 ]
#   stop_daemon
#   finish
#
# Binaries under test: $JETPROFD and $JETPROF (default bin/jetprofd, bin/jetprof).
# Under SAN=1 (sanitizer builds, ~3x slower) every timeout is scaled by $SLOW.
# Requires bash, curl and python3 (json module only). KEEP_TMP=1 keeps the scratch
# directory (database, daemon log) for a look after a failure.

set -u

JETPROFD=${JETPROFD:-bin/jetprofd}
JETPROF=${JETPROF:-bin/jetprof}
SAN=${SAN:-0}
SLOW=1
[ "$SAN" = 1 ] && SLOW=3
case "$JETPROFD" in /*) ;; *) JETPROFD="$PWD/$JETPROFD" ;; esac
case "$JETPROF" in /*) ;; *) JETPROF="$PWD/$JETPROF" ;; esac
# the system interpreter first: version-manager shims (pyenv) add ~100 ms a call
PY=$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3 || true)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# `--executor auto` picks cuda only where a GPU is present (and the plugin loads);
# everywhere else (CI, this build machine) the expectations are the CPU executor's.
HAVE_GPU=0
if [ -e /dev/nvidia0 ] || [ -e /dev/nvhost-ctrl-gpu ]; then HAVE_GPU=1; fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/jetprof-it.XXXXXX") || { echo "not ok - mktemp"; exit 1; }
DB="$TMP/jetprof.db"
LOG="$TMP/jetprofd.log"
DAEMON_PID=""
PORT=""
BASE=""
STATUS=""
BODY=""
TIME_TOTAL=""
PASSED=0
FAILED=0

# The measurement protocol shortened so a measurement takes well under a second.
# Scripts may change entries (set_measure KEY=VALUE) before start_daemon.
MEASURE_SETTINGS=(
  measure.min_window_ms=20
  measure.idle_ms=20
  measure.warmup_ms=5
  measure.warmup_launches=5
  measure.min_samples=10
  measure.repeats=2
)

cleanup() {
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
  # background jobs a script started (e.g. a long measure request)
  local j
  for j in $(jobs -p); do kill "$j" 2>/dev/null; done
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "# kept $TMP (KEEP_TMP=1)"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- results ----

ok() {
  PASSED=$((PASSED + 1))
  echo "ok - $1"
}

daemon_log_tail() {
  if [ -s "$LOG" ]; then
    echo "#   last jetprofd log lines:"
    tail -n "${1:-12}" "$LOG" | sed 's/^/#     /'
  fi
}

# not_ok NAME [DETAIL...]: a failure with the last HTTP exchange and the daemon log.
not_ok() {
  local name=$1
  shift
  FAILED=$((FAILED + 1))
  echo "not ok - $name"
  local d
  # every line commented, so no detail line can read as a result line
  for d in "$@"; do printf '%s\n' "$d" | sed 's/^/#   /'; done
  if [ -n "$STATUS" ]; then
    echo "#   last HTTP status: $STATUS"
    echo "#   last body: $(printf '%s' "$BODY" | head -c 600 | tr '\n' ' ')"
  fi
  daemon_log_tail
}

# check NAME COMMAND...: ok when COMMAND succeeds.
check() {
  local name=$1
  shift
  if "$@"; then
    ok "$name"
  else
    not_ok "$name" "condition failed: $*"
  fi
}

# bail MESSAGE: a failure that makes the rest of the script meaningless.
bail() {
  not_ok "$1"
  finish
}

finish() {
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    stop_daemon
  fi
  echo "# $(basename "$0"): $PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit $?
}

# ---- daemon ----

set_measure() {
  local kv=$1 key=${1%%=*} i
  for i in "${!MEASURE_SETTINGS[@]}"; do
    if [ "${MEASURE_SETTINGS[$i]%%=*}" = "$key" ]; then
      MEASURE_SETTINGS[$i]=$kv
      return
    fi
  done
  MEASURE_SETTINGS+=("$kv")
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s; 0 once it succeeds.
wait_until() {
  local limit=$1
  shift
  local deadline=$(($(date +%s%N) + limit * 1000000000))
  while [ "$(date +%s%N)" -lt "$deadline" ]; do
    "$@" && return 0
    sleep 0.1
  done
  "$@"
}

daemon_alive() { [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; }

port_written() {
  [ -s "$TMP/port" ] && grep -qE '^[0-9]+$' "$TMP/port" && return 0
  daemon_alive || return 0 # stop waiting: it died
  return 1
}

health_ok() { http GET /v1/health && [ "$STATUS" = 200 ]; }

# start_daemon [EXTRA FLAGS...]: jetprofd on 127.0.0.1:0 with $DB, the fast measure
# settings and EXTRA FLAGS, in the background; waits for the port file and for
# GET /v1/health. Sets DAEMON_PID, PORT, BASE. 0 or 1 (reason printed as a comment).
start_daemon() {
  local args=(--config none --listen 127.0.0.1:0 --port-file "$TMP/port" --db "$DB"
    --log-level debug)
  local kv
  for kv in "${MEASURE_SETTINGS[@]}"; do args+=(--set "$kv"); done
  args+=("$@")
  rm -f "$TMP/port"
  echo "=== $(date -u +%FT%TZ) start: $JETPROFD ${args[*]}" >>"$LOG"
  "$JETPROFD" "${args[@]}" >>"$LOG" 2>&1 &
  DAEMON_PID=$!
  wait_until $((20 * SLOW)) port_written
  if ! daemon_alive; then
    wait "$DAEMON_PID"
    echo "# jetprofd exited with status $? before writing its port file"
    DAEMON_PID=""
    daemon_log_tail 20
    return 1
  fi
  if ! port_written || ! [ -s "$TMP/port" ]; then
    echo "# jetprofd wrote no port file to $TMP/port within $((20 * SLOW)) s"
    daemon_log_tail 20
    return 1
  fi
  PORT=$(head -n 1 "$TMP/port")
  BASE="http://127.0.0.1:$PORT"
  if ! wait_until $((20 * SLOW)) health_ok; then
    echo "# GET /v1/health did not answer 200 within $((20 * SLOW)) s (last status $STATUS)"
    daemon_log_tail 20
    return 1
  fi
  return 0
}

# stop_daemon [NAME]: SIGTERM, wait (up to 120 s, then SIGKILL); one result line
# saying whether it exited with status 0 and without a sanitizer report. The
# daemon lets the running measurement finish (and a suspect one re-measure with
# doubled windows). Its windows are launch counts calibrated at the warm-up, so
# on a loaded 2-core machine, where the launches then ran 8x slower, a 20-repeat
# measurement took over a minute: the limit is a bound, not an expectation.
stop_daemon() {
  local name=${1:-jetprofd stops on SIGTERM with exit status 0}
  if [ -z "$DAEMON_PID" ]; then
    not_ok "$name" "no daemon running"
    return 1
  fi
  kill -TERM "$DAEMON_PID" 2>/dev/null
  local pid=$DAEMON_PID
  local gone=0
  if wait_until $((120 * SLOW)) eval '! kill -0 '"$pid"' 2>/dev/null'; then gone=1; fi
  if [ "$gone" = 0 ]; then
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid"
  local rc=$?
  DAEMON_PID=""
  STATUS=""
  if [ "$gone" = 0 ]; then
    not_ok "$name" "still running $((120 * SLOW)) s after SIGTERM; killed"
    return 1
  fi
  if [ "$rc" -ne 0 ]; then
    not_ok "$name" "exit status $rc"
    return 1
  fi
  if sanitizer_report_in "$LOG"; then
    not_ok "$name" "sanitizer report in the daemon log:" \
      "$(grep -m 3 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$LOG")"
    return 1
  fi
  ok "$name"
}

# kill_daemon: SIGKILL, no checks (crash simulation).
kill_daemon() {
  [ -n "$DAEMON_PID" ] || return 0
  kill -KILL "$DAEMON_PID" 2>/dev/null
  wait "$DAEMON_PID" 2>/dev/null
  DAEMON_PID=""
  echo "=== $(date -u +%FT%TZ) killed with SIGKILL" >>"$LOG"
}

sanitizer_report_in() {
  grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$1" 2>/dev/null
}

# ---- HTTP ----

# http METHOD PATH [BODY [CURL ARGS...]]: one request to the daemon. Sets STATUS
# ("000" when no answer), BODY, TIME_TOTAL (seconds); headers in $TMP/headers.
# A BODY is sent as given, with Content-Type: application/json. The time limit
# is a bound for a loaded machine: POST /v1/measure answers when its
# measurement is done, and under load its launches run several times slower
# than they were calibrated.
http() {
  local method=$1 path=$2
  shift 2
  local args=(-s -S -X "$method" -o "$TMP/body" -D "$TMP/headers"
    -w '%{http_code} %{time_total}' --max-time $((60 * SLOW)))
  if [ $# -gt 0 ]; then
    # through a file: a body as one argument is limited to 128 kB by execve
    printf '%s' "$1" >"$TMP/request"
    args+=(--data-binary "@$TMP/request" -H 'Content-Type: application/json')
    shift
  fi
  rm -f "$TMP/headers"
  local out
  out=$(curl "${args[@]}" "$@" "$BASE$path" 2>"$TMP/curl.err")
  STATUS=${out%% *}
  TIME_TOTAL=${out#* }
  [ -n "$STATUS" ] || STATUS=000
  BODY=$(cat "$TMP/body" 2>/dev/null)
  rm -f "$TMP/body"
  [ "$STATUS" != 000 ]
}

# header NAME: the value of a header of the last answer (last occurrence).
header() {
  grep -i "^$1:" "$TMP/headers" 2>/dev/null | tail -n 1 | sed -e 's/^[^:]*:[[:space:]]*//' -e 's/\r$//'
}

content_type_is() {
  local ct
  ct=$(header Content-Type)
  [ "${ct%%;*}" = "$1" ]
}

is_problem() {
  content_type_is application/problem+json
}

# ---- JSON (python3's json module) ----

# json_get EXPR [JSON]: evaluates a Python expression over j = the parsed JSON
# (default $BODY) and prints it: strings raw, true/false/null, others as JSON.
json_get() {
  local expr=$1
  local input=${2-$BODY}
  printf '%s' "$input" | "$PY" -c '
import json, sys
try:
    j = json.load(sys.stdin)
except Exception as e:
    print("json_get: not JSON: %s" % e, file=sys.stderr); sys.exit(2)
try:
    v = eval("(" + sys.argv[1] + "\n)", {"j": j, "json": json})
except Exception as e:
    print("json_get: %s: %r" % (sys.argv[1], e), file=sys.stderr); sys.exit(3)
if isinstance(v, bool): print("true" if v else "false")
elif isinstance(v, str): print(v)
elif v is None: print("null")
else: print(json.dumps(v))
' "$expr"
}

# json_true EXPR [JSON]: succeeds when the Python expression over j is true.
json_true() {
  local expr=$1
  local input=${2-$BODY}
  printf '%s' "$input" | "$PY" -c '
import json, sys
try:
    j = json.load(sys.stdin)
except Exception as e:
    print("json_true: not JSON: %s" % e, file=sys.stderr); sys.exit(2)
try:
    sys.exit(0 if eval("(" + sys.argv[1] + "\n)", {"j": j, "json": json}) else 1)
except Exception as e:
    print("json_true: %s: %r" % (sys.argv[1], e), file=sys.stderr); sys.exit(3)
' "$expr"
}

# json_equal A B: the two JSON texts parse to equal values.
json_equal() {
  "$PY" -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1]) == json.loads(sys.argv[2]) else 1)' \
    "$1" "$2"
}

# contains HAYSTACK NEEDLE: fixed-string match.
contains() { [[ "$1" == *"$2"* ]]; }

# problem_check NAME STATUS [NEEDLE...]: the last answer is STATUS, a problem+json
# document whose status member matches and whose detail contains every NEEDLE.
problem_check() {
  local name=$1 want=$2
  shift 2
  local why=()
  [ "$STATUS" = "$want" ] || why+=("status $STATUS, wanted $want")
  is_problem || why+=("Content-Type '$(header Content-Type)', wanted application/problem+json")
  local detail
  detail=$(json_get 'j["detail"]' 2>/dev/null)
  json_true 'j["status"] == '"$want"' and isinstance(j["title"], str) and j["title"] != ""' 2>/dev/null ||
    why+=("problem members status/title missing or wrong")
  local n
  for n in "$@"; do
    contains "$detail" "$n" || why+=("detail lacks '$n'")
  done
  if [ ${#why[@]} -eq 0 ]; then
    ok "$name"
  else
    not_ok "$name" "${why[@]}" "detail: $detail"
  fi
}

# ---- preconditions ----

if [ ! -x "$JETPROFD" ] || [ ! -x "$JETPROF" ]; then
  echo "not ok - binaries under test exist ($JETPROFD, $JETPROF); run make first"
  exit 1
fi
if [ -z "$PY" ] || ! command -v curl >/dev/null 2>&1; then
  echo "not ok - python3 and curl are installed (the integration tests need both)"
  exit 1
fi
