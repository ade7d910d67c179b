"""Failure classes: yt-dlp's real exception objects and YouTube's own wording → kind + reason."""

from __future__ import annotations

import io

import pytest
from yt_dlp.networking import Response
from yt_dlp.networking.exceptions import HTTPError, IncompleteRead, TransportError
from yt_dlp.utils import DownloadError, ExtractorError, UnsupportedError

from pipeline.download.failures import (
    PERMANENT,
    THROTTLED,
    TRANSIENT,
    classify,
    classify_http,
    classify_message,
)


def _http_error(status: int, headers: dict[str, str] | None = None) -> HTTPError:
    return HTTPError(Response(io.BytesIO(b""), "http://127.0.0.1/x.mp4", headers or {}, status))


def _as_ytdlp_raises(inner: BaseException) -> DownloadError:
    """Wrap `inner` the way YoutubeDL.extract_info reports it: an ExtractorError caused by
    the network error, inside a DownloadError carrying exc_info."""
    try:
        try:
            raise inner
        except Exception as net:
            raise ExtractorError("Unable to download webpage", cause=net, expected=True) from net
    except ExtractorError as exc:
        return DownloadError(f"ERROR: {exc}", (type(exc), exc, None))


@pytest.mark.parametrize("status, kind, reason", [
    (404, PERMANENT, "http-404"), (410, PERMANENT, "http-410"),
    (429, THROTTLED, "http-429"), (500, TRANSIENT, "http-5xx"), (503, TRANSIENT, "http-5xx"),
    (403, TRANSIENT, "http-403"),
])
def test_http_status_wrapped_by_ytdlp_is_classified_by_its_code(status, kind, reason):
    failure = classify(_as_ytdlp_raises(_http_error(status)))
    assert (failure.kind, failure.reason) == (kind, reason)


def test_retry_after_header_is_read_from_the_429_response():
    failure = classify(_as_ytdlp_raises(_http_error(429, {"Retry-After": "7"})))
    assert failure.kind == THROTTLED and failure.retry_after_s == 7.0


def test_retry_after_as_http_date_is_ignored_rather_than_misread():
    failure = classify(_as_ytdlp_raises(_http_error(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})))
    assert failure.retry_after_s is None


def test_timeout_and_truncation_are_transient():
    timeout = TransportError(msg="Read timed out. (read timeout=1.0)", cause=TimeoutError())
    assert classify(_as_ytdlp_raises(timeout)).reason == "timeout"
    assert classify(_as_ytdlp_raises(IncompleteRead(100, 300))).reason == "incomplete-transfer"
    # the http downloader reports a short body only as text
    assert classify(DownloadError("ERROR: \r[download] Got error: 83392 bytes read, 166785 more expected")).reason == "incomplete-transfer"
    reset = TransportError(cause=ConnectionResetError(104, "Connection reset by peer"))
    assert classify(_as_ytdlp_raises(reset)) .kind == TRANSIENT


# YouTube's playability texts as yt-dlp passes them on (see yt_dlp/extractor/youtube).
@pytest.mark.parametrize("message, kind, reason", [
    ("[youtube] abc: Sign in to confirm you\u2019re not a bot. Use --cookies-from-browser or --cookies for the authentication.", THROTTLED, "bot-check"),
    ("[youtube] abc: Private video. Sign in if you've been granted access to this video", PERMANENT, "private"),
    ("[youtube] abc: Video unavailable. This video has been removed by the uploader", PERMANENT, "removed"),
    ("[youtube] abc: Video unavailable. This video contains content from SME, who has blocked it on copyright grounds", PERMANENT, "copyright"),
    ("[youtube] abc: Sign in to confirm your age. This video may be inappropriate for some users.", PERMANENT, "age-gated"),
    ("[youtube] abc: Join this channel to get access to members-only content like this video, and other exclusive perks.", PERMANENT, "login-required"),
    ("[youtube] abc: Video unavailable", PERMANENT, "unavailable"),
    ("[youtube] abc: Video unavailable. This video is not available", PERMANENT, "unavailable"),
    ("[youtube:truncated_id] abc: Incomplete YouTube ID abc. URL https://www.youtube.com/watch?v=abc looks truncated.", PERMANENT, "no-such-id"),
    ("[youtube] abc: The uploader has not made this video available in your country", PERMANENT, "geo-blocked"),
    ("ERROR: ffmpeg exited with code 1", TRANSIENT, "ffmpeg-failed"),
    ("something nobody has seen before", TRANSIENT, "unknown"),
])
def test_youtube_messages(message, kind, reason):
    failure = classify(DownloadError(f"ERROR: {message}"))
    assert (failure.kind, failure.reason) == (kind, reason), failure


def test_generic_extractor_on_an_html_page_is_unsupported_url():
    assert classify(_as_ytdlp_raises(UnsupportedError("http://127.0.0.1/a.mp4"))).reason == "unsupported-url"


def test_bot_check_wins_over_login_wording():
    # "Sign in to ..." would read as login-gated; the bot check is throttling, not the clip
    assert classify_message("Sign in to confirm you're not a bot").kind == THROTTLED


def test_http_codes_without_an_exception():
    assert classify_http(429, 3.0).retry_after_s == 3.0
    assert classify_http(410).permanent and not classify_http(502).permanent
