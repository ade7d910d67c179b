"""A format zoo for alignment tests: small real-world-shaped videos made with ffmpeg, each
frame carrying its own number as a bar code and the audio a seeded noise track.

Why a bar code and not `drawtext`: fonts are not everywhere, and a 4 x 4 grid of 40 x 30
black/white blocks survives any codec and JPEG exactly, so a decoded frame says which source
frame it is. Why noise: its autocorrelation is one sharp peak, so the lag between two cuts of
the same audio is found to the sample by cross-correlation, even through lossy codecs.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (160, 120)
GRID = 4  # GRID x GRID blocks: frame numbers up to 2**16 - 1


@dataclass(frozen=True)
class ZooEntry:
    name: str  # file stem
    ext: str
    fps: float
    gop_s: float  # keyframe interval
    video: list[str]  # ffmpeg output codec options
    audio: list[str]
    sample_rate: int = 48000
    audio_delay_s: float = 0.0  # audio starts this late
    start_offset_s: float = 0.0  # container start time
    vfr: bool = False  # 25 fps for 3 s, then 10 fps (a frame-rate change mid-stream)
    extra: list[str] = field(default_factory=list)


ZOO = [
    ZooEntry("mp4-h264-aac", ".mp4", 25, 2, ["-c:v", "libx264", "-preset", "ultrafast"],
             ["-c:a", "aac"]),
    ZooEntry("webm-vp9-opus", ".webm", 25, 5,
             ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"],
             ["-c:a", "libopus"]),
    ZooEntry("mkv-h264-flac-longgop", ".mkv", 25, 10, ["-c:v", "libx264", "-preset", "ultrafast"],
             ["-c:a", "flac"]),
    ZooEntry("avi-mpeg4-mp3", ".avi", 25, 5, ["-c:v", "mpeg4", "-q:v", "3"],
             ["-c:a", "libmp3lame"], sample_rate=44100),
    ZooEntry("mp4-vfr", ".mp4", 25, 5, ["-c:v", "libx264", "-preset", "ultrafast"],
             ["-c:a", "aac"], vfr=True),
    ZooEntry("mkv-ntsc-start3.7", ".mkv", 30000 / 1001, 5,
             ["-c:v", "libx264", "-preset", "ultrafast"], ["-c:a", "aac"], start_offset_s=3.7),
    # streams starting at 3.7 s with AAC priming: the audio track starts at 3.7 s - 1024/48000
    # s, between two milliseconds, where an MP4 edit list in 1 ms ticks cannot put it
    ZooEntry("mp4-h264-aac-start3.7", ".mp4", 25, 2, ["-c:v", "libx264", "-preset", "ultrafast"],
             ["-c:a", "aac"], start_offset_s=3.7),
    ZooEntry("mp4-late-8k-audio", ".mp4", 25, 5, ["-c:v", "libx264", "-preset", "ultrafast"],
             ["-c:a", "aac"], sample_rate=8000, audio_delay_s=1.5),
]


def write(entry: ZooEntry, directory: Path, duration_s: float = 6.0) -> Path:
    """Write one zoo file (skipped when it exists); returns its path."""
    path = directory / f"{entry.name}{entry.ext}"
    if path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    rate = "25" if entry.vfr else repr(entry.fps)
    code = (f"nullsrc=size={GRID}x{GRID}:rate={rate}:duration={duration_s},format=gray,"
            f"geq=lum='255*mod(floor(N/pow(2\\,X+{GRID}*Y))\\,2)',"
            f"scale={SIZE[0]}:{SIZE[1]}:flags=neighbor,format=yuv420p")
    if entry.vfr:  # frames 0..74 at 25 fps (0-3 s), then every frame 0.1 s apart
        code += ",setpts='if(lt(N\\,75)\\,N/25\\,3+(N-75)/10)/TB'"
    noise = (f"anoisesrc=color=white:amplitude=0.5:seed=7:sample_rate={entry.sample_rate}:"
             f"duration={duration_s}")
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", code]
    if entry.audio_delay_s:
        args += ["-itsoffset", str(entry.audio_delay_s)]
    args += ["-f", "lavfi", "-i", noise, "-map", "0:v", "-map", "1:a",
             *entry.video, "-g", str(int(round(entry.gop_s * entry.fps))),
             "-keyint_min", str(int(round(entry.gop_s * entry.fps))), *entry.audio,
             "-ac", "1", "-ar", str(entry.sample_rate)]
    if entry.vfr:
        args += ["-fps_mode", "vfr"]
    if entry.start_offset_s:
        args += ["-output_ts_offset", str(entry.start_offset_s)]
    if duration_s:
        args += ["-t", str(duration_s)]
    subprocess.run([*args, *entry.extra, str(path)], check=True)
    return path


def write_zoo(directory: Path, duration_s: float = 6.0) -> dict[str, Path]:
    return {e.name: write(e, directory, duration_s) for e in ZOO}


def frame_number(jpeg_or_array: bytes | np.ndarray) -> int:
    """The number a zoo frame carries (read from the block centres, thresholded)."""
    if isinstance(jpeg_or_array, bytes):
        img = np.asarray(Image.open(io.BytesIO(jpeg_or_array)).convert("L"), dtype=np.float64)
    else:
        img = np.asarray(jpeg_or_array, dtype=np.float64)
    h, w = img.shape[:2]
    bh, bw = h / GRID, w / GRID
    n = 0
    for y in range(GRID):
        for x in range(GRID):
            block = img[int(y * bh + bh / 4):int(y * bh + 3 * bh / 4),
                        int(x * bw + bw / 4):int(x * bw + 3 * bw / 4)]
            if block.mean() > 128:
                n += 1 << (x + GRID * y)
    return n


def frame_times(path: Path) -> np.ndarray:
    """Presentation times (s, from ffprobe) of every video frame of `path`, in order, on the
    file's own clock (ffprobe's best_effort_timestamp_time)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=best_effort_timestamp_time", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return np.array([float(x.strip().strip(",")) for x in out.split() if x.strip(",")])


def numbered_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(the number each decoded frame of `path` carries, its presentation time), from a full
    decode (ffmpeg, grey raw frames) and ffprobe: a container may drop a frame the encoder
    skipped, so the n-th decoded frame need not carry number n."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-an", "-f", "rawvideo",
                          "-pix_fmt", "gray", "-fps_mode", "passthrough", "-"],
                         capture_output=True, check=True).stdout
    w, h = SIZE
    frames = np.frombuffer(raw, np.uint8).reshape(-1, h, w)
    times = frame_times(path)
    assert len(frames) == len(times), (len(frames), len(times))
    return np.array([frame_number(f) for f in frames]), times


def lag(a: np.ndarray, b: np.ndarray, max_lag: int) -> int:
    """Samples by which `b` lags `a` (positive: b is late), by cross-correlation."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1).mean(axis=1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1).mean(axis=1)
    n = min(len(a), len(b)) - 2 * max_lag
    core = a[max_lag:max_lag + n]
    scores = [float(np.dot(core, b[max_lag + k:max_lag + k + n]))
              for k in range(-max_lag, max_lag + 1)]
    return int(np.argmax(scores)) - max_lag
