"""Prediction: single- and multi-scale (Sec. 4, "we average the predictions on the same image
across different scales"), optional horizontal flip, and dense-CRF post-processing (Table 4).

`image_probs` first resizes the image as the authors' test scripts do: its short edge clamped into the
dataset's range (`DatasetInfo.test_short_edge`), then the test scales and the model's input scale.
Large images (Cityscapes is 1024x2048) have two memory-bounded modes in `image_probs`:
* `tile`: sliding windows of tile x tile pixels overlapping by `tile_overlap`; the probabilities of
  overlapping windows are averaged. Full-resolution result, memory set by the tile size.
* `max_size`: the image is downscaled so its longer side is at most max_size, predicted, and the
  probabilities are upsampled back to full size. Cheaper, coarser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from refinenet.data.transforms import short_edge_factor
from refinenet.matconvnet import matlab_imresize

# The released evaluation code's scale sets (guosheng/refinenet main/demo_predict_mscale_<dataset>.m).
PAPER_SCALES = (0.4, 0.6, 0.8, 1.0, 1.2)
PAPER_SCALES_SHORT = (0.6, 0.8, 1.0)
TILE_OVERLAP = 1 / 3  # ours: a third of a tile shared with the next


def scaled_size(height: int, width: int, factor: float) -> tuple[int, int]:
    return max(1, round(height * factor)), max(1, round(width * factor))


RESIZE_METHODS = ("bilinear", "matlab_bicubic")


def rescale(x: torch.Tensor, size: tuple[int, int], method: str = "bilinear") -> torch.Tensor:
    """Resize an N x C x H x W batch to `size`. "bilinear": antialiased when shrinking, as MATLAB's imresize
    smooths before it shrinks. "matlab_bicubic": MATLAB's imresize itself (bicubic, antialiased), which the
    authors' test code applies to the image (main/my_get_batch_ds_info.m), through bicubic-pytorch."""
    size = tuple(size)
    if size == tuple(x.shape[-2:]):
        return x
    if method == "matlab_bicubic":
        return matlab_imresize(x, sizes=size)
    if method != "bilinear":
        raise ValueError(f"resize must be one of {RESIZE_METHODS}, got {method!r}")
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


@torch.inference_mode()
def predict_probs(
    model: nn.Module, image: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = False,
    resize: str = "bilinear",
) -> torch.Tensor:
    """Class probabilities at the image size, averaged over scales (and flips).

    `image`: a normalised N x 3 x H x W batch of any size. At each scale the image is resized
    (bilinear, antialiased when shrinking), the model's scores are resized back to H x W, turned
    into softmax probabilities and averaged with equal weight.
    """
    if image.ndim != 4:
        raise ValueError(f"expected an N x 3 x H x W batch, got shape {tuple(image.shape)}")
    if not scales:
        raise ValueError("scales must not be empty")
    height, width = image.shape[-2:]
    total, count = None, 0
    for scale in scales:
        x = rescale(image, scaled_size(height, width, scale), resize)
        for flipped in (False, True) if flip else (False,):
            scores = model(x.flip(-1) if flipped else x)
            if flipped:
                scores = scores.flip(-1)
            if scores.shape[-2:] != (height, width):
                scores = F.interpolate(scores, size=(height, width), mode="bilinear", align_corners=False)
            probs = scores.float().softmax(dim=1)
            total = probs if total is None else total + probs
            count += 1
    return total / count


def predict_labels(
    model: nn.Module, image: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = False
) -> torch.Tensor:
    """Label map N x H x W (argmax of `predict_probs`)."""
    return predict_probs(model, image, scales, flip).argmax(dim=1)


def tiled_probs(model: nn.Module, image: torch.Tensor, tile: int, overlap: float, flip: bool) -> torch.Tensor:
    """Sliding-window probabilities (1 x C x H x W); windows overlapping a pixel are averaged."""
    height, width = image.shape[-2:]
    if height <= tile and width <= tile:
        return predict_probs(model, image, (1.0,), flip)
    stride = max(1, int(tile * (1 - overlap)))

    def starts(size: int) -> list[int]:
        if size <= tile:
            return [0]
        count = math.ceil((size - tile) / stride) + 1
        return sorted({min(i * stride, size - tile) for i in range(count)})

    total, hits = None, torch.zeros((1, 1, height, width), device=image.device)
    for top in starts(height):
        for left in starts(width):
            window = image[..., top : top + tile, left : left + tile]
            probs = predict_probs(model, window, (1.0,), flip)
            if total is None:
                total = torch.zeros((1, probs.shape[1], height, width), device=image.device)
            total[..., top : top + window.shape[-2], left : left + window.shape[-1]] += probs
            hits[..., top : top + window.shape[-2], left : left + window.shape[-1]] += 1
    return total / hits


def base_factor(height: int, width: int, short_edge: tuple[int, int] | None = None,
                max_size: int | None = None) -> float:
    """How an image is resized before the test scales: its short edge clamped into `short_edge` (the
    authors' test scripts), then its long side capped at `max_size`."""
    factor = short_edge_factor(height, width, short_edge)
    if max_size and max(height, width) * factor > max_size:
        factor = max_size / max(height, width)
    return factor


def image_probs(
    model: nn.Module,
    image: torch.Tensor,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    max_size: int | None = None,
    tile: int | None = None,
    tile_overlap: float = TILE_OVERLAP,
    *,
    short_edge: tuple[int, int] | None = None,
    input_scale: float = 1.0,
    resize: str = "bilinear",
) -> torch.Tensor:
    """Class probabilities (1 x C x H x W) of one normalised image (1 x 3 x H x W), averaged over scales.

    The network sees the image at `base_factor(...) x scale x input_scale` for every test scale: the
    short-edge clamp (None: off) and the `max_size` cap first, as the released code clamps before its
    test scales, and the model's input scale (released: 1.2) on top, as its feature net does.
    """
    height, width = image.shape[-2:]
    base = base_factor(height, width, short_edge, max_size) * input_scale
    run_scales = [scale * base for scale in scales]
    if not tile:
        return predict_probs(model, image, run_scales, flip, resize)
    total = None
    for scale in run_scales:
        p = tiled_probs(model, rescale(image, scaled_size(height, width, scale), resize), tile, tile_overlap, flip)
        p = F.interpolate(p, size=(height, width), mode="bilinear", align_corners=False)
        total = p if total is None else total + p
    return total / len(run_scales)


@dataclass(frozen=True)
class CRFParams:
    """Fully connected CRF [27] settings. The paper does not publish its values and the released
    code has no implementation (main/gen_net_opts_model_type1.m sets `eva_densecrf_postprocess=false`;
    turning it on reaches `error('TODO')`), so the defaults are the common pydensecrf
    choices; `DEEPLAB_CRF` holds DeepLab's published ones [5]."""

    iterations: int = 5
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0


DEEPLAB_CRF = CRFParams(iterations=10, gaussian_sxy=1.0, gaussian_compat=3.0, bilateral_sxy=67.0,
                        bilateral_srgb=3.0, bilateral_compat=4.0)


def dense_crf(image: np.ndarray, probs, params: CRFParams | None = None) -> np.ndarray:
    """Refine one image's probabilities with a dense CRF; returns an H x W int64 label map.

    `image`: H x W x 3 uint8 RGB (not normalised); `probs`: C x H x W probabilities (numpy or
    tensor), e.g. the multi-scale average from `predict_probs`, used as the unary term.
    """
    import pydensecrf.densecrf as dcrf  # imported where it is used: a compiled extension

    params = params or CRFParams()
    from pydensecrf.utils import unary_from_softmax

    if isinstance(probs, torch.Tensor):
        probs = probs.detach().float().cpu().numpy()
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or image.shape[:2] != probs.shape[1:] or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"dense_crf needs an H x W x 3 image and C x H x W probabilities of the same H x W; got image "
            f"{image.shape} and probabilities {probs.shape}"
        )
    num_classes, height, width = probs.shape
    crf = dcrf.DenseCRF2D(width, height, num_classes)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(np.clip(probs, 1e-8, 1.0))))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy,
        srgb=params.bilateral_srgb,
        rgbim=np.ascontiguousarray(image.astype(np.uint8)),
        compat=params.bilateral_compat,
    )
    q = np.array(crf.inference(params.iterations)).reshape(num_classes, height, width)
    return q.argmax(axis=0).astype(np.int64)
