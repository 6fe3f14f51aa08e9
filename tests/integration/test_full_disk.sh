#!/usr/bin/env bash
# test_full_disk.sh - a full disk stops the queue without losing a job, and the
# queue resumes when space comes back (issue 5, "crash safety": SQLITE_FULL and
# I/O errors leave the job queued, stop taking jobs, report the condition in
# /v1/health and the log, and resume when writes succeed again).
#
# The database lives on a small tmpfs mounted for the test (needs root, or the
# right to mount; otherwise the script prints "# SKIP full-disk test: <reason>"
# and exits 0 with no result lines). A batch of jobs is queued, a filler file
# takes every free byte while the runner measures, and then: /v1/health says
# "degraded" with storage_ok false and the storage error, the daemon log names
# it, no job is failed, lost or done while the disk is full; after the filler is
# removed every job of the batch is done exactly once, health is ok again and
# PRAGMA integrity_check passes. The tmpfs is unmounted on every exit path.
. "$(dirname "$0")/lib.sh"

sql() { sqlite3 -batch -noheader "$DB" "$1" 2>&1; }

FS="$TMP/fs"
mkdir -p "$FS" || bail "mkdir $FS"
if ! mount_err=$(mount -t tmpfs -o size=8m tmpfs "$FS" 2>&1); then
  echo "# SKIP full-disk test: cannot mount a tmpfs at $FS (${mount_err:-mount failed}; needs root or CAP_SYS_ADMIN)"
  exit 0
fi
fs_cleanup() {
  # the daemon holds the database open: it must be gone before the unmount
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
  DAEMON_PID=""
  if mountpoint -q "$FS" 2>/dev/null; then
    umount "$FS" 2>/dev/null || umount -l "$FS" 2>/dev/null ||
      echo "# could not unmount $FS"
  fi
  cleanup
}
trap fs_cleanup EXIT

DB="$FS/jetprof.db"
JOBS=8
set_measure measure.min_window_ms=100

start_daemon || bail "jetprofd starts with its database on an 8 MiB tmpfs"
ok "jetprofd starts with its database on an 8 MiB tmpfs"

CONFIGS='{"configs": ['
for b in 1 2 3 4 5 6 7 8; do
  CONFIGS+="{\"kernel\": \"linear\", \"batch\": $b, \"in\": 16, \"out\": 16}"
  [ "$b" -lt "$JOBS" ] && CONFIGS+=', '
done
CONFIGS+=']}'
http POST /v1/jobs "$CONFIGS"
[ "$STATUS" = 201 ] || bail "POST /v1/jobs with $JOBS configurations answers 201 (got $STATUS)"
POSTED=$BODY

# The disk must fill while jobs of the batch are still to be written (about
# 0.35 s each on an idle machine): from the POST to the filler no python (up to
# a second a call on a loaded machine), the runner's progress read with sqlite3.
running_one() { [ "$(sql "SELECT count(*) FROM jobs WHERE state = 'running'")" = 1 ]; }
wait_until $((20 * SLOW)) running_one || bail "the runner starts measuring the batch"

# ---- fill the file system ----
dd if=/dev/zero of="$FS/filler" bs=64k >/dev/null 2>&1
# whatever dd left: a few more bytes in small writes
dd if=/dev/zero of="$FS/filler2" bs=512 >/dev/null 2>&1
echo "# filled: $(df -k "$FS" | awk 'NR == 2 { print $3 " KiB used, " $4 " KiB free" }')"
BATCH=$(json_get 'j["batch_id"]' "$POSTED" 2>/dev/null)
check "POST /v1/jobs: batch $BATCH with $JOBS jobs" json_true 'j["jobs"] == '"$JOBS" "$POSTED"
echo "# states when filled: $(sql "SELECT state || ' ' || count(*) FROM jobs GROUP BY state" | tr '\n' ' ')"

storage_failing() {
  http GET /v1/health && json_true 'j["runner"]["storage_ok"] is False'
}
if wait_until $((30 * SLOW)) storage_failing; then
  ok "a write of the runner fails on the full disk (health runner.storage_ok false)"
else
  not_ok "a write of the runner fails on the full disk (health runner.storage_ok false)" \
    "states: $(sql "SELECT state || ' ' || count(*) FROM jobs GROUP BY state" | tr '\n' ' ')"
fi
HEALTH=$BODY
echo "# health while full: $(json_get 'j["status"], j["runner"]' "$HEALTH" 2>/dev/null)"
check "/v1/health: status degraded" json_true 'j["status"] == "degraded"' "$HEALTH"
check "/v1/health: runner.last_error names the storage error" \
  json_true '"full" in j["runner"]["last_error"] or "I/O" in j["runner"]["last_error"]' "$HEALTH"
check "the daemon log names the storage error" \
  grep -qE 'runner.*(database or disk is full|disk I/O error)' "$LOG"

# While the disk stays full the runner takes no job: nothing is done or failed
# over two of its back-off periods (5 s each, wall time: not scaled under SAN).
done_at_full=$(sql "SELECT count(*) FROM jobs WHERE batch_id = ${BATCH:-0} AND state = 'done'")
sleep 11
http GET /v1/health
HEALTH=$BODY
check "the disk still full 11 s later: health still degraded" \
  json_true 'j["status"] == "degraded" and j["runner"]["storage_ok"] is False' "$HEALTH"
check "no job was done while the disk was full (still $done_at_full done)" \
  [ "$(sql "SELECT count(*) FROM jobs WHERE batch_id = ${BATCH:-0} AND state = 'done'")" = "$done_at_full" ]
check "no job failed because of the full disk" \
  [ "$(sql "SELECT count(*) FROM jobs WHERE state = 'failed'")" = 0 ]
check "no job was lost: the batch still has $JOBS jobs, each done with its measurement or waiting" \
  [ "$(sql "SELECT count(*) FROM jobs j WHERE j.batch_id = ${BATCH:-0} AND
      (j.state IN ('queued', 'running') OR (j.state = 'done' AND EXISTS
        (SELECT 1 FROM measurements m WHERE m.id = j.measurement_id AND m.job_id = j.id)))")" = "$JOBS" ]
echo "# states while full: $(sql "SELECT state || ' ' || count(*) FROM jobs GROUP BY state" | tr '\n' ' ')"
check "at most one job is marked running while the disk is full (the one whose write failed)" \
  [ "$(sql "SELECT count(*) FROM jobs WHERE state = 'running'")" -le 1 ]

# ---- space comes back ----
rm -f "$FS/filler" "$FS/filler2"
batch_finished() {
  http GET "/v1/batches/${BATCH:-0}" &&
    json_true 'j["counts"]["queued"] == 0 and j["counts"]["running"] == 0'
}
if wait_until $((60 * SLOW)) batch_finished; then
  ok "after the filler is removed the queue resumes and the batch finishes"
else
  not_ok "after the filler is removed the queue resumes and the batch finishes" \
    "states: $(sql "SELECT state || ' ' || count(*) FROM jobs GROUP BY state" | tr '\n' ' ')"
fi
check "GET /v1/batches/$BATCH: all $JOBS done" json_true 'j["counts"]["done"] == '"$JOBS"
http GET /v1/health
check "/v1/health: status ok and storage_ok true again" \
  json_true 'j["status"] == "ok" and j["runner"]["storage_ok"] is True'
check "a job whose write failed was measured again (some job has attempts >= 2)" \
  [ "$(sql "SELECT count(*) FROM jobs WHERE batch_id = ${BATCH:-0} AND attempts >= 2")" -ge 1 ]
stop_daemon
check "every job of the batch is done with exactly one measurement" \
  [ "$(sql "SELECT count(*) FROM jobs j WHERE j.batch_id = ${BATCH:-0} AND j.state = 'done' AND
      (SELECT count(*) FROM measurements m WHERE m.job_id = j.id) = 1 AND
      EXISTS (SELECT 1 FROM measurements m WHERE m.id = j.measurement_id AND m.job_id = j.id)")" = "$JOBS" ]
check "no measurement without a done job" \
  [ "$(sql "SELECT count(*) FROM measurements m LEFT JOIN jobs j ON j.id = m.job_id
      WHERE j.id IS NULL OR j.state != 'done'")" = 0 ]
check "PRAGMA integrity_check = ok" [ "$(sql 'PRAGMA integrity_check')" = ok ]

finish
