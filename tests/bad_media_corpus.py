"""A generated corpus of broken and awkward media files, one defect each, made with real
ffmpeg, so the cut stage's classification is tested on the files a crawl really meets.

`write_corpus(dir)` returns one `Case` per file: its path, the clip span a manifest would
ask for, and the ledger reason the cut stage must give it (with `cut.allow` empty).
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

SIZE = "64x48"
RATE = 8  # frames per second: small and fast, still a real H.264 stream


@dataclass(frozen=True)
class Case:
    name: str  # usable as a clip id
    file: Path
    start_s: float
    end_s: float
    reason: str | None  # None: a good clip that must be cut


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True)


def _video_in(seconds: float, size: str = SIZE, rate: int = RATE) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]


def _audio_in(seconds: float, freq: int = 440) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=16000:duration={seconds}"]


X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
AAC = ["-c:a", "aac", "-b:a", "48k"]


def good_clip(path: Path, seconds: float = 10.0, freq: int = 440, extra: tuple[str, ...] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _ffmpeg(*_video_in(seconds), *_audio_in(seconds, freq), *X264, *AAC, *extra, str(path))
    return path


def write_corpus(out_dir: str | Path, seed: int = 0) -> list[Case]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    cases: list[Case] = []

    def add(name: str, file: Path, reason: str | None, start: float = 0.0, end: float = 10.0) -> None:
        cases.append(Case(name, file, start, end, reason))

    add("good_a", good_clip(out / "good_a.mp4", freq=330), None)
    add("good_b", good_clip(out / "good_b.mp4", freq=880), None)

    corrupt = out / "corrupt.mp4"  # random bytes under a video name
    corrupt.write_bytes(bytes(rng.getrandbits(8) for _ in range(20000)))
    add("corrupt", corrupt, "not-media")

    empty = out / "empty.mp4"
    empty.write_bytes(b"")
    add("empty", empty, "empty-file")

    # moov atom at the end (ffmpeg's default): the cut-off file has no index at all
    whole = good_clip(out / ".whole.mp4")
    data = whole.read_bytes()
    (out / "truncated.mp4").write_bytes(data[: len(data) * 6 // 10])
    whole.unlink()
    add("truncated", out / "truncated.mp4", "truncated")

    # moov atom first (faststart): the header promises 10 s, the data stops at about half
    whole = good_clip(out / ".whole_fs.mp4", extra=("-movflags", "+faststart"))
    data = whole.read_bytes()
    (out / "truncated_faststart.mp4").write_bytes(data[: len(data) // 2])
    whole.unlink()
    add("truncated_faststart", out / "truncated_faststart.mp4", "truncated")

    _ffmpeg(*_audio_in(10), *AAC, str(out / "audio_only.m4a"))
    add("audio_only", out / "audio_only.m4a", "no-video")

    _ffmpeg(*_video_in(10), *X264, str(out / "video_only.mp4"))
    add("video_only", out / "video_only.mp4", "no-audio")

    add("too_short", good_clip(out / "too_short.mp4", seconds=4), "too-short")
    add("start_beyond_end", good_clip(out / "start_beyond_end.mp4"), "start-beyond-end",
        start=20.0, end=30.0)

    # variable frame rate: the second half runs at a quarter of the first half's rate
    _ffmpeg(*_video_in(10, rate=16), *_audio_in(10), "-vf", "select='lt(t,5)+not(mod(n,4))'",
            "-fps_mode", "vfr", *X264, *AAC, str(out / "vfr.mp4"))
    add("vfr", out / "vfr.mp4", "variable-frame-rate")

    _ffmpeg("-display_rotation", "90", "-i", str(good_clip(out / ".rot_src.mp4")),
            "-c", "copy", str(out / "rotated.mp4")) if _has_display_rotation() else _ffmpeg(
        "-i", str(good_clip(out / ".rot_src.mp4")), "-c", "copy", "-metadata:s:v:0", "rotate=90",
        str(out / "rotated.mp4"))
    (out / ".rot_src.mp4").unlink()
    add("rotated", out / "rotated.mp4", "rotated")

    _ffmpeg(*_video_in(10), *_audio_in(10), "-vf", "scale=65:49", "-c:v", "libx264", "-preset",
            "ultrafast", "-pix_fmt", "yuv444p", *AAC, str(out / "odd_size.mp4"))
    add("odd_size", out / "odd_size.mp4", "odd-size")

    _ffmpeg("-f", "lavfi", "-i", "color=c=blue:size=4160x2176:rate=1:duration=10",
            *_audio_in(10), *X264, *AAC, str(out / "huge.mp4"))
    add("huge", out / "huge.mp4", "huge-resolution")

    _ffmpeg(*_video_in(10), *_audio_in(10), "-c:v", "ffv1", "-pix_fmt", "gbrp", *AAC,
            str(out / "planar_rgb.mkv"))
    add("planar_rgb", out / "planar_rgb.mkv", "unusual-pixel-format")

    add("non_ascii", good_clip(out / "clïp_日本語 name.mp4", freq=550), "non-ascii-name")
    return cases


def _has_display_rotation() -> bool:
    out = subprocess.run(["ffmpeg", "-hide_banner", "-h", "full"], capture_output=True,
                         text=True, check=False).stdout
    return "-display_rotation" in out
