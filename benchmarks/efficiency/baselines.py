"""The networks RefineNet is compared with in Sec. 2 and Fig. 2 of the paper.

* `FCN32sResNet`: Fig. 2(a), a plain ResNet whose 1/32 features get a 1x1 classifier and one
  bilinear upsampling to the input size (FCN-32s style [36]).
* `DilatedResNetASPP`: Fig. 2(b), DeepLab-v2 [6]: the last ResNet blocks use dilated convolutions
  instead of striding (output stride 8, or 4 when block 2 is dilated too) and an ASPP classifier:
  four parallel 3x3 convolutions with dilation rates 6, 12, 18, 24 straight to class scores, summed.

Both return class scores at the input size, like `RefineNet(x)`; batch norm is frozen in
training mode, as in RefineNet's released recipe and DeepLab-v2, so every model trains alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

ASPP_RATES = (6, 12, 18, 24)  # DeepLab-v2 ASPP-L
# torchvision's replace_stride_with_dilation acts on ResNet blocks 2, 3, 4.
DILATION_FOR_OUTPUT_STRIDE = {8: [False, True, True], 4: [True, True, True]}


class _FrozenBatchNormMixin:
    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self


def _resnet_body(depth: str, dilation: list[bool]) -> nn.Sequential:
    resnet = getattr(torchvision.models, depth)(weights=None, replace_stride_with_dilation=dilation)
    return nn.Sequential(*list(resnet.children())[:-2])  # drop global pooling and fc


class FCN32sResNet(_FrozenBatchNormMixin, nn.Module):
    """Fig. 2(a): ResNet -> 1x1 classifier at 1/32 -> bilinear upsampling."""

    def __init__(self, num_classes: int, depth: str = "resnet101"):
        super().__init__()
        self.body = _resnet_body(depth, [False, False, False])
        self.classifier = nn.Conv2d(2048, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.classifier(self.body(x))
        return F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """DeepLab-v2's atrous spatial pyramid pooling: parallel dilated 3x3 classifiers, summed."""

    def __init__(self, in_channels: int, num_classes: int, rates=ASPP_RATES):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, kernel_size=3, padding=r, dilation=r) for r in rates
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


class DilatedResNetASPP(_FrozenBatchNormMixin, nn.Module):
    """Fig. 2(b): dilated ResNet (output stride 8 or 4) + ASPP, scores upsampled to the input size."""

    def __init__(self, num_classes: int, depth: str = "resnet101", output_stride: int = 8):
        super().__init__()
        if output_stride not in DILATION_FOR_OUTPUT_STRIDE:
            raise ValueError(f"output_stride must be 8 or 4, got {output_stride}")
        self.output_stride = output_stride
        self.body = _resnet_body(depth, DILATION_FOR_OUTPUT_STRIDE[output_stride])
        self.classifier = ASPP(2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.classifier(self.body(x))
        return F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)
