#!/usr/bin/env bash
# test_power.sh - the power endpoints against a real jetprofd on three sensors:
# the sim backend, the emulated INA3221 through the real ina3221-i2c code, and
# the real ina3221-hwmon code on a copy of a fixture sysfs tree (plus the
# ina3221x-iio code on a JetPack 4 tree, whose sampling cannot change: 409).
# For each: GET /v1/power, GET /v1/power/stream (Server-Sent Events, ?count),
# PUT /v1/sensor/sampling (the sensor's "got" changes, GET /v1/power and
# /v1/device show it; 422 for values outside the INA3221's tables), and
# GET /metrics through `promtool check metrics`. On sim also: the stream cap
# (503), query errors, auth, and that a stream still open at shutdown ends
# cleanly without holding up the stop.
. "$(dirname "$0")/lib.sh"

FIXTURES=tests/fixtures/sysfs
PROMTOOL=$(command -v promtool || true)
CONV_ALLOWED="140, 204, 332, 588, 1100, 2116, 4156, 8244"
AVG_ALLOWED="1, 4, 16, 64, 128, 256, 512, 1024"

# stream QUERY [CURL ARGS...]: GET /v1/power/stream$QUERY with curl -N; the body
# in $TMP/stream, headers in $TMP/sheaders, curl's exit status in STREAM_RC.
stream() {
  local query=$1
  shift
  curl -s -N -D "$TMP/sheaders" --max-time $((30 * SLOW)) "$@" \
    "$BASE/v1/power/stream$query" >"$TMP/stream" 2>"$TMP/stream.err"
  STREAM_RC=$?
}

# events_check NAME N [PYTHON CONDITION ON evs]: $TMP/stream holds exactly N
# events, each with an increasing id and a data line that is a power sample.
events_check() {
  local name=$1 n=$2 cond=${3:-True}
  local why
  why=$("$PY" - "$TMP/stream" "$n" "$cond" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
want = int(sys.argv[2])
evs = []
for block in text.split("\n\n"):
    lines = [l for l in block.split("\n") if l and not l.startswith(":")]
    if not lines:
        continue
    ev = {}
    for l in lines:
        k, _, v = l.partition(": ")
        ev[k] = v
    evs.append(ev)
if len(evs) != want:
    print("%d events, wanted %d" % (len(evs), want)); sys.exit(1)
ids = [int(e["id"]) for e in evs]
if ids != list(range(ids[0], ids[0] + want)):
    print("ids not consecutive: %r" % ids); sys.exit(1)
docs = [json.loads(e["data"]) for e in evs]
for d in docs:
    if not (isinstance(d["t_ns"], int) and d["age_ms"] >= 0 and len(d["rails"]) >= 1 and
            all(isinstance(r["name"], str) and isinstance(r["power_mw"], (int, float)) and
                isinstance(r["voltage_mv"], (int, float)) and
                isinstance(r["current_ma"], (int, float)) for r in d["rails"]) and
            d["simulated"] in (True, False)):
        print("not a power sample: %r" % d); sys.exit(1)
ts = [d["t_ns"] for d in docs]
if ts != sorted(ts):
    print("sample times go backwards: %r" % ts); sys.exit(1)
evs = docs
if not eval(sys.argv[3]):
    print("condition failed: %s" % sys.argv[3]); sys.exit(1)
EOF
  ) && ok "$name" || not_ok "$name" "$why" "curl exit $STREAM_RC" "$(head -c 400 "$TMP/stream")"
}

power_ready() { http GET /v1/power && [ "$STATUS" = 200 ]; }

# metrics_check PREFIX: /metrics is Prometheus text that promtool accepts.
metrics_check() {
  local prefix=$1
  http GET /metrics
  check "$prefix: /metrics 200 text/plain version 0.0.4" \
    eval '[ "$STATUS" = 200 ] && contains "$(header Content-Type)" "text/plain; version=0.0.4"'
  printf '%s\n' "$BODY" >"$TMP/metrics.txt"
  if [ -n "$PROMTOOL" ]; then
    local out
    if out=$("$PROMTOOL" check metrics <"$TMP/metrics.txt" 2>&1); then
      ok "$prefix: promtool check metrics passes"
    else
      not_ok "$prefix: promtool check metrics passes" "$out"
    fi
  else
    not_ok "$prefix: promtool check metrics passes" "promtool is not installed (scripts/install-deps)"
  fi
  check "$prefix: metrics have rail power, energy counters, sampler counters and jobs" \
    eval 'grep -qE "^jetprof_rail_power_watts\{rail=\"[^\"]+\"\} [0-9.e+-]+$" "$TMP/metrics.txt" &&
      grep -qE "^jetprof_rail_energy_joules_total\{rail=\"[^\"]+\"\} " "$TMP/metrics.txt" &&
      grep -q "^# TYPE jetprof_rail_energy_joules_total counter" "$TMP/metrics.txt" &&
      grep -qE "^jetprof_sampler_samples_total [1-9][0-9]*$" "$TMP/metrics.txt" &&
      grep -q "^jetprof_sampler_read_errors_total " "$TMP/metrics.txt" &&
      grep -q "^jetprof_sampler_overruns_total " "$TMP/metrics.txt" &&
      grep -q "^jetprof_sampler_achieved_rate_hertz " "$TMP/metrics.txt" &&
      grep -q "^jetprof_jobs{state=\"queued\"} 0$" "$TMP/metrics.txt" &&
      grep -q "^jetprof_up 1$" "$TMP/metrics.txt" &&
      grep -q "^jetprof_uptime_seconds " "$TMP/metrics.txt"'
}

# power_check PREFIX BACKEND SIMULATED: GET /v1/power's shape.
power_check() {
  local prefix=$1 backend=$2 simulated=$3
  wait_until $((10 * SLOW)) power_ready
  check "$prefix: GET /v1/power 200 with backend $backend, simulated $simulated" \
    json_true 'j["backend"] == "'"$backend"'" and j["simulated"] is '"$simulated"
  check "$prefix: power has t_ns, age_ms and every rail with voltage, current, power" \
    json_true 'isinstance(j["t_ns"], int) and j["age_ms"] >= 0 and len(j["rails"]) >= 1 and
      all(isinstance(r["name"], str) and r["board_input"] in (True, False) and
          all(isinstance(r[k], (int, float)) for k in ("voltage_mv", "current_ma", "power_mw"))
          for r in j["rails"])'
  check "$prefix: power has sampling asked and got, expected and achieved rate" \
    json_true 'all(isinstance(j["sampling"][w][k], int) for w in ("asked", "got")
      for k in ("averaging", "bus_conv_us", "shunt_conv_us", "period_us")) and
      j["expected_rate_hz"] > 0 and j["achieved_rate_hz"] >= 0'
}

# sampling_422_check PREFIX: values outside the INA3221's tables.
sampling_422_check() {
  local prefix=$1
  http PUT /v1/sensor/sampling '{"conversion_time_us": 150, "averaging": 1}'
  problem_check "$prefix: 422 for conversion_time_us 150, listing the allowed times" 422 \
    "conversion_time_us = 150" "$CONV_ALLOWED"
  check "$prefix: the 422 names the member" json_true 'j["parameter"] == "conversion_time_us"'
  http PUT /v1/sensor/sampling '{"averaging": 3}'
  problem_check "$prefix: 422 for averaging 3, listing the allowed counts" 422 "averaging = 3" \
    "$AVG_ALLOWED"
}

# ======== sim ========
start_daemon --sensor sim || bail "jetprofd starts on the sim sensor"
ok "jetprofd starts on the sim sensor"
power_check sim sim True
check "sim: three rails, VDD_IN the board input; 1000 Hz expected" \
  json_true '[r["name"] for r in j["rails"]] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"] and
    j["rails"][0]["board_input"] is True and j["board_input_rail"] == "VDD_IN" and
    j["expected_rate_hz"] == 1000 and j["sampling"]["got"]["period_us"] == 1000'

# ---- the stream ----
stream "?count=5"
check "sim stream: curl ends cleanly after ?count=5" [ "$STREAM_RC" = 0 ]
check "sim stream: Content-Type text/event-stream" \
  eval 'grep -qi "^content-type: text/event-stream" "$TMP/sheaders"'
check "sim stream: exactly 5 'data:' lines" [ "$(grep -c '^data: ' "$TMP/stream")" = 5 ]
events_check "sim stream: 5 events with ids and power samples, simulated" 5 \
  'all(d["simulated"] is True for d in evs)'
stream "?count=3&interval_ms=200"
events_check "sim stream: ?interval_ms=200 spaces events by at least 200 ms of sample time" 3 \
  'all(b["t_ns"] - a["t_ns"] >= 200000000 for a, b in zip(evs, evs[1:]))'
stream "?count=50&interval_ms=0"
events_check "sim stream: ?interval_ms=0 sends every sample (50 distinct ones)" 50 \
  'len(set(d["t_ns"] for d in evs)) == 50'

http GET "/v1/power/stream?count=0"
problem_check "stream: 400 for count=0, naming the parameter" 400 "'count'"
http GET "/v1/power/stream?interval_ms=abc"
problem_check "stream: 400 for interval_ms=abc" 400 "'interval_ms'"
http GET "/v1/power/stream?every=1"
problem_check "stream: 400 for an unknown query parameter, listing the accepted" 400 \
  "'every'" "count, interval_ms"

# ---- the cap: two streams at most (server.max_streams = 2, threads = 4) ----
curl -s -N --max-time $((60 * SLOW)) "$BASE/v1/power/stream" >"$TMP/bg1" 2>/dev/null &
BG1=$!
curl -s -N --max-time $((60 * SLOW)) "$BASE/v1/power/stream" >"$TMP/bg2" 2>/dev/null &
BG2=$!
both_open() { grep -q '^data: ' "$TMP/bg1" 2>/dev/null && grep -q '^data: ' "$TMP/bg2" 2>/dev/null; }
wait_until $((10 * SLOW)) both_open
check "two background streams are open" both_open
http GET "/v1/power/stream?count=1"
problem_check "a third concurrent stream is 503, naming server.max_streams" 503 \
  "server.max_streams = 2"
check "the 503 has Retry-After" [ -n "$(header Retry-After)" ]
http GET /v1/health
check "the API still answers while two streams run" [ "$STATUS" = 200 ]
kill "$BG1" "$BG2" 2>/dev/null
wait "$BG1" "$BG2" 2>/dev/null
one_stream_ok() { stream "?count=1" && [ "$STREAM_RC" = 0 ] && grep -q '^data: ' "$TMP/stream"; }
wait_until $((10 * SLOW)) one_stream_ok
check "streams are served again once the clients left" one_stream_ok

# ---- sampling ----
http GET /v1/device
OLD_DEVICE_ID=$(json_get 'j["device_id"]')
OLD_FINGERPRINT=$(json_get 'j["fingerprint"]')
http PUT /v1/sensor/sampling '{"conversion_time_us": 204, "averaging": 4, "period_us": 2000}'
check "sim: PUT /v1/sensor/sampling 200 with asked and got" \
  json_true 'j["got"] == {"averaging": 4, "bus_conv_us": 204, "shunt_conv_us": 204,
    "period_us": 2000} and j["asked"]["period_us"] == 2000 and j["asked"]["averaging"] == 4'
http GET /v1/power
check "sim: GET /v1/power shows the new got and 500 Hz expected" \
  json_true 'j["sampling"]["got"]["period_us"] == 2000 and j["sampling"]["got"]["averaging"] == 4
    and j["expected_rate_hz"] == 500'
http GET /v1/device
check "sim: GET /v1/device shows the new got" \
  json_true 'j["sensor"]["sampling"]["got"]["period_us"] == 2000 and
    j["sensor"]["sampling"]["got"]["bus_conv_us"] == 204'
check "sim: the new sampling is a new device row (fingerprint includes the sampling)" \
  json_true "j['device_id'] != $OLD_DEVICE_ID and j['fingerprint'] != '$OLD_FINGERPRINT'"
NEW_DEVICE_ID=$(json_get 'j["device_id"]')
http POST /v1/measure '{"kernel":"linear","batch":4,"in":16,"out":16,"repeats":1}'
check "sim: a measurement after the change is filed under the new device row" \
  json_true "j['device_id'] == $NEW_DEVICE_ID"
http PUT /v1/sensor/sampling '{"period_us": 1000}'
check "sim: a member left out keeps its value" \
  json_true 'j["got"]["period_us"] == 1000 and j["got"]["averaging"] == 4'
sampling_422_check sim
http PUT /v1/sensor/sampling '{"period_us": 50}'
problem_check "422 for period_us 50, giving the range" 422 "[100, 1000000]"
http PUT /v1/sensor/sampling '{"conversion_time_us": 140, "rate": 1}'
problem_check "422 for an unknown member, listing the accepted ones" 422 "'rate'" \
  "conversion_time_us, averaging, period_us"
http PUT /v1/sensor/sampling '{"averaging": "4"}'
problem_check "422 for a string value" 422 "integer"
http PUT /v1/sensor/sampling '{}'
problem_check "422 for an empty object" 422 "changes nothing"
http PUT /v1/sensor/sampling '[140]'
problem_check "422 for a body that is not an object" 422 object
http PUT /v1/sensor/sampling '{"averaging": 4'
problem_check "400 for invalid JSON" 400 line
http GET /v1/sensor/sampling
problem_check "405 for GET /v1/sensor/sampling" 405
check "405 has Allow: PUT" eval 'contains "$(header Allow)" PUT'
http GET /v1/nope
problem_check "404 lists the power endpoints and /metrics" 404 /v1/power/stream \
  /v1/sensor/sampling /metrics

# ---- metrics ----
metrics_check sim
check "sim: jetprof_simulated 1, sensor_info backend sim, three rails" \
  eval 'grep -q "^jetprof_simulated 1$" "$TMP/metrics.txt" &&
    grep -q "^jetprof_sensor_info{backend=\"sim\"} 1$" "$TMP/metrics.txt" &&
    [ "$(grep -c "^jetprof_rail_power_watts{" "$TMP/metrics.txt")" = 3 ]'
energy_vdd_in() { grep '^jetprof_rail_energy_joules_total{rail="VDD_IN"}' "$TMP/metrics.txt" | awk '{print $2}'; }
E1=$(energy_vdd_in)
sleep 0.3
http GET /metrics
printf '%s\n' "$BODY" >"$TMP/metrics.txt"
E2=$(energy_vdd_in)
check "sim: the VDD_IN energy counter grows (about 4.5 W x 0.3 s or more)" \
  "$PY" -c "import sys; sys.exit(0 if float('$E2') - float('$E1') > 0.5 else 1)"

# ---- a stream open at shutdown ends cleanly and does not hold up the stop ----
curl -s -N --max-time $((60 * SLOW)) "$BASE/v1/power/stream" >"$TMP/bg3" 2>/dev/null &
BG3=$!
bg3_open() { grep -q '^data: ' "$TMP/bg3" 2>/dev/null; }
wait_until $((10 * SLOW)) bg3_open
STOP_T0=$(date +%s%N)
stop_daemon "jetprofd stops on SIGTERM with a stream open"
STOP_MS=$((($(date +%s%N) - STOP_T0) / 1000000))
wait "$BG3"
BG3_RC=$?
check "the open stream ended cleanly at shutdown (curl exit 0, got $BG3_RC)" [ "$BG3_RC" = 0 ]
check "the stop took under $((10 * SLOW)) s with the stream open (took $STOP_MS ms)" \
  [ "$STOP_MS" -lt $((10000 * SLOW)) ]
check "the daemon log says the stream ended" grep -q "power stream.* ended" "$LOG"

# ---- auth and the cap set to zero ----
printf 'tok-123\n' >"$TMP/token"
start_daemon --sensor sim --token-file "$TMP/token" --set server.max_streams=0 ||
  bail "jetprofd starts with a token file and max_streams=0"
http PUT /v1/sensor/sampling '{"averaging": 4}'
problem_check "PUT /v1/sensor/sampling needs the bearer token (401)" 401
check "401 has WWW-Authenticate: Bearer" eval 'contains "$(header WWW-Authenticate)" Bearer'
http PUT /v1/sensor/sampling '{"averaging": 4}' -H 'Authorization: Bearer tok-123'
check "with the token: 200" json_true 'j["got"]["averaging"] == 4'
http GET "/v1/power/stream?count=1"
problem_check "server.max_streams=0: streams are off (503)" 503 "streams are off"
http GET /v1/power
check "GET /v1/power needs no token" [ "$STATUS" = 200 ]
stop_daemon

# ---- a GPIO marker that is not there is a start-up error naming chip and line ----
timeout $((30 * SLOW)) "$JETPROFD" --config none --listen 127.0.0.1:0 --db "$TMP/gpio.db" \
  --sensor sim --set sensor.gpio_chip=gpiochip-jetprof-test --set sensor.gpio_line=7 \
  >"$TMP/gpio.log" 2>&1
GPIO_RC=$?
check "a missing GPIO chip: jetprofd exits with status 1 (got $GPIO_RC)" [ "$GPIO_RC" = 1 ]
check "a missing GPIO chip: the error names the chip and the line" \
  eval 'grep -q "gpio marker failed: .*gpiochip-jetprof-test.* line 7" "$TMP/gpio.log"'
check "a missing GPIO chip: no sanitizer report" eval '! sanitizer_report_in "$TMP/gpio.log"'

# ======== the emulated INA3221 through the ina3221-i2c backend ========
EMU=(--sensor ina3221-i2c --set sensor.i2c_emulated=true --set sensor.i2c_bus=1
  --set sensor.i2c_addr=0x40 --set sensor.shunt_uohm=5000,5000,5000
  --set sensor.rails=VDD_IN,VDD_CPU_GPU_CV,VDD_SOC --sysfs-root "$TMP/empty-sys")
mkdir -p "$TMP/empty-sys"
if start_daemon "${EMU[@]}"; then
  ok "jetprofd starts on the emulated INA3221"
  power_check emulated ina3221-i2c True
  check "emulated: rails as configured; 3 channels x (140 + 140) us = 840 us per fresh sample" \
    json_true '[r["name"] for r in j["rails"]] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"] and
      j["sampling"]["got"]["bus_conv_us"] == 140 and j["sampling"]["got"]["period_us"] == 840'
  stream "?count=5"
  check "emulated stream: ends cleanly with exactly 5 'data:' lines" \
    eval '[ "$STREAM_RC" = 0 ] && [ "$(grep -c "^data: " "$TMP/stream")" = 5 ]'
  events_check "emulated stream: 5 power samples" 5 'all(d["simulated"] is True for d in evs)'
  http PUT /v1/sensor/sampling '{"conversion_time_us": 588, "averaging": 16}'
  check "emulated: PUT 200, the chip took 588 us and 16 samples (period 3 x 2 x 588 us)" \
    json_true 'j["got"]["bus_conv_us"] == 588 and j["got"]["shunt_conv_us"] == 588 and
      j["got"]["averaging"] == 16 and j["got"]["period_us"] == 3528'
  http GET /v1/power
  check "emulated: GET /v1/power shows what the chip took" \
    json_true 'j["sampling"]["got"]["bus_conv_us"] == 588 and j["sampling"]["got"]["averaging"] == 16'
  http GET /v1/device
  check "emulated: GET /v1/device shows what the chip took" \
    json_true 'j["sensor"]["sampling"]["got"]["bus_conv_us"] == 588'
  sampling_422_check emulated
  stream "?count=3"
  events_check "emulated: the stream goes on after the change" 3
  metrics_check emulated
  stop_daemon "jetprofd on the emulated INA3221 stops cleanly"
else
  bail "jetprofd starts on the emulated INA3221"
fi

# ======== a fixture sysfs tree through the ina3221-hwmon backend ========
cp -r "$FIXTURES/orin-nano" "$TMP/sys-hwmon"
HWMON=$(ls -d "$TMP"/sys-hwmon/bus/i2c/drivers/ina3221/*/hwmon/hwmon* | head -n 1)
SAMPLES_BEFORE=$(cat "$HWMON/samples" 2>/dev/null)
INTERVAL_BEFORE=$(cat "$HWMON/update_interval" 2>/dev/null)
if start_daemon --sensor ina3221-hwmon --sysfs-root "$TMP/sys-hwmon"; then
  ok "jetprofd starts on the orin-nano hwmon fixture"
  power_check hwmon ina3221-hwmon False
  check "hwmon: the fixture's rails, VDD_IN the board input" \
    json_true 'j["board_input_rail"] == "VDD_IN" and "VDD_IN" in [r["name"] for r in j["rails"]]
      and all(r["power_mw"] > 0 for r in j["rails"])'
  stream "?count=5"
  check "hwmon stream: ends cleanly with exactly 5 'data:' lines" \
    eval '[ "$STREAM_RC" = 0 ] && [ "$(grep -c "^data: " "$TMP/stream")" = 5 ]'
  events_check "hwmon stream: 5 power samples, not simulated" 5 \
    'all(d["simulated"] is False for d in evs)'
  http PUT /v1/sensor/sampling '{"conversion_time_us": 1100, "averaging": 4}'
  check "hwmon: PUT 200, the driver's read-back says 4 samples" \
    json_true 'j["got"]["averaging"] == 4 and j["got"]["bus_conv_us"] > 0'
  GOT_PERIOD=$(json_get 'j["got"]["period_us"]' 2>/dev/null)
  check "hwmon: the driver's samples attribute now holds 4" [ "$(cat "$HWMON/samples")" = 4 ]
  http GET /v1/power
  check "hwmon: GET /v1/power shows the new got" \
    json_true 'j["sampling"]["got"]["averaging"] == 4 and
      j["sampling"]["got"]["period_us"] == '"${GOT_PERIOD:-0}"
  sampling_422_check hwmon
  metrics_check hwmon
  check "hwmon: jetprof_simulated 0" grep -q "^jetprof_simulated 0$" "$TMP/metrics.txt"
  stop_daemon "jetprofd on the hwmon fixture stops cleanly"
  check "hwmon: samples and update_interval restored at stop" \
    eval '[ "$(cat "$HWMON/samples")" = "$SAMPLES_BEFORE" ] &&
      [ "$(cat "$HWMON/update_interval")" = "$INTERVAL_BEFORE" ]'
else
  bail "jetprofd starts on the orin-nano hwmon fixture"
fi

# ======== a JetPack 4 tree through ina3221x-iio: sampling cannot change (409) ========
cp -r "$FIXTURES/nano-jp4" "$TMP/sys-iio"
if start_daemon --sensor ina3221x-iio --sysfs-root "$TMP/sys-iio"; then
  ok "jetprofd starts on the nano-jp4 iio fixture"
  power_check iio ina3221x-iio False
  http PUT /v1/sensor/sampling '{"conversion_time_us": 140, "averaging": 1}'
  problem_check "iio: 409 for a sampling change, saying the backend cannot" 409 \
    "'ina3221x-iio' cannot change its sampling"
  sampling_422_check iio
  stream "?count=2"
  events_check "iio stream: 2 power samples" 2
  metrics_check iio
  stop_daemon "jetprofd on the iio fixture stops cleanly"
else
  bail "jetprofd starts on the nano-jp4 iio fixture"
fi

finish
