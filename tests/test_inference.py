"""Multi-scale / flip prediction and dense-CRF post-processing."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from refinenet import RefineNet, RefineNetConfig
from refinenet.inference import CRFParams, dense_crf, image_probs, predict_labels, predict_probs
from refinenet.model import build_refinenet


class ColumnScores(nn.Module):
    """Scores that depend on input size and horizontal position: class 0 rises to the right."""

    def forward(self, x):
        n, _, h, w = x.shape
        ramp = torch.linspace(-1, 1, w).expand(n, 1, h, w) * w / 10
        return torch.cat([ramp, -ramp, torch.zeros_like(ramp)], dim=1) + x[:, :1]


def test_multiscale_prediction_averages_softmax_probabilities_of_every_scale():
    model = ColumnScores()
    image = torch.randn(1, 3, 20, 30)
    scales = (0.5, 1.0, 1.5)
    expected = 0
    for s in scales:
        # shrinking is antialiased, as MATLAB's imresize in the released code
        xs = F.interpolate(image, size=(round(20 * s), round(30 * s)), mode="bilinear", align_corners=False,
                           antialias=s < 1)
        scores = F.interpolate(model(xs), size=(20, 30), mode="bilinear", align_corners=False)
        expected = expected + scores.softmax(1) / len(scales)
    got = predict_probs(model, image, scales)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.sum(1), torch.ones(1, 20, 30))


class SizeRecorder(nn.Module):
    """Uniform scores that record the size of every input."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return torch.zeros(x.shape[0], 2, *x.shape[-2:])


def test_short_edge_clamp_applies_before_the_test_scales_and_the_input_scale():
    image = torch.randn(1, 3, 30, 40)
    model = SizeRecorder()
    probs = image_probs(model, image, scales=(1.0, 0.5), short_edge=(45, 80), input_scale=1.2)
    assert probs.shape == (1, 2, 30, 40)
    # 30 -> 45 (clamp), x 1.2 (input scale), x 1.0 / 0.5 (test scales)
    assert model.sizes == [(54, 72), (27, 36)]
    model.sizes.clear()
    image_probs(model, torch.randn(1, 3, 100, 150), short_edge=(45, 80))  # short edge 100 > 80: shrunk
    image_probs(model, torch.randn(1, 3, 60, 90), short_edge=(45, 80))  # inside: kept
    image_probs(model, torch.randn(1, 3, 30, 200), short_edge=(45, 80), max_size=120)  # long side capped after
    assert model.sizes == [(80, 120), (60, 90), (18, 120)]


def test_downscaling_at_test_is_antialiased():
    torch.manual_seed(0)
    noise = torch.rand(1, 3, 40, 40)
    seen = []
    model = lambda x: seen.append(x) or torch.zeros(1, 2, *x.shape[-2:])  # noqa: E731
    predict_probs(model, noise, scales=(0.3,))
    image_probs(model, noise, max_size=12)
    smooth = F.interpolate(noise, size=(12, 12), mode="bilinear", align_corners=False, antialias=True)
    aliased = F.interpolate(noise, size=(12, 12), mode="bilinear", align_corners=False)
    assert not torch.allclose(smooth, aliased, atol=1e-2)
    for x in seen:
        torch.testing.assert_close(x, smooth)
    assert smooth.std() < 0.6 * aliased.std()  # smoothed before it shrinks, as MATLAB's imresize


def test_flip_averages_with_the_mirrored_prediction_flipped_back():
    model = ColumnScores()
    image = torch.zeros(1, 3, 4, 8)
    probs = predict_probs(model, image, flip=True)
    # the ramp and its mirror cancel: classes 0 and 1 get equal probability everywhere
    torch.testing.assert_close(probs[:, 0], probs[:, 1])
    assert not torch.allclose(predict_probs(model, image)[:, 0], predict_probs(model, image)[:, 1])


def test_refinenet_predicts_a_label_map_for_any_image_size():
    torch.manual_seed(0)
    model = RefineNet(RefineNetConfig(num_classes=4, backbone="resnet50")).eval()
    labels = predict_labels(model, torch.randn(1, 3, 45, 61), scales=(0.6, 1.0), flip=True)
    assert labels.shape == (1, 45, 61) and labels.dtype == torch.int64
    assert labels.min() >= 0 and labels.max() < 4


def test_tiled_and_downscaled_probabilities_are_distributions():
    model = build_refinenet(5, backbone="resnet50", pooling_blocks=1).eval()
    image = torch.randn(1, 3, 70, 90)
    for options in ({"tile": 40}, {"max_size": 48}, {"tile": 48, "max_size": 64}):
        probs = image_probs(model, image, scales=(1.0, 0.5), **options)
        assert probs.shape == (1, 5, 70, 90), options
        assert torch.allclose(probs.sum(1), torch.ones(1, 70, 90), atol=1e-4)


def test_dense_crf_returns_a_valid_label_map_and_keeps_confident_labels():
    pytest.importorskip("pydensecrf.densecrf")
    rng = np.random.default_rng(0)
    h, w, c = 24, 32, 3
    truth = np.zeros((h, w), dtype=np.int64)
    truth[:, 16:] = 1
    truth[8:16, 4:10] = 2
    image = np.stack([truth * 100, 255 - truth * 80, np.full_like(truth, 60)], -1).astype(np.uint8)
    probs = np.full((c, h, w), 0.05, dtype=np.float32)
    probs[truth, np.arange(h)[:, None], np.arange(w)] = 0.9
    noisy = probs + rng.uniform(0, 0.3, probs.shape).astype(np.float32)
    noisy /= noisy.sum(0, keepdims=True)
    labels = dense_crf(image, noisy, CRFParams(iterations=5))
    assert labels.shape == (h, w) and labels.dtype == np.int64
    assert set(np.unique(labels)) <= {0, 1, 2}
    assert (labels == truth).mean() > 0.95
    assert np.array_equal(dense_crf(image, torch.from_numpy(noisy)), dense_crf(image, noisy))


def test_dense_crf_rejects_mismatched_sizes():
    pytest.importorskip("pydensecrf.densecrf")
    with pytest.raises(ValueError, match="same H x W"):
        dense_crf(np.zeros((4, 4, 3), np.uint8), np.ones((2, 5, 4), np.float32) / 2)
