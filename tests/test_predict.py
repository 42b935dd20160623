"""`refinenet predict`: a label map and an overlay per image."""

from __future__ import annotations

import numpy as np
from PIL import Image

from refinenet import data
from refinenet.cli import main
from refinenet.config import TrainConfig
from refinenet.train import train


def test_predict_writes_label_maps_and_overlays(tmp_path, capsys):
    root = tmp_path / "voc"
    data.write_standin("voc2012", root, train=2, val=1, size=(40, 56), seed=2)
    ckpt = train(TrainConfig(dataset="voc2012", data_root=root, out=tmp_path / "run", profile="smoke",
                             backbone="resnet50", crop_size=40, iterations=1, workers=0, progress=False))
    images = sorted((root / "VOCdevkit/VOC2012/JPEGImages").glob("*.jpg"))[:2]
    out = tmp_path / "pred"
    assert main(["predict", *map(str, images), "--checkpoint", str(ckpt), "--out", str(out), "--flip"]) == 0
    for image in images:
        with Image.open(out / f"{image.stem}_labels.png") as labels:
            assert labels.mode == "P" and labels.size == (56, 40) and np.asarray(labels).max() < 21
        with Image.open(out / f"{image.stem}_overlay.png") as overlay:
            assert overlay.mode == "RGB" and overlay.size == (56, 40)

    assert main(["predict", str(tmp_path / "missing.jpg"), "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["predict", str(images[0]), "--checkpoint", str(tmp_path / "no.pt"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
