"""The ResNets RefineNet refines (Sec. 3.1), in two forms (their ImageNet weights: backbone_weights.py).

* `form="torchvision"`: torchvision's Bottleneck ResNet (stride on the 3x3 conv, conv1 without bias,
  batch norm with eps 1e-5). Its ImageNet weights: a torchvision weights name or a `.pth` state dict.
* `form="msra"`: MSRA's Caffe ResNet as the authors used it through MatConvNet
  (`imagenet-resnet-{50,101,152}-dag.mat`, imported by MatConvNet's `utils/import-caffe.py`):
  in a down-sampling block the stride sits on the first 1x1 conv and on the shortcut (detectron2's
  `STRIDE_IN_1X1`), conv1 has a bias, and batch norm divides by the stored sigma itself
  (`vl_nnbnorm` with given moments adds no epsilon): eps = 0 with running_var = sigma^2. pool1 is
  the 3x3 / stride 2 max-pool with symmetric padding 1 that the authors' `My_net_util.fix_padding_resnet`
  makes of Caffe's ceil-mode pooling, which is torchvision's maxpool.

Both keep torchvision's module names (`conv1`, `bn1`, `layer1`..`layer4`), so one state dict layout
serves every weight source. `width` (64 in every published ResNet) scales all channel counts; the
small widths exist for tests that build files in the real formats.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

BACKBONES = ("resnet50", "resnet101", "resnet152")
RESNET_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3), "resnet152": (3, 8, 36, 3)}
RESNET_FORMS = ("torchvision", "msra")
RESNET_WIDTH = 64  # stem channels of every published ResNet


class Bottleneck(nn.Module):
    """The bottleneck unit, with torchvision's attribute names (`torchvision.models.resnet.Bottleneck`): 1x1,
    3x3, 1x1 convs with batch norm, plus the shortcut. Ours, so that reading the authors' files needs no
    torchvision (its import costs about 170 MB of memory, a third of a converted RefineNet-152)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def resnet_channels(m: int, width: int = RESNET_WIDTH) -> int:
    """Output channels of ResNet block m (1..4): 256, 512, 1024, 2048 at the published width."""
    return width * 4 * 2 ** (m - 1)


def _bottleneck_stages(depth: str, width: int, msra: bool) -> tuple[nn.Module, nn.Module, list[nn.Sequential]]:
    """conv1, bn1 and the four stages of a Bottleneck ResNet of any width."""
    norm = functools.partial(nn.BatchNorm2d, eps=0.0) if msra else nn.BatchNorm2d
    conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=msra)
    stages, inplanes = [], width
    for m, count in enumerate(RESNET_BLOCKS[depth], start=1):
        planes, stride = width * 2 ** (m - 1), 1 if m == 1 else 2
        shortcut = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False), norm(planes * 4))
        blocks = [Bottleneck(inplanes, planes, stride, shortcut, norm_layer=norm)]
        blocks += [Bottleneck(planes * 4, planes, norm_layer=norm) for _ in range(count - 1)]
        if msra and stride != 1:  # MSRA: the first 1x1 conv strides, the 3x3 does not
            blocks[0].conv1.stride, blocks[0].conv2.stride = (stride, stride), (1, 1)
        stages.append(nn.Sequential(*blocks))
        inplanes = planes * 4
    return conv1, norm(width), stages


class ResNetBackbone(nn.Module):
    """A Bottleneck ResNet split into its 4 blocks (Sec. 3.1); keys keep torchvision's names."""

    def __init__(self, depth: str = "resnet101", form: str = "torchvision", width: int = RESNET_WIDTH):
        super().__init__()
        if depth not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {depth!r}")
        if form not in RESNET_FORMS:
            raise ValueError(f"resnet_form must be one of {RESNET_FORMS}, got {form!r}")
        if form == "torchvision" and width == RESNET_WIDTH:
            import torchvision

            resnet = getattr(torchvision.models, depth)(weights=None)  # torchvision's own init, unchanged
            self.conv1, self.bn1 = resnet.conv1, resnet.bn1
            self.layer1, self.layer2, self.layer3, self.layer4 = (resnet.layer1, resnet.layer2, resnet.layer3,
                                                                  resnet.layer4)
        else:
            self.conv1, self.bn1, stages = _bottleneck_stages(depth, width, msra=form == "msra")
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        l1 = self.layer1(x)  # 1/4
        l2 = self.layer2(l1)  # 1/8
        l3 = self.layer3(l2)  # 1/16
        l4 = self.layer4(l3)  # 1/32
        return [l1, l2, l3, l4]
