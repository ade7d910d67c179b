"""Why a download failed, decided in one place: yt-dlp exceptions, HTTP codes, messages and
the warnings yt-dlp gave before failing become a `Failure` with a class (permanent /
transient / throttled / environment) and a stable reason key.

The class decides what the download stage does next:
- permanent: recorded and never retried unless the user asks (`--retry-failed`);
- transient: retried with backoff while the clip has attempts left;
- throttled: the host is pushing back on *us*, not on the clip, so every worker pauses;
- environment: this machine's yt-dlp cannot work (no JavaScript runtime for YouTube's
  player challenges, a challenge it could not solve, a PO token it lacks), so the stage
  stops at once and the clip stays pending: the same clip works once the setup is fixed.

YouTube words an environment problem only as a *warning* ("No supported JavaScript runtime
could be found", "n challenge solving failed", "Only images are available") followed by an
error that blames the clip ("Requested format is not available"). So `classify` also reads
the warnings yt-dlp gave during the attempt: such a warning turns an error that could be its
consequence (ENVIRONMENT_MASKABLE) into the environment failure it names.

Reason keys are what `avel status` counts and `--retry-failed REASON` selects, so they are
short, lower-case and never contain free text. yt-dlp reports most failures only as
message text (YouTube's playability reasons), hence the ordered message rules below.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

PERMANENT, TRANSIENT, THROTTLED = "permanent", "transient", "throttled"
ENVIRONMENT = "environment"


@dataclass(frozen=True)
class Failure:
    kind: str  # PERMANENT | TRANSIENT | THROTTLED | ENVIRONMENT
    reason: str  # stable ledger key
    detail: str = ""  # the original message, for the ledger's detail column
    retry_after_s: float | None = None  # a host's Retry-After, when it sent one

    @property
    def permanent(self) -> bool:
        return self.kind == PERMANENT


# (pattern, kind, reason), tried in order on the lower-cased message; first match wins.
# The environment comes first (its warnings end in "some formats may be missing", which no
# clip rule may claim), then throttling: YouTube words a bot check as "sign in", which must
# not read as a login-gated video.
MESSAGE_RULES: list[tuple[str, str, str]] = [
    (r"no supported javascript runtime|js runtime.{0,40}(not found|unavailable)|"
     r"javascript runtime.{0,40}(could not|couldn.t) be found", ENVIRONMENT,
     "js-runtime-missing"),
    (r"(n|signature|sig) challenge solving failed|signature solving failed|"
     r"challenge solver.{0,60}(not installed|missing|unavailable)|unable to (solve|extract) "
     r"(the )?(n|nsig|sig|signature)\b", ENVIRONMENT, "js-challenge-failed"),
    (r"^(?!.*drm protected).*only images are available", ENVIRONMENT, "images-only"),
    (r"po token which was not provided|require[sd]? a (gvs |player )?po token|"
     r"po token required", ENVIRONMENT, "po-token"),
    (r"not a bot|confirm you.re not a robot|unusual traffic", THROTTLED, "bot-check"),
    (r"http error 429|too many requests|rate.?limit", THROTTLED, "http-429"),
    (r"private video|video is private", PERMANENT, "private"),
    (r"copyright", PERMANENT, "copyright"),
    (r"confirm your age|age.restricted|inappropriate for some users|age.gated", PERMANENT,
     "age-gated"),
    (r"has been removed|been terminated|no longer available|account .* closed|"
     r"removed by the uploader|violat(ing|ion of) youtube", PERMANENT, "removed"),
    (r"members.only|join this channel|requires payment|only available for registered users|"
     r"sign in to|login required|use --cookies|premium", PERMANENT, "login-required"),
    (r"available (from|in) your (location|country)|geo.?restrict", PERMANENT, "geo-blocked"),
    (r"incomplete youtube id|is not a valid url|invalid video id|no video id", PERMANENT,
     "no-such-id"),
    (r"unsupported url", PERMANENT, "unsupported-url"),
    (r"requested format is not available|no video formats found", PERMANENT, "no-format"),
    (r"video unavailable|is unavailable|not available|does not exist|premieres in|"
     r"live event will begin", PERMANENT, "unavailable"),
    (r"http error 404", PERMANENT, "http-404"),
    (r"http error 410", PERMANENT, "http-410"),
    (r"http error 5\d\d", TRANSIENT, "http-5xx"),
    (r"http error 403", TRANSIENT, "http-403"),  # YouTube: an expired signed URL, not the clip
    (r"bytes read.*more expected|content too short|incomplete ?read",
     TRANSIENT, "incomplete-transfer"),
    # a complete answer of zero bytes: the host's file is empty (the name the probe gives it)
    (r"did not get any data", PERMANENT, "empty-file"),
    (r"timed? ?out", TRANSIENT, "timeout"),
    (r"connection (reset|refused|aborted)|remote ?disconnected|broken pipe|"
     r"temporary failure in name resolution|network is unreachable|connection error",
     TRANSIENT, "connection"),
    (r"ffmpeg exited with code", TRANSIENT, "ffmpeg-failed"),
]
_COMPILED = [(re.compile(p), kind, reason) for p, kind, reason in MESSAGE_RULES]
# errors that a preceding environment warning explains: no playable format left, the media
# URL refused (an unsolved n challenge), or a message we cannot place
ENVIRONMENT_MASKABLE = {"no-format", "http-403", "unknown", "no-output"}
WARNED = " [yt-dlp warned: "  # where a detail's warnings begin
_WARNINGS_IN_DETAIL = 3  # distinct warnings kept in the ledger's detail, each shortened
_WARNING_CHARS = 300


def classify_http(status: int, retry_after_s: float | None = None, detail: str = "") -> Failure:
    """An HTTP status code on its own: 404/410 permanent, 429 throttled, 5xx transient."""
    if status == 429:
        return Failure(THROTTLED, "http-429", detail, retry_after_s)
    if status in (404, 410):
        return Failure(PERMANENT, f"http-{status}", detail)
    if 500 <= status < 600:
        return Failure(TRANSIENT, "http-5xx", detail, retry_after_s)
    if status == 403:
        return Failure(TRANSIENT, "http-403", detail)
    return Failure(TRANSIENT, f"http-{status}", detail)


def classify_message(message: str) -> Failure:
    """A yt-dlp error message; anything not recognised is transient 'unknown' (retried)."""
    text = message.lower()
    for pattern, kind, reason in _COMPILED:
        if pattern.search(text):
            return Failure(kind, reason, message.strip())
    return Failure(TRANSIENT, "unknown", message.strip())


def classify(exc: BaseException, warnings: Sequence[str] = ()) -> Failure:
    """Classify any exception a yt-dlp download raised, given the warnings yt-dlp gave
    during the same attempt (they go into the detail either way).

    An environment or throttling warning wins over an error it explains
    (ENVIRONMENT_MASKABLE): "Requested format is not available" after "No supported
    JavaScript runtime could be found" is the machine's fault, not the clip's.
    """
    failure = _classify_exception(exc)
    if not warnings:
        return failure
    detail = with_warnings(failure.detail, warnings)
    cause = classify_warnings(warnings)
    if cause is not None and failure.kind not in (ENVIRONMENT, THROTTLED) \
            and failure.reason in ENVIRONMENT_MASKABLE:
        return Failure(cause.kind, cause.reason, detail, failure.retry_after_s)
    return Failure(failure.kind, failure.reason, detail, failure.retry_after_s)


def classify_warnings(warnings: Sequence[str]) -> Failure | None:
    """The first environment or throttling condition yt-dlp's warnings name, or None."""
    for warning in warnings:
        failure = classify_message(warning)
        if failure.kind in (ENVIRONMENT, THROTTLED):
            return failure
    return None


def with_warnings(message: str, warnings: Sequence[str]) -> str:
    """`message` followed by yt-dlp's distinct warnings (shortened), for the ledger's detail."""
    distinct = list(dict.fromkeys(w.strip() for w in warnings if w.strip()))
    if not distinct:
        return message
    shown = [w if len(w) <= _WARNING_CHARS else w[:_WARNING_CHARS - 1] + "…"
             for w in distinct[:_WARNINGS_IN_DETAIL]]
    more = len(distinct) - len(shown)
    tail = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    return f"{message}{WARNED}{tail}]"


def _classify_exception(exc: BaseException) -> Failure:
    """Classify any exception a yt-dlp download raised, on its own.

    yt-dlp wraps the real cause: DownloadError.exc_info holds an ExtractorError whose
    `cause` / exc_info holds the networking error (HTTPError with its status, or a
    TransportError for timeouts and resets). The innermost HTTP status wins over text,
    because a status is unambiguous and text is not.
    """
    message = str(exc)
    for inner in _chain(exc):
        status = getattr(inner, "status", None)
        if type(inner).__name__ == "HTTPError" and isinstance(status, int):
            return classify_http(status, _retry_after(inner), message)
    for inner in _chain(exc):
        name = type(inner).__name__
        if name in ("IncompleteRead", "ContentTooShortError"):
            return Failure(TRANSIENT, "incomplete-transfer", message)
        if isinstance(inner, TimeoutError) or "timeout" in name.lower():
            return Failure(TRANSIENT, "timeout", message)
        if isinstance(inner, (ConnectionError,)):
            return Failure(TRANSIENT, "connection", message)
    return classify_message(message)


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and everything it wraps (exc_info, cause, __cause__, __context__), once each."""
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        info = getattr(item, "exc_info", None)
        if isinstance(info, tuple) and len(info) > 1:
            todo.append(info[1])
        todo += [getattr(item, "cause", None), item.__cause__, item.__context__]
    return seen


def _retry_after(http_error: BaseException) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form only; dates are ignored)."""
    response = getattr(http_error, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
