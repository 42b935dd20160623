"""Positive control: a stand-in model overfits a handful of training images.

A falling loss can hide an image/label misalignment or a wrong class mapping (the model then learns
the class prior); a high mean IoU on the training images themselves cannot.
"""

from __future__ import annotations

import numpy as np

from refinenet import data
from refinenet.config import EvalConfig, TrainConfig
from refinenet.evaluate import evaluate
from refinenet.train import train


def test_a_standin_model_overfits_four_training_images(tmp_path):
    root = tmp_path / "voc"
    data.write_standin("voc2012", root, train=4, val=1, size=(48, 64), seed=0)
    train_set = data.load_dataset("voc2012", root, "train")
    labels = np.concatenate([train_set.load(i)[1].ravel() for i in range(len(train_set))])
    labels = labels[labels != 255]
    majority_share = np.bincount(labels).max() / labels.size
    checkpoint = train(TrainConfig("voc2012", root, tmp_path / "run", profile="smoke", backbone="resnet50",
                                   batch_size=4, iterations=100, lr=4e-3, lr_schedule="constant", workers=0,
                                   progress=False))
    result = evaluate(EvalConfig(checkpoint, "voc2012", root, split="train", workers=0, progress=False))
    # Measured (mean IoU / pixel acc., %): 49.8 / 96.0 and 46.4 / 97.2 with seed 0 and with seed 1 (data
    # and training; AMD EPYC). Predicting the majority class gives ~3 mean IoU at the majority share
    # (background, ~70% of the pixels).
    assert result["pixel_acc"] > majority_share + 0.15, (result["pixel_acc"], majority_share)
    assert result["miou"] > 0.30, result["miou"]
