#!/usr/bin/env bash
# test_fleet.sh - `jetprof fleet` over a shelf of three jetprofd instances on
# loopback: board-a and board-b identical (the same device fingerprint),
# board-c different (another sensor sampling period, which is part of the
# fingerprint: checked with GET /v1/device).
#   - hosts file mistakes: exit 2 with FILE:LINE (bad address, bad name, too
#     many fields, a board twice, a name twice, an unreadable token file), no
#     file, an empty file;
#   - status: one row per board with the fingerprint; --json;
#   - docs/fleet.md's Prometheus example: promtool check config (where installed),
#     and every jetprof_* metric its rules use is in a board's /metrics;
#   - submit without --shard: every board gets the whole grid (6 jobs each),
#     the manifest names each batch; progress --wait to completion with plain
#     lines (stdout is not a terminal), exit 0;
#   - submit --shard with a random sweep whose draws repeat: a and b split the
#     distinct configurations (disjoint, together exactly what board-c, given
#     the sweep as written, expands on its own), counts add up; an existing
#     manifest is kept without --force;
#   - a long batch: progress --wait stopped with SIGINT (exit 130, the jobs
#     keep running), cancel (every board's queued jobs canceled), progress
#     then exits 1;
#   - auth: a board restarted with a token: 401 without the token file in the
#     hosts line, accepted with it (a path relative to the hosts file);
#   - a stopped board: status says UNREACHABLE and exits 1 promptly; submit
#     queues on the others and exits 1, the manifest records why; progress
#     exits 1 naming it; a board that accepts connections but never answers
#     costs one --timeout, reported as "no answer".
. "$(dirname "$0")/lib.sh"

# Measurements as short as the protocol allows (this tests the fan-out, not the protocol).
set_measure measure.min_window_ms=10
set_measure measure.idle_ms=10
set_measure measure.warmup_ms=0
set_measure measure.warmup_launches=1
set_measure measure.min_samples=5
set_measure measure.repeats=1
set_measure measure.max_cv=1
set_measure measure.min_sample_ratio=0

declare -A BPID BPORT

# start_board NAME [FLAGS...]: a jetprofd with its own database, log and port file.
start_board() {
  local name=$1
  shift
  local args=(--config none --listen 127.0.0.1:0 --port-file "$TMP/$name.port"
    --db "$TMP/$name.db" --log-level debug)
  local kv
  for kv in "${MEASURE_SETTINGS[@]}"; do args+=(--set "$kv"); done
  args+=("$@")
  rm -f "$TMP/$name.port"
  echo "=== $(date -u +%FT%TZ) start: ${args[*]}" >>"$TMP/$name.log"
  "$JETPROFD" "${args[@]}" >>"$TMP/$name.log" 2>&1 &
  BPID[$name]=$!
  local pid=${BPID[$name]}
  wait_until $((20 * SLOW)) eval "[ -s '$TMP/$name.port' ] || ! kill -0 $pid 2>/dev/null"
  if ! kill -0 "$pid" 2>/dev/null || ! [ -s "$TMP/$name.port" ]; then
    echo "# $name did not start; its log:"
    tail -n 15 "$TMP/$name.log" | sed 's/^/#   /'
    return 1
  fi
  BPORT[$name]=$(head -n 1 "$TMP/$name.port")
  BASE="http://127.0.0.1:${BPORT[$name]}"
  wait_until $((20 * SLOW)) health_ok
}

# stop_board NAME: SIGTERM; one result line: exit status 0, no sanitizer report.
stop_board() {
  local name=$1 pid=${BPID[$1]}
  kill -TERM "$pid" 2>/dev/null
  local gone=1
  wait_until $((120 * SLOW)) eval "! kill -0 $pid 2>/dev/null" || gone=0
  [ "$gone" = 1 ] || kill -KILL "$pid" 2>/dev/null
  wait "$pid"
  local rc=$?
  BPID[$name]=""
  STATUS=""
  if [ "$gone" = 0 ]; then
    not_ok "$name stops on SIGTERM" "still running $((120 * SLOW)) s after SIGTERM"
  elif [ "$rc" -ne 0 ]; then
    not_ok "$name stops on SIGTERM with exit status 0" "exit status $rc" \
      "$(tail -n 10 "$TMP/$name.log")"
  elif sanitizer_report_in "$TMP/$name.log"; then
    not_ok "$name stops on SIGTERM with exit status 0" "sanitizer report in its log" \
      "$(grep -m 3 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TMP/$name.log")"
  else
    ok "$name stops on SIGTERM with exit status 0"
  fi
}

board_url() { echo "http://127.0.0.1:${BPORT[$1]}"; }
on_board() { BASE=$(board_url "$1"); }

# jp ARGS...: the client, bounded; sets RC, OUT, ERR.
jp() {
  timeout $((120 * SLOW)) "$JETPROF" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
  RC=$?
  OUT=$(cat "$TMP/out")
  ERR=$(cat "$TMP/err")
}

# expect NAME RC [STREAM NEEDLE]...: the last jp exited RC, each STREAM (out|err)
# contains its NEEDLE, no sanitizer report.
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
  STATUS=""
  if [ ${#why[@]} -eq 0 ]; then
    ok "$name"
  else
    not_ok "$name" "${why[@]}" "stdout: $(head -c 900 <<<"$OUT" | tr '\n' '|')" \
      "stderr: $(head -c 600 <<<"$ERR" | tr '\n' '|')"
  fi
}

# batch_keys BOARD BATCH: the batch's config keys, sorted, one a line.
batch_keys() {
  on_board "$1"
  http GET "/v1/jobs?batch=$2&limit=10000" >/dev/null
  json_get '"\n".join(sorted(x["config_key"] for x in j["jobs"]))'
}

# manifest_get EXPR [FILE]: a Python expression over the manifest m.
manifest_get() { json_get "$1" "$(cat "${2:-$TMP/fleet.json}")"; }

export JETPROF_FLEET_MANIFEST="$TMP/fleet.json"
unset JETPROF_HOSTS

# ---- hosts file mistakes (no board needed) ----
jp fleet status
expect "fleet status without a hosts file: exit 2 naming --hosts and JETPROF_HOSTS" 2 \
  err "--hosts" err "JETPROF_HOSTS"
jp --hosts "$TMP/no-such-hosts" fleet status
expect "a hosts file that does not exist: exit 2 naming it" 2 err "$TMP/no-such-hosts"
printf '# only a comment\n\n' >"$TMP/h-empty"
jp --hosts "$TMP/h-empty" fleet status
expect "a hosts file without a board: exit 2" 2 err "$TMP/h-empty: no board"
printf '# the shelf\n127.0.0.1:9741 a\n\nftp://127.0.0.1:9742 b\n' >"$TMP/h-bad"
jp --hosts "$TMP/h-bad" fleet status
expect "a bad address: exit 2 with FILE:LINE and the reason" 2 \
  err "$TMP/h-bad:4: board address 'ftp://127.0.0.1:9742'" err "http or https"
printf '127.0.0.1:9741 a tok extra\n' >"$TMP/h-fields"
jp --hosts "$TMP/h-fields" fleet status
expect "four fields: exit 2 with FILE:LINE" 2 err "$TMP/h-fields:1: more than three fields"
printf '127.0.0.1:9741 bad/name\n' >"$TMP/h-name"
jp --hosts "$TMP/h-name" fleet status
expect "a bad name: exit 2 with FILE:LINE" 2 err "$TMP/h-name:1: board name 'bad/name'"
printf '127.0.0.1:9741 a\nhttp://127.0.0.1:9741/ b  # the same board\n' >"$TMP/h-dup"
jp --hosts "$TMP/h-dup" fleet status
expect "a board listed twice: exit 2 naming both lines" 2 \
  err "$TMP/h-dup:2: board http://127.0.0.1:9741 is already on line 1"
printf '127.0.0.1:9741 a\n127.0.0.1:9742 a\n' >"$TMP/h-dupname"
jp --hosts "$TMP/h-dupname" fleet status
expect "a name used twice: exit 2 with FILE:LINE" 2 \
  err "$TMP/h-dupname:2: the name 'a' is already used on line 1"
printf '127.0.0.1:9741 a no-such-token\n' >"$TMP/h-tok"
jp --hosts "$TMP/h-tok" fleet status
expect "an unreadable token file: exit 2 with FILE:LINE and the resolved path" 2 \
  err "$TMP/h-tok:1: cannot read token file $TMP/no-such-token"
jp --hosts "$TMP/h-bad" fleet frobnicate
expect "an unknown fleet command: exit 2" 2 err "unknown fleet command 'frobnicate'"
jp fleet --help
expect "fleet --help: every fleet command, the hosts file and the exit codes" 0 \
  out "status [--json]" out "submit SWEEP.json" out "--shard" out "progress [--wait]" \
  out "cancel [--manifest FILE]" out "URL [NAME [TOKEN_FILE]]" out "Exit status"
jp fleet progress
expect "progress without a manifest: exit 2 naming it" 2 err "no manifest at $TMP/fleet.json"

# ---- the shelf ----
start_board board-a || bail "board-a starts"
start_board board-b || bail "board-b starts"
start_board board-c --set sensor.period_us=2000 || bail "board-c starts"
ok "three jetprofd instances on loopback"
declare -A FP
for b in board-a board-b board-c; do
  on_board "$b"
  http GET /v1/device
  FP[$b]=$(json_get 'j["fingerprint"]')
done
check "board-a and board-b share a device fingerprint, board-c has another" \
  eval '[ -n "${FP[board-a]}" ] && [ "${FP[board-a]}" = "${FP[board-b]}" ] && [ "${FP[board-a]}" != "${FP[board-c]}" ]'

{
  echo "# the test shelf"
  echo "$(board_url board-a)  board-a"
  echo "127.0.0.1:${BPORT[board-b]}  board-b   # an address without a scheme"
  echo "$(board_url board-c)/ board-c"
} >"$TMP/hosts"
export JETPROF_HOSTS="$TMP/hosts"

jp fleet status
expect "status, all up: exit 0" 0 out "board-a" out "board-b" out "board-c" \
  out "${FP[board-a]:0:8}" out "${FP[board-c]:0:8}" out "3 boards: 3 answering, 0 unreachable"
check "status: one row per board, none unreachable" \
  eval '[ "$(grep -c "^board-" <<<"$OUT")" = 3 ] && ! grep -q UNREACHABLE <<<"$OUT"'
check "status: board-c's row shows its 500 Hz sampling" \
  eval 'grep "^board-c" <<<"$OUT" | grep -q "/500 Hz"'
jp fleet status --json
expect "status --json: exit 0" 0
check "status --json: three reachable boards with their device documents" \
  json_true 'len(j["boards"]) == 3 and all(b["reachable"] and b["device"]["fingerprint"] for b in j["boards"]) and [b["name"] for b in j["boards"]] == ["board-a", "board-b", "board-c"]' "$OUT"

# ---- docs/fleet.md's Prometheus example: valid, and about metrics the daemon serves ----
mkdir -p "$TMP/prom"
# each block follows a "<!-- promtool: FILE -->" line
"$PY" -c '
import re, sys
s = open(sys.argv[1]).read()
for m in re.finditer(r"<!-- promtool: (\S+) -->\n```yaml\n(.*?)```", s, re.S):
    open(sys.argv[2] + "/" + m.group(1), "w").write(m.group(2))
' docs/fleet.md "$TMP/prom"
check "docs/fleet.md has the scrape config and the rules file" \
  test -s "$TMP/prom/prometheus.yml" -a -s "$TMP/prom/jetprof-rules.yml"
if command -v promtool >/dev/null 2>&1; then
  PROM_OUT=$(cd "$TMP/prom" && promtool check config prometheus.yml 2>&1)
  PROM_RC=$?
  check "promtool check config accepts the example (and its rules file)" \
    eval '[ "$PROM_RC" = 0 ] && contains "$PROM_OUT" "SUCCESS: 1 rule files found"'
else
  echo "# promtool is not installed: the Prometheus example's syntax is not checked"
fi
on_board board-a
http GET /metrics
missing=()
used=0
for m in $(grep -oE '\bjetprof_[a-z_]+' "$TMP/prom/jetprof-rules.yml" 2>/dev/null | sort -u); do
  used=$((used + 1))
  grep -q "^${m}[ {]" <<<"$BODY" || missing+=("$m")
done
check "every jetprof_* metric the rules use ($used) is in a board's /metrics" \
  eval '[ "$used" -ge 6 ] && { [ ${#missing[@]} = 0 ] || { echo "# missing: ${missing[*]}"; false; }; }'

# ---- submit without --shard: every board measures the whole sweep ----
cat >"$TMP/grid.json" <<'EOF'
{"sweep": {"type": "grid", "kernel": "linear", "params": {"batch": [1, 2, 3], "in": [8, 16], "out": [8]}}}
EOF
jp fleet submit "$TMP/grid.json"
expect "submit without --shard: exit 0, each board the whole sweep" 0 \
  out "board-a  batch 1: 6 jobs queued" out "board-b  batch 1: 6 jobs queued" \
  out "board-c  batch 1: 6 jobs queued" out "manifest $TMP/fleet.json"
check "the manifest: sweep file, time, each board's URL, name, fingerprint, batch and count" \
  json_true 'j["version"] == 1 and j["sweep_file"].endswith("grid.json") and j["submitted_at"].endswith("Z") and not j["sharded"] and [(b["name"], b["batch_id"], b["configs"]) for b in j["boards"]] == [("board-a", 1, 6), ("board-b", 1, 6), ("board-c", 1, 6)] and j["boards"][2]["fingerprint"] == "'"${FP[board-c]}"'" and j["boards"][1]["url"] == "'"$(board_url board-b)"'"' \
  "$(cat "$TMP/fleet.json")"
check "no temporary manifest file is left beside it" \
  eval '[ -z "$(ls "$TMP" | grep "fleet.json.tmp")" ]'
for b in board-a board-b board-c; do
  on_board "$b"
  http GET /v1/batches/1
  check "$b: batch 1 holds the whole grid (6 jobs)" json_true 'j["jobs"] == 6'
done

jp fleet progress --wait
expect "progress --wait follows the three batches to the end: exit 0" 0 \
  out "fleet: " out "  board-a  batch 1: " out "fleet finished: 18 done, 0 failed, 0 canceled of 18 jobs on 3 boards"
check "progress --wait without a terminal: plain lines, no escape sequences" \
  eval '! grep -q $'"'"'\033'"'"' "$TMP/out"'
jp fleet progress --json
expect "progress --json after the end: exit 0" 0
check "progress --json: finished, 18 done, nothing left" \
  json_true 'j["finished"] and j["done"] == 18 and j["left"] == 0 and len(j["boards"]) == 3' "$OUT"

# ---- submit --shard: identical boards split the sweep ----
# 16 draws over 4 x 3 points: draws repeat, so the distinct configurations are fewer
cat >"$TMP/random.json" <<'EOF'
{"sweep": {"type": "random", "kernel": "add", "count": 16, "seed": 7,
           "params": {"rows": [1, 4], "cols": [1, 3]}}, "dtype": "fp16"}
EOF
jp fleet submit --shard "$TMP/random.json"
expect "submit --shard with the manifest of the last submit there: exit 2, kept" 2 \
  err "$TMP/fleet.json exists" err "--force"
check "... the earlier manifest is untouched" \
  json_true 'not j["sharded"]' "$(cat "$TMP/fleet.json")"
jp fleet submit --shard --force --manifest "$TMP/shard.json" "$TMP/random.json"
expect "submit --shard: exit 0, a and b each a shard, c the whole sweep" 0 \
  out "board-a  batch 2: " out "(shard 1 of 2: " out "(shard 2 of 2: " \
  out "board-c  batch 2: " out "(the whole sweep)" out "sharded by device fingerprint"
KA=$(batch_keys board-a 2)
KB=$(batch_keys board-b 2)
KC=$(batch_keys board-c 2)
NA=$(grep -c . <<<"$KA")
NB=$(grep -c . <<<"$KB")
NC=$(grep -c . <<<"$KC")
check "the shards are not empty and differ by one at most ($NA and $NB)" \
  eval '[ "$NA" -gt 0 ] && [ "$NB" -gt 0 ] && [ $((NA - NB)) -le 1 ] && [ $((NB - NA)) -le 1 ]'
check "no configuration is on both identical boards" \
  eval '[ -z "$(comm -12 <(echo "$KA") <(echo "$KB"))" ]'
check "the two shards together are exactly what board-c expanded from the sweep ($NC)" \
  eval '[ "$(sort <<<"$KA"$'"'"'\n'"'"'"$KB")" = "$KC" ] && [ $((NA + NB)) = "$NC" ]'
check "the random draws repeated (fewer distinct configurations than 16)" \
  eval '[ "$NC" -lt 16 ]'
cat >"$TMP/adaptive.json" <<'EOF'
{"sweep": {"type": "adaptive", "kernel": "add", "initial": 20, "per_round": 4, "rounds": 2,
           "params": {"rows": [1, 64], "cols": [1, 64]}}}
EOF
jp fleet submit --shard --force --manifest "$TMP/adaptive-manifest.json" "$TMP/adaptive.json"
expect "submit --shard of an adaptive sweep: refused, nothing queued" 1 \
  err "an adaptive sweep cannot be sharded" err "without --shard"
check "... no manifest written" [ ! -e "$TMP/adaptive-manifest.json" ]
check "the shard manifest: sharded, counts per board, a and b's shard 1 and 2 of 2" \
  json_true 'j["sharded"] and [b["configs"] for b in j["boards"]][:2] == ['"$NA"', '"$NB"'] and j["boards"][0]["shard"] == {"index": 1, "of": 2} and j["boards"][2]["shard"] is None' \
  "$(cat "$TMP/shard.json")"
on_board board-a
http GET /v1/jobs?batch=2
check "the shard's jobs keep the sweep's dtype (fp16)" \
  json_true 'all(x["dtype"] == "fp16" for x in j["jobs"])'
jp fleet progress --wait --manifest "$TMP/shard.json"
expect "progress --wait on the sharded batches: exit 0" 0 \
  out "fleet finished: $((NA + NB + NC)) done, 0 failed"

cat >"$TMP/bad-sweep.json" <<'EOF'
{"sweep": {"type": "grid", "kernel": "linear", "params": {"batch": [0, 1], "in": [8], "out": [8]}}}
EOF
jp fleet submit --shard --manifest "$TMP/never.json" "$TMP/bad-sweep.json"
expect "submit --shard of a sweep outside the catalogue: exit 1 naming the member" 1 \
  err "member 'sweep.params.batch[0]'" err "outside linear's range"
check "... and nothing written" eval '[ ! -e "$TMP/never.json" ]'

# ---- a long batch: stop following it, then cancel it ----
cat >"$TMP/long.json" <<'EOF'
{"sweep": {"type": "grid", "kernel": "softmax", "params": {"rows": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "cols": [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]}}}
EOF
jp fleet submit --force "$TMP/long.json"
expect "submit a 200-job sweep: exit 0" 0 out "board-a  batch 3: 200 jobs queued"
"$JETPROF" fleet progress --wait >"$TMP/wait.out" 2>"$TMP/wait.err" </dev/null &
WPID=$!
wait_until $((30 * SLOW)) grep -q "board-c  batch 3" "$TMP/wait.out"
kill -INT "$WPID"
wait_until $((30 * SLOW)) eval "! kill -0 $WPID 2>/dev/null" || kill -KILL "$WPID"
wait "$WPID"
WRC=$?
check "progress --wait stopped by SIGINT: exit 130, the batches keep running" \
  eval '[ "$WRC" = 130 ] && grep -q "keep running on the boards" "$TMP/wait.err"'
# the runner is between two jobs now and then: ask until a row shows the batch
running_row() { jp fleet status && grep -qE "^board-a .* #3 [0-9]+/200 \(" <<<"$OUT"; }
wait_until $((20 * SLOW)) running_row
expect "status while the batch runs: exit 0, the running batch with its progress" 0 \
  out " #3 " out "/200 ("
jp fleet cancel
expect "cancel: exit 0, each board's queued jobs canceled" 0 \
  out "board-a  batch 3: " out "board-b  batch 3: " out "board-c  batch 3: " \
  out "queued jobs canceled"
check "cancel canceled queued jobs on every board" \
  eval '[ "$(grep -cE "batch 3: [1-9][0-9]* queued jobs canceled" <<<"$OUT")" = 3 ]'
for b in board-a board-b board-c; do
  on_board "$b"
  wait_until $((60 * SLOW)) eval 'http GET /v1/batches/3 && json_true "j[\"counts\"][\"queued\"] + j[\"counts\"][\"running\"] == 0"'
  check "$b: batch 3 has nothing queued or running after the cancel" \
    json_true 'j["counts"]["queued"] == 0 and j["counts"]["running"] == 0 and j["counts"]["canceled"] > 0'
done
jp fleet progress
expect "progress after the cancel: exit 1 naming the canceled jobs" 1 \
  err "board-a: batch 3: " err " canceled"

# ---- auth: board-b restarted with a token ----
stop_board board-b
printf 'fleet-test-token\n' >"$TMP/b.token"
chmod 600 "$TMP/b.token"
start_board board-b --token-file "$TMP/b.token" || bail "board-b restarts with a token"
printf '{"configs": [{"kernel": "linear", "batch": 9, "in": 8, "out": 8}]}\n' >"$TMP/one.json"
{
  echo "$(board_url board-a) board-a"
  echo "$(board_url board-b) board-b"
} >"$TMP/hosts-auth"
jp --hosts "$TMP/hosts-auth" fleet submit --manifest "$TMP/auth1.json" "$TMP/one.json"
expect "a board with a token, none in the hosts file: exit 1, 401 with the hint" 1 \
  out "board-b  NOT SUBMITTED: POST /v1/jobs: 401 Unauthorized" out "token file" \
  out "board-a  batch 4: 1 jobs queued"
mkdir -p "$TMP/shelf"
cp "$TMP/b.token" "$TMP/shelf/b.token"
{
  echo "$(board_url board-a) board-a"
  echo "$(board_url board-b) board-b b.token"
} >"$TMP/shelf/hosts"
jp --hosts "$TMP/shelf/hosts" fleet submit --manifest "$TMP/auth2.json" "$TMP/one.json"
expect "the token file in the hosts line (relative to the hosts file): exit 0" 0 \
  out "board-b  batch " out "board-a  batch 5: 0 jobs queued, 1 duplicates skipped"
check "the manifest keeps the token file's path, not the token" \
  eval 'grep -q "\"token_file\": \"$TMP/shelf/b.token\"" "$TMP/auth2.json" && ! grep -q fleet-test-token "$TMP/auth2.json"'
jp fleet cancel --manifest "$TMP/auth2.json"
expect "cancel reads the token file named in the manifest: exit 0" 0 out "board-b  batch "

# ---- a stopped board ----
stop_board board-b
jp fleet status
expect "status with board-b stopped: exit 1, its row says UNREACHABLE" 1 \
  out "board-a" out "board-c" out "3 boards: 2 answering, 1 unreachable"
check "... board-b's row: UNREACHABLE with the reason" \
  eval 'grep "^board-b" <<<"$OUT" | grep -q "UNREACHABLE.*unreachable: "'
jp fleet submit --manifest "$TMP/down.json" "$TMP/grid.json"
expect "submit with board-b stopped: exit 1, queued on the others" 1 \
  out "board-b  NOT SUBMITTED: GET /v1/device: unreachable" out "board-a  batch " \
  out "board-c  batch " out "manifest $TMP/down.json: 2 batches on 2 of 3 boards"
check "the manifest records why board-b has no batch" \
  json_true 'j["boards"][1]["batch_id"] is None and "unreachable" in j["boards"][1]["error"]' \
  "$(cat "$TMP/down.json")"
jp fleet progress --wait --manifest "$TMP/down.json"
expect "progress --wait with a board that has no batch: the others finish, exit 1" 1 \
  out "fleet finished: " err "board-b: no batch (not submitted: "
jp fleet progress --manifest "$TMP/auth2.json"
expect "progress with a board of the manifest stopped: exit 1 naming it" 1 \
  err "board-b: unreachable: "

# a board that accepts connections and never answers: one --timeout, then a row
cat >"$TMP/silent.py" <<'EOF'
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
open(sys.argv[1], "w").write("%d\n" % s.getsockname()[1])
conns = []
while True:
    c, _ = s.accept()
    conns.append(c)  # read nothing, answer nothing
EOF
"$PY" "$TMP/silent.py" "$TMP/silent.port" &
wait_until $((10 * SLOW)) test -s "$TMP/silent.port"
{
  echo "$(board_url board-a) board-a"
  echo "127.0.0.1:$(cat "$TMP/silent.port") silent"
} >"$TMP/hosts-silent"
jp --hosts "$TMP/hosts-silent" --timeout 2 fleet status
expect "status with a board that never answers: exit 1 after the time-out, its row says so" 1 \
  out "2 boards: 1 answering, 1 unreachable" out "no answer: "
check "... the silent board's row names the time-out" \
  eval 'grep "^silent" <<<"$OUT" | grep -qi "timed out"'

stop_board board-a
stop_board board-c
finish
