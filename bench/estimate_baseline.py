#!/usr/bin/env python3
"""estimate_baseline.py - the nn-Meter pattern as a baseline for jetprofd's
graph estimates (issue 6): one scikit-learn RandomForestRegressor per kernel
type and target (n_estimators=370, max_depth=50, nn-Meter's kernel predictor
settings), trained on the same dataset jetprofd trained on, and one predict()
call per kernel and target while walking a graph's kernels.

Run by bench/bench_estimate.sh against the daemon it started (sim sensor, CPU
executor, dataset collected, predictors trained):
  1. the dataset: GET /v1/measurements (JSON pages), quality ok and suspect, as
     the daemon's {"quality": "any"} training used;
  2. the graphs' kernels: the same graph as bench_estimate.c (--graph) at
     --graphs batch values, fused and merged by the daemon (one POST
     /v1/estimate {"graphs": [...]}), so both sides predict the same kernels;
  3. per kernel type a latency forest and a board-input power forest (features:
     dtype, each parameter and its log2);
  4. timed: for each graph, for each kernel, predict() latency and power and sum
     latency x power (what an energy estimate needs: nn-Meter's own pattern
     predicts latency only, timed separately). --rounds rounds; the figure is
     the median round's graphs per second.
Only training and the kernel lists are untimed. The last line,
"result: key=value ...", is for the driver's summary.

Standard library, numpy and scikit-learn only. Without scikit-learn it prints
"SKIP: ..." and exits 0 (scripts/install-deps --bench installs python3-sklearn).
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import urllib.error
import urllib.request

N_ESTIMATORS = 370
MAX_DEPTH = 50


def machine_line():
    """The machine line of bench/bench_machine.h."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") or line.startswith("Model"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    u = platform.uname()
    return "machine: %s %s %s, %s, %d online CPUs" % (
        u.system, u.release, u.machine, cpu, os.sysconf("SC_NPROCESSORS_ONLN"))


def request(url, body=None, timeout=600):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        sys.exit("estimate_baseline: %s answered %d: %s" % (url, e.code, e.read()[:400]))
    except urllib.error.URLError as e:
        sys.exit("estimate_baseline: cannot reach %s: %s" % (url, e.reason))


def fetch_dataset(base):
    """Every measurement, paging with after=next_after."""
    rows, after = [], 0
    while True:
        page = request("%s/v1/measurements?limit=10000&after=%d" % (base, after))
        rows.extend(page["measurements"])
        if page.get("next_after") is None:
            return rows
        after = page["next_after"]


def features(dtype, params, names):
    x = [1.0 if dtype == "fp16" else 0.0]
    x += [float(params[n]) for n in names]
    x += [math.log2(params[n]) if params[n] > 0 else 0.0 for n in names]
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="jetprofd, http://127.0.0.1:PORT")
    ap.add_argument("--graph", default="tests/fixtures/graphs/mlp20.json")
    ap.add_argument("--graphs", type=int, default=10, help="graphs (batch values) per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    base = args.url.rstrip("/")

    print(machine_line())
    try:
        import numpy as np
        import sklearn
        from sklearn.ensemble import RandomForestRegressor
    except ImportError as e:
        print("SKIP: nn-Meter baseline: scikit-learn is not importable by %s (%s); "
              "'scripts/install-deps --bench' installs python3-sklearn" % (sys.executable, e))
        return 0

    with open(args.graph) as f:
        graph = json.load(f)
    batches = [2 + 37 * i for i in range(args.graphs)]  # 2, 39, 76, ...: a spread of sizes
    graphs = []
    for b in batches:
        g = dict(graph)
        g["batch"] = b
        graphs.append(g)
    answer = request(base + "/v1/estimate", {"graphs": graphs})
    plans = [[(k["kernel"], k["dtype"], k["params"]) for k in e["kernels"]]
             for e in answer["estimates"]]
    kernel_types = sorted({k[0] for p in plans for k in p})
    catalogue = {k["name"]: [p["name"] for p in k["params"]]
                 for k in request(base + "/v1/kernels")["kernels"]}

    rows = fetch_dataset(base)
    forests = {}
    t0 = time.monotonic()
    for kt in kernel_types:
        names = catalogue[kt]
        data = [r for r in rows if r["kernel"] == kt and r["quality"] in ("ok", "suspect")]
        if len(data) < 2:
            sys.exit("estimate_baseline: %d measurements of %s: too few to train" % (len(data), kt))
        x = np.array([features(r["dtype"], r["params"], names) for r in data])
        y_lat = np.array([r["latency_us"] for r in data])
        y_pow = np.array([next(rr["power_mw"] for rr in r["rails"] if rr["board_input"])
                          if any(rr["board_input"] for rr in r["rails"])
                          else sum(rr["power_mw"] for rr in r["rails"]) for r in data])
        lat = RandomForestRegressor(n_estimators=N_ESTIMATORS, max_depth=MAX_DEPTH,
                                    random_state=0).fit(x, y_lat)
        pw = RandomForestRegressor(n_estimators=N_ESTIMATORS, max_depth=MAX_DEPTH,
                                   random_state=1).fit(x, y_pow)
        forests[kt] = (names, lat, pw, len(data))
    train_s = time.monotonic() - t0

    kernels_per_graph = statistics.median(len(p) for p in plans)
    print("estimate_baseline: nn-Meter pattern, scikit-learn %s RandomForestRegressor("
          "n_estimators=%d, max_depth=%d), one predict() per kernel and target; %d kernel types "
          "(%s rows), trained in %.1f s; %d graphs of %g kernels per round, %d rounds"
          % (sklearn.__version__, N_ESTIMATORS, MAX_DEPTH, len(kernel_types),
             ", ".join("%s %d" % (k, forests[k][3]) for k in kernel_types), train_s,
             len(plans), kernels_per_graph, args.rounds))

    def one_round(with_power):
        t = time.monotonic()
        for plan in plans:
            latency_us = energy_uj = 0.0
            for kt, dtype, params in plan:
                names, lat, pw, _ = forests[kt]
                x = [features(dtype, params, names)]
                l = lat.predict(x)[0]
                latency_us += l
                if with_power:
                    energy_uj += l * pw.predict(x)[0] / 1000.0
        return len(plans) / (time.monotonic() - t)

    energy_rates = [one_round(True) for _ in range(args.rounds)]
    latency_rates = [one_round(False) for _ in range(args.rounds)]
    e_med, l_med = statistics.median(energy_rates), statistics.median(latency_rates)
    print("  latency + power (energy): %8.2f graphs/s (rounds: %s), %.2f ms per predict() call"
          % (e_med, " ".join("%.2f" % r for r in energy_rates),
             1000.0 / (e_med * kernels_per_graph * 2)))
    print("  latency only (nn-Meter): %8.2f graphs/s (rounds: %s)"
          % (l_med, " ".join("%.2f" % r for r in latency_rates)))
    print("result: baseline_energy_graphs_per_s=%.3f baseline_latency_graphs_per_s=%.3f"
          % (e_med, l_med))
    return 0


if __name__ == "__main__":
    sys.exit(main())
