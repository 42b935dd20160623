"""Evaluation: metrics files, tiled / downscaled modes, test-server formats, released checkpoints, errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from refinenet import data
from refinenet.cli import main
from refinenet.config import EvalConfig, TrainConfig
from refinenet.data.cityscapes import TRAINID_TO_LABELID
from refinenet.evaluate import evaluate
from refinenet.model import build_refinenet
from refinenet.released import to_released_state_dict
from refinenet.train import train


def _trained(root, dataset, out):
    return train(TrainConfig(dataset=dataset, data_root=root, out=out, profile="smoke", backbone="resnet50",
                             crop_size=32, iterations=1, workers=0, progress=False))


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    data.write_standin("voc2012", root, train=2, val=3, size=(48, 64), seed=1)
    return root, _trained(root, "voc2012", tmp_path_factory.mktemp("voc_run"))


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    data.write_standin("cityscapes", root, train=2, val=4, size=(48, 96), seed=1)
    return root, _trained(root, "cityscapes", tmp_path_factory.mktemp("cs_run"))


def test_metrics_files(voc, tmp_path):
    root, ckpt = voc
    result = evaluate(EvalConfig(ckpt, "voc2012", root, out=tmp_path, scales=(0.75, 1.0), flip=True,
                                 workers=0, progress=False))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("miou", "miou_present", "pixel_acc", "mean_acc", "per_class_iou", "data_kind", "split", "scales",
                "short_edge", "input_scale", "crf", "checkpoint"):
        assert key in metrics, key
    assert metrics["data_kind"] == "standin" and metrics["split"] == "val" and metrics["scales"] == [0.75, 1.0]
    assert 0 <= metrics["miou"] <= 1 and 0 <= metrics["pixel_acc"] <= 1 and metrics["crf"] is None
    assert metrics["miou_present"] >= metrics["miou"] - 1e-9  # classes only predicted are left out of it
    assert metrics["short_edge"] is None and metrics["input_scale"] == 1.0  # a smoke checkpoint: no clamp
    assert result["miou"] == pytest.approx(metrics["miou"])
    rows = list(csv.DictReader(open(tmp_path / "per_class.csv")))
    assert len(rows) == 21 and rows[0]["class_name"] == "background"


def test_crf_and_saved_palette_predictions(voc, tmp_path):
    root, ckpt = voc
    result = evaluate(EvalConfig(ckpt, "voc2012", root, out=tmp_path, crf=True, save_predictions=tmp_path / "pred",
                                 workers=0, progress=False))
    assert result["crf"]["iterations"] == 5
    files = sorted((tmp_path / "pred").glob("*.png"))
    assert len(files) == 3
    with Image.open(files[0]) as im:
        assert im.mode == "P" and im.size == (64, 48) and np.asarray(im).max() < 21


def test_voc_test_server_layout(voc, tmp_path):
    root, ckpt = voc
    result = evaluate(EvalConfig(ckpt, "voc2012", root, split="test", out=tmp_path, format="voc-test-server",
                                 workers=0, progress=False))
    assert "miou" not in result and not (tmp_path / "metrics.json").exists()
    test_ids = (root / "VOCdevkit/VOC2012/ImageSets/Segmentation/test.txt").read_text().split()
    folder = tmp_path / "predictions" / "results/VOC2012/Segmentation/comp6_test_cls"
    assert sorted(p.stem for p in folder.glob("*.png")) == sorted(test_ids)
    with Image.open(folder / f"{test_ids[0]}.png") as im:
        assert im.mode == "P" and set(np.unique(np.asarray(im))) <= set(range(21))
        assert im.getpalette()[3:6] == [128, 0, 0]  # VOC colour of class 1


def test_cityscapes_test_server_format(cityscapes, tmp_path):
    root, ckpt = cityscapes
    evaluate(EvalConfig(ckpt, "cityscapes", root, split="test", save_predictions=tmp_path / "sub",
                        format="cityscapes-test-server", tile=32, workers=0, progress=False))
    images = sorted((root / "leftImg8bit" / "test").rglob("*_leftImg8bit.png"))
    files = sorted((tmp_path / "sub").glob("*.png"))
    assert [p.name for p in files] == sorted(p.name for p in images)
    with Image.open(files[0]) as im:
        assert im.mode == "L" and im.size == (96, 48)
        assert set(np.unique(np.asarray(im)).tolist()) <= set(TRAINID_TO_LABELID)


def test_released_checkpoint_is_accepted(voc, tmp_path):
    root, _ = voc
    model = build_refinenet(21, backbone="resnet50", pooling_blocks=4)
    path = tmp_path / "refinenet50_voc.pth.tar"
    torch.save(to_released_state_dict(model), path)
    # the stored size, to stay cheap: the default (the authors' pipeline) is pinned in test_protocol.py
    result = evaluate(EvalConfig(path, "voc2012", root, short_edge_clamp=False, input_scale=1.0, workers=0,
                                 progress=False))
    assert result["checkpoint_source"] == "released" and 0 <= result["miou"] <= 1
    assert result["short_edge"] is None and result["input_scale"] == 1.0


def test_cli_evaluate_and_clear_errors(voc, cityscapes, tmp_path, capsys):
    root, ckpt = voc
    assert main(["evaluate", "--checkpoint", str(ckpt), "--dataset", "voc2012", "--data-root", str(root),
                 "--out", str(tmp_path), "--workers", "0", "--no-progress", "--max-size", "40"]) == 0
    assert "mean IoU" in capsys.readouterr().out and (tmp_path / "metrics.json").is_file()
    bad = [
        (["--checkpoint", str(tmp_path / "nope.pt"), "--dataset", "voc2012", "--data-root", str(root)],
         "does not exist"),
        (["--checkpoint", str(ckpt), "--dataset", "cityscapes", "--data-root", str(cityscapes[0])], "21 classes"),
        (["--checkpoint", str(ckpt), "--dataset", "voc2012", "--data-root", str(root),
          "--format", "cityscapes-test-server"], "is for --dataset cityscapes"),
    ]
    for args, message in bad:
        assert main(["evaluate", *args, "--workers", "0"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
