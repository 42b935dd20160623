"""Which fast path to run a model with, per device: memory format, precision (autocast), torch.compile.

`choose_fast_path(device, ...)` decides for a run and says how, for its log and results rows
(e.g. "channels_last+fp32 (picked: 1.12x over nchw, cached)"); `precision_name` names the precision.

* Precision: fp32, the paper's, everywhere by default. On CUDA PyTorch's default lets cuDNN use
  TF32 for convolutions (`torch.backends.cudnn.allow_tf32`, True unless changed; matmuls stay fp32),
  recorded as "fp32 (tf32 convs)". bf16 / fp16 autocast only when asked (`--amp bf16`): bf16 changes
  some labels (results/efficiency.md).
* CUDA: channels_last (exact; the usual layout for tensor-core convolutions). Not measured in this
  project yet: no GPU (benchmarks/efficiency/gpu_check.sh measures it).
* CPU: the layout is picked per machine from a short timing of both, cached (refinenet/cpu_layout.py):
  channels_last was 1.19x per training step on an Intel Xeon but 0.75x on an AMD EPYC. While batch
  norm trains (the standin and smoke profiles) NCHW is kept, for the reason below.
* torch.compile: off (no gain on a CPU, and it recompiles for every new input shape).
* `--channels-last` / `--no-channels-last` override the layout; `--no-fast-path` means NCHW fp32.

channels_last vs NCHW, measured on CPU with torch 2.14 (RefineNet-50, 64x64 crops, batch 2, all
parameter gradients against a float64 NCHW reference):

1. Dropout. nn.Dropout fills its mask in memory order, so under one seed channels_last dropped
   other units than NCHW (gradients 79-123% apart, even in float64). The model's dropout now draws
   the mask in NCHW order (`refinenet.model.LayoutIndependentDropout`), so both layouts drop the same
   units. With frozen batch norm the layouts then agree to rounding: 1.2e-4 (channels_last) vs 5.0e-4
   (NCHW) relative error against float64.
2. Trainable batch norm. channels_last is less accurate than NCHW: 1.2e-2 vs 2.2e-3 against
   float64, the error sitting in ResNet block 4 (2x2 maps at a 64x64 crop, 8 values per channel).
   The CPU's channels_last batch-norm kernel accumulates its statistics less accurately; a single
   layer shows it: `nn.BatchNorm2d(64)` in training mode on a (8, 64, 16, 16) input of mean 100 and
   std 0.1 gives outputs 3.6e-5 (NCHW) vs 3.2e-4 (channels_last) and input gradients 1.1e-6 vs
   1.1e-5 away from float64 (upstream: pytorch/pytorch#121651, "BatchNorm2d: Different memory format
   have different output", labelled numerical-stability). Not shown harmless for tiny-batch
   training, so NCHW stays while batch norm trains.

The engine applies a fast path with `apply_fast_path(model, fast_path)`, runs forward passes under
`autocast(fast_path, device)` and passes inputs through `prepare_input`; `EAGER_FP32` turns it all off.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from refinenet.cpu_layout import pick_cpu_layout


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
    """The fixed part of the default: channels_last fp32 on CUDA, NCHW fp32 elsewhere (on a CPU
    `choose_fast_path` may pick channels_last after timing it)."""
    return FastPath(channels_last=True) if torch.device(device).type == "cuda" else EAGER_FP32


def choose_fast_path(device: torch.device | str, *, step: str = "train", batchnorm_trains: bool = False,
                     channels_last: bool | None = None, amp: str = "none", enabled: bool = True
                     ) -> tuple[FastPath, str]:
    """(fast path, label) for a run: `channels_last` True / False overrides the layout, `enabled=False`
    (--no-fast-path) means NCHW, `amp` is the autocast mode. The label says what was chosen and how."""
    device = torch.device(device)
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    if channels_last is not None:
        layout, how = channels_last, "--channels-last" if channels_last else "--no-channels-last"
    elif not enabled:
        layout, how = False, "--no-fast-path"
    elif device.type == "cuda":
        layout, how = True, "CUDA default"
    elif device.type == "cpu":
        choice = pick_cpu_layout(batchnorm_trains, step)
        layout, how = choice.channels_last, choice.reason
    else:
        layout, how = False, f"no fast path for {device.type}"
    fast = FastPath(channels_last=layout, amp_dtype=AMP_DTYPES[amp])
    return fast, f"{fast.name} ({how})"


def precision_name(amp_dtype: torch.dtype | None, device: torch.device | str) -> str:
    """"fp32", "fp32 (tf32 convs)" (CUDA with cuDNN's TF32 allowed, PyTorch's default), "bf16", "fp16"."""
    if amp_dtype is not None:
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(amp_dtype, str(amp_dtype))
    if torch.device(device).type != "cuda":
        return "fp32"
    tf32 = [name for name, on in (("convs", torch.backends.cudnn.allow_tf32),
                                  ("matmuls", torch.backends.cuda.matmul.allow_tf32)) if on]
    return f"fp32 (tf32 {' and '.join(tf32)})" if tf32 else "fp32"


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
