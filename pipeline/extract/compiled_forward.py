"""`extract.compile`: an extractor's forward compiled once, for one batch shape, per process.

`torch.compile(..., dynamic=False)` specialises on every input shape, and the runner's batches
are full except the last one of each shard, whose size differs from shard to shard: each
would compile again (seconds on a GPU, tens of seconds on a CPU), and after
`torch._dynamo.config.recompile_limit` (8) compilations of one code object dynamo quietly
runs it eagerly from then on. That code object is shared: `FrameExtractor.forward` serves
vgg19 and resnet152 alike. CUDA graphs (mode `reduce-overhead`) replay one shape only, too.
So the compiled forward always gets exactly `batch_size` items: a short batch is padded with
zero rows laid out like a full batch, and the padded rows' outputs are cut off here, before
the runner sees them. One graph per extractor, precision and batch size serves every shard a
process runs; that is the whole compile cache (dynamo keeps it on the code object).
"""

from __future__ import annotations

import types
from collections.abc import Callable

import torch

#: torch.compile modes `extract.compile` may name; `true` means "default"
MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: modes that capture CUDA graphs on a CUDA device (their outputs are overwritten by the next replay)
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def compile_mode(setting: bool | str) -> str | None:
    """`extract.compile` → the torch.compile mode, or None for eager."""
    if setting is False:
        return None
    if setting is True:
        return "default"
    if setting not in MODES:
        raise ValueError(f"compile mode {setting!r} unknown; choose false, true or one of {', '.join(MODES)}")
    return setting


def memory_format_of(batch: torch.Tensor) -> torch.memory_format:
    """The layout a batch is dense in: the padding must match it, or dynamo (which guards on
    strides) compiles the short batch again."""
    if batch.dim() == 4 and batch.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if batch.dim() == 5 and batch.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def padded(batch: torch.Tensor, size: int) -> torch.Tensor:
    """`batch` followed by zero rows up to `size` items, in the batch's own layout."""
    filler = torch.zeros((size - batch.shape[0], *batch.shape[1:]), dtype=batch.dtype,
                         device=batch.device).contiguous(memory_format=memory_format_of(batch))
    return torch.cat([batch, filler])


def undecorated(forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A bound forward without its decorator. VGGish's forward carries `@torch.inference_mode()`
    for researchers who call it directly; entered inside a traced region it makes inductor fail
    ("Cannot set version_counter for inference tensor", torch 2.14). The runner calls every
    forward under inference_mode already, so the compiled one can do without it."""
    inner = getattr(getattr(forward, "__func__", None), "__wrapped__", None)
    owner = getattr(forward, "__self__", None)
    return forward if inner is None or owner is None else types.MethodType(inner, owner)


class FixedShapeForward:
    """`forward` compiled for batches of exactly `batch_size` items (see the module's doc)."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
                 mode: str) -> None:
        self.eager, self.batch_size, self.mode = forward, batch_size, mode
        self.compiled = torch.compile(undecorated(forward), dynamic=False, mode=mode)
        self.primed = False

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        n = batch.shape[0]
        if n > self.batch_size:
            raise ValueError(f"batch of {n} items for a forward compiled for {self.batch_size}")
        if not self.primed:
            # one eager item first: constants a forward makes lazily and caches in a global
            # (frames.device_constant) would otherwise be traced while absent, and dynamo would
            # compile a second time when it finds them present
            self.eager(batch[:1])
            self.primed = True
        if n < self.batch_size:  # at most one batch per shard: the waste is < 1 batch a shard
            batch = padded(batch, self.batch_size)
        graphs = self.mode in CUDA_GRAPH_MODES and batch.device.type == "cuda"
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
        out = self.compiled(batch)[:n]
        # a CUDA graph's output is overwritten by its next replay, and the runner keeps the
        # outputs of a clip that spans batches until the clip is complete
        return out.clone() if graphs else out
