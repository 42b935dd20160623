"""ConfusionMatrix: hand-worked cases and agreement with torchmetrics."""

import math

import pytest
import torch

from refinenet.metrics import ConfusionMatrix, chance_scores


def test_hand_worked_three_class_case():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    m = cm.compute()
    # class 0: tp 1, fn 1, fp 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 1, fn 1 -> 1/2
    assert m["iou"] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert m["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert m["pixel_acc"] == pytest.approx(4 / 6)
    assert m["mean_acc"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert m["pixels"] == 6  # the two 255 pixels are left out
    assert m["class_pixels"] == [2, 2, 2]


def test_majority_class_baseline_hand_worked():
    # ground truth: 6 pixels of class 0, 3 of class 1, 1 of class 2, none of class 3 (N = 10, 3 classes present)
    chance = chance_scores([6, 3, 1, 0])
    assert chance["pixel_acc"] == pytest.approx(0.6)  # the majority share
    assert chance["iou"][:3] == pytest.approx([0.6, 0.0, 0.0]) and math.isnan(chance["iou"][3])
    assert chance["miou"] == pytest.approx(0.6 / 3)  # absent class 3 left out, as in FCN's mean
    assert chance["mean_acc"] == pytest.approx(1 / 3)


def test_majority_class_baseline_equals_scoring_that_predictor():
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (40, 30), generator=gen)
    target[target == 4] = 255
    cm = ConfusionMatrix(6)
    cm.update(torch.full_like(target, int(torch.bincount(target[target != 255]).argmax())), target)
    direct = cm.compute()
    truth = ConfusionMatrix(6)
    truth.update(target, target)
    chance = chance_scores(truth.compute()["class_pixels"])
    for key in ("miou", "pixel_acc", "mean_acc"):
        assert chance[key] == pytest.approx(direct[key])


def test_class_absent_everywhere_is_nan_and_left_out_of_the_means():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1]))
    m = cm.compute()
    assert math.isnan(m["iou"][2])
    assert m["miou"] == 1.0 and m["mean_acc"] == 1.0


def test_class_predicted_but_absent_from_target_has_iou_zero():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 2]), torch.tensor([0, 0]))
    m = cm.compute()
    assert m["iou"][2] == 0.0
    assert m["miou"] == pytest.approx((0.5 + 0.0) / 2)
    assert math.isnan(m["class_acc"][2])  # no target pixels: accuracy undefined, not 0


def test_accumulates_over_the_whole_dataset_not_per_image():
    torch.manual_seed(0)
    preds = [torch.randint(0, 4, (2, 5, 7)) for _ in range(3)]
    targets = [torch.randint(0, 4, (2, 5, 7)) for _ in range(3)]
    split = ConfusionMatrix(4)
    for p, t in zip(preds, targets):
        split.update(p, t)
    whole = ConfusionMatrix(4)
    whole.update(torch.cat(preds), torch.cat(targets))
    assert torch.equal(split.mat, whole.mat)


def test_agrees_with_torchmetrics_jaccard_and_accuracy():
    tm = pytest.importorskip("torchmetrics.classification")
    torch.manual_seed(0)
    num_classes = 6
    target = torch.randint(0, num_classes, (4, 33, 47))
    target[torch.rand(target.shape) < 0.1] = 255
    pred = torch.where(torch.rand(target.shape) < 0.6, target.clamp(max=num_classes - 1),
                       torch.randint(0, num_classes, target.shape))
    cm = ConfusionMatrix(num_classes)
    cm.update(pred, target)
    m = cm.compute()
    jaccard = tm.MulticlassJaccardIndex(num_classes, average=None, ignore_index=255)(pred, target)
    assert m["iou"] == pytest.approx(jaccard.tolist(), abs=1e-6)
    micro = tm.MulticlassAccuracy(num_classes, average="micro", ignore_index=255)(pred, target)
    assert m["pixel_acc"] == pytest.approx(float(micro), abs=1e-6)
    macro = tm.MulticlassAccuracy(num_classes, average="macro", ignore_index=255)(pred, target)
    assert m["mean_acc"] == pytest.approx(float(macro), abs=1e-6)


def test_labels_out_of_range_are_an_error_naming_the_values():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"\[7\]"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, 1, 2]))


def test_counts_on_the_device_of_the_labels():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert cm.mat.device == torch.tensor(0).device and cm.mat.dtype == torch.int64


def test_mean_iou_over_classes_present_in_the_ground_truth_leaves_out_predicted_only_classes():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 0, 1, 1]))
    m = cm.compute()
    # class 2 is predicted once but absent from the target: FCN's mean counts its IoU of 0, the
    # authors' (main/seg_eva_gen_result_from_con_mat.m) averages over classes 0 and 1 only
    assert m["iou"] == pytest.approx([0.5, 1.0, 0.0])
    assert m["miou"] == pytest.approx(1.5 / 3)
    assert m["miou_present"] == pytest.approx(1.5 / 2)
    assert math.isnan(ConfusionMatrix(2).compute()["miou_present"])


def test_a_void_prediction_is_a_miss_for_its_class_and_a_hit_for_none():
    # the authors' models have a void output (index 2 here, two classes): a pixel predicted void is wrong
    target = torch.tensor([0, 0, 1, 1, 255])
    pred = torch.tensor([0, 2, 1, 2, 2])
    scores = ConfusionMatrix(2, void_prediction=True)
    scores.update(pred, target)
    result = scores.compute()
    assert result["iou"] == [0.5, 0.5] and result["pixel_acc"] == 0.5 and result["pixels"] == 4
    assert result["class_acc"] == [0.5, 0.5]
    with pytest.raises(ValueError, match="predictions \\[0, 2\\)"):
        ConfusionMatrix(2).update(pred, target)  # without a void output, 2 is no class
