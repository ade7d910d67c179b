"""Importing TensorFlow next to PyTorch without crashing the process.

With torch 2.14 / tensorflow-cpu 2.21 on Linux, importing TensorFlow and THEN Triton (which
torch imports lazily, e.g. through `torch._dynamo` when torchvision.models loads) kills the
process with a segmentation fault; Triton first, TensorFlow second is fine. Every TF import
in avel goes through `import_tf()`, which loads Triton (when installed) before TensorFlow.
"""

from __future__ import annotations

from types import ModuleType


def import_tf() -> tuple[ModuleType, ModuleType]:
    """(tensorflow.compat.v1, tf_slim), imported in a crash-free order; ImportError naming the
    `tf` extra when TensorFlow or tf-slim is missing."""
    try:
        import triton  # noqa: F401  (must precede TensorFlow, see the module docstring)
    except ImportError:
        pass
    try:
        import tensorflow.compat.v1 as tf
        import tf_slim as slim
    except ImportError as exc:
        raise ImportError("the TF-slim VGGish needs the `tf` extra: pip install 'avel[tf]'") from exc
    return tf, slim
