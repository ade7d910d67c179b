"""A yt-dlp plugin extractor (loaded by yt-dlp's own plugin mechanism from a directory on
PYTHONPATH) that behaves like YouTube in 2026 on a machine without a JavaScript runtime,
for URLs on the tests' loopback server:

  http://127.0.0.1:PORT/yt2026/env/<video_id>.mp4   warns as yt-dlp's YouTube extractor
      does (no JS runtime, n challenge failed) and offers only storyboard images, so
      yt-dlp itself warns "Only images are available" and raises "Requested format is
      not available";
  http://127.0.0.1:PORT/yt2026/gone/<video_id>.mp4  raises "Video unavailable", the
      same for every clip (what a broken setup can look like with no warning at all).

Each extraction first asks the server for the real file (a HEAD request), so the
attempt reaches the network like a real one. The warning texts are yt-dlp's own,
verbatim (yt_dlp/extractor/youtube/_video.py, 2026.11.23); a test checks they still are.
"""

from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.networking import HEADRequest
from yt_dlp.utils import ExtractorError

EJS_WIKI_URL = "https://github.com/yt-dlp/yt-dlp/wiki/EJS"
NO_RUNTIME = (
    "No supported JavaScript runtime could be found. Only deno is enabled by default; "
    "to use another runtime add  --js-runtimes RUNTIME[:PATH]  to your command/config. "
    "YouTube extraction without a JS runtime has been deprecated, and some formats may be "
    f"missing. See  {EJS_WIKI_URL}  for details on installing one")
N_CHALLENGE = (
    "n challenge solving failed: Some formats may be missing. Ensure you have a supported "
    "JavaScript runtime and challenge solver script distribution installed. Review any "
    f"warnings presented before this message. For more details, refer to  {EJS_WIKI_URL}")


class AvelYouTube2026IE(InfoExtractor):
    IE_NAME = "avel:yt2026"
    _VALID_URL = r"https?://127\.0\.0\.1:(?P<port>\d+)/yt2026/(?P<mode>env|gone)/(?P<id>[^/?#]+)\.mp4"

    def _real_extract(self, url):
        port, mode, video_id = self._match_valid_url(url).group("port", "mode", "id")
        media = f"http://127.0.0.1:{port}/{video_id}.mp4"
        self._request_webpage(HEADRequest(media), video_id, note="Checking the media")
        if mode == "gone":
            raise ExtractorError("Video unavailable", expected=True, video_id=video_id)
        self.report_warning(NO_RUNTIME, only_once=True)
        self.report_warning(N_CHALLENGE, video_id=video_id, only_once=True)
        storyboard = {
            "format_id": "sb0", "format_note": "storyboard", "ext": "mhtml",
            "protocol": "mhtml", "acodec": "none", "vcodec": "none", "width": 48, "height": 27,
            "url": media, "fragments": [{"url": media, "duration": 10.0}],
        }
        return {"id": video_id, "title": video_id, "duration": 10.0, "formats": [storyboard]}
