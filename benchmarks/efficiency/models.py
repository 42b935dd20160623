"""What the efficiency benchmarks compare: the models (RefineNet variants, the dilated ResNets and FCN-32s
baselines of Sec. 1), the fast paths, and the image size they are timed at. Shared by the measurements
(measure.py), the speed comparison (speed.py) and the report (report.py).
"""

from __future__ import annotations

import torch

from benchmarks.efficiency.baselines import DilatedResNetASPP, FCN32sResNet
from refinenet.fastpath import EAGER_FP32, FastPath
from refinenet.model import build_refinenet

NUM_CLASSES = 21  # PASCAL VOC
HEADLINE, DILATED = "RefineNet-101", "Dilated-ResNet-101-OS8"
# name -> (family, builder). RefineNet uses the VOC setting of the released checkpoints (4 pooling blocks).


def _refinenet(backbone: str = "resnet101", variant: str = "4-cascaded"):
    return lambda **kw: build_refinenet(NUM_CLASSES, backbone=backbone, variant=variant, pooling_blocks=4, **kw)


MODELS = {
    "RefineNet-50": ("refinenet", _refinenet("resnet50")),
    "RefineNet-101": ("refinenet", _refinenet("resnet101")),
    "RefineNet-152": ("refinenet", _refinenet("resnet152")),
    # Table 9 variants with ResNet-101
    "RefineNet-101-single": ("refinenet", _refinenet(variant="single")),
    "RefineNet-101-2-cascaded": ("refinenet", _refinenet(variant="2-cascaded")),
    "RefineNet-101-4-cascaded-2-scale": ("refinenet", _refinenet(variant="4-cascaded-2-scale")),
    "Dilated-ResNet-101-OS8": ("dilated", lambda **kw: DilatedResNetASPP(NUM_CLASSES, output_stride=8)),
    "Dilated-ResNet-101-OS4": ("dilated", lambda **kw: DilatedResNetASPP(NUM_CLASSES, output_stride=4)),
    "FCN-32s-ResNet-101": ("fcn", lambda **kw: FCN32sResNet(NUM_CLASSES)),
}
QUICK_MODELS = ("RefineNet-50", "Dilated-ResNet-101-OS8", "FCN-32s-ResNet-101")
FAST_PATHS = {
    "eager-fp32": EAGER_FP32,
    "channels_last": FastPath(channels_last=True),
    "bf16-autocast": FastPath(amp_dtype=torch.bfloat16),
    "channels_last+bf16": FastPath(channels_last=True, amp_dtype=torch.bfloat16),
    "compile+channels_last": FastPath(channels_last=True, compile=True),
}
VOC_IMAGE = (375, 500)  # H x W of a typical PASCAL VOC image (Sec. 4.1)


def build_model(name: str, memory_lean: bool = False) -> torch.nn.Module:
    family, builder = MODELS[name]
    return builder(memory_lean=memory_lean) if family == "refinenet" else builder()
