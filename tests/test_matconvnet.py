"""The authors' MatConvNet models: files in the real containers (tests/matconvnet_files.py writes them at a
reduced width), converted by their own graphs and checked against an interpretation of that graph."""

from __future__ import annotations

import json
from pathlib import Path

import matconvnet_files as mf
import numpy as np
import pytest
import torch

from refinenet import build_refinenet
from refinenet.backbone_weights import imagenet_backbone_state
from refinenet.checkpoint import load_model
from refinenet.cli import main as refinenet_main
from refinenet.convert import ConversionError, cached_conversion, convert_trained
from refinenet.matconvnet import MatConvNetError, read_trained_refinenet
from refinenet.recipe import AUTHORS_MEAN, AUTHORS_STD, recipe_for

SMALL = dict(width=4, features=8, top_features=16)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("matconvnet")
    # VOC: the original pooling (pool then conv), 21 classes + void last; SUN-RGBD: improved pooling, void first
    mf.write_refinenet_mat(folder / "refinenet_res50_voc2012.mat", depth=50, num_classes=22, pool_order="pool_conv",
                           **SMALL)
    mf.write_refinenet_mat(folder / "refinenet_res50_sunrgbd.mat", depth=50, num_classes=38, pool_order="conv_pool",
                           pooling_blocks=2, seed=1, **SMALL)
    return folder


@pytest.fixture(scope="module")
def voc(files):
    return convert_trained(files / "refinenet_res50_voc2012.mat")


def test_converted_model_equals_the_files_own_graph(voc):
    check = voc.checkpoint["self_check"]
    assert check["relative"] < 1e-4 and check["max_abs_reference"] > 1.0  # a real signal, reproduced
    config = voc.model.config
    assert (config.resnet_form, config.fusion_upsample, config.pool_order) == ("msra", "matlab_bicubic", "pool_conv")
    assert (config.backbone, config.resnet_width, config.features, config.top_features) == ("resnet50", 4, 8, 16)
    assert config.pooling_blocks == 4 and config.num_classes == 22 and voc.checkpoint["void_channel"]
    assert voc.checkpoint["preprocess"] == {"mean_255": [128.0] * 3, "std_255": [1.0] * 3, "input_scale": 1.2,
                                            "resize": "matlab_bicubic", "short_edge_clamp": True}


def test_stride_placement_matters_a_torchvision_stride_fails_the_self_check(voc):
    for stage in (voc.model.backbones[0].layer2, voc.model.backbones[0].layer3, voc.model.backbones[0].layer4):
        stage[0].conv1.stride, stage[0].conv2.stride = (1, 1), (2, 2)  # torchvision's place for the stride
    with pytest.raises(ConversionError, match="self-check failed"):
        voc.recheck()


def test_improved_pooling_is_read_as_conv_then_pool_and_void_moves_last(files):
    sun = convert_trained(files / "refinenet_res50_sunrgbd.mat")
    assert sun.model.config.pool_order == "conv_pool" and sun.model.config.pooling_blocks == 2
    assert sun.checkpoint["output_order"] == list(range(1, 38)) + [0]  # gen_class_info_sunrgbd.m: void is first
    loss = read_trained_refinenet(files / "refinenet_res50_sunrgbd.mat").loss_layers
    filters = next(layer for layer in loss if layer.get("type") == "conv")["filters"]
    void = torch.from_numpy(np.ascontiguousarray(np.asarray(filters, np.float32)[..., 0].transpose(2, 0, 1)))
    assert torch.equal(sun.model.classifier.weight[-1], void)
    assert sun.checkpoint["self_check"]["relative"] < 1e-4


def test_convert_command_writes_a_checkpoint_that_evaluation_reads(files, tmp_path, capsys):
    out = tmp_path / "voc.pt"
    assert refinenet_main(["convert", str(files / "refinenet_res50_voc2012.mat"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "self-check: max |difference|" in printed and "voc2012" in printed and "void last" in printed
    model, meta = load_model(out)
    assert meta["source"] == "matconvnet" and meta["void_channel"] and meta["resize"] == "matlab_bicubic"
    assert meta["mean"] == pytest.approx(AUTHORS_MEAN) and meta["std"] == pytest.approx(AUTHORS_STD)
    assert meta["self_check"]["relative"] < 1e-4 and model.config.num_classes == 22


def test_a_mat_given_as_checkpoint_is_converted_once_and_cached_by_its_sha256(files, tmp_path):
    first = cached_conversion(files / "refinenet_res50_voc2012.mat", tmp_path)
    stamp = first.stat().st_mtime_ns
    again = cached_conversion(files / "refinenet_res50_voc2012.mat", tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp and len(first.stem) == 64
    assert json.loads(first.with_suffix(".json").read_text())["source"]["sha256"] == first.stem


@pytest.mark.parametrize("make, expected", [
    (lambda folder: mf.write_not_a_network(folder / "refinenet_res101_voc2012.mat"), "no variable net_config"),
    (lambda folder: mf.write_truncated_copy(folder.parent / "whole.mat", folder / "refinenet_res101_voc2012.mat"),
     "not a readable MATLAB .mat file"),
    (lambda folder: (folder / "refinenet_res101_voc2012.mat").write_text("no network\n"),
     "not a readable MATLAB .mat file"),
    (lambda folder: mf.write_refinenet_mat(folder / "refinenet_res101_voc2012.mat", depth=50, drop_group="refinenets",
                                           **SMALL), "group refinenets missing"),
], ids=["no-network", "truncated", "text", "missing-group"])
def test_a_bad_file_exits_2_with_one_line_and_writes_nothing(files, tmp_path, capsys, make, expected):
    (tmp_path / "whole.mat").write_bytes((files / "refinenet_res50_voc2012.mat").read_bytes())
    folder = tmp_path / "in"
    folder.mkdir()
    make(folder)
    out = tmp_path / "out.pt"
    assert refinenet_main(["convert", str(folder / "refinenet_res101_voc2012.mat"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
    assert "refinenet_res101_voc2012.mat" in err[0] and not out.exists() and not list(tmp_path.glob("out*"))


def test_a_parameter_left_unset_or_unused_names_both_and_loads_nothing(files, monkeypatch):
    from refinenet import convert_graph

    take = convert_graph.Walk.take

    def skip_one(self, ours, theirs, value):
        if ours != "blocks.1.pool.convs.0.weight":
            take(self, ours, theirs, value)

    monkeypatch.setattr(convert_graph.Walk, "take", skip_one)
    with pytest.raises(ConversionError) as err:
        convert_trained(files / "refinenet_res50_voc2012.mat")
    assert "ours left unset: blocks.1.pool.convs.0.weight" in str(err.value)
    assert "theirs unused: refinenets/mflow_conv_g2_pool1_outvar_dimred_filter" in str(err.value)


def test_a_file_for_another_class_count_is_refused(files):
    with pytest.raises(ConversionError, match="the classifier has 22 outputs; nyudv2 has 40 classes"):
        convert_trained(files / "refinenet_res50_voc2012.mat", dataset="nyudv2")


def test_the_authors_imagenet_resnet_initialises_an_msra_backbone(tmp_path):
    path = tmp_path / "imagenet-resnet-50-dag.mat"
    mf.write_imagenet_resnet(path, depth=50, width=4)
    model = build_refinenet(21, backbone="resnet50", backbone_weights=str(path), resnet_width=4, features=8,
                            top_features=16)
    assert model.config.resnet_form == "msra" and model.backbones[0].layer3[0].conv1.stride == (2, 2)
    assert model.backbones[0].conv1.bias is not None and model.backbones[0].bn1.eps == 0.0
    state = imagenet_backbone_state(path, "resnet50")  # self-checked against the file's own graph
    assert torch.equal(model.backbones[0].layer4[2].conv3.weight, state["layer4.2.conv3.weight"])
    assert recipe_for("paper", str(path)).mean == AUTHORS_MEAN  # RGB - 128, the authors' normalisation
    with pytest.raises(MatConvNetError, match="holds a resnet50, the model needs a resnet101"):
        imagenet_backbone_state(path, "resnet101")


def test_evaluating_the_authors_voc_model_uses_their_input_and_counts_void_as_a_miss(files, tmp_path):
    from refinenet import data
    from refinenet.config import EvalConfig
    from refinenet.evaluate import evaluate

    data.write_standin("voc2012", tmp_path / "voc", train=1, val=2, size=(48, 64), seed=1)
    result = evaluate(EvalConfig(checkpoint=files / "refinenet_res50_voc2012.mat", dataset="voc2012",
                                 data_root=tmp_path / "voc", split="val", out=tmp_path / "eval", progress=False))
    assert result["checkpoint_source"] == "matconvnet" and result["void_channel"] and result["input_scale"] == 1.2
    assert result["resize"] == "matlab_bicubic" and result["short_edge"] == [450, 800]
    assert len(result["per_class_iou"]) == 21 and 0.0 <= result["miou"] <= 1.0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["void_channel"] is True
