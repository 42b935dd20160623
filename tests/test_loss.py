"""The training loss compares the 1/4 score map with labels shrunk to it, as the released code does."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from refinenet.loss import segmentation_loss, shrink_labels, training_scores
from refinenet.model import build_refinenet


def test_scores_at_the_score_map_or_at_the_input():
    torch.manual_seed(0)
    model = build_refinenet(3, backbone="resnet50").eval()
    with torch.no_grad():
        assert training_scores(model, torch.randn(2, 3, 40, 40), input_scale=1.2).shape[-2:] == (12, 12)  # 48 / 4
        assert training_scores(model, torch.randn(2, 3, 40, 40), 1.2, "input").shape[-2:] == (40, 40)
    with pytest.raises(ValueError, match="loss_at must be one of"):
        training_scores(model, torch.randn(1, 3, 8, 8), loss_at="full")


def test_labels_shrink_by_nearest_neighbour_and_void_stays_void():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (2, 40, 40))
    labels[:, :10] = 255
    small = shrink_labels(labels, (12, 12))
    assert small.shape == (2, 12, 12) and small.dtype == labels.dtype
    assert set(small.unique().tolist()) <= {0, 1, 2, 255}  # values of the input only
    assert (small[:, :3] == 255).all() and (small[:, 4:] != 255).all()
    # centre-aligned: output pixel i reads input pixel floor((i + 0.5) * 40 / 12)
    rows = [int((i + 0.5) * 40 / 12) for i in range(12)]
    assert torch.equal(small, labels[:, rows][:, :, rows])


def test_loss_target_has_the_score_maps_size():
    torch.manual_seed(0)
    scores = torch.randn(2, 3, 12, 12)
    labels = torch.randint(0, 3, (2, 40, 40))
    labels[0, :20] = 255
    expected = nn.functional.cross_entropy(scores, shrink_labels(labels, (12, 12)), ignore_index=255)
    torch.testing.assert_close(segmentation_loss(scores, labels), expected)
    assert segmentation_loss(scores, torch.full((2, 40, 40), 255)).item() == 0.0  # nothing labelled: 0, not NaN
