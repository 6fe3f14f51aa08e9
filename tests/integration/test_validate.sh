#!/usr/bin/env bash
# test_validate.sh - `jetprof validate` (client/validate.c, client/graph_family.c)
# and the Python client's measure_graphs / graphs / validation against a real
# jetprofd (sim sensor, CPU executor, fast measure and training settings).
#
#   1. without a daemon: usage errors (unknown option, bad values, a missing
#      graph file or directory, a graph the estimator refuses) with their
#      messages and exit status; --print-graphs writes the generated families
#      (deterministic names, sizes, the ops of each family, the Q/K/V branches);
#      an unreachable daemon is exit 1 with "cannot reach";
#   2. a fresh daemon: --skip-train --skip-measure has nothing to validate (exit
#      1); an adaptive run on a one-kernel-type graph prints its rounds and the
#      batch shows them;
#   3. the full run: the fixture directory (found from the current directory),
#      the tiny families, random sweeps for the kernel types still without a
#      model (fp32 and fp16), training, the graphs measured whole: the table has
#      every graph (the nn-Meter fixture under its file's name) and the four
#      summary lines labelled "(simulated)";
#   4. --json: the per-graph errors and the summary (MAPE, within +-10 %,
#      Kendall tau-b, merge on and off) recomputed here from the stored rows
#      (measurements of kernel 'graph' joined through graph_measurements to
#      graphs) and POST /v1/estimate of the stored graph text with merge on and
#      off; the table's figures agree with the JSON;
#   5. a second run queues nothing new; the Python client's three methods;
#   6. auth: with a token file, measuring without the token is 401 with the
#      hint, with --token-file it works.
. "$(dirname "$0")/lib.sh"

# Measurements as short as the protocol allows and never re-measured for noise
# (this tests the client's pipeline, not the protocol); small models.
set_measure measure.min_window_ms=10
set_measure measure.idle_ms=10
set_measure measure.warmup_ms=0
set_measure measure.warmup_launches=1
set_measure measure.min_samples=5
set_measure measure.repeats=1
set_measure measure.max_cv=1
set_measure measure.min_sample_ratio=0
TRAIN=(--set predict.train_rounds=20 --set predict.train_ensemble=2)
SAMPLES=24

# run NAME ARGS...: jetprof with ARGS; stdout in $TMP/NAME.out, stderr in
# $TMP/NAME.err, the exit status in RC.
run() {
  local name=$1
  shift
  RC=0
  "$JETPROF" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || RC=$?
  # shellcheck disable=SC2034  # read by lib.sh's not_ok: no curl exchange to show
  STATUS=""
}
err_has() { grep -qF -- "$2" "$TMP/$1.err"; }
out_has() { grep -qF -- "$2" "$TMP/$1.out"; }
# why NAME: the last lines of a run, for a failure's diagnostics
why() { echo "exit $RC; stderr: $(tail -n 5 "$TMP/$1.err" | tr '\n' '|'); stdout: $(head -c 400 "$TMP/$1.out")"; }
expect() { # NAME RC NEEDLE_IN_STDERR DESCRIPTION
  if [ "$RC" = "$2" ] && err_has "$1" "$3"; then ok "$4"; else not_ok "$4" "$(why "$1")"; fi
}

# ---- 1. without a daemon ----
run help validate --help
check "validate --help: exit 0 and documents the options" \
  eval '[ "$RC" = 0 ] && for o in --graphs-dir --no-fixtures --graph --family --families --samples \
    --adaptive --rounds --per-round --seed --repeats --remeasure --quality --skip-train --skip-measure \
    --json --print-graphs; do out_has help "$o" || exit 1; done'
run mainhelp --help
check "jetprof --help lists validate" out_has mainhelp "validate [--family"

run u1 validate --bogus
expect u1 2 "unknown option '--bogus'" "unknown option: exit 2 naming it"
check "unknown option: the message says how to get help" err_has u1 "jetprof validate --help"
run u2 validate --family huge
expect u2 2 "--family must be none, tiny, small or medium, got 'huge'" "bad --family: exit 2"
run u3 validate --families mlp,cnn
expect u3 2 "--families must be mlp, ftt, all" "bad --families: exit 2"
run u4 validate --samples 0
expect u4 2 "--samples must be an integer in [1, 100000], got '0'" "--samples 0: exit 2 with the range"
run u5 validate --rounds 3
expect u5 2 "--rounds and --per-round are for --adaptive" "--rounds without --adaptive: exit 2"
run u6 validate --quality good
expect u6 2 "--quality must be ok or any" "bad --quality: exit 2"
run u7 validate --graph "$TMP/missing.json"
expect u7 2 "cannot read $TMP/missing.json" "a missing --graph file: exit 2 naming it"
run u8 validate --graphs-dir "$TMP/nodir"
expect u8 2 "cannot read the graph directory $TMP/nodir" "a missing --graphs-dir: exit 2 naming it"
run u9 validate --graphs-dir "$TMP" --no-fixtures
expect u9 2 "contradict" "--graphs-dir with --no-fixtures: exit 2"
run u10 validate extra
expect u10 2 "validate takes options only" "a stray argument: exit 2"
run u11 validate --graph
expect u11 2 "option --graph needs a value" "--graph without a value: exit 2"
printf '{"batch": 4, "inputs": [{"name": "x", "shape": [8]}], "nodes": [{"name": "c1", "op": "conv2d", "inputs": ["x"]}]}' >"$TMP/conv.json"
run u12 validate --no-fixtures --family none --graph "$TMP/conv.json"
expect u12 1 "$TMP/conv.json: the estimator refuses this graph: node 'c1': unknown op 'conv2d'" \
  "a graph the estimator refuses: exit 1 naming the file, node and op"
printf '{"batch": 4, ' >"$TMP/broken.json"
run u13 validate --no-fixtures --family none --graph "$TMP/broken.json"
expect u13 1 "not valid JSON" "a graph file that is not JSON: exit 1"
printf '{"batch": 4, "inputs": [{"name": "x", "shape": [8]}], "nodes": [{"name": "d", "op": "dropout", "inputs": ["x"]}]}' >"$TMP/dropout.json"
run u16 validate --no-fixtures --family none --graph "$TMP/dropout.json"
expect u16 1 "$TMP/dropout.json: the graph has no kernel to run" "a graph with no kernel to measure: exit 1"
"$PY" -c 'import json, sys
nodes = [{"name": "fc%d" % i, "op": "linear", "inputs": ["fc%d" % (i - 1) if i else "x"], "out": 8} for i in range(513)]
json.dump({"graphs": [{"batch": 4, "inputs": [{"name": "x", "shape": [8]}], "nodes": nodes}]}, open(sys.argv[1], "w"))' "$TMP/deep.json"
run u17 validate --no-fixtures --family none --graph "$TMP/deep.json"
expect u17 1 "$TMP/deep.json: graphs[0]: the graph runs 513 kernels after fusion; a whole-graph measurement runs at most 512" \
  "a graph of 513 kernels (in a {\"graphs\": [...]} file): exit 1 naming graphs[0] and the limit"
run u14 validate --no-fixtures --family none
expect u14 2 "no graphs to validate" "nothing to validate: exit 2"
run u15 --url 127.0.0.1:1 validate --no-fixtures --family tiny
expect u15 1 "cannot reach jetprofd at http://127.0.0.1:1" "an unreachable daemon: exit 1, 'cannot reach'"

# --print-graphs: the generated families, no daemon needed
run pg validate --no-fixtures --family medium --print-graphs
check "print-graphs medium: exit 0, JSON on stdout" \
  eval '[ "$RC" = 0 ] && json_true "isinstance(j[\"graphs\"], list)" "$(cat "$TMP/pg.out")"'
check "print-graphs medium: 12 MLPs (w 64..512 x d 2,4,6) then 9 FT-Transformers (d 32,64,128 x b 1,2,3), in order" \
  json_true '[g["name"] for g in j["graphs"]] == ["mlp_w%d_d%d" % (w, d) for w in (64, 128, 256, 512) for d in (2, 4, 6)] +
    ["ftt_d%d_b%d" % (d, b) for d in (32, 64, 128) for b in (1, 2, 3)]' "$(cat "$TMP/pg.out")"
check "print-graphs medium: batch 128 for MLPs, 64 for FT-Transformers, fp32, one input" \
  json_true 'all(g["batch"] == (128 if g["name"].startswith("mlp") else 64) and g["dtype"] == "fp32" and
    len(g["inputs"]) == 1 for g in j["graphs"])' "$(cat "$TMP/pg.out")"
check "MLPs: depth linears of the width, every second with batchnorm, relu and dropout each, a 10-way linear + softmax head" \
  json_true 'all((lambda w, d, ops, outs: ops.count("linear") == d + 1 and ops.count("batchnorm") == d // 2 and
      ops.count("relu") == d and ops.count("dropout") == d and ops[-1] == "softmax" and
      outs == [w] * d + [10])(int(g["name"].split("_")[1][1:]), int(g["name"].split("_")[2][1:]),
      [n["op"] for n in g["nodes"]], [n["out"] for n in g["nodes"] if n["op"] == "linear"])
    for g in j["graphs"] if g["name"].startswith("mlp"))' "$(cat "$TMP/pg.out")"
check "FT-Transformers: a tokenizer of d_token, per block Q, K and V linears reading the same layernorm, attention of 8 heads, two residual adds, a gelu FFN" \
  json_true 'all((lambda d, b, nodes: nodes[0]["op"] == "tokenizer" and nodes[0]["d"] == d and
      sum(n["op"] == "attention" and n["heads"] == 8 for n in nodes) == b and
      sum(n["op"] == "add" for n in nodes) == 2 * b and sum(n["op"] == "gelu" for n in nodes) == b and
      all(len({nn["inputs"][0] for nn in nodes if nn["name"] in ("b%d_q" % i, "b%d_k" % i, "b%d_v" % i)}) == 1 and
          [nn["op"] for nn in nodes if nn["name"] == "b%d_ln1" % i] == ["layernorm"] and
          [nn["inputs"][0] for nn in nodes if nn["name"] == "b%d_q" % i] == ["b%d_ln1" % i] for i in range(1, b + 1)) and
      [n["op"] for n in nodes][-4:] == ["layernorm", "flatten", "linear", "softmax"])(
      int(g["name"].split("_")[1][1:]), int(g["name"].split("_")[2][1:]), g["nodes"])
    for g in j["graphs"] if g["name"].startswith("ftt"))' "$(cat "$TMP/pg.out")"
check "print-graphs: one line per graph on stderr with kernels merged and levels (FT-Transformer b1: 15 kernels, 13 merged)" \
  eval 'grep -qE "^ftt_d32_b1 +15 kernels \(13 merged\), 13 levels" "$TMP/pg.err" &&
    [ "$(grep -c " kernels (" "$TMP/pg.err")" = 21 ]'
cp "$TMP/pg.out" "$TMP/pg.first"
run pg validate --no-fixtures --family medium --print-graphs
check "print-graphs is deterministic (the same output twice)" cmp -s "$TMP/pg.first" "$TMP/pg.out"
run pgs validate --no-fixtures --family small --families ftt --print-graphs
check "--family small --families ftt: ftt_d32_b1, ftt_d32_b2, ftt_d64_b1, ftt_d64_b2 (batch 32)" \
  json_true '[g["name"] for g in j["graphs"]] == ["ftt_d32_b1", "ftt_d32_b2", "ftt_d64_b1", "ftt_d64_b2"] and
    all(g["batch"] == 32 for g in j["graphs"])' "$(cat "$TMP/pgs.out")"
run pgf validate --family none --print-graphs
FIXTURE_COUNT=$(ls tests/fixtures/graphs/*.json | wc -l)
check "default fixture directory (tests/fixtures/graphs, from the current directory): its $FIXTURE_COUNT graphs; the nn-Meter one kept as is, the native ones named" \
  json_true 'len(j["graphs"]) == '"$FIXTURE_COUNT"' and sum("nodes" not in g for g in j["graphs"]) == 1 and
    all(isinstance(g.get("name"), str) for g in j["graphs"] if "nodes" in g)' "$(cat "$TMP/pgf.out")"

# ---- 2. a fresh daemon ----
start_daemon "${TRAIN[@]}" || bail "jetprofd starts (sim sensor, CPU executor, fast settings)"
ok "jetprofd starts"

run empty --url "$BASE" validate --no-fixtures --family tiny --skip-train --skip-measure
expect empty 1 "no graph is measured on this device yet" "--skip-train --skip-measure on a fresh daemon: exit 1, nothing measured"
check "... and still prints the (empty) summary" out_has empty "energy, merge on:"

# adaptive sampling on a graph that needs one kernel type (two parallel linears)
printf '{"name": "two_linears", "batch": 16, "dtype": "fp32", "inputs": [{"name": "x", "shape": [32]}],
  "nodes": [{"name": "q", "op": "linear", "inputs": ["x"], "out": 24},
            {"name": "k", "op": "linear", "inputs": ["x"], "out": 24}]}' >"$TMP/two.json"
run adaptive --url "$BASE" validate --no-fixtures --family none --graph "$TMP/two.json" --adaptive \
  --samples 30 --rounds 1 --per-round 5
if [ "$RC" = 0 ]; then ok "validate --adaptive: exit 0"; else not_ok "validate --adaptive: exit 0" "$(why adaptive)"; fi
check "adaptive: one sweep for linear, its round printed" \
  eval 'err_has adaptive "1 of the 1 kernel types the graphs use have no model: queueing adaptive sweeps" &&
    grep -qE "batch [0-9]+ round 0: trained on [0-9]+ rows" "$TMP/adaptive.err"'
ABATCH=$(grep -oE 'batch [0-9]+: linear fp32' "$TMP/adaptive.err" | head -n 1 | grep -oE '[0-9]+' | head -n 1)
http GET "/v1/batches/${ABATCH:-0}"
# round 0 after the initial sample, round 1 (the last) after its proposals, unless
# round 0 closed the batch early (nothing above the threshold)
check "adaptive: batch $ABATCH is kind adaptive, 1 round planned, rounds 0[..1] committed, closed, nothing queued" \
  json_true 'j["kind"] == "adaptive" and j["adaptive"]["rounds"] == 1 and j["adaptive"]["open"] is False and
    [r["round"] for r in j["rounds"]] in ([0], [0, 1]) and j["counts"]["queued"] == 0 and
    j["counts"]["done"] == 30 + sum(r["added"] for r in j["rounds"])'
check "adaptive: every committed round printed" \
  eval '[ "$(grep -cE "batch $ABATCH round [0-9]+: trained on" "$TMP/adaptive.err")" = "$(json_get "len(j[\"rounds\"])")" ]'
check "adaptive: the table has two_linears, merged 1 kernel of 2" \
  eval 'grep -qE "^two_linears +1/2 " "$TMP/adaptive.out"'

# Ctrl-C while following a sweep: exit 130, the jobs keep running; the next run's
# sweep is all duplicates of those still queued, and it waits for them before
# training (300 softmax jobs of the fast protocol take seconds, the second run
# starts within one).
printf '{"name": "one_softmax", "batch": 8, "dtype": "fp32", "inputs": [{"name": "x", "shape": [16]}],
  "nodes": [{"name": "p", "op": "softmax", "inputs": ["x"]}]}' >"$TMP/softmax.json"
"$JETPROF" --url "$BASE" validate --no-fixtures --family none --graph "$TMP/softmax.json" --samples 300 \
  >"$TMP/int.out" 2>"$TMP/int.err" &
INT_PID=$!
queued_softmax() { grep -qE "^validate: batch [0-9]+: softmax fp32" "$TMP/int.err"; }
wait_until $((30 * SLOW)) queued_softmax
kill -INT "$INT_PID"
RC=0
wait "$INT_PID" || RC=$?
expect int 130 "stopped waiting; the jobs of batch" "Ctrl-C while following the sweep: exit 130, the jobs keep running"
run resume --url "$BASE" validate --no-fixtures --family none --graph "$TMP/softmax.json" --samples 300
check "the next run waits for the jobs queued by the stopped one, then trains and validates: exit 0" \
  eval '[ "$RC" = 0 ] && grep -qE "^validate: waiting for [1-9][0-9]* sweep jobs of these kernel types queued or running in other batches" "$TMP/resume.err" &&
    grep -qE "^one_softmax " "$TMP/resume.out" || { echo "# $(why resume)"; false; }'
http GET "/v1/jobs?state=queued&limit=10"
check "... and nothing is left queued" json_true 'len(j["jobs"]) == 0'

# ---- 3. the full run: fixtures, tiny families ----
run full --url "$BASE" validate --family tiny --samples "$SAMPLES"
if [ "$RC" = 0 ]; then ok "validate (fixtures + tiny families): exit 0"; else not_ok "validate (fixtures + tiny families): exit 0" "$(why full)"; fi
check "full: linear had a model already, the others were swept (fp16 too: resnet_fc) and trained" \
  eval 'grep -qE "^validate: [0-9]+ of the [0-9]+ kernel types the graphs use have no model: queueing random sweeps of '"$SAMPLES"' " "$TMP/full.err" &&
    ! grep -qE "batch [0-9]+: linear fp32," "$TMP/full.err" && grep -qE "batch [0-9]+: [a-z_]+ fp16," "$TMP/full.err" &&
    grep -q "^validate: trained [0-9]* models" "$TMP/full.err"'
check "full: the graphs were queued for measurement and the batch finished with no failure" \
  eval 'grep -qE "graphs queued for measurement" "$TMP/full.err" &&
    grep -qE "\(whole-graph measurements\) finished: [0-9]+ done, 0 failed, 0 canceled" "$TMP/full.err"'
EXPECTED_NAMES=$("$PY" -c 'import json, sys
print(" ".join(g.get("name", "nnmeter_mlp") for g in json.load(open(sys.argv[1]))["graphs"]))' "$TMP/pgf.out")
EXPECTED_NAMES="$EXPECTED_NAMES two_linears mlp_w64_d2 mlp_w128_d2 ftt_d32_b1 ftt_d64_b1"
missing=""
for n in $EXPECTED_NAMES; do grep -qE "^$n " "$TMP/full.out" || missing="$missing $n"; done
check "full: the table has a row for every graph ($(echo $EXPECTED_NAMES | wc -w)), the nn-Meter one under its file's name" \
  eval '[ -z "$missing" ] || { echo "# missing:$missing"; false; }'
check "full: a header line on the device, executor cpu, simulated" \
  eval 'grep -qE "^validation on device [0-9a-f]{12}: [0-9]+ graphs measured, 0 skipped, quality any, executor cpu \(simulated\)$" "$TMP/full.out"'
check "full: the four summary lines with MAPE, within +-10 %, Kendall tau, labelled (simulated)" \
  eval 'for l in "energy, merge on:" "energy, merge off:" "latency, merge on:" "latency, merge off:"; do
      grep -E "^$l +MAPE +[0-9.]+ %, within \+-10 % +[0-9.]+ % of graphs, Kendall tau +-?[0-9.]+ \(simulated\)$" "$TMP/full.out" >/dev/null || exit 1; done'

# ---- 4. --json against values computed here ----
run js --url "$BASE" validate --skip-train --skip-measure --json
check "--json: exit 0, the validation document on stdout, nothing else" \
  eval '[ "$RC" = 0 ] && json_true "j[\"simulated\"] is True and isinstance(j[\"graphs\"], list)" "$(cat "$TMP/js.out")"'
http GET /v1/validation
check "--json prints what GET /v1/validation answers" json_equal "$BODY" "$(cat "$TMP/js.out")"
# the stored rows and fresh estimates of the stored text, merge on and off
"$PY" - "$DB" "$TMP/js.out" "$BASE" >"$TMP/recompute.out" 2>&1 <<'EOF'
import json, math, sqlite3, sys, urllib.request
db, val_path, base = sys.argv[1], sys.argv[2], sys.argv[3]
val = json.load(open(val_path))
con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
rows = con.execute("""SELECT g.hash, g.graph_json, m.id, m.latency_us, m.energy_uj, m.kernel, gm.streams
    FROM graph_measurements gm JOIN measurements m ON m.id = gm.measurement_id
    JOIN graphs g ON g.id = gm.graph_id ORDER BY m.id""").fetchall()
newest = {}
for h, text, mid, lat, en, kernel, streams in rows:
    newest[h] = (text, mid, lat, en, kernel, streams)   # later ids win
def estimate(text, merge):
    req = urllib.request.Request(base + "/v1/estimate?merge=" + ("true" if merge else "false"),
                                 data=text.encode(), headers={"Content-Type": "application/json"})
    t = json.load(urllib.request.urlopen(req, timeout=60))["totals"]
    return t["latency_us"], t["energy_uj"]["board_input"], t["kernels"]
def close(a, b):
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b)) + 1e-9
bad = []
if sorted(newest) != sorted(e["graph"]["hash"] for e in val["graphs"]):
    bad.append("graphs: stored %d measured, validation lists %d" % (len(newest), len(val["graphs"])))
cols = {"merged": {"energy": [], "latency": []}, "unmerged": {"energy": [], "latency": []}}
truth = {"energy": [], "latency": []}
for e in val["graphs"]:
    h = e["graph"]["hash"]
    if h not in newest:
        continue
    text, mid, lat, en, kernel, streams = newest[h]
    m = e["measured"]
    if m["measurement_id"] != mid or kernel != "graph" or m["streams"] != streams or streams != 1:
        bad.append("%s: measured row %s (kernel %s, streams %s) vs %s" % (h[:8], mid, kernel, streams, m))
    if not (close(m["latency_us"], lat) and close(m["energy_uj"], en)):
        bad.append("%s: measured values differ from the row" % h[:8])
    truth["energy"].append(en); truth["latency"].append(lat)
    for mode, merge in (("merged", True), ("unmerged", False)):
        elat, een, k = estimate(text, merge)
        x = e["estimate_" + mode]
        for name, want in (("latency_us", elat), ("energy_uj", een),
                           ("latency_error", (elat - lat) / lat), ("energy_error", (een - en) / en)):
            if not close(x[name], want):
                bad.append("%s %s %s: %r, computed %r" % (h[:8], mode, name, x[name], want))
        if x["kernels"] != k:
            bad.append("%s %s kernels %r vs %r" % (h[:8], mode, x["kernels"], k))
        cols[mode]["energy"].append(een); cols[mode]["latency"].append(elat)
def tau_b(t, p):
    n = len(t); con = dis = tt = tp = 0
    for i in range(n):
        for j in range(i + 1, n):
            a = (t[i] > t[j]) - (t[i] < t[j]); b = (p[i] > p[j]) - (p[i] < p[j])
            tt += a == 0; tp += b == 0; con += a * b > 0; dis += a * b < 0
    pairs = n * (n - 1) // 2
    if tt >= pairs or tp >= pairs:
        return 0.0
    return (con - dis) / math.sqrt((pairs - tt) * (pairs - tp))
n = len(truth["energy"])
if val["summary"]["graphs"] != n:
    bad.append("summary.graphs %r, %d compared" % (val["summary"]["graphs"], n))
for mode in ("merged", "unmerged"):
    for what in ("energy", "latency"):
        t, p = truth[what], cols[mode][what]
        mape = 100.0 * sum(abs(b - a) / abs(a) for a, b in zip(t, p)) / n
        within = sum(abs(b - a) <= 0.1 * abs(a) for a, b in zip(t, p)) / n
        s = val["summary"][mode][what]
        for name, want in (("mape", mape), ("within_10pct", within), ("kendall_tau", tau_b(t, p))):
            if not close(s[name], want):
                bad.append("summary %s %s %s: %r, computed %r" % (mode, what, name, s[name], want))
print("compared %d graphs" % n)
for b in bad:
    print("BAD " + b)
EOF
check "--json: per-graph measured values and errors, merged and unmerged, equal those computed from the stored rows and POST /v1/estimate" \
  eval 'grep -q "^compared [1-9][0-9]* graphs" "$TMP/recompute.out" && ! grep -q "^BAD .* \(latency\|energy\)_\(us\|uj\|error\)\|^BAD .*measured\|^BAD .*kernels\|^BAD graphs" "$TMP/recompute.out" || { sed "s/^/# /" "$TMP/recompute.out" | head -n 20; false; }'
check "--json: MAPE, within +-10 % and Kendall tau-b of the summary equal those computed here" \
  eval '! grep -q "^BAD summary" "$TMP/recompute.out" || { grep "^BAD summary" "$TMP/recompute.out" | sed "s/^/# /"; false; }'
check "--json: no line of the recomputation failed to run" eval '! grep -q "Traceback" "$TMP/recompute.out"'
# the table's figures are the JSON's, rounded
"$PY" - "$TMP/js.out" "$TMP/full.out" >"$TMP/table.out" 2>&1 <<'EOF'
import json, sys
val = json.load(open(sys.argv[1]))
rows = {}
for line in open(sys.argv[2]):
    f = line.split()
    if len(f) == 12 and "/" in f[1]:
        rows[f[0]] = f
for e in val["graphs"]:
    name = e["graph"]["name"] or "nnmeter_mlp"
    f = rows.get(name)
    if not f:
        print("BAD no row for %s" % name); continue
    want = [("%+.1f" % (100 * e["estimate_merged"]["energy_error"])), ("%+.1f" % (100 * e["estimate_unmerged"]["energy_error"])),
            ("%+.1f" % (100 * e["estimate_merged"]["latency_error"])), ("%+.1f" % (100 * e["estimate_unmerged"]["latency_error"]))]
    got = [f[7], f[9], f[10], f[11]]
    kernels = "%d/%d" % (e["estimate_merged"]["kernels"], e["estimate_unmerged"]["kernels"])
    if got != want or f[1] != kernels or f[2] != str(e["graph"]["levels"]) or f[3] != str(e["measured"]["streams"]):
        print("BAD %s: row %s, JSON %s %s" % (name, f, kernels, want))
s = val["summary"]["merged"]["energy"]
line = [l for l in open(sys.argv[2]) if l.startswith("energy, merge on:")][0]
if ("%.2f %%" % s["mape"]) not in line or ("%.3f" % s["kendall_tau"]) not in line:
    print("BAD summary line %r vs %r" % (line, s))
print("done")
EOF
check "table: KERNELS merged/unmerged, LEVELS, STREAMS and the four error columns are the JSON's, rounded; the summary line too" \
  eval 'grep -q "^done" "$TMP/table.out" && ! grep -q "^BAD" "$TMP/table.out" || { sed "s/^/# /" "$TMP/table.out" | head; false; }'
check "table: FT-Transformers merge Q, K and V (ftt_d32_b1: 13/15 kernels); MLPs have nothing to merge (4/4)" \
  eval 'grep -qE "^ftt_d32_b1 +13/15 +13 +1 " "$TMP/full.out" && grep -qE "^mlp_w64_d2 +4/4 +4 +1 " "$TMP/full.out"'

# ---- 5. again: nothing new; the Python client ----
run again --url "$BASE" validate --family tiny --samples "$SAMPLES"
check "a second run: exit 0, every kernel type has a model, every graph measured before" \
  eval '[ "$RC" = 0 ] && err_has again "has a model" && grep -qE "batch [0-9]+: 0 graphs queued for measurement, [1-9][0-9]* measured or queued before" "$TMP/again.err"'
run remeasure --url "$BASE" validate --no-fixtures --family none --graph "$TMP/two.json" --skip-train --remeasure --repeats 2
check "--remeasure --repeats 2: the graph queued again and measured" \
  eval '[ "$RC" = 0 ] && grep -qE "batch [0-9]+: 1 graphs queued for measurement, 0 measured or queued before" "$TMP/remeasure.err"'
http GET "/v1/jobs?state=done&limit=10000"
check "--remeasure --repeats 2: the newest graph job has repeats 2" \
  json_true '[x for x in j["jobs"] if x["kernel"] == "graph"][-1]["repeats"] == 2'

"$PY" - "$BASE" "$TMP/two.json" >"$TMP/py.out" 2>&1 <<'EOF'
import json, sys
sys.path.insert(0, "client/python")
from jetprof_client import JetprofClient, JetprofError
base, two = sys.argv[1], open(sys.argv[2]).read()
c = JetprofClient(base)
def out(ok, name, detail=""):
    print(("ok - " if ok else "not ok - ") + name + ((" # " + detail) if detail and not ok else ""))
v = c.validation()
out(v == json.loads(c._request("GET", "/v1/validation").body), "python: validation() is GET /v1/validation")
vq = c.validation(quality="ok")
out(vq["quality"] == "ok", "python: validation(quality='ok') asks for it")
try:
    c.validation(quality="best"); out(False, "python: validation(quality='best') raises 400")
except JetprofError as e:
    out(e.status == 400 and "quality" in e.detail, "python: validation(quality='best') raises 400", str(e))
g = c.graphs()
out(len(g["graphs"]) >= v["summary"]["graphs"] and all("hash" in x and "latest" in x for x in g["graphs"]),
    "python: graphs() lists the stored graphs")
g2 = c.graphs(after_id=g["graphs"][0]["id"], limit=2)
out([x["id"] for x in g2["graphs"]] == [x["id"] for x in g["graphs"][1:3]], "python: graphs(after_id, limit) pages")
a = c.measure_graphs([two, json.loads(two)])
out(a["inserted"] == 0 and a["duplicates"] == 2 and [x["job_id"] for x in a["graphs"]] == [None, None],
    "python: measure_graphs of a measured graph (text and dict): duplicates, job_id None", str(a))
b = c.measure_graphs([two], repeats=1, repeat_existing=True)
out(b["inserted"] == 1 and isinstance(b["graphs"][0]["job_id"], int), "python: measure_graphs(repeat_existing=True) queues it", str(b))
fin = c.wait_batch(b["batch_id"], poll_s=0.2, timeout=300)
out(fin["counts"]["done"] == 1, "python: wait_batch follows the graph batch to its end", str(fin))
try:
    c.measure_graphs([{"batch": 4, "inputs": [{"name": "x", "shape": [8]}],
                       "nodes": [{"name": "c1", "op": "conv2d", "inputs": ["x"]}]}])
    out(False, "python: measure_graphs of a bad graph raises 422")
except JetprofError as e:
    out(e.status == 422 and "graphs[0]" in e.detail and "c1" in e.detail,
        "python: measure_graphs of a bad graph raises 422 naming graphs[0] and the node", str(e))
print("# done")
EOF
while IFS= read -r line; do
  case "$line" in
  "ok - "*) ok "${line#ok - }" ;;
  "not ok - "*) not_ok "${line#not ok - }" ;;
  esac
done <"$TMP/py.out"
check "python checks ran to the end" eval 'grep -q "^# done" "$TMP/py.out" || { tail -n 8 "$TMP/py.out" | sed "s/^/# /"; false; }'
stop_daemon

# ---- 6. auth ----
printf 'validate-test-token\n' >"$TMP/token"
chmod 600 "$TMP/token"
start_daemon --token-file "$TMP/token" "${TRAIN[@]}" || bail "jetprofd starts with --token-file on the same database"
ok "jetprofd starts with --token-file"
run noauth --url "$BASE" validate --no-fixtures --family none --graph "$TMP/two.json" --skip-train --remeasure
expect noauth 1 "401" "measuring without the token: exit 1 with the 401"
check "... and the hint to pass --token-file" err_has noauth "pass --token-file PATH"
run readonly --url "$BASE" validate --no-fixtures --family none --graph "$TMP/two.json" --skip-train --skip-measure
check "--skip-train --skip-measure needs no token (reads only): exit 0" eval '[ "$RC" = 0 ] || { echo "# $(why readonly)"; false; }'
run withauth --url "$BASE" --token-file "$TMP/token" validate --no-fixtures --family none --graph "$TMP/two.json" --skip-train
check "with --token-file: exit 0" eval '[ "$RC" = 0 ] || { echo "# $(why withauth)"; false; }'
stop_daemon "jetprofd with a token stops on SIGTERM with exit status 0"

finish
