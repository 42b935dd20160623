"""The paper's augmentation (Sec. 4): scale keeping the aspect ratio, pad, crop, flip, normalise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from refinenet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, TrainTransform, mean_fill

# One colour per class, far apart, so a pixel's colour says its label.
COLOURS = np.array([(230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20), (20, 230, 230)], np.uint8)


def colour_coded_pair(height=48, width=64, seed=0, block=8):
    """Blocky labels (blocks of `block` px) and an image painted with each label's colour."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, len(COLOURS), (height // block, width // block))
    label = np.kron(blocks, np.ones((block, block), dtype=np.int64))
    return COLOURS[label], label


def decode(image: torch.Tensor) -> np.ndarray:
    """Normalised float image back to uint8 HxWx3."""
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return ((image * std + mean) * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def interior(label: np.ndarray, margin: int = 2) -> np.ndarray:
    """Pixels whose (2*margin+1)^2 neighbourhood has one label: away from resampled boundaries.

    The crop border counts as a boundary too (its outside neighbours are unknown)."""
    padded = np.pad(label, margin, constant_values=-1)
    h, w = label.shape
    same = np.ones_like(label, dtype=bool)
    for dy in range(2 * margin + 1):
        for dx in range(2 * margin + 1):
            same &= padded[dy : dy + h, dx : dx + w] == label
    return same


@pytest.mark.parametrize("seed", range(6))
def test_train_transform_keeps_image_and_label_aligned(seed):
    torch.manual_seed(seed)
    image, label = colour_coded_pair(96, 128, seed=seed, block=16)
    out_image, out_label = TrainTransform(crop_size=64)(image, label)
    colours, labels = decode(out_image), out_label.numpy()
    check = interior(labels, margin=1) & (labels != 255)
    assert check.mean() > 0.3
    assert np.abs(colours[check].astype(int) - COLOURS[labels[check]].astype(int)).max() <= 2


def test_train_transform_output_types_and_crop_size():
    torch.manual_seed(0)
    image, label = colour_coded_pair()
    out_image, out_label = TrainTransform(crop_size=(32, 40))(image, label)
    assert out_image.dtype == torch.float32 and out_image.shape == (3, 32, 40)
    assert out_label.dtype == torch.int64 and out_label.shape == (32, 40)
    assert type(out_image) is torch.Tensor and type(out_label) is torch.Tensor


def test_train_transform_pads_small_images_with_mean_colour_and_ignore_label():
    torch.manual_seed(0)
    image, label = colour_coded_pair(24, 32)
    out_image, out_label = TrainTransform(crop_size=64, scale_range=(1.0, 1.0))(image, label)
    padded = out_label.numpy() == 255
    assert padded.sum() == 64 * 64 - 24 * 32
    mean_colour = np.array(mean_fill(IMAGENET_MEAN))
    assert (decode(out_image)[padded] == mean_colour).all()  # i.e. ~0 after normalisation
    assert out_image.abs().max(0).values[torch.from_numpy(padded)].max() < 0.02


def test_train_transform_label_values_stay_the_original_ones_or_ignore():
    torch.manual_seed(1)
    image, label = colour_coded_pair()
    for _ in range(5):
        _, out_label = TrainTransform(crop_size=56)(image, label)
        assert set(np.unique(out_label.numpy())) <= set(np.unique(label)) | {255}  # nearest, no blending


def test_random_scale_keeps_the_aspect_ratio_within_the_range():
    transform = TrainTransform(crop_size=8, scale_range=(0.7, 1.3))
    image, label = tv_tensors.Image(torch.zeros(3, 100, 160, dtype=torch.uint8)), tv_tensors.Mask(torch.zeros(100, 160))
    torch.manual_seed(0)
    heights = []
    for _ in range(20):
        scaled_image, scaled_label = transform.random_scale(image, label)
        h, w = scaled_image.shape[-2:]
        assert scaled_label.shape == (h, w) and abs(w / h - 1.6) < 0.02
        heights.append(h)
    assert 70 <= min(heights) < max(heights) <= 130


def test_horizontal_flip_happens_sometimes_and_flips_both():
    image, label = colour_coded_pair()
    transform = TrainTransform(crop_size=(48, 64), scale_range=(1.0, 1.0))
    torch.manual_seed(0)
    flipped = 0
    for _ in range(20):
        _, out_label = transform(image, label)
        if np.array_equal(out_label.numpy(), label[:, ::-1]):
            flipped += 1
        else:
            assert np.array_equal(out_label.numpy(), label)
    assert 0 < flipped < 20
    no_flip = TrainTransform(crop_size=(48, 64), scale_range=(1.0, 1.0), hflip=False)
    assert all(np.array_equal(no_flip(image, label)[1].numpy(), label) for _ in range(10))


def test_eval_transform_keeps_the_full_image_and_only_normalises():
    image, label = colour_coded_pair(40, 56)
    out_image, out_label = EvalTransform()(image, label)
    assert out_image.shape == (3, 40, 56) and out_image.dtype == torch.float32
    assert np.array_equal(out_label.numpy(), label) and out_label.dtype == torch.int64
    assert np.array_equal(decode(out_image), image)


def test_transforms_accept_dataset_items():
    image = tv_tensors.Image(torch.randint(0, 255, (3, 30, 40), dtype=torch.uint8))
    label = tv_tensors.Mask(torch.zeros(30, 40, dtype=torch.int64))
    assert TrainTransform(crop_size=24)(image, label)[0].shape == (3, 24, 24)
    assert EvalTransform()(image, label)[1].shape == (30, 40)


def test_scale_range_must_be_positive_and_ordered():
    with pytest.raises(ValueError):
        TrainTransform(crop_size=8, scale_range=(1.3, 0.7))
