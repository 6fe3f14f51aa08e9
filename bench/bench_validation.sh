#!/usr/bin/env bash
# bench_validation.sh - graph-level accuracy of the estimator with merging on and
# off, on graphs with parallel branches (issue 7); `make bench` runs it after
# bench_estimate.sh.
#
#   1. starts jetprofd (sim sensor, CPU executor, a scratch database under /tmp,
#      127.0.0.1 on a port the kernel picks, a shortened measurement protocol);
#   2. runs `jetprof validate` on the graphs with parallel branches: the fixtures
#      parallel_branches (three linear branches and an embedding branch) and
#      ft_transformer (Q, K, V), and the generated FT-Transformers
#      (--family $FAMILY --families ftt): random sweeps of $SAMPLES configurations
#      per kernel type around the graphs' configurations, training, every graph
#      measured whole, the validation table;
#   3. prints the machine, the command and the summary: MAPE, share within
#      +-10 % and Kendall tau of energy and latency, merge on and off, and one
#      "result:" line with the same figures.
#
# On the CPU executor the kernels of a level run one after the other, so the
# unmerged estimate (a sum over the kernels the graph runs) is the one expected
# to track the measurement; merging models a GPU running the branches at once.
# The figures are the CPU executor's with the simulated sensor: they test the
# pipeline, they are not a Jetson's accuracy (docs/validation.md).
#
# Environment: JETPROFD (default bin/jetprofd), JETPROF (default bin/jetprof),
# FAMILY (tiny, small or medium; default medium: 9 FT-Transformers), SAMPLES
# (configurations per kernel type, default 60), REPEATS (measurement repeats,
# default 3), VALIDATE_ARGS (more jetprof validate options, e.g. --adaptive),
# KEEP_TMP=1 keeps the scratch directory. Takes a few minutes on a 2-core VM.
set -euo pipefail
cd "$(dirname "$0")/.."

JETPROFD=${JETPROFD:-bin/jetprofd}
JETPROF=${JETPROF:-bin/jetprof}
FAMILY=${FAMILY:-medium}
SAMPLES=${SAMPLES:-60}
REPEATS=${REPEATS:-3}
VALIDATE_ARGS=${VALIDATE_ARGS:-}
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3 || true)

NAME=bench_validation
. bench/bench_daemon.sh
for f in "$JETPROFD" "$JETPROF"; do
  [ -x "$f" ] || die "$f is missing: run make (or make bench) first"
done
[ -n "$PY" ] || die "python3 is missing"
GRAPHS=(tests/fixtures/graphs/parallel_branches.json tests/fixtures/graphs/ft_transformer.json)
for g in "${GRAPHS[@]}"; do [ -f "$g" ] || die "graph $g is missing"; done

# ---- 1. the daemon ----
bench_start_daemon --set measure.repeats="$REPEATS"
URL="127.0.0.1:$PORT"

# ---- 2. jetprof validate ----
ARGS=(validate --no-fixtures --graph "${GRAPHS[0]}" --graph "${GRAPHS[1]}" --family "$FAMILY"
  --families ftt --samples "$SAMPLES")
# shellcheck disable=SC2206  # extra options, split into words on purpose
ARGS+=($VALIDATE_ARGS)
t0=$(date +%s)
"$JETPROF" --url "$URL" "${ARGS[@]}" >"$TMP/table.txt" 2>"$TMP/progress.txt" || {
  tail -n 20 "$TMP/progress.txt" >&2
  die "jetprof validate failed"
}
wall=$(($(date +%s) - t0))
"$JETPROF" --url "$URL" validate --no-fixtures --family none --graph "${GRAPHS[0]}" \
  --skip-train --skip-measure --json >"$TMP/validation.json" 2>>"$TMP/progress.txt" ||
  die "jetprof validate --json failed"

# ---- 3. the report ----
cpu=$(grep -m 1 -E '^(model name|Model)' /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*:[[:space:]]*//')
echo "machine: $(uname -s) $(uname -r) $(uname -m), ${cpu:-unknown CPU}, $(getconf _NPROCESSORS_ONLN) online CPUs, load $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo "command: JETPROFD=$JETPROFD JETPROF=$JETPROF FAMILY=$FAMILY SAMPLES=$SAMPLES REPEATS=$REPEATS bench/bench_validation.sh"
echo "         (jetprof ${ARGS[*]}; jetprofd --sensor sim --executor cpu, measure.min_window_ms=20, repeats $REPEATS)"
echo "took ${wall} s: $(grep -cE '^validate: batch [0-9]+: ' "$TMP/progress.txt") batches, $(grep -oE 'trained [0-9]+ models' "$TMP/progress.txt" | head -n 1)"
echo
cat "$TMP/table.txt"
echo
"$PY" - "$TMP/validation.json" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
s = v["summary"]
label = " (simulated: sim sensor, CPU executor)" if v.get("simulated") else ""
print("summary: %d graphs with parallel branches%s" % (s["graphs"], label))
print("  %-8s %-9s %9s %12s %12s" % ("target", "merge", "MAPE %", "within 10 %", "Kendall tau"))
fields = []
for what in ("energy", "latency"):
    for mode, name in (("merged", "on"), ("unmerged", "off")):
        m = s[mode][what]
        if m is None or m.get("mape") is None:
            print("  %-8s %-9s %9s %12s %12s" % (what, name, "-", "-", "-"))
            continue
        print("  %-8s %-9s %9.2f %12.1f %12.3f" % (what, name, m["mape"], 100 * m["within_10pct"], m["kendall_tau"]))
        fields += ["%s_%s_mape=%.4f" % (what, mode, m["mape"]),
                   "%s_%s_within_10pct=%.4f" % (what, mode, m["within_10pct"]),
                   "%s_%s_kendall_tau=%.4f" % (what, mode, m["kendall_tau"])]
print("result: graphs=%d %s" % (s["graphs"], " ".join(fields)))
EOF

kill -TERM "$PID"
wait "$PID" || die "jetprofd exited with status $? on SIGTERM"
PID=""
