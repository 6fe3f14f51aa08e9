#!/usr/bin/env bash
# test_fleet_pull.sh - `jetprof fleet pull` and `jetprof train --offline` against
# three real jetprofd instances on loopback: a1 and a2 with the same device
# fingerprint (identical boards), b with another (a different sensor.period_us),
# checked with GET /v1/device. Each measures a small dataset (random sweeps,
# POST /v1/jobs); the row counts are checked against the boards' own databases.
#   - pull: the merged file holds every board's measurements once (uid unique),
#     with board and device columns, rail readings, devices, boards, batches; a
#     second pull adds nothing; after b was offline (the pull fails for it and
#     merges the others), a later pull adds only b's new rows;
#   - auth_reads: b refuses the pull without its token (the hosts file's token
#     file then lets it through);
#   - interruption: a board serving a large export (48 MiB of ballast in its
#     database, downloaded at --limit-rate 2M) is SIGKILLed in the middle of the
#     pull: it is reported as failed, the others are merged, PRAGMA
#     integrity_check says ok and nothing is duplicated; the client stopped with
#     SIGTERM mid-download exits 143, leaves the file as it was and no temporary
#     file; a tiny fake server (python3) answers with a truncated body, a damaged
#     SQLite file and a 401: each board failed with its reason;
#   - offline training: on the merged file for fingerprint A, rows of a1 and a2
#     together; from a pull of a1 alone and from a1's own export, the models
#     (blobs, training hashes, metrics) are those a1 trains itself with POST
#     /v1/models/train from the same data and options, and `jetprof estimate
#     --offline` of tests/fixtures/graphs/mlp.json with them answers exactly what
#     a1's POST /v1/estimate answers; usage and data errors exit 2 and 1.
. "$(dirname "$0")/lib.sh"

GRAPH=tests/fixtures/graphs/mlp.json
ROWS=24 # per kernel type and board: TRAIN_MIN_ROWS (20) and a few spare
set_measure measure.repeats=1
set_measure measure.min_window_ms=10
set_measure measure.min_samples=5
set_measure measure.idle_ms=10
set_measure measure.warmup_ms=2
set_measure measure.warmup_launches=2
set_measure measure.settle_ms=0
# small models, so training takes seconds under the sanitizers; the offline
# training is given the same options
TRAIN_FLAGS=(--set predict.train_rounds=30 --set predict.train_ensemble=3)
OFFLINE_OPTS=(--rounds 30 --ensemble 3)
TOKEN=fleet-pull-test-token-0123456789
printf '%s\n' "$TOKEN" >"$TMP/token"
chmod 600 "$TMP/token"

declare -A PID URL
BOARDS=()
F=$TMP/fleet.sqlite
H=$TMP/hosts

kill_boards() {
  local n
  for n in "${BOARDS[@]}"; do
    if [ -n "${PID[$n]:-}" ] && kill -0 "${PID[$n]}" 2>/dev/null; then
      kill -KILL "${PID[$n]}" 2>/dev/null
      wait "${PID[$n]}" 2>/dev/null
    fi
  done
}
trap 'kill_boards; cleanup' EXIT

# start_board NAME [FLAGS...]: a jetprofd with $TMP/NAME.db and $TMP/NAME.log.
start_board() {
  local name=$1
  shift
  # shellcheck disable=SC2034  # DB and LOG are lib.sh's start_daemon's
  DB="$TMP/$name.db"
  LOG="$TMP/$name.log"
  start_daemon "${TRAIN_FLAGS[@]}" "$@" || return 1
  PID[$name]=$DAEMON_PID
  URL[$name]=$BASE
  DAEMON_PID=""
  case " ${BOARDS[*]} " in *" $name "*) ;; *) BOARDS+=("$name") ;; esac
}

stop_board() {
  DAEMON_PID=${PID[$1]}
  LOG="$TMP/$1.log"
  stop_daemon "jetprofd $1 stops on SIGTERM with exit status 0"
  PID[$1]=""
}

kill_board() {
  kill -KILL "${PID[$1]}" 2>/dev/null
  wait "${PID[$1]}" 2>/dev/null
  echo "=== $(date -u +%FT%TZ) killed with SIGKILL" >>"$TMP/$1.log"
  PID[$1]=""
}

# on NAME: lib.sh's http and log helpers talk to that board.
on() {
  BASE=${URL[$1]}
  # shellcheck disable=SC2034  # read by lib.sh's not_ok
  LOG="$TMP/$1.log"
}

# jp ARGS...: runs the client; sets RC, OUT, ERR.
jp() {
  timeout $((300 * SLOW)) "$JETPROF" "$@" >"$TMP/out" 2>"$TMP/err"
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
    STATUS=""
    not_ok "$name" "${why[@]}" "stdout: $(head -c 600 <<<"$OUT" | tr '\n' ' ')" \
      "stderr: $(head -c 800 <<<"$ERR" | tr '\n' ' ')"
  fi
}

# sq FILE SQL: the first column of the first row (read-only).
sq() {
  "$PY" -c 'import sqlite3, sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
r = c.execute(sys.argv[2]).fetchone()
print("" if r is None else r[0])' "$1" "$2"
}

# report_true EXPR: a Python expression over j = the last pull's --json report.
report_true() { json_true "$1" "$OUT"; }

# same_json NAME FILE_A FILE_B: the two files parse to equal JSON (exact floats).
same_json() {
  local name=$1
  if "$PY" - "$2" "$3" <<'EOF'; then ok "$name"; else not_ok "$name"; fi
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
if a == b:
    sys.exit(0)
def diff(x, y, path="$"):
    if type(x) != type(y) or not isinstance(x, (dict, list)):
        if x != y:
            print("#   first difference at %s: %r != %r" % (path, x, y))
            return True
        return False
    if isinstance(x, dict):
        if x.keys() != y.keys():
            print("#   keys differ at %s: %s vs %s" % (path, sorted(x), sorted(y)))
            return True
        return any(diff(x[k], y[k], "%s.%s" % (path, k)) for k in x)
    if len(x) != len(y):
        print("#   lengths differ at %s: %d vs %d" % (path, len(x), len(y)))
        return True
    return any(diff(u, v, "%s[%d]" % (path, i)) for i, (u, v) in enumerate(zip(x, y)))
diff(a, b)
sys.exit(1)
EOF
}

sweep_params() {
  case "$1" in
    linear | linear_relu | linear_gelu | linear_bn | linear_bn_relu)
      echo '{"batch": [1, 128], "in": [8, 256], "out": [8, 256]}' ;;
    layernorm | softmax | add | add_relu) echo '{"rows": [1, 512], "cols": [8, 512]}' ;;
    *) return 1 ;;
  esac
}

# queue NAME KERNEL COUNT SEED [CURL ARGS]: a random sweep on a board; its batch id in BATCH.
queue() {
  on "$1"
  local params
  params=$(sweep_params "$2") || bail "sweep ranges for kernel type $2"
  http POST /v1/jobs "{\"sweep\": {\"type\": \"random\", \"kernel\": \"$2\", \"count\": $3, \"seed\": $4, \"params\": $params}}" "${@:5}"
  [ "$STATUS" = 201 ] || bail "POST /v1/jobs on $1 ($2 x $3): 201"
  BATCH=$(json_get 'j["batch_id"]')
}

# batch_done ID: the batch has nothing queued or running (with AUTH's header).
batch_done() {
  local out
  out=$(curl -s --max-time $((30 * SLOW)) "${AUTH[@]}" "$BASE/v1/batches/$1")
  json_true 'j["counts"]["queued"] == 0 and j["counts"]["running"] == 0' "$out"
}
AUTH=()

# wait_batches NAME BATCH...: every batch of the board ended.
wait_batches() {
  on "$1"
  shift
  local b all=0
  for b in "$@"; do wait_until $((240 * SLOW)) batch_done "$b" || all=1; done
  return $all
}

# hosts LINE...: the hosts file.
hosts() {
  { echo "# test_fleet_pull.sh: URL NAME [TOKEN_FILE]"; printf '%s\n' "$@"; } >"$H"
}

board_count() { sq "$TMP/$1.db" "SELECT COUNT(*) FROM measurements"; }
board_rails() { sq "$TMP/$1.db" "SELECT COUNT(*) FROM rail_readings"; }

fingerprint_of() {
  on "$1"
  http GET /v1/device
  json_get 'j["device"]["fingerprint"] if "device" in j else j["fingerprint"]'
}

[ -f "$GRAPH" ] || bail "the fixture graph $GRAPH exists"

# ---- usage errors, no board needed ----
hosts "http://127.0.0.1:9 nowhere"
jp --hosts "$H" fleet pull
expect "fleet pull without -o: exit 2 naming -o" 2 err "-o FILE"
jp --hosts "$H" fleet pull -o "$F" --board nosuch
expect "fleet pull --board with a name the hosts file lacks: exit 2" 2 err "no board named 'nosuch'"
jp --hosts "$H" fleet pull -o "$F" --limit-rate fast
expect "fleet pull --limit-rate with a bad rate: exit 2" 2 err "--limit-rate"
jp --hosts "$H" fleet pull -o "$F" --frobnicate
expect "fleet pull with an unknown option: exit 2" 2 err "--frobnicate"
jp --hosts "$H" --timeout 5 fleet pull -o "$F" --json
expect "fleet pull from a board that is not there: exit 1, the board failed" 1 err "0 of 1 board"
check "... reported unreachable in the JSON report" \
  json_true 'j["boards"][0]["ok"] is False and "unreachable" in j["boards"][0]["error"] and j["failed"] == 1' "$OUT"
check "... and the merged file exists, empty and consistent" \
  eval '[ "$(sq "$F" "PRAGMA integrity_check")" = ok ] && [ "$(sq "$F" "SELECT COUNT(*) FROM measurements")" = 0 ]'
printf 'not a database, just text\n' >"$TMP/text.sqlite"
jp --hosts "$H" fleet pull -o "$TMP/text.sqlite"
expect "fleet pull into a file that is not SQLite: exit 1" 1 err "$TMP/text.sqlite"

# ---- three boards ----
start_board a1 || bail "jetprofd a1 starts"
start_board a2 || bail "jetprofd a2 starts"
start_board b --set sensor.period_us=500 || bail "jetprofd b starts (sensor.period_us=500)"
ok "three jetprofd instances started"
FP_A=$(fingerprint_of a1)
FP_A2=$(fingerprint_of a2)
FP_B=$(fingerprint_of b)
echo "# fingerprints: a1 $FP_A, a2 $FP_A2, b $FP_B"
check "a1 and a2 have the same device fingerprint (GET /v1/device)" \
  eval '[ ${#FP_A} = 64 ] && [ "$FP_A" = "$FP_A2" ]'
check "b (another sampling period) has another fingerprint" eval '[ ${#FP_B} = 64 ] && [ "$FP_B" != "$FP_A" ]'

# the kernel types mlp.json needs (the 409 of an estimate without models)
on a1
http POST /v1/estimate "$(cat "$GRAPH")"
KERNELS=$(json_get '" ".join(j["kernels"])')
[ -n "$KERNELS" ] || bail "POST /v1/estimate without models names the kernel types"
echo "# $GRAPH needs: $KERNELS"
K1=${KERNELS%% *}

A1_BATCHES=()
seed=21
for k in $KERNELS; do
  queue a1 "$k" "$ROWS" "$seed"
  A1_BATCHES+=("$BATCH")
  seed=$((seed + 1))
done
queue a2 "$K1" "$ROWS" 31
A2_BATCH=$BATCH
queue b "$K1" 22 41
B_BATCH=$BATCH
wait_batches a1 "${A1_BATCHES[@]}" && wait_batches a2 "$A2_BATCH" && wait_batches b "$B_BATCH"
check "the datasets are measured (a1: $KERNELS x $ROWS, a2: $K1 x $ROWS, b: $K1 x 22)" [ $? = 0 ]
N_A1=$(board_count a1)
N_A2=$(board_count a2)
N_B=$(board_count b)
R_ALL=$(($(board_rails a1) + $(board_rails a2) + $(board_rails b)))
echo "# measurements: a1 $N_A1, a2 $N_A2, b $N_B; rail readings $R_ALL"

# ---- pull twice ----
rm -f "$F"
hosts "${URL[a1]} a1" "${URL[a2]} a2  # the same device type as a1" "${URL[b]} b"
jp --hosts "$H" fleet pull -o "$F" --json
expect "first pull of three boards: exit 0" 0 err "$((N_A1 + N_A2 + N_B)) new measurements from 3 of 3 boards"
check "the report: every board ok, new = what each board has" \
  report_true 'all(b["ok"] for b in j["boards"]) and [b["new_measurements"] for b in j["boards"]] == ['"$N_A1, $N_A2, $N_B"'] and [b["measurements_on_board"] for b in j["boards"]] == ['"$N_A1, $N_A2, $N_B"'] and j["measurements"] == '"$((N_A1 + N_A2 + N_B))"
check "merged measurements = the sum of the boards' ($((N_A1 + N_A2 + N_B)))" \
  [ "$(sq "$F" "SELECT COUNT(*) FROM measurements")" = $((N_A1 + N_A2 + N_B)) ]
check "every uid once, and each board's rows under its name" \
  eval '[ "$(sq "$F" "SELECT COUNT(DISTINCT uid) FROM measurements")" = $((N_A1 + N_A2 + N_B)) ] &&
        [ "$(sq "$F" "SELECT COUNT(*) FROM measurements WHERE board = '"'a2'"'")" = "$N_A2" ]'
check "merged rail readings = the sum of the boards' ($R_ALL)" \
  [ "$(sq "$F" "SELECT COUNT(*) FROM rail_readings")" = "$R_ALL" ]
check "the device column: a1's and a2's rows share fingerprint A and one devices row, b's has B" \
  eval '[ "$(sq "$F" "SELECT COUNT(*) FROM measurements WHERE device = '"'$FP_A'"'")" = $((N_A1 + N_A2)) ] &&
        [ "$(sq "$F" "SELECT COUNT(DISTINCT device_id) FROM measurements WHERE board IN ('"'a1','a2'"')")" = 1 ] &&
        [ "$(sq "$F" "SELECT COUNT(*) FROM measurements m JOIN devices d ON d.id = m.device_id WHERE d.fingerprint = '"'$FP_B'"' AND m.board = '"'b'"'")" = "$N_B" ]'
check "devices: 2 (one per fingerprint); board_devices: 3; boards: 3 with their URLs" \
  eval '[ "$(sq "$F" "SELECT COUNT(*) FROM devices")" = 2 ] && [ "$(sq "$F" "SELECT COUNT(*) FROM board_devices")" = 3 ] &&
        [ "$(sq "$F" "SELECT url FROM boards WHERE name = '"'b'"'")" = "${URL[b]}" ]'
check "batches: every board's, and each measurement linked to its batch" \
  eval '[ "$(sq "$F" "SELECT COUNT(*) FROM batches")" = $((${#A1_BATCHES[@]} + 2)) ] &&
        [ "$(sq "$F" "SELECT COUNT(*) FROM measurements WHERE batch_id IS NULL")" = 0 ]'
check "each rail reading belongs to a merged measurement of its board's uid" \
  eval '[ "$(sq "$F" "SELECT COUNT(*) FROM rail_readings r LEFT JOIN measurements m ON m.id = r.measurement_id WHERE m.id IS NULL")" = 0 ]'
check "PRAGMA integrity_check: ok" [ "$(sq "$F" "PRAGMA integrity_check")" = ok ]
check "no temporary download is left beside the file" eval '[ -z "$(ls "$F".pull-* 2>/dev/null)" ]'

jp --hosts "$H" fleet pull -o "$F" --json
expect "second pull: exit 0, nothing new" 0 err "0 new measurements from 3 of 3 boards"
check "... 0 new per board, counts unchanged" \
  eval 'report_true '"'"'all(b["ok"] and b["new_measurements"] == 0 and b["new_rail_readings"] == 0 for b in j["boards"])'"'"' &&
        [ "$(sq "$F" "SELECT COUNT(*) FROM measurements")" = $((N_A1 + N_A2 + N_B)) ] &&
        [ "$(sq "$F" "SELECT COUNT(*) FROM rail_readings")" = "$R_ALL" ]'
jp --hosts "$H" fleet pull -o "$F"
expect "the table report: one line per board" 0 out "BOARD" out "a1 " out "a2 " out "b "

jp --hosts "$H" fleet pull -o "$TMP/a1.db"
expect "fleet pull into a board's own database: refused, exit 1" 1 err "not one 'jetprof fleet pull' made"

# ---- whole graphs: measured on a2, then the same graph on b ----
G='{"name": "g", "batch": 4, "dtype": "fp32", "inputs": [{"name": "x", "shape": [8]}], "nodes": [{"name": "a", "op": "linear", "inputs": ["x"], "out": 8}, {"name": "b", "op": "linear", "inputs": ["x"], "out": 8}]}'
# measure_graph NAME: POST /v1/graphs/measure of G on the board, its batch waited for.
measure_graph() {
  on "$1"
  http POST /v1/graphs/measure "{\"graph\": $G}"
  [ "$STATUS" = 202 ] || bail "POST /v1/graphs/measure on $1: 202"
  wait_batches "$1" "$(json_get 'j["batch_id"]')" || bail "the graph measured on $1"
}
# graph_uid NAME: the uid of the board's graph measurement (kernel 'graph', linked).
graph_uid() {
  sq "$TMP/$1.db" "SELECT m.uid FROM measurements m JOIN graph_measurements l ON l.measurement_id = m.id WHERE m.kernel = 'graph'"
}
# graph_counts FILE: "GRAPHS LINKS" of a fleet file.
graph_counts() {
  sq "$1" "SELECT (SELECT COUNT(*) FROM graphs) || ' ' || (SELECT COUNT(*) FROM graph_measurements)"
}
# linked FILE BOARD UID HASH: BOARD's measurement UID (kernel 'graph') is linked to
# the graph HASH with streams 1.
linked() {
  [ "$(sq "$1" "SELECT COUNT(*) FROM graph_measurements l JOIN measurements m ON m.id = l.measurement_id JOIN graphs g ON g.id = l.graph_id WHERE m.board = '$2' AND m.uid = '$3' AND m.kernel = 'graph' AND l.streams = 1 AND g.hash = '$4'")" = 1 ]
}
# a fleet file of schema version 1 (no graph tables), upgraded by a pull below
cp "$F" "$TMP/fleet-v1.sqlite" || bail "a copy of the fleet file"
"$PY" - "$TMP/fleet-v1.sqlite" <<'EOF' || bail "the copy made a version 1 fleet file"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript("DROP TABLE graph_measurements; DROP TABLE graphs; PRAGMA user_version = 1;")
EOF
measure_graph a2
N_A2=$(board_count a2)
UID_A2=$(graph_uid a2)
G_HASH=$(sq "$TMP/a2.db" "SELECT hash FROM graphs")
check "a2 measured the graph: a linked measurement (kernel 'graph', streams 1 on the CPU)" \
  eval '[ -n "$UID_A2" ] && [ ${#G_HASH} = 64 ] && [ "$(sq "$TMP/a2.db" "SELECT streams FROM graph_measurements")" = 1 ]'
jp --hosts "$H" fleet pull -o "$F" --json
expect "pull after a2 measured a graph: exit 0, 1 new measurement" 0 err "1 new measurement from 3 of 3 boards"
check "... the graph once, with a2's hash and columns, brought by a2" \
  eval '[ "$(graph_counts "$F")" = "1 1" ] &&
        [ "$(sq "$F" "SELECT first_board || '"' '"' || hash || '"' '"' || name || '"' '"' || kernels || '"' '"' || graph_json FROM graphs")" = \
          "$(sq "$TMP/a2.db" "SELECT '"'a2 '"' || hash || '"' '"' || name || '"' '"' || kernels || '"' '"' || graph_json FROM graphs")" ]'
check "... the link: the merged measurement of a2's uid (kernel 'graph'), streams 1" \
  linked "$F" a2 "$UID_A2" "$G_HASH"
jp --hosts "$H" fleet pull -o "$F" --json
expect "pull again: exit 0, nothing new" 0 err "0 new measurements from 3 of 3 boards"
check "... still one graph and one link" [ "$(graph_counts "$F")" = "1 1" ]
measure_graph b
N_B=$(board_count b)
UID_B=$(graph_uid b)
check "b measured the same graph (the same hash, another uid)" \
  eval '[ -n "$UID_B" ] && [ "$UID_B" != "$UID_A2" ] && [ "$(sq "$TMP/b.db" "SELECT hash FROM graphs")" = "$G_HASH" ]'
jp --hosts "$H" fleet pull -o "$F" --json
expect "pull after b measured the same graph: exit 0, 1 new measurement" 0 err "1 new measurement from 3 of 3 boards"
check "... still one graph (brought by a2), two links to it: a2's and b's" \
  eval '[ "$(graph_counts "$F")" = "1 2" ] && [ "$(sq "$F" "SELECT first_board FROM graphs")" = a2 ] &&
        linked "$F" a2 "$UID_A2" "$G_HASH"'
check "... b's measurement linked to the same graph" linked "$F" b "$UID_B" "$G_HASH"
check "... every link to a merged measurement, PRAGMA integrity_check ok" \
  eval '[ "$(sq "$F" "SELECT COUNT(*) FROM graph_measurements l LEFT JOIN measurements m ON m.id = l.measurement_id WHERE m.id IS NULL")" = 0 ] &&
        [ "$(sq "$F" "PRAGMA integrity_check")" = ok ]'
jp --hosts "$H" fleet pull -o "$TMP/fleet-v1.sqlite"
expect "pull into a version 1 fleet file: exit 0, the 2 graph measurements new there" 0 \
  err "2 new measurements from 3 of 3 boards"
check "... upgraded in place: user_version 2, the graph once, both links" \
  eval '[ "$(sq "$TMP/fleet-v1.sqlite" "PRAGMA user_version")" = 2 ] && [ "$(graph_counts "$TMP/fleet-v1.sqlite")" = "1 2" ] &&
        linked "$TMP/fleet-v1.sqlite" a2 "$UID_A2" "$G_HASH" && linked "$TMP/fleet-v1.sqlite" b "$UID_B" "$G_HASH"'

# ---- b offline, then back with auth on reads ----
stop_board b
queue a2 "$K1" 3 51
wait_batches a2 "$BATCH" || bail "a2's 3 new measurements"
N_A2=$(board_count a2)
jp --hosts "$H" --timeout 10 fleet pull -o "$F" --json
expect "pull with b offline: exit 1" 1 err "3 new measurements from 2 of 3 boards"
check "... b failed (unreachable), a2's 3 new rows merged, a1 adds none" \
  report_true 'j["boards"][2]["ok"] is False and "unreachable" in j["boards"][2]["error"] and [b["new_measurements"] for b in j["boards"][:2]] == [0, 3]'
check "... integrity_check ok, no duplicates" \
  eval '[ "$(sq "$F" "PRAGMA integrity_check")" = ok ] && [ "$(sq "$F" "SELECT COUNT(*) FROM measurements")" = $((N_A1 + N_A2 + N_B)) ]'

start_board b --set sensor.period_us=500 --token-file "$TMP/token" --set server.auth_reads=true ||
  bail "jetprofd b starts again, token required for reads"
AUTH=(-H "Authorization: Bearer $TOKEN")
queue b "$K1" 2 61 -H "Authorization: Bearer $TOKEN"
wait_batches b "$BATCH" || bail "b's 2 new measurements"
AUTH=()
N_B=$(board_count b)
hosts "${URL[a1]} a1" "${URL[a2]} a2" "${URL[b]} b"
jp --hosts "$H" fleet pull -o "$F" --json
expect "pull from b without its token (auth_reads): exit 1" 1
check "... b failed with the 401, the others merged" \
  report_true 'j["boards"][2]["ok"] is False and "401" in j["boards"][2]["error"] and j["boards"][0]["ok"] and j["boards"][1]["ok"]'
hosts "${URL[a1]} a1" "${URL[a2]} a2" "${URL[b]} b $TMP/token"
jp --hosts "$H" fleet pull -o "$F" --json
expect "pull with b's token file in the hosts file: exit 0" 0 err "2 new measurements from 3 of 3 boards"
check "... only b's 2 new rows were added (after it was offline)" \
  eval 'report_true '"'"'[b["new_measurements"] for b in j["boards"]] == [0, 0, 2]'"'"' &&
        [ "$(sq "$F" "SELECT COUNT(*) FROM measurements")" = $((N_A1 + N_A2 + N_B)) ] &&
        [ "$(sq "$F" "SELECT COUNT(*) FROM measurements WHERE board = '"'b'"'")" = "$N_B" ]'

# ---- a board killed in the middle of a pull ----
stop_board b
"$PY" - "$TMP/b.db" <<'EOF' || bail "48 MiB of ballast in b's database"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("CREATE TABLE ballast (x BLOB)")
for _ in range(48):
    c.execute("INSERT INTO ballast VALUES (randomblob(1048576))")
c.commit()
EOF
start_board b --set sensor.period_us=500 --token-file "$TMP/token" --set server.auth_reads=true ||
  bail "jetprofd b starts with a large database"
hosts "${URL[a1]} a1" "${URL[a2]} a2" "${URL[b]} b $TMP/token"
SUM_BEFORE=$(sq "$F" "SELECT COUNT(*) FROM measurements")
SHA_BEFORE=$(sha256sum "$F" | cut -d' ' -f1)
partial_download() {
  local f
  for f in "$F".pull-*; do
    [ -f "$f" ] && [ "$(stat -c %s "$f")" -ge 1048576 ] && return 0
  done
  return 1
}

# the client itself stopped (SIGTERM) mid-download
"$JETPROF" --hosts "$H" fleet pull -o "$F" --limit-rate 2M >"$TMP/out" 2>"$TMP/err" &
PULL=$!
wait_until $((60 * SLOW)) partial_download
check "a pull is downloading b's large snapshot" partial_download
kill -TERM "$PULL"
wait "$PULL"
RC=$?
OUT=$(cat "$TMP/out")
ERR=$(cat "$TMP/err")
expect "the pull stopped by SIGTERM mid-download: exit 143" 143
check "... the merged file is as it was, no temporary file left" \
  eval '[ "$(sha256sum "$F" | cut -d" " -f1)" = "$SHA_BEFORE" ] && [ -z "$(ls "$F".pull-* 2>/dev/null)" ]'

# the board killed mid-download
"$JETPROF" --hosts "$H" fleet pull -o "$F" --limit-rate 2M --json >"$TMP/out" 2>"$TMP/err" &
PULL=$!
wait_until $((60 * SLOW)) partial_download
check "a pull is downloading b's large snapshot again" partial_download
kill_board b
wait "$PULL"
RC=$?
OUT=$(cat "$TMP/out")
ERR=$(cat "$TMP/err")
expect "b SIGKILLed in the middle of the pull: exit 1" 1 err "from 2 of 3 boards"
check "... b reported failed with the transfer cut off, a1 and a2 merged" \
  report_true 'j["boards"][2]["ok"] is False and "no answer" in j["boards"][2]["error"] and 0 < j["boards"][2]["bytes"] < 48 * 1048576 and j["boards"][0]["ok"] and j["boards"][1]["ok"]'
check "... PRAGMA integrity_check ok, the same rows, no duplicates, no temporary file" \
  eval '[ "$(sq "$F" "PRAGMA integrity_check")" = ok ] &&
        [ "$(sq "$F" "SELECT COUNT(*) FROM measurements")" = "$SUM_BEFORE" ] &&
        [ "$(sq "$F" "SELECT COUNT(DISTINCT uid) FROM measurements")" = "$SUM_BEFORE" ] &&
        [ -z "$(ls "$F".pull-* 2>/dev/null)" ]'
check "... the ballast table was not merged" \
  eval '[ "$(sq "$F" "SELECT COUNT(*) FROM sqlite_schema WHERE name = '"'ballast'"'")" = 0 ]'

# ---- broken answers from a fake server ----
jp --host "${URL[a1]}" export --format sqlite -o "$TMP/a1-export.sqlite"
expect "a1's export (jetprof export --format sqlite)" 0
# from it, snapshots served whole: an older board (schema 2, no graph tables), a
# graph link whose graph the board lacks, a graphs table without its links table
"$PY" - "$TMP/a1-export.sqlite" "$TMP" <<'EOF' || bail "the schema2, dangling and nolinks snapshots"
import shutil, sqlite3, sys
for name, sql in (
        ("schema2", "DROP TABLE graph_measurements; DROP TABLE graphs; PRAGMA user_version = 2;"),
        ("dangling", "INSERT INTO graph_measurements (measurement_id, graph_id, streams)"
                     " SELECT MIN(id), 999, 1 FROM measurements;"),
        ("nolinks", "DROP TABLE graph_measurements;")):
    path = "%s/%s.sqlite" % (sys.argv[2], name)
    shutil.copyfile(sys.argv[1], path)
    c = sqlite3.connect(path)
    c.executescript(sql)
    c.close()
EOF
cat >"$TMP/fake.py" <<'EOF'
import http.server, sys
snap = open(sys.argv[1], "rb").read()
whole = {"/%s/v1/export.sqlite" % n: "%s/%s.sqlite" % (sys.argv[3], n)
         for n in ("schema2", "dangling", "nolinks")}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path in whole:
            body = open(whole[self.path], "rb").read()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.sqlite3")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/trunc/v1/export.sqlite":  # the connection ends half-way
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.sqlite3")
            self.send_header("Content-Length", str(len(snap)))
            self.end_headers()
            self.wfile.write(snap[: len(snap) // 2])
        elif self.path == "/damaged/v1/export.sqlite":  # whole, but pages overwritten
            body = snap[:8192] + b"\xa5" * (len(snap) - 8192)
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.sqlite3")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            body = b'{"type":"about:blank","title":"Unauthorized","status":401,"detail":"GET /v1/export.sqlite needs the token"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    def log_message(self, *args):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[2], "w").write("%d\n" % srv.server_address[1])
srv.serve_forever()
EOF
"$PY" "$TMP/fake.py" "$TMP/a1-export.sqlite" "$TMP/fake.port" "$TMP" &
FAKE=$!
wait_until $((20 * SLOW)) test -s "$TMP/fake.port"
FP=$(cat "$TMP/fake.port")
# graph tables: one transaction per board holds for them too, and an older board merges
N_EXP=$(sq "$TMP/a1-export.sqlite" "SELECT COUNT(*) FROM measurements")
hosts "http://127.0.0.1:$FP/dangling dangling" "http://127.0.0.1:$FP/schema2 schema2" \
  "http://127.0.0.1:$FP/nolinks nolinks"
jp --hosts "$H" fleet pull -o "$TMP/graphs.sqlite" --json
expect "pull with a dangling graph link, a schema 2 board and no links table: exit 1" 1 \
  err "$N_EXP new measurements from 1 of 3 boards"
check "... dangling: failed in its graph_measurements step, nothing of it written" \
  eval 'report_true '"'"'j["boards"][0]["ok"] is False and "graph_measurements" in j["boards"][0]["error"] and "nothing of this board was written" in j["boards"][0]["error"]'"'"' &&
        [ "$(sq "$TMP/graphs.sqlite" "SELECT group_concat(name) FROM boards")" = schema2 ] &&
        [ "$(sq "$TMP/graphs.sqlite" "SELECT COUNT(*) FROM measurements WHERE board = '"'schema2'"'")" = "$N_EXP" ]'
check "... schema 2 (no graph tables): merged, its schema_version 2, no graph rows" \
  eval 'report_true '"'"'j["boards"][1]["ok"] and j["boards"][1]["new_measurements"] == '"$N_EXP"''"'"' &&
        [ "$(sq "$TMP/graphs.sqlite" "SELECT schema_version FROM boards")" = 2 ] &&
        [ "$(graph_counts "$TMP/graphs.sqlite")" = "0 0" ] && [ "$(sq "$TMP/graphs.sqlite" "PRAGMA integrity_check")" = ok ]'
check "... a graphs table without graph_measurements: refused as not a jetprofd database" \
  report_true 'j["boards"][2]["ok"] is False and "not a jetprofd database: table graph_measurements" in j["boards"][2]["error"]'
hosts "${URL[a1]} a1" "http://127.0.0.1:$FP/trunc trunc" "http://127.0.0.1:$FP/damaged damaged" \
  "http://127.0.0.1:$FP/denied denied"
jp --hosts "$H" fleet pull -o "$F" --json
expect "pull with a truncated, a damaged and a refused answer: exit 1" 1 err "from 1 of 4 boards"
check "... truncated: failed, the transfer cut off" \
  report_true 'j["boards"][1]["ok"] is False and "no answer" in j["boards"][1]["error"]'
check "... damaged: failed, the snapshot refused" \
  report_true 'j["boards"][2]["ok"] is False and "snapshot" in j["boards"][2]["error"]'
check "... refused: failed with the 401 and its detail" \
  report_true 'j["boards"][3]["ok"] is False and "401" in j["boards"][3]["error"] and "needs the token" in j["boards"][3]["error"]'
check "... a1 merged (nothing new), the file consistent, no new board rows" \
  eval 'report_true '"'"'j["boards"][0]["ok"] and j["boards"][0]["new_measurements"] == 0'"'"' &&
        [ "$(sq "$F" "PRAGMA integrity_check")" = ok ] &&
        [ "$(sq "$F" "SELECT COUNT(*) FROM measurements")" = "$SUM_BEFORE" ] &&
        [ "$(sq "$F" "SELECT COUNT(*) FROM boards")" = 3 ]'
kill "$FAKE" 2>/dev/null
wait "$FAKE" 2>/dev/null

# ---- offline training ----
# one model per device type from identical boards: fingerprint A's rows of a1 and a2
USABLE_A=$(sq "$F" "SELECT COUNT(*) FROM measurements WHERE device = '$FP_A' AND kernel = '$K1' AND latency_us > 0")
jp train --offline "$F" --device "$FP_A" -o "$TMP/fleet-A.json" --quality any "${OFFLINE_OPTS[@]}" "$K1" --json
expect "train --offline on the merged file for fingerprint A: exit 0" 0 err "wrote $TMP/fleet-A.json"
check "... the $K1 models learnt from a1's and a2's rows together ($USABLE_A)" \
  json_true 'all(m["metrics"]["train_rows"] + m["metrics"]["test_rows"] == '"$USABLE_A"' for m in j["models"] if m["target"] == "latency_us") and len(j["models"]) >= 2' "$OUT"
jp train --offline "$F" --device "${FP_B:0:12}" -o - --quality any "${OFFLINE_OPTS[@]}"
expect "train --offline for fingerprint B by a 12-character prefix, to stdout: exit 0" 0 out '"format":"jetprof-models/1"'
check "... a bundle for device B" json_true 'j["device"]["fingerprint"] == "'"$FP_B"'" and len(j["models"]) >= 2' "$OUT"

# the same data on a board and offline: a pull of a1 alone
jp --hosts "$H" fleet pull -o "$TMP/a1-only.sqlite" --board a1
expect "pull of a1 alone (--board a1): exit 0" 0
on a1
http POST /v1/models/train '{"quality": "any"}'
check "a1 trains its own models (POST /v1/models/train, quality any): 200" [ "$STATUS" = 200 ]
jp --host "${URL[a1]}" models export -o "$TMP/daemon-models.json"
expect "a1's models exported" 0
jp train --offline "$TMP/a1-only.sqlite" --device "$FP_A" -o "$TMP/offline-models.json" \
  --quality any "${OFFLINE_OPTS[@]}"
expect "train --offline on the pull of a1: exit 0, a table" 0 out KERNEL out latency_us
jp train --offline "$TMP/a1-export.sqlite" --device "$FP_A" -o "$TMP/export-models.json" \
  --quality any "${OFFLINE_OPTS[@]}"
expect "train --offline on a1's own export (the board's schema): exit 0" 0
same_models() {
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def models(x):
    return {(m["kernel"], m["target"]): m for m in x["models"]}
ma, mb = models(a), models(b)
bad = []
if ma.keys() != mb.keys():
    bad.append("models differ: %s vs %s" % (sorted(ma), sorted(mb)))
for k in ma.keys() & mb.keys():
    for f in ("training_hash", "model", "metrics"):
        if ma[k][f] != mb[k][f]:
            bad.append("%s %s: %s differs" % (k[0], k[1], f))
for f in ("board_input_rail", "gpu_rail", "simulated"):
    if a.get(f) != b.get(f):
        bad.append("%s: %r vs %r" % (f, a.get(f), b.get(f)))
if a["device"]["fingerprint"] != b["device"]["fingerprint"]:
    bad.append("device fingerprints differ")
for line in bad[:8]:
    print("#   " + line)
sys.exit(1 if bad else 0)
EOF
}
check "offline (pull of a1) == a1's own training: every model's blob, training hash and metrics" \
  same_models "$TMP/offline-models.json" "$TMP/daemon-models.json"
check "offline (a1's export) == a1's own training" same_models "$TMP/export-models.json" "$TMP/daemon-models.json"
on a1
http POST /v1/estimate "$(cat "$GRAPH")"
printf '%s' "$BODY" >"$TMP/daemon-estimate.json"
check "a1's POST /v1/estimate of $GRAPH: 200" [ "$STATUS" = 200 ]
jp estimate --offline --models "$TMP/offline-models.json" --json "$GRAPH"
expect "estimate --offline with the offline models: exit 0" 0
printf '%s' "$OUT" >"$TMP/offline-estimate.json"
same_json "offline-trained estimate == the board's POST /v1/estimate (exact numbers)" \
  "$TMP/offline-estimate.json" "$TMP/daemon-estimate.json"

# ---- offline training errors ----
jp train --offline "$F" -o "$TMP/x.json"
expect "train --offline without --device: exit 2" 2 err "--device FINGERPRINT"
jp train --offline "$F" --device "$FP_A"
expect "train --offline without -o: exit 2" 2 err "-o FILE"
jp train --offline "$TMP/no-such.sqlite" --device "$FP_A" -o "$TMP/x.json"
expect "train --offline from a file that does not exist: exit 2 naming it" 2 err "cannot read $TMP/no-such.sqlite"
jp train --offline "$TMP/text.sqlite" --device "$FP_A" -o "$TMP/x.json"
expect "train --offline from a file that is not a jetprof database: exit 2" 2 err "$TMP/text.sqlite"
jp train --offline "$F" --device "$FP_A" -o "$TMP/x.json" --rounds 0
expect "train --offline --rounds 0: exit 2 with the range" 2 err "rounds must be 1..10000"
jp train --offline "$F" --device "$FP_A" -o "$TMP/x.json" --quality best
expect "train --offline --quality best: exit 2" 2 err "--quality"
jp train --offline "$F" --device "$FP_A" -o "$TMP/x.json" conv9
expect "train --offline of an unknown kernel type: exit 2" 2 err "'conv9' is not a kernel type"
jp train --offline "$F" --device 0000000000000000 -o "$TMP/x.json"
expect "train --offline for a fingerprint the file lacks: exit 1 listing its devices" 1 \
  err "no device has the fingerprint" err "$FP_A" err "$FP_B"
jp train --offline "$F" --device "$FP_A" -o "$TMP/x.json" --quality any softmax
expect "train --offline of a kernel type without rows: exit 1" 1 err "'softmax' has 0 usable"
check "... and no models file written" [ ! -e "$TMP/x.json" ]

stop_board a1
stop_board a2
finish
