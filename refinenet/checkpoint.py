"""Training checkpoints: written atomically (`refinenet/atomic.py`), so a run killed mid-write
leaves the previous checkpoint intact, and loaded with `weights_only=True` (plain data only).

A checkpoint holds everything a resumed run needs to end with exactly the weights of an
uninterrupted one: model, optimizer, scheduler, grad scaler, iteration, the RNG states
(torch, CUDA, numpy, python) and the data sampler's position, plus the resolved config and the
dataset's description (name, class names, palette) for evaluation and prediction.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from refinenet.convert import CONVERTED_FORMAT
from refinenet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from refinenet.model import RefineNet, RefineNetConfig
from refinenet.released import RELEASED_INPUT_SCALE, RELEASED_SHORT_EDGE_CLAMP, load_released

FORMAT = "refinenet-checkpoint-v1"
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit what it is used for."""


def rng_state() -> dict:
    """Every RNG the training loop may touch, as plain data (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Our checkpoint as a dict; clear errors for a missing file or a file of another kind."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors, truncated files: all mean "not a usable checkpoint"
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a refinenet training checkpoint (format {FORMAT})")
    return ckpt


def load_model(path: str | Path, map_location="cpu"):
    """(model in eval mode, metadata) from our checkpoint, a conversion of the authors' MatConvNet model
    (`refinenet convert`; a `refinenet_res*_*.mat` itself is converted once and cached), or a released
    `.pth.tar` (`load_released`).

    metadata: `dataset` (name or None), `class_names`, `palette`, `train_config` (or None),
    `source` ("ours" / "matconvnet" / "released"), and how the model expects its input: `mean` and `std` of
    the normalisation, `input_scale` and `short_edge_clamp` (whether the test-time short-edge clamp of
    the dataset applies), `resize` (how images are resized) and `void_channel` (the last output is void).
    Ours: the training run's values (a checkpoint from before the clamp existed: off). The authors' models
    and the released conversions: the authors' test pipeline (clamp on, input scale 1.2); the MatConvNet
    models with their own RGB - 128 and MATLAB bicubic resizing, the conversions with ImageNet statistics.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix.lower() == ".mat":
        from refinenet.convert import cached_conversion

        path = cached_conversion(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # not a torch file of plain data: maybe nothing we know; load_released says
        ckpt = None
    if isinstance(ckpt, dict) and ckpt.get("format") == CONVERTED_FORMAT:
        return _converted_model(ckpt, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        try:
            model = load_released(ckpt if isinstance(ckpt, dict) else path, map_location=map_location)
        except Exception as err:
            raise CheckpointError(
                f"{path} is neither a refinenet training checkpoint, a converted MatConvNet model nor a released "
                f"RefineNet .pth.tar: {err}"
            ) from err
        meta = {"source": "released", "dataset": None, "class_names": None, "palette": None, "train_config": None,
                "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "input_scale": RELEASED_INPUT_SCALE,
                "short_edge_clamp": RELEASED_SHORT_EDGE_CLAMP}
        return model, meta
    model = RefineNet(RefineNetConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    info = ckpt.get("dataset_info") or {}
    train_config = ckpt.get("train_config") or {}
    recipe = train_config.get("recipe") or {}
    meta = {
        "source": "ours",
        "dataset": info.get("name"),
        "class_names": info.get("class_names"),
        "palette": info.get("palette"),
        "train_config": ckpt.get("train_config"),
        "iteration": ckpt.get("iteration"),
        "mean": tuple(recipe.get("mean", IMAGENET_MEAN)),
        "std": tuple(recipe.get("std", IMAGENET_STD)),
        "input_scale": train_config.get("input_scale") or 1.0,
        "short_edge_clamp": bool(train_config.get("short_edge_clamp", False)),
    }
    return model.to(map_location).eval(), meta


def _converted_model(ckpt: dict, map_location):
    """A conversion of the authors' MatConvNet model (refinenet/convert.py) and its test pipeline."""
    from refinenet.data import dataset_info

    model = RefineNet(RefineNetConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    info = dataset_info(ckpt["dataset"])
    pre = ckpt["preprocess"]
    meta = {
        "source": "matconvnet", "dataset": info.name, "class_names": list(info.class_names),
        "palette": [list(c) for c in info.palette] if info.palette is not None else None, "train_config": None,
        # RGB in 0..255 minus 128, no division, expressed on the 0..1 images of our transforms
        "mean": tuple(m / 255 for m in pre["mean_255"]), "std": tuple(s / 255 for s in pre["std_255"]),
        "input_scale": pre["input_scale"], "short_edge_clamp": pre["short_edge_clamp"], "resize": pre["resize"],
        "void_channel": bool(ckpt["void_channel"]), "matconvnet_file": ckpt["source"]["file"],
        "self_check": ckpt["self_check"],
    }
    return model.to(map_location).eval(), meta
