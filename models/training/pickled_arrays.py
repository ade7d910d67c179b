"""The VGGSound-AVEL per-video zips: one pickled numpy array inside each, read by a
numpy-only unpickler so that a released (or hostile) file cannot run code. Imports no
torch, so `avel manifest` and `avel index` stay light."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np


def _latin1_bytes(text: object, encoding: object = "latin1") -> bytes:
    """What protocol 0-2 pickles call `_codecs.encode` for: turning a str back into the
    bytes of an array's buffer. Nothing else passes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refusing _codecs.encode: only str → latin1 bytes")
    return text.encode("latin1")


class _NumpyOnlyUnpickler:
    """Unpickles numpy arrays and nothing else (the VGGSound-AVEL .pkl files hold plain
    arrays), so reading them cannot run code. Protocols 0-2 (what the original Python 2-era
    files and avel's own export use) rebuild an array's bytes with `_codecs.encode`; that
    name resolves to a function that only turns a str into latin1 bytes."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}
    REPLACED = {("_codecs", "encode"): _latin1_bytes}

    @classmethod
    def load(cls, fh: Any) -> Any:
        class U(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                if (module, name) in cls.REPLACED:
                    return cls.REPLACED[(module, name)]
                if (module, name) not in cls.ALLOWED:
                    raise pickle.UnpicklingError(f"refusing {module}.{name}: only numpy arrays")
                return super().find_class(module, name)
        return U(fh).load()


# one VGGSound-AVEL feature member is ~1 MB (VGG-19 pool5, 10 s); a zip bomb stops at the cap
MAX_MEMBER_BYTES = 64 << 20


def read_zipped_array(path: str | Path) -> np.ndarray:
    """The single .pkl inside a VGGSound-AVEL `{video_id}.zip`, as a numpy array."""
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith(".pkl")]
        if len(names) != 1:
            raise ValueError(f"{path}: expected one .pkl inside, found {len(names)}")
        info = zf.getinfo(names[0])
        if info.file_size > MAX_MEMBER_BYTES:
            raise ValueError(f"{path}: {names[0]} inflates to {info.file_size} bytes, over the "
                             f"{MAX_MEMBER_BYTES >> 20} MB cap")
        with zf.open(info) as fh:
            data = fh.read(MAX_MEMBER_BYTES + 1)  # zipfile stops at the declared size anyway
        if len(data) > MAX_MEMBER_BYTES:
            raise ValueError(f"{path}: {names[0]} inflates past the {MAX_MEMBER_BYTES >> 20} MB cap")
        obj = _NumpyOnlyUnpickler.load(io.BytesIO(data))
    if not isinstance(obj, np.ndarray) or obj.dtype == object:
        raise ValueError(f"{path}: the .pkl holds {type(obj).__name__}, not a numeric array "
                         "(only numpy arrays are read)")
    return obj
