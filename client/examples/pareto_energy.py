#!/usr/bin/env python3
"""pareto_energy.py - rank candidate architectures by estimated energy and find the
energy-accuracy Pareto front, with jetprofd's predictors.

This is the step of an energy-aware architecture search that jetprof exists for:
a list of candidate networks (architectures.csv: family, depth, width, heads and
an accuracy) becomes native graphs (docs/graphs.md), one POST /v1/estimate batch
(JetprofClient.estimate_many) estimates the energy of one inference of each from
its fused kernels, and the script prints them ranked by board-input energy, marks
the Pareto front (no other candidate is both cheaper and more accurate) and its
knee (the best trade-off: the front member farthest above the straight line
between the front's cheapest and most accurate members, on axes normalised to
[0, 1]). The daemon needs trained models for every kernel type the graphs use;
client/examples/README.md shows how to collect the data and train.

    python3 client/examples/pareto_energy.py --host 127.0.0.1:9740
    python3 client/examples/pareto_energy.py --csv mine.csv --batch 1 --dtype fp16

Families (each block's dropout vanishes at inference; every kernel named here must
have a model):
  mlp             depth x (linear -> batchnorm -> relu -> dropout), linear head:
                  linear_bn_relu, linear
  resnet          linear+relu stem, depth x residual block (linear(2*width) ->
                  batchnorm -> relu -> dropout -> linear(width) -> batchnorm, add
                  the block's input, relu), linear head: linear_relu,
                  linear_bn_relu, linear_bn, add_relu, linear
  ft_transformer  feature tokenizer (d = width), depth x pre-norm Transformer block
                  (heads, FFN width*4/3 with GELU; the first block has no attention
                  layernorm), layernorm, flatten, linear head: tokenizer, linear,
                  attention, add, layernorm, linear_gelu

Exit status: 0 done; 1 the daemon refused or could not be reached (a missing
model is explained); 2 a bad command line or CSV.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from jetprof_client import JetprofClient, JetprofConnectionError, JetprofError  # noqa: E402

FAMILIES = ("mlp", "resnet", "ft_transformer")
FAMILY_KERNELS = {
    "mlp": ["linear_bn_relu", "linear"],
    "resnet": ["linear_relu", "linear_bn_relu", "linear_bn", "add_relu", "linear"],
    "ft_transformer": ["tokenizer", "linear", "attention", "add", "layernorm", "linear_gelu"],
}
DEFAULT_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "architectures.csv")
# A batch request stays well inside the daemon's server.max_body_bytes (1 MiB by default).
MAX_REQUEST_BYTES = 512 * 1024
MAX_GRAPHS_PER_REQUEST = 10000


class InputError(Exception):
    """A bad CSV row or option (exit status 2)."""


@dataclass
class Architecture:
    """One row of the CSV."""

    name: str
    family: str
    depth: int
    width: int
    heads: Optional[int]
    accuracy: float
    line: int


@dataclass
class Result:
    """An architecture with its estimate."""

    arch: Architecture
    kernels: int
    latency_us: float
    energy_uj: Optional[float]  # board input (or the sum of rails), one inference of a batch
    on_front: bool = False
    knee: bool = False


# ---- CSV ----


def _int_field(row: Dict[str, str], key: str, where: str, low: int, high: int) -> int:
    text = (row.get(key) or "").strip()
    try:
        v = int(text)
    except ValueError:
        raise InputError("%s: %s = %r is not an integer" % (where, key, text)) from None
    if not low <= v <= high:
        raise InputError("%s: %s = %d is outside [%d, %d]" % (where, key, v, low, high))
    return v


def read_architectures(path: str) -> List[Architecture]:
    """The CSV's rows. Lines starting with '#' are comments; the header names the
    columns name, family, depth, width, heads, accuracy (heads may be empty except
    for ft_transformer)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            lines = [(n, line) for n, line in enumerate(f, 1) if not line.lstrip().startswith("#") and line.strip()]
    except OSError as e:
        raise InputError("cannot read %s: %s" % (path, e)) from None
    if not lines:
        raise InputError("%s has no header line" % path)
    reader = csv.DictReader([line for _, line in lines])
    need = {"name", "family", "depth", "width", "heads", "accuracy"}
    missing = need - set(reader.fieldnames or [])
    if missing:
        raise InputError("%s: the header lacks column(s) %s" % (path, ", ".join(sorted(missing))))
    out: List[Architecture] = []
    names = set()
    for (lineno, _), row in zip(lines[1:], reader):
        where = "%s line %d" % (path, lineno)
        name = (row.get("name") or "").strip()
        if not name:
            raise InputError("%s: the name is empty" % where)
        if name in names:
            raise InputError("%s: the name %r is used twice" % (where, name))
        names.add(name)
        family = (row.get("family") or "").strip()
        if family not in FAMILIES:
            raise InputError("%s: family %r is not one of %s" % (where, family, ", ".join(FAMILIES)))
        depth = _int_field(row, "depth", where, 1, 64)
        width = _int_field(row, "width", where, 1, 16384)
        heads: Optional[int] = None
        if family == "ft_transformer":
            heads = _int_field(row, "heads", where, 1, 64)
            if width % heads:
                raise InputError("%s: width %d is not a multiple of heads %d" % (where, width, heads))
        elif (row.get("heads") or "").strip():
            raise InputError("%s: heads applies to ft_transformer only" % where)
        try:
            accuracy = float((row.get("accuracy") or "").strip())
        except ValueError:
            raise InputError("%s: accuracy %r is not a number" % (where, row.get("accuracy"))) from None
        if not math.isfinite(accuracy):
            raise InputError("%s: accuracy must be finite" % where)
        out.append(Architecture(name, family, depth, width, heads, accuracy, lineno))
    if not out:
        raise InputError("%s has no architecture rows" % path)
    return out


# ---- graphs (docs/graphs.md, native format) ----


def _node(name: str, op: str, inputs: Sequence[str], **attrs: Any) -> Dict[str, Any]:
    n: Dict[str, Any] = {"name": name, "op": op, "inputs": list(inputs)}
    n.update(attrs)
    return n


def build_graph(arch: Architecture, features: int, batch: int, dtype: str = "fp32", outputs: int = 1) -> Dict[str, Any]:
    """The native graph of one architecture: ``features`` numerical inputs per
    sample, ``batch`` samples per inference, a head of ``outputs`` units."""
    nodes: List[Dict[str, Any]] = []
    w = arch.width
    if arch.family == "mlp":
        prev = "x"
        for i in range(1, arch.depth + 1):
            nodes += [
                _node("fc%d" % i, "linear", [prev], out=w),
                _node("bn%d" % i, "batchnorm", ["fc%d" % i]),
                _node("relu%d" % i, "relu", ["bn%d" % i]),
                _node("drop%d" % i, "dropout", ["relu%d" % i], p=0.1),
            ]
            prev = "drop%d" % i
        nodes.append(_node("head", "linear", [prev], out=outputs))
    elif arch.family == "resnet":
        nodes += [_node("stem", "linear", ["x"], out=w), _node("stem_relu", "relu", ["stem"])]
        prev = "stem_relu"
        for i in range(1, arch.depth + 1):
            b = "b%d_" % i
            nodes += [
                _node(b + "fc1", "linear", [prev], out=2 * w),
                _node(b + "bn1", "batchnorm", [b + "fc1"]),
                _node(b + "relu1", "relu", [b + "bn1"]),
                _node(b + "drop", "dropout", [b + "relu1"], p=0.2),
                _node(b + "fc2", "linear", [b + "drop"], out=w),
                _node(b + "bn2", "batchnorm", [b + "fc2"]),
                _node(b + "add", "add", [b + "bn2", prev]),
                _node(b + "relu", "relu", [b + "add"]),
            ]
            prev = b + "relu"
        nodes.append(_node("head", "linear", [prev], out=outputs))
    elif arch.family == "ft_transformer":
        heads = arch.heads or 1
        d_ffn = max(1, round(w * 4 / 3))
        nodes.append(_node("tok", "tokenizer", ["x"], d=w))
        prev = "tok"
        for i in range(1, arch.depth + 1):
            b = "b%d_" % i
            attn_in = prev
            if i > 1:  # the first block has no attention layernorm (as in the paper)
                nodes.append(_node(b + "ln1", "layernorm", [prev]))
                attn_in = b + "ln1"
            nodes += [
                _node(b + "q", "linear", [attn_in], out=w),
                _node(b + "k", "linear", [attn_in], out=w),
                _node(b + "v", "linear", [attn_in], out=w),
                _node(b + "attn", "attention", [b + "q", b + "k", b + "v"], heads=heads),
                _node(b + "o", "linear", [b + "attn"], out=w),
                _node(b + "attn_drop", "dropout", [b + "o"], p=0.2),
                _node(b + "add1", "add", [b + "attn_drop", prev]),
                _node(b + "ln2", "layernorm", [b + "add1"]),
                _node(b + "ffn1", "linear", [b + "ln2"], out=d_ffn),
                _node(b + "gelu", "gelu", [b + "ffn1"]),
                _node(b + "ffn_drop", "dropout", [b + "gelu"], p=0.1),
                _node(b + "ffn2", "linear", [b + "ffn_drop"], out=w),
                _node(b + "add2", "add", [b + "ffn2", b + "add1"]),
            ]
            prev = b + "add2"
        nodes += [
            _node("ln_f", "layernorm", [prev]),
            _node("flat", "flatten", ["ln_f"]),
            _node("head", "linear", ["flat"], out=outputs),
        ]
    else:
        raise InputError("unknown family %r" % arch.family)
    return {
        "name": arch.name,
        "description": "%s, depth %d, width %d%s (pareto_energy.py)"
        % (arch.family, arch.depth, w, ", %d heads" % arch.heads if arch.heads else ""),
        "batch": batch,
        "dtype": dtype,
        "inputs": [{"name": "x", "shape": [features]}],
        "nodes": nodes,
        "outputs": ["head"],
    }


# ---- Pareto front and knee ----


def pareto_front(energy: Sequence[float], accuracy: Sequence[float]) -> List[int]:
    """Indices of the points no other point dominates (minimise energy, maximise
    accuracy: q dominates p when q is no worse in both and better in one), sorted
    by energy. Equal points are all on the front. O(n log n)."""
    order = sorted(range(len(energy)), key=lambda i: (energy[i], -accuracy[i]))
    front: List[int] = []
    best = -math.inf  # the best accuracy among strictly cheaper points
    k = 0
    while k < len(order):
        j = k
        while j < len(order) and energy[order[j]] == energy[order[k]]:
            j += 1
        group_best = accuracy[order[k]]  # the group is sorted by accuracy, best first
        if group_best > best:
            front += [i for i in order[k:j] if accuracy[i] == group_best]
            best = group_best
        k = j
    return front


def knee_point(energy: Sequence[float], accuracy: Sequence[float], front: Sequence[int]) -> Optional[int]:
    """The knee of a front (indices sorted by energy): on axes normalised to the
    front's range, the member farthest above the line from the cheapest member to
    the most accurate one, where extra energy stops buying much accuracy. None for
    a front of fewer than 3 members, or when no member lies above that line."""
    if len(front) < 3:
        return None
    e = [energy[i] for i in front]
    a = [accuracy[i] for i in front]
    e_span = max(e) - min(e)
    a_span = max(a) - min(a)
    if e_span <= 0 or a_span <= 0:
        return None
    best, best_d = None, 0.0
    for i, ei, ai in zip(front, e, a):
        x = (ei - min(e)) / e_span
        y = (ai - min(a)) / a_span
        d = (y - x) / math.sqrt(2.0)  # signed distance from the line y = x
        if d > best_d + 1e-12:
            best, best_d = i, d
    return best


# ---- estimates ----


def _batches(graph_texts: List[str]) -> List[List[int]]:
    """Indices grouped so each request body stays under MAX_REQUEST_BYTES."""
    groups: List[List[int]] = []
    cur: List[int] = []
    size = 0
    for i, t in enumerate(graph_texts):
        if cur and (size + len(t) + 1 > MAX_REQUEST_BYTES or len(cur) >= MAX_GRAPHS_PER_REQUEST):
            groups.append(cur)
            cur, size = [], 0
        cur.append(i)
        size += len(t) + 1
    if cur:
        groups.append(cur)
    return groups


def estimate_all(client: JetprofClient, graphs: List[Dict[str, Any]], merge: bool) -> Dict[str, Any]:
    """Every graph's Estimate via estimate_many, in as few requests as the body
    limit allows: ``{"estimates": [...], "simulated": bool}``."""
    texts = [json.dumps(g, separators=(",", ":")) for g in graphs]
    estimates: List[Dict[str, Any]] = []
    simulated = False
    for group in _batches(texts):
        try:
            answer = client.estimate_many([texts[i] for i in group], merge=merge)
        except JetprofError as e:
            g = e.member("graph")
            if isinstance(g, int) and 0 <= g < len(group):  # renumber to the whole list
                e.detail = "%s (architecture %r)" % (e.detail, graphs[group[g]]["name"])
            raise
        estimates += answer["estimates"]
        simulated = simulated or bool(answer.get("simulated"))
    return {"estimates": estimates, "simulated": simulated}


def analyse(archs: List[Architecture], estimates: List[Dict[str, Any]]) -> List[Result]:
    """Results ranked by energy, with the front and the knee marked."""
    results = []
    for arch, est in zip(archs, estimates):
        t = est["totals"]
        results.append(Result(arch, int(t["kernels"]), float(t["latency_us"]), t["energy_uj"]["board_input"]))
    known = [r for r in results if r.energy_uj is not None]
    energy = [float(r.energy_uj) for r in known]  # type: ignore[arg-type]
    accuracy = [r.arch.accuracy for r in known]
    front = pareto_front(energy, accuracy)
    for i in front:
        known[i].on_front = True
    knee = knee_point(energy, accuracy, front)
    if knee is not None:
        known[knee].knee = True
    return sorted(results, key=lambda r: (r.energy_uj is None, r.energy_uj or 0.0, r.arch.name))


def print_table(results: List[Result], batch: int, simulated: bool, energy_rail: str, out=sys.stdout) -> None:
    rows = [["rank", "name", "family", "depth", "width", "heads", "kernels", "latency_us",
             "energy_uJ", "uJ/sample", "accuracy", "pareto"]]
    for n, r in enumerate(results, 1):
        a = r.arch
        mark = "*" if r.on_front else ""
        if r.knee:
            mark = "* knee"
        rows.append([
            str(n), a.name, a.family, str(a.depth), str(a.width), str(a.heads or "-"), str(r.kernels),
            "%.1f" % r.latency_us,
            "-" if r.energy_uj is None else "%.1f" % r.energy_uj,
            "-" if r.energy_uj is None else "%.3f" % (r.energy_uj / batch),
            "%g" % a.accuracy, mark,
        ])
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    left = {1, 2, 11}
    for row in rows:
        cells = [v.ljust(widths[c]) if c in left else v.rjust(widths[c]) for c, v in enumerate(row)]
        print("  ".join(cells).rstrip(), file=out)
    front = [r for r in results if r.on_front]
    knee = [r for r in results if r.knee]
    print(file=out)
    print("energy_uJ: estimated %s energy of one inference (a batch of %d samples); ranked by it."
          % (energy_rail, batch), file=out)
    print("Pareto front (minimise energy, maximise accuracy): %s" % ", ".join(r.arch.name for r in front), file=out)
    if knee:
        print("knee: %s (farthest above the line between the front's extremes, normalised axes)"
              % knee[0].arch.name, file=out)
    else:
        print("knee: none (the front has fewer than 3 members or no member above the line between its extremes)",
              file=out)
    missing = [r.arch.name for r in results if r.energy_uj is None]
    if missing:
        print("no board-input energy for: %s (left off the front)" % ", ".join(missing), file=out)
    if simulated:
        print("SIMULATED: the models were trained on simulated-sensor or CPU-executor data; these are not "
              "Jetson energies.", file=out)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Rank architectures by jetprofd's energy estimate and find the "
                                 "energy-accuracy Pareto front and its knee.")
    ap.add_argument("--host", default=None, help="jetprofd's address (default $JETPROF_HOST, else 127.0.0.1:9740)")
    ap.add_argument("--token-file", default=None, help="bearer token file (default $JETPROF_TOKEN_FILE; "
                    "estimates need no token)")
    ap.add_argument("--csv", default=DEFAULT_CSV, help="architectures (default: %(default)s)")
    ap.add_argument("--features", type=int, default=32, help="numerical input features per sample (default 32)")
    ap.add_argument("--batch", type=int, default=64, help="samples per inference (default 64)")
    ap.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    ap.add_argument("--outputs", type=int, default=1, help="units of the head (default 1)")
    ap.add_argument("--no-merge", action="store_true", help="do not merge parallel kernels (Q, K, V)")
    ap.add_argument("--write-graphs", metavar="DIR", help="also write each graph to DIR/<name>.json")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args(argv)

    try:
        archs = read_architectures(args.csv)
        for what, v, hi in (("--features", args.features, 4096), ("--batch", args.batch, 65536),
                            ("--outputs", args.outputs, 65536)):
            if not 1 <= v <= hi:
                raise InputError("%s %d is outside [1, %d]" % (what, v, hi))
        graphs = [build_graph(a, args.features, args.batch, args.dtype, args.outputs) for a in archs]
        if args.write_graphs:
            os.makedirs(args.write_graphs, exist_ok=True)
            for g in graphs:
                with open(os.path.join(args.write_graphs, g["name"] + ".json"), "w", encoding="utf-8") as f:
                    json.dump(g, f, indent=1)
                    f.write("\n")
        client = JetprofClient(args.host, token_file=args.token_file)
    except (InputError, ValueError, OSError) as e:
        print("pareto_energy: %s" % e, file=sys.stderr)
        return 2

    try:
        with client:
            answer = estimate_all(client, graphs, merge=not args.no_merge)
    except JetprofError as e:
        print("pareto_energy: jetprofd refused the estimate: %s" % e, file=sys.stderr)
        kernels = e.member("kernels")
        if e.status == 409 and isinstance(kernels, list):
            print("  kernel types without a model: %s\n  queue sweeps of them (POST /v1/jobs), wait for the "
                  "batches, then train (POST /v1/models/train): client/examples/README.md shows how."
                  % ", ".join(kernels), file=sys.stderr)
        return 1
    except JetprofConnectionError as e:
        print("pareto_energy: %s" % e, file=sys.stderr)
        return 1

    results = analyse(archs, answer["estimates"])
    rail = answer["estimates"][0]["totals"].get("board_input_rail") or "board-input"
    if args.json:
        json.dump({
            "simulated": answer["simulated"], "batch": args.batch, "dtype": args.dtype, "energy_rail": rail,
            "results": [{"name": r.arch.name, "family": r.arch.family, "depth": r.arch.depth,
                         "width": r.arch.width, "heads": r.arch.heads, "accuracy": r.arch.accuracy,
                         "kernels": r.kernels, "latency_us": r.latency_us, "energy_uj": r.energy_uj,
                         "energy_uj_per_sample": None if r.energy_uj is None else r.energy_uj / args.batch,
                         "pareto": r.on_front, "knee": r.knee} for r in results],
        }, sys.stdout, indent=1)
        print()
    else:
        print_table(results, args.batch, bool(answer["simulated"]), rail)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into head: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
