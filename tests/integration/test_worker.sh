#!/usr/bin/env bash
# test_worker.sh - a killed or crashing worker never takes jetprofd down. A real
# jetprofd on the CPU executor with the test-only fault switch on
# (executor.test_faults) and a 3 s job limit: a run that hangs is killed at the
# limit and its job fails with that reason; a crash (SIGSEGV) and a poisoned
# context fail their jobs with how the worker ended; /v1/health answers 200
# throughout; "illegal_access" (a real CUDA fault, tests/gpu/test_daemon_gpu.sh
# on a GPU) is refused on the CPU executor with a clear reason, without
# touching the worker; a fresh worker takes the next measurement; the daemon has
# one worker child and no zombie; it stops cleanly and leaves no worker behind.
# With the switch off, "test_fault" is the usual 422 unknown member.
. "$(dirname "$0")/lib.sh"

LIMIT_S=3
start_daemon --executor cpu --set executor.test_faults=true --set measure.job_timeout_s=$LIMIT_S ||
  bail "jetprofd starts with executor.test_faults=true"
ok "jetprofd starts with executor.test_faults=true"
check "the log warns that test faults are on" grep -q "test_faults is on" "$LOG"

KERNEL='"kernel":"linear_relu","batch":4,"in":16,"out":16'

# worker_children: pids of the daemon's children (the worker), one per line.
worker_children() { ps -o pid= --ppid "$DAEMON_PID" 2>/dev/null | tr -d ' '; }
zombie_children() { ps -o stat= --ppid "$DAEMON_PID" 2>/dev/null | grep -c '^Z'; }
FIRST_WORKER=$(worker_children)
check "one worker process runs under jetprofd" [ "$(worker_children | wc -l)" = 1 ]

# ---- hang: killed at the job's limit, health answers meanwhile ----
# How long the answer took is curl's own time_total (request to answer), not
# the time until `wait` below returns: that also holds this script's health and
# device checks, which a loaded machine makes slow.
curl -s -o "$TMP/hang.body" -D "$TMP/hang.headers" -w '%{http_code} %{time_total}' --max-time $((60 * SLOW)) -X POST \
  "$BASE/v1/measure" -d "{$KERNEL,\"test_fault\":\"hang\"}" >"$TMP/hang.status" 2>/dev/null &
HANG_PID=$!
sleep 1
health_during=ok
for _ in 1 2 3 4; do
  if ! http GET /v1/health || [ "$STATUS" != 200 ]; then health_during="status $STATUS"; fi
  sleep 0.3
done
check "health answers 200 while the worker hangs" [ "$health_during" = ok ]
http GET /v1/device
check "device answers while the worker hangs (memory figures from the worker)" \
  json_true 'j["executor"]["name"] == "cpu" and j["executor"]["mem_free_bytes"] > 0'
wait "$HANG_PID"
read -r STATUS hang_s <"$TMP/hang.status"
hang_ms=$(awk -v s="${hang_s:-0}" 'BEGIN { printf "%d", s * 1000 }')
BODY=$(cat "$TMP/hang.body")
cp "$TMP/hang.headers" "$TMP/headers"
problem_check "hang: job failed (500) with the time-limit reason" 500 \
  "worker killed" "exceeded the job's time limit of $LIMIT_S s"
check "hang: the problem carries job_id" json_true 'isinstance(j["job_id"], int)'
check "hang: answered after the limit, within a few seconds of it (${hang_ms} ms)" \
  eval '[ "$hang_ms" -ge $((LIMIT_S * 1000 - 500)) ] && [ "$hang_ms" -lt $(((LIMIT_S + 10) * 1000 * SLOW)) ]'
check "hang: the log says the worker was killed and a fresh one started" \
  eval 'grep -q "killed: the run passed the deadline" "$LOG" && grep -q "fresh worker" "$LOG"'
check "hang: the hung worker is gone" eval '! kill -0 '"$FIRST_WORKER"' 2>/dev/null'

# ---- crash ----
http POST /v1/measure "{$KERNEL,\"test_fault\":\"crash\"}"
problem_check "crash: job failed (500) with the signal" 500 "worker died" "signal 11 (SIGSEGV)"
check "health answers 200 after the crash" health_ok

# ---- poison ----
http POST /v1/measure "{$KERNEL,\"test_fault\":\"poison\"}"
problem_check "poison: job failed (500), the worker ended" 500 "poisoned" "exit status 3"
check "health answers 200 after the poisoned context" health_ok

# ---- illegal_access needs the CUDA executor: refused here, the worker untouched ----
BEFORE_REFUSAL=$(worker_children)
http POST /v1/measure "{$KERNEL,\"test_fault\":\"illegal_access\"}"
problem_check "illegal_access on the cpu executor: job failed (500), refused with the reason" 500 \
  "illegal_access needs the CUDA executor" "runs the cpu executor"
check "illegal_access refused: the same worker still runs" \
  eval '[ -n "$BEFORE_REFUSAL" ] && [ "$(worker_children)" = "$BEFORE_REFUSAL" ]'
check "health answers 200 after the refusal" health_ok

# ---- a bad fault value ----
http POST /v1/measure "{$KERNEL,\"test_fault\":\"melt\"}"
problem_check "an unknown test_fault value is 422 naming it" 422 "test_fault" "melt" "hang" \
  "illegal_access"
check "the 422 names the member" json_true 'j.get("parameter") == "test_fault"'

# ---- the next measurement succeeds in a fresh worker ----
http POST /v1/measure "{$KERNEL}"
check "the next measurement succeeds (201)" [ "$STATUS" = 201 ]
check "it was measured on the cpu executor" json_true 'j["executor"] == "cpu"'
http GET /v1/health
check "health: ok, 4 failed jobs, 1 done" \
  json_true 'j["status"] in ("ok", "degraded") and j["jobs"]["failed"] == 4 and j["jobs"]["done"] == 1'
check "one worker process, a new one, and no zombie" \
  eval '[ "$(worker_children | wc -l)" = 1 ] && [ "$(worker_children)" != "$FIRST_WORKER" ] &&
    [ "$(zombie_children)" = 0 ]'
LAST_WORKER=$(worker_children)
check "the daemon never died" daemon_alive
stop_daemon
check "no worker is left after jetprofd stopped" \
  wait_until $((5 * SLOW)) eval '! kill -0 '"${LAST_WORKER:-0}"' 2>/dev/null'
check "the worker stopped cleanly at shutdown" grep -q "worker $LAST_WORKER stopped (exit status 0)" "$LOG"

# ---- switch off: test_fault is an unknown member ----
start_daemon --executor cpu --set measure.job_timeout_s=$LIMIT_S ||
  bail "jetprofd starts with test faults off"
http POST /v1/measure "{$KERNEL,\"test_fault\":\"hang\"}"
problem_check "test faults off: test_fault is 422 unknown member" 422 "unknown member 'test_fault'"
stop_daemon "jetprofd (test faults off) stops on SIGTERM with exit status 0"
finish
