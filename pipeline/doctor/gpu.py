"""The GPU side: torch and torchvision builds, CUDA devices and driver, device JPEG decoding.

No GPU is a warning (everything runs on CPU, slowly) unless the config asks for one:
`extract.device: cuda` or `extract.decode: device` then block the extract stage.
"""

from __future__ import annotations

import ctypes
import io

import torch
import torchvision
from PIL import Image

from pipeline.doctor.report import Check
from pipeline.doctor.scope import Scope


def torch_check(scope: Scope) -> Check:
    cuda = torch.version.cuda or "none (CPU-only build)"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    cudnn_text = f", cuDNN {cudnn // 10000}.{cudnn % 10000 // 100}.{cudnn % 100}" if cudnn else ""
    return Check("torch", "ok", f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
                 f"built for CUDA {cuda}{cudnn_text}")


def cuda_check(scope: Scope) -> Check:
    wants_gpu = scope.config.extract.device == "cuda" or scope.config.extract.decode == "device"
    if not torch.cuda.is_available():
        driver = driver_version()
        why = (f"driver {driver} found but torch sees no device" if driver else "no NVIDIA driver "
               "(in a container: docker run --gpus all / apptainer --nv)")
        if wants_gpu and scope.runs("extract"):
            return Check("cuda", "blocker", f"{why}; the config asks for extract.device: "
                         f"{scope.config.extract.device}, decode: {scope.config.extract.decode}")
        return Check("cuda", "warn", f"{why}: extract and train run on CPU (slow)")
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return Check("cuda", "ok", f"{len(names)} device(s): {', '.join(names)}; driver {driver_version()}")


def jpeg_decode_check(scope: Scope) -> Check:
    """One real JPEG decoded on the device (torchvision.io.decode_jpeg with nvjpeg), the path
    `extract.decode: device` takes."""
    if not torch.cuda.is_available():
        return Check("device jpeg decode", "ok",
                     "not available without CUDA (extract.decode: cpu is the default)")
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 60)).save(buffer, format="JPEG", quality=95)
    data = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
    try:
        image = torchvision.io.decode_jpeg(data, device="cuda")
        torch.cuda.synchronize()
    except RuntimeError as exc:
        status = "blocker" if scope.config.extract.decode == "device" and scope.runs("extract") else "warn"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check("device jpeg decode", status,
                     f"decode_jpeg on cuda failed ({first}); use extract.decode: cpu")
    ok = tuple(image.shape) == (3, 24, 32) and abs(int(image[0].float().mean()) - 200) < 8
    return Check("device jpeg decode", "ok" if ok else "warn",
                 "nvjpeg decodes on cuda" if ok else f"nvjpeg returned a wrong image {tuple(image.shape)}")


def driver_version() -> str | None:
    """The NVIDIA driver's CUDA version (cuDriverGetVersion), e.g. "13.0"; None without libcuda."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return f"{version.value // 1000}.{version.value % 1000 // 10} (CUDA API)"
