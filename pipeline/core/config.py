"""The work directory's config (`avel.yaml`): one dataclass per stage, loaded and validated once.

Each stage reads only its own section; `avel init` writes a starting file from
`manifests/<dataset>.yaml`, which carries the original papers' recipes.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import os
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from pipeline.core.config_schema import build, to_dict
from pipeline.core.errors import InputError, require_utf8_path
from pipeline.core.reasons import ALLOWABLE
from pipeline.cut.recipes import audio_recipe, frames_recipe

CONFIG_NAME = "avel.yaml"
DATASETS = ("ave", "llp", "vggsound", "vggsound-avel", "vggsound-avel50k")


@dataclass
class DatasetConfig:
    """Where the dataset's own list files are and how a clip's source is named."""

    name: Literal["ave", "llp", "vggsound", "vggsound-avel", "vggsound-avel50k"]
    # Reader inputs by role (e.g. annotations, orders_dir, train, meta, categories);
    # relative paths are resolved against the work directory.
    files: dict[str, str] = field(default_factory=dict)
    # youtube: source is a watch URL built from url_template; url: any URL yt-dlp accepts,
    # also built from url_template; local: a file in videos_dir named <video_id><ext> for the
    # first of video_ext that exists, or the path files.paths (CSV video_id,path) names
    # (pipeline/datasets/local_videos.py).
    source: Literal["youtube", "url", "local"] = "youtube"
    url_template: str = "https://www.youtube.com/watch?v={video_id}"
    videos_dir: str | None = None
    video_ext: str | list[str] = ".mp4"
    clip_seconds: float = 10.0
    limit: int | None = None  # keep the first N clips (demos, smoke runs)

    def validate(self) -> None:
        if "{video_id}" not in self.url_template:
            raise ValueError("url_template must contain {video_id}")
        if self.source == "local" and not self.videos_dir:
            raise ValueError("source 'local' needs videos_dir")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be >= 1")
        if self.clip_seconds <= 0:
            raise ValueError("clip_seconds must be > 0")


@dataclass
class ShardingConfig:
    num_shards: int = 1

    def validate(self) -> None:
        if self.num_shards < 1:
            raise ValueError("num_shards must be >= 1")


PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")


@dataclass
class DownloadIdentity:
    """One way of appearing to the host: a browser session (cookies) and/or a network route
    (proxy). A field left out takes the top-level `download.cookies_file` / `download.proxy`."""

    name: str | None = None  # default: identity-<index in the list>
    cookies_file: str | None = None
    proxy: str | None = None  # "" = a direct connection, even when download.proxy is set

    def validate(self) -> None:
        if self.name is not None and not self.name.strip():
            raise ValueError("name must not be empty")
        if self.proxy:
            check_proxy_url(self.proxy, "proxy")


def check_proxy_url(url: str, key: str) -> None:
    """A proxy is a URL yt-dlp can use: scheme://host[:port]."""
    parts = urlsplit(url)
    if parts.scheme not in PROXY_SCHEMES or not parts.hostname:
        raise ValueError(f"{key} must be a URL like http://host:port (scheme one of"
                         f" {', '.join(PROXY_SCHEMES)}), got {url!r}")
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number in range)
    except ValueError:
        raise ValueError(f"{key} has a bad port: {url!r}") from None


@dataclass
class DownloadConfig:
    """yt-dlp options that come from the user (never from the manifest)."""

    mode: Literal["section", "full"] = "section"
    pad_s: float = 0.0
    format: str = "bv*[height<=360]+ba/b[height<=360]/bv*+ba/b"
    merge_output_format: str = "mp4"
    cookies_file: str | None = None
    proxy: str | None = None
    # several identities: clips go to whichever is not throttled now, each with its own
    # backoff; the stage stops (exit 3) only when every one is throttled past throttle_limit
    identities: list[DownloadIdentity] = field(default_factory=list)
    rate_limit_bytes: int | None = None
    sleep_s: float = 0.0  # before each download and each extraction request (yt-dlp)
    user_agent: str | None = None
    workers: int = 4
    requests_per_s: float = 2.0  # clips started per second, all workers together; 0 = no limit
    max_attempts: int = 3
    socket_timeout_s: float = 20.0
    backoff_base_s: float = 2.0
    backoff_max_s: float = 300.0
    throttle_limit: int = 8  # throttle answers in a row (no success between) before stopping
    # failed attempts in a row for one reason (no success between) before the stage stops
    # as an environment problem and leaves those clips pending (download/breaker.py); 0 = off
    failure_streak_limit: int = 20
    # yt-dlp's cache (YouTube player JS, solved n/sig challenges), shared by every worker and
    # shard of the work directory; relative to it. None: no cache (each worker re-fetches)
    cache_dir: str | None = "cache/yt-dlp"
    # local videos into raw/: a hard link (free; the same file as your original, so never
    # edit raw/), a symlink, or a copy (disk space, but independent)
    local_files: Literal["hardlink", "symlink", "copy"] = "hardlink"
    # section mode: re-encode around the cuts so the file starts exactly at the section
    # start; off = stream copy (fast; the start is still exact for ffmpeg-based readers,
    # which honour the edit list, but the file carries the preceding GOP)
    force_keyframes_at_cuts: bool = False

    def validate(self) -> None:
        if self.pad_s < 0:
            raise ValueError("pad_s must be >= 0")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.throttle_limit < 1:
            raise ValueError("throttle_limit must be >= 1")
        if self.failure_streak_limit < 0:
            raise ValueError("failure_streak_limit must be >= 0 (0 = off)")
        if self.requests_per_s < 0 or self.sleep_s < 0:
            raise ValueError("requests_per_s and sleep_s must be >= 0 (0 = no limit)")
        if self.socket_timeout_s <= 0:
            raise ValueError("socket_timeout_s must be > 0")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise ValueError("need 0 <= backoff_base_s <= backoff_max_s")
        if self.rate_limit_bytes is not None and self.rate_limit_bytes <= 0:
            raise ValueError("rate_limit_bytes must be > 0")
        names = identity_names(self.identities)
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"identities[{i}].name {name!r} is already the name of"
                                 f" identities[{names.index(name)}]; names must differ")


def identity_names(identities: list[DownloadIdentity]) -> list[str]:
    """Each identity's name as the ledger and `avel status` show it."""
    return [d.name.strip() if d.name else f"identity-{i}" for i, d in enumerate(identities)]


DEFAULT_ALLOW = ("rotated", "unusual-pixel-format", "non-ascii-name")


@dataclass
class CutConfig:
    """How `avel cut` turns videos into 16 kHz audio and recipe frames (pipeline/cut/recipes.py)."""

    audio_recipe: str = "vggsound"  # vggsound | llp | ave
    frames_recipe: str = "ave-vgg19"  # llp-8fps | ave-vgg19 | uniform-N
    # ffmpeg -q:v for the JPEGs; None: the recipe's own (llp-8fps/uniform-N: ffmpeg's default,
    # what `ffmpeg -i video -r 8 %06d.jpg` ran; ave-vgg19: 2, see pipeline/cut/recipes.py)
    jpeg_quality: int | None = None
    scale: str | None = None  # ffmpeg scale filter args, e.g. "-2:256"; None keeps the source size
    loose: bool = False
    workers: int = 2
    # defects that are cut anyway and noted, instead of failing the clip (see
    # pipeline/cut/checks.py): these add to DEFAULT_ALLOW; "-name" takes a default away
    allow: list[str] = field(default_factory=list)
    max_pixels: int = 4096 * 2160  # larger frames fail as huge-resolution
    max_pad_s: float = 0.5  # a file may end this much before the clip does (zeros are padded)
    span_slack_s: float = 0.1  # a file ending this little after the clip is decoded whole
    batch_clips: int = 8  # finished clips per part file (what a kill can lose at most)
    timeout_s: float = 600.0  # per ffmpeg/ffprobe call

    @property
    def allowed(self) -> tuple[str, ...]:
        """The defects accepted: the defaults, plus `allow`, minus its "-name" entries."""
        removed = {a[1:] for a in self.allow if a.startswith("-")}
        added = [a for a in self.allow if not a.startswith("-")]
        return tuple(dict.fromkeys(a for a in [*DEFAULT_ALLOW, *added] if a not in removed))

    def validate(self) -> None:
        audio_recipe(self.audio_recipe)
        frames_recipe(self.frames_recipe)
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 31:
            raise ValueError("jpeg_quality must be 1..31 (ffmpeg -q:v) or null")
        unknown = sorted({a.removeprefix("-") for a in self.allow} - set(ALLOWABLE))
        if unknown:
            raise ValueError(f"allow: unknown conditions {unknown}; allowed: {list(ALLOWABLE)}")
        if self.workers < 1 or self.batch_clips < 1:
            raise ValueError("workers and batch_clips must be >= 1")
        if self.max_pad_s < 0 or self.span_slack_s < 0:
            raise ValueError("max_pad_s and span_slack_s must be >= 0")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0 (seconds per ffmpeg/ffprobe call)")
        if self.max_pixels < 1:
            raise ValueError("max_pixels must be >= 1")


@dataclass
class ExtractConfig:
    extractors: list[str] = field(default_factory=lambda: ["vggish", "vgg19"])
    device: Literal["cuda", "cpu", "auto"] = "auto"
    precision: Literal["fp32", "tf32", "bf16", "fp16"] = "fp32"
    batch_size: int = 64
    num_workers: int = 2
    store_dtype: Literal["float32", "float16"] = "float32"
    # extractor name -> "pretrained" (from the cache), "random", or a weights file path
    weights: dict[str, str] = field(default_factory=dict)
    # extractor name -> recipe options, e.g. {vgg19: {recipe: torchvision-imagenet}}
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0  # init seed for `random` weights
    prefetch: int = 4  # clips each preprocessing worker keeps ready
    flush_clips: int = 64  # finished clips per store part (the most a kill can lose)
    max_attempts: int = 3
    ray_gpus_per_actor: float = 1.0  # Ray executor: GPUs each extract actor asks for
    # CPU threads for the network on a CPU device (None: torch's default). Results depend
    # on it in the last float bits (reduction order), so pin it to compare runs exactly.
    cpu_threads: int | None = None
    # where frame JPEGs are decoded and resized: "cpu" = PIL in the workers (the exact
    # reference), "device" = workers ship the bytes, the device decodes them batched
    # (nvjpeg on CUDA); "auto" = device on CUDA, else cpu. Default cpu: measured on an H200,
    # nvjpeg differs from libjpeg-turbo by up to 43/255 per pixel and was no faster for VGG-19
    decode: Literal["auto", "cpu", "device"] = "cpu"
    # device decode only: threads that decode several clips per call ahead of the network, each
    # on its own CUDA stream (torchvision's CUDA decode blocks its caller until done); 0 =
    # clip by clip in the main thread, the reference the threaded path equals bit for bit
    decode_threads: int = 2
    # torch.compile the forward for one fixed batch shape (the last batch padded): false, true
    # (= default), or a torch.compile mode; reduce-overhead adds CUDA graphs. Off until measured
    compile: bool | Literal["default", "reduce-overhead", "max-autotune",
                            "max-autotune-no-cudagraphs"] = False

    def validate(self) -> None:
        if self.decode not in ("auto", "cpu", "device"):
            raise ValueError("decode must be auto, cpu or device")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.num_workers < 0 or self.decode_threads < 0:
            raise ValueError("num_workers and decode_threads must be >= 0")
        if self.prefetch < 1 or self.flush_clips < 1 or self.max_attempts < 1:
            raise ValueError("prefetch, flush_clips and max_attempts must be >= 1")
        if self.ray_gpus_per_actor < 0:
            raise ValueError("ray_gpus_per_actor must be >= 0")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError("cpu_threads must be >= 1 or null")


@dataclass
class TrainConfig:
    task: str = "ave-fully"
    model: str = "cpsp"
    device: Literal["cuda", "cpu", "auto"] = "auto"
    seed: int | None = None
    # any preset hyperparameter, by name, e.g. {lr: 1e-4, epochs: 5}
    overrides: dict[str, Any] = field(default_factory=dict)
    # whole feature set in RAM ("auto": when it fits in half the free memory), else per-item
    # HDF5 reads from the store
    in_memory: Literal["auto", "always", "never"] = "auto"
    num_workers: int = 0  # DataLoader worker processes
    # train on the released AVE files instead of the store: a directory holding
    # audio_feature.h5, visual_feature.h5, right_labels.h5 and {train,val,test}_order.h5
    original_ave_dir: str | None = None
    # train on the released VGGSound-AVEL layout: keys meta, categories, audio_dir,
    # video_dir, label_dir (per-video zips holding one .pkl array each)
    original_vggsound_avel: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if self.num_workers < 0:
            raise ValueError("num_workers must be >= 0")


@dataclass
class Config:
    dataset: DatasetConfig
    sharding: ShardingConfig = field(default_factory=ShardingConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    cut: CutConfig = field(default_factory=CutConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None

    def hash(self) -> str:
        """Stable digest of the settings, recorded in every output for provenance."""
        blob = json.dumps(to_dict(self), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def parse_config(data: Any, file: str | Path) -> Config:
    if not isinstance(data, dict):
        raise InputError("config must be a YAML mapping", file=file)
    return build(Config, data, file=file)


def load_config(workdir: str | Path) -> Config:
    path = Path(workdir) / CONFIG_NAME
    require_utf8_path(workdir)
    if not path.is_file():
        raise InputError(f"no config here; run `avel init --dataset NAME --workdir {workdir}` first",
                         file=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 ({exc.reason} at byte {exc.start})", file=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=path,
                         line=mark.line + 1 if mark else None) from None
    return parse_config(data, path)


def dataset_preset(name: str) -> dict[str, Any]:
    """The dataset YAML under manifests/: description, recipes and a starting config."""
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}",
                         field="dataset")
    return yaml.safe_load(manifest_file(name).read_text(encoding="utf-8"))


def manifest_file(name: str) -> Traversable:
    """`manifests/<name>.yaml`: package data of the `manifests` namespace package, so an
    installed wheel finds it; `$AVEL_MANIFESTS` (a directory) overrides it."""
    override = os.environ.get("AVEL_MANIFESTS")
    if override:
        return Path(override) / f"{name}.yaml"
    # importlib.resources.files() on a namespace package fails under setuptools' editable
    # install (its path hook joins the namespace path and is no directory), so take the
    # first real folder of the namespace path: the checkout, or site-packages for a wheel.
    spec = importlib.util.find_spec("manifests")
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    for folder in folders:
        if folder.is_dir() and (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    base: Traversable = importlib.resources.files("manifests")
    return base / f"{name}.yaml"


def resolve(workdir: str | Path, path: str) -> Path:
    """A config path: absolute as given, relative to the work directory otherwise. Always
    absolute, so a caller that stores it (`portable`) or joins it to the work directory again
    cannot name `W/W/...` when the work directory was given relative to the current one."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(workdir).resolve() / p


def portable(workdir: str | Path, path: str | Path) -> str:
    """`path` as a config or manifest should hold it: relative to the work directory when
    it lies inside it (so a copied or moved work directory reads its own files), absolute
    otherwise. A relative `path` is one relative to the work directory (as a config holds
    it); a path relative to the current directory must be made absolute first (`resolve`)."""
    root = Path(workdir).resolve()
    target = (root / Path(path).expanduser()).resolve()
    try:
        return target.relative_to(root).as_posix()
    except ValueError:
        return str(target)
