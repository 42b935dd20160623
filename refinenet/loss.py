"""What the training loss compares: the network's scores and the label map, at the resolution the
recipe says (`loss_at`), and the pixel-wise cross-entropy between them.

The released code computes the loss on the score map the classifier produces (1/4 of the network's
input) against the label map shrunk to that size by nearest neighbour, void pixels left out
(guosheng/refinenet main/cnn_layer_dense_softmaxloss_forward.m): `loss_at="score_map"`. The other way,
`loss_at="input"`, upsamples the scores bilinearly to the label's size (Sec. 3.1's upsampling of the
prediction) and compares there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from refinenet.inference import rescale, scaled_size

LOSS_AT = ("score_map", "input")


def training_scores(model: nn.Module, images: torch.Tensor, input_scale: float = 1.0,
                    loss_at: str = "score_map") -> torch.Tensor:
    """The scores the loss sees. `input_scale` != 1 feeds the network the rescaled image, as the released
    feature net does with 1.2 (main/gen_net_opts_model_type1.m, `gen_featnet_config_resnet_custom`)."""
    if loss_at not in LOSS_AT:
        raise ValueError(f"loss_at must be one of {LOSS_AT}, got {loss_at!r}")
    x = rescale(images, scaled_size(*images.shape[-2:], input_scale)) if input_scale != 1.0 else images
    scores = model(x, upsample=False)
    if loss_at == "input":
        # "upsampled to match the original image using bilinear interpolation" (Sec. 3.1)
        scores = F.interpolate(scores, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return scores


def shrink_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """N x H x W label maps resized to `size` by centre-aligned nearest neighbour (close to MATLAB's
    imresize 'nearest'): every value, void included, is a value of the input."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    # float32 holds every label value (< 2^24) exactly
    shrunk = F.interpolate(labels[:, None].float(), size=tuple(size), mode="nearest-exact")
    return shrunk[:, 0].to(labels.dtype)


def segmentation_loss(scores: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Pixel-wise cross-entropy, void pixels left out, the labels shrunk to the scores' size if they differ.
    A batch with no labelled pixel gives 0, not NaN."""
    labels = shrink_labels(labels, scores.shape[-2:])
    if not (labels != ignore_index).any():
        return scores.float().sum() * 0.0
    return F.cross_entropy(scores.float(), labels, ignore_index=ignore_index)
