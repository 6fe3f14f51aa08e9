#!/usr/bin/env python3
"""python_client_checks.py - the checks of test_python_client.sh: every method of
client/python/jetprof_client.py against a real jetprofd, and the Pareto example
(client/examples/pareto_energy.py) end to end.

Run by the shell script, which starts the daemon; it prints one "ok - NAME" or
"not ok - NAME" line per check (diagnostics after a failure as "# ..." lines)
and a final "# done: N checks" line, which the script turns into lib.sh's
counters. Phases:

  python_client_checks.py main BASE_URL SCRATCH_DIR
      a daemon without auth, empty database, fast measure and training
      settings: every endpoint, error paths, paging, streaming, exports,
      measuring and training a small dataset, predict/estimate, the example;
      plus the client's own behaviour against small in-process test servers
      (a non-JSON error answer, keep-alive connections dropped by the server).
  python_client_checks.py auth BASE_URL SCRATCH_DIR TOKEN_FILE
      the same database served with a token file: mutating calls without a
      token and with a wrong one are JetprofError 401, with the right one (given
      as a file, and through $JETPROF_TOKEN_FILE) they succeed.

$SLOW (1, or 3 under sanitizers) scales every wait.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
sys.path.insert(0, os.path.join(ROOT, "client", "examples"))

import jetprof_client as jc  # noqa: E402
from jetprof_client import JetprofClient, JetprofConnectionError, JetprofError  # noqa: E402
import pareto_energy as pe  # noqa: E402

SLOW = int(os.environ.get("SLOW", "1") or 1)
COUNT = 0
FAILED = 0


def out(line: str) -> None:
    print(line, flush=True)


def check(name: str, fn: Callable[[], Any]) -> Any:
    """Runs fn; ok when it returns without raising and its result is not False.
    An AssertionError's message or any exception's traceback becomes the
    diagnostics."""
    global COUNT, FAILED
    COUNT += 1
    try:
        r = fn()
    except AssertionError as e:
        FAILED += 1
        out("not ok - " + name)
        for line in (str(e) or "assertion failed").splitlines() or [""]:
            out("# " + line)
        tb = traceback.extract_tb(e.__traceback__)
        if tb:
            out("# at line %d" % tb[-1].lineno)
        return None
    except Exception:
        FAILED += 1
        out("not ok - " + name)
        for line in traceback.format_exc().rstrip().splitlines()[-8:]:
            out("# " + line)
        return None
    if r is False:
        FAILED += 1
        out("not ok - " + name)
        out("# the check returned False")
        return None
    out("ok - " + name)
    return r


def expect_error(fn: Callable[[], Any], status: int, *needles: str) -> JetprofError:
    """fn must raise JetprofError with this status and every needle in its detail."""
    try:
        r = fn()
    except JetprofError as e:
        assert e.status == status, "status %d, wanted %d: %s" % (e.status, status, e)
        for n in needles:
            assert n in e.detail, "detail lacks %r: %r" % (n, e.detail)
        s = str(e)
        assert str(status) in s and e.detail in s, "str() lacks the status or the detail: %r" % s
        assert isinstance(e.body, dict) and e.body.get("status") == status, "body: %r" % (e.body,)
        return e
    raise AssertionError("no JetprofError; got %r" % (r,))


def eq(a: Any, b: Any, what: str = "") -> None:
    assert a == b, "%s%r != %r" % (what + ": " if what else "", a, b)


# ---- small servers for the client's own behaviour ----


class ScriptedServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers per connection as `mode`
    says; it records every request line it reads.

    mode "drop-second": answers a connection's first request (keep-alive), reads
        its second and closes without answering (a keep-alive connection the
        server gave up while the client was sending).
    mode "close-after": answers each request with keep-alive headers, then
        closes the connection (a server-side idle timeout, seen by the client's
        next request).
    mode "text-error": answers 502 with a text/plain body.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests: List[str] = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_request(self, f: Any) -> Optional[str]:
        line = f.readline()
        if not line:
            return None
        length = 0
        while True:
            h = f.readline()
            if not h or h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        if length:
            f.read(length)
        req = line.decode("latin-1").strip()
        with self.lock:
            self.requests.append(req)
        return req

    def _answer(self, conn: socket.socket, req: str) -> None:
        if self.mode == "text-error":
            body = b"bad gateway: upstream jetprofd is not answering\n"
            head = "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body)
        else:
            status = "201 Created" if req.startswith("POST") else "200 OK"
            body = json.dumps({"answered": req}).encode()
            head = "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (status, len(body))
        conn.sendall(head.encode() + body)

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            f = conn.makefile("rb")
            n = 0
            while True:
                req = self._read_request(f)
                if req is None:
                    return
                n += 1
                if self.mode == "drop-second" and n == 2:
                    return
                self._answer(conn, req)
                if self.mode == "close-after":
                    return

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.stopping = True
        self.sock.close()


def client_behaviour_checks() -> None:
    def address() -> None:
        for text, want in (
            ("127.0.0.1:9740", ("http", "127.0.0.1", 9740, "")),
            ("http://localhost:1234", ("http", "localhost", 1234, "")),
            ("http://[::1]:9741/", ("http", "::1", 9741, "")),
            ("jetson.local", ("http", "jetson.local", 9740, "")),
            ("http://proxy:8080/jetprof/", ("http", "proxy", 8080, "/jetprof")),
        ):
            eq(jc._parse_address(text), want, text)
        for bad in ("ftp://x", "", "http://:80", "http://h:99999", "127.0.0.1:", "http://h/?q=1"):
            try:
                jc._parse_address(bad)
            except ValueError:
                continue
            raise AssertionError("%r was accepted" % bad)
        eq(JetprofClient("http://[::1]:9741").base_url, "http://[::1]:9741")

    check("client: addresses 'host:port', URLs, IPv6, default port, path prefix; bad ones are ValueError", address)

    def env_and_token(tmp: str) -> None:
        tf = os.path.join(tmp, "tok")
        with open(tf, "w") as f:
            f.write("  abc123\n\n")
        saved = {k: os.environ.get(k) for k in ("JETPROF_HOST", "JETPROF_URL", "JETPROF_TOKEN_FILE")}
        try:
            os.environ["JETPROF_HOST"] = "10.1.2.3:9999"
            os.environ["JETPROF_TOKEN_FILE"] = tf
            c = JetprofClient()
            eq((c.hostname, c.port, c.token), ("10.1.2.3", 9999, "abc123"), "from the environment")
            eq(JetprofClient("h:1", token="t").token, "t", "an explicit token wins")
            del os.environ["JETPROF_HOST"]
            os.environ["JETPROF_URL"] = "http://10.9.9.9:1"
            eq(JetprofClient().hostname, "10.9.9.9", "JETPROF_URL as a fallback")
            empty = os.path.join(tmp, "empty")
            open(empty, "w").close()
            try:
                JetprofClient("h:1", token_file=empty)
            except ValueError as e:
                assert "empty" in str(e), str(e)
            else:
                raise AssertionError("an empty token file was accepted")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    check("client: JETPROF_HOST / JETPROF_URL / JETPROF_TOKEN_FILE, token file trimmed, empty one refused",
          lambda: env_and_token(SCRATCH))

    def refused() -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        try:
            JetprofClient("127.0.0.1:%d" % port, timeout=5).health()
        except JetprofConnectionError as e:
            assert str(port) in str(e), str(e)
            return
        raise AssertionError("no JetprofConnectionError")

    check("client: a daemon that is not there is JetprofConnectionError naming the address", refused)

    def text_error() -> None:
        srv = ScriptedServer("text-error")
        try:
            c = JetprofClient("127.0.0.1:%d" % srv.port, timeout=10 * SLOW)
            try:
                c.health()
            except JetprofError as e:
                eq(e.status, 502)
                eq(e.title, "Bad Gateway")
                assert "upstream jetprofd is not answering" in e.detail, e.detail
                assert isinstance(e.body, str) and e.body.startswith("bad gateway"), repr(e.body)
                assert str(e).startswith("502 Bad Gateway: bad gateway"), str(e)
                return
            raise AssertionError("no JetprofError")
        finally:
            srv.close()

    check("client: a non-JSON error answer is JetprofError with status, reason and the text as detail", text_error)

    def dropped_keepalive() -> None:
        srv = ScriptedServer("drop-second")
        try:
            c = JetprofClient("127.0.0.1:%d" % srv.port, timeout=10 * SLOW)
            eq(c.health(), {"answered": "GET /v1/health HTTP/1.1"})
            eq(c.connections_opened, 1)
            # the second request on the connection is read and dropped: a GET is sent again
            eq(c.device(), {"answered": "GET /v1/device HTTP/1.1"})
            eq(c.connections_opened, 2, "reconnected once")
            eq(srv.requests, ["GET /v1/health HTTP/1.1", "GET /v1/device HTTP/1.1", "GET /v1/device HTTP/1.1"])
            # a POST that may have been acted on is not repeated
            try:
                c.submit_jobs({"configs": []})
            except JetprofConnectionError as e:
                assert "closed the connection" in str(e), str(e)
            else:
                raise AssertionError("the dropped POST did not raise")
            eq(sum(1 for r in srv.requests if r.startswith("POST")), 1, "POST sent once")
            # predict and estimate are read-only: repeated like a GET
            c.health()
            eq(c.predict([{"kernel": "linear"}]), {"answered": "POST /v1/predict HTTP/1.1"})
            eq(srv.requests[-2:], ["POST /v1/predict HTTP/1.1"] * 2)
            eq(c.estimate({"nodes": []}), {"answered": "POST /v1/estimate?merge=true HTTP/1.1"})
            eq(srv.requests[-2:], ["POST /v1/estimate?merge=true HTTP/1.1"] * 2)
        finally:
            srv.close()

    check("client: keep-alive dropped mid-request: GET and predict/estimate sent once more on a new "
          "connection, POST /v1/jobs not repeated (JetprofConnectionError)", dropped_keepalive)

    def idle_closed() -> None:
        srv = ScriptedServer("close-after")
        try:
            c = JetprofClient("127.0.0.1:%d" % srv.port, timeout=10 * SLOW)
            c.health()
            deadline = time.monotonic() + 5 * SLOW
            while not c._stale(c._conn) and time.monotonic() < deadline:  # type: ignore[arg-type]
                time.sleep(0.01)
            r = c.submit_jobs({"configs": []})
            eq(r, {"answered": "POST /v1/jobs HTTP/1.1"})
            eq(c.connections_opened, 2)
            eq(sum(1 for x in srv.requests if x.startswith("POST")), 1, "POST sent once")
        finally:
            srv.close()

    check("client: a connection the server closed while idle is replaced before a POST goes out", idle_closed)


# ---- phase main ----


def mlp_arch(name: str, depth: int, width: int, acc: float = 0.8) -> pe.Architecture:
    return pe.Architecture(name, "mlp", depth, width, None, acc, 0)


def phase_main(base: str) -> None:
    c = JetprofClient(base, timeout=30 * SLOW)
    wait_s = 120 * SLOW

    # ---- read-only endpoints ----
    def health() -> None:
        h = c.health()
        eq(h["status"], "ok")
        assert isinstance(h["version"], str) and h["simulated"] is True and "runner" in h, h

    check("health(): status ok, version, runner, simulated", health)
    dev = check("device(): fingerprint, sim sensor, cpu executor, sampling asked and got", lambda: (
        lambda d: (len(d["fingerprint"]) == 64 and d["sensor"]["backend"] == "sim"
                   and d["executor"]["name"] == "cpu" and "got" in d["sensor"]["sampling"]) and d)(c.device()))
    check("kernels(): the catalogue, linear with batch/in/out ranges", lambda: (
        lambda k: [p["name"] for p in next(x for x in k["kernels"] if x["name"] == "linear")["params"]]
        == ["batch", "in", "out"])(c.kernels()))
    check("power(): rails with power_mw, simulated", lambda: (
        lambda p: len(p["rails"]) > 0 and all("power_mw" in r for r in p["rails"]) and p["simulated"])(c.power()))
    check("metrics(): Prometheus text with jetprof_up 1", lambda: "\njetprof_up 1" in "\n" + c.metrics())
    check("one persistent connection for all of that", lambda: eq(c.connections_opened, 1))

    def stream() -> None:
        evs = list(c.power_stream(interval_ms=0, count=3))
        eq([e.id for e in evs], [1, 2, 3], "event ids")
        for e in evs:
            assert e.simulated and e.rails and isinstance(e.data["t_ns"], int), e.data
            assert all(isinstance(v, float) for v in e.power_mw().values()), e.power_mw()

    check("power_stream(interval_ms=0, count=3): 3 events, ids 1..3, rails, simulated", stream)

    def stream_break() -> None:
        gen = c.power_stream(interval_ms=20)
        got = []
        for e in gen:
            got.append(e)
            if len(got) == 2:
                break
        gen.close()
        eq(len(got), 2)
        eq(c.health()["status"], "ok")

    check("power_stream() endless: leaving after 2 events closes it; the client goes on", stream_break)
    check("power_stream(interval_ms=99999999): 400 naming interval_ms",
          lambda: expect_error(lambda: next(c.power_stream(interval_ms=99999999)), 400, "interval_ms"))

    def sampling() -> None:
        got = dev["sensor"]["sampling"]["got"] if dev else c.device()["sensor"]["sampling"]["got"]
        r = c.set_sampling(period_us=got["period_us"])
        eq(r["got"]["period_us"], got["period_us"])
        assert r["backend"] == "sim" and r["simulated"] is True, r

    check("set_sampling(period_us=current): the sampling the sensor took", sampling)
    check("set_sampling(averaging=3): 422, detail lists the allowed values, parameter member",
          lambda: eq(expect_error(lambda: c.set_sampling(averaging=3), 422, "averaging", "1024")
                     .member("parameter"), "averaging"))
    check("set_sampling() with nothing: 422", lambda: expect_error(lambda: c.set_sampling(), 422))

    # ---- measure ----
    def measure() -> Dict[str, Any]:
        m = c.measure("linear", batch=2, in_=8, out=8)
        eq(m["params"], {"batch": 2, "in": 8, "out": 8})
        eq(m["kernel"], "linear")
        assert isinstance(m["id"], int) and m["latency_us"] > 0 and m["simulated"] is True, m
        return m

    m = check("measure('linear', batch=2, in_=8, out=8): 201 Measurement", measure)
    check("measure(params=..., dtype fp16, repeats 1): layernorm", lambda: (
        lambda m: m["dtype"] == "fp16" and m["repeats"] == 1 and m["params"] == {"rows": 4, "cols": 8})(
        c.measure("layernorm", dtype="fp16", repeats=1, params={"rows": 4, "cols": 8})))
    def measurement() -> None:
        assert m, "no measurement to read (measure() failed)"
        got = c.measurement(m["id"])
        eq((got["id"], got["config_key"]), (m["id"], m["config_key"]))

    check("measurement(id): the same measurement", measurement)
    check("measure(batch=0): JetprofError 422 naming 'batch' and the range; str() shows status and detail",
          lambda: expect_error(lambda: c.measure("linear", batch=0, in_=8, out=8), 422, "'batch' = 0",
                               "[1, 65536]").title == "Unprocessable Content")
    check("measure('conv9'): 422 listing the kernels",
          lambda: expect_error(lambda: c.measure("conv9", batch=1), 422, "conv9", "linear_relu"))
    check("measure() with a parameter given twice: TypeError before sending",
          lambda: _raises(TypeError, lambda: c.measure("linear", params={"in": 8}, in_=8)))
    check("measurement(999999999): 404", lambda: expect_error(lambda: c.measurement(999999999), 404, "999999999"))

    # ---- predictors before any training ----
    check("models(): empty before training", lambda: eq(c.models()["models"], []))
    check("export_models(): 404 without models; no file left",
          lambda: (expect_error(lambda: c.export_models(os.path.join(SCRATCH, "none.json")), 404),
                   not os.path.exists(os.path.join(SCRATCH, "none.json")),
                   not os.path.exists(os.path.join(SCRATCH, "none.json.part")))[1:] == (True, True))
    check("predict() without a model: 409 with member kernels",
          lambda: eq(expect_error(lambda: c.predict([{"kernel": "linear_bn_relu", "batch": 4, "in": 8, "out": 8}]),
                                  409, "linear_bn_relu", "POST /v1/models/train").member("kernels"),
                     ["linear_bn_relu"]))
    check("train(['softmax']): 409 with members kernel, measurements, needed", lambda: (
        lambda e: e.member("kernel") == "softmax" and e.member("needed") == 20)(
        expect_error(lambda: c.train(["softmax"], quality="any"), 409, "softmax", "POST /v1/jobs")))
    check("train(['conv9']): 422 listing the catalogue",
          lambda: expect_error(lambda: c.train(["conv9"]), 422, "conv9", "linear_relu"))
    check("train(quality='best'): 422", lambda: expect_error(lambda: c.train(quality="best"), 422, "quality"))
    check("train('linear'): TypeError (a string is not a list of kernels)",
          lambda: _raises(TypeError, lambda: c.train("linear")))

    # ---- jobs: the data the test graphs need, and cancels ----
    lin_params = {"batch": [8, 64], "in": [8, 96], "out": [8, 96]}
    b1 = check("submit_jobs(random sweep of 24 linear_bn_relu): batch_id, 24 jobs", lambda: (
        lambda r: r["jobs"] == 24 and r["batch_id"])(c.submit_jobs(
            {"sweep": {"type": "random", "kernel": "linear_bn_relu", "count": 24, "seed": 11, "params": lin_params},
             "repeats": 1})))
    b2 = check("submit_jobs(random sweep of 24 linear): 24 jobs", lambda: (
        lambda r: r["jobs"] == 24 and r["batch_id"])(c.submit_jobs(
            {"sweep": {"type": "random", "kernel": "linear", "count": 24, "seed": 12,
                       "params": {"batch": [8, 64], "in": [8, 96], "out": [1, 8]}}, "repeats": 1})))
    b3 = check("submit_jobs(configs): 3 jobs queued behind them", lambda: (
        lambda r: r["jobs"] == 3 and r["batch_id"])(c.submit_jobs(
            {"configs": [{"kernel": "linear_relu", "batch": b, "in": 8, "out": 8} for b in (1, 2, 3)]})))

    def cancels() -> None:
        queued = c.jobs(batch=b3, state="queued")["jobs"]
        eq(len(queued), 3, "b3's jobs are still queued")
        j = c.cancel_job(queued[-1]["id"])
        eq(j["state"], "canceled")
        expect_error(lambda: c.cancel_job(queued[-1]["id"]), 409, "only a queued job")
        b = c.cancel_batch(b3)
        assert b["canceled"] >= 1 and b["counts"]["queued"] == 0, b

    check("cancel_job(queued): canceled; again: 409; cancel_batch(): the rest canceled", cancels)
    check("submit_jobs(inverted range): 422 naming sweep.params.in, parameter member", lambda: eq(
        expect_error(lambda: c.submit_jobs({"sweep": {"type": "random", "kernel": "linear", "count": 2,
                                                      "params": {"batch": [1, 2], "in": [64, 8], "out": [8, 9]}}}),
                     422, "sweep.params.in", "inverted").member("parameter"), "sweep.params.in"))
    check("jobs(state='bogus'): 400 naming the states",
          lambda: expect_error(lambda: c.jobs(state="bogus"), 400, "queued, running"))
    check("job(999999999), batch(999999999), cancel_batch(999999999): 404", lambda: (
        expect_error(lambda: c.job(999999999), 404), expect_error(lambda: c.batch(999999999), 404),
        expect_error(lambda: c.cancel_batch(999999999), 404)))

    done1 = check("wait_batch(): the linear_bn_relu batch done (24)", lambda: (
        lambda b: eq(b["counts"]["done"], 24) or b)(c.wait_batch(b1, poll_s=0.2, timeout=wait_s)))
    check("wait_batch(): the linear batch done (24)", lambda: eq(
        c.wait_batch(b2, poll_s=0.2, timeout=wait_s)["counts"]["done"], 24))
    check("batch(): kind random, counts, measured_per_minute", lambda: (
        lambda b: b["kind"] == "random" and b["measured_per_minute"] > 0 and b["id"] == b1)(c.batch(b1)))

    def job_paging() -> None:
        page = c.jobs(batch=b1, limit=5)
        eq(len(page["jobs"]), 5)
        eq(page["next_after"], page["jobs"][-1]["id"])
        ids = [j["id"] for j in c.iter_jobs(batch=b1, page_size=5)]
        eq(len(ids), 24)
        eq(ids, sorted(set(ids)), "ascending, unique")
        j = c.job(ids[0])
        eq((j["id"], j["batch_id"], j["state"]), (ids[0], b1, "done"))
        expect_error(lambda: c.cancel_job(ids[0]), 409, "is done")

    check("jobs(limit=5) + next_after, iter_jobs() pages through 24, job(id); cancel_job(done): 409", job_paging)

    # ---- measurements: paging, filters ----
    def meas_paging() -> None:
        page = c.measurements(kernel="linear_bn_relu", limit=5)
        eq(len(page["measurements"]), 5)
        eq(page["next_after"], page["measurements"][-1]["id"])
        it = [x["id"] for x in c.iter_measurements(kernel="linear_bn_relu", page_size=7)]
        eq(len(it), 24)
        eq(it, sorted(set(it)))
        eq(it, [x["id"] for x in c.measurements(kernel="linear_bn_relu", limit=10000)["measurements"]])
        rest = c.measurements(kernel="linear_bn_relu", after=it[9], limit=10000)["measurements"]
        eq([x["id"] for x in rest], it[10:], "after=")

    check("measurements(limit) + next_after; iter_measurements(page_size=7) = one big page; after=", meas_paging)
    check("measurements(batch=...): only the batch's 24", lambda: (
        lambda ms: eq(len(ms), 24) or all(x["kernel"] == "linear_bn_relu" for x in ms))(
        c.measurements(batch=b1, limit=10000)["measurements"]))
    check("measurements(dtype='fp16'): only the fp16 layernorm", lambda: eq(
        [(x["kernel"], x["dtype"]) for x in c.measurements(dtype="fp16")["measurements"]], [("layernorm", "fp16")]))
    check("measurements(quality='ok'): only ok rows", lambda: all(
        x["quality"] == "ok" for x in c.measurements(quality="ok", limit=10000)["measurements"]))

    def since() -> None:
        total = len(list(c.iter_measurements()))
        eq(len(c.measurements(since="2000-01-01", limit=10000)["measurements"]), total, "since a date string")
        eq(len(c.measurements(since=dt.datetime(2000, 1, 1, 12, 30), limit=10000)["measurements"]), total,
           "since a naive datetime")
        future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
        eq(c.measurements(since=future)["measurements"], [], "since tomorrow (aware datetime)")
        expect_error(lambda: c.measurements(since="yesterday"), 400, "since")

    check("measurements(since=str | date | datetime); a bad since is 400", since)
    check("measurements(limit=0): 400 naming limit",
          lambda: expect_error(lambda: c.measurements(limit=0), 400, "limit", "[1, 10000]"))

    # ---- CSV, JSON lines, SQLite ----
    def csv_text() -> None:
        text = c.measurements_csv(kernel="linear_bn_relu")
        rows = list(csv.DictReader(io.StringIO(text)))
        eq(len(rows), 24)
        assert {"id", "kernel", "batch", "in", "out", "energy_uj", "fingerprint"} <= set(rows[0]), rows[0].keys()
        eq({r["kernel"] for r in rows}, {"linear_bn_relu"})
        eq(len(list(csv.DictReader(io.StringIO(c.measurements_csv(limit=3))))), 3, "limit=3")

    check("measurements_csv(): header + 24 rows with parameter columns; limit", csv_text)

    def exports() -> None:
        p = os.path.join(SCRATCH, "m.csv")
        n = c.export_csv(p, kernel="linear_bn_relu")
        data = open(p, "rb").read()
        eq(n, len(data), "bytes written")
        eq(data.decode(), c.measurements_csv(kernel="linear_bn_relu"), "export_csv = measurements_csv")
        p = os.path.join(SCRATCH, "m.jsonl")
        n = c.export_jsonl(p, batch=b1)
        lines = open(p).read().splitlines()
        eq(len(lines), 24)
        assert all(json.loads(x)["kernel"] == "linear_bn_relu" for x in lines)
        p = os.path.join(SCRATCH, "snap.sqlite")
        n = c.export_sqlite(p)
        eq(n, os.path.getsize(p))
        db = sqlite3.connect(p)
        try:
            eq(db.execute("select count(*) from measurements").fetchone()[0], len(list(c.iter_measurements())))
        finally:
            db.close()
        assert not any(f.endswith(".part") for f in os.listdir(SCRATCH)), os.listdir(SCRATCH)

    check("export_csv / export_jsonl / export_sqlite stream to files (sizes, rows, a SQLite that opens)", exports)

    def export_fails() -> None:
        try:
            c.export_csv(os.path.join(SCRATCH, "no", "such", "dir.csv"))
        except OSError:
            pass
        else:
            raise AssertionError("no OSError")
        eq(c.health()["status"], "ok")

    check("export to a directory that does not exist: OSError, and the client goes on", export_fails)

    # ---- training, predict, estimate ----
    trained = check("train(['linear_bn_relu', 'linear'], quality='any'): latency and power models", lambda: (
        lambda r: {(m["kernel"], m["target"].split(":")[0]) for m in r["models"]}
        == {(k, t) for k in ("linear_bn_relu", "linear") for t in ("latency_us", "power_mw")}
        and r["simulated"] is True and all(m["metrics"]["train_rows"] > 0 for m in r["models"]) and r)(
        c.train(["linear_bn_relu", "linear"], quality="any", timeout=wait_s)))
    def models() -> None:
        assert trained, "nothing was trained"
        r = c.models()
        eq(r["simulated"], True)
        eq({m["id"] for m in r["models"]}, {m["id"] for m in trained["models"]})

    check("models(): the trained models, simulated", models)

    def models_file() -> None:
        p = os.path.join(SCRATCH, "models.json")
        n = c.export_models(p)
        eq(n, os.path.getsize(p))
        bundle = json.load(open(p))
        eq(bundle["format"], "jetprof-models/1")
        eq(len(bundle["models"]), len(c.models()["models"]))

    check("export_models(path): the jetprof-models/1 bundle", models_file)

    def predict() -> None:
        first = c.measurements(batch=b1, limit=1)["measurements"][0]
        cfgs = [dict(first["params"], kernel="linear_bn_relu"),
                {"kernel": "linear", "dtype": "fp32", "batch": 64, "in": 64, "out": 3}]
        r = c.predict(cfgs)
        eq(r["simulated"], True)
        p0, p1 = r["predictions"]
        eq(p0["measured"]["measurement_id"], first["id"], "measured where measured")
        eq(p1["measured"], None, "null where not")
        for p in (p0, p1):
            assert p["latency_us"] > 0 and p["energy_uj"] and all(v > 0 for v in p["energy_uj"].values()), p
        eq(p1["config_key"], "linear:fp32:batch=64,in=64,out=3")

    check("predict([measured config, unmeasured config]): predictions, measured / null", predict)
    check("predict() with a bad config: 422 naming configs[1]", lambda: expect_error(
        lambda: c.predict([{"kernel": "linear", "batch": 1, "in": 8, "out": 8},
                           {"kernel": "linear", "batch": 0, "in": 8, "out": 8}]), 422, "configs[1]"))

    g1 = pe.build_graph(mlp_arch("m1", 2, 32), features=16, batch=32)
    g2 = pe.build_graph(mlp_arch("m2", 1, 64), features=16, batch=32)

    def estimate() -> None:
        e = c.estimate(g1)
        eq((e["format"], e["batch"], e["merge"], e["simulated"]), ("native", 32, True, True))
        eq([k["kernel"] for k in e["kernels"]], ["linear_bn_relu", "linear_bn_relu", "linear"])
        eq(e["kernels"][0]["nodes"], ["fc1", "bn1", "relu1"])
        assert e["totals"]["energy_uj"]["board_input"] > 0 and e["totals"]["latency_us"] > 0, e["totals"]
        eq(c.estimate(json.dumps(g1))["totals"], e["totals"], "a graph as JSON text")

    check("estimate(mlp graph of pareto_energy.build_graph): fused kernels, totals, simulated", estimate)

    def merge() -> None:
        g = {"name": "two_heads", "batch": 16, "inputs": [{"name": "x", "shape": [24]}],
             "nodes": [{"name": "a", "op": "linear", "inputs": ["x"], "out": 16},
                       {"name": "b", "op": "linear", "inputs": ["x"], "out": 16}]}
        on = c.estimate(g)
        off = c.estimate(g, merge=False)
        eq([(k["kernel"], k["merged"], k["params"]["out"]) for k in on["kernels"]], [("linear", 2, 32)])
        eq([(k["kernel"], k["merged"]) for k in off["kernels"]], [("linear", 1), ("linear", 1)])
        eq(off["merge"], False)

    check("estimate(merge=True / False): parallel linears merged into one, or kept apart", merge)

    def many() -> None:
        r = c.estimate_many([g1, g2, json.dumps(g1)])
        eq(len(r["estimates"]), 3)
        eq(r["estimates"][0]["totals"], c.estimate(g1)["totals"])
        eq(r["estimates"][1]["totals"], c.estimate(g2)["totals"])
        eq(r["estimates"][2]["totals"], r["estimates"][0]["totals"])
        eq(r["simulated"], True)
        off = c.estimate_many([g1], merge=False)
        eq(off["estimates"][0]["merge"], False)

    check("estimate_many([g1, g2, g1 as text]): estimates in order, equal to single estimates", many)

    def many_bad() -> None:
        bad = json.loads(json.dumps(g2))
        bad["nodes"][-1]["inputs"] = ["fc9"]
        e = expect_error(lambda: c.estimate_many([g1, bad]), 422, "graphs[1]: ", "fc9")
        assert e.detail.startswith("graphs[1]: "), e.detail
        eq(e.member("graph"), 1)
        eq(e.member("node"), "head")

    check("estimate_many() with a dangling input in graphs[1]: 422, detail 'graphs[1]: ...', members graph/node",
          many_bad)

    def other_families() -> None:
        res = pe.build_graph(pe.Architecture("r", "resnet", 2, 32, None, 0.8, 0), 16, 32)
        e = expect_error(lambda: c.estimate(res), 409, "no model")
        eq(set(e.member("kernels")), {"linear_relu", "linear_bn", "add_relu"})
        ft = pe.build_graph(pe.Architecture("f", "ft_transformer", 2, 32, 4, 0.8, 0), 16, 32)
        e = expect_error(lambda: c.estimate_many([g1, ft]), 409, "no model")
        eq(set(e.member("kernels")), {"tokenizer", "attention", "add", "layernorm", "linear_gelu"})

    check("resnet and ft_transformer graphs of the example are valid: 409 naming exactly their missing kernels",
          other_families)
    check("metrics(): prediction cache counters after predictions", lambda: (
        lambda m: "jetprof_prediction_cache_hits_total" in m and "jetprof_models " in m)(c.metrics()))

    # ---- the example's own logic ----
    def front_and_knee() -> None:
        energy = [1, 2, 3, 4, 5, 2, 6, 3]
        acc = [0.1, 0.5, 0.6, 0.65, 0.7, 0.4, 0.7, 0.6]
        eq(pe.pareto_front(energy, acc), [0, 1, 2, 7, 3, 4], "front, ties kept, dominated left out")
        # on normalised axes (energy 1..5 -> 0..1, acc 0.1..0.7 -> 0..1), index 1 is farthest above the line
        eq(pe.knee_point(energy, acc, pe.pareto_front(energy, acc)), 1)
        eq(pe.knee_point([1, 2], [0.1, 0.2], [0, 1]), None, "2 members: no knee")
        eq(pe.knee_point([1, 2, 3], [0.1, 0.11, 0.3], [0, 1, 2]), None, "none above the line: no knee")
        eq(pe.pareto_front([], []), [])

    check("pareto_energy: pareto_front() and knee_point() on known points", front_and_knee)

    def csv_errors() -> None:
        for body, needle in (
            ("name,family,depth,width,heads,accuracy\na,cnn,1,8,,0.5\n", "family 'cnn'"),
            ("name,family,depth,width,heads,accuracy\na,ft_transformer,1,30,8,0.5\n", "not a multiple of heads"),
            ("name,family,depth,width,heads,accuracy\na,mlp,x,8,,0.5\n", "depth = 'x'"),
            ("name,family,depth,width,accuracy\na,mlp,1,8,0.5\n", "lacks column(s) heads"),
            ("# c\nname,family,depth,width,heads,accuracy\na,mlp,1,8,,0.5\na,mlp,1,8,,0.6\n", "line 4"),
        ):
            p = os.path.join(SCRATCH, "bad.csv")
            with open(p, "w") as f:
                f.write(body)
            try:
                pe.read_architectures(p)
            except pe.InputError as e:
                assert needle in str(e), "%r lacks %r" % (str(e), needle)
                continue
            raise AssertionError("accepted: %r" % body)
        archs = pe.read_architectures(os.path.join(ROOT, "client", "examples", "architectures.csv"))
        eq({a.family for a in archs}, set(pe.FAMILIES), "the shipped CSV covers every family")

    check("pareto_energy: bad CSV rows are refused naming the line; the shipped CSV reads", csv_errors)

    def example_end_to_end() -> None:
        p = os.path.join(SCRATCH, "small.csv")
        with open(p, "w") as f:
            f.write("# test data: accuracies are illustrative\nname,family,depth,width,heads,accuracy\n"
                    "tiny,mlp,1,16,,0.70\nsmall,mlp,1,48,,0.78\nmid,mlp,2,48,,0.80\n"
                    "wide,mlp,2,96,,0.81\ndeep,mlp,3,96,,0.79\n")
        cmd = [sys.executable, os.path.join(ROOT, "client", "examples", "pareto_energy.py"), "--host", base,
               "--csv", p, "--features", "16", "--batch", "32"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60 * SLOW)
        eq(r.returncode, 0, "exit status (stderr %r)" % r.stderr)
        for needle in ("Pareto front", "knee", "SIMULATED", "tiny", "small", "mid", "wide", "deep"):
            assert needle in r.stdout, "output lacks %r:\n%s" % (needle, r.stdout)
        r = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=60 * SLOW)
        eq(r.returncode, 0, "exit status of --json (stderr %r)" % r.stderr)
        j = json.loads(r.stdout)
        eq(j["simulated"], True)
        res = j["results"]
        energies = [x["energy_uj"] for x in res]
        eq(energies, sorted(energies), "ranked by energy")
        front = pe.pareto_front(energies, [x["accuracy"] for x in res])
        eq({res[i]["name"] for i in front}, {x["name"] for x in res if x["pareto"]}, "front marks")
        assert sum(x["knee"] for x in res) <= 1 and all(x["pareto"] for x in res if x["knee"]), res
        # the same numbers as estimate() on the same graph
        g = pe.build_graph(mlp_arch("tiny", 1, 16), 16, 32)
        eq(next(x for x in res if x["name"] == "tiny")["energy_uj"], c.estimate(g)["totals"]["energy_uj"]["board_input"])
        # families without models: exit 1 naming the kernel types
        r = subprocess.run([sys.executable, cmd[1], "--host", base], capture_output=True, text=True,
                           timeout=60 * SLOW)
        eq(r.returncode, 1, "exit status without models")
        assert "kernel types without a model" in r.stderr and "attention" in r.stderr, r.stderr

    check("pareto_energy.py end to end on a small CSV: table, front, knee, SIMULATED; --json; 409 explained",
          example_end_to_end)
    c.close()


def _raises(exc: type, fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except exc:
        return True
    raise AssertionError("no %s" % exc.__name__)


# ---- phase auth ----


def phase_auth(base: str, token_file: str) -> None:
    anon = JetprofClient(base, timeout=30 * SLOW)
    wrong = JetprofClient(base, token="not-the-token", timeout=30 * SLOW)
    right = JetprofClient(base, token_file=token_file, timeout=30 * SLOW)
    wait_s = 120 * SLOW

    mutating: Dict[str, Callable[[JetprofClient], Any]] = {
        "measure": lambda c: c.measure("linear", batch=3, in_=8, out=8),
        "set_sampling": lambda c: c.set_sampling(period_us=1000),
        "submit_jobs": lambda c: c.submit_jobs({"configs": [{"kernel": "linear", "batch": 5, "in": 8, "out": 8}]}),
        "cancel_job": lambda c: c.cancel_job(1),
        "cancel_batch": lambda c: c.cancel_batch(1),
        "train": lambda c: c.train(["linear"], quality="any"),
    }
    for name, call in mutating.items():
        check("auth on, no token: %s() is JetprofError 401 asking for the header, WWW-Authenticate" % name,
              lambda call=call: "bearer" in expect_error(lambda: call(anon), 401, "Authorization: Bearer")
              .headers.get("www-authenticate", "").lower())
        check("auth on, wrong token: %s() is JetprofError 401" % name,
              lambda call=call: expect_error(lambda: call(wrong), 401, "not valid"))
    check("auth on, no token: reads, predict and estimate need none", lambda: (
        anon.health()["status"] == "ok" and len(anon.models()["models"]) > 0
        and anon.predict([{"kernel": "linear", "batch": 4, "in": 8, "out": 8}])["predictions"]
        and anon.estimate(pe.build_graph(mlp_arch("m", 1, 16), 16, 32))["totals"]["latency_us"] > 0))

    check("auth on, right token (token_file): measure() 201", lambda: eq(
        right.measure("linear", batch=3, in_=8, out=8)["params"], {"batch": 3, "in": 8, "out": 8}))

    def sampling() -> None:
        got = right.device()["sensor"]["sampling"]["got"]
        eq(right.set_sampling(period_us=got["period_us"])["got"]["period_us"], got["period_us"])

    check("auth on, right token: set_sampling()", sampling)

    def jobs() -> None:
        r = right.submit_jobs({"configs": [{"kernel": "linear", "batch": b, "in": 8, "out": 8} for b in (5, 6, 7)],
                               "repeat_existing": True})
        eq(r["jobs"], 3)
        queued = right.jobs(batch=r["batch_id"], state="queued")["jobs"]
        if queued:
            eq(right.cancel_job(queued[-1]["id"])["state"], "canceled")
        b = right.cancel_batch(r["batch_id"])
        eq(b["counts"]["queued"], 0)
        right.wait_batch(r["batch_id"], poll_s=0.2, timeout=wait_s)

    check("auth on, right token: submit_jobs(), cancel_job(), cancel_batch()", jobs)
    check("auth on, right token: train(['linear'], quality='any')", lambda: {
        m["kernel"] for m in right.train(["linear"], quality="any", timeout=wait_s)["models"]} == {"linear"})

    def from_env() -> None:
        saved = {k: os.environ.get(k) for k in ("JETPROF_HOST", "JETPROF_TOKEN_FILE")}
        try:
            os.environ["JETPROF_HOST"] = base
            os.environ["JETPROF_TOKEN_FILE"] = token_file
            c = JetprofClient(timeout=30 * SLOW)
            r = c.submit_jobs({"configs": [{"kernel": "linear", "batch": 9, "in": 8, "out": 8}],
                               "repeat_existing": True})
            c.cancel_batch(r["batch_id"])
            c.wait_batch(r["batch_id"], poll_s=0.2, timeout=wait_s)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    check("auth on: the token from $JETPROF_TOKEN_FILE and the address from $JETPROF_HOST", from_env)
    for c in (anon, wrong, right):
        c.close()


SCRATCH = ""


def main(argv: List[str]) -> int:
    global SCRATCH
    if len(argv) < 3 or argv[0] not in ("main", "auth") or (argv[0] == "auth" and len(argv) < 4):
        print("usage: python_client_checks.py main BASE_URL SCRATCH_DIR | auth BASE_URL SCRATCH_DIR TOKEN_FILE",
              file=sys.stderr)
        return 2
    phase, base, SCRATCH = argv[0], argv[1], argv[2]
    if phase == "main":
        client_behaviour_checks()
        phase_main(base)
    else:
        phase_auth(base, argv[3])
    out("# done: %d checks, %d failed" % (COUNT, FAILED))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
