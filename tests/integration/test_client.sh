#!/usr/bin/env bash
# test_client.sh - the jetprof command-line client against a real jetprofd:
# every command, its output (indented JSON on stdout, a summary on stderr for
# measure), error reporting from problem+json, an unreachable daemon, usage
# errors (exit 2), and the bearer token from --token-file / $JETPROF_TOKEN_FILE.
. "$(dirname "$0")/lib.sh"

# jp ARGS...: runs the client; sets RC, OUT, ERR.
jp() {
  timeout $((60 * SLOW)) "$JETPROF" "$@" >"$TMP/out" 2>"$TMP/err"
  RC=$?
  OUT=$(cat "$TMP/out")
  ERR=$(cat "$TMP/err")
}

# expect NAME RC [STREAM NEEDLE]...: the last jp exited RC; each STREAM (out|err)
# contains its NEEDLE; no sanitizer report.
expect() {
  local name=$1 want=$2
  shift 2
  local why=()
  [ "$RC" = "$want" ] || why+=("exit status $RC, wanted $want")
  while [ $# -ge 2 ]; do
    local text
    [ "$1" = out ] && text=$OUT || text=$ERR
    contains "$text" "$2" || why+=("std$1 lacks '$2'")
    shift 2
  done
  if sanitizer_report_in "$TMP/err"; then why+=("sanitizer report on stderr"); fi
  if [ ${#why[@]} -eq 0 ]; then
    ok "$name"
  else
    not_ok "$name" "${why[@]}" "stdout: $(head -c 400 <<<"$OUT" | tr '\n' ' ')" \
      "stderr: $(head -c 600 <<<"$ERR" | tr '\n' ' ')"
  fi
}

# ---- without a daemon ----
jp --help
expect "jetprof --help: exit 0, usage with commands and examples" 0 out "Usage: jetprof" \
  out measure out measurements out --token-file out "Examples:"
jp --version
expect "jetprof --version prints 'jetprof 0.1.0'" 0
check "jetprof --version output is exactly 'jetprof 0.1.0'" [ "$OUT" = "jetprof 0.1.0" ]
jp
expect "jetprof without a command: exit 2 pointing to --help" 2 err --help
jp frobnicate
expect "an unknown command: exit 2 naming it" 2 err frobnicate err --help
jp --bogus health
expect "an unknown option: exit 2 naming it" 2 err --bogus
jp measure linear batch=abc in=16 out=32
expect "measure with a non-integer value: exit 2 naming the parameter" 2 err batch err integer
jp measure linear batch=8.5 in=16 out=32
expect "measure batch=8.5: exit 2" 2 err batch
jp measure linear batch=8 batch=9
expect "measure with a parameter given twice: exit 2" 2 err batch
jp measure linear batch8
expect "measure with an argument that is not NAME=VALUE: exit 2" 2 err batch8
jp measure
expect "measure without a kernel: exit 2" 2 err kernel
jp measure linear batch=8 --repeats many
expect "measure --repeats many: exit 2" 2 err repeats
jp measurements --limit ten
expect "measurements --limit ten: exit 2" 2 err limit
jp health extra
expect "health with an extra argument: exit 2" 2 err extra
jp get v1/health
expect "get without a leading slash: exit 2" 2 err PATH
jp --timeout soon health
expect "--timeout soon: exit 2" 2 err --timeout
jp --url http://127.0.0.1:1 health
expect "an unreachable daemon: exit 1 saying it cannot reach it at the URL" 1 \
  err "cannot reach jetprofd at http://127.0.0.1:1"
check "... and prints nothing on stdout" [ -z "$OUT" ]
jp --token-file "$TMP/no-such-token" --url http://127.0.0.1:1 health
expect "a token file that cannot be read: exit 2 naming it" 2 err "$TMP/no-such-token"

# ---- with a daemon ----
start_daemon || bail "jetprofd starts"
ok "jetprofd starts"
U=(--url "$BASE")

jp "${U[@]}" health
expect "jetprof health: exit 0" 0
check "jetprof health prints JSON with status ok and version 0.1.0" \
  json_true 'j["status"] == "ok" and j["version"] == "0.1.0"' "$OUT"
check "jetprof health indents the JSON by two spaces" grep -q '^  "status": "ok",\?$' "$TMP/out"
JETPROF_URL=$BASE jp health
expect "JETPROF_URL is the default URL" 0 out '"status": "ok"'
jp health --url "127.0.0.1:$PORT/"
expect "--url after the command, without a scheme, with a trailing slash" 0 out '"status"'

jp "${U[@]}" device
expect "jetprof device: exit 0" 0
check "jetprof device: executor cpu (cpu or cuda on a GPU host), sensor sim" \
  json_true 'j["executor"]["name"] in (("cpu", "cuda") if '"$HAVE_GPU"' else ("cpu",)) and
    j["sensor"]["backend"] == "sim"' "$OUT"
jp "${U[@]}" kernels
expect "jetprof kernels: exit 0" 0
check "jetprof kernels lists linear, linear_relu and layernorm" \
  json_true '{"linear", "linear_relu", "layernorm"} <= {k["name"] for k in j["kernels"]}' "$OUT"

jp "${U[@]}" measure linear batch=8 in=16 out=32
expect "jetprof measure linear batch=8 in=16 out=32: exit 0" 0
check "measure prints the Measurement (kernel, params, latency > 0, energy)" \
  json_true 'j["kernel"] == "linear" and j["params"] == {"batch": 8, "in": 16, "out": 32} and
    j["latency_us"] > 0 and j["energy_uj"] > 0' "$OUT"
check "measure prints a one-line summary on stderr (latency, power, energy, quality, simulated)" \
  eval '[ "$(grep -c . <<<"$ERR")" = 1 ] && contains "$ERR" latency && contains "$ERR" power &&
    contains "$ERR" energy && contains "$ERR" quality && contains "$ERR" simulated'
MID=$(json_get 'j["id"]' "$OUT" 2>/dev/null)

jp "${U[@]}" measure layernorm rows=32 cols=64 --dtype fp16 --repeats 1
expect "measure layernorm --dtype fp16 --repeats 1: exit 0" 0
check "... measured as fp16 with 1 repeat" json_true 'j["dtype"] == "fp16" and j["repeats"] == 1' "$OUT"

jp "${U[@]}" measurements --csv
expect "jetprof measurements --csv: exit 0" 0
check "measurements --csv: a header and two rows" \
  eval '[ "$(tr -d "\r" <<<"$OUT" | grep -c .)" = 3 ] && [[ "$(head -n 1 <<<"$OUT")" == id,* ]]'
jp "${U[@]}" measurements --kernel layernorm
expect "jetprof measurements --kernel layernorm: exit 0" 0
check "... only the layernorm measurement" \
  json_true '[m["kernel"] for m in j["measurements"]] == ["layernorm"]' "$OUT"
jp "${U[@]}" measurements --limit 1
check "measurements --limit 1: one row and next_after" \
  json_true 'len(j["measurements"]) == 1 and j["next_after"] == '"${MID:-0}" "$OUT"
jp "${U[@]}" measurements --after "${MID:-0}" --dtype fp16 --quality ok
expect "measurements --after --dtype --quality: exit 0" 0
jp "${U[@]}" get "/v1/measurements/${MID:-0}"
expect "jetprof get /v1/measurements/ID: exit 0" 0
check "get prints the body as received (the measurement)" json_true 'j["id"] == '"${MID:-0}" "$OUT"

jp "${U[@]}" measure linear batch=0 in=16 out=32
expect "measure with batch=0: exit 1 with status, title and the daemon's detail on stderr" 1 \
  err "jetprof: 422 " err "parameter 'batch' = 0 is outside linear's range [1, 65536]"
check "... and nothing on stdout" [ -z "$OUT" ]
jp "${U[@]}" measure conv9 batch=1
expect "measure an unknown kernel: exit 1 naming it" 1 err conv9
jp "${U[@]}" get /v1/measurements/999999
expect "get a missing measurement: exit 1 with 404" 1 err "jetprof: 404 "
jp "${U[@]}" measurements --limit 0
expect "measurements --limit 0: exit 1 with the daemon's 400" 1 err "jetprof: 400 " err limit
stop_daemon

# ---- bearer token ----
printf 'client-test-token\n' >"$TMP/token"
printf 'wrong-token\n' >"$TMP/wrong"
start_daemon --token-file "$TMP/token" || bail "jetprofd starts with --token-file"
ok "jetprofd starts with --token-file"
U=(--url "$BASE")
jp "${U[@]}" measure linear batch=4 in=8 out=8
expect "measure without a token: exit 1 with 401 and a hint about --token-file" 1 \
  err "jetprof: 401 " err --token-file
jp "${U[@]}" --token-file "$TMP/wrong" measure linear batch=4 in=8 out=8
expect "measure with a wrong token: exit 1 with 401" 1 err "jetprof: 401 "
jp "${U[@]}" --token-file "$TMP/token" measure linear batch=4 in=8 out=8
expect "measure with --token-file: exit 0" 0 out '"kernel": "linear"'
JETPROF_TOKEN_FILE=$TMP/token jp "${U[@]}" measure linear batch=4 in=8 out=16
expect "measure with JETPROF_TOKEN_FILE: exit 0" 0 out '"kernel": "linear"'
stop_daemon "jetprofd with a token stops on SIGTERM with exit status 0"

finish
