#!/usr/bin/env bash
# test_offline.sh - the client's predictor commands against a real jetprofd, and
# the offline estimate against the daemon's: a small dataset is collected for
# every kernel type the fixture graph needs (random sweeps, POST /v1/jobs),
# `jetprof train --quality any` trains them, `jetprof models export -o` writes
# the bundle, and `jetprof estimate --offline --models F --json` must print the
# very answer POST /v1/estimate gives (merged and --no-merge, one graph and a
# batch): same code (predict/estimate.c, graph.c, models.c, trees.c), same
# models, same 12-digit printing, so the parsed JSON documents are compared
# for exact equality, floats included. Also: train/models/predict/estimate
# output and their error paths (usage errors exit 2; files that cannot be read
# exit 2 naming them; a bad bundle, a bad graph naming its node, missing models
# and daemon errors exit 1).
. "$(dirname "$0")/lib.sh"

GRAPH=${GRAPH:-tests/fixtures/graphs/mlp.json}
ROWS=21 # per kernel type: TRAIN_MIN_ROWS (20) and one spare
# the shortest protocol the configuration allows: the dataset only has to exist
set_measure measure.repeats=1
set_measure measure.min_window_ms=10
set_measure measure.min_samples=5
set_measure measure.idle_ms=10
set_measure measure.warmup_ms=2
set_measure measure.warmup_launches=2
set_measure measure.settle_ms=0

# jp ARGS...: runs the client; sets RC, OUT, ERR.
jp() {
  timeout $((120 * SLOW)) "$JETPROF" "$@" >"$TMP/out" 2>"$TMP/err"
  RC=$?
  OUT=$(cat "$TMP/out")
  ERR=$(cat "$TMP/err")
}

# expect NAME RC [STREAM NEEDLE]...: the last jp exited RC; each STREAM (out|err)
# contains its NEEDLE; no sanitizer report.
expect() {
  local name=$1 want=$2
  shift 2
  local why=()
  [ "$RC" = "$want" ] || why+=("exit status $RC, wanted $want")
  while [ $# -ge 2 ]; do
    local text
    [ "$1" = out ] && text=$OUT || text=$ERR
    contains "$text" "$2" || why+=("std$1 lacks '$2'")
    shift 2
  done
  if sanitizer_report_in "$TMP/err"; then why+=("sanitizer report on stderr"); fi
  if [ ${#why[@]} -eq 0 ]; then
    ok "$name"
  else
    not_ok "$name" "${why[@]}" "stdout: $(head -c 400 <<<"$OUT" | tr '\n' ' ')" \
      "stderr: $(head -c 600 <<<"$ERR" | tr '\n' ' ')"
  fi
}

# same_json NAME FILE_A FILE_B: the two files parse to equal JSON (exact floats).
same_json() {
  local name=$1
  if "$PY" - "$2" "$3" <<'EOF'; then ok "$name"; else not_ok "$name"; fi
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
if a == b:
    sys.exit(0)
def diff(x, y, path="$"):
    if type(x) != type(y) or not isinstance(x, (dict, list)):
        if x != y:
            print("#   first difference at %s: %r != %r" % (path, x, y))
            return True
        return False
    if isinstance(x, dict):
        if x.keys() != y.keys():
            print("#   keys differ at %s: %s vs %s" % (path, sorted(x), sorted(y)))
            return True
        return any(diff(x[k], y[k], "%s.%s" % (path, k)) for k in x)
    if len(x) != len(y):
        print("#   lengths differ at %s: %d vs %d" % (path, len(x), len(y)))
        return True
    return any(diff(u, v, "%s[%d]" % (path, i)) for i, (u, v) in enumerate(zip(x, y)))
diff(a, b)
sys.exit(1)
EOF
}

# The random-sweep ranges of a kernel type: small, so CPU measurements are quick.
sweep_params() {
  case "$1" in
    linear | linear_relu | linear_gelu | linear_bn | linear_bn_relu)
      echo '{"batch": [1, 128], "in": [8, 256], "out": [8, 256]}' ;;
    layernorm | softmax | add | add_relu) echo '{"rows": [1, 512], "cols": [8, 512]}' ;;
    attention) echo '{"batch": [1, 8], "tokens": [2, 32], "heads": [1, 4], "head_dim": [8, 32]}' ;;
    tokenizer) echo '{"batch": [1, 128], "features": [1, 32], "d": [8, 64]}' ;;
    concat) echo '{"rows": [1, 512], "cols_a": [8, 256], "cols_b": [8, 256]}' ;;
    *) return 1 ;;
  esac
}

# A configuration of a kernel type, as predict's NAME=VALUE arguments.
predict_args() {
  case "$1" in
    linear | linear_relu | linear_gelu | linear_bn | linear_bn_relu) echo "batch=64 in=256 out=512" ;;
    layernorm | softmax | add | add_relu) echo "rows=64 cols=256" ;;
    attention) echo "batch=4 tokens=16 heads=4 head_dim=32" ;;
    tokenizer) echo "batch=64 features=16 d=64" ;;
    concat) echo "rows=64 cols_a=128 cols_b=64" ;;
  esac
}

[ -f "$GRAPH" ] || bail "the fixture graph $GRAPH exists"
cp "$GRAPH" "$TMP/graph.json"
G=$TMP/graph.json

# ---- without a daemon: usage and files ----
for c in train models predict estimate; do
  jp "$c" --help
  expect "jetprof $c --help: exit 0 with its usage" 0 out "Usage: jetprof $c"
done
jp --help
expect "jetprof --help lists train, models, predict and estimate --offline" 0 out "train [KERNEL" \
  out "models export" out "predict KERNEL" out "estimate --offline --models FILE"
jp estimate
expect "estimate without a graph: exit 2" 2 err "which graph"
jp estimate a.json b.json
expect "estimate with two graphs: exit 2" 2 err "one GRAPH.json"
jp estimate --offline "$G"
expect "estimate --offline without --models: exit 2 naming --models" 2 err "--models FILE"
jp estimate --models "$TMP/m.json" "$G"
expect "estimate --models without --offline: exit 2" 2 err "--offline"
jp estimate --frobnicate "$G"
expect "estimate with an unknown option: exit 2" 2 err "--frobnicate"
jp estimate --offline --models "$TMP/no-such-bundle.json" "$G"
expect "estimate --offline with a bundle that does not exist: exit 2 naming it" 2 \
  err "cannot read $TMP/no-such-bundle.json"
jp estimate --offline --models "$TMP/m.json" "$TMP/no-such-graph.json"
expect "estimate with a graph file that does not exist: exit 2 naming it" 2 \
  err "cannot read $TMP/no-such-graph.json"
printf '{"name": "broken", "nodes": [\n' >"$TMP/broken.json"
printf '{"format": "jetprof-models/1", "models": []}' >"$TMP/m.json"
jp estimate --offline --models "$TMP/m.json" "$TMP/broken.json"
expect "a graph that is not JSON: exit 1 with file:line:column" 1 err "$TMP/broken.json:2:"
printf 'not json at all' >"$TMP/garbage.json"
jp estimate --offline --models "$TMP/garbage.json" "$G"
expect "a bundle that is not JSON: exit 1 naming the file" 1 \
  err "$TMP/garbage.json: not a usable model bundle"
printf '{"format": "jetprof-model/1", "kernel": "linear"}' >"$TMP/blob.json"
jp estimate --offline --models "$TMP/blob.json" "$G"
expect "a model blob instead of a bundle: exit 1" 1 err "$TMP/blob.json: not a usable model bundle"
jp estimate --offline --models "$TMP" "$G"
expect "a directory as the bundle: exit 2" 2 err "cannot read $TMP"
jp predict
expect "predict without a kernel: exit 2" 2 err kernel
jp predict linear batch=abc in=16 out=32
expect "predict with a non-integer value: exit 2 naming it" 2 err batch err integer
jp predict linear dtype=fp16 dtype=fp32 batch=1
expect "predict with the dtype twice: exit 2" 2 err "dtype is given twice"
jp models export extra
expect "models export with an extra argument: exit 2" 2 err extra
jp models --bogus
expect "models with an unknown option: exit 2" 2 err --bogus
jp train --bogus
expect "train with an unknown option: exit 2" 2 err --bogus

# ---- a daemon without models ----
start_daemon || bail "jetprofd starts"
ok "jetprofd starts"
U=(--url "$BASE")
jp "${U[@]}" models
expect "models with none trained: exit 0, an empty table, a hint on stderr" 0 out KERNEL \
  err "no models yet" err "jetprof train"
jp "${U[@]}" models export -o "$TMP/none.json"
expect "models export with none trained: exit 1 with the daemon's 404" 1 err "jetprof: 404 "
check "... and no file written" [ ! -e "$TMP/none.json" ]
jp "${U[@]}" estimate "$G"
expect "estimate with no models: exit 1 with the daemon's 409" 1 err "jetprof: 409 " \
  err "no model for kernel type"
jp "${U[@]}" train softmax
expect "train a kernel type without measurements: exit 1 with 409 naming it" 1 \
  err "jetprof: 409 " err "softmax" err "at least 20"
jp "${U[@]}" train conv9
expect "train an unknown kernel type: exit 1 with 422" 1 err "jetprof: 422 " err conv9

# the kernel types the graph needs: the 409's "kernels" member
http POST /v1/estimate "$(cat "$G")"
check "POST /v1/estimate without models: 409 listing the kernel types" \
  json_true 'j["status"] == 409 and len(j["kernels"]) >= 1'
KERNELS=$(json_get '" ".join(j["kernels"])')
echo "# $GRAPH needs: $KERNELS"

# ---- a dataset ----
BATCHES=()
seed=11
for k in $KERNELS; do
  params=$(sweep_params "$k") || bail "sweep ranges for kernel type $k"
  http POST /v1/jobs "{\"sweep\": {\"type\": \"random\", \"kernel\": \"$k\", \"count\": $ROWS, \"seed\": $seed, \"params\": $params}}"
  [ "$STATUS" = 201 ] || bail "POST /v1/jobs for $k: 201"
  BATCHES+=("$(json_get 'j["batch_id"]')")
  seed=$((seed + 1))
done
batch_done() { http GET "/v1/batches/$1" && json_true 'j["counts"]["queued"] == 0 and j["counts"]["running"] == 0'; }
all_done=0
for b in "${BATCHES[@]}"; do
  wait_until $((90 * SLOW)) batch_done "$b" || all_done=1
done
check "the dataset ($ROWS configurations per kernel type) is measured" [ "$all_done" = 0 ]

# ---- train, models, export ----
jp "${U[@]}" train --quality any
expect "jetprof train --quality any: exit 0, a table, a summary on stderr" 0 out KERNEL \
  out latency_us out "power_mw:" err "trained " err "simulated"
every_kernel_has_latency_row() {
  local k
  for k in $KERNELS; do grep -qE "^$k +latency_us " "$TMP/out" || return 1; done
}
check "train: a latency_us row for every kernel type the graph needs" every_kernel_has_latency_row
TRAINED_ROWS=$(grep -cE '^[a-z_]+ +(latency_us|power_mw:)' "$TMP/out")
http GET /v1/models
NMODELS=$(json_get 'len(j["models"])')
check "train printed one row per model ($TRAINED_ROWS rows, $NMODELS models)" \
  [ "$TRAINED_ROWS" = "$NMODELS" ]
jp "${U[@]}" models
expect "jetprof models: exit 0, a table and a summary" 0 out KERNEL out latency_us \
  err "$NMODELS models for"
check "models: one row per model" [ "$(grep -cE '^[a-z_]+ +(latency_us|power_mw:)' "$TMP/out")" = "$NMODELS" ]
jp "${U[@]}" models --json
expect "jetprof models --json: exit 0" 0
check "models --json is GET /v1/models" json_equal "$OUT" "$BODY"

jp "${U[@]}" models export -o "$TMP/models.json"
expect "jetprof models export -o FILE: exit 0 saying what it wrote" 0 \
  err "wrote $TMP/models.json: $NMODELS models"
# Loading the whole bundle takes seconds (every booster of every model), so the
# error paths use a small one: only the last kernel type's latency model.
KLAST=${KERNELS##* }
check "the bundle: jetprof-models/1 with every model and the device (and a small one made)" \
  "$PY" -c 'import json, sys
b = json.load(open(sys.argv[1]))
good = (b["format"] == "jetprof-models/1" and len(b["models"]) == int(sys.argv[2]) and
        isinstance(b["device"], dict) and b["simulated"] is True)
b["models"] = [m for m in b["models"] if m["kernel"] == sys.argv[4] and m["target"] == "latency_us"]
json.dump(b, open(sys.argv[3], "w"))
sys.exit(0 if good and len(b["models"]) == 1 else 1)' "$TMP/models.json" "$NMODELS" "$TMP/small.json" "$KLAST"
check "no temporary file is left beside it" \
  eval '[ -z "$(find "$TMP" -maxdepth 1 -name "models.json.tmp.*")" ]'

# ---- predict ----
K1=${KERNELS%% *}
# shellcheck disable=SC2046
jp "${U[@]}" predict "$K1" $(predict_args "$K1")
expect "jetprof predict $K1: exit 0, the answer, a summary on stderr" 0 out '"predictions"' \
  err "predicted latency" err "simulated"
check "predict: one prediction of $K1 with latency and power per rail" \
  json_true 'len(j["predictions"]) == 1 and j["predictions"][0]["kernel"] == "'"$K1"'" and
    j["predictions"][0]["latency_us"] > 0 and len(j["predictions"][0]["power_mw"]) >= 1 and
    j["simulated"] is True' "$OUT"
# shellcheck disable=SC2046
jp "${U[@]}" predict "$K1" dtype=fp16 $(predict_args "$K1")
expect "jetprof predict $K1 dtype=fp16: exit 0" 0
check "... predicted as fp16" json_true 'j["predictions"][0]["dtype"] == "fp16"' "$OUT"
jp "${U[@]}" predict conv9 batch=1
expect "predict an unknown kernel: exit 1 with the daemon's detail" 1 err conv9

# ---- estimate: online, offline, identical ----
http POST /v1/estimate "$(cat "$G")"
printf '%s' "$BODY" >"$TMP/daemon.json"
check "POST /v1/estimate: 200 with kernels and totals" \
  eval '[ "$STATUS" = 200 ] && json_true '"'"'len(j["kernels"]) >= 1 and j["totals"]["latency_us"] > 0 and j["merge"] is True'"'"
jp "${U[@]}" estimate --json "$G"
expect "jetprof estimate --json: exit 0" 0
printf '%s' "$OUT" >"$TMP/online.json"
same_json "estimate --json prints the daemon's answer" "$TMP/online.json" "$TMP/daemon.json"
jp estimate --offline --models "$TMP/models.json" --json "$G"
expect "jetprof estimate --offline --models F --json: exit 0" 0
printf '%s' "$OUT" >"$TMP/offline.json"
same_json "offline estimate == POST /v1/estimate (kernels and totals, exact numbers)" \
  "$TMP/offline.json" "$TMP/daemon.json"

# A batch ({"graphs": [...]}): the fixture, the fixture at batch 7, and two
# linear layers reading the same input at the same depth, which merge into one
# linear kernel (out 64 + 32) unless --no-merge.
"$PY" -c 'import json, sys
g = json.load(open(sys.argv[1])); h = dict(g); h["batch"] = 7
par = {"name": "parallel", "batch": 16, "dtype": "fp32", "inputs": [{"name": "x", "shape": [48]}],
       "nodes": [{"name": "left", "op": "linear", "inputs": ["x"], "out": 64},
                 {"name": "right", "op": "linear", "inputs": ["x"], "out": 32}],
       "outputs": ["left", "right"]}
json.dump({"graphs": [g, h, par]}, open(sys.argv[2], "w"))' "$G" "$TMP/batch.json"
HAVE_LINEAR=0
case " $KERNELS " in *" linear "*) HAVE_LINEAR=1 ;; esac
if [ "$HAVE_LINEAR" = 0 ]; then # the fixture has no plain linear: the batch without it
  "$PY" -c 'import json, sys
b = json.load(open(sys.argv[1])); b["graphs"] = b["graphs"][:2]; json.dump(b, open(sys.argv[1], "w"))' "$TMP/batch.json"
fi

http POST '/v1/estimate?merge=false' "$(cat "$TMP/batch.json")"
printf '%s' "$BODY" >"$TMP/daemon-nomerge.json"
check "POST /v1/estimate?merge=false with a batch: 200, one estimate per graph, nothing merged" \
  eval '[ "$STATUS" = 200 ] && json_true '"'"'len(j["estimates"]) == 2 + '"$HAVE_LINEAR"' and all(e["merge"] is False and all(k["merged"] == 1 for k in e["kernels"]) for e in j["estimates"])'"'"
jp estimate --offline --models "$TMP/models.json" --no-merge --json "$TMP/batch.json"
expect "jetprof estimate --offline --no-merge --json of the batch: exit 0" 0
printf '%s' "$OUT" >"$TMP/offline-nomerge.json"
same_json "offline --no-merge batch == POST /v1/estimate?merge=false (exact numbers)" \
  "$TMP/offline-nomerge.json" "$TMP/daemon-nomerge.json"
jp "${U[@]}" estimate --no-merge --json "$TMP/batch.json"
printf '%s' "$OUT" >"$TMP/online-nomerge.json"
same_json "estimate --no-merge --json of the batch (online) == the daemon's answer" \
  "$TMP/online-nomerge.json" "$TMP/daemon-nomerge.json"

http POST /v1/estimate "$(cat "$TMP/batch.json")"
printf '%s' "$BODY" >"$TMP/daemon-batch.json"
if [ "$HAVE_LINEAR" = 1 ]; then
  check "POST /v1/estimate with the batch: the parallel linears merged into one (out 96)" \
    json_true 'len(j["estimates"][2]["kernels"]) == 1 and j["estimates"][2]["kernels"][0]["merged"] == 2 and
      j["estimates"][2]["kernels"][0]["params"]["out"] == 96'
fi
jp estimate --offline --models "$TMP/models.json" --json - <"$TMP/batch.json"
expect "offline estimate of the batch from standard input: exit 0" 0
printf '%s' "$OUT" >"$TMP/offline-batch.json"
same_json "offline batch (merged) == POST /v1/estimate batch (exact numbers)" \
  "$TMP/offline-batch.json" "$TMP/daemon-batch.json"

jp "${U[@]}" estimate "$G"
expect "jetprof estimate (table): exit 0 with the kernels and the totals" 0 out KERNEL \
  out LATENCY_US out "total: " out "board input" err simulated
cp "$TMP/out" "$TMP/online-table.txt"
check "the table has one row per kernel" \
  [ "$(grep -cE '^ +[0-9]+  ' "$TMP/online-table.txt")" = "$(json_get 'len(j["kernels"])' "$(cat "$TMP/daemon.json")")" ]
jp estimate --offline --models "$TMP/models.json" "$G"
expect "offline estimate (table): exit 0" 0 out "total: "
check "... the same table as the online estimate" cmp -s "$TMP/out" "$TMP/online-table.txt"

# ---- estimate errors ----
"$PY" -c 'import json, sys
g = json.load(open(sys.argv[1])); n = g["nodes"][-1]; n["inputs"] = ["no_such_node"]
json.dump(g, open(sys.argv[2], "w")); print(n["name"])' "$G" "$TMP/bad.json" >"$TMP/badnode"
BADNODE=$(cat "$TMP/badnode")
jp "${U[@]}" estimate "$TMP/bad.json"
expect "estimate of a graph with a dangling input: exit 1, 422 naming the node" 1 \
  err "jetprof: 422 " err "node '$BADNODE'" err no_such_node
jp estimate --offline --models "$TMP/small.json" "$TMP/bad.json"
expect "the same offline: exit 1, naming the file and the node" 1 \
  err "$TMP/bad.json: node '$BADNODE'" err no_such_node
"$PY" -c 'import json, sys
g = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
json.dump({"graphs": [g, b]}, open(sys.argv[3], "w"))' "$G" "$TMP/bad.json" "$TMP/badbatch.json"
jp estimate --offline --models "$TMP/small.json" "$TMP/badbatch.json"
expect "offline batch with a bad second graph: exit 1 naming graphs[1] and the node" 1 \
  err "graphs[1]: node '$BADNODE'"
# the small bundle has the models of one kernel type only
if [ "$K1" != "$KLAST" ]; then
  jp estimate --offline --models "$TMP/small.json" "$G"
  expect "offline estimate with a bundle lacking $K1: exit 1 naming the kernel type" 1 \
    err "no model for kernel type" err "'$K1'"
  jp estimate --offline --models "$TMP/small.json" "$TMP/batch.json"
  expect "... and for a batch" 1 err "no model for kernel type" err "'$K1'"
fi
jp "${U[@]}" estimate --no-merge "$TMP/broken.json"
expect "online estimate of a file that is not JSON: exit 1 before sending" 1 err "$TMP/broken.json:2:"

stop_daemon
finish
