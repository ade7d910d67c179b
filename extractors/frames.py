"""Frame-side CPU work shared by the image and video extractors: which frames a recipe
takes, how a JPEG becomes the network's pixels, and how those pixels are normalised.

Preprocessing is described as data (`ImageRecipe`) so it is recorded with every output and
travels with the weights it belongs to. Two decode paths:
  cpu     decode and resize in the runner's worker processes with PIL (the library the
          original scripts used, so resampling matches): the exact reference;
  device  workers ship the JPEG bytes (`pack_jpegs`, 3-9 KB a frame instead of 150 KB of
          pixels) and the main process decodes a clip's frames in one batched
          `torchvision.io.decode_jpeg` call on the device (nvjpeg on CUDA) and resizes
          there (`decode_on_device`; the runner decodes several clips per call, ahead of
          the network, in `pipeline.extract.decode_ahead`). Run with device="cpu" it is the stand-in the tests
          compare with the reference; the bound is `DEVICE_DECODE_PIXEL_BOUND`.
mean/std normalisation runs on the device in `normalise`, so only uint8 crosses the bus.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from extractors.base import ClipRejected

_PIL_FILTERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                "bicubic": Image.Resampling.BICUBIC}
_TV_MODES = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR,
             "bicubic": InterpolationMode.BICUBIC}

#: Largest |device path - PIL path| per pixel value (0-255) the tests allow, per resize
#: kind, with the CPU stand-in (the same libjpeg-turbo decode on both sides). Nearest picks
#: PIL's very source pixels (`pil_nearest_index`), so it is exact; antialiased bilinear on
#: tensors rounds differently from PIL's fixed-point filter (measured: at most 1 on real
#: 320x240 frames and synthetic 320x240 / 480x360 ones). nvjpeg on CUDA adds its own
#: IDCT / chroma-upsampling rounding on top; bench/gpu.sh measures and prints that.
DEVICE_DECODE_PIXEL_BOUND = {"nearest": 0, "bilinear": 2, "bicubic": 3}


@dataclass(frozen=True)
class ImageRecipe:
    """How one frame becomes a network input.

    resize "exact": to size x size ignoring aspect (Keras `load_img(target_size=...)`,
    torchvision `Resize((s, s))`); "shorter": shorter side to `resize_to`, then centre crop
    `size` (torchvision `Resize(256)` + `CenterCrop(224)`).
    Pixel values: x = (rgb_or_bgr * scale - mean) / std, channels in `channel_order`.
    """

    size: int
    resize: Literal["exact", "shorter"] = "exact"
    resize_to: int | None = None
    interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: Literal["RGB", "BGR"] = "RGB"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def at_size(self, size: int | None) -> ImageRecipe:
        """The same recipe for a smaller (or larger) input, e.g. for tests and demos: the
        pre-crop resize keeps its ratio to the crop. `None` keeps this recipe."""
        if size is None:
            return self
        resize_to = None if self.resize_to is None else round(size * self.resize_to / self.size)
        return replace(self, size=size, resize_to=resize_to)


def require_frames(frames: list[bytes], minimum: int) -> None:
    if len(frames) < minimum:
        raise ClipRejected("too_few_frames", f"{len(frames)} frames, the recipe needs at least {minimum}")


def decode(jpeg: bytes, recipe: ImageRecipe) -> np.ndarray:
    """One JPEG → uint8 [size, size, 3] RGB after the recipe's resize (and crop)."""
    try:
        image: Image.Image = Image.open(io.BytesIO(jpeg))
        image = image.convert("RGB")
    except Exception as exc:  # PIL raises several types for broken data
        raise ClipRejected("bad_frame", f"JPEG does not decode: {exc}") from None
    return resize(image, recipe)


def resize(image: Image.Image, recipe: ImageRecipe) -> np.ndarray:
    """An RGB PIL image → uint8 [size, size, 3] after the recipe's resize (and crop)."""
    if recipe.resize == "exact":
        image = image.resize((recipe.size, recipe.size), _PIL_FILTERS[recipe.interpolation])
    else:
        image = TF.resize(image, recipe.resize_to or recipe.size,
                          interpolation=_TV_MODES[recipe.interpolation])
        image = TF.center_crop(image, recipe.size)
    return np.asarray(image, dtype=np.uint8)


def decode_many(jpegs: list[bytes], recipe: ImageRecipe) -> torch.Tensor:
    """JPEGs → uint8 [N, 3, size, size] whose memory is NHWC (channels_last), as decoded."""
    pixels = np.stack([decode(j, recipe) for j in jpegs])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2)


_CONSTANTS: dict[tuple[tuple[float, ...], torch.dtype, torch.device], torch.Tensor] = {}


def device_constant(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small constant tensor on `device`, made once per process. `torch.tensor(values,
    device="cuda")` copies from pageable host memory and then waits for everything queued on
    the stream (a host sync); once per batch (normalise) or per clip (nearest indices) it
    kept the host from running ahead of the device. Never freed, so never handed to another
    stream by the caching allocator."""
    key = (values, dtype, device)
    tensor = _CONSTANTS.get(key)
    if tensor is None:
        tensor = _CONSTANTS[key] = torch.tensor(values, dtype=dtype, device=device)
    return tensor


def normalise(items: torch.Tensor, recipe: ImageRecipe, channel_dim: int = 1) -> torch.Tensor:
    """uint8 pixels (channels on `channel_dim`, RGB) → float32 network input, on their device."""
    x = items.float()
    if recipe.channel_order == "BGR":
        x = x.flip(channel_dim)
    shape = [1] * x.dim()
    shape[channel_dim] = 3
    mean = device_constant(recipe.mean, x.dtype, x.device).view(shape)
    std = device_constant(recipe.std, x.dtype, x.device).view(shape)
    if recipe.scale != 1.0:
        x = x * recipe.scale
    return (x - mean) / std


# -- device decode ------------------------------------------------------------------------
def pack_jpegs(jpegs: list[bytes]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """JPEGs → (all bytes as one uint8 tensor, byte length of each): one tensor crosses the
    worker boundary through shared memory, whatever the frame count. The lengths are plain
    ints, pickled with the message: each shared-memory tensor costs the receiving process a
    file-descriptor hand-over and a mapping (measured ~0.4 ms of its CPU per tensor here)."""
    lengths = tuple(len(j) for j in jpegs)
    if not jpegs:
        return torch.empty(0, dtype=torch.uint8), lengths
    data = torch.frombuffer(bytearray(b"".join(jpegs)), dtype=torch.uint8)
    return data, lengths


def unpack_jpegs(data: torch.Tensor, lengths: Sequence[int]) -> list[torch.Tensor]:
    """Inverse of `pack_jpegs`: one 1-D uint8 CPU tensor per JPEG (views, no copy)."""
    return list(torch.split(data, list(lengths)))


_SIDE_STREAMS: dict[tuple[torch.device, str, int], torch.cuda.Stream] = {}


def side_stream(device: torch.device, role: str, slot: int = 0) -> torch.cuda.Stream:
    """The CUDA stream of `role` ("decode", "work", ...) for `slot` (one per thread), made once
    per process: torch hands streams out round-robin from a pool of 32, so making new ones per
    run would in time give a decode pool the stream other work allocates on. "cuda" and
    "cuda:0" may get a stream each: harmless."""
    key = (device, role, slot)
    if key not in _SIDE_STREAMS:
        _SIDE_STREAMS[key] = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
    return _SIDE_STREAMS[key]


def decode_batch(jpegs: list[torch.Tensor], device: torch.device | str, *,
                 slot: int = 0) -> list[torch.Tensor]:
    """JPEG byte tensors → uint8 [3, H, W] RGB images on `device`, in one batched call.
    `slot`: which CUDA side stream decodes (one per decoding thread, see `_decode_cuda`)."""
    if not jpegs:
        return []
    device = torch.device(device)
    try:
        if device.type != "cuda":
            return decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)
        return _decode_cuda(jpegs, device, slot)
    except torch.cuda.OutOfMemoryError:  # the device's trouble, not the clip's
        raise
    except RuntimeError as exc:  # one bad frame fails the batch; the clip is rejected either way
        raise ClipRejected("bad_frame", f"JPEG does not decode: {exc}") from None


def _decode_cuda(jpegs: list[torch.Tensor], device: torch.device, slot: int) -> list[torch.Tensor]:
    """torchvision's CUDA decoder allocates its outputs on the current stream but writes
    them from a private stream that does not wait for it, so it can be handed a block that
    kernels still queued on the current stream will read, and overwrite it (reported as
    pytorch/vision#9606). Decoding with a stream of its own as the current one keeps the
    outputs in a pool only decode outputs use, and `record_stream` keeps each block from
    being handed out again before the consuming stream is done with it. No host sync here
    (torchvision's decoder itself waits for its own stream before it returns).

    One side stream per `slot` (`side_stream`): decoding threads each pass their own slot, so
    none waits for another's decodes through a shared stream."""
    side, consumer = side_stream(device, "decode", slot), torch.cuda.current_stream(device)
    with torch.cuda.stream(side):
        images = decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)
    consumer.wait_stream(side)
    for image in images:
        image.record_stream(consumer)
    return images


@functools.lru_cache(maxsize=64)
def pil_nearest_index(n_in: int, n_out: int) -> tuple[int, ...]:
    """Source index of each output pixel in PIL's nearest resize: it starts at half a step
    and adds the step (n_in / n_out) in doubles, truncating each sum, so the accumulated
    rounding decides ties that floor((i + 0.5) * step) (torch's nearest-exact) breaks the
    other way for sizes like 320 → 224."""
    step, pos, out = n_in / n_out, n_in / n_out * 0.5, []
    for _ in range(n_out):
        out.append(int(pos))
        pos += step
    return tuple(out)


def _nearest(batch: torch.Tensor, height: int, width: int) -> torch.Tensor:
    h, w = batch.shape[-2:]
    rows = device_constant(pil_nearest_index(h, height), torch.int64, batch.device)
    cols = device_constant(pil_nearest_index(w, width), torch.int64, batch.device)
    return batch.index_select(-2, rows).index_select(-1, cols)


def resize_on_device(images: list[torch.Tensor], recipe: ImageRecipe) -> torch.Tensor:
    """uint8 [3, H, W] images (one device) → uint8 [N, 3, size, size] after the recipe's
    resize (and crop), on their device; frames of one size are resized as one batch. Nothing
    here waits for the device (no host data copied in, no list-indexed writes)."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        by_shape.setdefault(tuple(image.shape), []).append(i)
    mode = _TV_MODES[recipe.interpolation]
    out = None
    if len(by_shape) != 1:
        out = torch.empty((len(images), 3, recipe.size, recipe.size), dtype=torch.uint8,
                          device=images[0].device if images else "cpu")
    for indices in by_shape.values():
        batch = torch.stack([images[i] for i in indices])
        if recipe.resize == "exact" and recipe.interpolation == "nearest":
            batch = _nearest(batch, recipe.size, recipe.size)
        elif recipe.resize == "exact":
            batch = TF.resize(batch, [recipe.size, recipe.size], interpolation=mode, antialias=True)
        else:
            if recipe.interpolation == "nearest":
                h, w = batch.shape[-2:]
                short = recipe.resize_to or recipe.size
                # torchvision's own output size for a shorter-side resize
                height, width = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
                batch = _nearest(batch, height, width)
            else:
                batch = TF.resize(batch, recipe.resize_to or recipe.size, interpolation=mode, antialias=True)
            batch = TF.center_crop(batch, recipe.size)
        if out is None:  # one frame size, the usual case: the batch is the result
            return batch.contiguous()
        for k, i in enumerate(indices):  # int indices: a list index would copy it in and sync
            out[i] = batch[k]
    assert out is not None  # for the type checker: empty `images` leave it made above
    return out


def decode_on_device(jpegs: list[torch.Tensor], recipe: ImageRecipe,
                     device: torch.device | str) -> torch.Tensor:
    """The device twin of `decode_many`: uint8 [N, 3, size, size] on `device`."""
    return resize_on_device(decode_batch(jpegs, device), recipe)
