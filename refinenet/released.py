"""Load the authors' released RefineNet checkpoints (`refinenet{50,101,152}_{voc,nyu}.pth.tar`).

Their state dicts use the names of the published PyTorch model definition (DrSleep/refinenet-pytorch,
`models/resnet.py` and `utils/layer_factory.py`); this module translates those names to ours and
back by rule, infers the configuration from the tensors, and loads strictly. Note the released
numbering runs coarse to fine: `stage1` / `g1` / `outl1` is RefineNet-4 of the paper, which is our
`blocks.0`.

How these weights are evaluated by default is the authors' test pipeline (docs/protocol.md): the
image's short edge clamped into the dataset's range, then the feature net's input scale 1.2 on top
of every test scale. The conversion's own published figure (80.5 mean IoU, VOC 2012 val, single
scale, DrSleep/refinenet-pytorch README.md) came from its notebook's preprocessing instead: the
image at its stored size, ImageNet mean / std (`--no-short-edge-clamp --input-scale 1`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike

import torch

from refinenet.model import RefineNet, RefineNetConfig

_BACKBONE_KEYS = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")
# layer3 length -> depth (torchvision: [6, 4, 23, 36] blocks)
_DEPTH_BY_LAYER3 = {6: "resnet50", 23: "resnet101", 36: "resnet152"}
# The authors' test pipeline for their trained models: the feature net's input scale, stored in the
# trained net (guosheng/refinenet main/gen_net_opts_model_type1.m, `gen_featnet_config_resnet_custom(...,
# 1.2, ...)`; the converted names `p_ims1d2_*` carry it), and the short-edge clamp of every
# main/demo_predict_mscale_<dataset>.m.
RELEASED_INPUT_SCALE = 1.2
RELEASED_SHORT_EDGE_CLAMP = True


def released_name(name: str) -> str:
    """Our parameter/buffer name -> the released checkpoint's name (4-cascaded, released layout)."""
    if name.startswith("backbones.0."):
        return name[len("backbones.0.") :]
    if name.startswith("classifier."):
        return "clf_conv." + name[len("classifier.") :]
    if m := re.fullmatch(r"dimred\.(\d+)\.weight", name):
        return f"p_ims1d2_outl{int(m[1]) + 1}_dimred.weight"
    if m := re.fullmatch(r"blocks\.(\d+)\.(adapt\.\d+|output)\.(\d+)\.conv([12])\.(weight|bias)", name):
        stage, part, unit, conv, kind = int(m[1]) + 1, m[2], int(m[3]) + 1, m[4], m[5]
        prefix = f"mflow_conv_g{stage}_b" if part == "output" else f"adapt_stage{stage}_b"
        suffix = "_conv" if conv == "1" else "_conv_relu_varout_dimred"
        return f"{prefix}.0.{unit}{suffix}.{kind}"
    if m := re.fullmatch(r"blocks\.(\d+)\.fusion\.convs\.([01])\.weight", name):
        stage = int(m[1]) + 1
        if m[2] == "0":  # the coarser path: the previous block's output, named after that block
            return f"mflow_conv_g{stage - 1}_b3_joint_varout_dimred.weight"
        return f"adapt_stage{stage}_b2_joint_varout_dimred.weight"
    if m := re.fullmatch(r"blocks\.(\d+)\.pool\.convs\.(\d+)\.weight", name):
        return f"mflow_conv_g{int(m[1]) + 1}_pool.0.{int(m[2]) + 1}_outvar_dimred.weight"
    raise KeyError(f"{name} has no counterpart in the released checkpoint layout")


def read_state_dict(source) -> dict[str, torch.Tensor]:
    """A state dict from a path (`.pth`/`.pth.tar`, optionally wrapped in {'model': ...} or
    {'state_dict': ...}) or a mapping; a DataParallel `module.` prefix is dropped."""
    if isinstance(source, (str, PathLike)):
        state = torch.load(source, map_location="cpu", weights_only=True)
    else:
        state = source
    if not isinstance(state, Mapping):
        raise TypeError(f"expected a state dict or a file holding one, got {type(state).__name__}")
    for key in ("model", "state_dict"):
        if key in state and isinstance(state[key], Mapping):
            state = state[key]
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def released_config(state: Mapping[str, torch.Tensor]) -> RefineNetConfig:
    """Infer backbone depth, class count and pooling blocks from a released state dict."""
    if "clf_conv.weight" not in state or "p_ims1d2_outl1_dimred.weight" not in state:
        raise ValueError(
            "not a released RefineNet state dict: expected keys 'clf_conv.weight' and "
            "'p_ims1d2_outl1_dimred.weight' (the names of DrSleep/refinenet-pytorch models/resnet.py)"
        )
    layer3 = {int(k.split(".")[1]) for k in state if k.startswith("layer3.")}
    depth = _DEPTH_BY_LAYER3.get(len(layer3))
    if depth is None:
        raise ValueError(f"backbone with {len(layer3)} layer3 blocks is not ResNet-50/101/152")
    pooling = len({k for k in state if k.startswith("mflow_conv_g1_pool.")})
    return RefineNetConfig(
        num_classes=state["clf_conv.weight"].shape[0],
        backbone=depth,
        variant="4-cascaded",
        pooling_blocks=pooling,
        block_layout="released",
        pool_order="pool_conv",
    )


def load_released(source, map_location: str | torch.device = "cpu") -> RefineNet:
    """Build the model a released checkpoint describes and load it strictly.

    `source`: a path to `refinenet{50,101,152}_{voc,nyu}.pth.tar` or its state dict. The model
    is returned in eval mode; it expects images normalised as our transforms do (ImageNet mean / std,
    as the conversion's notebook does; whether the conversion folded the authors' RGB - 128 into
    conv1 is not documented, see docs/protocol.md).
    """
    state = read_state_dict(source)
    model = RefineNet(released_config(state))
    translated, missing = {}, []
    for name, value in model.state_dict().items():
        key = released_name(name)
        if key in state:
            translated[name] = state[key]
        elif key.endswith("num_batches_tracked"):  # absent from some conversions; a counter only
            translated[name] = value
        else:
            missing.append(key)
    unexpected = sorted(set(state) - {released_name(n) for n in model.state_dict()})
    if missing or unexpected:
        raise ValueError(
            f"released checkpoint does not match the model it describes: missing {missing[:8]} "
            f"({len(missing)} in all), unexpected {unexpected[:8]} ({len(unexpected)} in all)"
        )
    model.load_state_dict(translated, strict=True)
    return model.to(map_location).eval()


def to_released_state_dict(model: RefineNet) -> dict[str, torch.Tensor]:
    """Our weights under the released names (4-cascaded, released layout only)."""
    cfg = model.config
    if cfg.variant != "4-cascaded" or cfg.block_layout != "released" or cfg.pool_order != "pool_conv":
        raise ValueError("only the 4-cascaded released layout with pool_conv order has released names")
    return {released_name(k): v for k, v in model.state_dict().items()}
