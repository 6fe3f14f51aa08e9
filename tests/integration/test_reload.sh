#!/usr/bin/env bash
# tests/integration/test_reload.sh - SIGHUP reloads jetprofd's configuration:
# - log.level and measure.repeats edited in the file apply: the summary line says
#   what changed, debug lines appear, the next measurement uses the new repeats;
# - the token file rotated: the old token is refused, the new one accepted;
# - server.auth_reads turned on live: GETs need the token (health stays open);
# - an invalid file (a bad value; a syntax error; a token file that went empty;
#   a window the running sample ring cannot hold) is refused with the reason in
#   the log, and the daemon keeps serving with the previous configuration;
# - a key that needs a restart (server.threads) logs "server.threads changed:
#   restart jetprofd to apply" and keeps its running value;
# - systemd's notify protocol: RELOADING=1 (with MONOTONIC_USEC) then READY=1
#   around every reload, on a socket that stands in for NOTIFY_SOCKET;
# - on the orin-nano hwmon fixture tree: a reload never touches the sensor (a
#   sampling change needs a restart), and SIGTERM after reloads puts back the
#   samples and update_interval the daemon found.
# The daemon runs with --config FILE and without the fast-measure flags of
# lib.sh's start_daemon, since flags win over the file at a reload as at start.
. "$(dirname "$0")/lib.sh"

CONF="$TMP/jetprofd.conf"
TOKEN_A=reload-token-aaaaaaaa
TOKEN_B=reload-token-bbbbbbbb
printf '%s\n' "$TOKEN_A" >"$TMP/token"
chmod 600 "$TMP/token"
MEASURE='{"kernel":"linear","batch":4,"in":8,"out":8}'

# write_conf LEVEL REPEATS [EXTRA LINES]: the config file the daemon reads.
write_conf() {
  {
    printf '[server]\ntoken_file = %s\n%s\n' "$TMP/token" "${3:-}"
    printf '[measure]\nmin_window_ms = 20\nidle_ms = 20\nwarmup_ms = 5\nwarmup_launches = 5\n'
    printf 'min_samples = 10\nrepeats = %s\n' "$2"
    printf '[log]\nlevel = %s\n' "$1"
  } >"$CONF.tmp"
  mv "$CONF.tmp" "$CONF" # whole, as an editor that renames would leave it
}

# A stand-in for systemd's notify socket: every datagram, one line each.
NOTIFY="$TMP/notify.sock"
"$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while True:
        msg = s.recv(4096).decode("utf-8", "replace")
        out.write(msg.replace("\n", "|") + "\n")
        out.flush()
' "$NOTIFY" "$TMP/notify.log" &
NOTIFY_PID=$!
wait_until $((10 * SLOW)) test -S "$NOTIFY" || bail "the notify socket stand-in listens"

# start: like start_daemon, but the file decides the log level and measure keys.
start() {
  rm -f "$TMP/port"
  echo "=== $(date -u +%FT%TZ) start (test_reload)" >>"$LOG"
  NOTIFY_SOCKET="$NOTIFY" "$JETPROFD" --config "$CONF" --listen 127.0.0.1:0 \
    --port-file "$TMP/port" --db "$DB" "$@" >>"$LOG" 2>&1 &
  DAEMON_PID=$!
  wait_until $((20 * SLOW)) port_written
  daemon_alive && [ -s "$TMP/port" ] || return 1
  PORT=$(head -n 1 "$TMP/port")
  BASE="http://127.0.0.1:$PORT"
  wait_until $((20 * SLOW)) health_ok
}

# hup NEEDLE: SIGHUP, then wait for a new log line holding NEEDLE (fixed string).
hup() {
  local mark needle=$1
  mark=$(wc -l <"$LOG")
  kill -HUP "$DAEMON_PID"
  wait_until $((20 * SLOW)) eval 'tail -n +$((mark + 1)) "$LOG" | grep -qF -- "$needle"'
}

# log_since MARK: the log lines after line MARK.
log_since() { tail -n +$(($1 + 1)) "$LOG"; }

# measure_with TOKEN: a small measurement (the config's repeats) with that token.
measure_with() {
  http POST /v1/measure "$MEASURE" -H "Authorization: Bearer $1"
}

write_conf info 2
start || bail "jetprofd starts with --config $CONF"
ok "jetprofd starts with --config $CONF (log level info, repeats 2)"
check "READY=1 was sent at start" grep -q '^READY=1|STATUS=serving on http://127.0.0.1:' "$TMP/notify.log"

measure_with "$TOKEN_A"
check "before the reload a measurement has 2 repeats" json_true 'j["repeats"] == 2'
http GET /v1/health
check "at level info a health check is not logged" \
  eval '! grep -q "debug http: GET /v1/health 200" "$LOG"'

# ---- log level and repeats ----
write_conf debug 1
MARK=$(wc -l <"$LOG")
hup "reload done:" || bail "SIGHUP: a reload summary line in the log"
ok "SIGHUP: a reload summary line in the log"
check "the summary names both changes with old and new values" \
  eval 'log_since $MARK | grep -qF "reload done: applied measure.repeats: 2 -> 1; log.level: info -> debug (measurement and training from the next job); bearer token unchanged"'
check "RELOADING=1 with MONOTONIC_USEC, then READY=1 with a status" \
  eval 'grep -A1 "^RELOADING=1|MONOTONIC_USEC=[0-9]*|" "$TMP/notify.log" | tail -n 1 |
    grep -q "^READY=1|STATUS=serving on http://127.0.0.1:$PORT; configuration reloaded$"'
measure_with "$TOKEN_A"
check "the next measurement uses the new repeats (1)" json_true 'j["repeats"] == 1'
http GET /v1/health
check "debug lines appear after the reload (the health check is logged)" \
  eval 'log_since $MARK | grep -q "debug http: GET /v1/health 200"'

# ---- nothing changed ----
hup "reload done: no change applied; bearer token unchanged" &&
  ok "a reload with nothing changed says so" || not_ok "a reload with nothing changed says so"

# ---- token rotation ----
printf '%s\n' "$TOKEN_B" >"$TMP/token.new"
chmod 600 "$TMP/token.new"
mv "$TMP/token.new" "$TMP/token"
hup "bearer token replaced" && ok "token rotated: the reload says the token was replaced" ||
  not_ok "token rotated: the reload says the token was replaced"
http POST /v1/measure '{"kernel":"linear","batch":0,"in":8,"out":8}' -H "Authorization: Bearer $TOKEN_A"
problem_check "after rotation the old token is refused (401)" 401 "not valid"
http POST /v1/measure '{"kernel":"linear","batch":0,"in":8,"out":8}' -H "Authorization: Bearer $TOKEN_B"
problem_check "after rotation the new token is accepted (past auth: 422)" 422 "'batch'"
check "the token is never written to the log" \
  eval '! grep -qF -e "$TOKEN_A" -e "$TOKEN_B" "$LOG"'

# ---- auth_reads on, live ----
write_conf debug 1 'auth_reads = true'
hup "server.auth_reads: false -> true" && ok "auth_reads turned on by a reload" ||
  not_ok "auth_reads turned on by a reload"
http GET /v1/jobs
problem_check "after the reload GET /v1/jobs without the token: 401" 401 "server.auth_reads is on"
check "with the Bearer challenge" [ "$(header WWW-Authenticate)" = 'Bearer realm="jetprof"' ]
curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN_B" "$BASE/v1/jobs" >"$TMP/code"
check "with the token: 200" [ "$(cat "$TMP/code")" = 200 ]
http GET /v1/health
check "GET /v1/health stays open" [ "$STATUS" = 200 ]
write_conf debug 1
hup "server.auth_reads: true -> false" || true
http GET /v1/jobs
check "auth_reads turned off again: GET /v1/jobs without the token: 200" [ "$STATUS" = 200 ]

# ---- invalid configurations are refused, the old one keeps running ----
write_conf debug 0
hup "reload refused" && ok "a bad value: the reload is refused" ||
  not_ok "a bad value: the reload is refused"
check "the log says why, naming the key, the value and the file line" \
  eval 'grep "reload refused" "$LOG" | tail -n 1 | grep -qF "measure.repeats" &&
    grep "reload refused" "$LOG" | tail -n 1 | grep -qF "$CONF:"'
check "systemd hears READY=1 with the refusal in the status" \
  eval 'tail -n 1 "$TMP/notify.log" | grep -q "^READY=1|STATUS=serving on .*; last reload refused: "'
http GET /v1/health
check "the daemon keeps serving" [ "$STATUS" = 200 ]
measure_with "$TOKEN_B"
check "and keeps the previous configuration (repeats still 1)" json_true 'j["repeats"] == 1'

printf '[measure\nrepeats = 3\n' >"$CONF"
hup "reload refused" && ok "a syntax error: the reload is refused" ||
  not_ok "a syntax error: the reload is refused"
check "the log names the line" eval 'grep "reload refused" "$LOG" | tail -n 1 | grep -qF "syntax error in $CONF:1"'

write_conf debug 3
: >"$TMP/token"
hup "reload refused" && ok "an emptied token file: the reload is refused" ||
  not_ok "an emptied token file: the reload is refused"
check "the log says the token file is empty" \
  eval 'grep "reload refused" "$LOG" | tail -n 1 | grep -qF "token file $TMP/token is empty"'
http POST /v1/measure '{"kernel":"linear","batch":0,"in":8,"out":8}' -H "Authorization: Bearer $TOKEN_B"
problem_check "the token in force stays in force (past auth: 422)" 422 "'batch'"
measure_with "$TOKEN_B"
check "nothing of the refused file applied (repeats still 1)" json_true 'j["repeats"] == 1'
printf '%s\n' "$TOKEN_B" >"$TMP/token"

# valid alone, invalid with the running ring: sensor.ring_seconds needs a restart
printf '[server]\ntoken_file = %s\n[sensor]\nring_seconds = 300\n[measure]\nmin_window_ms = 60000\n[log]\nlevel = debug\n' \
  "$TMP/token" >"$CONF"
hup "reload refused" && ok "a window the running sample ring cannot hold: refused" ||
  not_ok "a window the running sample ring cannot hold: refused"
check "the reason says the restart-only key was kept at its running value" \
  eval 'grep "reload refused" "$LOG" | tail -n 1 | grep -qF "sensor.ring_seconds = 60 is too short" &&
    grep "reload refused" "$LOG" | tail -n 1 | grep -qF "with the keys that need a restart at their running values"'

# ---- a key that needs a restart ----
write_conf debug 1 'threads = 2'
MARK=$(wc -l <"$LOG")
hup "reload done:" || not_ok "a restart-only change: the reload completes"
check "a restart-only change logs 'server.threads changed: restart jetprofd to apply'" \
  eval 'log_since $MARK | grep -q "main: server.threads changed: restart jetprofd to apply (running with .4., configured .2.)"'
check "the summary lists it as needing a restart" \
  eval 'log_since $MARK | grep -qF "needs a restart: server.threads"'
http GET /v1/health
check "the daemon still serves on the same port" [ "$STATUS" = 200 ]

# ---- log level back to info: the summary is still logged (before the switch) ----
write_conf info 1 'threads = 2'
MARK=$(wc -l <"$LOG")
hup "reload done: applied log.level: debug -> info" &&
  ok "the summary of a reload to a quieter level is still logged" ||
  not_ok "the summary of a reload to a quieter level is still logged"
http GET /v1/health
check "at info again the health check is not logged" \
  eval '! log_since $MARK | grep -q "debug http: GET /v1/health"'

stop_daemon "jetprofd stops on SIGTERM after the reloads with exit status 0"
check "STOPPING=1 was sent" grep -q '^STOPPING=1' "$TMP/notify.log"

# ---- the hwmon fixture: reloads leave the sensor alone, SIGTERM restores it ----
cp -r tests/fixtures/sysfs/orin-nano "$TMP/sys-hwmon"
HWMON=$(ls -d "$TMP"/sys-hwmon/bus/i2c/drivers/ina3221/*/hwmon/hwmon* | head -n 1)
SAMPLES_FOUND=$(cat "$HWMON/samples")
INTERVAL_FOUND=$(cat "$HWMON/update_interval")
# averaging 4: samples must change at start, so the restore is visible
printf '[server]\ntoken_file = %s\n[sensor]\naveraging = 4\n[log]\nlevel = info\n' "$TMP/token" >"$CONF"
if start --sensor ina3221-hwmon --sysfs-root "$TMP/sys-hwmon"; then
  ok "jetprofd starts on the orin-nano hwmon fixture"
  SAMPLES_RUN=$(cat "$HWMON/samples")
  INTERVAL_RUN=$(cat "$HWMON/update_interval")
  check "the daemon applied its sampling (samples $SAMPLES_FOUND -> 4)" [ "$SAMPLES_RUN" = 4 ]
  printf '[server]\ntoken_file = %s\n[sensor]\naveraging = 64\n[log]\nlevel = info\n' "$TMP/token" >"$CONF"
  MARK=$(wc -l <"$LOG")
  hup "reload done:" || not_ok "hwmon: the reload completes"
  check "hwmon: sensor.averaging changed: restart jetprofd to apply" \
    eval 'log_since $MARK | grep -q "main: sensor.averaging changed: restart jetprofd to apply"'
  check "hwmon: the reload left the chip's sampling alone" \
    eval '[ "$(cat "$HWMON/samples")" = "$SAMPLES_RUN" ] &&
      [ "$(cat "$HWMON/update_interval")" = "$INTERVAL_RUN" ]'
  stop_daemon "hwmon: jetprofd stops on SIGTERM after a reload with exit status 0"
  check "hwmon: SIGTERM restored samples and update_interval as found ($SAMPLES_FOUND, $INTERVAL_FOUND ms)" \
    eval '[ "$(cat "$HWMON/samples")" = "$SAMPLES_FOUND" ] &&
      [ "$(cat "$HWMON/update_interval")" = "$INTERVAL_FOUND" ]'
else
  not_ok "jetprofd starts on the orin-nano hwmon fixture"
fi

kill "$NOTIFY_PID" 2>/dev/null
finish
