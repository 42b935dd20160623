"""Segmentation scores accumulated over a whole dataset, as in FCN [36] (the paper's metrics, Sec. 4).

Mean IoU comes two ways: `miou` as FCN computes it (every class with a pixel in the target or the
prediction), and `miou_present` as the authors' released code does (`main/seg_eva_gen_result_from_con_mat.m`:
only classes present in the ground truth of the split). They differ when a class absent from the
split's ground truth is predicted somewhere: FCN counts its IoU of 0, the authors leave it out.
"""

from __future__ import annotations

import torch


class ConfusionMatrix:
    """`mat[t, p]` counts pixels of target class t predicted as p, over every `update` call.

    Pixels whose target is `ignore_index` are left out. Counting runs with `bincount` on the
    device the label maps live on; `compute()` gives per-class IoU, mean IoU, pixel accuracy and
    mean (per-class) accuracy. A class with no pixels in target or prediction has NaN IoU and is
    left out of the means; a class predicted but absent from the target has IoU 0 (counted in
    `miou`, left out of `miou_present`).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, void_prediction: bool = False):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        # A network with a void output (the authors' models: main/gen_class_info_<dataset>.m lists 'void') may
        # predict `num_classes`, meaning void: such a pixel is a miss for its true class and a hit for none
        # (main/seg_eva_one_img.m). The matrix then has one more column.
        self.void_prediction = void_prediction
        self.mat: torch.Tensor | None = None

    def reset(self) -> None:
        self.mat = None

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """`pred`, `target`: integer label maps of the same shape (any batch shape)."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
        n = self.num_classes
        columns = n + 1 if self.void_prediction else n
        if self.mat is None:
            self.mat = torch.zeros((n, columns), dtype=torch.int64, device=target.device)
        target = target.reshape(-1).to(self.mat.device, torch.int64)
        pred = pred.reshape(-1).to(self.mat.device, torch.int64)
        keep = target != self.ignore_index
        target, pred = target[keep], pred[keep]
        bad = (target < 0) | (target >= n) | (pred < 0) | (pred >= columns)
        if bad.any():
            raise ValueError(
                f"labels outside [0, {n}) other than ignore_index {self.ignore_index} (predictions [0, {columns})): "
                f"target values {torch.unique(target[bad]).tolist()[:10]}, "
                f"prediction values {torch.unique(pred[bad]).tolist()[:10]}"
            )
        self.mat += torch.bincount(target * columns + pred, minlength=n * columns).reshape(n, columns)

    def compute(self) -> dict:
        n = self.num_classes
        columns = n + 1 if self.void_prediction else n
        mat = (self.mat if self.mat is not None else torch.zeros((n, columns), dtype=torch.int64)).double()
        diag = mat[:, :n].diag()
        in_target = mat.sum(1)  # void predictions included: misses
        in_pred = mat[:, :n].sum(0)
        union = in_target + in_pred - diag
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=mat.device)
        iou = torch.where(union > 0, diag / union.clamp(min=1), nan)
        acc = torch.where(in_target > 0, diag / in_target.clamp(min=1), nan)
        total = in_target.sum()
        present = in_target > 0
        return {
            "iou": iou.cpu().tolist(),
            "miou": float(torch.nanmean(iou)) if (union > 0).any() else float("nan"),
            "miou_present": float(iou[present].mean()) if present.any() else float("nan"),
            "pixel_acc": float(diag.sum() / total) if total > 0 else float("nan"),
            "mean_acc": float(torch.nanmean(acc)) if (in_target > 0).any() else float("nan"),
            "class_acc": acc.cpu().tolist(),
            "pixels": int(total),
            "class_pixels": [int(v) for v in in_target.tolist()],  # ground-truth pixels per class
        }


def chance_scores(class_pixels) -> dict:
    """The scores of the majority-class predictor on the same pixels: every pixel labelled with the class that
    has the most ground-truth pixels (`class_pixels`, one count per class, as `compute()` returns them).

    The floor a trained model must beat. Computed by `compute()` itself from that predictor's confusion
    matrix, so it follows the same definitions: pixel acc. = majority share; mean IoU = that share over the
    classes present in the ground truth (the others have IoU 0); mean acc. = 1 / classes present.
    """
    counts = torch.as_tensor(list(class_pixels), dtype=torch.int64)
    matrix = ConfusionMatrix(len(counts))
    matrix.mat = torch.zeros((len(counts), len(counts)), dtype=torch.int64)
    matrix.mat[:, int(counts.argmax())] = counts
    return matrix.compute()
