"""TF-slim VGGish checkpoint → PyTorch state_dict for `extractors.vggish.VGGish`.

Conv kernels go from TF's HWIO to torch's OIHW, dense kernels from [in, out] to [out, in],
biases are copied. fc1_1 needs no row shuffle because our module flattens its last conv
maps in TF's NHWC order. Reading the checkpoint needs TensorFlow (extra `tf`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from extractors.tensorflow_import import import_tf
from extractors.weights_cache import write_into_cache

#: TF variable scope → torch parameter prefix (torchvggish's layer indices)
LAYERS: dict[str, str] = {
    "vggish/conv1": "features.0",
    "vggish/conv2": "features.3",
    "vggish/conv3/conv3_1": "features.6",
    "vggish/conv3/conv3_2": "features.8",
    "vggish/conv4/conv4_1": "features.11",
    "vggish/conv4/conv4_2": "features.13",
    "vggish/fc1/fc1_1": "embeddings.0",
    "vggish/fc1/fc1_2": "embeddings.2",
    "vggish/fc2": "embeddings.4",
}


def convert_variables(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """TF variables by checkpoint name → torch state_dict (float32, contiguous)."""
    state: dict[str, torch.Tensor] = {}
    for scope, prefix in LAYERS.items():
        try:
            kernel = np.asarray(variables[f"{scope}/weights"])
            bias = np.asarray(variables[f"{scope}/biases"])
        except KeyError as exc:
            raise KeyError(f"VGGish checkpoint lacks variable {exc.args[0]!r} "
                           f"(has {sorted(variables)[:6]}...)") from None
        if kernel.ndim == 4:
            kernel = kernel.transpose(3, 2, 0, 1)  # HWIO → OIHW
        elif kernel.ndim == 2:
            kernel = kernel.T  # [in, out] → [out, in]
        else:
            raise ValueError(f"{scope}/weights has unexpected shape {kernel.shape}")
        state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel, np.float32))
        state[f"{prefix}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, np.float32))
    return state


def read_checkpoint(checkpoint: str | Path) -> dict[str, np.ndarray]:
    """All variables of a TF checkpoint (V1 single file like the release's, or V2 prefix)."""
    tf, _ = import_tf()
    path = Path(checkpoint)
    if not path.is_file() and not Path(f"{path}.index").is_file():
        raise FileNotFoundError(f"VGGish TF checkpoint not found: {path}")
    reader = tf.train.load_checkpoint(str(path))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def convert_checkpoint(checkpoint: str | Path, out: str | Path) -> dict[str, torch.Tensor]:
    """Read `checkpoint`, convert, and save the state_dict to `out` (written atomically)."""
    state = convert_variables(read_checkpoint(checkpoint))
    write_into_cache(Path(out), lambda temp: torch.save(state, temp))
    return state
