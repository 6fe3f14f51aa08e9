#!/usr/bin/env bash
# test_daemon_gpu.sh - `make test-gpu`, part 2: jetprofd on a real GPU with NVML
# power (tests/gpu/test_gpu.c, part 1, checks the executor itself).
#
# 1. jetprofd --executor cuda --sensor nvml with the default measurement
#    protocol: POST /v1/measure linear_relu batch 256 in 1024 out 1024 fp16 is
#    201 with executor "cuda", sensor "nvml", simulated false, power_mw > 0,
#    latency_us > 0 and a quality; a configuration needing more memory than the
#    GPU has free is 422 with both figures, before any job exists.
# 2. jetprofd with the test-only fault switch (executor.test_faults) and a
#    LIMIT_S job limit: "hang" fails its job with the time-limit reason,
#    "illegal_access" (a real kernel write through an invalid device pointer in
#    the worker) fails its job with the poisoned context; /v1/health answers
#    throughout and a normal measurement then succeeds in a fresh worker.
#
# Where jetprofd cannot open the CUDA executor or the NVML sensor (no GPU, no
# driver, no plugin, a Jetson where NVML reports no power) it prints
# "SKIP: <jetprofd's reason>" and exits 0: the probe is jetprofd itself, started
# as the test starts it, so a skip names exactly what is missing. The last line
# is a summary: "test_daemon_gpu: PASS ..." or "test_daemon_gpu: FAIL ...".
#
# Environment (make test-gpu sets it): JETPROFD, JETPROF, CUDA_LIB (the plugin;
# default: jetprofd's own default, ../lib/jetprof next to its bin/), SAN.
# Helpers: tests/integration/lib.sh (scratch dir, daemon start/stop, HTTP, JSON).
. "$(dirname "$0")/../integration/lib.sh"

LIMIT_S=10
KERNEL='"kernel":"linear_relu","batch":256,"in":1024,"out":1024,"dtype":"fp16"'
SMALL='"kernel":"linear_relu","batch":64,"in":256,"out":256,"dtype":"fp16"'
# Every attention parameter at its catalogue maximum: 2^44 bytes of scores
# alone, more than any GPU has.
HUGE='"kernel":"attention","batch":4096,"tokens":4096,"heads":64,"head_dim":256'

GPU_FLAGS=(--executor cuda --sensor nvml)
if [ -n "${CUDA_LIB:-}" ]; then
  case "$CUDA_LIB" in /*) ;; *) CUDA_LIB="$PWD/$CUDA_LIB" ;; esac
  GPU_FLAGS+=(--set "executor.cuda_lib=$CUDA_LIB")
fi
FAST_SETTINGS=("${MEASURE_SETTINGS[@]}")
SUMMARY=""

# ---- probe: the daemon as tested; its own error line is the skip reason ----
MEASURE_SETTINGS=() # part 1 runs the default protocol
if ! start_daemon "${GPU_FLAGS[@]}" >"$TMP/probe.out"; then
  reason=$(grep -m 1 -oE '(sensor|executor) failed: .*' "$LOG")
  if [ -z "$DAEMON_PID" ] && grep -q 'exited with status 1 before' "$TMP/probe.out" && [ -n "$reason" ]; then
    echo "SKIP: jetprofd cannot measure on a GPU with NVML power here: $reason"
    exit 0
  fi
  cat "$TMP/probe.out"
  bail "jetprofd starts with ${GPU_FLAGS[*]}"
fi
ok "jetprofd starts with ${GPU_FLAGS[*]} (default measurement protocol)"

http GET /v1/device
check "device: the cuda executor on a GPU, the nvml sensor, not simulated" \
  json_true 'j["executor"]["name"] == "cuda" and j["executor"]["is_gpu"] is True and
    j["sensor"]["backend"] == "nvml" and j["simulated"] is False'
DEVICE=$(json_get 'j["executor"]["device"]' 2>/dev/null)
echo "# device: $DEVICE; sensor: $(json_get 'j["sensor"]["description"]' 2>/dev/null)"

# ---- part 1: a full measurement ----
http POST /v1/measure "{$KERNEL}" --max-time $((300 * SLOW))
check "measure linear_relu 256x1024x1024 fp16: 201 (${TIME_TOTAL} s)" [ "$STATUS" = 201 ]
check "the measurement: cuda, nvml, not simulated, the asked configuration" \
  json_true 'j["executor"] == "cuda" and j["sensor"] == "nvml" and j["simulated"] is False and
    j["kernel"] == "linear_relu" and j["dtype"] == "fp16" and
    j["params"] == {"batch": 256, "in": 1024, "out": 1024}'
check "the measurement: power_mw > 0 and latency_us > 0" \
  json_true 'j["power_mw"] > 0 and j["latency_us"] > 0 and j["energy_uj"] > 0'
check "the measurement: a quality (ok or suspect, with reasons when suspect)" \
  json_true 'j["quality"] in ("ok", "suspect") and isinstance(j["quality_reasons"], list) and
    (j["quality"] == "ok") == (len(j["quality_reasons"]) == 0)'
MEASUREMENT_ID=$(json_get 'j["id"]' 2>/dev/null)
check "the measurement: Location names it" [ "$(header Location)" = "/v1/measurements/$MEASUREMENT_ID" ]
MEASURED=$(json_get '"latency %.1f us, power %.0f mW, energy %.1f uJ, %d launches, quality %s%s" % (
  j["latency_us"], j["power_mw"], j["energy_uj"], j["launches"], j["quality"],
  (" (" + "; ".join(j["quality_reasons"]) + ")") if j["quality_reasons"] else "")' 2>/dev/null)
echo "# linear_relu fp16 batch=256,in=1024,out=1024: $MEASURED"

http POST /v1/measure "{$HUGE}"
problem_check "a configuration larger than the GPU's free memory: 422 before it runs" 422 \
  "needs" "bytes" "on the cuda executor" "free now"
check "the 422 gives both figures, needed > free" json_true '(lambda m: m is not None and
    int(m.group(1)) > int(m.group(2)))(__import__("re").search(
    r"needs (\d+) bytes .* which has (\d+) bytes", j["detail"]))'
http GET /v1/health
check "health: 1 job done, none failed (the 422 made no job)" \
  json_true 'j["jobs"]["done"] == 1 and j["jobs"]["failed"] == 0'
stop_daemon

# ---- part 2: the worker's failure paths through the daemon ----
MEASURE_SETTINGS=("${FAST_SETTINGS[@]}")
DB="$TMP/faults.db" # a fresh database: the job counts below are this daemon's
start_daemon "${GPU_FLAGS[@]}" --set executor.test_faults=true --set measure.job_timeout_s=$LIMIT_S ||
  bail "jetprofd starts with executor.test_faults=true and a $LIMIT_S s job limit"
ok "jetprofd starts with executor.test_faults=true and a $LIMIT_S s job limit"
worker_children() { ps -o pid= --ppid "$DAEMON_PID" 2>/dev/null | tr -d ' '; }
FIRST_WORKER=$(worker_children)

http POST /v1/measure "{$SMALL,\"test_fault\":\"hang\"}" --max-time $(((LIMIT_S + 120) * SLOW))
problem_check "hang: job failed (500) with the time-limit reason" 500 \
  "worker killed" "exceeded the job's time limit of $LIMIT_S s"
check "hang: the problem carries job_id" json_true 'isinstance(j["job_id"], int)'
check "health answers 200 after the hang" health_ok
check "hang: the hung worker is gone" eval '! kill -0 '"${FIRST_WORKER:-0}"' 2>/dev/null'

http POST /v1/measure "{$SMALL,\"test_fault\":\"illegal_access\"}" --max-time $(((LIMIT_S + 120) * SLOW))
problem_check "illegal_access: job failed (500), a real CUDA fault poisoned the worker" 500 \
  "illegal_access" "cudaError" "CUDA context is poisoned" "exit status 3"
echo "# illegal_access: $(json_get 'j["detail"]' 2>/dev/null)"
check "health answers 200 after the illegal access" health_ok

http POST /v1/measure "{$SMALL}" --max-time $((300 * SLOW))
check "the next measurement succeeds in a fresh worker (201)" [ "$STATUS" = 201 ]
check "it ran on cuda with nvml power" \
  json_true 'j["executor"] == "cuda" and j["sensor"] == "nvml" and j["power_mw"] > 0 and
    j["latency_us"] > 0'
http GET /v1/health
check "health: 2 failed jobs, 1 done" \
  json_true 'j["status"] in ("ok", "degraded") and j["jobs"]["failed"] == 2 and
    j["jobs"]["done"] == 1'
check "one worker process, not the first" \
  eval '[ "$(worker_children | wc -l)" = 1 ] && [ "$(worker_children)" != "$FIRST_WORKER" ]'
check "the daemon never died" daemon_alive
stop_daemon

if [ "$FAILED" -eq 0 ]; then
  SUMMARY="PASS: $PASSED checks on ${DEVICE:-the GPU} with NVML power: linear_relu fp16 $MEASURED;"
  SUMMARY+=" out-of-memory 422, hang and illegal_access failed their jobs, the daemon kept serving"
else
  SUMMARY="FAIL: $FAILED of $((PASSED + FAILED)) checks failed (KEEP_TMP=1 keeps the daemon log)"
fi
echo "test_daemon_gpu: $SUMMARY"
finish
