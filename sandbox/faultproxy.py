"""A loopback HTTP proxy in front of the sandbox that breaks answers the way networks and servers do.

The stand-ins inject HTTP-level faults themselves (sandbox/faults.py: status, Retry-After, delay; BHXH and the
security server also bad bodies). This proxy adds, for every stand-in alike, the faults a server cannot send
itself: a connection reset (RST), a body cut off mid-way, an answer that never comes, and the same status / 429
+ Retry-After / malformed / slow faults, so one fault matrix covers every source.

    with FaultProxy(upstream="http://127.0.0.1:8765") as proxy:     # proxy.url replaces the upstream's
        proxy.add("reset", path="/his/", count=1)

Faults (queued per path prefix, each used `count` times, first matching queue entry first):
  status     answer `status` (default 503) with a JSON error body
  throttle   answer 429 with Retry-After: `retry_after` seconds
  timeout    read the request and answer nothing for `seconds` (longer than the client's timeout), then close
  reset      read the request, then reset the connection (SO_LINGER 0: the client sees ECONNRESET)
  truncated  forward, then send the head (full Content-Length) and only half of the body, and close
  malformed  answer 200 with a JSON body cut in the middle (a complete HTTP message: only the body is wrong)
  slow       forward after `seconds` (shorter than the client's timeout): must simply succeed
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

KINDS = ("status", "throttle", "timeout", "reset", "truncated", "malformed", "slow")


@dataclass
class Fault:
    kind: str
    path: str = "/"
    count: int = 1
    method: str | None = None  # only requests of this method (None: any)
    status: int = 503
    retry_after: int = 1
    seconds: float = 0.5


class FaultProxy:
    def __init__(self, upstream: str):
        u = urlsplit(upstream)
        self.upstream_host, self.upstream_port = u.hostname or "127.0.0.1", u.port or 80
        self.prefix = u.path.rstrip("/")
        self.faults: list[Fault] = []
        self.used: list[tuple[str, str]] = []  # (kind, path) of every fault served
        self.requests = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"

    # ------------------------------------------------------------ control

    def add(self, kind: str, path: str = "/", count: int = 1, **kw) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self.faults.append(Fault(kind, path, count, **kw))

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if path.startswith(f.path) and f.method in (None, method):
                    f.count -= 1
                    if f.count <= 0:
                        self.faults.remove(f)
                    self.used.append((f.kind, path))
                    return f
        return None

    def __enter__(self) -> FaultProxy:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------ one client connection

    def _serve(self, sock: socket.socket) -> None:
        rfile = sock.makefile("rb")
        try:
            while True:
                req = _read_request(rfile)
                if req is None:
                    return
                method, target, headers, body = req
                with self._lock:
                    self.requests += 1
                fault = self._take(method, target.split("?", 1)[0])
                if fault and not self._fault(sock, fault, method, target, headers, body):
                    return
                if fault and fault.kind not in ("slow", "truncated"):
                    continue
                status, reason, rheaders, rbody = self._forward(method, target, headers, body)
                if fault and fault.kind == "truncated":
                    _send(sock, status, reason, rheaders, rbody[: len(rbody) // 2], length=len(rbody))
                    return
                _send(sock, status, reason, rheaders, rbody)
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                rfile.close()
                sock.close()

    def _fault(self, sock, fault: Fault, method, target, headers, body) -> bool:
        """Serve the fault; False when the connection is finished with."""
        if fault.kind == "status":
            _send(sock, fault.status, "Fault", {"Content-Type": "application/json"}, b'{"error": "injected_fault"}')
        elif fault.kind == "throttle":
            _send(
                sock,
                429,
                "Too Many Requests",
                {"Content-Type": "application/json", "Retry-After": str(fault.retry_after)},
                b'{"error": "rate_limited"}',
            )
        elif fault.kind == "malformed":
            _send(sock, 200, "OK", {"Content-Type": "application/json"}, b'{"items": [{"id": "cut-')
        elif fault.kind == "timeout":
            time.sleep(fault.seconds)
            return False
        elif fault.kind == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        elif fault.kind == "slow":
            time.sleep(fault.seconds)
        return True

    def _forward(self, method, target, headers, body):
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            fwd = {k: v for k, v in headers.items() if k.lower() not in ("connection", "keep-alive", "host")}
            fwd["Host"] = f"{self.upstream_host}:{self.upstream_port}"
            conn.request(method, target, body=body or None, headers=fwd)
            resp = conn.getresponse()
            data = resp.read()  # de-chunked by http.client; sent on with a Content-Length
            skip = ("transfer-encoding", "content-length", "connection", "keep-alive")
            rheaders = {k: v for k, v in resp.getheaders() if k.lower() not in skip}
            return resp.status, resp.reason, rheaders, data
        finally:
            conn.close()


def _read_request(rfile):
    line = rfile.readline(65537)
    if not line or not line.strip():
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        h = rfile.readline(65537)
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip()] = v.strip()
    n = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0") or 0)
    body = rfile.read(n) if n else b""
    return method, target, headers, body


def _send(sock, status: int, reason: str, headers: dict, body: bytes, length: int | None = None) -> None:
    head = [f"HTTP/1.1 {status} {reason}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append(f"Content-Length: {len(body) if length is None else length}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
