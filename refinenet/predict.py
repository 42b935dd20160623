"""Prediction on image files: `predict(PredictConfig) -> list[Path]`, which `refinenet predict` runs.

Per image, `<stem>_labels.png` (palette PNG of class ids) and `<stem>_overlay.png` (the image with
the class colours blended in). The palette comes from the dataset stored in our checkpoints, or
`--dataset` (needed for released checkpoints, which do not name theirs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from refinenet import data
from refinenet.atomic import save_png
from refinenet.checkpoint import CheckpointError, load_model
from refinenet.config import PredictConfig, check_predict_config, eval_short_edge
from refinenet.data.common import voc_colormap
from refinenet.data.transforms import EvalTransform
from refinenet.inference import image_probs
from refinenet.utils import resolve_device


def _palette(meta: dict, dataset: str | None, num_classes: int):
    num_classes -= bool(meta.get("void_channel"))  # the authors' models: a void output, shown as 255
    if dataset is not None:
        info = data.dataset_info(dataset)
        if info.num_classes != num_classes:
            raise CheckpointError(f"the checkpoint predicts {num_classes} classes but {dataset} has {info.num_classes}")
        return info.palette
    if meta.get("palette"):
        return [tuple(c) for c in meta["palette"]]
    return voc_colormap(num_classes)  # a generic, distinct colour per class id


@torch.inference_mode()
def predict(cfg: PredictConfig) -> list[Path]:
    """Writes the label map and overlay of every image; returns the written paths."""
    check_predict_config(cfg)
    device = resolve_device(cfg.device)
    model, meta = load_model(cfg.checkpoint, map_location=device)
    palette = _palette(meta, cfg.dataset, model.config.num_classes)
    transform = EvalTransform(meta["mean"], meta["std"])
    # as evaluate: the short-edge clamp of the checkpoint's dataset, then the scales x the input scale
    short_edge = eval_short_edge(cfg, cfg.dataset or meta["dataset"], meta["short_edge_clamp"])
    input_scale = cfg.input_scale or meta["input_scale"]

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in map(Path, cfg.images):
        with Image.open(path) as im:
            rgb = np.array(im.convert("RGB"))
        image, _ = transform(rgb, np.zeros(rgb.shape[:2], dtype=np.int64))
        probs = image_probs(model, image[None].to(device), cfg.scales, cfg.flip, cfg.max_size, cfg.tile,
                            short_edge=short_edge, input_scale=input_scale, resize=meta.get("resize", "bilinear"))
        labels = probs[0].argmax(0).cpu().numpy().astype(np.uint8)
        if meta.get("void_channel"):
            labels[labels == len(palette)] = 255
        label_path = out / f"{path.stem}_labels.png"
        save_png(label_path, labels, palette)
        colours = np.array(list(palette) + [(0, 0, 0)] * (256 - len(palette)), dtype=np.float32)[labels]
        blend = (1 - cfg.overlay_alpha) * rgb.astype(np.float32) + cfg.overlay_alpha * colours
        overlay_path = out / f"{path.stem}_overlay.png"
        save_png(overlay_path, blend.round().clip(0, 255).astype(np.uint8))
        written += [label_path, overlay_path]
    return written
