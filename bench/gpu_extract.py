"""End-to-end extract throughput on a GPU node: the real runner (`run_extract_many`) from cut
clips to feature shard files, over a matrix of extractor × precision × decode × batch size.

Needs only torch, torchvision, numpy, h5py, pandas, PyYAML, tqdm and Pillow: the cut-clip
store is built here with PIL-encoded JPEGs (no ffmpeg), weights are seeded random (no
download; throughput does not depend on the weight values, the features are not research
features). Each configuration runs whole shards until its time box is spent, the first
shard (worker start, cuDNN autotuning) is left out of the rate when more than one ran, and
configurations are skipped once the total budget is spent.

    bench/gpu.sh                 # on the GPU node, ≤ 6 min
    bench/gpu.sh --smoke         # tiny CPU run that checks the script works
Prints a markdown table (also to $OUT/gpu_bench.md when OUT is set): frames/s, GPU
utilisation (nvidia-smi samples, else torch.cuda.utilization) and the runner's time split.
Device decode runs both ways: ahead of the network in `decode_threads` threads, several clips
per call (the default), and clip by clip in the main thread (decode_threads 0, the path the
H200 run of the previous session measured). Strict fp32 VGG-19 runs channels_last (the
runner's layout) and contiguous, to tell whether its slowness is cuDNN's NHWC fp32 kernels.
`extract.compile: reduce-overhead` (torch.compile for one fixed batch shape + CUDA graphs) runs
for vgg19 and resnet152, to compare with the same rows uncompiled; its first shard (the
compile) is left out of the rate, so such a row runs at least two shards.
"""

from __future__ import annotations

import argparse
import copy
import io
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extractors import catalog  # noqa: E402
from extractors.base import ClipInput, Extractor  # noqa: E402
from extractors.frames import decode_many, decode_on_device, pack_jpegs, unpack_jpegs  # noqa: E402
from pipeline.core.config import load_config  # noqa: E402
from pipeline.core.sharding import Shard  # noqa: E402
from pipeline.extract.stage import precision_mode, run_extract_many  # noqa: E402
from pipeline.store import clips as clip_store  # noqa: E402


# -- synthetic cut clips ------------------------------------------------------------------
def scene_frames(n: int, size: tuple[int, int], seed: int, quality: int = 75) -> list[bytes]:
    """`n` JPEGs of one moving scene: smooth background, shapes, texture, camera pan; sized
    like real AVE / LLP frames (a few KB to ~15 KB), not noise, which JPEG cannot compress."""
    rng = np.random.default_rng(seed)
    w, h = size
    big_w, big_h = w + 2 * n + 8, h + n + 8
    yy, xx = np.mgrid[0:big_h, 0:big_w].astype(np.float32)
    base = np.stack(
        [
            128 + 100 * np.sin(xx / (30 + 20 * rng.random()) + rng.random() * 6),
            128 + 90 * np.cos(yy / (25 + 20 * rng.random()) + rng.random() * 6),
            128 + 80 * np.sin((xx + yy) / (40 + 30 * rng.random())),
        ],
        -1,
    )
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.integers(0, big_w - 20), rng.integers(0, big_h - 20)
        box = [int(x0), int(y0), int(x0 + rng.integers(10, w // 3)), int(y0 + rng.integers(10, h // 3))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    texture = rng.normal(0, 2.5, (big_h, big_w, 3))
    pixels = np.clip(np.asarray(image, dtype=np.float32) + texture, 0, 255).astype(np.uint8)
    frames = []
    for i in range(n):
        crop = pixels[i // 2 : i // 2 + h, 2 * i : 2 * i + w]
        buf = io.BytesIO()
        Image.fromarray(crop).save(buf, "JPEG", quality=quality)
        frames.append(buf.getvalue())
    return frames


@dataclass
class Store:
    """Cut-clip shard files of one frame size, shared (hard-linked) by every configuration."""

    root: Path
    shards: int
    clips_per_shard: int
    frames_per_clip: int
    size: tuple[int, int]
    mean_jpeg_bytes: float


def build_store(
    root: Path,
    size: tuple[int, int],
    frames_per_clip: int,
    clips_per_shard: int,
    shards: int,
    scenes: int = 8,
) -> Store:
    frame_sets = [scene_frames(frames_per_clip, size, seed=s) for s in range(scenes)]
    for s in range(shards):
        media = {
            f"c{s:03d}_{k:05d}": clip_store.ClipMedia(
                audio=np.zeros(160, np.int16),
                sample_rate=16000,
                frames=frame_sets[(s + k) % scenes],
                frame_times=np.arange(frames_per_clip) / (frames_per_clip / 10),
            )
            for k in range(clips_per_shard)
        }
        shard_file = root / "clips" / f"{Shard(s, shards).name}.h5"
        clip_store.write_part(shard_file, media)
        clip_store.consolidate(shard_file)
    mean = float(np.mean([len(j) for fs in frame_sets for j in fs]))
    return Store(root, shards, clips_per_shard, frames_per_clip, size, mean)


def fresh_workdir(store: Store, root: Path) -> Path:
    """A work dir whose clips are the store's (hard links, else copies) and nothing else."""
    if root.exists():
        shutil.rmtree(root)
    (root / "clips").mkdir(parents=True)
    for src in sorted((store.root / "clips").glob("*.h5")):
        try:
            os.link(src, root / "clips" / src.name)
        except OSError:
            shutil.copy2(src, root / "clips" / src.name)
    config = {"dataset": {"name": "ave"}, "sharding": {"num_shards": store.shards}}
    (root / "avel.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return root


# -- the network replaced by a no-op: what the host (and the decode) can feed ---------------
class NoOpNet(torch.nn.Module):
    """Zeros of the network's output shape: the runner, loader, decode, normalise, fold and
    store all run for real; only the network's arithmetic is gone."""

    def __init__(self, per_item: tuple[int, ...]) -> None:
        super().__init__()
        self.per_item = per_item

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((x.shape[0], *self.per_item), dtype=torch.float32)


def with_contiguous_layout(extractor: Extractor) -> Extractor:
    """A twin that runs its network in NCHW (contiguous) instead of the runner's channels_last:
    strict fp32 (TF32 off) has no tensor-core kernels, and cuDNN's NHWC fp32 ones can be far
    slower than its NCHW ones; this row tells whether that is what makes fp32 VGG-19 slow."""
    twin = copy.copy(extractor)
    twin.net = copy.deepcopy(extractor.net)  # type: ignore[attr-defined]  # moved/laid out on its own
    twin.memory_format = torch.contiguous_format  # type: ignore[misc]
    return twin


def with_noop_net(extractor: Extractor) -> Extractor:
    per_item = {
        "vgg19": lambda e: (512, e.map_side(), e.map_side()),
        "resnet152": lambda e: (2048,),
        "r2plus1d_18": lambda e: (512,),
    }[extractor.name](extractor)
    twin = copy.copy(extractor)
    twin.net = NoOpNet(per_item)  # type: ignore[attr-defined]
    return twin


# -- GPU utilisation ---------------------------------------------------------------------
class UtilisationSampler:
    """GPU busy % while a configuration runs: nvidia-smi every 200 ms, else
    torch.cuda.utilization (needs pynvml), else nothing."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.samples, self.proc, self.thread = device, [], None, None
        self.stop = threading.Event()

    def __enter__(self) -> UtilisationSampler:
        if self.device.type != "cuda":
            return self
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(
                [
                    "nvidia-smi",
                    "-i",
                    str(index),
                    "--query-gpu=utilization.gpu",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "200",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            self.thread = threading.Thread(target=self._read_smi, daemon=True)
        else:
            self.thread = threading.Thread(target=self._poll_torch, args=(index,), daemon=True)
        self.thread.start()
        return self

    def _read_smi(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if line.strip().isdigit():
                self.samples.append(float(line))

    def _poll_torch(self, index: int) -> None:
        while not self.stop.is_set():
            try:
                self.samples.append(float(torch.cuda.utilization(index)))
            except Exception:  # no pynvml: no numbers, not a failed benchmark
                return
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        if self.thread is not None:
            self.thread.join(timeout=2)

    def mean(self) -> str:
        return f"{np.mean(self.samples):.0f}" if self.samples else "n/a"


# -- one configuration -----------------------------------------------------------------
@dataclass
class Config:
    names: tuple[str, ...]
    store: str
    precision: str
    decode: str
    batch: int
    net: str = "real"  # "noop": the host ceiling (network replaced by a no-op)
    compile: bool | str = False  # extract.compile: False, or a torch.compile mode
    decode_threads: int = 2  # extract.decode_threads (device decode only; 0 = clip by clip)
    layout: str = "channels_last"  # "contiguous": the network in NCHW (with_contiguous_layout)


def run_config(
    cfg: Config,
    store: Store,
    extractors: dict[str, Extractor],
    scratch: Path,
    device: torch.device,
    workers: int,
    box_s: float,
) -> dict:
    wd = fresh_workdir(store, scratch / "wd")
    config = load_config(wd)
    per_shard: list[tuple[float, int, dict]] = []
    sampler = UtilisationSampler(device)
    warm = 0.0
    with sampler:
        started = time.perf_counter()
        for s in range(store.shards):
            t0 = time.perf_counter()
            summaries = run_extract_many(
                wd,
                list(cfg.names),
                Shard(s, store.shards),
                config,
                progress=False,
                extractors={n: extractors[n] for n in cfg.names},
                device=str(device),
                precision=cfg.precision,
                batch_size=cfg.batch,
                num_workers=workers,
                decode=cfg.decode,
                decode_threads=cfg.decode_threads,
                flush_clips=64,
                prefetch=4,
                compile=cfg.compile,
            )
            seconds = time.perf_counter() - t0
            clips = max(sm["done"] for sm in summaries)
            per_shard.append((seconds, clips * store.frames_per_clip, summaries))
            if s == 0:
                warm = len(sampler.samples)
            # a compiled row's first shard is the compile: it needs a second one to measure
            if time.perf_counter() - started > box_s and (s > 0 or not cfg.compile):
                break
    measured = per_shard[1:] if len(per_shard) > 1 else per_shard
    seconds = sum(p[0] for p in measured)
    frames = sum(p[1] for p in measured)
    split: dict[str, float] = {}
    for _, _, summaries in measured:
        for key, value in summaries[0].get("timings", {}).items():
            split[key] = split.get(key, 0.0) + value
    samples = sampler.samples[int(warm) :] if len(per_shard) > 1 else sampler.samples
    sampler.samples = samples
    failed = sum(sm["failed"] for p in per_shard for sm in p[2])
    calls = sum(p[2][0].get("decode_calls", 0) for p in measured)
    shutil.rmtree(wd, ignore_errors=True)
    return {
        "fps": frames / seconds if seconds else 0.0,
        "frames": frames,
        "seconds": seconds,
        "shards": f"{len(measured)}/{len(per_shard)}",
        "util": sampler.mean(),
        "split": split,
        "failed": failed,
        "per_call": f"{frames / calls:.0f}" if calls else "–",
    }


def decode_agreement(store: Store, extractor: Extractor, device: torch.device) -> str:
    """Device decode vs the PIL reference on this store's frames: pixel and feature gaps."""
    shard_file = store.root / "clips" / f"{Shard(0, store.shards).name}.h5"
    reader = clip_store.ClipReader(shard_file)
    clip_id = sorted(clip_store.stored_clip_ids(shard_file))[0]
    frames = reader.read(clip_id, audio=False).frames
    reader.close()
    jpegs = [frames[i] for i in extractor.frame_indices(ClipInput(frames=frames))]  # type: ignore[attr-defined]
    image = extractor.image  # type: ignore[attr-defined]
    ref = decode_many(jpegs, image)
    dev = decode_on_device(unpack_jpegs(*pack_jpegs(jpegs)), image, device).cpu()
    gap = (ref.int() - dev.int()).abs()
    extractor.to(device)
    items = extractor.items_from_pixels  # type: ignore[attr-defined]
    with torch.inference_mode(), precision_mode(device, "fp32"):
        a = extractor.forward(items(ref).to(device)).float()
        b = extractor.forward(items(dev).to(device)).float()
    rel = float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
    return (
        f"{extractor.name} ({len(jpegs)} frames, {image.resize} {image.interpolation} → {image.size}):"
        f" pixel |diff| max {int(gap.max())}, mean {float(gap.float().mean()):.3f};"
        f" fp32 feature max |diff| / max |ref| {rel:.2e}"
    )


def host_syncs(store: Store, extractor: Extractor, device: torch.device, scratch: Path, workers: int) -> str:
    """Where the host waits for the device during a warm shard (vgg19 bf16, device decode
    ahead): torch.cuda.set_sync_debug_mode reports every synchronising call, here counted
    by thread and caller line. By design the main thread waits once per store flush (the
    copy of the folded features); decode threads wait only on their own streams."""
    if device.type != "cuda":
        return "host syncs: not measured (CUDA only)"
    wd = fresh_workdir(store, scratch / "syncs")
    config = load_config(wd)
    options = dict(progress=False, extractors={extractor.name: extractor}, device=str(device),
                   precision="bf16", batch_size=256, num_workers=workers, decode="device",
                   flush_clips=64)
    run_extract_many(wd, [extractor.name], Shard(0, store.shards), config, **options)  # warm-up
    counts: Counter[str] = Counter()
    shown = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if "synchroniz" in str(message).lower():
            counts[f"{threading.current_thread().name} {Path(filename).name}:{lineno}"] += 1
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            (summary,) = run_extract_many(wd, [extractor.name], Shard(1, store.shards), config, **options)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    shutil.rmtree(wd, ignore_errors=True)
    where = ", ".join(f"{k} ×{v}" for k, v in counts.most_common(8)) or "none"
    flushes = -(-summary["done"] // 64)
    return (f"host syncs in a warm vgg19 shard ({summary['done']} clips, {flushes} flush(es), "
            f"decode threads {summary.get('decode_threads')}): {sum(counts.values())} — {where}")


# -- the matrix ----------------------------------------------------------------------------
#: a compiled row starts only with this much of the budget left: its compile (not measured on
#: a GPU yet; tens of seconds for ResNet-152 on this project's CPU) would outrun the hard stop
COMPILE_RESERVE_S = 60.0


def matrix(smoke: bool, device: torch.device, with_compile: bool = True) -> list[Config]:
    if smoke:
        rows = [
            Config(("vgg19",), "ave", "fp32", "cpu", 16),
            Config(("vgg19",), "ave", "bf16", "device", 16),
            Config(("vgg19",), "ave", "bf16", "device", 16, decode_threads=0),
            Config(("resnet152",), "llp", "fp32", "device", 16),
            Config(("resnet152", "r2plus1d_18"), "llp", "fp32", "device", 8),
            Config(("resnet152",), "llp", "fp32", "device", 16, "noop"),
            Config(("vgg19",), "ave-small", "fp32", "device", 16, layout="contiguous"),
            Config(("vgg19",), "ave", "bf16", "device", 16, compile="reduce-overhead"),
        ]
        return [c for c in rows if with_compile or not c.compile]
    # most telling first: the budget skips the tail. Decode ahead (2 threads) next to clip by
    # clip (0); compiled vgg19 and resnet152 (settings of the first and third rows, so the
    # pairs compare; each compile, tens of seconds, is left out of its rate); then the
    # CPU-decode reference, the host ceiling (no-op net), the one-pass video row, and strict
    # fp32 VGG-19 both layouts on a small store (a shard at ~300 frames/s would otherwise eat a
    # minute). Dropped for the compile rows: the no-op rows with 0 decode threads, vgg19 with 4
    # decode threads and r2plus1d_18 alone (it still runs in the one-pass row)
    bf = [
        Config(("vgg19",), "ave", "bf16", "device", 256),
        Config(("vgg19",), "ave", "bf16", "device", 256, decode_threads=0),
        Config(("resnet152",), "llp", "bf16", "device", 256),
        Config(("resnet152",), "llp", "bf16", "device", 256, decode_threads=0),
        Config(("vgg19",), "ave", "bf16", "device", 256, compile="reduce-overhead"),
        Config(("resnet152",), "llp", "bf16", "device", 256, compile="reduce-overhead"),
        Config(("vgg19",), "ave", "bf16", "cpu", 256),
        Config(("resnet152",), "llp", "bf16", "cpu", 256),
        Config(("vgg19",), "ave", "bf16", "device", 256, "noop"),
        Config(("resnet152",), "llp", "bf16", "device", 256, "noop"),
        Config(("resnet152", "r2plus1d_18"), "llp", "bf16", "device", 256),
        Config(("vgg19",), "ave-small", "fp32", "device", 256),
        Config(("vgg19",), "ave-small", "fp32", "device", 256, layout="contiguous"),
    ]
    return [c for c in bf if with_compile or not c.compile]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny CPU run: checks the script, measures nothing"
    )
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds for all configurations (default 270)"
    )
    parser.add_argument("--box", type=float, default=None, help="seconds per configuration (default 12)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: cores - 2)")
    parser.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="leave out the extract.compile rows (torch.compile + CUDA graphs; first shard = compile)",
    )
    parser.add_argument(
        "--scratch", default=None, help="where the synthetic store goes (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    smoke = args.smoke
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    budget = args.budget if args.budget is not None else (600.0 if smoke else 270.0)
    box = args.box if args.box is not None else (1.0 if smoke else 12.0)
    workers = (
        args.workers if args.workers is not None else (1 if smoke else max(1, (os.cpu_count() or 4) - 2))
    )
    started = time.perf_counter()

    lines = ["# avel extract benchmark (bench/gpu.sh)", ""]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    lines.append(
        f"device {device} ({name}); torch {torch.__version__}; {os.cpu_count()} cores, "
        f"{workers} loader workers; weights: RANDOM (seeded) — throughput only, not research features"
        + ("; SMOKE RUN (tiny recipes, nothing measured)" if smoke else "")
    )

    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        scratch = Path(tmp)
        if smoke:
            opts = {
                "vgg19": {"segments": 2, "frames_per_segment": 2, "image_size": 32},
                "resnet152": {"frames": 8, "min_frames": 1, "image_size": 32},
                "r2plus1d_18": {"clips": 2, "clip_len": 4, "min_frames": 1, "image_size": 32},
            }
            stores = {
                "ave": build_store(scratch / "ave", (320, 240), 4, 3, 2),
                "llp": build_store(scratch / "llp", (480, 360), 8, 3, 2),
            }
            stores["ave-small"] = stores["ave"]
        else:
            opts = {"vgg19": {}, "resnet152": {}, "r2plus1d_18": {}}
            stores = {
                "ave": build_store(scratch / "ave", (320, 240), 160, 128, 8),  # AVE: 16 fps × 10 s
                "llp": build_store(scratch / "llp", (480, 360), 80, 256, 8),  # LLP: 8 fps × 10 s
                "ave-small": build_store(scratch / "ave-small", (320, 240), 160, 32, 3),  # slow rows
            }
        for key, st in stores.items():
            lines.append(
                f"store {key}: {st.shards} shards × {st.clips_per_shard} clips × {st.frames_per_clip} "
                f"frames, {st.size[0]}x{st.size[1]} JPEG, mean {st.mean_jpeg_bytes / 1024:.1f} KB/frame "
                f"(built in {time.perf_counter() - started:.0f} s)"
            )
        extractors = {n: catalog.create(n, weights="random", seed=0, **o) for n, o in opts.items()}
        noop = {n: with_noop_net(e) for n, e in extractors.items()}
        configs = matrix(smoke, device, not args.no_compile)
        contiguous = {
            n: with_contiguous_layout(extractors[n])
            for n in sorted({n for c in configs if c.layout == "contiguous" for n in c.names})
        }
        lines += ["", "## device decode vs CPU (PIL) decode", ""]
        for n, key in (("vgg19", "ave"), ("resnet152", "llp"), ("r2plus1d_18", "llp")):
            try:
                lines.append("- " + decode_agreement(stores[key], extractors[n], device))
            except Exception as exc:  # a failed check must not cost the throughput table
                lines.append(f"- {n}: decode check failed: {type(exc).__name__}: {exc}")
        try:
            syncs = host_syncs(stores["ave-small"], extractors["vgg19"], device, scratch, workers)
            lines.append("- " + syncs)
        except Exception as exc:  # a failed check must not cost the throughput table
            lines.append(f"- host syncs: check failed: {type(exc).__name__}: {str(exc)[:200]}")
        print("\n".join(lines), flush=True)

        header = (
            "| extractors | precision | decode | decode threads | batch | frames/s | GPU util % |"
            " shards (measured/run) | wait_s | decode_s | frames/decode call | device_s | store_s | failed |"
        )
        table = [
            "",
            "## end to end, cut clips → feature shards (frames/s = clip frames read per second)",
            "",
            header,
            "|" + "---|" * (header.count("|") - 1),
        ]
        print("\n".join(table), flush=True)
        blank = " |" * (header.count("|") - 6)
        for cfg in configs:
            spent = time.perf_counter() - started
            label = (
                "+".join(cfg.names)
                + (" (no-op net)" if cfg.net == "noop" else "")
                + (f" (compiled {cfg.compile})" if cfg.compile else "")
                + (f" ({cfg.layout})" if cfg.layout != "channels_last" else "")
            )
            threads = cfg.decode_threads if cfg.decode == "device" else "–"
            row = f"| {label} | {cfg.precision} | {cfg.decode} | {threads} | {cfg.batch} |"
            if spent > budget or (cfg.compile and not smoke and budget - spent < COMPILE_RESERVE_S):
                row += " skipped (budget)" + blank
            else:
                try:
                    r = run_config(
                        cfg,
                        stores[cfg.store],
                        noop if cfg.net == "noop"
                        else contiguous if cfg.layout == "contiguous"
                        else extractors,
                        scratch,
                        device,
                        workers,
                        min(box, max(budget - spent, 1.0)),
                    )
                    sp = r["split"]
                    row += (
                        f" {r['fps']:,.0f} | {r['util']} | {r['shards']} | {sp.get('wait_s', 0):.1f} |"
                        f" {sp.get('decode_s', 0):.1f} | {r['per_call']} | {sp.get('device_s', 0):.1f} |"
                        f" {sp.get('store_s', 0):.1f} |"
                        f" {r['failed']} |"
                    )
                except Exception as exc:  # report and go on to the next configuration
                    row += f" error: {type(exc).__name__}: {str(exc)[:120]}" + blank
            table.append(row)
            print(row, flush=True)
            save(lines + table)
        table += [
            "",
            f"total {time.perf_counter() - started:.0f} s. Goals (H100/H200, bf16, end to end): "
            "VGG-19 pool5 ≥ 8,000 and ResNet-152 ≥ 12,000 frames/s.",
            "time split: wait_s = main thread waiting for its next clip (workers' read + CPU decode, or "
            "read + pack; with decode threads also their decode); decode_s = device decode + resize, "
            "summed over the decode threads (which overlap the main thread), on the main thread with "
            "0 threads; device_s = transfer + forward + fold (asynchronous on CUDA); store_s = the one "
            "copy to the host per flush + HDF5 part + ledger.",
        ]
        print("\n".join(table[-3:]), flush=True)
    save(lines + table)
    return 0


def save(text_lines: list[str]) -> None:
    """The table so far to $OUT/gpu_bench.md (after every row: a hard stop keeps the rows done)."""
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu_bench.md").write_text("\n".join(text_lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
