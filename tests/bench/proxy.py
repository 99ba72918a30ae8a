"""A counting HTTP proxy on 127.0.0.1 in front of the S3 server: what the cluster side really fetched.

The jobs' rclone is pointed at the proxy (``RCLONE_CONFIG_CEPH_ENDPOINT``); the proxy forwards every
request to the S3 server unchanged (the Host header too, so SigV4 signatures still match) and counts
the response body bytes of each GET of an object (``/BUCKET/KEY``, path-style), per key. Bucket
listings (``GET /BUCKET?list-type=2``) are counted apart. Bodies are streamed in 1 MiB pieces both
ways, never held whole; connections are kept alive; Range requests pass through, so a ranged fetch
counts only the bytes it received.
"""

from __future__ import annotations

import http.client
import http.server
import socketserver
import threading
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

PIECE = 1 << 20
_NO_BODY_STATUS = {204, 304}


@dataclass
class Tally:
    """What went through the proxy: object GET body bytes (total and per "bucket/key"), and the rest."""

    object_bytes: int = 0
    object_gets: int = 0
    per_key: Counter[str] = field(default_factory=Counter)
    other_get_bytes: int = 0
    requests: int = 0

    def copy(self) -> "Tally":
        return Tally(self.object_bytes, self.object_gets, Counter(self.per_key), self.other_get_bytes, self.requests)

    def __sub__(self, before: "Tally") -> "Tally":
        return Tally(self.object_bytes - before.object_bytes, self.object_gets - before.object_gets,
                     self.per_key - before.per_key, self.other_get_bytes - before.other_get_bytes,
                     self.requests - before.requests)


def object_key(target: str) -> str | None:
    """"bucket/key" of a path-style request target for an object, else None (a bucket, or the service)."""
    parts = urlsplit(target)
    bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
    return f"{bucket}/{key}" if bucket and key else None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        self.upstream = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port, timeout=300)

    def finish(self) -> None:
        self.upstream.close()
        super().finish()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def handle_expect_100(self) -> bool:
        # Let the S3 server answer "Expect: 100-continue" itself: the body is forwarded as it comes.
        return True

    def _forward(self) -> None:
        try:
            self._send_upstream()
            response = self.upstream.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self.upstream.close()
            self.send_error(502, f"upstream: {exc}")
            return
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            self.send_header(name, value)
        self.end_headers()
        counted = self._relay_body(response)
        response.close()  # a body read to its end (Content-Length: 0 too) frees the connection for the next
        key = object_key(self.path) if self.command == "GET" else None
        with self.server.lock:
            tally = self.server.tally
            tally.requests += 1
            if key is not None:
                tally.object_bytes += counted
                tally.object_gets += 1
                tally.per_key[key] += counted
            elif self.command == "GET":
                tally.other_get_bytes += counted
        if response.will_close:
            self.close_connection = True

    def _send_upstream(self) -> None:
        self.upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            self.upstream.putheader(name, value)
        self.upstream.endheaders()
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._relay_chunked_request()
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                piece = self.rfile.read(min(PIECE, left))
                if not piece:
                    raise OSError("client closed the connection inside a request body")
                self.upstream.send(piece)
                left -= len(piece)

    def _relay_chunked_request(self) -> None:
        """Forward a chunked request body verbatim, framing included."""
        while True:
            line = self.rfile.readline()
            self.upstream.send(line)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = self.rfile.readline()
                    self.upstream.send(trailer)
                    if trailer in (b"\r\n", b"\n", b""):
                        return
            left = size + 2  # the data and its CRLF
            while left > 0:
                piece = self.rfile.read(min(PIECE, left))
                if not piece:
                    raise OSError("client closed the connection inside a chunk")
                self.upstream.send(piece)
                left -= len(piece)

    def _relay_body(self, response: http.client.HTTPResponse) -> int:
        """Stream the response body to the client (re-chunked if it came chunked); return its length."""
        if self.command == "HEAD" or response.status in _NO_BODY_STATUS or 100 <= response.status < 200:
            response.read()
            return 0
        total = 0
        while True:
            piece = response.read1(PIECE) if not response.closed else b""
            if not piece:
                break
            total += len(piece)
            if response.chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)
        if response.chunked:
            self.wfile.write(b"0\r\n\r\n")
        elif response.length is None and response.getheader("Content-Length") is None:
            self.close_connection = True  # the body ended with the upstream connection: end ours too
        return total

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_PATCH = _forward


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.tally = Tally()


class CountingProxy:
    """``with CountingProxy("http://127.0.0.1:PORT") as proxy: ... proxy.endpoint ... proxy.tally()``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"expected http://HOST:PORT, got {upstream!r}")
        self._server = _Server(parts.hostname, parts.port)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="counting-proxy", daemon=True)
        self._thread.start()

    def tally(self) -> Tally:
        """A copy of the counts so far (subtract two copies for what happened in between)."""
        with self._server.lock:
            return self._server.tally.copy()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> "CountingProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
