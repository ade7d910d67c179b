"""Redirects during a download, a documented choice (README, Download): yt-dlp follows http(s)
redirects, to any host, because YouTube serves media through redirects to its CDN; a redirect to
any other scheme (file://, ftp://) is not followed, so a server cannot make avel read a local
file. Loopback only: both servers listen on 127.0.0.1."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.demo.loopback_server import serve
from tests.bad_media_corpus import good_clip
from tests.fixtures_download import make_workdir
from tests.test_download_sources import _tiny_ave, run_download_one


class _Redirector(BaseHTTPRequestHandler):
    target = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET


def _redirecting_to(target: str) -> ThreadingHTTPServer:
    handler = type("H", (_Redirector,), {"target": target})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    good_clip(root / "clip.mp4", seconds=10.0)
    with serve(root) as server:
        yield server


def test_redirect_to_another_http_host_is_followed(tmp_path, served):
    redirector = _redirecting_to(f"{served.url}/clip.mp4")
    try:
        wd = make_workdir(tmp_path / "w", _tiny_ave(tmp_path), "http://127.0.0.1:9")
        entry = run_download_one(wd, f"http://127.0.0.1:{redirector.server_port}/clip.mp4")
    finally:
        redirector.shutdown()
    assert entry.status == "done", (entry.reason, entry.detail)
    assert (wd / entry.info["file"]).stat().st_size > 0


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1:9/clip.mp4"])
def test_redirect_to_a_non_http_scheme_is_not_followed(tmp_path, target):
    redirector = _redirecting_to(target)
    try:
        wd = make_workdir(tmp_path / "w", _tiny_ave(tmp_path), "http://127.0.0.1:9")
        entry = run_download_one(wd, f"http://127.0.0.1:{redirector.server_port}/clip.mp4")
    finally:
        redirector.shutdown()
    assert entry.status == "failed"
    raw = Path(wd) / "raw"
    leaked = [p for p in raw.rglob("*") if p.is_file()
              and b"root:" in p.read_bytes()[:4096]] if raw.is_dir() else []
    assert not leaked
