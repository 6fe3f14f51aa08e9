#!/usr/bin/env bash
# test_estimate.sh - POST /v1/predict and POST /v1/estimate against a real
# jetprofd (sim sensor, CPU executor, fast measure and training settings).
#
# Before any model exists: every bad input is refused with its status and a
# problem detail naming the place (invalid JSON 400 with line/column; configs[i]
# 422; bad graphs 422 with member "node": cycle, dangling input, unknown op,
# duplicate name, shape mismatch, too many nodes; a batch names graphs[i] and
# member "graph"; a bad ?merge is 400; 405 and 413), and a valid request is a
# 409 listing every kernel type without a model. The 409 for the fixture graph
# tests/fixtures/graphs/mlp.json says which kernel types it needs: those are
# measured (a random sweep each, POST /v1/jobs) and trained (POST
# /v1/models/train, quality "any"). Then: predictions with the measured values
# where a configuration was measured and null where not, "simulated": true;
# the graph estimated with merge on and off and in a batch; and /metrics shows
# the prediction cache's hits growing on a repeated request.
. "$(dirname "$0")/lib.sh"

FIXTURE=tests/fixtures/graphs/mlp.json
[ -f "$FIXTURE" ] || bail "fixture $FIXTURE exists (written with the graph module)"
MLP=$(cat "$FIXTURE")
MLP_NODES=$(json_get 'len(j["nodes"])' "$MLP") || bail "$FIXTURE is a native graph with nodes"
# The node limit sits just above the fixture, so a slightly bigger graph trips it.
MAX_NODES=$((MLP_NODES + 4))

start_daemon --set predict.max_graph_nodes=$MAX_NODES --set predict.train_rounds=20 \
  --set predict.train_ensemble=2 || bail "jetprofd starts"
ok "jetprofd starts (predict.max_graph_nodes=$MAX_NODES, short training)"

LIN='{"kernel": "linear", "batch": 8, "in": 16, "out": 32}'

# problem_is NAME STATUS EXPR [NEEDLE...]: problem_check (status, problem+json,
# status/title members, every NEEDLE in the detail) plus the Python expression
# EXPR over j, in one python run (each run costs ~0.1 s on a loaded machine).
problem_is() {
  local name=$1 want=$2 expr=$3
  shift 3
  local why=() out
  [ "$STATUS" = "$want" ] || why+=("status $STATUS, wanted $want")
  is_problem || why+=("Content-Type '$(header Content-Type)', wanted application/problem+json")
  out=$(printf '%s' "$BODY" | "$PY" -c '
import json, sys
want, expr, needles = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
try:
    j = json.load(sys.stdin)
except Exception as e:
    print("not JSON: %s" % e); sys.exit()
bad = []
if j.get("status") != want or not isinstance(j.get("title"), str) or not j["title"]:
    bad.append("problem members status/title missing or wrong")
detail = j.get("detail") if isinstance(j.get("detail"), str) else ""
bad += ["detail lacks %r" % n for n in needles if n not in detail]
try:
    if not eval("(" + expr + "\n)", {"j": j, "json": json}):
        bad.append("condition failed: " + expr)
except Exception as e:
    bad.append("%s: %r" % (expr, e))
if bad:
    bad.append("detail: " + detail)
print("\n".join(bad))
' "$want" "$expr" "$@" 2>&1)
  [ -n "$out" ] && why+=("$out")
  if [ ${#why[@]} -eq 0 ]; then
    ok "$name"
  else
    not_ok "$name" "${why[@]}"
  fi
}

# ---- POST /v1/predict: bad input ----
http POST /v1/predict '{"configs": [{"kernel": "linear",'
problem_is "predict: invalid JSON is 400 with line and column; invalid JSON problem has line/column members" 400 'j["line"] == 1 and j["column"] > 0' "invalid JSON" "line 1"
http POST /v1/predict '{}'
problem_is "predict: no configs is 422 naming 'configs'" 422 'True' "configs"
http POST /v1/predict '{"configs": []}'
problem_is "predict: an empty list is 422 (1 to 10000)" 422 'True' "configs" "1 to 10000"
http POST /v1/predict '{"configs": {"kernel": "linear"}}'
problem_is "predict: configs not an array is 422" 422 'True' "configs"
http POST /v1/predict "{\"configs\": [$LIN], \"extra\": 1}"
problem_is "predict: an unknown member is 422 naming it" 422 'True' "extra"
http POST /v1/predict "{\"configs\": [$LIN, {\"kernel\": \"linear\", \"batch\": 0, \"in\": 16, \"out\": 32}]}"
problem_is "predict: a parameter out of range is 422 naming configs[1] and batch; problem parameter is configs[1].batch" 422 'j["parameter"] == "configs[1].batch"'  "configs[1]: " "batch"
http POST /v1/predict "{\"configs\": [{\"kernel\": \"convolution\", \"batch\": 1}, $LIN]}"
problem_is "predict: an unknown kernel is 422 naming configs[0]" 422 'True' "configs[0]: " "convolution"
http POST /v1/predict "{\"configs\": [$LIN, {\"kernel\": \"linear\", \"batch\": 8, \"in\": 16, \"out\": 32, \"bias\": true}]}"
problem_is "predict: an unknown parameter is 422 naming configs[1]" 422 'True' "configs[1]: " "bias"
http POST /v1/predict "{\"configs\": [$LIN, \"linear\"]}"
problem_is "predict: a config that is not an object is 422 naming configs[1]" 422 'True' "configs[1]: "
many=$("$PY" -c 'import json
print(json.dumps({"configs": [{"kernel": "linear", "batch": 8, "in": 16, "out": 32}] * 10001}))')
http POST /v1/predict "$many"
problem_is "predict: 10001 configs is 422" 422 'True' "10001" "1 to 10000"

# ---- before any training: 409 naming every missing kernel type ----
http POST /v1/predict "{\"configs\": [$LIN]}"
problem_is "predict before training: 409 saying what to measure and train; member kernels == [linear]" 409 'j["kernels"] == ["linear"]'  "no model for kernel type 'linear'" "POST /v1/jobs" "POST /v1/models/train"
http POST /v1/predict "{\"configs\": [$LIN, {\"kernel\": \"softmax\", \"rows\": 4, \"cols\": 8}, $LIN]}"
problem_is "predict before training, two kernel types: one 409 naming both; member kernels lists both once" 409 'sorted(j["kernels"]) == ["linear", "softmax"]' "'linear'" "'softmax'"

# ---- POST /v1/estimate: bad input ----
http POST /v1/estimate '{"batch": 4, "nodes": ['
problem_is "estimate: invalid JSON is 400 with line and column" 400 'True' "invalid JSON" "line 1"
http POST "/v1/estimate?merge=maybe" "$MLP"
problem_is "estimate: ?merge=maybe is 400 naming merge; problem parameter is merge" 400 'j["parameter"] == "merge"' "merge" "maybe"
http POST "/v1/estimate?merge=true&merge=false" "$MLP"
problem_is "estimate: ?merge twice is 400" 400 'True' "merge"
http POST "/v1/estimate?fuse=1" "$MLP"
problem_is "estimate: an unknown query parameter is 400 naming it" 400 'True' "fuse"

# graph GRAPH_NODES_JSON: a native graph over input x[16] with batch 4.
graph() { printf '{"batch": 4, "dtype": "fp32", "inputs": [{"name": "x", "shape": [16]}], "nodes": [%s]}' "$1"; }
CYCLE=$(graph '{"name": "a", "op": "linear", "inputs": ["b"], "out": 16}, {"name": "b", "op": "linear", "inputs": ["a"], "out": 16}')
DANGLING=$(graph '{"name": "fc1", "op": "linear", "inputs": ["x"], "out": 8}, {"name": "fc2", "op": "linear", "inputs": ["fc9"], "out": 8}')
UNKNOWN_OP=$(graph '{"name": "c1", "op": "conv2d", "inputs": ["x"]}')
DUPLICATE=$(graph '{"name": "fc1", "op": "linear", "inputs": ["x"], "out": 8}, {"name": "fc1", "op": "linear", "inputs": ["x"], "out": 8}')
MISMATCH=$(graph '{"name": "fc1", "op": "linear", "inputs": ["x"], "out": 8}, {"name": "sum", "op": "add", "inputs": ["fc1", "x"]}')
TOO_MANY=$("$PY" -c 'import json, sys
n = int(sys.argv[1])
nodes = [{"name": "fc%d" % i, "op": "linear", "inputs": ["fc%d" % (i - 1) if i else "x"], "out": 8}
         for i in range(n)]
print(json.dumps({"batch": 4, "dtype": "fp32", "inputs": [{"name": "x", "shape": [16]}], "nodes": nodes}))' \
  $((MAX_NODES + 1)))

http POST /v1/estimate "$CYCLE"
problem_is "estimate: a cycle is 422; the cycle problem names a node of it" 422 'j.get("node") in ("a", "b")' "cycle"
http POST /v1/estimate "$DANGLING"
problem_is "estimate: a dangling input is 422 naming node and input; member node == fc2" 422 'j["node"] == "fc2"' "fc2" "fc9"
http POST /v1/estimate "$UNKNOWN_OP"
problem_is "estimate: an unknown op is 422 naming node and op; member node == c1" 422 'j["node"] == "c1"' "c1" "conv2d"
http POST /v1/estimate "$DUPLICATE"
problem_is "estimate: a duplicate node name is 422; member node == fc1" 422 'j["node"] == "fc1"' "fc1"
http POST /v1/estimate "$MISMATCH"
problem_is "estimate: add of two shapes is 422 naming the node; member node == sum" 422 'j["node"] == "sum"' "sum"
http POST /v1/estimate "$TOO_MANY"
problem_is "estimate: more nodes than predict.max_graph_nodes is 422" 422 'True' "$MAX_NODES"
http POST /v1/estimate '[1, 2]'
check "estimate: a JSON array is not a graph (400 or 422 problem)" \
  eval '{ [ "$STATUS" = 400 ] || [ "$STATUS" = 422 ]; } && is_problem'

http POST /v1/estimate "{\"graphs\": [$MLP, $DANGLING]}"
problem_is "estimate batch: a bad graph is 422 whose detail starts graphs[1]: ; members graph == 1 and node == fc2" 422 'j["graph"] == 1 and j["node"] == "fc2" and j["detail"].startswith("graphs[1]: ")' "graphs[1]: " "fc9"
http POST /v1/estimate '{"graphs": []}'
problem_is "estimate batch: no graphs is 422" 422 'True' "graphs" "1 to 10000"
http POST /v1/estimate "{\"graphs\": [$MLP], \"merge\": false}"
problem_is "estimate batch: a member beside graphs is 422 naming it" 422 'True' "merge"

# ---- 405, 413 ----
http GET /v1/predict
problem_is "GET /v1/predict is 405" 405 'True' GET
check "405 /v1/predict has Allow: POST" eval 'contains "$(header Allow)" POST'
http GET /v1/estimate
problem_is "GET /v1/estimate is 405" 405 'True' GET
check "405 /v1/estimate has Allow: POST" eval 'contains "$(header Allow)" POST'
big=$("$PY" -c 'import json
print(json.dumps({"configs": [{"kernel": "linear", "batch": 8, "in": 16, "out": 32, "pad": "x" * 1200000}]}))')
http POST /v1/predict "$big"
problem_is "predict: a body over server.max_body_bytes is 413" 413 'True'

# ---- the fixture before training: 409 listing what it needs ----
http POST /v1/estimate "$MLP"
problem_is "estimate $FIXTURE before training: 409 naming what to measure; member kernels is a non-empty list" 409 'isinstance(j["kernels"], list) and len(j["kernels"]) > 0'  "no model for kernel type" "POST /v1/models/train"
NEEDED=$(json_get '" ".join(j["kernels"])' 2>/dev/null)
http POST /v1/estimate "{\"graphs\": [$MLP, $MLP]}"
problem_is "estimate batch before training: 409; estimate batch 409 lists the same kernel types" 409 'sorted(j["kernels"]) == sorted("'"$NEEDED"'".split())' "no model for kernel type"
[ -n "$NEEDED" ] || bail "the fixture names the kernel types it needs"
echo "# $FIXTURE needs: $NEEDED"

# ---- collect a small dataset and train ----
http GET /v1/kernels
KERNELS=$BODY
BATCHES=()
for k in $NEEDED; do
  body=$("$PY" -c 'import json, sys
cat = {k["name"]: k for k in json.loads(sys.argv[1])["kernels"]}
k = cat[sys.argv[2]]
# small shapes: quick on the CPU executor, still varied enough to learn from
params = {p["name"]: [p["min"], max(p["min"], min(p["max"], 48))] for p in k["params"]}
print(json.dumps({"sweep": {"type": "random", "kernel": k["name"], "count": 21, "seed": 5,
                            "params": params}, "repeats": 1}))' "$KERNELS" "$k")
  http POST /v1/jobs "$body"
  check "POST /v1/jobs: 21 $k configurations queued" \
    eval '[ "$STATUS" = 201 ] && json_true '"'"'j["jobs"] >= 20'"'"
  BATCHES+=("$(json_get 'j["batch_id"]' 2>/dev/null)")
done
batch_done() { http GET "/v1/batches/$1" && json_true 'j["counts"]["queued"] == 0 and j["counts"]["running"] == 0'; }
for b in "${BATCHES[@]}"; do
  wait_until $((150 * SLOW)) batch_done "$b"
  check "batch $b measured (no job failed)" json_true 'j["counts"]["done"] >= 20 and j["counts"]["failed"] == 0'
done

http POST /v1/models/train '{"quality": "any"}'
check "POST /v1/models/train (quality any): 200 with models for every needed kernel type" \
  eval '[ "$STATUS" = 200 ] && json_true '"'"'set(m["kernel"] for m in j["models"]) >= set("'"$NEEDED"'".split())'"'"
check "training answer is labelled simulated" json_true 'j["simulated"] is True'

# ---- POST /v1/predict ----
K1=${NEEDED%% *}
http GET "/v1/measurements?kernel=$K1&limit=1"
MEASURED=$(json_get 'j["measurements"][0]' 2>/dev/null)
M_ID=$(json_get 'j["id"]' "$MEASURED")
M_CFG=$(json_get 'dict(j["params"], kernel=j["kernel"], dtype=j["dtype"])' "$MEASURED")
# The same kernel type with every parameter at twice its sweep ceiling: never measured.
U_CFG=$("$PY" -c 'import json, sys
cat = {k["name"]: k for k in json.loads(sys.argv[1])["kernels"]}
k = cat[sys.argv[2]]
cfg = {"kernel": k["name"], "dtype": "fp32"}
cfg.update({p["name"]: max(p["min"], min(p["max"], 96)) for p in k["params"]})
print(json.dumps(cfg))' "$KERNELS" "$K1")
http POST /v1/predict "{\"configs\": [$M_CFG, $U_CFG]}"
check "predict after training: 200, simulated, two predictions" \
  eval '[ "$STATUS" = 200 ] && json_true '"'"'j["simulated"] is True and len(j["predictions"]) == 2'"'"
check "predict: each prediction has kernel, dtype, params, config_key, latency, power and energy per rail" \
  json_true 'all(p["kernel"] == "'"$K1"'" and p["dtype"] == "fp32" and isinstance(p["params"], dict) and
      p["config_key"].startswith("'"$K1"':fp32:") and p["latency_us"] > 0 and p["latency_us_spread"] >= 0 and
      len(p["power_mw"]) > 0 and set(p["energy_uj"]) == set(p["power_mw"]) == set(p["power_mw_spread"])
      for p in j["predictions"])'
check "predict: energy_uj = latency_us x power_mw / 1000 per rail" \
  json_true 'all(abs(p["energy_uj"][r] - p["latency_us"] * p["power_mw"][r] / 1000) <= 1e-6 * abs(p["energy_uj"][r]) + 1e-9
      for p in j["predictions"] for r in p["power_mw"])'
check "predict: the measured config carries its newest measurement" \
  json_true 'j["predictions"][0]["measured"]["measurement_id"] == '"$M_ID"' and
    j["predictions"][0]["measured"]["latency_us"] > 0 and len(j["predictions"][0]["measured"]["power_mw"]) > 0 and
    j["predictions"][0]["measured"]["quality"] in ("ok", "suspect") and
    isinstance(j["predictions"][0]["measured"]["created_at"], str)'
check "predict: the unmeasured config has measured null" json_true 'j["predictions"][1]["measured"] is None'
FIRST=$BODY
http POST /v1/predict "{\"configs\": [$M_CFG, $U_CFG]}"
check "predict again: the same answer (from the cache)" json_equal "$FIRST" "$BODY"
http POST /v1/predict "{\"configs\": [$M_CFG, {\"kernel\": \"concat\", \"rows\": 4, \"cols_a\": 8, \"cols_b\": 8}]}"
if [[ " $NEEDED " == *" concat "* ]]; then
  check "predict: concat has a model" [ "$STATUS" = 200 ]
else
  problem_check "predict: a kernel type still without a model is 409" 409 "'concat'"
fi

# ---- POST /v1/estimate ----
metric() { http GET /metrics && printf '%s\n' "$BODY" | awk -v m="$1" '$1 == m {print $2}'; }
http POST /v1/estimate "$MLP"
check "estimate $FIXTURE: 200, native, merge true, simulated, kernels listed" \
  eval '[ "$STATUS" = 200 ] && json_true '"'"'j["format"] == "native" and j["merge"] is True and
    j["simulated"] is True and len(j["kernels"]) > 0 and j["graph_nodes"] == '"$MLP_NODES"''"'"
check "estimate: totals are the sums over the kernels" \
  json_true 'j["totals"]["kernels"] == len(j["kernels"]) and
    abs(j["totals"]["latency_us"] - sum(k["latency_us"] for k in j["kernels"])) <= 1e-6 * j["totals"]["latency_us"] and
    all(abs(j["totals"]["energy_uj"]["rails"][r] - sum(k["energy_uj"][r] for k in j["kernels"])) <= 1e-6 * j["totals"]["energy_uj"]["rails"][r]
        for r in j["totals"]["energy_uj"]["rails"])'
check "estimate: board-input energy is its rail's (or the sum), gpu a number or null with its rail" \
  json_true '(lambda t, e: abs(e["board_input"] - (sum(e["rails"].values()) if t["board_input_rail"] == "sum"
    else e["rails"][t["board_input_rail"]])) <= 1e-9 * abs(e["board_input"]) and ((t["gpu_rail"] is None and e["gpu"] is None) or
    e["gpu"] == e["rails"][t["gpu_rail"]]))(j["totals"], j["totals"]["energy_uj"])'
check "estimate: every kernel names its graph nodes, depth and merged count" \
  json_true 'all(len(k["nodes"]) >= 1 and k["depth"] >= 1 and k["merged"] >= 1 and k["config_key"] for k in j["kernels"])'
MERGED=$BODY
http POST "/v1/estimate?merge=false" "$MLP"
check "estimate ?merge=false: 200, merge false, no merged kernels, at least as many kernels" \
  eval '[ "$STATUS" = 200 ] && json_true '"'"'j["merge"] is False and all(k["merged"] == 1 for k in j["kernels"]) and
    len(j["kernels"]) >= '"$(json_get 'len(j["kernels"])' "$MERGED")"''"'"
# Two projections of one input at the same depth: one linear when merged.
PAR='{"name": "qk", "batch": 16, "dtype": "fp32", "inputs": [{"name": "x", "shape": [32]}],
  "nodes": [{"name": "q", "op": "linear", "inputs": ["x"], "out": 24},
            {"name": "k", "op": "linear", "inputs": ["x"], "out": 24}]}'
http POST /v1/estimate "$PAR"
check "estimate of two parallel linears, merged: one linear of out 48 covering q and k" \
  eval '[ "$STATUS" = 200 ] && json_true '"'"'len(j["kernels"]) == 1 and j["kernels"][0]["merged"] == 2 and
    j["kernels"][0]["params"]["out"] == 48 and j["kernels"][0]["nodes"] == ["q", "k"]'"'"
PAR_MERGED=$BODY
http POST "/v1/estimate?merge=false" "$PAR"
check "the same with ?merge=false: two linears, and the totals sum them" \
  eval '[ "$STATUS" = 200 ] && json_true '"'"'len(j["kernels"]) == 2 and j["totals"]["kernels"] == 2 and
    abs(j["totals"]["latency_us"] - j["kernels"][0]["latency_us"] - j["kernels"][1]["latency_us"]) <= 1e-6 * j["totals"]["latency_us"]'"'"
PAR_APART=$BODY
http POST "/v1/estimate?merge=true" "{\"graphs\": [$MLP, $PAR, $MLP]}"
check "estimate batch of three: 200, three estimates, each the single answer" \
  eval '[ "$STATUS" = 200 ] && json_true '"'"'len(j["estimates"]) == 3 and j["simulated"] is True'"'"' &&
    json_equal "$(json_get "j[\"estimates\"][0]")" "$MERGED" && json_equal "$(json_get "j[\"estimates\"][1]")" "$PAR_MERGED" &&
    json_equal "$(json_get "j[\"estimates\"][2]")" "$MERGED"'
http POST "/v1/estimate?merge=false" "{\"graphs\": [$PAR]}"
check "estimate batch with ?merge=false: the unmerged answer" \
  eval '[ "$STATUS" = 200 ] && json_equal "$(json_get "j[\"estimates\"][0]")" "$PAR_APART"'

# ---- the cache on /metrics ----
HITS1=$(metric jetprof_prediction_cache_hits_total)
MISSES1=$(metric jetprof_prediction_cache_misses_total)
http POST /v1/estimate "$MLP"
HITS2=$(metric jetprof_prediction_cache_hits_total)
MISSES2=$(metric jetprof_prediction_cache_misses_total)
check "metrics: a repeated estimate is all cache hits (hits $HITS1 -> $HITS2, misses $MISSES1 -> $MISSES2)" \
  eval '[ -n "$HITS1" ] && [ -n "$HITS2" ] && [ "$HITS2" -gt "$HITS1" ] && [ "$MISSES2" = "$MISSES1" ]'
http GET /metrics
printf '%s\n' "$BODY" >"$TMP/metrics.txt"
check "metrics: cache entries, capacity, models and generation" \
  eval 'grep -qE "^jetprof_prediction_cache_entries [1-9][0-9]*$" "$TMP/metrics.txt" &&
    grep -qE "^jetprof_prediction_cache_capacity [0-9]+$" "$TMP/metrics.txt" &&
    grep -qE "^jetprof_models [1-9][0-9]*$" "$TMP/metrics.txt" &&
    grep -qE "^jetprof_model_generation [1-9][0-9]*$" "$TMP/metrics.txt" &&
    grep -q "^# TYPE jetprof_prediction_cache_hits_total counter" "$TMP/metrics.txt"'
PROMTOOL=$(command -v promtool || true)
if [ -n "$PROMTOOL" ]; then
  check "metrics: promtool check metrics passes" eval '"$PROMTOOL" check metrics <"$TMP/metrics.txt" >/dev/null 2>&1'
fi

stop_daemon
finish
