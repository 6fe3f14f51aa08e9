#!/usr/bin/env bash
# bench_estimate.sh - graph estimates per second from a running jetprofd against
# the nn-Meter pattern (issue 6); `make bench` runs it after the C benchmarks.
#
#   1. starts jetprofd (sim sensor, CPU executor, a scratch database under /tmp,
#      127.0.0.1 on a port the kernel picks, request bodies up to 256 MiB so a
#      batch of 1000 graphs fits, a shortened measurement protocol);
#   2. asks it to estimate the graph before any model exists: the 409 names every
#      kernel type the graph needs ("kernels");
#   3. collects a dataset: a random sweep of $ROWS configurations per kernel type
#      (POST /v1/jobs, small CPU-friendly ranges), then trains every predictor
#      (POST /v1/models/train {"quality": "any"});
#   4. bench_estimate (C, keep-alive HTTP): single graphs with the prediction
#      cache hot, cold and mixed, and batches of 1000 graphs in one POST;
#   5. bench/estimate_baseline.py: scikit-learn random forests (370 trees, depth
#      50), one predict() per kernel, on the same graphs' kernels (SKIP when
#      scikit-learn is missing);
#   6. prints the medians side by side and the ratios.
#
# Environment: JETPROFD (default bin/jetprofd), BENCH_ESTIMATE (default
# build/default/bench/bench_estimate), GRAPH (default tests/fixtures/graphs/mlp20.json),
# ROWS (configurations per kernel type, default 60), BENCH_ARGS (extra
# bench_estimate options, e.g. "--requests 200 --rounds 3"), BASELINE_ARGS
# (extra estimate_baseline.py options), KEEP_TMP=1 keeps the scratch directory.
# The sensor is simulated and the executor is the CPU: the predictors are real
# XGBoost models of CPU kernels; what is measured is the estimate path's cost.
set -euo pipefail
cd "$(dirname "$0")/.."

JETPROFD=${JETPROFD:-bin/jetprofd}
BENCH_ESTIMATE=${BENCH_ESTIMATE:-build/default/bench/bench_estimate}
GRAPH=${GRAPH:-tests/fixtures/graphs/mlp20.json}
ROWS=${ROWS:-60}
BENCH_ARGS=${BENCH_ARGS:-}
BASELINE_ARGS=${BASELINE_ARGS:-}
# the system interpreter: python3-sklearn is a Debian package (version-manager
# shims on PATH would not see it)
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3 || true)

NAME=bench_estimate
. bench/bench_daemon.sh
for f in "$JETPROFD" "$BENCH_ESTIMATE"; do
  [ -x "$f" ] || die "$f is missing: run make (or make bench) first"
done
[ -f "$GRAPH" ] || die "graph $GRAPH is missing"
command -v curl >/dev/null || die "curl is missing (scripts/install-deps installs it)"
[ -n "$PY" ] || die "python3 is missing"

# ---- 1. the daemon ----
bench_start_daemon --set server.max_body_bytes=268435456 --set measure.repeats=1
BASE="http://127.0.0.1:$PORT"

# post PATH BODY: prints the body; STATUS set from a file (no subshell variables)
post() {
  printf '%s' "$2" >"$TMP/request"
  curl -s -o "$TMP/answer" -w '%{http_code}' --max-time 1800 -X POST \
    -H 'Content-Type: application/json' --data-binary "@$TMP/request" "$BASE$1" >"$TMP/status" ||
    die "POST $1: no answer from jetprofd"
}
status() { cat "$TMP/status"; }
jget() { "$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$TMP/answer" "$1"; }

# ---- 2. the kernel types the graph needs ----
curl -s -o "$TMP/graph.json" --data-binary "@$GRAPH" -H 'Content-Type: application/json' \
  -w '%{http_code}' "$BASE/v1/estimate" >"$TMP/status" || die "jetprofd does not answer"
cp "$TMP/graph.json" "$TMP/answer"
[ "$(status)" = 409 ] || die "POST /v1/estimate without models answered $(status), wanted 409: $(head -c 400 "$TMP/answer")"
KERNELS=$(jget '" ".join(j["kernels"])')
echo "bench_estimate.sh: $GRAPH needs models for: $KERNELS; collecting $ROWS configurations of each"

# ---- 3. dataset and training ----
# small ranges, so a CPU measurement takes milliseconds
sweep_params() {
  case "$1" in
    linear | linear_relu | linear_gelu | linear_bn | linear_bn_relu)
      echo '{"batch": [1, 256], "in": [8, 512], "out": [8, 512]}' ;;
    layernorm | softmax) echo '{"rows": [1, 1024], "cols": [8, 1024]}' ;;
    add | add_relu) echo '{"rows": [1, 1024], "cols": [8, 1024]}' ;;
    attention) echo '{"batch": [1, 16], "tokens": [2, 64], "heads": [1, 8], "head_dim": [8, 64]}' ;;
    tokenizer) echo '{"batch": [1, 256], "features": [1, 64], "d": [8, 128]}' ;;
    concat) echo '{"rows": [1, 1024], "cols_a": [8, 512], "cols_b": [8, 512]}' ;;
    *) return 1 ;;
  esac
}
BATCHES=()
seed=1
t0=$(date +%s)
for k in $KERNELS; do
  params=$(sweep_params "$k") || die "no sweep ranges for kernel type $k in this script"
  post /v1/jobs "{\"sweep\": {\"type\": \"random\", \"kernel\": \"$k\", \"count\": $ROWS, \"seed\": $seed, \"params\": $params}}"
  [ "$(status)" = 201 ] || die "POST /v1/jobs ($k) answered $(status): $(head -c 400 "$TMP/answer")"
  BATCHES+=("$(jget 'j["batch_id"]')")
  seed=$((seed + 1))
done
for b in "${BATCHES[@]}"; do
  while :; do
    curl -s -o "$TMP/answer" "$BASE/v1/batches/$b" || die "GET /v1/batches/$b: no answer"
    [ "$(jget 'j["counts"]["queued"] + j["counts"]["running"]')" = 0 ] && break
    sleep 0.5
  done
done
post /v1/models/train '{"quality": "any"}'
[ "$(status)" = 200 ] || die "POST /v1/models/train answered $(status): $(head -c 400 "$TMP/answer")"
echo "bench_estimate.sh: dataset collected and $(jget 'len(j["models"])') models trained in $(($(date +%s) - t0)) s"
# Kernel-level accuracy on the held-out split of each model (CPU executor data,
# simulated sensor): the models the estimates below use.
"$PY" - "$TMP/answer" <<'EOF2'
import json, sys
j = json.load(open(sys.argv[1]))
print("# kernel-level accuracy (held-out split; simulated: %s)" % j.get("simulated"))
print("%-16s %-22s %6s %6s %9s %8s %7s" % ("kernel", "target", "train", "test", "MAPE %", "+-10 %", "tau"))
for m in j["models"]:
    x = m["metrics"]
    print("%-16s %-22s %6d %6d %9.2f %8.1f %7.3f" % (m["kernel"], m["target"], x["train_rows"],
          x["test_rows"], x["mape"], 100 * x["within_10pct"], x["kendall_tau"]))
EOF2

# ---- 4. and 5. ----
# shellcheck disable=SC2086
"$BENCH_ESTIMATE" --url "$BASE" --graph "$GRAPH" $BENCH_ARGS | tee "$TMP/daemon.out"
# shellcheck disable=SC2086
"$PY" bench/estimate_baseline.py --url "$BASE" --graph "$GRAPH" $BASELINE_ARGS | tee "$TMP/baseline.out"

# ---- 6. summary ----
"$PY" - "$TMP/daemon.out" "$TMP/baseline.out" <<'EOF'
import sys
def results(path):
    out = {}
    for line in open(path):
        if line.startswith("result: "):
            for kv in line.split()[1:]:
                k, v = kv.split("=")
                out[k] = float(v)
    return out
d, b = results(sys.argv[1]), results(sys.argv[2])
print("summary (median graphs/s of the graph above; ratios to the nn-Meter pattern "
      "predicting latency and power):")
n = int(d["batch_graphs"])
rows = [("jetprofd, single requests, cache hot", "single_hot_graphs_per_s"),
        ("jetprofd, single requests, cache cold", "single_cold_graphs_per_s"),
        ("jetprofd, single requests, mixed", "single_mixed_graphs_per_s"),
        ("jetprofd, batches of %d, cache hot" % n, "batch_hot_graphs_per_s"),
        ("jetprofd, batches of %d, cache cold" % n, "batch_cold_graphs_per_s")]
base = b.get("baseline_energy_graphs_per_s")
for label, key in rows:
    ratio = " %8.0fx the baseline" % (d[key] / base) if base else ""
    print("  %-40s %10.1f%s" % (label, d[key], ratio))
if base:
    print("  %-40s %10.2f" % ("nn-Meter pattern (RF, latency + power)", base))
    print("  %-40s %10.2f" % ("nn-Meter pattern (RF, latency only)", b["baseline_latency_graphs_per_s"]))
else:
    print("  nn-Meter baseline: SKIP (see above)")
EOF

kill -TERM "$PID"
wait "$PID" || die "jetprofd exited with status $? on SIGTERM"
PID=""
