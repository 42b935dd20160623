"""Which fast path to run a model with, per device: memory format, autocast dtype, torch.compile.

`default_fast_path(device)` is the fastest setting that still gives the fp32 eager answer within
mixed-precision tolerance, chosen from the efficiency benchmark (`nox -s bench`; the measured
speed-ups and errors are in results/efficiency.md):

* CPU: eager fp32 (NCHW). fp32 channels_last is faster with the same forward numbers, but under
  trainable batch norm on 2-image batches (the stand-in regime) its gradients drift from NCHW's and
  a smoke run diverged, so it is opt-in (`--channels-last`). bf16 autocast changes some labels:
  opt-in (`--amp bf16`). torch.compile gave no gain and recompiles for every new input shape.
* CUDA (not measured in this project: no GPU): channels_last + bf16 autocast, the usual choice on
  tensor-core GPUs; fp32 channels_last where bf16 is unsupported.

The engine applies it with `apply_fast_path(model, fast_path)`, runs forward passes under
`autocast(fast_path, device)` and passes inputs through `prepare_input`; `EAGER_FP32` turns it all off.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FastPath:
    channels_last: bool = False
    amp_dtype: torch.dtype | None = None  # autocast dtype; None = fp32
    compile: bool = False

    @property
    def name(self) -> str:
        parts = ["channels_last" if self.channels_last else "nchw"]
        parts.append(str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "fp32")
        if self.compile:
            parts.append("compile")
        return "+".join(parts)


EAGER_FP32 = FastPath()
# `--amp` modes and their autocast dtypes (None: fp32).
AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_MODES = tuple(AMP_DTYPES)


def amp_mode(dtype: torch.dtype | None) -> str:
    """The `--amp` mode of an autocast dtype."""
    return next(mode for mode, amp_dtype in AMP_DTYPES.items() if amp_dtype == dtype)


def default_fast_path(device: torch.device | str) -> FastPath:
    device = torch.device(device)
    if device.type == "cuda":
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return FastPath(channels_last=True, amp_dtype=torch.bfloat16 if bf16 else None)
    return EAGER_FP32


def apply_fast_path(model: nn.Module, fast_path: FastPath) -> nn.Module:
    """Convert `model` in place to the memory format; returns it (or its compiled wrapper)."""
    if fast_path.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if fast_path.compile:
        model = torch.compile(model)
    return model


def prepare_input(x: torch.Tensor, fast_path: FastPath) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if fast_path.channels_last and x.ndim == 4 else x


def autocast(fast_path: FastPath, device: torch.device | str):
    """The autocast context for `fast_path` on `device` (a no-op for fp32)."""
    if fast_path.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=fast_path.amp_dtype)
