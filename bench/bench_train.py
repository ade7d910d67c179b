"""Training epoch time: our loop vs a loop written like the CPSP original, same features.

Original style (fully_supv_main.py + AVE_dataset.py): features in float64 HDF5 files read
item by item by the Dataset (h5 opened lazily per worker), DataLoader batches, the model
wrapped in nn.DataParallel, `model.double()` at the start of every epoch, inputs and labels
cast to double per batch, the CPSP fully losses, clip_grad_norm_ 0.1, Adam.
Ours: the Trainer with the `ave-fully/cpsp` preset, features in memory, float32.

Features are synthetic with the AVE shapes: audio [10,128], visual [10,7,7,512], labels
[10,29]. The full AVE is 4,143 clips (3,339 train); on CPU the default is a subset so the
bench finishes in about two minutes -- pass `--clips 4143` (GPU) for the real size.

    python bench/bench_train.py [--clips N] [--batch-size 64] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.registry import build  # noqa: E402
from models.training import psp_losses as L  # noqa: E402
from models.training.ave_data import ArrayAVEDataset  # noqa: E402
from models.training.presets import get_preset, with_overrides  # noqa: E402
from models.training.trainer import Trainer, make_family  # noqa: E402


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    audio = rng.normal(size=(n, 10, 128)).astype(np.float32)
    video = np.abs(rng.normal(size=(n, 10, 7, 7, 512))).astype(np.float32)
    labels = np.zeros((n, 10, 29), np.float32)
    cls = rng.integers(0, 28, n)
    for i in range(n):
        s = rng.integers(0, 5)
        labels[i, :, 28] = 1
        labels[i, s:s + 5, 28] = 0
        labels[i, s:s + 5, cls[i]] = 1
    return audio, video, labels


class OriginalStyleDataset(Dataset):
    """As AVE_dataset.AVEDataset_VGG: open the h5 files lazily, read one item per call."""

    def __init__(self, directory: Path, n: int) -> None:
        self.dir, self.n = directory, n
        self.files: dict[str, h5py.Dataset] | None = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if self.files is None:
            self.files = {k: h5py.File(self.dir / f"{k}.h5", "r")["avadataset"]
                          for k in ("visual_feature", "audio_feature", "right_labels")}
        return (self.files["visual_feature"][i], self.files["audio_feature"][i],
                self.files["right_labels"][i])


def original_epoch(model: nn.Module, opt: torch.optim.Optimizer, loader: DataLoader,
                   device: torch.device) -> None:
    model.train()
    model.double()  # as upstream, every epoch
    opt.zero_grad()
    for visual, audio, labels in loader:
        visual, audio = visual.double().to(device), audio.double().to(device)
        labels = labels.double().to(device)
        event_logits, category_logits, avps, fusion = model(visual, audio)
        labels_bce, seg = labels[:, :, :-1].max(-1)
        labels_event, _ = seg.max(-1)
        e, pos, neg = L.segment_flags(labels_bce)
        loss = (F.binary_cross_entropy_with_logits(event_logits, labels_bce)
                + F.cross_entropy(category_logits, labels_event)
                + 100 * L.avps_loss(avps, L.cpsp_avps_target(labels_bce))
                + 0.01 * L.segment_contrastive_loss(fusion, e, pos, neg)
                + L.video_contrastive_loss(fusion, labels_event))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        opt.zero_grad()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=None,
                    help="training clips (default: 3339 on GPU, 96 on CPU)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1, help="timed epochs each (after 1 warm-up batch)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    n = args.clips or (3339 if device.type == "cuda" else 96)
    audio, video, labels = synthetic(n)
    print(f"device {device}, {n} training clips, batch {args.batch_size}, "
          f"{torch.get_num_threads()} CPU threads, {args.workers} loader workers (original)")

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, arr in (("visual_feature", video), ("audio_feature", audio), ("right_labels", labels)):
            with h5py.File(d / f"{name}.h5", "w") as fh:  # released AVE features are float64
                fh.create_dataset("avadataset", data=arr.astype(np.float64))

        torch.manual_seed(123)
        net = nn.DataParallel(build("cpsp-fully-ave")).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loader = DataLoader(OriginalStyleDataset(d, n), batch_size=args.batch_size, shuffle=True,
                            num_workers=args.workers, pin_memory=device.type == "cuda")
        warm = DataLoader(Subset(OriginalStyleDataset(d, n), range(min(n, args.batch_size))),
                          batch_size=args.batch_size)
        original_epoch(net, opt, warm, device)  # warm-up (kernels, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.epochs):
            original_epoch(net, opt, loader, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t_orig = (time.perf_counter() - t0) / args.epochs

    times = {}
    for precision in ("float32", "float64"):
        preset = with_overrides(get_preset("ave-fully", "cpsp"),
                                {"batch_size": args.batch_size, "precision": precision})
        trainer = Trainer(make_family(preset, 28), preset, tempfile.mkdtemp(), device=str(device),
                          progress=False)
        model = trainer._model()
        topt = trainer._optimizer(model)
        ds = ArrayAVEDataset(audio, video, labels)
        trainer.train_epoch(model, topt, Subset(ds, range(min(n, args.batch_size))), 0)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for e in range(args.epochs):
            trainer.train_epoch(model, topt, ds, e + 1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times[precision] = (time.perf_counter() - t0) / args.epochs

    print(f"original-style epoch (h5 per item, float64, .double() per epoch): {t_orig:8.2f} s")
    for precision, t in times.items():
        print(f"ours, in memory, {precision}:                                  {t:8.2f} s"
              f"   speed-up x{t_orig / t:.2f}")


if __name__ == "__main__":
    main()
