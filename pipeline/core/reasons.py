"""The ledger's failure reasons: one vocabulary for the download and cut stages, with how
each stage treats a reason and what the user can do about it.

A defect of the file itself gets the same reason wherever it is found (the download's
check, the cut's probe, section or full mode), so `avel status` counts a clip once under
one name. The README's failure table is this dict, and a test holds them equal.
"""

from __future__ import annotations

from dataclasses import dataclass

PERMANENT, TRANSIENT, THROTTLED = "permanent", "transient", "throttled"
ENVIRONMENT = "environment"  # this machine cannot download: the stage stops, clips stay pending


# conditions of a clip a user may choose to accept (`cut.allow`, checked by the config);
# every other reason is always what it says
ALLOWABLE = ("rotated", "odd-size", "unusual-pixel-format", "non-ascii-name",
             "variable-frame-rate", "huge-resolution")


@dataclass(frozen=True)
class Reason:
    download: str | None  # how the download stage treats it (None: never given there)
    cut: str | None  # how the cut stage treats it
    advice: str  # what the user can do


_HOST = "nothing; the host refuses this video"
REASONS: dict[str, Reason] = {
    # this machine's setup (download only): the stage stops at once, exit code 6, and the
    # clip stays pending; `avel doctor` shows the runtime and solver found
    "js-runtime-missing": Reason(ENVIRONMENT, None, "YouTube needs a JS runtime: `pip "
                                                    "install -c constraints.txt deno` (or "
                                                    "deno >= 2.3 / node >= 22 on PATH); rerun"),
    "js-challenge-failed": Reason(ENVIRONMENT, None, "install yt-dlp-ejs (`yt-dlp[default]`) "
                                                     "matching yt-dlp, update both; rerun"),
    "images-only": Reason(ENVIRONMENT, None, "YouTube offered only storyboards: a JS runtime "
                                             "and yt-dlp-ejs are missing or too old; rerun"),
    "po-token": Reason(ENVIRONMENT, None, "YouTube wants a PO token: a `cookies_file`, a "
                                          "PO-token provider plugin, or update yt-dlp; rerun"),
    # the host or the network (download only)
    "bot-check": Reason(THROTTLED, None, "all workers pause; add `cookies_file` or slow down"),
    "http-429": Reason(THROTTLED, None, "all workers pause; lower `requests_per_s`"),
    "private": Reason(PERMANENT, None, _HOST),
    "copyright": Reason(PERMANENT, None, _HOST),
    "age-gated": Reason(PERMANENT, None, "a `cookies_file` of a signed-in account"),
    "removed": Reason(PERMANENT, None, _HOST),
    "login-required": Reason(PERMANENT, None, "a `cookies_file` of an account with access"),
    "geo-blocked": Reason(PERMANENT, None, "a `proxy` in an allowed country"),
    "no-such-id": Reason(PERMANENT, None, "fix the id in the dataset list"),
    "unsupported-url": Reason(PERMANENT, None, "fix the URL (or `url_template`)"),
    "no-format": Reason(PERMANENT, None, "widen `download.format` (after a setup warning "
                                         "it is one of the environment reasons above)"),
    "unavailable": Reason(PERMANENT, None, _HOST),
    "http-404": Reason(PERMANENT, None, _HOST),
    "http-410": Reason(PERMANENT, None, _HOST),
    "http-5xx": Reason(TRANSIENT, None, "retried with backoff; rerun later"),
    "http-403": Reason(TRANSIENT, None, "retried (YouTube: an expired signed URL)"),
    "http-other": Reason(TRANSIENT, None, "retried; `http-NNN` names the status"),
    "incomplete-transfer": Reason(TRANSIENT, None, "retried (the connection ended early)"),
    "timeout": Reason(TRANSIENT, TRANSIENT, "retried; raise `socket_timeout_s` / `cut.timeout_s`"),
    "connection": Reason(TRANSIENT, None, "retried; check the network or `proxy`"),
    "ffmpeg-failed": Reason(TRANSIENT, None, "yt-dlp's ffmpeg failed on a whole-video "
                                             "stream; section downloads fetch the whole video"),
    "no-output": Reason(TRANSIENT, None, "retried (yt-dlp wrote no file)"),
    "unknown": Reason(TRANSIENT, None, "retried; the ledger's detail has the message"),
    "bad-source": Reason(PERMANENT, None, "fix the source in the dataset list"),
    # the file (same name in download and cut)
    "missing-file": Reason(PERMANENT, TRANSIENT, "add the file (download: then "
                                                 "`--retry-failed missing-file`)"),
    "empty-file": Reason(PERMANENT, PERMANENT, "the source is empty; replace it"),
    "not-media": Reason(PERMANENT, PERMANENT, "not audio/video (an HTML page, text, an "
                                              "image); check the URL or file"),
    "no-streams": Reason(PERMANENT, PERMANENT, "a container without audio or video"),
    "truncated": Reason(PERMANENT, PERMANENT, "the file ends early (an mp4 cut off, fewer "
                                              "samples/frames than its header says); "
                                              "re-fetch it"),
    "probe-timeout": Reason(PERMANENT, TRANSIENT, "ffprobe hung on the file; check it"),
    # the clip (cut only); the first six can be accepted with `cut.allow`
    "rotated": Reason(None, PERMANENT, "allowed by default (cut as decoded, noted)"),
    "odd-size": Reason(None, PERMANENT, "add to `cut.allow` to cut anyway"),
    "unusual-pixel-format": Reason(None, PERMANENT, "allowed by default (noted)"),
    "non-ascii-name": Reason(None, PERMANENT, "allowed by default (noted)"),
    "variable-frame-rate": Reason(None, PERMANENT, "add to `cut.allow`: frame times are "
                                                   "the real presentation times"),
    "huge-resolution": Reason(None, PERMANENT, "raise `cut.max_pixels` or allow it"),
    "no-video": Reason(None, PERMANENT, "audio only: nothing to do"),
    "no-audio": Reason(None, PERMANENT, "video only: nothing to do"),
    "start-beyond-end": Reason(None, PERMANENT, "the clip lies past the end of the video; "
                                                "check start_s"),
    "too-short": Reason(None, PERMANENT, "the video ends before the clip does; raise "
                                         "`cut.max_pad_s` to pad with silence"),
    "decode-error": Reason(None, PERMANENT, "ffmpeg could not decode the clip; the detail "
                                            "has its message"),
    "ffmpeg-missing": Reason(None, TRANSIENT, "install ffmpeg, rerun"),
    "internal-error": Reason(TRANSIENT, TRANSIENT, "a bug: please report the detail"),
    "download-failed:<reason>": Reason(None, TRANSIENT, "the download failed for good with "
                                                        "<reason>; `avel download "
                                                        "--retry-failed`, then rerun the cut"),
}


def kind(reason: str, stage: str) -> str:
    """How `stage` ('download' or 'cut') treats `reason`; unknown reasons are transient."""
    if reason.startswith("download-failed:"):
        reason = "download-failed:<reason>"
    if reason.startswith("http-") and reason not in REASONS:
        reason = "http-other"
    entry = REASONS.get(reason)
    value = getattr(entry, stage, None) if entry else None
    return value or TRANSIENT


def markdown_table() -> str:
    """The README's table."""
    rows = ["| reason | download | cut | what you can do |", "| --- | --- | --- | --- |"]
    rows += [f"| `{name}` | {r.download or '–'} | {r.cut or '–'} | {r.advice} |"
             for name, r in REASONS.items()]
    return "\n".join(rows)
