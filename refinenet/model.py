"""RefineNet (Lin et al., CVPR 2017), the whole model in one file.

Section and figure numbers refer to the paper (Lin et al., CVPR 2017). Where the paper's text and
the authors' released code (`guosheng/refinenet`, folder `main/`) or weights differ, both are
supported and the released behaviour is the default, because it is what the authors trained and
published:

* `block_layout="released"` (default): each ResNet input path gets 2 RCUs, the path coming from
  the previous RefineNet block gets none, and every block ends with 3 RCUs. `"paper"`: every input
  path gets 2 RCUs, every block ends with 1 RCU and the last block with 2 more (Sec. 3.2,
  "Output convolutions"). Both give "three RCUs between each block".
* `pool_order="pool_conv"` (default, Fig. 3(d) and the released checkpoints): each pooling block
  is max-pool then conv; `"conv_pool"` is the "improved" variant of the released training code.
* `pooling_blocks`: the paper's default is 2 (Sec. 3.2, also the released training config);
  VOC and Person-Part use 4 (Sec. 4.1, 4.2) and so do the released checkpoints; 0 ablates
  chained residual pooling (Table 2): the block is then the identity, its ReLU included.
* `dropout=0.5` on the outputs of ResNet block-3 and block-4 and before the classifier: not in
  the paper, present in the released model definition. Its mask does not depend on the memory
  format (`LayoutIndependentDropout`), so NCHW and channels_last runs drop the same units.
* `new_layer_init="gaussian"`: every layer outside the ResNets (classifier included) starts from
  N(0, 0.01^2) weights and zero biases, as the released code (`main/My_net_util.m`,
  `add_conv_layer_dagnn`); `"pytorch"` keeps PyTorch's default initialisation.

Cascade variants (Sec. 4.3, Table 9) follow the released code's `path_group_ids`: ResNet outputs
are grouped into RefineNet blocks, coarsest group first; every block after the first also takes
the previous block's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from refinenet.backbone_weights import is_matconvnet_file, load_backbone_weights
from refinenet.backbones import (
    BACKBONES,
    RESNET_FORMS,
    RESNET_WIDTH,
    ResNetBackbone,
    resnet_channels,
)
from refinenet.matconvnet import matlab_imresize_crop

BLOCK_LAYOUTS = ("released", "paper")  # see the module docstring
POOL_ORDERS = ("pool_conv", "conv_pool")  # Fig. 3(d) and the checkpoints; the released training code's variant

# Cascade variants of Table 9: which ResNet blocks each RefineNet block reads, coarsest first.
CASCADES: dict[str, tuple[tuple[int, ...], ...]] = {
    "4-cascaded": ((4,), (3,), (2,), (1,)),  # Fig. 2(c), the standard architecture
    "2-cascaded": ((4, 3), (2, 1)),
    "single": ((4, 3, 2, 1),),  # one block fusing all four ResNet outputs
}
# Named variants of Table 9 = a cascade and the scales, relative to the model's input, at which
# independent ResNets see it.
VARIANTS: dict[str, tuple[str, tuple[float, ...]]] = {
    "single": ("single", (1.0,)),
    "2-cascaded": ("2-cascaded", (1.0,)),
    "4-cascaded": ("4-cascaded", (1.0,)),
    # "the input image is scaled to a factor of 1.2 and 0.6 and fed into 2 independent 4-cascaded
    # ResNets" (Sec. 4.3): in the released code (`main/gen_net_opts_model_type1.m`, the commented
    # `gen_featnet_config_resnet_custom(..., 0.6, ...)` / `(..., 1.2, ...)` lines) 1.2 is the feature
    # net's input scale that every variant shares, so the two ResNets see (1, 0.5) x the input scale
    # (`--input-scale`, applied to the image before the model). Block k fuses level k of both
    # (`path_group_ids [1 2 3 4 1 2 3 4]`).
    "4-cascaded-2-scale": ("4-cascaded", (1.0, 0.5)),
}
# How the layers outside the ResNets start (see the module docstring).
NEW_LAYER_INITS = ("gaussian", "pytorch")
NEW_LAYER_STD = 0.01  # main/My_net_util.m: `0.01 * randn(...)` filters, zero biases
# How multi-resolution fusion brings a coarser path to the finest size: "bilinear" (align_corners=True,
# the converted checkpoints' definition) or "matlab_bicubic" (the authors' own `My_sum_layer.m` through
# `my_resize.m`: MATLAB imresize, bicubic, by the larger of the two size ratios, then a top-left crop).
FUSION_UPSAMPLES = ("bilinear", "matlab_bicubic")





def conv3x3(in_channels: int, out_channels: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)


class LayoutIndependentDropout(nn.Dropout):
    """nn.Dropout whose mask is drawn in NCHW order whatever the input's memory format.

    nn.Dropout fills its Bernoulli mask in memory order, so under one seed a channels_last tensor
    loses other units than its NCHW copy, and the two layouts train differently. Here the mask is
    drawn NCHW-contiguous and then laid out like the input: on the CPU the numbers are bit-identical
    to nn.Dropout's on an NCHW tensor, whatever the input's layout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * 0.0
        keep = 1.0 - self.p
        mask = torch.empty(x.shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * torch.empty_like(x).copy_(mask).div_(keep)


class ResidualConvUnit(nn.Module):
    """Fig. 3(b): ResNet's residual unit without batch norm, x + conv(relu(conv(relu(x))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv3x3(channels, channels, bias=True)  # released: `{i}_conv`, with bias
        self.conv2 = conv3x3(channels, channels, bias=False)  # released: `{i}_conv_relu_varout_dimred`
        self.inplace = False  # memory-lean mode: reuse buffers no backward needs (same numbers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            # conv1's output is not saved by any backward (conv saves its input), so ReLU may overwrite
            # it; conv2's output likewise takes the residual sum. a + b == b + a exactly in IEEE floats.
            return self.conv2(F.relu_(self.conv1(F.relu(x)))).add_(x)
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class MultiResolutionFusion(nn.Module):
    """Fig. 3(c): adapt every path to the smallest depth with a conv, upsample to the largest
    resolution, sum. A single path goes through unchanged (Sec. 3.2)."""

    def __init__(self, in_channels: Sequence[int], out_channels: int, upsample: str = "bilinear"):
        super().__init__()
        if upsample not in FUSION_UPSAMPLES:
            raise ValueError(f"fusion_upsample must be one of {FUSION_UPSAMPLES}, got {upsample!r}")
        self.upsample = upsample
        if len(in_channels) > 1:
            self.convs = nn.ModuleList(conv3x3(c, out_channels, bias=False) for c in in_channels)
        else:
            self.convs = None
        self.inplace = False  # memory-lean mode: accumulate the sum in place (conv/upsample outputs are not saved)

    def forward(self, paths: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.convs is None:
            return paths[0]
        size = max((p.shape[-2:] for p in paths), key=lambda s: s[0] * s[1])
        out = None
        for conv, path in zip(self.convs, paths):
            y = conv(path)
            if y.shape[-2:] != size and self.upsample == "matlab_bicubic":
                y = matlab_imresize_crop(y, size)  # My_sum_layer.m / my_resize.m
            elif y.shape[-2:] != size:
                # align_corners=True as in the released model definition
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=True)
            if out is None:
                out = y
            else:
                out = out.add_(y) if self.inplace else out + y
        return out


class ChainedResidualPooling(nn.Module):
    """Fig. 3(d): a ReLU, then a chain of pooling blocks, each pooling the previous block's output
    (5x5 max-pool, stride 1, and a conv); every block's output is summed onto the input."""

    def __init__(self, channels: int, blocks: int, order: str = "pool_conv"):
        super().__init__()
        if order not in POOL_ORDERS:
            raise ValueError(f"pool_order must be one of {POOL_ORDERS}, got {order!r}")
        self.order = order
        self.pool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)
        self.convs = nn.ModuleList(conv3x3(channels, channels, bias=False) for _ in range(blocks))
        self.inplace = False  # memory-lean mode: accumulate the sum in place after the first block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.convs:
            # Table 2's ablation: without pooling stages the released block returns before its ReLU
            # (main/gen_network_pool_block.m: `if ~refine_config.use_chained_pool return`): identity.
            return x
        # The one ReLU of the block (Sec. 3.3).
        x = F.relu(x)
        top = x
        for i, conv in enumerate(self.convs):
            top = conv(self.pool(top)) if self.order == "pool_conv" else self.pool(conv(top))
            # The ReLU output is saved by the ReLU and the first pool, so only later sums may be in place.
            x = x.add_(top) if self.inplace and i > 0 else x + top
        return x


class RefineNetBlock(nn.Module):
    """Fig. 3(a): input RCUs per path -> multi-resolution fusion -> chained residual pooling ->
    output RCUs. Any number of paths of any resolution and depth (Sec. 3.2)."""

    def __init__(
        self,
        in_channels: Sequence[int],
        input_rcus: Sequence[int],
        pooling_blocks: int,
        output_rcus: int,
        pool_order: str = "pool_conv",
        fusion_upsample: str = "bilinear",
    ):
        super().__init__()
        if len(in_channels) != len(input_rcus):
            raise ValueError("in_channels and input_rcus must have one entry per path")
        self.out_channels = min(in_channels)
        self.adapt = nn.ModuleList(
            nn.Sequential(*(ResidualConvUnit(c) for _ in range(n))) for c, n in zip(in_channels, input_rcus)
        )
        self.fusion = MultiResolutionFusion(in_channels, self.out_channels, fusion_upsample)
        self.pool = ChainedResidualPooling(self.out_channels, pooling_blocks, pool_order)
        self.output = nn.Sequential(*(ResidualConvUnit(self.out_channels) for _ in range(output_rcus)))

    def forward(self, paths: Sequence[torch.Tensor]) -> torch.Tensor:
        paths = [adapt(p) for adapt, p in zip(self.adapt, paths)]
        return self.output(self.pool(self.fusion(paths)))


@dataclass(frozen=True)
class RefineNetConfig:
    """Every knob of the paper's tables, in one place; saved with every checkpoint."""

    num_classes: int
    backbone: str = "resnet101"  # Table 2: resnet50 / resnet101 / resnet152
    variant: str = "4-cascaded"  # Table 9: single / 2-cascaded / 4-cascaded / 4-cascaded-2-scale
    pooling_blocks: int = 2  # Sec. 3.2 default; 4 for VOC and Person-Part; 0 = ablated (Table 2)
    block_layout: str = "released"  # "released" or "paper" (see the module docstring)
    pool_order: str = "pool_conv"  # "pool_conv" (paper, checkpoints) or "conv_pool" (released training code)
    features: int = 256  # filters per path (Sec. 3.2)
    top_features: int = 512  # filters of paths from ResNet block-4 (RefineNet-4, Sec. 3.2)
    dropout: float = 0.5  # released model definition; 0 disables
    freeze_batchnorm: bool = True  # released training code: batch-norm statistics frozen ("global")
    # Layers outside the ResNets: "gaussian" = N(0, 0.01^2) weights, zero biases (released code);
    # "pytorch" (or None) = PyTorch's default initialisation.
    new_layer_init: str | None = "gaussian"
    # Memory-lean training (no effect on the numbers): recompute every RefineNet block, and every ResNet
    # stage when batch norm is frozen, in the backward pass (activation checkpointing), and use in-place
    # ops where no backward needs the overwritten tensor.
    memory_lean: bool = False
    # The ResNet's form (refinenet/backbones.py): "torchvision", or "msra" for the authors' MatConvNet
    # weights (stride in the first 1x1 conv, conv1 bias, batch norm without epsilon); its width (64).
    resnet_form: str = "torchvision"
    resnet_width: int = RESNET_WIDTH
    fusion_upsample: str = "bilinear"  # FUSION_UPSAMPLES; the authors' MatConvNet models: "matlab_bicubic"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {self.variant!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.block_layout not in BLOCK_LAYOUTS:
            raise ValueError(f"block_layout must be one of {BLOCK_LAYOUTS}, got {self.block_layout!r}")
        if self.new_layer_init is None:
            object.__setattr__(self, "new_layer_init", "pytorch")
        if self.new_layer_init not in NEW_LAYER_INITS:
            raise ValueError(f"new_layer_init must be one of {NEW_LAYER_INITS}, got {self.new_layer_init!r}")
        if self.resnet_form not in RESNET_FORMS:
            raise ValueError(f"resnet_form must be one of {RESNET_FORMS}, got {self.resnet_form!r}")
        if self.fusion_upsample not in FUSION_UPSAMPLES:
            raise ValueError(f"fusion_upsample must be one of {FUSION_UPSAMPLES}, got {self.fusion_upsample!r}")
        if self.pooling_blocks < 0 or self.num_classes < 1:
            raise ValueError("pooling_blocks must be >= 0 and num_classes >= 1")

    @property
    def cascade(self) -> tuple[tuple[int, ...], ...]:
        return CASCADES[VARIANTS[self.variant][0]]

    @property
    def input_scales(self) -> tuple[float, ...]:
        return VARIANTS[self.variant][1]


class RefineNet(nn.Module):
    """Fig. 2(c): ResNet(s) refined by cascaded RefineNet blocks, then a 3x3 classifier.

    `model(x)` returns class scores at the input size; `model(x, upsample=False)` the score map
    the classifier produces (1/4 of the input).
    """

    def __init__(self, config: RefineNetConfig):
        super().__init__()
        self.config = config
        scales = config.input_scales
        self.backbones = nn.ModuleList(ResNetBackbone(config.backbone, config.resnet_form, config.resnet_width)
                                       for _ in scales)
        self.dropout = LayoutIndependentDropout(config.dropout)

        # Flat list of ResNet paths in block order: (block index, scale index, ResNet block m).
        self.paths: list[tuple[int, int, int]] = [
            (b, s, m) for b, group in enumerate(config.cascade) for s in range(len(scales)) for m in group
        ]

        def width(m: int) -> int:
            return config.top_features if m == 4 else config.features

        # "each ResNet output is passed through one convolutional layer to adapt the dimensionality"
        self.dimred = nn.ModuleList(conv3x3(resnet_channels(m, config.resnet_width), width(m), bias=False)
                                    for _, _, m in self.paths)

        released = config.block_layout == "released"
        blocks, previous = [], None
        for b in range(len(config.cascade)):
            widths = [width(m) for bb, _, m in self.paths if bb == b]
            rcus = [2] * len(widths)
            if previous is not None:
                widths.insert(0, previous)
                rcus.insert(0, 0 if released else 2)
            last = b == len(config.cascade) - 1
            output_rcus = 3 if released else (3 if last else 1)
            block = RefineNetBlock(widths, rcus, config.pooling_blocks, output_rcus, config.pool_order,
                                   config.fusion_upsample)
            blocks.append(block)
            previous = block.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.classifier = conv3x3(previous, config.num_classes, bias=True)
        for module in self.blocks.modules():
            if isinstance(module, (ResidualConvUnit, MultiResolutionFusion, ChainedResidualPooling)):
                module.inplace = config.memory_lean
        if config.new_layer_init == "gaussian":
            self._init_new_layers()

    def _init_new_layers(self) -> None:
        """N(0, 0.01^2) weights and zero biases for every conv outside the ResNets (main/My_net_util.m,
        `add_conv_layer_dagnn`; the classifier too: main/gen_network_loss_group.m)."""
        backbone = {id(m) for m in self.backbones.modules()}
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and id(module) not in backbone:
                nn.init.normal_(module.weight, mean=0.0, std=NEW_LAYER_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _recompute(self, function, *args):
        """Memory-lean mode while gradients are recorded: keep only `function`'s inputs and run it again
        in the backward pass (non-reentrant checkpointing; the RNG state is restored, so dropout
        and every output and gradient are identical to the plain forward)."""
        if self.config.memory_lean and torch.is_grad_enabled():
            return checkpoint(function, *args, use_reentrant=False, preserve_rng_state=True)
        return function(*args)

    def _backbone_levels(self, backbone: ResNetBackbone, x: torch.Tensor) -> list[torch.Tensor]:
        # Batch norm in training mode would update its running statistics again on recomputation,
        # so ResNet stages are only recomputed when the statistics are frozen (the released recipe).
        if not (self.config.memory_lean and self.config.freeze_batchnorm):
            return backbone(x)
        stem = lambda t: backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(t))))
        x = self._recompute(stem, x)
        levels = []
        for layer in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
            x = self._recompute(layer, x)
            levels.append(x)
        return levels

    def forward(self, x: torch.Tensor, upsample: bool = True) -> torch.Tensor:
        features = []
        for scale, backbone in zip(self.config.input_scales, self.backbones):
            # antialiased when shrinking, as the released code's imresize (the 2-scale variant's 0.5)
            xs = x if scale == 1.0 else F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False,
                                                      antialias=scale < 1.0)
            levels = self._backbone_levels(backbone, xs)
            levels[2], levels[3] = self.dropout(levels[2]), self.dropout(levels[3])
            features.append(levels)
        out = None
        for b, block in enumerate(self.blocks):
            inputs = [] if out is None else [out]
            for dimred, (bb, s, m) in zip(self.dimred, self.paths):
                if bb == b:
                    inputs.append(dimred(features[s][m - 1]))
            out = self._recompute(block, inputs)
        scores = self.classifier(self.dropout(out))
        if upsample:
            # "upsampled to match the original image using bilinear interpolation" (Sec. 3.1)
            scores = F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return scores

    def train(self, mode: bool = True) -> RefineNet:
        super().train(mode)
        if mode and self.config.freeze_batchnorm:
            # Frozen statistics must mean eval mode; requires_grad=False alone lets them drift.
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """`backbone` (pretrained, smaller learning rate) and `refine` (new layers)."""
        backbone = [p for p in self.backbones.parameters()]
        ids = {id(p) for p in backbone}
        return {"backbone": backbone, "refine": [p for p in self.parameters() if id(p) not in ids]}

    def config_dict(self) -> dict:
        return asdict(self.config)


def build_refinenet(num_classes: int, backbone_weights=None, **options) -> RefineNet:
    """Plain builder: `build_refinenet(21, backbone="resnet101", variant="4-cascaded",
    pooling_blocks=4, backbone_weights="IMAGENET1K_V1")`. `backbone_weights=None` keeps random init;
    the authors' `imagenet-resnet-101-dag.mat` gives the backbone its MSRA form (refinenet/backbones.py)."""
    if is_matconvnet_file(backbone_weights):
        options.setdefault("resnet_form", "msra")
    model = RefineNet(RefineNetConfig(num_classes=num_classes, **options))
    if backbone_weights not in (None, "none"):
        load_backbone_weights(model, backbone_weights)
    return model


def refinenet50(num_classes: int, **options) -> RefineNet:
    return build_refinenet(num_classes, backbone="resnet50", **options)


def refinenet101(num_classes: int, **options) -> RefineNet:
    return build_refinenet(num_classes, backbone="resnet101", **options)


def refinenet152(num_classes: int, **options) -> RefineNet:
    return build_refinenet(num_classes, backbone="resnet152", **options)
