"""Evaluation: `evaluate(EvalConfig) -> dict`, which `refinenet evaluate` runs.

Scores as in the paper (Sec. 4): IoU per class, mean IoU, pixel accuracy and mean accuracy from one
confusion matrix over the split (void = 255 left out), plus the authors' mean IoU over the classes
present in the ground truth (`miou_present`). Each image is resized as in the authors' test
pipeline (short-edge clamp, then every test scale times the model's input scale; docs/protocol.md);
multi-scale testing averages the softmax of every scale (Sec. 4); optional flip and dense CRF
(Table 4); large images are tiled or downscaled (`refinenet.inference.image_probs`). Under torchrun
every process scores its share of the images; the confusion matrices are summed.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from refinenet import data
from refinenet.atomic import save_png, write_text_atomic
from refinenet.checkpoint import CheckpointError, load_model
from refinenet.config import EvalConfig, check_eval_config, eval_short_edge
from refinenet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform
from refinenet.fastpath import apply_fast_path, autocast, choose_fast_path, precision_name
from refinenet.inference import TILE_OVERLAP, CRFParams, dense_crf, image_probs
from refinenet.metrics import ConfusionMatrix
from refinenet.utils import all_gather_object, all_reduce_sum, init_distributed, rank_and_world

VOC_TEST_DIR = "results/VOC2012/Segmentation/comp6_test_cls"  # the VOC evaluation server's layout


# ---------------------------------------------------------------------------------------------
# Writing predictions


def prediction_path(image_path: Path, directory: Path, fmt: str) -> Path:
    stem = Path(image_path).stem
    if fmt == "voc-test-server":
        return directory / VOC_TEST_DIR / f"{stem}.png"
    # cityscapes: keep `<city>_<seq>_<frame>_leftImg8bit`, which its evaluation script matches on
    return directory / f"{stem}.png"


def save_prediction(labels: np.ndarray, image_path: Path, directory: Path, fmt: str, palette) -> Path:
    path = prediction_path(image_path, directory, fmt)
    if fmt == "cityscapes-test-server":
        from refinenet.data.cityscapes import trainids_to_labelids

        save_png(path, trainids_to_labelids(labels).astype(np.uint8))
    else:
        save_png(path, labels.astype(np.uint8), palette)
    return path


# ---------------------------------------------------------------------------------------------
# The loop


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        index = self.indices[i]
        image, label = self.dataset[index]
        return index, image, label


def _shard_loader(dataset, mean, std, workers: int) -> torch.utils.data.DataLoader:
    """(index, normalised image, label) of this process's share of `dataset`, one image at a time."""
    rank, world = rank_and_world()
    normalised = copy.copy(dataset)
    normalised.transform = EvalTransform(mean, std)
    shard = _Indexed(normalised, range(rank, len(dataset), world))  # no padding: no image counted twice
    return torch.utils.data.DataLoader(shard, batch_size=1, num_workers=workers, shuffle=False)


def _summed_scores(matrix: ConfusionMatrix, class_names, device: torch.device) -> dict | None:
    """Scores of every process's confusion matrix summed (rank 0; None elsewhere)."""
    n = matrix.num_classes
    columns = n + 1 if matrix.void_prediction else n
    counts = matrix.mat if matrix.mat is not None else torch.zeros((n, columns), dtype=torch.int64, device=device)
    matrix.mat = all_reduce_sum(counts)
    if rank_and_world()[0] != 0:
        return None
    scores = matrix.compute()
    return {
        "miou": scores["miou"],
        "miou_present": scores["miou_present"],  # the authors' mean: classes in the ground truth only
        "pixel_acc": scores["pixel_acc"],
        "mean_acc": scores["mean_acc"],
        "per_class_iou": dict(zip(class_names, scores["iou"])),
        "per_class_acc": dict(zip(class_names, scores["class_acc"])),
        "pixels": scores["pixels"],
        "class_pixels": scores["class_pixels"],  # per class, for the majority-class baseline (metrics.chance_scores)
    }


@torch.inference_mode()
def evaluate_dataset(
    model: nn.Module,
    dataset,
    device: torch.device,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    crf_params: CRFParams | None = None,
    max_size: int | None = None,
    tile: int | None = None,
    tile_overlap: float = TILE_OVERLAP,
    short_edge: tuple[int, int] | None = None,
    input_scale: float = 1.0,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    resize: str = "bilinear",
    void_channel: bool = False,
    save_dir: Path | None = None,
    fmt: str = "palette",
    workers: int = 0,
    progress: bool = True,
) -> dict | None:
    """Score `dataset` (a SegmentationFiles without transform) and/or save its predictions.

    `short_edge` = (min, max) clamps each image's short edge before the scales (None: the stored size);
    `input_scale` multiplies every scale; `resize` is how the image is resized ("bilinear", or "matlab_bicubic"
    as the authors' test code). `void_channel`: the model's last output is void (the authors' models), a
    pixel predicted void counts as a miss; a saved prediction shows it as 255. Returns the metrics dict on
    rank 0 (None elsewhere); for a split without labels, a dict without scores. The model's train / eval
    mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(dataset.info.num_classes, ignore_index=dataset.info.ignore_index,
                             void_prediction=void_channel)
    show = progress and rank_and_world()[0] == 0
    for index, image, label in tqdm(_shard_loader(dataset, mean, std, workers), disable=not show, desc="evaluate",
                                    unit="img"):
        probs = image_probs(model, image.to(device), scales, flip, max_size, tile, tile_overlap, short_edge=short_edge,
                            input_scale=input_scale, resize=resize)[0]
        if crf_params is not None:
            raw, _ = dataset.load(int(index))
            pred = torch.from_numpy(dense_crf(raw, probs, crf_params)).to(device)
        else:
            pred = probs.argmax(0)
        if dataset.has_labels:
            matrix.update(pred, label[0].to(device))
        if save_dir is not None:
            labels = pred.cpu().numpy()
            if void_channel:
                labels = np.where(labels == dataset.info.num_classes, 255, labels)
            save_prediction(labels, dataset.pairs[int(index)][0], Path(save_dir), fmt, dataset.info.palette)
    if was_training:
        model.train()

    result = {
        "dataset": dataset.info.name,
        "split": dataset.split,
        "data_kind": dataset.data_kind,
        "num_images": len(dataset),
        "scales": list(scales),
        "short_edge": None if short_edge is None else list(short_edge),  # the test-time clamp applied
        "input_scale": input_scale,
        "resize": resize,
        "void_channel": void_channel,
        "flip": flip,
        "crf": None if crf_params is None else vars(crf_params).copy(),
        "max_size": max_size,
        "tile": tile,
        "predictions": None if save_dir is None else str(save_dir),
        "format": fmt if save_dir is not None else None,
    }
    if not dataset.has_labels:
        return result if rank_and_world()[0] == 0 else None
    scores = _summed_scores(matrix, dataset.info.class_names, device)
    return None if scores is None else {**result, **scores}


def json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN (class absent) is not valid JSON
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_metrics(result: dict, out: Path) -> None:
    """`out/metrics.json` and `out/per_class.csv` (class id, name, IoU, accuracy; empty = class absent)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "metrics.json", json.dumps(json_safe(result), indent=2) + "\n")
    if "per_class_iou" not in result:
        return
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["class_id", "class_name", "iou", "accuracy"])
    for i, name in enumerate(result["per_class_iou"]):
        iou, acc = result["per_class_iou"][name], result["per_class_acc"][name]
        writer.writerow([i, name, "" if math.isnan(iou) else f"{iou:.6f}", "" if math.isnan(acc) else f"{acc:.6f}"])
    write_text_atomic(out / "per_class.csv", rows.getvalue())


def evaluate(cfg: EvalConfig) -> dict:
    """Evaluate a checkpoint on a split; writes metrics.json / per_class.csv under `cfg.out` and the
    predictions if asked. For a split without labels (VOC / Cityscapes test) only predictions are
    written (to `save_predictions`, else `out/predictions`)."""
    check_eval_config(cfg)
    rank, _, device = init_distributed(cfg.device)
    dataset = data.load_dataset(cfg.dataset, cfg.data_root, cfg.split)
    model, meta = load_model(cfg.checkpoint, map_location=device)
    void = bool(meta.get("void_channel"))
    if model.config.num_classes != dataset.info.num_classes + void:
        raise CheckpointError(
            f"checkpoint {cfg.checkpoint} predicts {model.config.num_classes} classes{' (void included)' * void} but "
            f"{cfg.dataset} has {dataset.info.num_classes}"
        )
    input_scale = cfg.input_scale or meta["input_scale"]
    short_edge = eval_short_edge(cfg, cfg.dataset, meta["short_edge_clamp"])
    save_dir = cfg.save_predictions
    if save_dir is None and (cfg.format != "palette" or not dataset.has_labels):
        if cfg.out is None:
            raise ValueError(f"split {cfg.split!r} has no labels: give --save-predictions DIR or --out DIR")
        save_dir = Path(cfg.out) / "predictions"
    # the layout is decided on rank 0 (a CPU may time both once) and shared; never torch.compile (new shapes recompile)
    choice = None
    if rank == 0:
        choice = choose_fast_path(device, step="inference", channels_last=cfg.channels_last, amp=cfg.amp,
                                  enabled=cfg.fast_path)
    fast, fast_label = all_gather_object(choice)[0]
    model = apply_fast_path(model, fast)
    with autocast(fast, device):
        result = evaluate_dataset(
            model, dataset, device, scales=cfg.scales, flip=cfg.flip, crf_params=cfg.crf_params if cfg.crf else None,
            max_size=cfg.max_size, tile=cfg.tile, tile_overlap=cfg.tile_overlap, short_edge=short_edge,
            input_scale=input_scale,
            mean=meta["mean"], std=meta["std"], resize=meta.get("resize", "bilinear"), void_channel=void,
            save_dir=save_dir, fmt=cfg.format, workers=cfg.workers,
            progress=cfg.progress,
        )
    if rank != 0:
        return {}
    result["checkpoint"] = str(cfg.checkpoint)
    result["checkpoint_source"] = meta["source"]
    result["precision"] = precision_name(fast.amp_dtype, device)
    result["fast_path"] = fast_label
    if "miou" in result:
        if cfg.out is not None:
            write_metrics(result, Path(cfg.out))
    elif cfg.out is not None:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
    return result


def format_result(result: dict) -> str:
    clamp = result.get("short_edge")
    lines = [f"{result['dataset']} {result['split']} ({result['data_kind']} data, {result['num_images']} images, "
             f"short edge {'clamped to ' + str(clamp) if clamp else 'as stored'}, input scale "
             f"{result.get('input_scale', 1.0)}, scales {result['scales']}, flip {result['flip']}, "
             f"crf {'on' if result['crf'] else 'off'})"]
    if "miou" not in result:
        lines.append(f"split has no labels: predictions written to {result['predictions']}, no scores")
        return "\n".join(lines)
    present = result.get("miou_present", math.nan)
    lines.append(f"mean IoU {result['miou']:.4f} (over classes in the ground truth: {present:.4f})  "
                 f"pixel acc {result['pixel_acc']:.4f}  mean acc {result['mean_acc']:.4f}")
    for name, iou in result["per_class_iou"].items():
        lines.append(f"  {name:<20} {'-' if math.isnan(iou) else f'{iou:.4f}'}")
    return "\n".join(lines)
