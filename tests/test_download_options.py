"""yt-dlp options come from the config alone, and reach the host."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.core.config import DownloadConfig, load_config
from pipeline.core.errors import InputError
from pipeline.core.sharding import Shard
from pipeline.demo.loopback_server import serve
from pipeline.download.stage import run_download
from pipeline.download.ytdlp_options import build_options
from tests.fixtures_download import ledger_entries, make_workdir, synthetic_data


def test_config_settings_map_to_ytdlp_option_names(tmp_path):
    cfg = DownloadConfig(format="b", cookies_file="/c.txt", proxy="socks5://127.0.0.1:9050",
                         rate_limit_bytes=123456, sleep_s=1.5, user_agent="avel-test/1",
                         socket_timeout_s=7.0)
    opts = build_options(cfg, tmp_path)
    assert (opts["format"], opts["cookiefile"], opts["proxy"]) == ("b", "/c.txt",
                                                                   "socks5://127.0.0.1:9050")
    assert (opts["ratelimit"], opts["sleep_interval_requests"], opts["sleep_interval"]) == (
        123456, 1.5, 1.5)
    assert opts["http_headers"] == {"User-Agent": "avel-test/1"}
    assert opts["socket_timeout"] == 7.0
    assert opts["retries"] == 0  # retries are the stage's, with backoff and a ledger


def test_unset_settings_leave_ytdlp_defaults(tmp_path):
    opts = build_options(DownloadConfig(), tmp_path)
    assert not {"cookiefile", "proxy", "ratelimit", "sleep_interval_requests", "sleep_interval",
                "http_headers"} & set(opts)


def test_user_agent_reaches_the_host(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp("ua")
    with serve(data / "videos") as server:
        wd = make_workdir(root / "w", data, server.url, user_agent="avel-test/1")
        pd.read_parquet(wd / "manifest.parquet").head(1).to_parquet(wd / "manifest.parquet")
        run_download(wd, load_config(wd), Shard(0, 1), progress=False)
        (path, headers), = server.headers_seen.items()
    assert headers["User-Agent"] == "avel-test/1"
    assert next(iter(ledger_entries(wd).values())).status == "done"


def test_a_missing_cookies_file_is_a_config_error_before_any_download(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp("cookies")
    wd = make_workdir(root / "w", data, "http://127.0.0.1:9", cookies_file="cookies.txt")
    with pytest.raises(InputError, match="download.cookies_file"):
        run_download(wd, load_config(wd), Shard(0, 1), progress=False)
    assert not (wd / "state").exists()
