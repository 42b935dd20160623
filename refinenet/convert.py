"""Convert the authors' MatConvNet models to ours, by their own graphs, and check every conversion.

* `convert_trained(src)`: `refinenet_res{101,152}_<dataset>.mat` -> a RefineNet with the options the
  file implies (MSRA ResNet, MATLAB bicubic fusion, the chained-pooling order and count it has) and a
  checkpoint dict (`CONVERTED_FORMAT`) that `refinenet.checkpoint.load_model` reads.
The ImageNet ResNets (`imagenet-resnet-<depth>-dag.mat`) are read by refinenet/backbone_weights.py through
the same graph walk and checks (refinenet/convert_graph.py).

Mapping follows the file's graph (layer types, inputs and outputs, parameter shapes), never names
or positions alone: the ResNet is walked from its input unit by unit (a unit with a shortcut conv
opens a stage), the refine group from each input path through its RCUs, fusion, chained pooling and
output RCUs. Every parameter of ours must be set and every parameter of theirs used, or nothing is
loaded. Then the converted model and `refinenet.matconvnet.run_dagnn` (the file's graph, interpreted
on its own) run on one random input; the conversion fails unless they agree.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from refinenet.atomic import torch_save_atomic, write_text_atomic
from refinenet.backbones import resnet_channels
from refinenet.convert_graph import (
    SELF_CHECK_SIZE,
    ConversionError,
    RefineFound,
    ResNetFound,
    Walk,
    check_agreement,
    check_complete,
    walk_refine,
    walk_resnet,
)
from refinenet.matconvnet import (
    MatConvNetError,
    TrainedRefineNetFile,
    filters_to_torch,
    read_trained_refinenet,
    run_dagnn,
    run_simplenn,
    vector_to_torch,
)
from refinenet.model import RefineNet, RefineNetConfig

CONVERTED_FORMAT = "refinenet-matconvnet-conversion/1"  # refinenet.checkpoint.load_model reads it
# The authors' file names (main/demo_predict_mscale_<dataset>.m) -> our dataset names.
FILE_DATASETS = {"voc2012": "voc2012", "cityscapes": "cityscapes", "nyud": "nyudv2", "person_parts": "person_part",
                 "pascalcontext": "pascal_context", "sunrgbd": "sunrgbd", "ade": "ade20k"}
# Where each dataset's class list (main/gen_class_info_<dataset>.m) puts its 'void' class: the network has
# an output for it. Converted models move it last, so that our train ids are the first outputs.
VOID_CHANNEL = {"voc2012": "last", "cityscapes": "last", "nyudv2": "last", "sunrgbd": "first", "ade20k": "first",
                "pascal_context": None, "person_part": None}
# The authors' test-time input (main/my_get_batch_ds_info.m, demo_predict_mscale_<dataset>.m): RGB in 0..255
# minus 128 on every channel, no division; MATLAB bicubic resizing; the dataset's short-edge clamp.
AUTHORS_MEAN_255, AUTHORS_STD_255 = (128.0, 128.0, 128.0), (1.0, 1.0, 1.0)
FILE_PATTERN = re.compile(r"refinenet_res(\d+)_([a-z0-9_]+)\.mat$")


# ---------------------------------------------------------------------------------------------
# The trained model


def dataset_of_file(path: Path) -> str | None:
    match = FILE_PATTERN.search(Path(path).name)
    return FILE_DATASETS.get(match[2]) if match else None


@dataclass
class Conversion:
    model: RefineNet
    checkpoint: dict
    found: dict
    recheck: object = None  # () -> the self-check of `model` against the file's graph again (for tests)


def _feature_net(file: TrainedRefineNetFile, walk: Walk) -> tuple[ResNetFound, dict[int, str]]:
    """Map the feature net; its output variables by ResNet block (each a DropOut or copy of a level)."""
    if any(name.startswith("featnet_") and name != "featnet_1" for name in file.dags):
        raise ConversionError(f"{file.path}: more than one feature net (a multi-scale RefineNet); only the "
                              f"single-ResNet nets of the released models are supported")
    found = walk_resnet(walk, prefix="backbones.0.")
    outputs = {}
    for var in walk.dag.output_vars():
        layer = walk.dag.producer(var)
        level = next((m for m, v in found.level_vars.items() if layer is not None and layer.inputs == (v,)), None)
        if level is None:
            walk.fail(f"feature-net output {var} is not a copy or dropout of a ResNet block's output")
        outputs[level] = var
    return found, outputs


def _refine_inputs(walk: Walk, width: int) -> dict[str, int]:
    """Each refine-group input -> the ResNet block whose channel count its first conv takes."""
    levels = {}
    for var in walk.dag.input_vars():
        first = walk.next(var, "dagnn.Conv")
        cin = int(np.asarray(walk.dag.param(first.params[0])).shape[2])
        match = [m for m in (1, 2, 3, 4) if resnet_channels(m, width) == cin]
        if not match:
            walk.fail(f"input {var} has {cin} channels, which no ResNet block of width {width} gives")
        levels[var] = match[0]
    if sorted(levels.values()) != [1, 2, 3, 4]:
        walk.fail(f"the refine group's inputs take ResNet blocks {sorted(levels.values())}, expected one path per "
                  f"block 1-4 (4-cascaded)")
    return levels


def _classifier(file: TrainedRefineNetFile, dataset: str) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The loss group's classifier, its outputs reordered so that a void output comes last."""
    from refinenet.data import dataset_info

    conv = [layer for layer in file.loss_layers if layer.get("type") == "conv"]
    if len(conv) != 1:
        raise ConversionError(f"{file.path}: the loss group has {len(conv)} convs, expected one classifier")
    weight, bias = filters_to_torch(conv[0]["filters"]), vector_to_torch(conv[0]["biases"])
    classes = dataset_info(dataset).num_classes
    void = VOID_CHANNEL[dataset]
    expected = classes + (1 if void else 0)
    if weight.shape[0] != expected:
        raise ConversionError(f"{file.path}: the classifier has {weight.shape[0]} outputs; {dataset} has {classes} "
                              f"classes{' and a void output' if void else ''} ({expected} expected)")
    order = list(range(1, expected)) + [0] if void == "first" else list(range(expected))
    return weight[order].contiguous(), bias[order].contiguous(), order


def _check_released_layout(file: TrainedRefineNetFile, refine: RefineFound) -> None:
    if refine.adapt_rcus != [2] * 4 or refine.output_rcus != [3] * 4:
        raise ConversionError(f"{file.path}: RCUs per input path {refine.adapt_rcus} and per block output "
                              f"{refine.output_rcus}; the released layout (gen_refine_config_basic) has 2 and 3")


def convert_trained(path: Path, dataset: str | None = None) -> Conversion:
    """Read `refinenet_res*_<dataset>.mat`, map it onto a RefineNet and self-check the result."""
    path = Path(path)
    dataset = dataset or dataset_of_file(path)
    if dataset not in VOID_CHANNEL:
        raise ConversionError(f"{path}: cannot tell the dataset from the file name (expected "
                              f"refinenet_res<depth>_<{'|'.join(FILE_DATASETS)}>.mat); give --dataset")
    file = read_trained_refinenet(path)
    feat, refine_walk = Walk(file.dags["featnet_1"]), Walk(file.dags["refinenets"])
    found, feat_outputs = _feature_net(file, feat)
    levels = _refine_inputs(refine_walk, found.width)
    refine = walk_refine(refine_walk, levels)
    _check_released_layout(file, refine)
    weight, bias, order = _classifier(file, dataset)
    config = RefineNetConfig(
        num_classes=weight.shape[0], backbone=found.depth, variant="4-cascaded", pooling_blocks=refine.pooling_blocks,
        block_layout="released", pool_order=refine.pool_order, features=refine.features,
        top_features=refine.top_features, resnet_form="msra" if found.stride_in_1x1 else "torchvision",
        resnet_width=found.width, fusion_upsample="matlab_bicubic", new_layer_init="pytorch")
    with torch.device("meta"):  # no random init of ~100M parameters that are overwritten anyway
        model = RefineNet(config)
    state = {**feat.state, **refine_walk.state, "classifier.weight": weight, "classifier.bias": bias}
    check_complete(model.state_dict(), state, [feat, refine_walk], str(path))
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()
    check = self_check(model, file, found, feat_outputs, levels, order)
    found_info = {"depth": found.depth, "width": found.width, "stride_in_1x1": found.stride_in_1x1,
                  **{k: v for k, v in asdict(refine).items() if k != "input_levels"}}
    checkpoint = {
        "format": CONVERTED_FORMAT, "model_config": asdict(config), "model": model.state_dict(), "dataset": dataset,
        "void_channel": VOID_CHANNEL[dataset] is not None, "output_order": order,
        "preprocess": {"mean_255": list(AUTHORS_MEAN_255), "std_255": list(AUTHORS_STD_255),
                       "input_scale": file.input_scales[0], "resize": "matlab_bicubic", "short_edge_clamp": True},
        "self_check": check, "found": found_info, "source": {"file": path.name, "groups": file.group_names},
    }
    return Conversion(model, checkpoint, found_info,
                      lambda: self_check(model, file, found, feat_outputs, levels, order))


def self_check(model: RefineNet, file: TrainedRefineNetFile, found: ResNetFound, feat_outputs: dict[int, str],
               levels: dict[str, int], order: list[int]) -> dict:
    """Our model and the file's own graph (featnet -> refinenets -> loss group) on one random input."""
    x = torch.randn(1, 3, *SELF_CHECK_SIZE, generator=torch.Generator().manual_seed(0))
    features = run_dagnn(file.dags["featnet_1"], {found.input_var: x})
    refined = run_dagnn(file.dags["refinenets"], {var: features[feat_outputs[m]] for var, m in levels.items()})
    theirs = run_simplenn(file.loss_layers, next(iter(refined.values())), str(file.path))[:, order]
    with torch.inference_mode():
        ours = model(x, upsample=False)
    return check_agreement(ours, theirs, str(file.path))


# ---------------------------------------------------------------------------------------------
# Files: convert once, cache by the source's SHA-256


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_file(src: Path, out: Path, dataset: str | None = None) -> dict:
    """Convert `src` and write the checkpoint to `out` atomically (nothing is written on any error);
    returns the checkpoint's description (without the weights)."""
    src = Path(src)
    sha = file_sha256(src) if src.is_file() else None
    conversion = convert_trained(src, dataset)
    checkpoint = conversion.checkpoint
    checkpoint["source"].update({"sha256": sha, "bytes": src.stat().st_size})
    torch_save_atomic(checkpoint, Path(out))
    return {k: v for k, v in checkpoint.items() if k != "model"}


def default_cache_dir() -> Path:
    return Path(os.environ.get("REFINENET_CACHE", Path.home() / ".cache" / "refinenet")) / "converted"


def cached_conversion(src: Path, cache_dir: Path | None = None, dataset: str | None = None,
                      sha256: str | None = None) -> Path:
    """The converted checkpoint of `src`, converting it the first time (keyed by the file's SHA-256; pass
    `sha256` where the caller already has it, to spare reading a file of hundreds of MB again)."""
    src = Path(src)
    if not src.is_file():
        raise ConversionError(f"{src} does not exist")
    target = Path(cache_dir or default_cache_dir()) / f"{sha256 or file_sha256(src)}.pt"
    if not target.is_file() or not target.with_suffix(".json").is_file():
        info = convert_file(src, target, dataset)
        write_text_atomic(target.with_suffix(".json"), json.dumps(info, indent=1, default=str))
    return target


def conversion_info(converted: Path) -> dict:
    """What `cached_conversion` recorded of a conversion: source file and SHA-256, what was found, self-check."""
    return json.loads(Path(converted).with_suffix(".json").read_text())


def describe(info: dict) -> str:
    check, found = info["self_check"], info["found"]
    return (f"{info['source']['file']} (sha256 {str(info['source'].get('sha256'))[:16]}...): RefineNet-"
            f"{found['depth'][6:]} for {info['dataset']}, {info['model_config']['num_classes']} outputs"
            f"{' (void last)' if info['void_channel'] else ''}, {found['pooling_blocks']} pooling blocks "
            f"({found['pool_order']}), input scale {info['preprocess']['input_scale']}; self-check: max |difference| "
            f"{check['max_abs_diff']:.3g} of max |score| {check['max_abs_reference']:.3g} (relative "
            f"{check['relative']:.2g}, limit {check['tolerance']:g})")


def cmd_convert(args) -> int:
    try:
        info = convert_file(Path(args.src), Path(args.out), args.dataset)
    except (MatConvNetError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {describe(info)}")
    return 0


CONVERT_HELP = "convert the authors' MatConvNet RefineNet (refinenet_res*_*.mat) to a checkpoint"
CONVERT_DESCRIPTION = (
    "Read refinenet_res{101,152}_<dataset>.mat (the authors' release, MATLAB v7.3), map it onto a RefineNet by "
    "its own graph, run both on one random input and write the checkpoint only if they agree. `refinenet "
    "evaluate --checkpoint` takes the result (or the .mat itself).")


def add_arguments(convert) -> None:
    convert.add_argument("src", help="refinenet_res<depth>_<dataset>.mat")
    convert.add_argument("--out", required=True, help="the checkpoint to write (.pt)")
    convert.add_argument("--dataset", choices=sorted(VOID_CHANNEL), default=None,
                         help="the dataset the model was trained on (default: from the file name)")
    convert.set_defaults(func=cmd_convert)


def main(argv: list[str]) -> int:
    """`refinenet convert ...`, parsed on its own (refinenet/cli.py hands it over before importing the rest)."""
    parser = argparse.ArgumentParser(prog="refinenet convert", description=CONVERT_DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)


def add_commands(subparsers) -> None:
    add_arguments(subparsers.add_parser("convert", help=CONVERT_HELP, description=CONVERT_DESCRIPTION))

