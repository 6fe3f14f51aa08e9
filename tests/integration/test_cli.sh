#!/usr/bin/env bash
# test_cli.sh - every jetprof subcommand against a live jetprofd (sim sensor, CPU
# executor, the fastest measure and training settings), the service commands
# most of all: status, power (table, --watch bounded by --count, stopped by
# SIGINT, ended by the reader of a pipe), submit (--wait with plain progress
# lines when stdout is not a terminal; exit 0 all done, 1 canceled, 130 on
# SIGINT with the jobs left running), jobs, cancel (a job, a batch, 404, 409),
# export in csv, json lines and sqlite (the rows checked with python3's csv,
# json and sqlite3; FILE.part never left behind), --host against
# JETPROF_HOST / JETPROF_URL and --url, a refused connection, usage errors
# (exit 2) and --help on every subcommand. A small local HTTP server plays a
# daemon whose batch ends with a failed job (submit --wait exits 1), one that
# never answers (--timeout), one whose power stream is not jetprofd's, and an
# export that stalls, stopped with SIGINT (exit 130, FILE.part removed, an
# earlier FILE untouched).
# Then auth: a second daemon on the same database with a token file; the
# mutating commands (measure, submit, cancel, train) without a token and with
# a wrong one exit 1 with the 401 detail, with the right one exit 0; reads
# need no token.
. "$(dirname "$0")/lib.sh"

# Measurements as short as the protocol allows and never re-measured for noise
# (this tests the client, not the protocol); small models.
set_measure measure.min_window_ms=10
set_measure measure.idle_ms=10
set_measure measure.warmup_ms=0
set_measure measure.warmup_launches=1
set_measure measure.min_samples=5
set_measure measure.repeats=1
set_measure measure.max_cv=1
set_measure measure.min_sample_ratio=0
TRAIN=(--set predict.train_rounds=20 --set predict.train_ensemble=2)

# The client under test, copied: a rebuild of bin/jetprof while this runs (make
# in another shell) must not turn into "text file busy" halfway through.
cp "$JETPROF" "$TMP/jetprof-under-test" || bail "copy $JETPROF"
JETPROF=$TMP/jetprof-under-test

# jp ARGS...: runs the client (stdin from /dev/null unless redirected); sets RC, OUT, ERR.
jp() {
  timeout $((120 * SLOW)) "$JETPROF" "$@" >"$TMP/out" 2>"$TMP/err"
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
  STATUS="" # no curl exchange to show
  if [ ${#why[@]} -eq 0 ]; then
    ok "$name"
  else
    not_ok "$name" "${why[@]}" "stdout: $(head -c 600 <<<"$OUT" | tr '\n' '|')" \
      "stderr: $(head -c 600 <<<"$ERR" | tr '\n' '|')"
  fi
}

# bg_start NAME ARGS...: the client in the background, output in $TMP/NAME.out/.err;
# sets BG_PID. bg_wait: its exit status in BG_RC.
bg_start() {
  local name=$1
  shift
  "$JETPROF" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
  BG_PID=$!
}
bg_wait() {
  if ! wait_until $((60 * SLOW)) eval '! kill -0 '"$BG_PID"' 2>/dev/null'; then
    kill -KILL "$BG_PID" 2>/dev/null
  fi
  wait "$BG_PID"
  BG_RC=$?
}
lines_at_least() { [ -f "$1" ] && [ "$(grep -c "${3:-.}" "$1")" -ge "$2" ]; }

# ---- --help on every subcommand, usage errors, no daemon needed ----
COMMANDS=(status health device kernels power measure submit jobs cancel measurements export
  train models predict estimate validate get)
jp --help
expect "jetprof --help: every command, --host, the environment and the exit codes" 0 \
  out "Usage: jetprof" out "--host HOST[:PORT]" out JETPROF_HOST out JETPROF_URL \
  out JETPROF_TOKEN_FILE out "Exit status:" out "130" out "Examples:"
missing=()
for c in "${COMMANDS[@]}"; do contains "$OUT" "  $c" || missing+=("$c"); done
check "jetprof --help lists every command" [ ${#missing[@]} -eq 0 ]
for c in "${COMMANDS[@]}"; do
  jp "$c" --help
  expect "jetprof $c --help: exit 0 with its usage" 0 out "Usage: jetprof $c"
done
jp fleet --help
expect "jetprof fleet --help: exit 0" 0 out "fleet"

# the manual page: renders without a warning, documents every command, variable, exit code
MAN=docs/jetprof.1
if [ -f "$MAN" ] && command -v groff >/dev/null 2>&1; then
  groff -man -Tutf8 -ww "$MAN" >"$TMP/man.txt" 2>"$TMP/man.err"
  MAN_RC=$?
  check "$MAN renders with groff -man -ww, no warning" eval '[ "$MAN_RC" = 0 ] && [ ! -s "$TMP/man.err" ]'
  missing=()
  for c in "${COMMANDS[@]}" fleet; do grep -q "^\.SS $c\( \|$\)" "$MAN" || missing+=("$c"); done
  for v in JETPROF_HOST JETPROF_URL JETPROF_TOKEN_FILE JETPROF_HOSTS; do
    grep -q "^\.B $v\$" "$MAN" || missing+=("$v")
  done
  for code in 0 1 2 130; do grep -q "^\.B $code\$" "$MAN" || missing+=("exit $code"); done
  check "$MAN has a section for every command, variable and exit status" [ ${#missing[@]} -eq 0 ]
  [ ${#missing[@]} -eq 0 ] || echo "#   missing: ${missing[*]}"
else
  not_ok "$MAN exists and groff is installed"
fi

jp --host 127.0.0.1:1 submit -h
expect "jetprof submit -h: the sweep forms and the exit codes of --wait" 0 \
  out '"sweep"' out '"configs"' out "130"

jp power --interval 100
expect "power --interval without --watch: exit 2" 2 err "--watch"
jp power --watch --interval 60001
expect "power --watch --interval 60001: exit 2 with the range" 2 err "[0, 60000]"
jp power --watch --count 0
expect "power --watch --count 0: exit 2" 2 err "--count"
jp power now
expect "power with an argument: exit 2" 2 err "now"
jp status --verbose
expect "status --verbose: exit 2" 2 err "--verbose"
jp submit
expect "submit without a file: exit 2" 2 err "which sweep"
jp submit a.json b.json
expect "submit with two files: exit 2" 2 err "one SWEEP.json"
jp submit "$TMP/no-such-sweep.json"
expect "submit with a file that does not exist: exit 2 naming it" 2 err "$TMP/no-such-sweep.json"
jp submit --now x.json
expect "submit with an unknown option: exit 2" 2 err "--now"
jp jobs --limit 0
expect "jobs --limit 0: exit 2" 2 err "--limit"
jp jobs --batch x
expect "jobs --batch x: exit 2" 2 err "--batch"
jp jobs done
expect "jobs with an argument: exit 2" 2 err "done"
jp cancel
expect "cancel without an id: exit 2" 2 err "JOB_ID"
jp cancel 3 --batch 4
expect "cancel with a job and a batch: exit 2" 2 err "either"
jp cancel abc
expect "cancel abc: exit 2" 2 err "JOB_ID"
jp export --format xml
expect "export --format xml: exit 2" 2 err "csv, json or sqlite"
jp export --format sqlite --kernel linear
expect "export --format sqlite with a filter: exit 2" 2 err "whole database"
jp export --batch 0
expect "export --batch 0: exit 2" 2 err "--batch"
jp export -o ''
expect "export -o '': exit 2" 2 err "-o"
jp --host ftp://127.0.0.1 health
expect "--host with another scheme: exit 2" 2 err "http or https"
jp --host 127.0.0.1:99999 health
expect "--host with port 99999: exit 2" 2 err "[1, 65535]"
JETPROF_HOST=::1 jp health
expect "JETPROF_HOST=::1: exit 2 naming the variable" 2 err JETPROF_HOST err brackets

# ---- no daemon: a refused connection is exit 1 ----
printf '{"configs": [{"kernel": "linear", "batch": 1, "in": 8, "out": 8}]}\n' >"$TMP/one.json"
for args in "status" "power" "power --watch" "submit $TMP/one.json" "jobs" "cancel 1" \
  "export -o $TMP/refused.csv"; do
  # shellcheck disable=SC2086
  jp --host 127.0.0.1:1 $args
  expect "$args with nothing listening: exit 1, cannot reach" 1 \
    err "cannot reach jetprofd at http://127.0.0.1:1"
done
check "export that could not connect leaves neither FILE nor FILE.part" \
  eval '[ ! -e "$TMP/refused.csv" ] && [ ! -e "$TMP/refused.csv.part" ]'
JETPROF_HOST=127.0.0.1:1 jp health
expect "JETPROF_HOST is used: exit 1 naming its address" 1 err "http://127.0.0.1:1"
jp --host 127.0.0.2 health
check "--host without a port means port 9740" \
  eval '[ "$RC" = 0 ] || contains "$ERR" "http://127.0.0.2:9740"'

# ---- a stand-in server for the answers a healthy daemon cannot be made to give ----
cat >"$TMP/stub.py" <<'EOF'
import http.server, json, sys, time

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, status, doc, ctype="application/json"):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send(201, {"batch_id": 41, "jobs": 3, "duplicates": 0})

    def do_GET(self):
        if self.path == "/v1/batches/41":
            self.send(200, {"id": 41, "jobs": 3, "duplicates": 0,
                            "counts": {"queued": 0, "running": 0, "done": 2, "failed": 1, "canceled": 0},
                            "measured_per_minute": 40.0, "eta_s": 0.0, "energy_j": 1.5, "wall_s": 4.5})
        elif self.path == "/v1/slow":
            time.sleep(30)
        elif self.path.startswith("/v1/measurements?format=csv"):
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.end_headers()
            self.wfile.write(b"id,uid\r\n1,a\r\n")
            self.wfile.flush()
            time.sleep(30)
        elif self.path.startswith("/v1/power/stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b": hello\n\nid: 1\ndata: this is not json\n\n")
            self.wfile.flush()
            time.sleep(30)
        else:
            self.send(404, {"type": "about:blank", "title": "Not Found", "status": 404,
                            "detail": "no such thing here"}, "application/problem+json")

    do_DELETE = do_GET

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
with open(sys.argv[1], "w") as f:
    f.write("%d\n" % srv.server_address[1])
srv.serve_forever()
EOF
"$PY" "$TMP/stub.py" "$TMP/stub.port" &
STUB_PID=$!
stub_up() { [ -s "$TMP/stub.port" ]; }
if wait_until $((20 * SLOW)) stub_up; then
  STUB=127.0.0.1:$(cat "$TMP/stub.port")
  jp --host "$STUB" submit "$TMP/one.json" --wait
  expect "submit --wait on a batch that ends with a failed job: exit 1 saying so" 1 \
    out "batch 41: 3 jobs queued" out "batch 41 finished: 2 done, 1 failed, 0 canceled of 3 jobs" \
    err "1 failed"
  jp --host "$STUB" --timeout 1 get /v1/slow
  expect "--timeout 1 on an answer that never comes: exit 1 saying the request failed" 1 \
    err "GET http://$STUB/v1/slow failed"
  jp --host "$STUB" --timeout 5 power --watch
  expect "power --watch on a stream of something else: exit 1 naming the event" 1 \
    err "event 1 of the power stream is not a power sample"
  printf 'an earlier export\n' >"$TMP/int.csv"
  bg_start exportint --host "$STUB" export -o "$TMP/int.csv"
  wait_until $((30 * SLOW)) test -e "$TMP/int.csv.part"
  kill -INT "$BG_PID" 2>/dev/null
  bg_wait
  check "export stopped by SIGINT mid-stream: exit 130, FILE.part removed, the earlier FILE kept" \
    eval '[ "$BG_RC" = 130 ] && [ ! -e "$TMP/int.csv.part" ] &&
      [ "$(cat "$TMP/int.csv")" = "an earlier export" ] && grep -q "interrupted" "$TMP/exportint.err" &&
      ! sanitizer_report_in "$TMP/exportint.err"'
  jp --host "$STUB" cancel --batch 5
  expect "an error answer: 'jetprof: <status> <title>: <detail>', exit 1" 1 \
    err "jetprof: 404 Not Found: no such thing here"
else
  not_ok "the stand-in HTTP server starts"
fi
kill "$STUB_PID" 2>/dev/null
wait "$STUB_PID" 2>/dev/null

# ---- a daemon without auth ----
start_daemon "${TRAIN[@]}" || bail "jetprofd starts (auth off)"
ok "jetprofd starts (auth off, fast measure settings)"
H=(--host "127.0.0.1:$PORT")

jp "${H[@]}" status
expect "status: exit 0, one summary" 0 out "jetprofd 0.1.0 at http://127.0.0.1:$PORT: ok, up " \
  out SIMULATED out "executor:  cpu" out "sensor:    sim, 3 rails, board input VDD_IN" \
  out "queue:     0 queued, 0 running, 0 done" out "models:    0 models"
jp "${H[@]}" status --json
expect "status --json: exit 0" 0
check "status --json: the health, device and models documents" \
  json_true 'j["health"]["status"] == "ok" and j["device"]["sensor"]["backend"] == "sim" and
    j["models"]["models"] == [] and j["health"]["simulated"] is True' "$OUT"
for c in health device kernels; do
  jp "${H[@]}" "$c"
  expect "jetprof $c: exit 0" 0 out "{"
done

jp "${H[@]}" power
expect "power: exit 0, a table of the rails, the board input marked, SIMULATED" 0 \
  out "RAIL" out "POWER_MW" out "board input" out SIMULATED
check "power: one row per rail (3) after the two header lines" \
  [ "$(grep -cE '^VDD_[A-Z_]+ +[0-9.]+ +[0-9.]+ +[0-9.]+' "$TMP/out")" = 3 ]
jp "${H[@]}" power --json
check "power --json: the GET /v1/power document" \
  json_true 'len(j["rails"]) == 3 and j["simulated"] is True' "$OUT"
jp "${H[@]}" power --watch --count 3 --interval 50
expect "power --watch --count 3: exit 0" 0 err SIMULATED
check "power --watch --count 3: three lines, time and each rail's power" \
  eval '[ "$(grep -cE "^ *[+-][0-9]+\.[0-9]{3} s  VDD_IN [0-9.]+ mW  VDD_CPU_GPU_CV [0-9.]+ mW  VDD_SOC [0-9.]+ mW$" "$TMP/out")" = 3 ] &&
    [ "$(grep -c . "$TMP/out")" = 3 ]'
jp "${H[@]}" power --watch --count 2 --json
check "power --watch --json: one JSON sample a line" \
  "$PY" -c 'import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 2, lines
for l in lines:
    assert len(json.loads(l)["rails"]) == 3' "$TMP/out"

bg_start watch "${H[@]}" power --watch --interval 50
wait_until $((30 * SLOW)) lines_at_least "$TMP/watch.out" 2
kill -INT "$BG_PID" 2>/dev/null
bg_wait
check "power --watch until SIGINT: exit 130, lines printed, no error message" \
  eval '[ "$BG_RC" = 130 ] && lines_at_least "$TMP/watch.out" 2 " mW" &&
    ! grep -v SIMULATED "$TMP/watch.err" | grep -q . && ! sanitizer_report_in "$TMP/watch.err"'
timeout $((60 * SLOW)) "$JETPROF" "${H[@]}" power --watch --interval 20 2>"$TMP/pipe.err" |
  head -n 2 >"$TMP/pipe.out"
PIPE_RC=${PIPESTATUS[0]}
check "power --watch | head -n 2: exit 0 when the reader goes away, quietly ($PIPE_RC)" \
  eval '[ "$PIPE_RC" = 0 ] && [ "$(grep -c " mW" "$TMP/pipe.out")" = 2 ] &&
    ! grep -v SIMULATED "$TMP/pipe.err" | grep -q .'

# ---- measure, submit --wait, jobs ----
jp "${H[@]}" measure linear batch=4 in=8 out=8
expect "measure (auth off): exit 0" 0 out '"kernel": "linear"'

# 24 configurations of linear: the training set of the auth part
cat >"$TMP/grid.json" <<'EOF'
{"sweep": {"type": "grid", "kernel": "linear",
           "params": {"batch": [1, 2, 4, 8, 16, 32], "in": [16, 32], "out": [16, 32]}}}
EOF
jp "${H[@]}" submit "$TMP/grid.json" --wait
expect "submit grid --wait: exit 0, batch id and counts, a final line" 0 \
  out "jobs queued, 0 duplicates skipped" out "finished: 24 done, 0 failed, 0 canceled of 24 jobs"
B1=$(sed -n 's/^batch \([0-9]*\): 24 jobs queued.*/\1/p' "$TMP/out")
check "submit --wait without a terminal: plain progress lines 'batch N: D/T done', no bar" \
  eval '[ -n "$B1" ] && grep -qE "^batch $B1: [0-9]+/24 done \([0-9]+%\), " "$TMP/out" &&
    ! grep -q $'"'"'\r'"'"' "$TMP/out" && ! grep -q $'"'"'\033'"'"' "$TMP/out"'
jp "${H[@]}" submit "$TMP/grid.json" --wait
expect "the same grid again: 0 queued, 24 duplicates, --wait ends at once with exit 0" 0 \
  out "0 jobs queued, 24 duplicates skipped" out "finished: 0 done"
# an adaptive sweep: --wait returns once its last round has run, not between rounds
cat >"$TMP/adaptive.json" <<'EOF'
{"sweep": {"type": "adaptive", "kernel": "add", "seed": 2, "params": {"rows": [1, 64], "cols": [1, 64]},
           "initial": 20, "per_round": 3, "rounds": 1, "threshold": 0.001}, "repeat_existing": true}
EOF
jp "${H[@]}" submit "$TMP/adaptive.json" --wait
expect "submit adaptive --wait: exit 0" 0 out "20 jobs queued"
BA=$(sed -n 's/^batch \([0-9]*\): 20 jobs queued.*/\1/p' "$TMP/out")
http GET "/v1/batches/${BA:-0}"
check "  ... it returned after the rounds: the batch is closed with rounds 0 and 1" \
  json_true 'j["adaptive"]["open"] is False and [r["round"] for r in j["rounds"]] in ([0], [0, 1])
    and j["counts"]["queued"] == 0 and j["counts"]["running"] == 0'
printf '{"sweep": {"type": "list", "kernel": "layernorm", "points": [{"rows": 8, "cols": 64}]}}' >"$TMP/list.json"
jp "${H[@]}" submit --json - <"$TMP/list.json"
expect "submit - (standard input) --json: exit 0" 0
check "submit --json prints the answer: batch_id and jobs 1" \
  json_true 'isinstance(j["batch_id"], int) and j["jobs"] == 1' "$OUT"
printf '{"sweep": {"type": "grid",\n "kernel": }' >"$TMP/broken.json"
jp "${H[@]}" submit "$TMP/broken.json"
expect "submit a file that is not JSON: exit 1 with file:line:column" 1 err "$TMP/broken.json:2:"
printf '[1, 2]' >"$TMP/array.json"
jp "${H[@]}" submit "$TMP/array.json"
expect "submit a JSON array: exit 1, a sweep is an object" 1 err "JSON object"
printf '{"sweep": {"type": "grid", "kernel": "linear", "params": {"batch": [0], "in": [8], "out": [8]}}}' \
  >"$TMP/bad.json"
jp "${H[@]}" submit "$TMP/bad.json"
expect "submit a sweep outside the catalogue's range: exit 1 with the daemon's 422 detail" 1 \
  err "jetprof: 422 " err "sweep.params.batch"

jp "${H[@]}" jobs --batch "$B1"
expect "jobs --batch: exit 0, the count on stderr" 0 out "STATE" out "linear:fp32:batch=1,in=16,out=16" \
  err "24 jobs"
check "jobs --batch: 24 rows, all done" [ "$(grep -cE "^ +[0-9]+ +$B1 done " "$TMP/out")" = 24 ]
jp "${H[@]}" jobs --state done --limit 5
expect "jobs --state done --limit 5: exit 0, where the next page starts" 0 err "5 jobs; more with --after"
check "jobs --limit 5: 5 rows" [ "$(grep -cE '^ +[0-9]+ ' "$TMP/out")" = 5 ]
jp "${H[@]}" jobs --batch "$B1" --limit 3 --json
check "jobs --json: the GET /v1/jobs answer" \
  json_true 'len(j["jobs"]) == 3 and all(x["batch_id"] == '"${B1:-0}"' for x in j["jobs"])' "$OUT"
jp "${H[@]}" jobs --state sleeping
expect "jobs --state sleeping: exit 1 with the daemon's 400" 1 err "jetprof: 400 " err state

# ---- a batch canceled while submit --wait follows it: exit 1 ----
cat >"$TMP/big.json" <<'EOF'
{"sweep": {"type": "random", "kernel": "linear_relu", "count": 300, "seed": 7,
           "params": {"batch": [1, 64], "in": [8, 256], "out": [8, 256]}}}
EOF
bg_start waitcancel "${H[@]}" submit "$TMP/big.json" --wait
wait_until $((30 * SLOW)) lines_at_least "$TMP/waitcancel.out" 1 "jobs queued"
B2=$(sed -n 's/^batch \([0-9]*\): .*jobs queued.*/\1/p' "$TMP/waitcancel.out")
jp "${H[@]}" cancel --batch "${B2:-0}"
expect "cancel --batch while submit --wait follows it: exit 0, queued jobs canceled" 0 \
  out "batch ${B2:-?}: " out "queued jobs canceled"
bg_wait
check "... and submit --wait exits 1, saying jobs were canceled" \
  eval '[ "$BG_RC" = 1 ] && grep -q "^batch $B2 finished: .* canceled of 300 jobs" "$TMP/waitcancel.out" &&
    grep -q "canceled" "$TMP/waitcancel.err" && ! sanitizer_report_in "$TMP/waitcancel.err"'

# ---- SIGINT stops the waiting, not the jobs: exit 130 ----
sed 's/"seed": 7/"seed": 8/' "$TMP/big.json" >"$TMP/big2.json"
bg_start waitint "${H[@]}" submit "$TMP/big2.json" --wait
wait_until $((30 * SLOW)) lines_at_least "$TMP/waitint.out" 2
B3=$(sed -n 's/^batch \([0-9]*\): .*jobs queued.*/\1/p' "$TMP/waitint.out")
kill -INT "$BG_PID" 2>/dev/null
bg_wait
if [ "$BG_RC" = 130 ] && [ -n "$B3" ] && grep -q "keep running" "$TMP/waitint.err" &&
  grep -q "cancel --batch $B3" "$TMP/waitint.err" && ! sanitizer_report_in "$TMP/waitint.err"; then
  ok "submit --wait on SIGINT: exit 130 saying the jobs keep running"
else
  not_ok "submit --wait on SIGINT: exit 130 saying the jobs keep running" \
    "exit status $BG_RC, batch '$B3'" "stdout: $(tr '\n' '|' <"$TMP/waitint.out")" \
    "stderr: $(tr '\n' '|' <"$TMP/waitint.err")"
fi
jp "${H[@]}" jobs --batch "${B3:-0}" --state queued --limit 10000 --json
expect "jobs --batch --state queued --json: exit 0" 0
check "... the batch's jobs are still queued on the daemon" \
  json_true 'len(j["jobs"]) > 100' "$OUT"
LAST_JOB=$(json_get 'max(x["id"] for x in j["jobs"])' "$OUT" 2>/dev/null)
jp "${H[@]}" cancel "${LAST_JOB:-0}"
expect "cancel JOB_ID (a queued job): exit 0 naming its configuration" 0 \
  out "canceled job ${LAST_JOB:-?} (linear_relu:fp32:"
jp "${H[@]}" cancel "${LAST_JOB:-0}"
expect "cancel the same job again: exit 1 with the 409 detail" 1 \
  err "jetprof: 409 Conflict: job ${LAST_JOB:-?} is canceled; only a queued job can be canceled"
jp "${H[@]}" cancel 99999999
expect "cancel a job that does not exist: exit 1 with 404" 1 err "jetprof: 404 "
jp "${H[@]}" cancel --batch 99999999
expect "cancel a batch that does not exist: exit 1 with 404" 1 err "jetprof: 404 "
jp "${H[@]}" cancel --batch "${B3:-0}" --json
expect "cancel --batch --json: exit 0" 0
check "cancel --batch --json: the Batch with 'canceled'" \
  json_true 'j["id"] == '"${B3:-0}"' and j["canceled"] > 100 and j["counts"]["queued"] == 0' "$OUT"
idle() { http GET /v1/health && json_true 'j["jobs"]["queued"] == 0 and j["jobs"]["running"] == 0'; }
wait_until $((60 * SLOW)) idle
check "the queue is empty again" idle

# ---- export: csv, json lines, sqlite ----
http GET "/v1/measurements?limit=10000"
ALL_IDS=$(json_get '[m["id"] for m in j["measurements"]]')
N_ALL=$(json_get 'len(j["measurements"])')
jp "${H[@]}" export -o "$TMP/all.csv"
expect "export -o all.csv: exit 0 with a summary" 0 err "wrote $TMP/all.csv: $N_ALL measurements"
check "export csv: a header, then every measurement (ids as in GET /v1/measurements)" \
  "$PY" -c 'import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert open(sys.argv[1]).readline().startswith("id,uid,"), "header"
assert [int(r["id"]) for r in rows] == json.loads(sys.argv[2]), [r["id"] for r in rows]
assert all(r["simulated"] in ("true", "1", "True") for r in rows), rows[0]["simulated"]' \
  "$TMP/all.csv" "$ALL_IDS"
jp "${H[@]}" export --format json -o "$TMP/all.jsonl"
expect "export --format json -o all.jsonl: exit 0" 0 err "$N_ALL measurements"
check "export json: one Measurement per line, every one" \
  "$PY" -c 'import json, sys
ms = [json.loads(l) for l in open(sys.argv[1])]
assert [m["id"] for m in ms] == json.loads(sys.argv[2])
assert all("latency_us" in m and "kernel" in m for m in ms)' "$TMP/all.jsonl" "$ALL_IDS"
jp "${H[@]}" export --format sqlite -o "$TMP/all.sqlite"
expect "export --format sqlite -o all.sqlite: exit 0" 0 err "SQLite database"
check "export sqlite: the file opens with sqlite3 and holds every measurement and job" \
  "$PY" -c 'import json, sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
ids = [r[0] for r in db.execute("SELECT id FROM measurements ORDER BY id")]
assert ids == json.loads(sys.argv[2]), ids
assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] >= len(ids)
assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"' "$TMP/all.sqlite" "$ALL_IDS"
"$JETPROF" "${H[@]}" export --format sqlite >"$TMP/stdout.sqlite" 2>"$TMP/err"
RC=$?
check "export --format sqlite > FILE (stdout not a terminal): exit 0, a SQLite file" \
  eval '[ "$RC" = 0 ] && [ "$(head -c 15 "$TMP/stdout.sqlite")" = "SQLite format 3" ]'
check "no FILE.part is left after an export" eval '! ls "$TMP"/*.part >/dev/null 2>&1'
jp "${H[@]}" export --batch "$B1" --format csv
expect "export --batch to stdout: exit 0" 0 out "id,uid,"
check "export --batch: the 24 measurements of the grid" \
  [ "$(tail -n +2 "$TMP/out" | grep -c .)" = 24 ]
jp "${H[@]}" export --kernel layernorm --format json
check "export --kernel layernorm --format json: only layernorm rows (1)" \
  eval '[ "$RC" = 0 ] && [ "$(grep -c "\"kernel\": *\"layernorm\"" "$TMP/out")" = 1 ] &&
    [ "$(grep -c . "$TMP/out")" = 1 ]'
jp "${H[@]}" export --since 2999-01-01 -o "$TMP/none.csv"
expect "export --since in the future: exit 0, no rows" 0 err "0 measurements"
jp "${H[@]}" export --since yesterday
expect "export --since yesterday: exit 1 with the daemon's 400" 1 err "jetprof: 400 " err since
jp "${H[@]}" export -o "$TMP/no-such-dir/x.csv"
expect "export into a directory that does not exist: exit 1" 1 err "cannot write $TMP/no-such-dir/x.csv.part"
jp "${H[@]}" measurements --limit 2
expect "measurements --limit 2: exit 0" 0 out '"measurements"'
jp "${H[@]}" get /v1/health
expect "get /v1/health: exit 0" 0 out '"status"'
jp "${H[@]}" models
expect "models before training: exit 0, none yet" 0 err "no models yet"

# ---- --host, --url, JETPROF_HOST, JETPROF_URL ----
JETPROF_HOST=127.0.0.1:$PORT jp health
expect "JETPROF_HOST=host:port: exit 0" 0 out '"status": "ok"'
JETPROF_HOST=http://127.0.0.1:$PORT/ jp health
expect "JETPROF_HOST as a URL with a trailing slash: exit 0" 0 out '"status": "ok"'
JETPROF_HOST=127.0.0.1:1 jp --host "127.0.0.1:$PORT" health
expect "--host beats JETPROF_HOST" 0 out '"status": "ok"'
JETPROF_HOST=127.0.0.1:$PORT JETPROF_URL=127.0.0.1:1 jp health
expect "JETPROF_HOST beats JETPROF_URL" 0 out '"status": "ok"'
JETPROF_URL=127.0.0.1:$PORT jp health
expect "JETPROF_URL alone still works" 0 out '"status": "ok"'
jp --url 127.0.0.1:1 --host "127.0.0.1:$PORT" health
expect "--url then --host: the last one counts (reachable)" 0 out '"status": "ok"'
jp --host "127.0.0.1:$PORT" --url 127.0.0.1:1 health
expect "--host then --url: the last one counts (refused)" 1 err "http://127.0.0.1:1"
jp status --host "localhost:$PORT"
expect "--host after the command, a host name: exit 0" 0 out "at http://localhost:$PORT: ok"
stop_daemon

# ---- auth on: a second daemon on the same database, with a token ----
printf 'cli-test-token\n' >"$TMP/token"
printf 'wrong-token\n' >"$TMP/wrong"
chmod 600 "$TMP/token" "$TMP/wrong"
start_daemon --token-file "$TMP/token" "${TRAIN[@]}" || bail "jetprofd starts with --token-file"
ok "jetprofd starts with --token-file on the same database"
H=(--host "127.0.0.1:$PORT")
RIGHT=(--token-file "$TMP/token")
WRONG=(--token-file "$TMP/wrong")
printf '{"configs": [{"kernel": "linear", "batch": 3, "in": 8, "out": 8}, {"kernel": "linear", "batch": 5, "in": 8, "out": 8}]}' \
  >"$TMP/two.json"
printf '{"batch": 8, "dtype": "fp32", "inputs": [{"name": "x", "shape": [16]}], "nodes": [{"name": "fc", "op": "linear", "inputs": ["x"], "out": 16}], "outputs": ["fc"]}' \
  >"$TMP/graph.json"

# auth_cases NAME ARGS...: no token and a wrong token are 401 (exit 1), the right one exit 0
auth_cases() {
  local name=$1
  shift
  jp "${H[@]}" "$@"
  expect "auth on, $name without a token: exit 1 with the 401 detail and a hint" 1 \
    err "jetprof: 401 Unauthorized: " err "needs an 'Authorization: Bearer <token>' header" \
    err "--token-file"
  jp "${H[@]}" "${WRONG[@]}" "$@"
  expect "auth on, $name with a wrong token: exit 1 with the 401 detail" 1 \
    err "jetprof: 401 Unauthorized: the bearer token in the Authorization header is not valid"
  jp "${H[@]}" "${RIGHT[@]}" "$@"
  expect "auth on, $name with the right token: exit 0" 0
}
auth_cases "measure" measure linear batch=2 in=8 out=8
auth_cases "submit --wait" submit "$TMP/two.json" --wait
check "... submit --wait with the token ran both jobs" contains "$OUT" "finished: 2 done, 0 failed"
# a batch to cancel: queued with the token, canceled (or refused) three ways
sed 's/"seed": 7/"seed": 9/' "$TMP/big.json" >"$TMP/big3.json"
jp "${H[@]}" "${RIGHT[@]}" submit "$TMP/big3.json" --json
expect "auth on, submit --json with the token: exit 0" 0 out batch_id
B4=$(json_get 'j["batch_id"]' "$OUT" 2>/dev/null)
auth_cases "cancel --batch" cancel --batch "${B4:-0}"
check "... the right token canceled the queued jobs" contains "$OUT" "queued jobs canceled"
JETPROF_TOKEN_FILE=$TMP/token jp "${H[@]}" cancel --batch "${B4:-0}"
expect "cancel with JETPROF_TOKEN_FILE: exit 0" 0 out "batch ${B4:-?}: "
wait_until $((120 * SLOW)) idle
auth_cases "train linear --quality any" train linear --quality any
check "... train printed the linear models' accuracy" \
  eval 'contains "$OUT" "KERNEL" && grep -q "^linear " "$TMP/out"'

# reads need no token
jp "${H[@]}" status
expect "auth on, status without a token: exit 0, the models counted" 0 out "models:    " \
  out "kernel type"
jp "${H[@]}" jobs --limit 2
expect "auth on, jobs without a token: exit 0" 0 out "STATE"
jp "${H[@]}" export --format json --kernel linear -o "$TMP/auth.jsonl"
expect "auth on, export without a token: exit 0" 0 err "measurements"
jp "${H[@]}" power --watch --count 1
expect "auth on, power --watch without a token: exit 0" 0 out " mW"
jp "${H[@]}" models
expect "models after training: exit 0, the linear models" 0 out "linear"
jp "${H[@]}" predict linear batch=8 in=16 out=16
expect "predict linear: exit 0 with a summary" 0 out '"predictions"' err "predicted latency"
jp "${H[@]}" estimate "$TMP/graph.json"
expect "estimate a one-linear graph: exit 0, the kernels table and the total" 0 \
  out "linear" out "total: 1 kernels"
jp "${H[@]}" models export -o "$TMP/models.json"
expect "models export -o: exit 0" 0 err "wrote $TMP/models.json"
jp estimate --offline --models "$TMP/models.json" "$TMP/graph.json"
expect "estimate --offline from the export: exit 0" 0 out "total: 1 kernels"
stop_daemon "jetprofd with a token stops on SIGTERM with exit status 0"

finish
