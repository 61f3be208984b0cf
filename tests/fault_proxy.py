"""A small HTTP proxy on loopback in front of the real hub server of the tests (olah, tests/hub_server.py) that injects
the faults a hub or a site mirror shows: an answer with a status (429 with Retry-After, 503) for the first N requests,
a delay past the client's timeout, a download reset (TCP RST) after K bytes of its body. The workflow reaches it as it
reaches any hub, through HF_ENDPOINT; every request that is not faulted is the real server's answer, passed on.
A refused connection needs no proxy: `refusing_endpoint()` names a loopback port where nothing listens."""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from hub_server import free_port


@dataclass
class Fault:
    """What to do to the first `times` requests whose path contains `match` (and whose method is in `methods`):
    status: answer it (with Retry-After where retry_after is set); delay: wait that long before passing it on;
    reset_after: pass the answer's headers and that many bytes of its body on, then reset the connection;
    stall_after: pass that many bytes on, then send nothing more for `delay` seconds (a hung transfer)."""

    match: str
    times: int = 1
    status: int | None = None
    retry_after: int | None = None
    delay: float = 0.0
    reset_after: int | None = None
    stall_after: int | None = None
    methods: tuple[str, ...] = ("GET", "HEAD")
    hits: int = 0


class FaultProxy:
    """The proxy, serving from __init__ on a free loopback port until stop(); `endpoint` is its HF_ENDPOINT."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.faults: list[Fault] = []
        self.seen: list[tuple[str, str, str]] = []  # (method, path, what happened: "passed" or the fault)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: the test reads proxy.seen
                pass

            def do_GET(self):
                proxy._handle(self)

            def do_HEAD(self):
                proxy._handle(self)

            def finish(self):  # a connection reset on purpose has nothing left to flush
                try:
                    super().finish()
                except OSError:
                    pass

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, *faults: Fault) -> FaultProxy:
        with self._lock:
            self.faults.extend(faults)
        return self

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.match in path and method in fault.methods and fault.hits < fault.times:
                    fault.hits += 1
                    return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        fault = self._fault_for(method, path)
        if fault is not None and fault.status is not None:
            self.seen.append((method, path, f"status {fault.status}"))
            body = b'{"error": "injected by the fault proxy"}'
            handler.send_response(fault.status)
            if fault.retry_after is not None:
                handler.send_header("Retry-After", str(fault.retry_after))
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if method != "HEAD":
                handler.wfile.write(body)
            return
        if fault is not None and fault.delay and fault.stall_after is None:
            self.seen.append((method, path, f"delay {fault.delay:g} s"))
            time.sleep(fault.delay)
        status, headers, body = self._upstream(method, path, handler.headers)
        handler.send_response(status)
        for name, value in headers:
            if name.lower() in ("transfer-encoding", "connection", "content-length"):
                continue
            if name.lower() == "location":
                value = value.replace(f"{self.upstream.scheme}://{self.upstream.netloc}", self.endpoint)
            handler.send_header(name, value)
        length = int(dict((k.lower(), v) for k, v in headers).get("content-length", len(body)))
        handler.send_header("Content-Length", str(length))
        handler.end_headers()
        if method == "HEAD":
            if fault is None or not fault.delay:
                self.seen.append((method, path, "passed"))
            return
        if fault is not None and fault.reset_after is not None and fault.reset_after < len(body):
            self.seen.append((method, path, f"reset after {fault.reset_after} bytes"))
            handler.wfile.write(body[: fault.reset_after])
            handler.wfile.flush()
            _reset(handler.connection)
            handler.close_connection = True
            return
        if fault is not None and fault.stall_after is not None:
            self.seen.append((method, path, f"stalled after {fault.stall_after} bytes"))
            handler.wfile.write(body[: fault.stall_after])
            handler.wfile.flush()
            time.sleep(fault.delay)
            _reset(handler.connection)
            handler.close_connection = True
            return
        if fault is None or not fault.delay:
            self.seen.append((method, path, "passed"))
        handler.wfile.write(body)

    def _upstream(self, method: str, path: str, headers) -> tuple[int, list, bytes]:
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        forwarded = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection", "accept-encoding")}
        try:
            connection.request(method, path, headers=forwarded)
            response = connection.getresponse()
            body = response.read()
            return response.status, response.getheaders(), body
        finally:
            connection.close()

    def passed(self, match: str = "") -> list[tuple[str, str]]:
        return [(m, p) for m, p, what in self.seen if what == "passed" and match in p]

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()


def _reset(connection: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a cut network or a killed server does mid-transfer."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    except OSError:
        pass


def refusing_endpoint() -> str:
    """A loopback endpoint where nothing listens: every connection is refused."""
    return f"http://127.0.0.1:{free_port()}"
