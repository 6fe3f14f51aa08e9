#!/usr/bin/env bash
# test_export.sh - the dataset coming off the board: GET /v1/measurements as
# streamed JSON lines and CSV with the filters (kernel, batch, since, limit),
# more rows than one stream page (500) to cross page boundaries, the device
# fingerprint on every row, bad query parameters answered 400 naming the
# parameter, and GET /v1/export.sqlite: a consistent snapshot that sqlite3
# opens on its own (integrity_check ok, the same row counts as the live
# database), served with Content-Disposition and not left behind on disk.
. "$(dirname "$0")/lib.sh"

sql() { sqlite3 -batch -noheader -cmd '.timeout 5000' "$DB" "$1" 2>&1; }

# jsonl_check EXPR: every line of $BODY parses and EXPR (Python over rows =
# the list of objects) is true.
jsonl_true() {
  printf '%s' "$BODY" | "$PY" -c '
import json, sys
text = sys.stdin.read()

rows = [json.loads(l) for l in text.splitlines()]
sys.exit(0 if eval(sys.argv[1]) else 1)
' "$1"
}
# csv_true EXPR: $BODY parsed as CSV; header = first row, rows = the others.
csv_true() {
  printf '%s' "$BODY" | "$PY" -c '
import csv, io, sys
table = list(csv.reader(io.StringIO(sys.stdin.read(), newline="")))
header, rows = table[0], table[1:]
col = {n: i for i, n in enumerate(header)}
sys.exit(0 if eval(sys.argv[1]) else 1)
' "$1"
}

start_daemon || bail "jetprofd starts"
http GET /v1/device
FP=$(json_get 'j["fingerprint"]')
check "the device has a 64-hex fingerprint" [ "${#FP}" = 64 ]

for body in '{"kernel":"linear","batch":4,"in":8,"out":16}' \
  '{"kernel":"linear","batch":8,"in":8,"out":16}' \
  '{"kernel":"layernorm","rows":4,"cols":32}' \
  '{"kernel":"linear_relu","batch":2,"in":8,"out":8}' \
  '{"kernel":"linear_relu","batch":4,"in":8,"out":8}'; do
  http POST /v1/measure "$body"
  [ "$STATUS" = 201 ] || bail "POST /v1/measure $body: $STATUS $BODY"
  sleep 0.01 # distinct created_at values for the since filter
done
ok "five measurements"

http GET /v1/measurements
check "the Measurement JSON carries the device fingerprint" \
  json_true 'len(j["measurements"]) == 5 and all(m["fingerprint"] == "'"$FP"'" for m in j["measurements"])'
SINCE=$(json_get 'j["measurements"][2]["created_at"]')
J1=$(json_get 'j["measurements"][0]["job_id"]')
J2=$(json_get 'j["measurements"][1]["job_id"]')
M1=$(json_get 'j["measurements"][0]["id"]')

# ---- JSON lines ----
http GET '/v1/measurements?format=jsonl'
check "format=jsonl: 200 application/x-ndjson" \
  eval '[ "$STATUS" = 200 ] && content_type_is application/x-ndjson'
check "format=jsonl: five lines, ids ascending, each with the fingerprint" \
  jsonl_true 'len(rows) == 5 and [r["id"] for r in rows] == sorted(r["id"] for r in rows) and all(r["fingerprint"] == "'"$FP"'" for r in rows)'
curl -s -o "$TMP/all.jsonl" "$BASE/v1/measurements?format=jsonl"
check "format=jsonl: every line ends with a newline, the last one too" \
  eval '[ "$(tail -c 1 "$TMP/all.jsonl" | od -An -c | tr -d " ")" = "\\n" ] && [ "$(wc -l <"$TMP/all.jsonl")" = 5 ]'
http GET '/v1/measurements?format=jsonl&kernel=linear'
check "format=jsonl&kernel=linear: the two linear rows" \
  jsonl_true 'len(rows) == 2 and all(r["kernel"] == "linear" for r in rows)'
http GET '/v1/measurements?format=jsonl&limit=3&after='"$M1"
check "format=jsonl&limit=3&after=: three rows after the first" \
  jsonl_true 'len(rows) == 3 and rows[0]["id"] > '"$M1"
WANT=$(sql "SELECT count(*) FROM measurements WHERE created_at >= '$SINCE'")
http GET "/v1/measurements?format=jsonl&since=$SINCE"
check "since=<third row's created_at>: the $WANT rows created at or after it" \
  jsonl_true 'len(rows) == '"$WANT"' and all(r["created_at"] >= "'"$SINCE"'" for r in rows)'
# The same instant written with a +02:00 offset selects the same rows.
SINCE_TZ=$("$PY" -c '
import datetime, sys
t = datetime.datetime.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%S.%fZ") + datetime.timedelta(hours=2)
print(t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d" % (t.microsecond // 1000) + "%2B02:00")' "$SINCE")
http GET "/v1/measurements?format=jsonl&since=$SINCE_TZ"
check "since with a +02:00 offset: the same $WANT rows" jsonl_true 'len(rows) == '"$WANT"
http GET '/v1/measurements?format=jsonl&since=2000-01-01'
check "since=2000-01-01 (a date): every row" jsonl_true 'len(rows) == 5'
http GET '/v1/measurements?format=jsonl&since=2999-01-01T00:00:00Z'
check "since in the future: 200 and an empty body" eval '[ "$STATUS" = 200 ] && [ -z "$BODY" ]'

# ---- batch filter (a batch made in the database: jobs.batch_id) ----
B=$(sql "INSERT INTO batches (created_at, kind, spec_json, dtype) VALUES
  ('2026-01-01T00:00:00.000Z', 'list', '{}', 'fp32') RETURNING id")
sql "UPDATE jobs SET batch_id = $B WHERE id IN ($J1, $J2)" >/dev/null
http GET "/v1/measurements?format=jsonl&batch=$B"
check "batch=$B: the measurements of its two jobs" \
  jsonl_true 'sorted(r["job_id"] for r in rows) == sorted(['"$J1, $J2"'])'
http GET "/v1/measurements?batch=$B"
check "batch= works with format=json too" json_true 'len(j["measurements"]) == 2'
http GET "/v1/measurements?format=jsonl&batch=$((B + 100))"
check "a batch without measurements: empty" eval '[ "$STATUS" = 200 ] && [ -z "$BODY" ]'

# ---- CSV ----
http GET "/v1/measurements?format=csv&kernel=linear&batch=$B"
check "format=csv: 200 text/csv" eval '[ "$STATUS" = 200 ] && content_type_is text/csv'
check "format=csv&kernel=linear&batch=: header first with fingerprint and linear's parameters, two rows" \
  csv_true 'header[:3] == ["id", "uid", "fingerprint"] and "batch" in col and "out" in col and "rows" not in col and len(rows) == 2 and all(r[col["fingerprint"]] == "'"$FP"'" and r[col["kernel"]] == "linear" for r in rows)'
check "format=csv: rail columns present (power_mw.<rail>) and filled" \
  csv_true 'any(h.startswith("power_mw.") for h in header) and all(r[col[[h for h in header if h.startswith("power_mw.")][0]]] != "" for r in rows)'
check "format=csv: CRLF line ends" contains "$BODY" $'\r\n'
http GET "/v1/measurements?format=csv&since=$SINCE"
check "format=csv&since=: $WANT rows, every column in each" \
  csv_true 'len(rows) == '"$WANT"' and all(len(r) == len(header) for r in rows)'
http GET '/v1/measurements?format=csv&kernel=layernorm'
check "format=csv&kernel=layernorm: its parameters only" \
  csv_true '"rows" in col and "batch" not in col and len(rows) == 1'

# ---- bad parameters ----
http GET '/v1/measurements?format=jsonl&since=yesterday'
problem_check "since=yesterday: 400 naming since" 400 "since" "ISO-8601"
check "the problem names the parameter" json_true 'j.get("parameter") == "since"'
http GET '/v1/measurements?since=2026-02-30'
problem_check "since=2026-02-30 (no such day): 400" 400 "since"
http GET '/v1/measurements?since=2026-01-01T25:00:00Z'
problem_check "since with hour 25: 400" 400 "since"
http GET '/v1/measurements?format=jsonl&batch=0'
problem_check "batch=0: 400 naming batch" 400 "batch"
http GET '/v1/measurements?batch=abc'
problem_check "batch=abc: 400" 400 "batch"
check "the problem names the parameter" json_true 'j.get("parameter") == "batch"'
http GET '/v1/measurements?format=ndjson'
problem_check "format=ndjson: 400 listing the formats" 400 "json, jsonl, csv"
http GET '/v1/export.sqlite?x=1'
problem_check "export.sqlite with a query parameter: 400" 400 "'x'"
http POST /v1/export.sqlite
check "POST /v1/export.sqlite: 405" [ "$STATUS" = 405 ]

# ---- more rows than one stream page ----
sql "INSERT INTO measurements (uid, job_id, device_id, kernel, dtype, params_json, config_key,
  executor, sensor, simulated, launches, repeats, latency_us, latency_us_min, latency_us_max,
  latency_cv, window_ms, settle_ms, energy_rail, energy_uj, dynamic_energy_uj, power_mw, quality,
  quality_reasons, remeasured, device_state_json, created_at)
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200)
  SELECT lower(hex(randomblob(16))), NULL, device_id, kernel, dtype, params_json, config_key,
  executor, sensor, simulated, launches, repeats, latency_us, latency_us_min, latency_us_max,
  latency_cv, window_ms, settle_ms, energy_rail, energy_uj, dynamic_energy_uj, power_mw, quality,
  quality_reasons, remeasured, device_state_json, created_at
  FROM measurements, n WHERE measurements.id = $M1" >/dev/null
TOTAL=$(sql 'SELECT count(*) FROM measurements')
check "the table now holds 1205 rows" [ "$TOTAL" = 1205 ]
http GET '/v1/measurements?format=jsonl'
check "format=jsonl streams all $TOTAL rows across pages, ids unique and ascending" \
  jsonl_true 'len(rows) == '"$TOTAL"' and [r["id"] for r in rows] == sorted(set(r["id"] for r in rows)) and all(r["fingerprint"] == "'"$FP"'" for r in rows)'
http GET '/v1/measurements?format=csv'
check "format=csv streams all $TOTAL rows with one header" \
  csv_true 'len(rows) == '"$TOTAL"' and header[0] == "id" and all(r[0] != "id" for r in rows)'
http GET '/v1/measurements?format=csv&limit=777'
check "format=csv&limit=777: exactly 777 rows" csv_true 'len(rows) == 777'

# ---- holistic cost of a batch: energy and wall time, progress line ----
CB=$(sql "INSERT INTO batches (created_at, kind, spec_json, dtype) VALUES
  ('2026-01-01T00:00:00.000Z', 'list', '{}', 'fp32') RETURNING id")
for b in 2 3 5 7; do
  sql "INSERT INTO jobs (batch_id, kernel, dtype, params_json, config_key, max_attempts, created_at)
    VALUES ($CB, 'linear', 'fp32', '{\"batch\":$b,\"in\":8,\"out\":8}',
    'linear:fp32:batch=$b,in=8,out=8', 3, '2026-01-01T00:00:00.000Z')" >/dev/null
done
runner_wake_probe() { [ "$(sql "SELECT count(*) FROM jobs WHERE batch_id = $CB AND state = 'done'")" = 4 ]; }
check "the runner measures the batch's four jobs" wait_until $((60 * SLOW)) runner_wake_probe
finished() { [ -n "$(sql "SELECT finished_at FROM batches WHERE id = $CB")" ]; }
check "the batch gets started_at (at its first job's start) and finished_at (its last job's end)" \
  eval 'wait_until $((10 * SLOW)) finished && [ "$(sql "SELECT abs(julianday(b.started_at) - julianday(min(j.started_at))) * 86400 < 1 AND b.finished_at >= max(j.finished_at) FROM batches b JOIN jobs j ON j.batch_id = b.id WHERE b.id = $CB")" = 1 ]'
check "the batch's energy is positive (board input integrated over its wall time)" \
  [ "$(sql "SELECT energy_j > 0 FROM batches WHERE id = $CB")" = 1 ]
# The jobs' own spans (started_at..finished_at, ms resolution) fit inside the
# batch's wall time, which also holds the idle between them. Its clock starts
# when the runner takes up the first job, after the claim that stamped the job's
# started_at was committed (an fsync: tens of ms or more on a busy disk), and
# the batch's started_at is stamped just after it; so the wall time reaches at
# least from the batch's started_at to the last job's end, whatever the disk
# took (5 ms for the millisecond stamps and a slewed UTC clock).
SPAN=$(sql "SELECT (julianday(max(finished_at)) - julianday(min(started_at))) * 86400 FROM jobs WHERE batch_id = $CB")
FROM_START=$(sql "SELECT (julianday(max(j.finished_at)) - julianday(b.started_at)) * 86400
  FROM batches b JOIN jobs j ON j.batch_id = b.id WHERE b.id = $CB")
check "the batch's wall time covers its jobs from its start to the last end ($FROM_START s, jobs $SPAN s)" \
  [ "$(sql "SELECT wall_s >= $FROM_START - 0.005 AND wall_s < $SPAN + 5 FROM batches WHERE id = $CB")" = 1 ]
check "the batch's mean power is plausible for the simulated board (1..100 W)" \
  [ "$(sql "SELECT energy_j / wall_s BETWEEN 1 AND 100 FROM batches WHERE id = $CB")" = 1 ]
check "the log has the batch's end line (done/total, rate, energy)" \
  grep -qE "info  runner: batch $CB finished: 4/4 done, 0 failed, 0 canceled in [0-9]+s \([0-9.]+/min\), [0-9.]+ J" "$LOG"
J=$(sql "SELECT min(id) FROM jobs WHERE batch_id = $CB")
check "each batch job is logged at debug, not info" \
  eval 'grep -q "debug runner: job $J: " "$LOG" && ! grep -q "info  runner: job $J: " "$LOG"'
TOTAL=$(sql 'SELECT count(*) FROM measurements')

# ---- SQLite snapshot ----
curl -s -S -o "$TMP/export.sqlite" -D "$TMP/headers" -w '%{http_code}' "$BASE/v1/export.sqlite" \
  >"$TMP/export.status" 2>"$TMP/curl.err"
STATUS=$(cat "$TMP/export.status")
check "GET /v1/export.sqlite: 200 application/vnd.sqlite3" \
  eval '[ "$STATUS" = 200 ] && content_type_is application/vnd.sqlite3'
check "Content-Disposition: attachment with a .sqlite file name" \
  eval 'header Content-Disposition | grep -qE "^attachment; filename=\"jetprof-[0-9TZ]+\.sqlite\"$"'
snap() { sqlite3 -batch -noheader "$TMP/export.sqlite" "$1" 2>&1; }
check "the download passes PRAGMA integrity_check" [ "$(snap 'PRAGMA integrity_check')" = ok ]
check "the download is a standalone file (journal_mode delete)" \
  [ "$(snap 'PRAGMA journal_mode')" = delete ]
for t in measurements jobs rail_readings devices batches; do
  check "the download has as many $t rows as the live database" \
    [ "$(snap "SELECT count(*) FROM $t")" = "$(sql "SELECT count(*) FROM $t")" ]
done
check "the download has the batch's energy and wall time" \
  [ "$(snap "SELECT energy_j > 0 AND wall_s > 0 FROM batches WHERE id = $CB")" = 1 ]
check "the download is at the live schema version" \
  [ "$(snap 'PRAGMA user_version')" = "$(sql 'PRAGMA user_version')" ]
check "the download's rows carry the fingerprint (devices join)" \
  [ "$(snap "SELECT count(*) FROM measurements JOIN devices ON devices.id = measurements.device_id WHERE devices.fingerprint = '$FP'")" = "$TOTAL" ]
check "no snapshot file is left next to the database" \
  eval '[ -z "$(ls -A "$TMP" | grep jetprof-export)" ]'

# a snapshot while a measurement is being written
curl -s -o /dev/null -X POST -d '{"kernel":"linear","batch":16,"in":16,"out":16,"repeats":5}' \
  "$BASE/v1/measure" &
mpid=$!
curl -s -S -o "$TMP/export2.sqlite" "$BASE/v1/export.sqlite" 2>"$TMP/curl.err"
wait "$mpid"
check "a snapshot taken during a measurement passes integrity_check" \
  [ "$(sqlite3 -batch "$TMP/export2.sqlite" 'PRAGMA integrity_check' 2>&1)" = ok ]
check "... and every measurement in it has its job done (one consistent instant)" \
  [ "$(sqlite3 -batch "$TMP/export2.sqlite" "SELECT count(*) FROM measurements m JOIN jobs j ON j.id = m.job_id WHERE j.state != 'done'" 2>&1)" = 0 ]

daemon_alive && ok "jetprofd is still running" || not_ok "jetprofd is still running"
finish
