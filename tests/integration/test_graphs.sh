#!/usr/bin/env bash
# test_graphs.sh - whole-graph measurement, validation and adaptive sampling
# over HTTP against a real jetprofd (sim sensor, CPU executor, the fast measure
# settings, a bearer token).
#
# POST /v1/graphs/measure: every bad input (auth, JSON, members, graphs the
# graph module refuses, naming graphs[i] and the node); three graphs with two
# parallel branches are measured as jobs (202, Location, a duplicate answered
# with job_id null), each stored once with its hash and linked to a
# measurements row (kernel "graph", streams 1 on the CPU); a kill -9 during a
# graph job leaves it done exactly once after the restart; the export carries
# the graphs. GET /v1/validation: empty before, then every measured graph with
# its merged and unmerged estimate, and every figure checked against values
# computed here from the stored rows (sqlite3) and POST /v1/estimate of the
# stored graph text with merge on and off: relative errors, MAPE, the share
# within +-10 % and Kendall's tau-b. Adaptive sampling: an adaptive sweep's
# rounds run after its jobs, queue their proposals in the same batch and show
# in GET /v1/batches/{id}.
. "$(dirname "$0")/lib.sh"

command -v sqlite3 >/dev/null || bail "sqlite3 is installed"
sql() { sqlite3 -batch -noheader "$DB" "$1" 2>&1; }

TOKEN=graphs-test-token
printf '%s\n' "$TOKEN" >"$TMP/token"
AUTH=(-H "Authorization: Bearer $TOKEN")

start_daemon --token-file "$TMP/token" || bail "jetprofd starts with a token file"
ok "jetprofd starts with a token file"

# A graph with two parallel branches (linear -> relu -> layernorm each) of widths
# W1 and W2 on one input: after fusion two linear_relu at depth 1 and two
# layernorm at depth 2; merged, one linear_relu and (equal widths) one layernorm.
branches() { # NAME BATCH IN W1 W2
  printf '{"name": "%s", "batch": %d, "dtype": "fp32", "inputs": [{"name": "x", "shape": [%d]}], "nodes": [
    {"name": "a_fc", "op": "linear", "inputs": ["x"], "out": %d},
    {"name": "a_relu", "op": "relu", "inputs": ["a_fc"]},
    {"name": "a_ln", "op": "layernorm", "inputs": ["a_relu"]},
    {"name": "b_fc", "op": "linear", "inputs": ["x"], "out": %d},
    {"name": "b_relu", "op": "relu", "inputs": ["b_fc"]},
    {"name": "b_ln", "op": "layernorm", "inputs": ["b_relu"]}]}' "$1" "$2" "$3" "$4" "$5"
}
G1=$(branches two_branch_a 16 32 48 48)
G2=$(branches two_branch_b 32 64 32 64)
G3=$(branches two_branch_c 8 48 64 64)

# ---- bad inputs ----
http POST /v1/graphs/measure "{\"graph\": $G1}"
problem_check "measure without the token: 401" 401 "Authorization"
http POST /v1/graphs/measure '{"graph": {' "${AUTH[@]}"
problem_check "invalid JSON: 400 with line and column" 400 "invalid JSON"
http POST /v1/graphs/measure '[1]' "${AUTH[@]}"
problem_check "a body that is not an object: 400" 400 "JSON object"
http POST /v1/graphs/measure "{\"graph\": $G1, \"speed\": 2}" "${AUTH[@]}"
problem_check "an unknown member: 422 naming it and the accepted ones" 422 "unknown member 'speed'" \
  "graph, graphs, repeats, repeat_existing"
http POST /v1/graphs/measure "{\"graph\": $G1, \"graphs\": [$G2]}" "${AUTH[@]}"
problem_check "both graph and graphs: 422" 422 "either 'graph' or 'graphs'"
http POST /v1/graphs/measure '{"repeats": 2}' "${AUTH[@]}"
problem_check "neither graph nor graphs: 422" 422 "missing 'graph'"
http POST /v1/graphs/measure '{"graphs": []}' "${AUTH[@]}"
problem_check "an empty graphs array: 422" 422 "1 to 100 graphs"
http POST /v1/graphs/measure "{\"graphs\": [$(for i in $(seq 101); do printf '%s{}' "$([ "$i" -gt 1 ] && echo ,)"; done)]}" "${AUTH[@]}"
problem_check "101 graphs: 422" 422 "1 to 100 graphs"
http POST /v1/graphs/measure '{"graph": 7}' "${AUTH[@]}"
problem_check "graph not an object: 422" 422 "member 'graph' must be a graph object"
BAD=$(printf '%s' "$G2" | sed 's/"op": "relu"/"op": "swish"/')
http POST /v1/graphs/measure "{\"graphs\": [$G1, $BAD]}" "${AUTH[@]}"
problem_check "an unknown op in the second graph: 422 naming graphs[1] and the node" 422 "graphs[1]" "swish"
check "  ... members node and graph" json_true 'j["node"] == "a_relu" and j["graph"] == 1'
CYCLE='{"batch": 4, "dtype": "fp32", "inputs": [{"name": "x", "shape": [8]}], "nodes": [
  {"name": "p", "op": "linear", "inputs": ["q"], "out": 8}, {"name": "q", "op": "linear", "inputs": ["p"], "out": 8}]}'
http POST /v1/graphs/measure "{\"graph\": $CYCLE}" "${AUTH[@]}"
problem_check "a cycle: 422" 422 "cycle"
ONLYDROP='{"batch": 4, "dtype": "fp32", "inputs": [{"name": "x", "shape": [8]}], "nodes": [
  {"name": "d", "op": "dropout", "inputs": ["x"], "p": 0.1}]}'
http POST /v1/graphs/measure "{\"graph\": $ONLYDROP}" "${AUTH[@]}"
problem_check "a graph with no kernel left after fusion: 422" 422 "graph"
http POST /v1/graphs/measure "{\"graph\": $G1, \"repeats\": 0}" "${AUTH[@]}"
problem_check "repeats 0: 422" 422 "'repeats'" "[1, 20]"
http POST /v1/graphs/measure "{\"graph\": $G1, \"repeats\": \"3\"}" "${AUTH[@]}"
problem_check "repeats a string: 422" 422 "'repeats'"
http POST /v1/graphs/measure "{\"graph\": $G1, \"repeat_existing\": 1}" "${AUTH[@]}"
problem_check "repeat_existing not a boolean: 422" 422 "'repeat_existing'"
check "nothing was stored by the refused requests" \
  [ "$(sql "SELECT (SELECT count(*) FROM graphs) + (SELECT count(*) FROM jobs) + (SELECT count(*) FROM batches)")" = 0 ]
http GET '/v1/graphs?limit=0'
problem_check "GET /v1/graphs?limit=0: 400" 400 "'limit'"
http GET '/v1/graphs?sort=name'
problem_check "GET /v1/graphs with an unknown parameter: 400" 400 "unknown query parameter 'sort'"
http GET '/v1/validation?quality=great'
problem_check "GET /v1/validation?quality=great: 400" 400 "expected ok or any"
http GET '/v1/validation?merge=false'
problem_check "GET /v1/validation with an unknown parameter: 400" 400 "unknown query parameter 'merge'"

# ---- validation before any graph ----
http GET /v1/validation
check "validation without measured graphs: 200, no graphs, metrics null, simulated" \
  json_true 'j["graphs"] == [] and j["skipped"] == [] and j["summary"]["graphs"] == 0
    and j["summary"]["merged"]["energy"]["mape"] is None and j["simulated"] is True and j["quality"] == "any"'

# ---- the kernel data the estimates need ----
http POST /v1/jobs '{"sweep": {"type": "random", "kernel": "linear_relu", "count": 30, "seed": 11, "params": {"batch": [4, 64], "in": [16, 96], "out": [16, 128]}}, "repeats": 1}' "${AUTH[@]}"
check "queue 30 linear_relu configurations" [ "$STATUS" = 201 ]
K1=$(json_get 'j["batch_id"]' 2>/dev/null)
http POST /v1/jobs '{"sweep": {"type": "random", "kernel": "layernorm", "count": 30, "seed": 12, "params": {"rows": [4, 64], "cols": [16, 128]}}, "repeats": 1}' "${AUTH[@]}"
check "queue 30 layernorm configurations" [ "$STATUS" = 201 ]
K2=$(json_get 'j["batch_id"]' 2>/dev/null)

# ---- measure three graphs ----
http POST /v1/graphs/measure "{\"graphs\": [$G1, $G2, $G3], \"repeats\": 2}" "${AUTH[@]}"
check "measure three graphs: 202 with the batch in Location" \
  eval '[ "$STATUS" = 202 ] && contains "$(header Location)" "/v1/batches/"'
check "  ... three inserted, each with its hash, name, kernels, levels and job" \
  json_true 'j["inserted"] == 3 and j["duplicates"] == 0 and [g["name"] for g in j["graphs"]] == ["two_branch_a", "two_branch_b", "two_branch_c"]
    and all(len(g["hash"]) == 64 and g["kernels"] == 4 and g["levels"] == 2 and isinstance(g["job_id"], int) for g in j["graphs"])'
GB=$(json_get 'j["batch_id"]' 2>/dev/null)
H1=$(json_get 'j["graphs"][0]["hash"]' 2>/dev/null)
JOB1=$(json_get 'j["graphs"][0]["job_id"]' 2>/dev/null)
http POST /v1/graphs/measure "{\"graph\": $G1}" "${AUTH[@]}"
check "the same graph again: a duplicate, job_id null, the same hash" \
  json_true 'j["inserted"] == 0 and j["duplicates"] == 1 and j["graphs"][0]["job_id"] is None and j["graphs"][0]["hash"] == "'"$H1"'"'
check "  ... stored once" [ "$(sql "SELECT count(*) FROM graphs")" = 3 ]

batch_done() { http GET "/v1/batches/$1" && json_true 'j["counts"]["queued"] == 0 and j["counts"]["running"] == 0'; }
for b in "$K1" "$K2" "$GB"; do wait_until $((180 * SLOW)) batch_done "$b"; done
http GET "/v1/batches/$GB"
check "the graph batch is done: three measurements, kind graphs" \
  json_true 'j["counts"]["done"] == 3 and j["kind"] == "graphs"'
http GET "/v1/jobs/$JOB1"
MID=$(json_get 'j["measurement_id"]' 2>/dev/null)
http GET "/v1/measurements/$MID"
check "a graph measurement: kernel graph, the graph's hash, name and one stream on the CPU, simulated" \
  json_true 'j["kernel"] == "graph" and j["graph"]["hash"] == "'"$H1"'" and j["graph"]["name"] == "two_branch_a"
    and j["graph"]["streams"] == 1 and j["params"] == {"kernels": 4, "levels": 2} and j["simulated"] is True
    and j["config_key"] == "graph:'"$H1"'" and j["latency_us"] > 0 and j["energy_uj"] > 0'
check "  ... the link row in graph_measurements" \
  [ "$(sql "SELECT count(*) FROM graph_measurements gm JOIN graphs g ON g.id = gm.graph_id WHERE gm.measurement_id = $MID AND g.hash = '$H1'")" = 1 ]
http GET /v1/graphs
check "GET /v1/graphs lists the three with their newest measurement" \
  json_true 'len(j["graphs"]) == 3 and all(g["measurements"] == 1 and g["latest"]["quality"] in ("ok", "suspect")
    and g["latest"]["streams"] == 1 and g["kernels"] == 4 for g in j["graphs"])'
http GET '/v1/graphs?after_id=1&limit=1'
check "  ... paged by after_id and limit" json_true 'len(j["graphs"]) == 1 and j["graphs"][0]["id"] == 2'
http GET '/v1/measurements?kernel=graph'
check "graph measurements are in the dataset under kernel graph" json_true 'len(j["measurements"]) == 3'

# ---- validation before training: every graph skipped with the 409 sentence ----
http GET /v1/validation
check "validation without models: the graphs are skipped, naming the model to train" \
  json_true 'j["graphs"] == [] and len(j["skipped"]) == 3 and all("no model for kernel type" in s["reason"] for s in j["skipped"])'

http POST /v1/models/train '{"kernels": ["linear_relu", "layernorm"], "quality": "any"}' "${AUTH[@]}"
check "train linear_relu and layernorm" [ "$STATUS" = 200 ]

# ---- validation, recomputed from the stored rows ----
http GET /v1/validation
printf '%s' "$BODY" >"$TMP/validation.json"
check "validation: three graphs with measured, merged and unmerged figures" \
  json_true 'len(j["graphs"]) == 3 and j["skipped"] == [] and j["summary"]["graphs"] == 3
    and all(g["estimate_merged"]["kernels"] == 2 and g["estimate_unmerged"]["kernels"] == 4 for g in j["graphs"]
            if g["graph"]["name"] != "two_branch_b")'
# The stored rows: graph text and measured figures, as sqlite3 reads them.
sql "SELECT g.hash, g.graph_json, m.energy_uj, m.latency_us FROM graph_measurements gm
     JOIN graphs g ON g.id = gm.graph_id JOIN measurements m ON m.id = gm.measurement_id ORDER BY g.id" \
  >"$TMP/stored.txt"
: >"$TMP/estimates.txt"
while IFS='|' read -r hash graph energy latency; do
  for merge in true false; do
    http POST "/v1/estimate?merge=$merge" "$graph"
    printf '%s|%s|%s|%s|%s\n' "$hash" "$merge" "$energy" "$latency" \
      "$(json_get '[j["totals"]["energy_uj"]["board_input"], j["totals"]["latency_us"]]')" >>"$TMP/estimates.txt"
  done
done <"$TMP/stored.txt"
"$PY" - "$TMP/estimates.txt" "$TMP/validation.json" <<'EOF'
import json, sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1]) if l.strip()]
v = json.load(open(sys.argv[2]))
def close(a, b): return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))
def tau_b(x, y):
    c = d = tx = ty = 0
    for i in range(len(x)):
        for k in range(i + 1, len(x)):
            a = (x[i] > x[k]) - (x[i] < x[k]); b = (y[i] > y[k]) - (y[i] < y[k])
            if a == 0 and b == 0: continue
            if a == 0: tx += 1
            elif b == 0: ty += 1
            elif a == b: c += 1
            else: d += 1
    den = ((c + d + tx) * (c + d + ty)) ** 0.5
    return (c - d) / den if den else 0.0
bad = []
for mode, key in (("true", "merged"), ("false", "unmerged")):
    meas_e, meas_l, est_e, est_l = [], [], [], []
    for hash_, merge, energy, latency, est in rows:
        if merge != mode: continue
        energy, latency = float(energy), float(latency)
        e_uj, l_us = json.loads(est)
        g = [g for g in v["graphs"] if g["graph"]["hash"] == hash_][0]
        got = g["estimate_" + key]
        if not close(got["energy_uj"], e_uj): bad.append("%s %s energy %r != %r" % (hash_[:8], key, got["energy_uj"], e_uj))
        if not close(got["energy_error"], (e_uj - energy) / energy): bad.append("%s %s energy_error" % (hash_[:8], key))
        if not close(got["latency_error"], (l_us - latency) / latency): bad.append("%s %s latency_error" % (hash_[:8], key))
        if not close(g["measured"]["energy_uj"], energy): bad.append("%s measured energy" % hash_[:8])
        meas_e.append(energy); meas_l.append(latency); est_e.append(e_uj); est_l.append(l_us)
    for what, m, e in (("energy", meas_e, est_e), ("latency", meas_l, est_l)):
        s = v["summary"][key][what]
        mape = 100 * sum(abs(b - a) / a for a, b in zip(m, e)) / len(m)
        within = sum(abs(b - a) <= 0.1 * a for a, b in zip(m, e)) / len(m)
        if not close(s["mape"], mape): bad.append("%s %s mape %r != %r" % (key, what, s["mape"], mape))
        if not close(s["within_10pct"], within): bad.append("%s %s within_10pct" % (key, what))
        if not close(s["kendall_tau"], tau_b(m, e)): bad.append("%s %s kendall_tau %r != %r" % (key, what, s["kendall_tau"], tau_b(m, e)))
if bad: print("\n".join("# " + b for b in bad))
sys.exit(1 if bad else 0)
EOF
check "every validation figure equals the one computed from the stored rows and /v1/estimate" [ $? = 0 ]
http GET '/v1/validation?quality=ok'
check "?quality=ok keeps only graphs whose newest measurement passed" \
  json_true 'j["quality"] == "ok" and all(g["measured"]["quality"] == "ok" for g in j["graphs"])
    and len(j["graphs"]) == '"$(sql "SELECT count(*) FROM graph_measurements gm JOIN measurements m ON m.id = gm.measurement_id WHERE m.quality = 'ok'")"

# ---- crash safety: a graph job killed while it runs is done exactly once ----
G4=$(branches two_branch_long 64 96 128 128)
http POST /v1/graphs/measure "{\"graph\": $G4, \"repeats\": 20}" "${AUTH[@]}"
JOB4=$(json_get 'j["graphs"][0]["job_id"]' 2>/dev/null)
job_running() { [ "$(sql "SELECT state FROM jobs WHERE id = $JOB4")" = running ]; }
wait_until $((60 * SLOW)) job_running
check "the long graph job is running" job_running
kill_daemon
start_daemon --token-file "$TMP/token" || bail "jetprofd restarts after kill -9"
job_done() { [ "$(sql "SELECT state FROM jobs WHERE id = $JOB4")" = "done" ]; }
wait_until $((240 * SLOW)) job_done
check "after kill -9 and a restart the graph job is done, measured once, on attempt 2" \
  eval '[ "$(sql "SELECT state, attempts FROM jobs WHERE id = '"$JOB4"'")" = "done|2" ] &&
        [ "$(sql "SELECT count(*) FROM measurements WHERE job_id = '"$JOB4"'")" = 1 ] &&
        [ "$(sql "SELECT count(*) FROM graph_measurements gm JOIN measurements m ON m.id = gm.measurement_id WHERE m.job_id = '"$JOB4"'")" = 1 ]'

# ---- the export carries the graphs ----
curl -s -o "$TMP/export.sqlite" "$BASE/v1/export.sqlite"
check "the export has the graphs and their measurements" \
  [ "$(sqlite3 -batch -noheader "$TMP/export.sqlite" "SELECT (SELECT count(*) FROM graphs) || '/' || (SELECT count(*) FROM graph_measurements)")" = "4/4" ]

# ---- adaptive sampling ----
http POST /v1/jobs '{"sweep": {"type": "adaptive", "kernel": "layernorm", "seed": 4, "params": {"rows": [2, 64], "cols": [8, 256]}, "initial": 20, "per_round": 4, "rounds": 2, "threshold": 0.01}, "repeats": 1, "repeat_existing": true}' "${AUTH[@]}"
check "queue an adaptive sweep: 201 with its 20 initial jobs" \
  eval '[ "$STATUS" = 201 ] && json_true '"'"'j["jobs"] == 20'"'"
AB=$(json_get 'j["batch_id"]' 2>/dev/null)
adaptive_closed() { http GET "/v1/batches/$AB" && json_true 'j["adaptive"]["open"] is False and j["counts"]["queued"] == 0 and j["counts"]["running"] == 0'; }
wait_until $((300 * SLOW)) adaptive_closed
check "the adaptive batch closes after its rounds" adaptive_closed
printf '%s' "$BODY" >"$TMP/adaptive.json"
check "  ... rounds 0..n in order, each with its metrics, planned rounds 2" \
  json_true 'j["kind"] == "adaptive" and j["adaptive"]["rounds"] == 2 and 1 <= len(j["rounds"]) <= 3
    and [r["round"] for r in j["rounds"]] == list(range(len(j["rounds"])))
    and all(r["rows"] >= 20 and "within_10pct" in r["metrics"]["latency"] and "test_rows" in r["metrics"]
            and r["metrics"]["simulated"] is True for r in j["rounds"])'
check "  ... its jobs are the initial 20 plus what the rounds queued" \
  json_true 'sum(j["counts"].values()) == 20 + sum(r["added"] for r in j["rounds"])
    and all(r["added"] <= 4 for r in j["rounds"]) and j["rounds"][-1]["added"] == 0'
check "  ... a round that queued nothing says why, or was the last planned" \
  json_true 'all(r["note"] != "" or r["round"] == 2 or r["added"] > 0 for r in j["rounds"])'
grep -q "round 0 on" "$LOG"
check "the daemon logs each round" [ $? = 0 ]
http POST /v1/jobs '{"sweep": {"type": "adaptive", "kernel": "layernorm", "params": {"rows": [2, 64], "cols": [8, 256]}, "initial": 5}}' "${AUTH[@]}"
problem_check "an adaptive sweep with fewer than 20 initial configurations: 422" 422 "initial"

stop_daemon
finish
