"""Training augmentation and evaluation preprocessing, as in the paper.

Paper, Sec. 4: "random scaling (ranging from 0.7 to 1.3), random cropping and horizontal flipping".
The released code (guosheng/refinenet main/my_get_batch_ds_info.m, main/batch_do_data_augmentation.m,
main/batch_do_data_crop.m) first clamps the image's short edge into [450, 1100], scales the whole
image keeping its aspect ratio, then crops (400x400, 600x600 for Cityscapes): `RandomResizedCrop`,
which also changes the aspect ratio, is *not* that recipe. The scale is drawn uniformly from the
range here (the paper's words); the released code draws from {0.7, 0.8, ..., 1.3}. Its crops are
centred on a random pixel of a class drawn from those in the image ('class_sample') and shrink to an
image smaller than the crop instead of padding it: `TrainTransform(class_balanced=True, pad=False)`.

Both transforms take `(image, label)`: image uint8 3xHxW (`tv_tensors.Image`, a tensor, or an
HxWx3 numpy array), label HxW train ids; they return a float32 3xHxW tensor and an int64 HxW tensor.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as nnf
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
    """[Short-edge clamp] + random scale (aspect kept) -> crop -> flip -> normalise.

    `short_edge` = (min, max): the clamp folded into the random scale (one resize instead of the released
    code's two). `pad`: an image smaller than the crop is padded to it (mean colour / ignore); else the
    crop shrinks to the image's even short edge, as the released code. `class_balanced`: the crop is
    centred on a random pixel of a class drawn uniformly from those in the (scaled) label, as the
    released 'class_sample' crop; else its position is uniform.
    """

    def __init__(
        self,
        crop_size: int | tuple[int, int],
        scale_range: tuple[float, float] = (0.7, 1.3),
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        hflip: bool = True,
        *,
        short_edge: tuple[int, int] | None = None,
        class_balanced: bool = False,
        pad: bool = True,
        ignore_index: int = IGNORE_INDEX,
    ):
        self.crop_size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        self.scale_range = tuple(scale_range)
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be 0 < low <= high, got {scale_range}")
        self.short_edge, self.class_balanced, self.pad = short_edge, class_balanced, pad
        self.ignore_index = ignore_index
        self.fill = {tv_tensors.Image: mean_fill(mean), tv_tensors.Mask: ignore_index}
        # pad_if_needed pads only when the scaled image is smaller than the crop.
        self.random_crop = v2.RandomCrop(self.crop_size, pad_if_needed=True, fill=self.fill, padding_mode="constant")
        self.flip = v2.RandomHorizontalFlip(0.5) if hflip else v2.Identity()
        self.to_float = EvalTransform(mean, std)

    def random_scale(self, image: tv_tensors.Image, label: tv_tensors.Mask):
        low, high = self.scale_range
        scale = low + (high - low) * torch.rand(()).item()
        height, width = image.shape[-2:]
        scale *= short_edge_factor(height, width, self.short_edge)
        size = [max(1, round(height * scale)), max(1, round(width * scale))]
        # Bilinear for the image, nearest for the label (tv_tensors.Mask dispatch), so no new label values.
        return F.resize(image, size, antialias=True), F.resize(label, size)

    def crop(self, image: tv_tensors.Image, label: tv_tensors.Mask):
        if self.pad and not self.class_balanced:
            return self.random_crop(image, label)
        height, width = image.shape[-2:]
        if self.pad:
            bottom, right = max(0, self.crop_size[0] - height), max(0, self.crop_size[1] - width)
            if bottom or right:
                image, label = F.pad(image, [0, 0, right, bottom], fill=self.fill[tv_tensors.Image]), \
                    F.pad(label, [0, 0, right, bottom], fill=self.ignore_index)
            size = self.crop_size
        else:
            even_short = min(height, width) // 2 * 2  # released: the crop shrinks to the even short edge
            size = (min(self.crop_size[0], even_short), min(self.crop_size[1], even_short))
        top, left = self.crop_position(label, size)
        return F.crop(image, top, left, *size), F.crop(label, top, left, *size)

    def crop_position(self, label: torch.Tensor, size: tuple[int, int]) -> tuple[int, int]:
        """Top-left corner: centred on a pixel of a drawn class (clamped into the image), else uniform."""
        height, width = label.shape[-2:]
        if self.class_balanced:
            classes = torch.unique(label)
            classes = classes[classes != self.ignore_index]
            if len(classes):  # released: no labelled class -> a random position
                chosen = classes[torch.randint(len(classes), ()).item()]
                rows, cols = torch.nonzero(label == chosen, as_tuple=True)
                pick = torch.randint(len(rows), ()).item()
                top = math.floor(rows[pick].item() - size[0] / 2 + 0.5)
                left = math.floor(cols[pick].item() - size[1] / 2 + 0.5)
                return min(max(top, 0), height - size[0]), min(max(left, 0), width - size[1])
        return torch.randint(height - size[0] + 1, ()).item(), torch.randint(width - size[1] + 1, ()).item()

    def __call__(self, image, label) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = as_tv_tensors(image, label)
        image, label = self.random_scale(image, label)
        image, label = self.crop(image, label)
        image, label = self.flip(image, label)
        return self.to_float(image, label)


def pad_batch(batch, ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate (image, label) pairs of different sizes (crops that shrank to a small image) by padding each
    at the bottom / right to the largest: images with 0 (the mean colour once normalised), labels with
    `ignore_index`. Pairs of one size stack unchanged."""
    images, labels = zip(*batch)
    height, width = max(i.shape[-2] for i in images), max(i.shape[-1] for i in images)

    def padded(x: torch.Tensor, value) -> torch.Tensor:
        return nnf.pad(x, (0, width - x.shape[-1], 0, height - x.shape[-2]), value=value)

    return torch.stack([padded(i, 0.0) for i in images]), torch.stack([padded(t, ignore_index) for t in labels])
