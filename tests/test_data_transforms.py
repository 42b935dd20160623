"""The paper's augmentation (Sec. 4): scale keeping the aspect ratio, pad, crop, flip, normalise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from refinenet.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
    mean_fill,
    pad_batch,
)

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


def test_training_clamp_brings_the_short_edge_into_range_before_the_random_scale():
    image, label = tv_tensors.Image(torch.zeros(3, 120, 160, dtype=torch.uint8)), tv_tensors.Mask(torch.zeros(120, 160))
    clamped = TrainTransform(crop_size=8, scale_range=(1.0, 1.0), short_edge=(450, 1100))
    assert clamped.random_scale(image, label)[0].shape[-2:] == (450, 600)  # released: [450, 1100]
    large = tv_tensors.Image(torch.zeros(3, 1200, 1600, dtype=torch.uint8))
    assert clamped.random_scale(large, tv_tensors.Mask(torch.zeros(1200, 1600)))[1].shape == (1100, 1467)
    low = TrainTransform(crop_size=8, scale_range=(0.7, 0.7), short_edge=(450, 1100))
    assert low.random_scale(image, label)[0].shape[-2:] == (315, 420)  # the scale applies to the clamped size


def test_without_padding_a_crop_shrinks_to_the_images_even_short_edge():
    torch.manual_seed(0)
    image, label = colour_coded_pair(48, 64)
    image, label = image[:45], label[:45]  # an odd short edge
    out_image, out_label = TrainTransform(crop_size=60, scale_range=(1.0, 1.0), pad=False)(image, label)
    assert out_image.shape == (3, 44, 44) and out_label.shape == (44, 44)  # released: square, even, no padding
    assert (out_label != 255).all()
    assert TrainTransform(crop_size=32, scale_range=(1.0, 1.0), pad=False)(image, label)[0].shape == (3, 32, 32)


def test_class_balanced_crop_is_centred_on_a_pixel_of_a_class_in_the_image():
    label = np.zeros((64, 96), dtype=np.int64)
    label[50:52, 80:82] = 3  # a tiny object a uniform crop of 16 px would rarely contain
    image = COLOURS[label]
    transform = TrainTransform(crop_size=16, scale_range=(1.0, 1.0), hflip=False, class_balanced=True, pad=False)
    centred = 0
    for seed in range(40):
        torch.manual_seed(seed)
        _, out_label = transform(image, label)
        assert out_label.shape == (16, 16)
        centred += int(out_label[8, 8] == 3)  # the drawn pixel sits at the crop's centre
    # class 3 is drawn about half the time (classes 0 and 3 are present); 4 of its 6144 pixels would
    # almost never be the centre of a uniformly placed crop
    assert 10 <= centred <= 30


def test_padded_batches_of_crops_of_different_sizes():
    small = (torch.ones(3, 4, 6), torch.zeros(4, 6, dtype=torch.int64))
    large = (torch.ones(3, 6, 6), torch.ones(6, 6, dtype=torch.int64))
    images, labels = pad_batch([small, large])
    assert images.shape == (2, 3, 6, 6) and labels.shape == (2, 6, 6)
    assert (images[0, :, 4:] == 0).all() and (labels[0, 4:] == 255).all() and (labels[0, :4] == 0).all()
    same = pad_batch([large, large])
    assert torch.equal(same[0], torch.stack([large[0]] * 2))


def test_class_balanced_crops_on_standin_data_move_class_frequencies_toward_uniform(tmp_path):
    from refinenet import data
    from refinenet.data.class_index import load_class_index
    from refinenet.data.sampling import ClassBalancedEpochs, ResumableSampler, SeededAugmentation

    data.write_standin("voc2012", tmp_path / "voc", train=24, val=2, size=(120, 160), seed=0)
    dataset = data.load_dataset("voc2012", tmp_path / "voc", "train")
    classes = load_class_index(dataset, tmp_path / "cache", progress=False)

    def pixel_share(balanced: bool) -> np.ndarray:
        epochs = ClassBalancedEpochs(classes, 21, 0, per_class=2, min_images=4, max_images=24) if balanced else None
        crops = SeededAugmentation(dataset, TrainTransform(32, (1.0, 1.0), class_balanced=balanced, pad=not balanced))
        counts = np.zeros(21)
        for _, key in zip(range(120), ResumableSampler(len(dataset), 0, epochs=epochs)):
            labels = crops[key][1].numpy()
            counts += np.bincount(labels[labels != 255], minlength=21)
        return counts / counts.sum()

    def evenness(share: np.ndarray) -> float:  # entropy relative to the uniform distribution's
        share = share[share > 0]
        return float(-(share * np.log(share)).sum() / np.log(21))

    uniform, balanced = pixel_share(False), pixel_share(True)
    # the background dominates uniform crops; the authors' sampler draws classes, not pixels
    assert balanced[0] < uniform[0] - 0.05
    assert evenness(balanced) > evenness(uniform) + 0.1
