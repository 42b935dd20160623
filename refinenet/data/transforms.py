"""Training augmentation and evaluation preprocessing, as in the paper.

Paper, Sec. 4: "random scaling (ranging from 0.7 to 1.3), random cropping and horizontal flipping".
The released code scales the whole image keeping its aspect ratio, then crops (400x400, 600x600 for
Cityscapes); `RandomResizedCrop`, which also changes the aspect ratio, is *not* that recipe
(shared/reference/official-recipe.md). The scale is drawn uniformly from the range here; the
released code draws from {0.7, 0.8, ..., 1.3}.

Both transforms take `(image, label)`: image uint8 3xHxW (`tv_tensors.Image`, a tensor, or an
HxWx3 numpy array), label HxW train ids; they return a float32 3xHxW tensor and an int64 HxW tensor.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from refinenet.data.common import IGNORE_INDEX

# The torchvision ImageNet statistics (RGB, on [0, 1] pixels): the ResNet backbones here start from
# torchvision's ImageNet weights, which expect them. (The released MatConvNet code subtracts 128
# from [0, 255] pixels instead; pass mean=(0.5,)*3, std=(1/255,)*3 to get that.)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def as_tv_tensors(image, label) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """Wrap (image, label) as tv_tensors so v2 transforms treat the label as a mask (nearest resize)."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if isinstance(label, np.ndarray):
        label = torch.from_numpy(np.ascontiguousarray(label))
    if not isinstance(image, tv_tensors.Image):
        image = tv_tensors.Image(image)
    if not isinstance(label, tv_tensors.Mask):
        label = tv_tensors.Mask(label)
    return image, label


def short_edge_factor(height: int, width: int, short_edge: tuple[int, int] | None) -> float:
    """The resize factor that brings the image's short edge into `short_edge` = (min, max), aspect kept;
    1.0 if it is already inside or `short_edge` is None. The authors clamp every image this way, at
    test and in training (guosheng/refinenet main/my_get_batch_ds_info.m, `do_load_and_cache_batch_data`)."""
    if short_edge is None:
        return 1.0
    low, high = short_edge
    short = min(height, width)
    if short < low:
        return low / short
    if short > high:
        return high / short
    return 1.0


def mean_fill(mean: tuple[float, ...]) -> tuple[int, ...]:
    """The mean colour on the uint8 scale: padded pixels become ~0 after normalisation."""
    return tuple(int(round(min(max(m, 0.0), 1.0) * 255)) for m in mean)


class EvalTransform:
    """The full image, only converted to float and normalised."""

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD):
        self.mean, self.std = tuple(mean), tuple(std)
        self.to_float = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)])

    def __call__(self, image, label) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = as_tv_tensors(image, label)
        return self.to_float(image).as_subclass(torch.Tensor), label.as_subclass(torch.Tensor).long()


class TrainTransform:
    """Random scale (aspect kept) -> pad to the crop (mean colour / ignore) -> random crop -> flip -> normalise."""

    def __init__(
        self,
        crop_size: int | tuple[int, int],
        scale_range: tuple[float, float] = (0.7, 1.3),
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        hflip: bool = True,
    ):
        self.crop_size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        self.scale_range = tuple(scale_range)
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be 0 < low <= high, got {scale_range}")
        fill = {tv_tensors.Image: mean_fill(mean), tv_tensors.Mask: IGNORE_INDEX}
        # pad_if_needed pads only when the scaled image is smaller than the crop.
        self.crop = v2.RandomCrop(self.crop_size, pad_if_needed=True, fill=fill, padding_mode="constant")
        self.flip = v2.RandomHorizontalFlip(0.5) if hflip else v2.Identity()
        self.to_float = EvalTransform(mean, std)

    def random_scale(self, image: tv_tensors.Image, label: tv_tensors.Mask):
        low, high = self.scale_range
        scale = low + (high - low) * torch.rand(()).item()
        height, width = image.shape[-2:]
        size = [max(1, round(height * scale)), max(1, round(width * scale))]
        # Bilinear for the image, nearest for the label (tv_tensors.Mask dispatch), so no new label values.
        return F.resize(image, size, antialias=True), F.resize(label, size)

    def __call__(self, image, label) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = as_tv_tensors(image, label)
        image, label = self.random_scale(image, label)
        image, label = self.crop(image, label)
        image, label = self.flip(image, label)
        return self.to_float(image, label)
