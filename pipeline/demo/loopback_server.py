"""A static file server on 127.0.0.1 for tests and the demo: yt-dlp's generic extractor
downloads from it exactly as from any web server. Never binds another address.

Faults can be queued per path to rehearse what real hosts do (see `FAULTS`). Plain
requests honour `Range` (206 Partial Content) like any real file host, which ffmpeg needs
to seek in an mp4 whose index sits at the end (yt-dlp's section downloads).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"
# "ok" serves the file normally: queue it first to let a probe request through and fault
# the next one (yt-dlp's generic extractor GETs the URL once to sniff it, then downloads).
# "reset" closes the connection without an answer.
FAULTS = ("429", "500", "503", "404", "410", "stall", "truncate", "html", "wrong-type", "ok",
          "reset")
RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _Handler(SimpleHTTPRequestHandler):
    server: LoopbackServer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _fault(self) -> str | None:
        queue = self.server.faults.get(self.path.split("?")[0])
        via = self.headers.get("Via", "")
        with self.server.lock:
            self.server.hits_via[via] = self.server.hits_via.get(via, 0) + 1
            self.server.hits[self.path.split("?")[0]] = self.server.hits.get(self.path.split("?")[0], 0) + 1
            self.server.headers_seen[self.path.split("?")[0]] = dict(self.headers.items())
            if any(name in via.split() for name in self.server.throttle_via):
                return "429"
            if queue:
                fault = queue[0]
                if not fault.endswith("*"):
                    queue.pop(0)
                return fault.rstrip("*")
        return None

    def _send_plain(self, code: int, body: bytes = b"", headers: dict | None = None,
                    content_type: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self) -> None:
        fault = self._fault()
        if fault is None or fault == "ok":
            return self._serve_file()
        if fault == "reset":
            self.close_connection = True
            return None
        if fault in ("429", "500", "503", "404", "410"):
            headers = {"Retry-After": str(self.server.retry_after)} if fault == "429" else {}
            return self._send_plain(int(fault), f"fault {fault}".encode(), headers)
        if fault == "html":
            return self._send_plain(200, b"<html><body>Sign in to confirm you're not a bot</body></html>",
                                    content_type="text/html")
        if fault == "stall":
            time.sleep(self.server.stall_s)
            return self._send_plain(503, b"stalled")
        path = Path(self.translate_path(self.path))
        data = path.read_bytes() if path.is_file() else b""
        if fault == "wrong-type":
            return self._send_plain(200, data, content_type="text/plain")
        if fault == "truncate":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data[: len(data) // 3])
                self.wfile.flush()
            self.close_connection = True
            return None
        raise ValueError(f"unknown fault {fault!r}")

    def _serve_file(self) -> None:
        """Serve the file, honouring a single `bytes=a-b` Range like a real host."""
        path = Path(self.translate_path(self.path))
        header = self.headers.get("Range")
        match = RANGE.match(header.strip()) if header and self.server.ranges else None
        if not path.is_file() or not match or not any(match.groups()):
            return super().do_GET() if self.command == "GET" else super().do_HEAD()
        size = path.stat().st_size
        first, last = match.groups()
        if first:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
        else:  # suffix range: the last N bytes
            start, end = max(0, size - int(last)), size - 1
        if start >= size or start > end:
            return self._send_plain(416, b"", {"Content-Range": f"bytes */{size}"})
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.command == "HEAD":
            return None
        with open(path, "rb") as fh:
            fh.seek(start)
            remaining = end - start + 1
            try:
                while remaining > 0:
                    chunk = fh.read(min(65536, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
        return None

    def handle(self) -> None:
        # a client that hangs up mid-body (ffmpeg seeking, a killed worker) is normal here
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def copyfile(self, source, outputfile) -> None:  # type: ignore[no-untyped-def]
        try:
            super().copyfile(source, outputfile)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = _serve
    do_HEAD = _serve


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, directory: str | Path, port: int = 0) -> None:
        super().__init__((HOST, port), partial(_Handler, directory=str(directory)))
        self.faults: dict[str, list[str]] = {}
        self.hits: dict[str, int] = {}
        self.headers_seen: dict[str, dict[str, str]] = {}  # path -> the last request's headers
        # a host that has had enough of one route: requests whose Via header (added by a
        # forward proxy) names one of these are answered 429, every time
        self.throttle_via: set[str] = set()
        self.hits_via: dict[str, int] = {}  # Via header ("" when direct) -> requests
        self.lock = threading.Lock()
        self.retry_after = 1
        self.stall_s = 30.0
        self.ranges = True  # False: ignore Range and send the whole file (python -m http.server)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def inject(self, path: str, *faults: str) -> None:
        """Queue faults for `path` (e.g. '/a.mp4'); a fault ending in '*' repeats forever."""
        for f in faults:
            if f.rstrip("*") not in FAULTS:
                raise ValueError(f"unknown fault {f!r}; known: {', '.join(FAULTS)}")
        with self.lock:
            self.faults.setdefault(path, []).extend(faults)

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@contextlib.contextmanager
def serve(directory: str | Path) -> Iterator[LoopbackServer]:
    server = LoopbackServer(directory).start()
    try:
        yield server
    finally:
        server.stop()
