"""The shift the fetcher records for a section file's audio equals what the muxer really did.

Reference: the packets themselves. A section is a stream copy, so each of its packets is a
source packet byte for byte (matched by CRC32 from ffprobe); the difference between the new
and the old timestamp of the matched packets, audio minus video, is how far the copy moved
the audio against the video. That must equal `audio_shift_s` of the section file, for every
ffmpeg at hand (the system one, and the newer static build imageio-ffmpeg ships when it is
installed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.download.section_audio_shift import audio_shift_s, lavf_version, read_header
from pipeline.download.ytdlp_options import TS_ANCHOR_S
from tests.format_zoo import ZOO, write

try:  # a second, newer ffmpeg when the demo extra is installed
    import imageio_ffmpeg
except ImportError:
    imageio_ffmpeg = None


def _ffmpegs() -> list[str]:
    found = [shutil.which("ffmpeg") or "ffmpeg"]
    if imageio_ffmpeg is not None:
        try:
            found.append(imageio_ffmpeg.get_ffmpeg_exe())
        except RuntimeError:  # the package without its binary
            pass
    return found


@pytest.fixture(scope="module")
def opus_webm(tmp_path_factory) -> Path:
    entry = next(e for e in ZOO if e.name == "webm-vp9-opus")
    return write(entry, tmp_path_factory.mktemp("opus"))


def _packets(path: Path, stream: str) -> list[tuple[float, str]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries",
                          "packet=pts_time,data_hash", "-show_data_hash", "crc32", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return [(float(p["pts_time"]), p["data_hash"]) for p in json.loads(out)["packets"]]


def _moved(source: Path, copy: Path, stream: str) -> float:
    """How far the copy moved the timestamps of `stream`: the copy's first five packets are
    found in the source by their bytes; the same move must hold for all of them."""
    old, new = _packets(source, stream), _packets(copy, stream)
    hashes = [h for _, h in old]
    head = [h for _, h in new[:5]]
    start = next(i for i in range(len(old)) if hashes[i:i + 5] == head)
    moves = {round(new[k][0] - old[start + k][0], 6) for k in range(len(new))
             if start + k < len(old)}
    assert len(moves) == 1, moves
    return moves.pop()


@pytest.mark.parametrize("ffmpeg", _ffmpegs(), ids=lambda path: Path(path).name)
def test_recorded_shift_is_the_move_of_audio_against_video_in_a_section_copy(tmp_path, opus_webm,
                                                                              ffmpeg):
    section = tmp_path / "section.webm"
    # the shape of yt-dlp's section download: seek before the one input, copy, anchor
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", "-ss", "3.2", "-t", "2", "-i",
                    str(opus_webm), "-c", "copy", "-output_ts_offset", repr(TS_ANCHOR_S),
                    str(section)], check=True)
    audio_early = _moved(opus_webm, section, "v") - _moved(opus_webm, section, "a")
    assert audio_shift_s(section) == pytest.approx(audio_early, abs=1e-6), read_header(section)


def test_files_without_an_audio_codec_delay_have_no_shift(tmp_path_factory):
    directory = tmp_path_factory.mktemp("no-delay")
    for name in ("mkv-h264-flac-longgop", "mp4-h264-aac"):
        path = write(next(e for e in ZOO if e.name == name), directory)
        assert audio_shift_s(path) == 0.0, name


def test_a_header_cut_short_or_not_matroska_reads_as_none(tmp_path, opus_webm):
    cut = tmp_path / "cut.webm"
    cut.write_bytes(opus_webm.read_bytes()[:60])
    assert read_header(cut) is None
    text = tmp_path / "page.webm"
    text.write_bytes(b"<html>not a video</html>")
    assert read_header(text) is None
    assert audio_shift_s(text) == 0.0


def test_lavf_versions_are_read_from_the_muxing_app():
    assert lavf_version("Lavf59.27.100") == (59, 27, 100)
    assert lavf_version("Lavf") is None  # a bit-exact file: no version, no correction
    assert lavf_version("libwebm-0.2.1.0") is None


@pytest.mark.parametrize("ffmpeg", _ffmpegs(), ids=lambda path: Path(path).name)
def test_merged_formats_move_audio_alike_in_full_and_section_mode(tmp_path, opus_webm, ffmpeg):
    """Why the fetcher records no shift for bestvideo+bestaudio: yt-dlp's merge of the two
    whole files and its section copy of the two inputs move the audio against the video by
    the same amount, so the section agrees with what full mode gives."""
    run = [ffmpeg, "-nostdin", "-v", "error", "-y"]
    video, audio = tmp_path / "v.webm", tmp_path / "a.webm"
    subprocess.run([*run, "-i", str(opus_webm), "-map", "0:v", "-c", "copy", str(video)], check=True)
    subprocess.run([*run, "-i", str(opus_webm), "-map", "0:a", "-c", "copy", str(audio)], check=True)
    merged, section = tmp_path / "merged.webm", tmp_path / "section.webm"
    subprocess.run([*run, "-i", str(video), "-i", str(audio), "-c", "copy", "-map", "0:v:0",
                    "-map", "1:a:0", str(merged)], check=True)
    subprocess.run([*run, "-ss", "3.2", "-t", "2", "-i", str(video), "-ss", "3.2", "-t", "2",
                    "-i", str(audio), "-c", "copy", "-map", "0:v:0", "-map", "1:a:0",
                    "-output_ts_offset", repr(TS_ANCHOR_S), str(section)], check=True)
    full_move = _moved(audio, merged, "a") - _moved(video, merged, "v")
    section_move = _moved(audio, section, "a") - _moved(video, section, "v")
    assert section_move == pytest.approx(full_move, abs=1e-6)
