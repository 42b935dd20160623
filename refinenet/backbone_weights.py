"""ImageNet weights for the backbones (refinenet/backbones.py): a torchvision weights name, a `.pth` state dict,
or the authors' MatConvNet ResNet (`imagenet-resnet-<depth>-dag.mat`, MSRA form), read through its own graph
(refinenet/convert_graph.py) and checked against it on a random input, as every conversion is.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from refinenet.backbones import ResNetBackbone
from refinenet.convert_graph import (
    SELF_CHECK_SIZE,
    ConversionError,
    Walk,
    check_agreement,
    check_complete,
    walk_resnet,
)
from refinenet.matconvnet import DagNN, fix_padding_resnet, read_imagenet_dagnn, run_dagnn


def is_matconvnet_file(weights) -> bool:
    return isinstance(weights, (str, os.PathLike)) and str(weights).lower().endswith(".mat")


def backbone_state(depth: str, weights) -> dict:
    """A backbone state dict (torchvision names) from a torchvision weights name, a `.pth` file, a
    MatConvNet ImageNet ResNet (`imagenet-resnet-<depth>-dag.mat`, MSRA form) or a dict."""
    if isinstance(weights, dict):
        return weights
    if is_matconvnet_file(weights):
        return imagenet_backbone_state(Path(weights), depth)
    is_path = isinstance(weights, os.PathLike) or (isinstance(weights, str) and ("/" in weights or "." in weights))
    if is_path:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file {path} does not exist (expected a {depth} .pth)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
        return state
    import torchvision

    enum = torchvision.models.get_model_weights(depth)
    if isinstance(weights, str):
        weights = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    try:
        return weights.get_state_dict(progress=True)
    except Exception as err:  # URLError, socket errors, SSL errors: all mean "could not download"
        raise RuntimeError(
            f"ImageNet weights {weights} for {depth} are not cached and could not be downloaded ({err}).\n"
            f"Provide them in one of two ways:\n"
            f"  * copy the file from {weights.url} to {cached}\n"
            f"  * pass a local file: --backbone-weights /path/to/{depth}.pth (a torchvision state dict), or the\n"
            f"    authors' MatConvNet ResNet: --backbone-weights imagenet-resnet-{depth[6:]}-dag.mat\n"
            f"or train from random initialisation with --backbone-weights none."
        ) from err


def load_backbone_weights(model, weights) -> None:
    """Load ImageNet weights into every backbone of `model` (a RefineNet).

    `weights`: a torchvision weights enum or its name (e.g. "IMAGENET1K_V1", "DEFAULT"), a path to a
    `.pth` file holding a torchvision ResNet state dict (`fc.*` keys are ignored), or the authors'
    MatConvNet `imagenet-resnet-{50,101,152}-dag.mat` (the model must then have `resnet_form="msra"`,
    which `build_refinenet` sets for such a file).
    """
    if is_matconvnet_file(weights) and model.config.resnet_form != "msra":
        raise ValueError(f"{weights} is a MatConvNet (MSRA) ResNet: build the model with resnet_form='msra'")
    state = backbone_state(model.config.backbone, weights)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    for backbone in model.backbones:
        missing, unexpected = backbone.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"backbone weights do not fit {model.config.backbone}: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )


def imagenet_backbone_state(path: Path, depth: str | None = None) -> dict[str, torch.Tensor]:
    """Backbone state dict (torchvision names) from MatConvNet's `imagenet-resnet-<depth>-dag.mat`,
    checked against the file's own graph on a random input (pool5 / fc1000 / prob are not used)."""
    dag = fix_padding_resnet(read_imagenet_dagnn(path))  # as the authors load it
    walk = Walk(dag)
    found = walk_resnet(walk)
    if depth is not None and found.depth != depth:
        raise ConversionError(f"{path}: the file holds a {found.depth}, the model needs a {depth}")
    if not found.stride_in_1x1:
        raise ConversionError(f"{path}: this ResNet strides in its 3x3 convs; MatConvNet's MSRA ResNets stride in "
                              f"the first 1x1 conv")
    backbone = ResNetBackbone(found.depth, "msra", found.width).eval()
    for name in _classifier_params(dag):  # fc1000 is ImageNet's classifier, which a backbone leaves out
        walk.theirs[f"fc.{name}"] = name
    check_complete(backbone.state_dict(), walk.state, [walk], str(path))
    backbone.load_state_dict(walk.state)
    x = torch.randn(1, 3, *SELF_CHECK_SIZE, generator=torch.Generator().manual_seed(0))
    theirs = run_dagnn(dag, {found.input_var: x}, wanted=[found.level_vars[4]])[found.level_vars[4]]
    with torch.inference_mode():
        ours = backbone(x)[3]
    check_agreement(ours, theirs, str(path))
    return {k: v for k, v in walk.state.items()}


def _classifier_params(dag: DagNN) -> set[str]:
    """Parameters of the ImageNet classifier (fc1000 after pool5), which a backbone does not use."""
    return {p for layer in dag.layers if layer.type == "dagnn.Conv" and any(
        (dag.producer(v) is not None and dag.producer(v).type == "dagnn.Pooling"
         and str(dag.producer(v).block.get("method", "")) == "avg") for v in layer.inputs) for p in layer.params}
