"""Device and dtype choice, returned as a record that is stored with each run.

``auto`` picks CUDA, then Apple MPS, then CPU. Weights run in bfloat16 on CUDA when the
GPU supports it (else float16), float32 on MPS and CPU (MPS half precision has had
numerically wrong softmax/layer-norm kernels; opt in with ``dtype="float16"``).
Attention rows are always read out in float32 by the extraction, whatever the weights'
dtype (``attention_dtype`` in the record).

Public: :class:`DeviceChoice`, :func:`choose_device`.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

DeviceName = Literal["auto", "cuda", "mps", "cpu"]
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class DeviceChoice:
    """The device and dtype a run used, and why (JSON-ready via :meth:`to_dict`)."""

    device: str
    dtype: str
    attention_dtype: str
    device_name: str
    torch_version: str
    reason: str

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def choose_device(
    device: DeviceName | str = "auto", dtype: DtypeName | str = "auto"
) -> DeviceChoice:
    """Pick the device (``auto``: CUDA, then MPS, then CPU) and the weights' dtype.

    An explicit device that is not available raises ``RuntimeError`` instead of silently
    falling back. ``dtype="auto"``: bf16 on CUDA with bf16 support, fp16 on older CUDA
    GPUs, fp32 on MPS and CPU. Half precision on CPU is refused (slow and inexact).
    """
    if device == "auto":
        if torch.cuda.is_available():
            dev, why = "cuda", "auto: CUDA available"
        elif _mps_available():
            dev, why = "mps", "auto: no CUDA, MPS available"
        else:
            dev, why = "cpu", "auto: no CUDA or MPS"
    elif device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        dev, why = device, "requested"
    elif device == "mps":
        if not _mps_available():
            raise RuntimeError("device 'mps' requested but MPS is not available")
        dev, why = "mps", "requested"
    elif device == "cpu":
        dev, why = "cpu", "requested"
    else:
        raise ValueError(f"unknown device {device!r} (auto, cuda, cuda:N, mps, cpu)")

    if dtype == "auto":
        if dev.startswith("cuda"):
            dt = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dt = "float32"
        why += f"; dtype auto -> {dt}"
    elif dtype in _DTYPES:
        if dev == "cpu" and dtype != "float32":
            raise ValueError("half precision on CPU is not supported here; use float32")
        dt = dtype
    else:
        raise ValueError(f"unknown dtype {dtype!r} (auto, float32, bfloat16, float16)")

    if dev.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(dev))
    elif dev == "mps":
        name = f"Apple MPS ({platform.machine()})"
    else:
        name = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    return DeviceChoice(
        device=dev,
        dtype=dt,
        attention_dtype="float32",
        device_name=name,
        torch_version=torch.__version__,
        reason=why,
    )
