#!/usr/bin/env bash
# test_api.sh - the HTTP API v1 happy paths against a real jetprofd (sim sensor,
# CPU executor): health, device, kernels, POST /v1/measure (the issue's exact
# curl line, fp16), the dataset with filters, paging and CSV, one measurement by
# id, and that the server keeps answering while a measurement is in flight.
. "$(dirname "$0")/lib.sh"

start_daemon || bail "jetprofd starts and answers GET /v1/health"
ok "jetprofd starts and answers GET /v1/health"

# ---- health ----
http GET /v1/health
check "health: 200 application/json" eval '[ "$STATUS" = 200 ] && content_type_is application/json'
check "health: status ok, version 0.1.0, simulated true" \
  json_true 'j["status"] == "ok" and j["version"] == "0.1.0" and j["simulated"] is True'
check "health: uptime, started_at, job counts, runner and sampler" \
  json_true 'j["uptime_s"] >= 0 and isinstance(j["started_at"], str) and
    all(isinstance(j["jobs"][k], int) for k in ("queued","running","done","failed","canceled"))
    and j["runner"]["busy"] in (True, False) and j["runner"]["storage_ok"] is True
    and j["sampler"]["samples_total"] >= 0'

# ---- device ----
rate_positive() { http GET /v1/device && json_true 'j["sensor"]["achieved_rate_hz"] > 0'; }
wait_until $((30 * SLOW)) rate_positive # a bound for a loaded machine, not an expectation
check "device: 200, simulated true, device_id and 64-hex fingerprint" \
  json_true 'j["simulated"] is True and isinstance(j["device_id"], int) and
    len(j["fingerprint"]) == 64 and all(c in "0123456789abcdef" for c in j["fingerprint"])'
if [ "$HAVE_GPU" = 0 ]; then
  check "device: executor cpu, not a GPU, with a why that mentions CUDA or the CPU" \
    json_true 'j["executor"]["name"] == "cpu" and j["executor"]["is_gpu"] is False and
      ("cuda" in j["executor"]["why"].lower() or "cpu" in j["executor"]["why"].lower())'
else
  check "device (GPU host): executor cpu or cuda, is_gpu accordingly, with a why" \
    json_true 'j["executor"]["name"] in ("cpu", "cuda") and
      j["executor"]["is_gpu"] == (j["executor"]["name"] == "cuda") and j["executor"]["why"] != ""'
fi
check "device: executor reports free and total memory" \
  json_true '0 < j["executor"]["mem_free_bytes"] <= j["executor"]["mem_total_bytes"]'
check "device: sensor backend sim, simulated, with a why" \
  json_true 'j["sensor"]["backend"] == "sim" and j["sensor"]["simulated"] is True and
    j["sensor"]["why"] != ""'
check "device: rails include the board-input rail named by board_input_rail" \
  json_true 'any(r["board_input"] is True and r["name"] == j["sensor"]["board_input_rail"]
    for r in j["sensor"]["rails"])'
check "device: sampling asked and got" \
  json_true 'all(isinstance(j["sensor"]["sampling"][w][k], int)
    for w in ("asked", "got") for k in ("averaging", "bus_conv_us", "shunt_conv_us", "period_us"))'
check "device: expected and achieved sample rate > 0" \
  json_true 'j["sensor"]["expected_rate_hz"] > 0 and j["sensor"]["achieved_rate_hz"] > 0'
DEVICE_ID=$(json_get 'j["device_id"]')
EXECUTOR=$(json_get 'j["executor"]["name"]')

# ---- kernels ----
http GET /v1/kernels
check "kernels: 200 with linear, linear_relu, layernorm" \
  json_true '{"linear", "linear_relu", "layernorm"} <= {k["name"] for k in j["kernels"]}'
check "kernels: linear_relu has batch [1, 65536], in, out; dtypes fp32 and fp16" \
  json_true '(lambda k: [p["name"] for p in k["params"]] == ["batch", "in", "out"] and
      k["params"][0]["min"] == 1 and k["params"][0]["max"] == 65536)(
      [k for k in j["kernels"] if k["name"] == "linear_relu"][0])
    and all({"fp32", "fp16"} <= set(k["dtypes"]) for k in j["kernels"])'
check "kernels: layernorm has rows and cols; every range is 1 <= min <= max with a doc" \
  json_true '[p["name"] for k in j["kernels"] if k["name"] == "layernorm" for p in k["params"]]
      == ["rows", "cols"]
    and all(1 <= p["min"] <= p["max"] and p["doc"] != "" for k in j["kernels"] for p in k["params"])'

# ---- POST /v1/measure: the issue's exact curl line (form content type) ----
out=$(curl -s -D "$TMP/headers" -w '\n%{http_code}' --max-time $((120 * SLOW)) \
  -X POST localhost:$PORT/v1/measure -d '{"kernel":"linear_relu","batch":64,"in":256,"out":512}')
STATUS=${out##*$'\n'}
BODY=${out%$'\n'*}
check "measure (curl -d, form content type): 201 application/json" \
  eval '[ "$STATUS" = 201 ] && content_type_is application/json'
M1=$BODY
M1_ID=$(json_get 'j["id"]' 2>/dev/null)
check "measure: Location: /v1/measurements/{id}" [ "$(header Location)" = "/v1/measurements/$M1_ID" ]
check "measure: kernel, dtype fp32, params, config_key as asked" \
  json_true 'j["kernel"] == "linear_relu" and j["dtype"] == "fp32" and
    j["params"] == {"batch": 64, "in": 256, "out": 512} and
    j["config_key"] == "linear_relu:fp32:batch=64,in=256,out=512"'
check "measure: latency_us > 0 with min <= median <= max" \
  json_true '0 < j["latency_us_min"] <= j["latency_us"] <= j["latency_us_max"]'
check "measure: every rail has power_mw > 0, the board-input rail is the energy rail" \
  json_true 'len(j["rails"]) > 0 and all(r["power_mw"] > 0 for r in j["rails"]) and
    any(r["board_input"] and r["rail"] == j["energy_rail"] for r in j["rails"])'
check "measure: energy_uj = latency_us * power_mw / 1000" \
  json_true 'abs(j["energy_uj"] - j["latency_us"] * j["power_mw"] / 1000) <= 1e-3 * j["energy_uj"]'
check "measure: simulated true, executor $EXECUTOR (as /v1/device), sensor sim, device_id" \
  json_true 'j["simulated"] is True and j["executor"] == "'"$EXECUTOR"'" and j["sensor"] == "sim" and
    j["device_id"] == '"${DEVICE_ID:-0}"
check "measure: quality ok|suspect with reasons, uid, job_id, launches, repeats (2 by config)" \
  json_true 'j["quality"] in ("ok", "suspect") and isinstance(j["quality_reasons"], list) and
    (j["quality"] == "ok") == (j["quality_reasons"] == []) and len(j["uid"]) == 36 and
    j["job_id"] > 0 and j["launches"] > 0 and j["repeats"] == 2 and j["window_ms"] > 0'
# min_window_ms 20, min_samples 10 at 1 ms: every window asks for settle_ms + 20 ms.
short_window_said='j["window_ms"] >= j["settle_ms"] + 20 or
    any(r.startswith("window ") and "shorter than the" in r for r in j["quality_reasons"])'
check "measure: window_ms >= settle_ms + min_window_ms, or a quality reason says it was short" \
  json_true "$short_window_said"

# ---- fp16 layernorm with repeats from the request ----
http POST /v1/measure '{"kernel":"layernorm","dtype":"fp16","rows":64,"cols":256,"repeats":3}'
check "measure layernorm fp16: 201" [ "$STATUS" = 201 ]
check "measure layernorm fp16: dtype fp16, params rows/cols, repeats 3, latency > 0" \
  json_true 'j["kernel"] == "layernorm" and j["dtype"] == "fp16" and
    j["params"] == {"rows": 64, "cols": 256} and j["repeats"] == 3 and j["latency_us"] > 0'
M2_ID=$(json_get 'j["id"]' 2>/dev/null)

http POST /v1/measure '{"kernel":"linear","batch":8,"in":16,"out":32}'
check "measure linear: 201" [ "$STATUS" = 201 ]
M3_ID=$(json_get 'j["id"]' 2>/dev/null)

# ---- the dataset ----
http GET /v1/measurements
check "measurements: 200 lists the three measurements in id order, next_after null" \
  json_true '[m["id"] for m in j["measurements"]] == ['"${M1_ID:-0},${M2_ID:-0},${M3_ID:-0}"'] and
    j["next_after"] is None'
check "measurements: rows are full Measurement objects (the first equals POST's answer)" \
  json_equal "$(json_get 'j["measurements"][0]')" "$M1"

http GET "/v1/measurements?kernel=layernorm"
check "measurements?kernel=layernorm: only the layernorm one" \
  json_true '[m["id"] for m in j["measurements"]] == ['"${M2_ID:-0}"']'
http GET "/v1/measurements?dtype=fp16"
check "measurements?dtype=fp16: only the fp16 one" \
  json_true '[m["id"] for m in j["measurements"]] == ['"${M2_ID:-0}"']'
http GET "/v1/measurements?kernel=linear_gelu"
check "measurements?kernel=linear_gelu: empty list, next_after null" \
  json_true 'j["measurements"] == [] and j["next_after"] is None'

http GET "/v1/measurements?limit=2"
check "measurements?limit=2: first two, next_after = second id" \
  json_true '[m["id"] for m in j["measurements"]] == ['"${M1_ID:-0},${M2_ID:-0}"'] and
    j["next_after"] == '"${M2_ID:-0}"
NEXT=$(json_get 'j["next_after"]' 2>/dev/null)
http GET "/v1/measurements?limit=2&after=$NEXT"
check "measurements?limit=2&after=next_after: the third, next_after null" \
  json_true '[m["id"] for m in j["measurements"]] == ['"${M3_ID:-0}"'] and j["next_after"] is None'

http GET "/v1/measurements?format=csv"
csv_rows=$(printf '%s\n' "$BODY" | tr -d '\r' | grep -c .)
csv_header=$(printf '%s\n' "$BODY" | head -n 1 | tr -d '\r')
check "measurements?format=csv: 200 text/csv" eval '[ "$STATUS" = 200 ] && content_type_is text/csv'
check "measurements?format=csv: header (id, uid, kernel, latency_us, energy_uj, power_mw.<rail>) and 3 rows" \
  eval '[ "$csv_rows" = 4 ] && [[ "$csv_header" == id,uid,* ]] &&
    contains "$csv_header" ,kernel, && contains "$csv_header" ,latency_us, &&
    contains "$csv_header" ,energy_uj, && contains "$csv_header" power_mw.'
http GET "/v1/measurements?format=csv&kernel=layernorm"
check "measurements?format=csv&kernel=layernorm: header and 1 row" \
  eval '[ "$(printf "%s\n" "$BODY" | tr -d "\r" | grep -c .)" = 2 ]'

http GET "/v1/measurements/${M1_ID:-0}"
check "measurements/{id}: 200, the same measurement as POST answered" json_equal "$BODY" "$M1"

http GET /v1/health
check "health after three measurements: jobs done 3, runner idle" \
  json_true 'j["jobs"]["done"] == 3 and j["jobs"]["queued"] == 0 and j["jobs"]["running"] == 0 and
    j["runner"]["busy"] is False and j["runner"]["jobs_done"] == 3'

# ---- the server answers while a measurement is in flight ----
stop_daemon "jetprofd stops on SIGTERM (exit 0) before the in-flight test"
set_measure measure.min_window_ms=150
start_daemon || bail "jetprofd restarts with a 150 ms window"
# The time limit is a bound: the 20 windows are launch counts, which a loaded
# machine runs several times slower than they were calibrated.
curl -s -o "$TMP/long.body" -w '%{http_code}' --max-time $((300 * SLOW)) -X POST \
  -H 'Content-Type: application/json' \
  -d '{"kernel":"linear","batch":8,"in":16,"out":32,"repeats":20}' \
  "$BASE/v1/measure" >"$TMP/long.status" 2>/dev/null &
long_pid=$!
busy() {
  http GET /v1/health &&
    json_true 'j["runner"]["busy"] is True and j["runner"]["current_job_id"] is not None'
}
fast() { awk -v t="$1" -v limit="$((2 * SLOW))" 'BEGIN { exit !(t < limit) }'; }
if wait_until $((10 * SLOW)) busy; then
  # The answer that said busy came while the measure ran. Then, with no JSON
  # parsing in between (python takes up to a second on a loaded machine):
  # kernels, and health again. A health answer after the kernels one that still
  # names the same running job shows the kernels answer came during the measure
  # too, whatever the timing.
  BUSY_STATUS=$STATUS BUSY_TIME=$TIME_TOTAL BUSY_BODY=$BODY
  http GET /v1/kernels
  KERNELS_STATUS=$STATUS KERNELS_TIME=$TIME_TOTAL
  http GET /v1/health
  AFTER_BODY=$BODY
  ok "health says the runner is busy while a 20-repeat measure runs"
  BUSY_JOB=$(json_get 'j["runner"]["current_job_id"]' "$BUSY_BODY" 2>/dev/null)
  check "GET /v1/health answers 200 in < $((2 * SLOW)) s while the measure is in flight (took ${BUSY_TIME}s)" \
    eval '[ "$BUSY_STATUS" = 200 ] && fast "$BUSY_TIME"'
  check "GET /v1/kernels answers in < $((2 * SLOW)) s while the measure is in flight (took ${KERNELS_TIME}s; job ${BUSY_JOB:-?} still runs after it)" \
    eval '[ "$KERNELS_STATUS" = 200 ] && fast "$KERNELS_TIME" &&
      json_true "j[\"runner\"][\"busy\"] is True and j[\"runner\"][\"current_job_id\"] == ${BUSY_JOB:-0}" "$AFTER_BODY"'
else
  not_ok "health says the runner is busy while a 20-repeat measure runs"
fi
wait "$long_pid"
STATUS=$(cat "$TMP/long.status" 2>/dev/null)
BODY=$(cat "$TMP/long.body" 2>/dev/null)
check "the long measure answers 201 with repeats 20" \
  eval '[ "$STATUS" = 201 ] && json_true "j[\"repeats\"] == 20"'
check "the long measure: window_ms >= settle_ms + 150, or a quality reason says it was short" \
  json_true "${short_window_said//+ 20/+ 150}"

stop_daemon
finish
