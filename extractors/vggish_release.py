"""Where the released VGGish files come from and how `avel weights fetch vggish` gets them.

The AudioSet release publishes the TF checkpoint and the PCA params; the torchvggish port
publishes a PyTorch state_dict whose file name carries its sha256 prefix. `vggish.pt`, the
file the PyTorch extractor loads by default, is our conversion of the TF checkpoint when
TensorFlow is installed, else the torchvggish state_dict (converted from the same release).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from extractors.vggish_convert import convert_checkpoint
from extractors.weights_cache import cache_dir, fetch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseFile:
    name: str
    url: str
    #: full sha256, a ≥8-digit prefix (torch.hub style), or None where nobody publishes one
    sha256: str | None


RELEASE: tuple[ReleaseFile, ...] = (
    ReleaseFile("vggish_model.ckpt", "https://storage.googleapis.com/audioset/vggish_model.ckpt", None),
    ReleaseFile("vggish_pca_params.npz",
                "https://storage.googleapis.com/audioset/vggish_pca_params.npz",
                "4d878af3e306defbfb37095365aa7e5a6cecb86bad13e859e626151c4e6a8b9d"),
    ReleaseFile("vggish-10086976.pth",
                "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
                "10086976"),
)


def fetch_vggish(mirror: str | None = None, force: bool = False) -> dict[str, Path]:
    """Download the release into the cache (sha256-checked) and make `vggish.pt`.

    `mirror`: a base URL serving the same file names (for clusters without internet).
    """
    paths = {}
    for item in RELEASE:
        url = f"{mirror.rstrip('/')}/{item.name}" if mirror else item.url
        log.info("fetching %s", url)
        paths[item.name] = fetch(url, item.name, item.sha256, force=force)
    target = cache_dir() / "vggish.pt"
    try:
        convert_checkpoint(paths["vggish_model.ckpt"], target)
    except ImportError:
        log.warning("TensorFlow not installed: using the torchvggish state_dict as vggish.pt")
        shutil.copyfile(paths["vggish-10086976.pth"], target)
    paths["vggish.pt"] = target
    return paths
