"""Frames of one clip: ffmpeg encodes the recipe's frames as JPEG onto a pipe, the stream
is split into images here, and the recipe's selection picks the kept ones.

Piping `image2pipe` gives exactly the bytes `ffmpeg ... %06d.jpg` would write (same
encoder, same options), without touching the disk.

Recipes that keep native frames (ave-vgg19) know which frames they keep before decoding:
the presentation times of the frames inside the clip come from the packets (listed by the
same ffprobe that probes the file, no decoding: the download's, carried in its ledger, or
the cut's own), the original rule picks among them, and a
`select` filter in the graph passes only those to the JPEG encoder, which is the expensive
part. Their `times` are the source's real presentation times, so a variable frame rate
records true times.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from pipeline.core.media_probe import MediaInfo
from pipeline.cut.ffmpeg_pipes import DecodeError, clip_input, compile_args, run, run_probe
from pipeline.cut.recipes import FramesRecipe, select


@dataclass
class Frames:
    jpegs: list[bytes]  # the selected frames, in order
    times: np.ndarray  # seconds from the clip start, one per selected frame
    decoded: int  # how many frames ffmpeg produced before selection
    args: list[str]  # the exact ffmpeg argument list
    all_jpegs: list[bytes]  # every decoded frame (the loose layout the originals wrote)


def split_jpegs(stream: bytes) -> list[bytes]:
    """Split concatenated baseline/progressive JPEGs by walking their marker segments.

    Entropy-coded data never holds a bare 0xFF followed by a marker other than RSTn
    (0xFF bytes are stuffed as FF 00), so the first FF D9 after the scan ends the image.
    """
    out: list[bytes] = []
    pos, n = 0, len(stream)
    while pos < n:
        if stream[pos:pos + 2] != b"\xff\xd8":
            raise DecodeError(f"JPEG stream out of sync at byte {pos}")
        i = pos + 2
        while True:
            if i + 4 > n:
                raise DecodeError("JPEG stream ends inside a header")
            if stream[i] != 0xFF:
                raise DecodeError(f"JPEG marker expected at byte {i}")
            marker = stream[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            length = int.from_bytes(stream[i + 2:i + 4], "big")
            i += 2 + length
            if marker == 0xDA:  # start of scan: entropy data follows
                while True:
                    j = stream.find(b"\xff", i)
                    if j < 0 or j + 1 >= n:
                        raise DecodeError("JPEG stream ends inside a scan")
                    nxt = stream[j + 1]
                    if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                        i = j + 2
                        continue
                    i = j
                    break
                if stream[i + 1] == 0xD9:
                    i += 2
                    break
                # another marker (progressive JPEG: more tables and scans follow)
        out.append(stream[pos:i])
        pos = i
    return out


# a frame is selected when its time is this close to a wanted one (ffprobe prints 6 decimals)
PTS_TOLERANCE_S = 5e-5


def listed_frame_times(info: MediaInfo, *, seek_s: float, duration_s: float | None
                       ) -> np.ndarray | None:
    """Frame times (s from the clip start) from the packets the probe listed with
    `media_probe.packet_interval`; None when the listing stopped before the clip's end although the file
    goes on (a GOP longer than the margin): then `clip_frame_times` reads them itself."""
    if info.video_pts is None:
        return None
    pts = np.asarray(info.video_pts, dtype=np.float64)
    lo = info.start_s + seek_s
    if duration_s is not None:
        hi = lo + duration_s
        last = float(pts.max()) if len(pts) else -np.inf
        if last < hi - 1e-7 and info.start_s + info.duration_s > last + 0.5:
            return None
    return _inside(pts, lo, duration_s)


def _inside(pts: np.ndarray, lo: float, duration_s: float | None) -> np.ndarray:
    hi = lo + duration_s if duration_s is not None else None
    keep = (pts >= lo - 1e-7) & ((pts < hi - 1e-7) if hi is not None else True)
    return pts[keep] - lo


def clip_frame_times(path: str | Path, *, file_start_s: float, seek_s: float,
                     duration_s: float | None, timeout_s: float) -> np.ndarray:
    """Presentation times (s from the clip start) of the video frames ffmpeg's `-ss`/`-t`
    keep, from the packets alone: those with pts in [start + seek, start + seek + duration).

    A process of its own, for when the probe's listing fell short (`listed_frame_times`)."""
    lo = file_start_s + seek_s
    hi = lo + duration_s if duration_s is not None else None
    interval = (f"{lo - 10:.6f}" if lo > 10 else "") + (f"%{hi + 1:.6f}" if hi is not None else "")
    args = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
            "packet=pts_time,dts_time", "-of", "csv=p=0"]
    args += (["-read_intervals", interval] if interval else []) + [str(path)]
    out = run_probe(args, timeout_s)
    times = []
    for line in out.splitlines():
        fields = [f for f in line.strip().split(",") if f and f != "N/A"]
        if fields:
            times.append(float(fields[0]))
    return _inside(np.unique(np.array(times, dtype=np.float64)), lo, duration_s)


def select_times(video, times: np.ndarray):  # -> ffmpeg-python stream
    """Pass only the frames at `times` (s from the clip start) through the graph."""
    shown = [f"{t:.6f}" for t in times]
    terms = [f"lt(abs(t-{x}),{PTS_TOLERANCE_S})" for x in shown]
    values = [float(x) for x in shown]
    if all(b - a > 4 * PTS_TOLERANCE_S for a, b in zip(values, values[1:])):
        return video.filter("select", _search_tree(terms, values))
    return video.filter("select", _balanced_sum(terms))


def _search_tree(terms: list[str], values: list[float]) -> str:
    """The same test as the sum of `terms` when the wanted times lie more than twice the
    tolerance apart (at most one term can hold): a binary search on t, whose if() evaluates
    only the branch taken, so a frame costs ~log2(n) comparisons instead of n (bench_cut:
    the 160-term sum cost ~0.03 s of CPU per 300-frame clip)."""
    if len(terms) == 1:
        return terms[0]
    mid = len(terms) // 2
    split = (values[mid - 1] + values[mid]) / 2
    return (f"if(lt(t,{split:.7f}),{_search_tree(terms[:mid], values[:mid])},"
            f"{_search_tree(terms[mid:], values[mid:])})")


def _balanced_sum(terms: list[str]) -> str:
    """a+b+c+... nested as a balanced tree: ffmpeg's expression parser recurses once per
    `+` of a flat chain and refuses a chain of ~100 terms ('Cannot allocate memory')."""
    if len(terms) == 1:
        return terms[0]
    mid = len(terms) // 2
    return f"({_balanced_sum(terms[:mid])})+({_balanced_sum(terms[mid:])})"


def frames_output(source, recipe: FramesRecipe, target: str, *, jpeg_quality: int | None,
                  scale: str | None, pick_times: np.ndarray | None = None,
                  threads: int | None = None):  # -> ffmpeg-python output node
    """The recipe's JPEG output of `source` (an ffmpeg-python input) onto pipe `target`;
    with `pick_times`, only the frames at those times are encoded."""
    video = source.video
    if pick_times is not None:
        video = select_times(video, pick_times)
    if scale:
        video = video.filter("scale", *scale.split(":"))
    opts: dict[str, object] = {"format": "image2pipe", "vcodec": "mjpeg"}
    if recipe.rate is None:
        opts["fps_mode"] = "passthrough"
    else:
        opts["r"] = _num(recipe.rate)
    if jpeg_quality is not None:
        opts["q:v"] = jpeg_quality
    if threads is not None:
        opts["threads"] = threads
    return ffmpeg.output(video, target, **opts)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def planned_pick(recipe: FramesRecipe, times: np.ndarray, clip_seconds: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(the recipe's kept indices into `times`, the distinct ones ffmpeg must encode)."""
    keep = select(recipe, len(times), clip_seconds)
    return keep, np.unique(keep)


def finish_frames(stream: bytes, recipe: FramesRecipe, *, clip_seconds: int, native_fps: float,
                  args: list[str], times: np.ndarray | None = None,
                  picked: np.ndarray | None = None) -> Frames:
    """Split ffmpeg's JPEG stream and apply the recipe's selection.

    `times`: presentation times of every frame in the clip, when known (native-frame
    recipes). `picked`: the distinct indices the graph already selected (the stream then
    holds only those); the recipe's selection is then made from `times`."""
    jpegs = split_jpegs(stream)
    if not jpegs:
        raise DecodeError("ffmpeg produced no frames")
    if picked is not None and times is not None:
        if len(jpegs) != len(picked):
            raise DecodeError(f"the frame selection passed {len(jpegs)} frames, the packets "
                              f"promised {len(picked)}", "frame-count-mismatch")
        keep = select(recipe, len(times), clip_seconds)
        position = {int(i): k for k, i in enumerate(picked)}
        return Frames([jpegs[position[int(i)]] for i in keep], times[keep], len(times), args,
                      [])
    keep = select(recipe, len(jpegs), clip_seconds)
    if recipe.rate is None and times is not None and len(times) == len(jpegs):
        return Frames([jpegs[i] for i in keep], times[keep], len(jpegs), args, jpegs)
    rate = recipe.rate or native_fps or (len(jpegs) / max(clip_seconds, 1))
    return Frames([jpegs[i] for i in keep], keep.astype(np.float64) / rate, len(jpegs), args,
                  jpegs)


def cut_frames(path: str | Path, recipe: FramesRecipe, *, seek_s: float, duration_s: float | None,
               clip_seconds: int, native_fps: float, jpeg_quality: int | None = None,
               scale: str | None = None, timeout_s: float = 600.0) -> Frames:
    """Frames only, in their own ffmpeg call (the stage decodes audio and frames together)."""
    args = compile_args(frames_output(clip_input(path, seek_s, duration_s), recipe, "pipe:3",
                                      jpeg_quality=jpeg_quality, scale=scale))
    _, stream = run(args, timeout_s)
    return finish_frames(stream, recipe, clip_seconds=clip_seconds, native_fps=native_fps,
                         args=args)
