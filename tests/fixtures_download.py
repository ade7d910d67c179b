"""Fixtures for the download tests: generated clips, a loopback server, a work directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.core.config import load_config
from pipeline.datasets.manifest import build_manifest

# Settings that keep test runs quick: short timeouts and backoffs, no request pacing.
FAST = {"socket_timeout_s": 1.0, "backoff_base_s": 0.05, "backoff_max_s": 0.5,
        "requests_per_s": 0.0, "workers": 2, "max_attempts": 3, "throttle_limit": 4}


def make_workdir(root: Path, data: Path, url: str | None, *, source: str = "url",
                 **download: Any) -> Path:
    """A work directory over the synthetic AVE-format `data`, served from `url` (or local),
    with its manifest already built."""
    root.mkdir(parents=True, exist_ok=True)
    dataset: dict[str, Any] = {"name": "ave", "source": source,
                               "files": {"annotations": str(data / "Annotations.txt"),
                                         "orders_dir": str(data)}}
    if source == "local":
        dataset["videos_dir"] = str(data / "videos")
    else:
        dataset["url_template"] = f"{url}/{{video_id}}.mp4"
    config = {"dataset": dataset, "download": {"mode": "full", **FAST, **download}}
    (root / "avel.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    build_manifest(root, load_config(root))
    return root


def synthetic_data(tmp_path_factory, n_clips: int = 10) -> Path:  # type: ignore[no-untyped-def]
    """Generated AVE-format clips shared by every download test of the session (the
    generator skips clips already written, so calling this again is cheap)."""
    from pipeline.demo.synthetic import write_dataset

    data = tmp_path_factory.getbasetemp() / "download-synthetic"
    write_dataset(data, n_clips=n_clips, n_classes=2, seed=3)
    return data


def served_copy(data: Path, root: Path) -> Path:
    """A copy of the clips to serve, so a test may spoil one file without touching `data`."""
    import shutil

    target = root / "served"
    shutil.copytree(data / "videos", target)
    return target


def ledger_entries(workdir: Path) -> dict:
    from pipeline.core.ledger import Ledger
    from pipeline.core.sharding import Shard
    from pipeline.core.workdir import Workdir

    with Ledger(Workdir(workdir).ledger("download", Shard(0, 1))) as ledger:
        return {e.clip_id: e for e in ledger.entries()}


class ForwardProxy:
    """A real HTTP forward proxy on 127.0.0.1 (one route to the host, as a proxy of an
    identity in `download.identities` is): it takes yt-dlp's absolute-URI requests, sends
    them on to the loopback server with `Via: 1.1 <name>` added, as forward proxies do, and
    streams the answer back. It forwards to 127.0.0.1 only; anything else is refused (403)."""

    HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
                  "te", "trailers", "transfer-encoding", "upgrade"}

    def __init__(self, name: str) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        proxy = self
        self.name = name
        self.answers: dict[int, int] = {}  # status code -> requests forwarded
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _forward(self) -> None:
                target = urlsplit(self.path)
                if target.scheme != "http" or target.hostname != "127.0.0.1":
                    self.send_error(403, "this proxy forwards to 127.0.0.1 only")
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in proxy.HOP_BY_HOP}
                headers["Via"] = f"1.1 {proxy.name}"
                conn = http.client.HTTPConnection("127.0.0.1", target.port or 80, timeout=30)
                try:
                    conn.request(self.command, target.path + (f"?{target.query}"
                                                              if target.query else ""),
                                 headers=headers)
                    answer = conn.getresponse()
                    with proxy.lock:
                        proxy.answers[answer.status] = proxy.answers.get(answer.status, 0) + 1
                    self.send_response(answer.status, answer.reason)
                    for k, v in answer.getheaders():
                        if k.lower() not in proxy.HOP_BY_HOP:
                            self.send_header(k, v)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    while self.command != "HEAD":
                        chunk = answer.read(65536)
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    conn.close()
                    self.close_connection = True

            do_GET = _forward
            do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
