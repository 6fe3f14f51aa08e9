#!/usr/bin/env bash
# test_jobs.sh - the queue over HTTP against a real jetprofd (sim sensor, CPU
# executor, the fast measure settings): a small grid queued with POST /v1/jobs
# runs to done, with counts and progress in GET /v1/batches/{id} and the jobs in
# GET /v1/jobs (filters, paging) and GET /v1/jobs/{id}; duplicates are skipped
# unless repeat_existing; a queued job and the rest of a batch are canceled;
# every bad sweep is a 422 naming what is wrong; unknown ids are 404, other
# methods 405.
. "$(dirname "$0")/lib.sh"

set_measure measure.max_batch_jobs=50
start_daemon || bail "jetprofd starts and answers GET /v1/health"
ok "jetprofd starts and answers GET /v1/health"

GRID='{"sweep": {"type": "grid", "kernel": "linear", "params": {"batch": [1, 2], "in": [8], "out": [8, 16]}}, "repeats": 1}'

# ---- a small grid runs to done ----
http POST /v1/jobs "$GRID"
check "POST /v1/jobs (grid 2 x 1 x 2): 201 with batch_id, 4 jobs, 0 duplicates" \
  eval '[ "$STATUS" = 201 ] && json_true '"'"'isinstance(j["batch_id"], int) and j["jobs"] == 4 and j["duplicates"] == 0'"'"
B1=$(json_get 'j["batch_id"]' 2>/dev/null)
check "POST /v1/jobs: Location: /v1/batches/{id}" [ "$(header Location)" = "/v1/batches/$B1" ]

batch_done() { http GET "/v1/batches/$1" && json_true 'j["counts"]["queued"] == 0 and j["counts"]["running"] == 0'; }
wait_until $((60 * SLOW)) batch_done "$B1"
check "batch: every job done, counts per state" \
  json_true 'j["counts"] == {"queued": 0, "running": 0, "done": 4, "failed": 0, "canceled": 0} and j["jobs"] == 4'
check "batch: kind grid, dtype fp32, repeats 1, duplicates 0, created_at" \
  json_true 'j["id"] == '"$B1"' and j["kind"] == "grid" and j["dtype"] == "fp32" and j["repeats"] == 1 and
    j["duplicates"] == 0 and isinstance(j["created_at"], str)'
check "batch: measured_per_minute > 0 and eta_s 0 once done" \
  json_true 'j["measured_per_minute"] > 0 and j["eta_s"] == 0'
check "batch: energy_j, wall_s, started_at, finished_at present (number/text or null)" \
  json_true 'all(k in j for k in ("energy_j", "wall_s", "started_at", "finished_at")) and
    (j["energy_j"] is None or j["energy_j"] >= 0) and (j["wall_s"] is None or j["wall_s"] >= 0)'

http GET "/v1/jobs?batch=$B1"
check "GET /v1/jobs?batch: the 4 jobs, done, each with a measurement and the batch's config keys" \
  json_true 'len(j["jobs"]) == 4 and all(x["state"] == "done" and x["batch_id"] == '"$B1"' and
      isinstance(x["measurement_id"], int) and x["repeats"] == 1 and x["attempts"] == 1 for x in j["jobs"]) and
    sorted(x["config_key"] for x in j["jobs"]) == sorted("linear:fp32:batch=%d,in=8,out=%d" % (b, o)
      for b in (1, 2) for o in (8, 16)) and j["next_after"] is None'
J1=$(json_get 'j["jobs"][0]["id"]')
M1=$(json_get 'j["jobs"][0]["measurement_id"]')
http GET "/v1/jobs/$J1"
check "GET /v1/jobs/{id}: the job with params and state done" \
  json_true 'j["id"] == '"$J1"' and j["state"] == "done" and j["params"]["in"] == 8 and j["kernel"] == "linear"'
http GET "/v1/measurements/$M1"
check "the job's measurement exists" [ "$STATUS" = 200 ]

http GET "/v1/jobs?batch=$B1&limit=2"
check "GET /v1/jobs paging: 2 jobs and next_after" \
  json_true 'len(j["jobs"]) == 2 and j["next_after"] == j["jobs"][1]["id"]'
AFTER=$(json_get 'j["next_after"]')
http GET "/v1/jobs?batch=$B1&limit=2&after=$AFTER"
check "GET /v1/jobs paging: the next 2 after it" \
  json_true 'len(j["jobs"]) == 2 and j["jobs"][0]["id"] > '"$AFTER"
AFTER=$(json_get 'j["next_after"]')
http GET "/v1/jobs?batch=$B1&limit=2&after=$AFTER"
check "GET /v1/jobs paging: then none, next_after null" json_true 'j["jobs"] == [] and j["next_after"] is None'
http GET "/v1/jobs?state=done&limit=10000"
check "GET /v1/jobs?state=done: only done jobs" \
  json_true 'len(j["jobs"]) >= 4 and all(x["state"] == "done" for x in j["jobs"])'

# ---- duplicates ----
http POST /v1/jobs "$GRID"
check "the same grid again: 0 jobs, 4 duplicates" \
  eval '[ "$STATUS" = 201 ] && json_true '"'"'j["jobs"] == 0 and j["duplicates"] == 4'"'"
B2=$(json_get 'j["batch_id"]')
http GET "/v1/batches/$B2"
check "its batch records 4 duplicates and no jobs" \
  json_true 'j["duplicates"] == 4 and j["jobs"] == 0 and j["eta_s"] == 0'
http POST /v1/jobs '{"configs": [{"kernel": "linear", "batch": 1, "in": 8, "out": 8}, {"kernel": "linear", "batch": 3, "in": 8, "out": 8}, {"kernel": "linear", "batch": 3, "in": 8, "out": 8}]}'
check "configs: a measured one and a repeated one are skipped (1 job, 2 duplicates)" \
  json_true 'j["jobs"] == 1 and j["duplicates"] == 2'
B3=$(json_get 'j["batch_id"]')
http POST /v1/jobs '{"configs": [{"kernel": "linear", "batch": 1, "in": 8, "out": 8}], "repeat_existing": true, "repeats": 1}'
check "repeat_existing: the measured config is queued again" \
  eval '[ "$STATUS" = 201 ] && json_true '"'"'j["jobs"] == 1 and j["duplicates"] == 0'"'"
B4=$(json_get 'j["batch_id"]')
wait_until $((60 * SLOW)) batch_done "$B3"
wait_until $((60 * SLOW)) batch_done "$B4"
check "repeat_existing: measured a second time" json_true 'j["counts"]["done"] == 1'
http GET "/v1/measurements?kernel=linear&limit=10000"
check "the dataset holds linear batch=1,in=8,out=8 twice" \
  json_true 'sum(1 for m in j["measurements"] if m["config_key"] == "linear:fp32:batch=1,in=8,out=8") == 2'

# ---- cancel a queued job, then the rest of a batch ----
# 20 repeats a job (about 0.5 s each, 15 s for the batch): the runner must not
# reach the last job, nor the end of the batch, during the eight requests and
# their JSON checks below (python alone takes up to a second a call on a loaded
# machine), or there would be nothing queued left to cancel.
http POST /v1/jobs '{"sweep": {"type": "random", "kernel": "linear", "count": 30, "seed": 7, "params": {"batch": [1, 64], "in": [8, 64], "out": [8, 64]}}, "repeat_existing": true, "repeats": 20}'
check "random sweep of 30: 201" eval '[ "$STATUS" = 201 ] && json_true '"'"'j["jobs"] == 30'"'"
B5=$(json_get 'j["batch_id"]')
http GET "/v1/jobs?batch=$B5&state=queued&limit=10000"
LAST=$(json_get 'j["jobs"][-1]["id"]')
http DELETE "/v1/jobs/$LAST"
check "DELETE /v1/jobs/{id} (queued): 200, state canceled" \
  eval '[ "$STATUS" = 200 ] && json_true '"'"'j["state"] == "canceled" and j["id"] == '"$LAST"''"'"
http DELETE "/v1/jobs/$LAST"
problem_check "DELETE /v1/jobs/{id} again: 409, not queued" 409 "canceled" "only a queued job"
http DELETE "/v1/jobs/$J1"
problem_check "DELETE /v1/jobs/{id} of a done job: 409" 409 "is done"
http GET "/v1/batches/$B5"
check "batch in progress: canceled 1, queued + running + done = 29" \
  json_true 'j["counts"]["canceled"] == 1 and
    j["counts"]["queued"] + j["counts"]["running"] + j["counts"]["done"] + j["counts"]["failed"] == 29'
http DELETE "/v1/batches/$B5"
check "DELETE /v1/batches/{id}: 200, the rest canceled, nothing queued" \
  eval '[ "$STATUS" = 200 ] && json_true '"'"'j["canceled"] >= 1 and j["counts"]["queued"] == 0'"'"
wait_until $((120 * SLOW)) batch_done "$B5" # the running job's 20 windows end it
check "canceled batch: nothing left to run; every job done, failed or canceled" \
  json_true 'j["counts"]["running"] == 0 and j["counts"]["queued"] == 0 and
    j["counts"]["done"] + j["counts"]["failed"] + j["counts"]["canceled"] == 30 and j["counts"]["canceled"] >= 2'
http GET "/v1/jobs?batch=$B5&state=canceled&limit=10000"
check "canceled jobs have finished_at and no measurement" \
  json_true 'len(j["jobs"]) >= 2 and all(x["finished_at"] and x["measurement_id"] is None for x in j["jobs"])'

# ---- list sweep ----
http POST /v1/jobs '{"sweep": {"type": "list", "kernel": "layernorm", "dtype": "fp16", "points": [{"rows": 4, "cols": 8}, {"rows": 8, "cols": 8}]}}'
check "list sweep: 201, 2 jobs" eval '[ "$STATUS" = 201 ] && json_true '"'"'j["jobs"] == 2'"'"
B6=$(json_get 'j["batch_id"]')
wait_until $((60 * SLOW)) batch_done "$B6"
check "list sweep: both done, fp16" json_true 'j["counts"]["done"] == 2 and j["dtype"] == "fp16" and j["kind"] == "list"'

# ---- bad sweeps: 422 naming what is wrong ----
bad() { # NAME BODY NEEDLE...
  local name=$1 body=$2
  shift 2
  http POST /v1/jobs "$body"
  problem_check "$name" 422 "$@"
}
bad "unknown parameter: 422" \
  '{"sweep": {"type": "grid", "kernel": "linear", "params": {"batch": [1], "in": [8], "out": [8], "depth": [2]}}}' \
  "sweep.params.depth" "unknown parameter 'depth'" "batch, in, out"
check "unknown parameter: member parameter names it" json_true 'j["parameter"] == "sweep.params.depth"'
bad "empty list of grid values: 422" \
  '{"sweep": {"type": "grid", "kernel": "linear", "params": {"batch": [], "in": [8], "out": [8]}}}' \
  "sweep.params.batch" "empty"
bad "empty random range: 422" \
  '{"sweep": {"type": "random", "kernel": "linear", "count": 5, "params": {"batch": [], "in": [8, 9], "out": [8, 9]}}}' \
  "sweep.params.batch" "empty range"
bad "inverted range: 422" \
  '{"sweep": {"type": "random", "kernel": "linear", "count": 5, "params": {"batch": [1, 2], "in": [512, 8], "out": [8, 9]}}}' \
  "sweep.params.in" "[512, 8]" "inverted"
bad "value outside the catalogue's range: 422" \
  '{"sweep": {"type": "grid", "kernel": "linear", "params": {"batch": [0], "in": [8], "out": [8]}}}' \
  "sweep.params.batch[0]" "'batch' = 0" "[1, 65536]"
bad "grid larger than measure.max_batch_jobs (8 x 8 = 64 > 50): 422" \
  '{"sweep": {"type": "grid", "kernel": "linear", "params": {"batch": [1,2,3,4,5,6,7,8], "in": [1,2,3,4,5,6,7,8], "out": [8]}}}' \
  "8 x 8 x 1" "max_batch_jobs = 50"
bad "count 0: 422" \
  '{"sweep": {"type": "random", "kernel": "linear", "count": 0, "params": {"batch": [1, 2], "in": [8, 9], "out": [8, 9]}}}' \
  "sweep.count" "count = 0" "[1, 50]"
bad "unknown sweep type: 422" '{"sweep": {"type": "spiral", "kernel": "linear"}}' "sweep.type" "spiral"
bad "unknown kernel: 422" '{"sweep": {"type": "grid", "kernel": "conv9", "params": {}}}' "conv9" "linear_relu"
bad "neither configs nor sweep: 422" '{"dtype": "fp16"}' "exactly one of"
bad "a bad config in a list names its index: 422" \
  '{"configs": [{"kernel": "linear", "batch": 1, "in": 8, "out": 8}, {"kernel": "linear", "batch": 1, "in": 8}]}' \
  "configs[1]" "'out' is required"
bad "too many configs: 422" \
  "{\"configs\": [$(for i in $(seq 1 51); do printf '%s{"kernel": "linear", "batch": %d, "in": 8, "out": 8}' "$([ "$i" = 1 ] || echo ,)" "$i"; done)]}" \
  "51 configurations" "max_batch_jobs = 50"
http POST /v1/jobs '{"sweep": '
problem_check "invalid JSON: 400 with line and column" 400 "line 1"
http GET /v1/jobs
check "nothing was queued by the bad requests (no queued jobs)" \
  json_true 'not any(x["state"] == "queued" for x in j["jobs"])'

# ---- GET /v1/jobs: bad query parameters ----
http GET "/v1/jobs?state=bogus"
problem_check "GET /v1/jobs?state=bogus: 400 naming the states" 400 "state" "queued, running"
http GET "/v1/jobs?limit=0"
problem_check "GET /v1/jobs?limit=0: 400" 400 "limit" "[1, 10000]"
http GET "/v1/jobs?batch=x"
problem_check "GET /v1/jobs?batch=x: 400" 400 "batch"
http GET "/v1/jobs?colour=red"
problem_check "GET /v1/jobs?colour=red: 400" 400 "unknown query parameter 'colour'"

# ---- 404, 400, 405 ----
http GET /v1/jobs/999999
problem_check "GET /v1/jobs/999999: 404" 404 "no job with id 999999"
http DELETE /v1/jobs/999999
problem_check "DELETE /v1/jobs/999999: 404" 404 "no job with id 999999"
http GET /v1/batches/999999
problem_check "GET /v1/batches/999999: 404" 404 "no batch with id 999999"
http DELETE /v1/batches/999999
problem_check "DELETE /v1/batches/999999: 404" 404 "no batch with id 999999"
http GET /v1/jobs/abc
problem_check "GET /v1/jobs/abc: 400" 400 "'abc' is not an integer"
http PUT /v1/jobs
problem_check "PUT /v1/jobs: 405" 405 "PUT"
check "PUT /v1/jobs: Allow lists GET and POST" eval 'contains "$(header Allow)" GET && contains "$(header Allow)" POST'
http POST /v1/jobs/1
problem_check "POST /v1/jobs/1: 405" 405
check "POST /v1/jobs/1: Allow lists GET and DELETE" eval 'contains "$(header Allow)" GET && contains "$(header Allow)" DELETE'
http PUT /v1/batches/1
problem_check "PUT /v1/batches/1: 405" 405
http GET /v1/batches
problem_check "GET /v1/batches (no id): 404" 404

stop_daemon
finish
