"""jetprof_client - a Python client for jetprofd's HTTP API (v1).

jetprofd (this repository's daemon) measures the latency and energy of fused
neural-network kernels on an NVIDIA Jetson board, stores them, trains predictors
and estimates whole networks. This module wraps every endpoint of
daemon/routes.c in a typed method of :class:`JetprofClient`, using the Python 3
standard library only, so it can be copied next to a search driver or a notebook
without installing anything. The API itself is described in docs/api/openapi.yaml.

    from jetprof_client import JetprofClient, JetprofError

    c = JetprofClient("127.0.0.1:9740", token_file="~/.jetprof/token")
    m = c.measure("linear_relu", batch=64, in_=256, out=512)
    print(m["latency_us"], m["energy_uj"])
    try:
        c.measure("linear_relu", batch=0, in_=256, out=512)
    except JetprofError as e:
        print(e.status, e.detail)   # 422 parameter 'batch' = 0 is outside ...

How it talks to the daemon:

- One persistent ``http.client.HTTPConnection`` (keep-alive) is reused for every
  request. Before a request goes out on a connection that has been idle, the
  socket is polled: a connection the daemon closed meanwhile (it drops idle ones
  after 60 s) is replaced first, so even a non-idempotent POST is not sent into a
  dead socket. If the connection still drops before an answer arrives, a request
  that is safe to repeat (GET, PUT, DELETE, and the read-only POSTs /v1/predict
  and /v1/estimate) is sent once more on a fresh connection; POST /v1/measure,
  /v1/jobs and /v1/models/train are never repeated (the daemon may have acted on
  them), and the error is raised.
- ``power_stream`` opens a connection of its own, so the main one stays usable
  while events are consumed.
- Every answer that is not 2xx raises :class:`JetprofError` carrying the
  RFC 9457 problem document (status, title, detail and the whole body, e.g. the
  ``parameter``, ``kernels`` or ``node`` members); a failure to reach the daemon
  raises :class:`JetprofConnectionError`.
- Every request sends ``Authorization: Bearer <token>`` when a token is
  configured (the daemon requires it on mutating endpoints, and on reads too
  with ``server.auth_reads``) (argument ``token``, the file ``token_file``, or the file named by
  the environment variable ``JETPROF_TOKEN_FILE``). The address defaults to
  ``JETPROF_HOST`` (or ``JETPROF_URL``, the command-line client's variable), else
  127.0.0.1:9740.

Methods return the daemon's JSON as plain dicts and lists (the shapes are the
openapi.yaml schemas), except the text and file endpoints, which return ``str``
or the number of bytes written.
"""

from __future__ import annotations

import datetime as _dt
import http.client
import json
import keyword
import os
import select
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "JetprofClient",
    "JetprofError",
    "JetprofConnectionError",
    "PowerEvent",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
]

__version__ = "0.1.0"

DEFAULT_HOST = "127.0.0.1:9740"
DEFAULT_PORT = 9740
DEFAULT_TIMEOUT_S = 60.0

Json = Dict[str, Any]
GraphLike = Union[Mapping[str, Any], str]

# A dropped keep-alive connection shows up as one of these while sending the
# request or waiting for the status line.
_DROPPED = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)

# Per-request timeout meaning "the client's timeout" (None already means "no limit").
_CLIENT_TIMEOUT = -1.0

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_STREAM_CHUNK_BYTES = 64 * 1024


class JetprofError(Exception):
    """An error answer from jetprofd (any status outside 2xx).

    Attributes:
        status: the HTTP status code (e.g. 422).
        title: the problem's title (the reason phrase, e.g. "Unprocessable Content").
        detail: what was wrong and where, as the daemon says it; for an answer
            that is not a problem document, the start of its body.
        body: the parsed problem document (a dict with ``type``, ``title``,
            ``status``, ``detail``, ``instance`` and members such as ``parameter``,
            ``kernels``, ``node``, ``graph``), or the raw text of a non-JSON body.
        headers: the answer's headers (lower-case names), e.g. ``retry-after``.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        body: Union[Json, str, None] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        super().__init__(status, title, detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.body = body
        self.headers = dict(headers or {})

    def member(self, name: str, default: Any = None) -> Any:
        """A member of the problem document (e.g. ``"parameter"``), or ``default``."""
        if isinstance(self.body, dict):
            return self.body.get(name, default)
        return default

    def __str__(self) -> str:
        head = "%d %s" % (self.status, self.title) if self.title else str(self.status)
        return "%s: %s" % (head, self.detail) if self.detail else head

    def __repr__(self) -> str:
        return "JetprofError(status=%r, title=%r, detail=%r)" % (self.status, self.title, self.detail)


class JetprofConnectionError(ConnectionError):
    """jetprofd could not be reached, or the connection broke mid-answer."""


@dataclass
class PowerEvent:
    """One Server-Sent Event of GET /v1/power/stream.

    Attributes:
        id: the event's ``id:`` field (counting from 1), or None.
        data: the PowerSample (``t_ns``, ``age_ms``, ``rails``, ``simulated``).
    """

    id: Optional[int]
    data: Json = field(default_factory=dict)

    @property
    def rails(self) -> List[Json]:
        """The rails of the sample: name, board_input, voltage_mv, current_ma, power_mw."""
        return list(self.data.get("rails", []))

    @property
    def simulated(self) -> bool:
        """True when the numbers do not come from a physical power sensor."""
        return bool(self.data.get("simulated", False))

    def power_mw(self) -> Dict[str, float]:
        """Power per rail name, mW."""
        return {r["name"]: r["power_mw"] for r in self.rails if "name" in r}


def _parse_address(host: str) -> Tuple[str, str, int, str]:
    """'h', 'h:p', 'http://h:p/prefix', '[::1]:p' -> (scheme, host, port, prefix)."""
    text = host.strip()
    if not text:
        raise ValueError("empty jetprofd address")
    if "://" not in text:
        text = "http://" + text
    u = urllib.parse.urlsplit(text)
    if u.scheme not in ("http", "https"):
        raise ValueError("jetprofd address %r: the scheme must be http or https" % host)
    if not u.hostname:
        raise ValueError("jetprofd address %r has no host name" % host)
    if u.netloc.endswith(":"):
        raise ValueError("jetprofd address %r: the port after ':' is empty" % host)
    try:
        port = u.port
    except ValueError as e:
        raise ValueError("jetprofd address %r: %s" % (host, e)) from None
    if port is None:
        port = DEFAULT_PORT if u.scheme == "http" else 443
    if u.query or u.fragment:
        raise ValueError("jetprofd address %r: no query or fragment allowed" % host)
    return u.scheme, u.hostname, port, u.path.rstrip("/")


def read_token_file(path: str) -> str:
    """The bearer token in ``path``: the whole file, surrounding whitespace trimmed
    (as jetprofd reads its own token file)."""
    with open(os.path.expanduser(path), "r", encoding="utf-8") as f:
        token = f.read().strip()
    if not token:
        raise ValueError("token file %s is empty" % path)
    return token


def _kernel_params(params: Optional[Mapping[str, Any]], kw: Mapping[str, Any]) -> Json:
    """Kernel parameters from a mapping and keyword arguments. A keyword that
    would be a Python keyword takes a trailing underscore (``in_=256`` is the
    parameter ``in``)."""
    out: Json = dict(params or {})
    for k, v in kw.items():
        if k.endswith("_") and keyword.iskeyword(k[:-1]):
            k = k[:-1]
        if k in out:
            raise TypeError("kernel parameter %r given twice" % k)
        out[k] = v
    return out


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, _dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return v.isoformat(timespec="milliseconds") + "Z"
    if isinstance(v, _dt.date):
        return v.isoformat()
    return str(v)


def _graph_text(graph: GraphLike) -> str:
    return graph if isinstance(graph, str) else json.dumps(graph, separators=(",", ":"))


def _id(value: int, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (what, type(value).__name__))
    return str(value)


class _Response:
    """A finished answer: status, lower-case headers, body bytes."""

    __slots__ = ("status", "reason", "headers", "body")

    def __init__(self, status: int, reason: str, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise JetprofError(
                self.status, self.reason, "the answer is not valid JSON: %s" % e, self.body.decode("utf-8", "replace")
            ) from None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _error_from(status: int, reason: str, headers: Dict[str, str], body: bytes) -> JetprofError:
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    text = body.decode("utf-8", "replace")
    if ctype in ("application/problem+json", "application/json"):
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            title = doc.get("title") if isinstance(doc.get("title"), str) else reason
            detail = doc.get("detail") if isinstance(doc.get("detail"), str) else ""
            return JetprofError(status, title or reason, detail, doc, headers)
    detail = " ".join(text.split())
    if len(detail) > 500:
        detail = detail[:500] + "..."
    return JetprofError(status, reason, detail, text, headers)


class JetprofClient:
    """A client for one jetprofd.

    Args:
        host: the daemon's address: ``"host:port"``, ``"host"`` (port 9740) or a URL
            ``"http://host:port"`` (a path prefix, e.g. behind a reverse proxy, is
            kept). Default: ``$JETPROF_HOST``, else ``$JETPROF_URL``, else
            127.0.0.1:9740.
        token: the bearer token for mutating requests.
        token_file: a file holding the token (whitespace trimmed); default
            ``$JETPROF_TOKEN_FILE``. Without a token no Authorization header is sent
            (the daemon then answers 401 to mutating requests if it has auth on).
        timeout: seconds a socket operation may wait (connect, or a gap in the
            answer); None waits forever. POST /v1/measure and /v1/models/train are
            answered when done, so their methods take a ``timeout`` of their own.

    The client is not thread-safe: use one per thread. It is a context manager
    (``with JetprofClient() as c: ...``) that closes its connection on exit.
    """

    def __init__(
        self,
        host: Optional[str] = None,
        token: Optional[str] = None,
        token_file: Optional[str] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT_S,
    ) -> None:
        if host is None:
            host = os.environ.get("JETPROF_HOST") or os.environ.get("JETPROF_URL") or DEFAULT_HOST
        self.scheme, self.hostname, self.port, self.prefix = _parse_address(host)
        if token is None:
            if token_file is None:
                token_file = os.environ.get("JETPROF_TOKEN_FILE") or None
            if token_file:
                token = read_token_file(token_file)
        self.token: Optional[str] = token or None
        self.timeout = timeout
        self._conn: Optional[http.client.HTTPConnection] = None
        #: connections opened so far (the first one included); reuse keeps it at 1
        self.connections_opened = 0

    # ---- plumbing ----

    @property
    def base_url(self) -> str:
        """The daemon's URL, e.g. ``http://127.0.0.1:9740``."""
        host = "[%s]" % self.hostname if ":" in self.hostname else self.hostname
        return "%s://%s:%d%s" % (self.scheme, host, self.port, self.prefix)

    def __repr__(self) -> str:
        return "JetprofClient(%r, auth=%s)" % (self.base_url, "on" if self.token else "off")

    def __enter__(self) -> "JetprofClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the persistent connection (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _new_connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.hostname, self.port, timeout=timeout)
        try:
            conn.connect()
        except OSError as e:
            conn.close()
            raise JetprofConnectionError("cannot connect to jetprofd at %s: %s" % (self.base_url, e)) from e
        self.connections_opened += 1
        return conn

    @staticmethod
    def _stale(conn: http.client.HTTPConnection) -> bool:
        """True when an idle connection can no longer carry a request: the peer
        closed it (readable at EOF) or sent something unasked."""
        sock = conn.sock
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is not None and self._stale(self._conn):
            self.close()
        if self._conn is None:
            self._conn = self._new_connection(self.timeout)
        return self._conn

    def _path(self, path: str, query: Optional[Mapping[str, Any]] = None) -> str:
        full = self.prefix + path
        if query:
            items = [(k, _query_value(v)) for k, v in query.items() if v is not None]
            if items:
                full += "?" + urllib.parse.urlencode(items)
        return full

    def _headers(self, auth: bool, body: Optional[bytes], accept: str) -> Dict[str, str]:
        h = {"Accept": accept, "User-Agent": "jetprof-python/%s" % __version__}
        if body is not None:
            h["Content-Type"] = "application/json"
        # Sent on reads as well: with server.auth_reads the daemon requires it
        # everywhere (GET /v1/health aside). `auth` keeps documenting which calls
        # need it whatever the daemon's settings.
        del auth
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        return h

    def _send(
        self,
        method: str,
        path: str,
        body: Optional[bytes],
        headers: Dict[str, str],
        retry: bool,
        timeout: Optional[float],
    ) -> http.client.HTTPResponse:
        """Sends the request on the persistent connection and returns the response
        with its headers read; reconnects once for a request safe to repeat."""
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            conn = self._connection()
            if conn.sock is not None:
                conn.sock.settimeout(timeout if timeout != _CLIENT_TIMEOUT else self.timeout)
            try:
                conn.request(method, path, body=body, headers=headers)
                return conn.getresponse()
            except _DROPPED as e:
                self.close()
                if attempt + 1 < attempts:
                    continue
                raise JetprofConnectionError(
                    "jetprofd at %s closed the connection during %s %s: %s" % (self.base_url, method, path, e or type(e).__name__)
                ) from e
            except socket.timeout as e:
                self.close()
                raise JetprofConnectionError(
                    "no answer from jetprofd at %s to %s %s within %s s" % (self.base_url, method, path, timeout if timeout != _CLIENT_TIMEOUT else self.timeout)
                ) from e
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise JetprofConnectionError("%s %s to jetprofd at %s failed: %s" % (method, path, self.base_url, e)) from e
            except BaseException:
                self.close()  # e.g. KeyboardInterrupt mid-request: the connection is in an unknown state
                raise
        raise AssertionError("unreachable")

    def _finish(self, resp: http.client.HTTPResponse, method: str, path: str) -> None:
        """After a response: restore the connection's timeout, and drop it when the
        daemon said it closes."""
        if resp.will_close:
            self.close()
        elif self._conn is not None and self._conn.sock is not None:
            self._conn.sock.settimeout(self.timeout)

    def _request(
        self,
        method: str,
        path: str,
        query: Optional[Mapping[str, Any]] = None,
        body: Any = None,
        auth: bool = False,
        retry: Optional[bool] = None,
        accept: str = "application/json",
        timeout: Optional[float] = _CLIENT_TIMEOUT,
    ) -> _Response:
        """One request; the whole answer read. Non-2xx raises JetprofError."""
        data: Optional[bytes]
        if body is None:
            data = None
        elif isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        full = self._path(path, query)
        if retry is None:
            retry = method in _IDEMPOTENT_METHODS
        resp = self._send(method, full, data, self._headers(auth, data, accept), retry, timeout)
        try:
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise JetprofConnectionError("reading the answer to %s %s failed: %s" % (method, full, e)) from e
        except BaseException:
            self.close()
            raise
        headers = {k.lower(): v for k, v in resp.getheaders()}
        self._finish(resp, method, full)
        if not 200 <= resp.status < 300:
            raise _error_from(resp.status, resp.reason, headers, raw)
        return _Response(resp.status, resp.reason, headers, raw)

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return self._request(method, path, **kw).json()

    def _download(
        self,
        path: str,
        dest: str,
        query: Optional[Mapping[str, Any]] = None,
        accept: str = "*/*",
    ) -> int:
        """GET path streamed into the file dest (written as dest.part, renamed when
        complete, so a failed download leaves no truncated file). Bytes written."""
        full = self._path(path, query)
        resp = self._send("GET", full, None, self._headers(False, None, accept), True, _CLIENT_TIMEOUT)
        if not 200 <= resp.status < 300:
            raw = resp.read()
            headers = {k.lower(): v for k, v in resp.getheaders()}
            self._finish(resp, "GET", full)
            raise _error_from(resp.status, resp.reason, headers, raw)
        dest = os.path.expanduser(dest)
        part = dest + ".part"
        written = 0
        created = False
        try:
            with open(part, "wb") as f:
                created = True
                while True:
                    try:
                        chunk = resp.read(_STREAM_CHUNK_BYTES)
                    except (OSError, http.client.HTTPException) as e:
                        raise JetprofConnectionError(
                            "downloading %s broke off after %d bytes: %s" % (full, written, e)
                        ) from e
                    if not chunk:
                        break
                    f.write(chunk)
                    written += len(chunk)
            os.replace(part, dest)
        except BaseException:
            # The answer was not read to its end (a local file error, a broken
            # download, an interrupt): the connection cannot carry another request.
            self.close()
            if created:
                try:
                    os.unlink(part)
                except OSError:
                    pass
            raise
        self._finish(resp, "GET", full)
        return written

    # ---- daemon ----

    def health(self) -> Json:
        """GET /v1/health: status ("ok"/"degraded"), version, uptime_s, job counts,
        runner and sampler state, simulated."""
        return self._json("GET", "/v1/health")

    def device(self) -> Json:
        """GET /v1/device: board, executor, sensor backend, rails, sampling asked
        and got, fingerprint."""
        return self._json("GET", "/v1/device")

    def kernels(self) -> Json:
        """GET /v1/kernels: ``{"kernels": [{"name", "doc", "dtypes", "params":
        [{"name", "min", "max", "log_scale", "doc"}]}]}``."""
        return self._json("GET", "/v1/kernels")

    def metrics(self) -> str:
        """GET /metrics: the Prometheus text exposition."""
        return self._request("GET", "/metrics", accept="text/plain").text()

    # ---- power ----

    def power(self) -> Json:
        """GET /v1/power: the latest sample of every rail, the sampling and the
        achieved rate (503 before the first sample)."""
        return self._json("GET", "/v1/power")

    def power_stream(self, interval_ms: Optional[int] = None, count: Optional[int] = None) -> Iterator[PowerEvent]:
        """GET /v1/power/stream as a generator of :class:`PowerEvent`.

        Args:
            interval_ms: time between events in ms of sample time; 0 = every
                sample; default the daemon's ``sensor.stream_interval_ms``.
            count: end after this many events; default endless (stop iterating,
                or call ``close()`` on the generator, to leave).

        The stream runs on a connection of its own, closed when the generator
        ends or is closed; the client's other methods keep working meanwhile.
        Keep-alive comments (``: no new sample``) are skipped. Like any
        generator, nothing is sent before the first event is asked for, so an
        error answer (e.g. 503 when too many streams are open) is raised then.
        """
        full = self._path("/v1/power/stream", {"interval_ms": interval_ms, "count": count})
        # Events come every interval_ms (keep-alive comments only when no sample
        # arrives), so a long interval must not trip the socket timeout.
        timeout = self.timeout
        if timeout is not None and interval_ms:
            timeout = max(timeout, interval_ms / 1000.0 + 10.0)
        conn = self._new_connection(timeout)
        try:
            try:
                conn.request("GET", full, headers=self._headers(False, None, "text/event-stream"))
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                raise JetprofConnectionError("GET %s at %s failed: %s" % (full, self.base_url, e)) from e
            if resp.status != 200:
                raw = resp.read()
                raise _error_from(resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()}, raw)
            event_id: Optional[int] = None
            data_lines: List[str] = []
            while True:
                try:
                    line_b = resp.readline()
                except (OSError, http.client.HTTPException) as e:
                    raise JetprofConnectionError("the power stream broke off: %s" % e) from e
                if not line_b:
                    return  # the stream ended (count reached, or the daemon stops)
                line = line_b.decode("utf-8", "replace").rstrip("\r\n")
                if line == "":
                    if data_lines:
                        text = "\n".join(data_lines)
                        try:
                            data = json.loads(text)
                        except ValueError as e:
                            raise JetprofError(200, "OK", "a power event's data is not JSON: %s" % e, text) from None
                        yield PowerEvent(event_id, data)
                    event_id, data_lines = None, []
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                if value.startswith(" "):
                    value = value[1:]
                if name == "data":
                    data_lines.append(value)
                elif name == "id":
                    try:
                        event_id = int(value)
                    except ValueError:
                        event_id = None
        finally:
            conn.close()

    def set_sampling(
        self,
        conversion_time_us: Optional[int] = None,
        averaging: Optional[int] = None,
        period_us: Optional[int] = None,
    ) -> Json:
        """PUT /v1/sensor/sampling (auth): change the sensor's sampling; members
        left None keep the value in force. Returns backend, simulated, asked, got,
        expected_rate_hz."""
        body = {
            k: v
            for k, v in (("conversion_time_us", conversion_time_us), ("averaging", averaging), ("period_us", period_us))
            if v is not None
        }
        return self._json("PUT", "/v1/sensor/sampling", body=body, auth=True)

    # ---- measurements ----

    def measure(
        self,
        kernel: str,
        dtype: str = "fp32",
        repeats: Optional[int] = None,
        params: Optional[Mapping[str, int]] = None,
        timeout: Optional[float] = None,
        **kernel_params: int,
    ) -> Json:
        """POST /v1/measure (auth): measure one configuration; answered when the
        job is done (the Measurement, status 201).

        Kernel parameters come as keywords (``batch=64, in_=256, out=512``: a
        trailing underscore makes a Python keyword usable) and/or the mapping
        ``params``. ``timeout`` (seconds, default None = wait as long as it takes)
        replaces the client's timeout for this request.
        """
        body: Json = {"kernel": kernel, "dtype": dtype}
        if repeats is not None:
            body["repeats"] = repeats
        body.update(_kernel_params(params, kernel_params))
        return self._json("POST", "/v1/measure", body=body, auth=True, retry=False, timeout=timeout)

    @staticmethod
    def _measurement_filters(
        kernel: Optional[str],
        dtype: Optional[str],
        quality: Optional[str],
        batch: Optional[int],
        since: Union[str, _dt.date, None],
    ) -> Json:
        return {"kernel": kernel, "dtype": dtype, "quality": quality, "batch": batch, "since": since}

    def measurements(
        self,
        kernel: Optional[str] = None,
        dtype: Optional[str] = None,
        quality: Optional[str] = None,
        after: Optional[int] = None,
        limit: Optional[int] = None,
        batch: Optional[int] = None,
        since: Union[str, _dt.date, None] = None,
    ) -> Json:
        """GET /v1/measurements: one page, ``{"measurements": [...], "next_after":
        id or None}``, in id order.

        Args:
            kernel, dtype, quality ("ok"/"suspect"), batch (a batch id): filters.
            after: only ids above this (pass the previous page's next_after).
            limit: page size, 1..10000 (daemon default 100).
            since: created at or after: an ISO-8601 string, a date, or a datetime
                (naive = UTC).
        """
        q = self._measurement_filters(kernel, dtype, quality, batch, since)
        q.update(after=after, limit=limit)
        return self._json("GET", "/v1/measurements", query=q)

    def iter_measurements(
        self,
        kernel: Optional[str] = None,
        dtype: Optional[str] = None,
        quality: Optional[str] = None,
        after: Optional[int] = None,
        batch: Optional[int] = None,
        since: Union[str, _dt.date, None] = None,
        page_size: int = 1000,
    ) -> Iterator[Json]:
        """Every matching measurement, fetched page by page (``next_after``)."""
        while True:
            page = self.measurements(kernel, dtype, quality, after, page_size, batch, since)
            yield from page["measurements"]
            after = page.get("next_after")
            if after is None:
                return

    def measurements_csv(
        self,
        kernel: Optional[str] = None,
        dtype: Optional[str] = None,
        quality: Optional[str] = None,
        after: Optional[int] = None,
        limit: Optional[int] = None,
        batch: Optional[int] = None,
        since: Union[str, _dt.date, None] = None,
    ) -> str:
        """GET /v1/measurements?format=csv: every matching row (at most ``limit``)
        as RFC 4180 CSV text (CRLF, header first). For large datasets prefer
        :meth:`export_csv`, which streams to a file."""
        q = self._measurement_filters(kernel, dtype, quality, batch, since)
        q.update(after=after, limit=limit, format="csv")
        return self._request("GET", "/v1/measurements", query=q, accept="text/csv").text()

    def export_csv(
        self,
        path: str,
        kernel: Optional[str] = None,
        dtype: Optional[str] = None,
        quality: Optional[str] = None,
        after: Optional[int] = None,
        limit: Optional[int] = None,
        batch: Optional[int] = None,
        since: Union[str, _dt.date, None] = None,
    ) -> int:
        """Streams GET /v1/measurements?format=csv into the file ``path``; bytes written."""
        q = self._measurement_filters(kernel, dtype, quality, batch, since)
        q.update(after=after, limit=limit, format="csv")
        return self._download("/v1/measurements", path, q, "text/csv")

    def export_jsonl(
        self,
        path: str,
        kernel: Optional[str] = None,
        dtype: Optional[str] = None,
        quality: Optional[str] = None,
        after: Optional[int] = None,
        limit: Optional[int] = None,
        batch: Optional[int] = None,
        since: Union[str, _dt.date, None] = None,
    ) -> int:
        """Streams GET /v1/measurements?format=jsonl (one Measurement per line) into
        the file ``path``; bytes written."""
        q = self._measurement_filters(kernel, dtype, quality, batch, since)
        q.update(after=after, limit=limit, format="jsonl")
        return self._download("/v1/measurements", path, q, "application/x-ndjson")

    def export_sqlite(self, path: str) -> int:
        """GET /v1/export.sqlite: a consistent snapshot of the whole database,
        streamed into the file ``path``; bytes written."""
        return self._download("/v1/export.sqlite", path, None, "application/vnd.sqlite3")

    def measurement(self, id: int) -> Json:
        """GET /v1/measurements/{id}: one Measurement (404 when there is none)."""
        return self._json("GET", "/v1/measurements/" + _id(id, "id"))

    # ---- jobs and batches ----

    def submit_jobs(self, spec: Mapping[str, Any]) -> Json:
        """POST /v1/jobs (auth): queue a batch, ``{"configs": [...]}`` or
        ``{"sweep": {"type": "grid"|"random"|"list"|"adaptive", "kernel": ..., ...}}``
        with optional dtype, repeats, repeat_existing. An adaptive sweep
        (``"params"`` ranges, ``"initial"``, ``"per_round"``, ``"rounds"``,
        ``"threshold"``, ``"radius_log2"``, ``"seed"``) queues its initial random
        sample; the daemon adds each round's proposals to the same batch. Returns
        ``{"batch_id", "jobs", "duplicates"}`` at once (progress: :meth:`batch`)."""
        return self._json("POST", "/v1/jobs", body=dict(spec), auth=True, retry=False)

    def jobs(
        self,
        state: Optional[str] = None,
        batch: Optional[int] = None,
        after: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> Json:
        """GET /v1/jobs: one page, ``{"jobs": [...], "next_after"}``; filters
        state (queued, running, done, failed, canceled) and batch."""
        return self._json("GET", "/v1/jobs", query={"state": state, "batch": batch, "after": after, "limit": limit})

    def iter_jobs(
        self,
        state: Optional[str] = None,
        batch: Optional[int] = None,
        after: Optional[int] = None,
        page_size: int = 1000,
    ) -> Iterator[Json]:
        """Every matching job, fetched page by page (``next_after``)."""
        while True:
            page = self.jobs(state, batch, after, page_size)
            yield from page["jobs"]
            after = page.get("next_after")
            if after is None:
                return

    def job(self, id: int) -> Json:
        """GET /v1/jobs/{id}: one Job."""
        return self._json("GET", "/v1/jobs/" + _id(id, "id"))

    def cancel_job(self, id: int) -> Json:
        """DELETE /v1/jobs/{id} (auth): cancel a queued job (409 for one that is
        not queued); returns the Job, now canceled."""
        return self._json("DELETE", "/v1/jobs/" + _id(id, "id"), auth=True)

    def batch(self, id: int) -> Json:
        """GET /v1/batches/{id}: progress and cost (counts per state,
        measured_per_minute, eta_s, energy_j, wall_s); an adaptive batch also
        has ``"adaptive": {"rounds", "open"}`` and its ``"rounds"``."""
        return self._json("GET", "/v1/batches/" + _id(id, "id"))

    def cancel_batch(self, id: int) -> Json:
        """DELETE /v1/batches/{id} (auth): cancel the batch's queued jobs (a
        running one finishes); the Batch with ``canceled``."""
        return self._json("DELETE", "/v1/batches/" + _id(id, "id"), auth=True)

    def wait_batch(self, id: int, poll_s: float = 0.5, timeout: Optional[float] = None) -> Json:
        """Polls :meth:`batch` until nothing of it is queued or running and, for an
        adaptive batch, its last round is in (``adaptive.open`` false); returns the
        final Batch. Raises TimeoutError after ``timeout`` seconds (None = no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            b = self.batch(id)
            counts = b.get("counts", {})
            still_open = bool((b.get("adaptive") or {}).get("open", False))
            if counts.get("queued", 0) == 0 and counts.get("running", 0) == 0 and not still_open:
                return b
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("batch %d still has %d queued and %d running jobs%s after %s s"
                                   % (id, counts.get("queued", 0), counts.get("running", 0),
                                      " and adaptive rounds to come" if still_open else "", timeout))
            time.sleep(poll_s)

    # ---- predictors ----

    def train(
        self,
        kernels: Optional[Sequence[str]] = None,
        quality: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Json:
        """POST /v1/models/train (auth): train the predictors of these kernel types
        (default: every type with at least 20 usable measurements), on measurements
        of quality "ok" (default) or "any". Answered when done: ``{"models": [...],
        "duration_ms", "simulated"}``. 409 when a kernel type has too little data
        (members kernel, measurements, needed). ``timeout``: as for :meth:`measure`."""
        body: Json = {}
        if kernels is not None:
            if isinstance(kernels, str):
                raise TypeError("kernels must be a list of kernel names, not a string")
            body["kernels"] = list(kernels)
        if quality is not None:
            body["quality"] = quality
        return self._json("POST", "/v1/models/train", body=body, auth=True, retry=False, timeout=timeout)

    def models(self) -> Json:
        """GET /v1/models: ``{"models": [Model...], "simulated"}``, the newest
        model per kernel type and target for this device, with held-out metrics."""
        return self._json("GET", "/v1/models")

    def export_models(self, path: str) -> int:
        """GET /v1/models/export: the jetprof-models/1 bundle (for ``jetprof
        estimate --offline``) written to ``path``; bytes written. 404 when there
        are no models."""
        return self._download("/v1/models/export", path, None, "application/json")

    def predict(self, configs: Iterable[Mapping[str, Any]]) -> Json:
        """POST /v1/predict: predicted latency, power and energy per rail of kernel
        configurations (each like a :meth:`measure` body: ``{"kernel":
        "linear_relu", "dtype": "fp32", "batch": 64, "in": 256, "out": 512}``),
        with the newest measurement of the same configuration where one exists.
        Returns ``{"simulated", "predictions": [...]}`` in request order; 409
        (member ``kernels``) for kernel types without a model."""
        return self._json("POST", "/v1/predict", body={"configs": [dict(c) for c in configs]}, retry=True)

    def estimate(self, graph: GraphLike, merge: bool = True) -> Json:
        """POST /v1/estimate: one graph (a native graph dict, docs/graphs.md, an
        nn-Meter IR dict, or either as JSON text) -> the Estimate: fused and merged
        kernels with predictions, and totals (latency_us, energy_uj.board_input,
        .gpu, .rails). ``merge=False`` keeps parallel kernels apart."""
        return self._json(
            "POST", "/v1/estimate", query={"merge": bool(merge)}, body=_graph_text(graph).encode("utf-8"), retry=True
        )

    def estimate_many(self, graphs: Iterable[GraphLike], merge: bool = True) -> Json:
        """POST /v1/estimate with ``{"graphs": [...]}`` (1 to 10000 graphs, and the
        body within the daemon's server.max_body_bytes, 1 MiB by default):
        ``{"estimates": [Estimate...], "simulated"}`` in order. A bad graph is a
        422 whose detail starts "graphs[i]: " (member ``graph`` = i)."""
        body = '{"graphs":[' + ",".join(_graph_text(g) for g in graphs) + "]}"
        return self._json("POST", "/v1/estimate", query={"merge": bool(merge)}, body=body.encode("utf-8"), retry=True)

    # ---- whole graphs and the validation of estimates ----

    def measure_graphs(
        self,
        graphs: Iterable[GraphLike],
        repeats: Optional[int] = None,
        repeat_existing: Optional[bool] = None,
    ) -> Json:
        """POST /v1/graphs/measure (auth): queue whole-graph measurements of 1 to 100
        graphs (native graph dicts, nn-Meter IR dicts, or either as JSON text; what
        :meth:`estimate` takes) as one batch. Each graph's fused kernels (unmerged)
        run back to back, level by level, each with buffers of its own (on a GPU the
        kernels of a level on streams of their own). Returns at once ``{"batch_id",
        "inserted", "duplicates", "graphs": [{"index", "hash", "name", "kernels",
        "levels", "job_id"}]}``; ``job_id`` is None for a graph measured or queued
        before (unless ``repeat_existing``). Follow it with :meth:`wait_batch`; the
        measurement is a Measurement with kernel "graph" and a ``graph`` member. A
        bad graph is a 422 naming ``graphs[i]`` and the node."""
        body = '{"graphs":[' + ",".join(_graph_text(g) for g in graphs) + "]"
        if repeats is not None:
            body += ',"repeats":%d' % int(repeats)
        if repeat_existing is not None:
            body += ',"repeat_existing":%s' % ("true" if repeat_existing else "false")
        body += "}"
        return self._json("POST", "/v1/graphs/measure", body=body.encode("utf-8"), auth=True, retry=False)

    def graphs(self, after_id: Optional[int] = None, limit: Optional[int] = None) -> Json:
        """GET /v1/graphs: stored graphs in id order, ``{"graphs": [...]}``, each
        with id, hash, name, format, dtype, batch, graph_nodes, kernels, levels,
        created_at, its number of measurements and the newest one (``latest``, or
        None); ``after_id`` and ``limit`` page through them."""
        return self._json("GET", "/v1/graphs", query={"after_id": after_id, "limit": limit})

    def validation(self, quality: Optional[str] = None) -> Json:
        """GET /v1/validation: every graph measured on this device beside its
        estimate with merging on and off (``estimate_merged``,
        ``estimate_unmerged``: latency_us, energy_uj, kernels and the relative
        errors (estimate - measured) / measured), ``summary`` (per mode, energy and
        latency: mape in percent, within_10pct 0..1, kendall_tau; None without
        graphs), ``skipped`` (graphs needing a kernel type without a model) and
        ``simulated``. ``quality="ok"`` uses only measurements marked ok."""
        return self._json("GET", "/v1/validation", query={"quality": quality})
