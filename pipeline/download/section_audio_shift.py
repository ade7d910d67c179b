"""How early the audio timestamps of a section file are, when an old Matroska muxer wrote it.

libavformat up to 59.30.100 (FFmpeg 5.1 and older) wrote an Opus track's pre-skip into
Matroska as a CodecDelay element but stored the blocks' timestamps without adding it, while
every FFmpeg reader subtracts CodecDelay from them. A stream copy through such a muxer thus
moves the audio earlier than the video by the codec delay rounded to the track's clock (6.5 ms
of Opus pre-skip, stored as 7 ms at Matroska's 1 ms ticks). Later muxers add the delay
(measured with yt-dlp's section copy, `-ss` before one WebM input: FFmpeg 5.1, Lavf59.27.100,
audio 7 ms early against the video; FFmpeg 9.0, Lavf63.1.102, 0 ms).

Only a copy of one input moves the audio against the full file: yt-dlp's merge of separate
video and audio formats offsets each input by its own start time, in full mode and in section
mode alike, so the two agree (measured: both +14 ms against the inputs). The fetcher therefore
asks for the shift only for a section cut from a single format, and the cut reads the audio
that much earlier (`audio_shift_s` in the download ledger).

The file's header is read directly (EBML, the Info and Tracks elements before the first
Cluster): ffprobe before 6.x shows neither CodecDelay nor the muxing application.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

# The last libavformat whose Matroska muxer did not add CodecDelay to block timestamps.
LAST_SHIFTING_LAVF = (59, 30, 100)
HEADER_LIMIT = 4 << 20  # Info and Tracks precede the clusters; never read more than this

EBML_MAGIC = 0x1A45DFA3
SEGMENT, INFO, TRACKS, TRACK_ENTRY, CLUSTER = 0x18538067, 0x1549A966, 0x1654AE6B, 0xAE, 0x1F43B675
TIMESTAMP_SCALE, MUXING_APP, TRACK_TYPE, CODEC_DELAY = 0x2AD7B1, 0x4D80, 0x83, 0x56AA
AUDIO_TRACK = 2


@dataclass(frozen=True)
class MatroskaHeader:
    muxing_app: str  # e.g. "Lavf59.27.100"; "" when absent
    timestamp_scale_ns: int  # nanoseconds per block timestamp tick
    audio_codec_delay_ns: int  # CodecDelay of the first audio track, 0 when none


def read_header(path: str | Path) -> MatroskaHeader | None:
    """The muxing application, clock and first audio track's CodecDelay of a Matroska/WebM
    file; None for anything else (or a header this reader cannot walk)."""
    with open(path, "rb") as fh:
        data = fh.read(HEADER_LIMIT)
    try:
        element, _, body, end = _element(data, 0)
        if element != EBML_MAGIC:
            return None
        element, _, body, end = _element(data, end)
        if element != SEGMENT:
            return None
        found = MatroskaHeader("", 1_000_000, 0)  # Matroska's default clock: 1 ms ticks
        return _walk_segment(data, body, end, found)
    except IndexError:  # a header cut off inside an element: treat as unreadable
        return None


def audio_shift_s(path: str | Path) -> float:
    """Seconds by which the audio timestamps of `path` (a stream copy of one input) are
    early against its video: the codec delay in the track's ticks when an old muxer wrote
    it, else 0."""
    header = read_header(path)
    if header is None or not header.audio_codec_delay_ns:
        return 0.0
    version = lavf_version(header.muxing_app)
    if version is None or version > LAST_SHIFTING_LAVF:
        return 0.0
    scale = header.timestamp_scale_ns
    ticks = (header.audio_codec_delay_ns + scale // 2) // scale  # FFmpeg rounds half up here
    return ticks * scale / 1e9


def lavf_version(app: str) -> tuple[int, int, int] | None:
    match = re.fullmatch(r"Lavf(\d+)\.(\d+)\.(\d+)", app.strip())
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def _walk_segment(data: bytes, pos: int, end: int, found: MatroskaHeader) -> MatroskaHeader:
    while pos < end:
        element, _, body, stop = _element(data, pos)
        if element == CLUSTER:
            break
        if element == INFO:
            found = _walk_info(data, body, stop, found)
        elif element == TRACKS:
            found = replace(found, audio_codec_delay_ns=_audio_codec_delay(data, body, stop))
        pos = stop
    return found


def _walk_info(data: bytes, pos: int, end: int, found: MatroskaHeader) -> MatroskaHeader:
    while pos < end:
        element, _, body, stop = _element(data, pos)
        if element == TIMESTAMP_SCALE:
            found = replace(found, timestamp_scale_ns=int.from_bytes(data[body:stop], "big")
                            or 1_000_000)
        elif element == MUXING_APP:
            found = replace(found,
                            muxing_app=data[body:stop].decode("utf-8", "replace").rstrip("\0"))
        pos = stop
    return found


def _audio_codec_delay(data: bytes, pos: int, end: int) -> int:
    """CodecDelay (ns) of the first audio TrackEntry, 0 when it has none."""
    while pos < end:
        element, _, body, stop = _element(data, pos)
        if element == TRACK_ENTRY:
            fields: dict[int, int] = {}
            inner = body
            while inner < stop:
                sub, _, sub_body, sub_stop = _element(data, inner)
                if sub in (TRACK_TYPE, CODEC_DELAY):
                    fields[sub] = int.from_bytes(data[sub_body:sub_stop], "big")
                inner = sub_stop
            if fields.get(TRACK_TYPE) == AUDIO_TRACK:
                return fields.get(CODEC_DELAY, 0)
        pos = stop
    return 0


def _element(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """(id, size, start of body, end of body) of the element at `pos`; an unknown size
    (all ones, a live stream's Segment) runs to the end of what was read."""
    element, pos = _vint(data, pos, keep_marker=True)
    start = pos
    size, pos = _vint(data, pos, keep_marker=False)
    width = pos - start
    if size == (1 << (7 * width)) - 1:
        return element, len(data) - pos, pos, len(data)
    if pos + size > len(data) and element not in (SEGMENT, CLUSTER):
        raise IndexError("element runs past the bytes read")
    return element, size, pos, min(pos + size, len(data))


def _vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int]:
    first = data[pos]
    if first == 0:
        raise IndexError("invalid EBML variable-size integer")
    width = 9 - first.bit_length()
    value = first if keep_marker else first & ((1 << (8 - width)) - 1)
    for byte in data[pos + 1:pos + width]:
        value = (value << 8) | byte
    if pos + width > len(data):
        raise IndexError("EBML integer runs past the bytes read")
    return value, pos + width
