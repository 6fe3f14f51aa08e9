#!/usr/bin/env bash
# tests/integration/test_auth.sh - bearer-token auth against a live jetprofd:
# - a token file (0600): reads open, mutating endpoints need the token; no token,
#   a wrong token and the right one (401 problem+json with WWW-Authenticate:
#   Bearer realm="jetprof", then past auth);
# - server.auth_reads = true: every GET needs the token (/metrics included)
#   except GET/HEAD /v1/health, which liveness probes reach without one;
# - a token file group or others can read: a warning in the log;
# - start-up refusals with exit status 2 and the reason: a non-loopback listen
#   address without token_file (the message names both keys), auth_reads
#   without token_file, a token file that is missing, empty or a directory;
# - server.allow_unauthenticated = true: 0.0.0.0 without a token starts, with a
#   warning in the log, and serves without auth.
. "$(dirname "$0")/lib.sh"

TOKEN=auth-test-token-0123456789
printf '%s\n' "$TOKEN" >"$TMP/token"
chmod 600 "$TMP/token"
MEASURE_BAD='{"kernel":"linear","batch":0,"in":16,"out":32}' # 422 once past auth: no job runs

# http_h METHOD PATH [CURL ARGS...]: like lib.sh's http, for a request without a
# body and with extra curl arguments (headers).
http_h() {
  local method=$1 path=$2
  shift 2
  local out
  rm -f "$TMP/headers"
  out=$(curl -s -S -X "$method" -o "$TMP/body" -D "$TMP/headers" -w '%{http_code} %{time_total}' \
    --max-time $((60 * SLOW)) "$@" "$BASE$path" 2>"$TMP/curl.err")
  STATUS=${out%% *}
  [ -n "$STATUS" ] || STATUS=000
  BODY=$(cat "$TMP/body" 2>/dev/null)
  rm -f "$TMP/body"
  [ "$STATUS" != 000 ]
}

# auth_check NAME: the last answer is a 401 problem with the Bearer challenge.
auth_check() {
  local name=$1
  shift
  local www
  www=$(header WWW-Authenticate)
  if [ "$www" != 'Bearer realm="jetprof"' ]; then
    not_ok "$name" "WWW-Authenticate is '$www', wanted Bearer realm=\"jetprof\""
    return
  fi
  problem_check "$name" 401 "$@"
}

# refuse NAME NEEDLE... -- ARGS...: jetprofd with ARGS exits 2 before serving and
# its standard error holds every NEEDLE.
refuse() {
  local name=$1
  shift
  local needles=()
  while [ "$1" != -- ]; do
    needles+=("$1")
    shift
  done
  shift
  rm -f "$TMP/port"
  timeout $((60 * SLOW)) "$JETPROFD" --port-file "$TMP/port" --db "$DB" "$@" \
    >"$TMP/refuse.out" 2>"$TMP/refuse.err"
  local rc=$? why=()
  [ "$rc" = 2 ] || why+=("exit status $rc, wanted 2")
  [ ! -e "$TMP/port" ] || why+=("it wrote a port file: it served")
  local n
  for n in "${needles[@]}"; do
    grep -qF -- "$n" "$TMP/refuse.err" || why+=("stderr lacks '$n'")
  done
  if sanitizer_report_in "$TMP/refuse.err"; then why+=("sanitizer report"); fi
  if [ ${#why[@]} -eq 0 ]; then
    ok "$name"
  else
    STATUS=""
    not_ok "$name" "${why[@]}" "stderr: $(head -c 600 "$TMP/refuse.err")"
  fi
}

# ======== token on, reads open ========
start_daemon --token-file "$TMP/token" || bail "jetprofd starts with a 0600 token file"
ok "jetprofd starts with a 0600 token file"
check "the log says mutating endpoints need the token" \
  grep -q "auth: mutating endpoints need the bearer token from $TMP/token" "$LOG"
check "no mode warning for a 0600 token file" eval '! grep -q "accessible to group or others" "$LOG"'

http GET /v1/jobs
check "GET /v1/jobs needs no token (auth_reads off)" [ "$STATUS" = 200 ]
http GET /metrics
check "GET /metrics needs no token (auth_reads off)" [ "$STATUS" = 200 ]

http POST /v1/measure "$MEASURE_BAD"
auth_check "POST /v1/measure without a token: 401, Bearer challenge" \
  "POST /v1/measure needs an 'Authorization: Bearer <token>' header"
check "the 401 names no auth_reads for a mutating endpoint" \
  eval '! contains "$(json_get "j[\"detail\"]")" auth_reads'
http POST /v1/measure "$MEASURE_BAD" -H "Authorization: Bearer wrong-$TOKEN"
auth_check "POST /v1/measure with a wrong token: 401" "not valid"
http POST /v1/measure "$MEASURE_BAD" -H "Authorization: Bearer ${TOKEN%?}"
auth_check "POST /v1/measure with the token less its last character: 401" "not valid"
http POST /v1/measure "$MEASURE_BAD" -H "Authorization: Basic $TOKEN"
auth_check "POST /v1/measure with another scheme: 401" "not valid"
http POST /v1/measure "$MEASURE_BAD" -H "Authorization: Bearer $TOKEN"
problem_check "POST /v1/measure with the right token gets past auth (422 for batch 0)" 422 "'batch'"
http POST /v1/measure "$MEASURE_BAD" -H "Authorization: bearer $TOKEN"
problem_check "the scheme is case-insensitive" 422 "'batch'"
http DELETE /v1/jobs/999999
auth_check "DELETE /v1/jobs/ID without a token: 401" "DELETE /v1/jobs/999999 needs"
http_h DELETE /v1/jobs/999999 -H "Authorization: Bearer $TOKEN"
check "DELETE /v1/jobs/ID with the token gets past auth (404)" [ "$STATUS" = 404 ]
http PUT /v1/sensor/sampling '{"averaging": 4}'
auth_check "PUT /v1/sensor/sampling without a token: 401" "needs an 'Authorization"
http POST /v1/models/train '{}'
auth_check "POST /v1/models/train without a token: 401" "needs an 'Authorization"
stop_daemon

# ======== auth_reads: reads need the token too, health stays open ========
chmod 644 "$TMP/token"
start_daemon --token-file "$TMP/token" --set server.auth_reads=true ||
  bail "jetprofd starts with server.auth_reads = true"
ok "jetprofd starts with server.auth_reads = true"
check "the log says every endpoint but GET /v1/health needs the token" \
  grep -q "auth: every endpoint but GET /v1/health needs the bearer token" "$LOG"
check "a 0644 token file is warned about (mode, chmod 600)" \
  grep -q "token file $TMP/token is accessible to group or others (mode 0644).*chmod 600" "$LOG"

for path in /v1/jobs /v1/device /v1/kernels /v1/power /v1/measurements /v1/models /metrics; do
  http GET "$path"
  auth_check "auth_reads: GET $path without a token: 401" \
    "GET $path needs an 'Authorization: Bearer <token>' header (server.auth_reads is on)"
done
http_h GET /v1/jobs -H "Authorization: Bearer nope"
auth_check "auth_reads: GET /v1/jobs with a wrong token: 401" "not valid"
http_h GET /v1/jobs -H "Authorization: Bearer $TOKEN"
check "auth_reads: GET /v1/jobs with the token: 200" [ "$STATUS" = 200 ]
http_h GET /metrics -H "Authorization: Bearer $TOKEN"
check "auth_reads: GET /metrics with the token: 200, Prometheus text" \
  eval '[ "$STATUS" = 200 ] && contains "$BODY" "jetprof_"'
http POST /v1/predict '{"kernel":"linear","batch":1,"in":8,"out":8}'
auth_check "auth_reads: POST /v1/predict (a read with a body) without a token: 401" \
  "(server.auth_reads is on)"
http GET /v1/health
check "auth_reads: GET /v1/health needs no token (liveness probes)" [ "$STATUS" = 200 ]
http_h HEAD /v1/health -I
check "auth_reads: HEAD /v1/health needs no token" [ "$STATUS" = 200 ]
http GET /v1/nonesuch
check "auth_reads: an unknown path is still a 404 (the route table is public)" [ "$STATUS" = 404 ]
http POST /v1/measure "$MEASURE_BAD"
auth_check "auth_reads: POST /v1/measure without a token: 401" "needs an 'Authorization"
http POST /v1/measure "$MEASURE_BAD" -H "Authorization: Bearer $TOKEN"
problem_check "auth_reads: POST /v1/measure with the token gets past auth" 422 "'batch'"
stop_daemon "jetprofd with auth_reads stops on SIGTERM with exit status 0"
chmod 600 "$TMP/token"

# ======== start-up refusals: exit 2, the reason on stderr ========
refuse "0.0.0.0 without a token file: exit 2, the reason naming both keys" \
  "listen address 0.0.0.0:0 is not loopback and server.token_file is empty: anyone on the network could queue jobs or change the sampling; set server.token_file, or server.allow_unauthenticated = true to accept that" \
  -- --config none --listen 0.0.0.0:0
refuse "[::] without a token file: exit 2" "is not loopback" server.allow_unauthenticated \
  -- --config none --listen '[::]:0'
refuse "auth_reads without a token file: exit 2" \
  "server.auth_reads = true needs server.token_file" \
  -- --config none --listen 127.0.0.1:0 --set server.auth_reads=true
refuse "a missing token file: exit 2 naming it" \
  "cannot read token file $TMP/no-such-token" -- \
  --config none --listen 127.0.0.1:0 --token-file "$TMP/no-such-token"
: >"$TMP/empty-token"
chmod 600 "$TMP/empty-token"
refuse "an empty token file: exit 2 naming it" "token file $TMP/empty-token is empty" -- \
  --config none --listen 127.0.0.1:0 --token-file "$TMP/empty-token"
printf 'two words\n' >"$TMP/bad-token"
refuse "a token that is not one word: exit 2" "the token in $TMP/bad-token must be one word" -- \
  --config none --listen 127.0.0.1:0 --token-file "$TMP/bad-token"
mkdir -p "$TMP/token-dir"
refuse "a token file that is a directory: exit 2" "$TMP/token-dir is not a regular file" -- \
  --config none --listen 0.0.0.0:0 --token-file "$TMP/token-dir"
printf '[server]\nlisten = 0.0.0.0:0\nallow_unauthenticated = false\n' >"$TMP/closed.conf"
refuse "allow_unauthenticated = false in a file: still refused" "is not loopback" -- \
  --config "$TMP/closed.conf"

# ======== allow_unauthenticated: 0.0.0.0 without a token starts ========
if start_daemon --listen 0.0.0.0:0 --set server.allow_unauthenticated=true; then
  ok "0.0.0.0 without a token starts with server.allow_unauthenticated = true"
  check "the log warns that anyone who can reach it can change it" \
    grep -q "auth: off on non-loopback address 0.0.0.0:0 (server.allow_unauthenticated = true): anyone" "$LOG"
  http POST /v1/measure "$MEASURE_BAD"
  problem_check "no auth: POST /v1/measure without a token gets past auth (422)" 422 "'batch'"
  stop_daemon "jetprofd on 0.0.0.0 without auth stops on SIGTERM with exit status 0"
else
  bail "0.0.0.0 without a token starts with server.allow_unauthenticated = true"
fi

# with a token the same address serves with auth on, allow_unauthenticated or not
LOG_MARK=$(wc -l <"$LOG")
if start_daemon --listen 0.0.0.0:0 --token-file "$TMP/token" \
  --set server.allow_unauthenticated=true; then
  ok "0.0.0.0 with a token starts"
  check "no 'auth: off' warning when a token is configured" \
    eval '! tail -n +$((LOG_MARK + 1)) "$LOG" | grep -q "auth: off"'
  http POST /v1/measure "$MEASURE_BAD"
  auth_check "0.0.0.0 with a token: POST without it is a 401" "needs an 'Authorization"
  stop_daemon
else
  bail "0.0.0.0 with a token starts"
fi

finish
