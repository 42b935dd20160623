"""ADE20K (SceneParsing150): 0 -> ignore, 1..150 -> 0..149, both root forms, split aliases, real samples."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from refinenet import data
from refinenet.atomic import save_jpeg, save_png
from refinenet.cli import main
from refinenet.data import ade20k, common

SIZE = (48, 64)
REAL_SAMPLES = Path(__file__).parents[2] / "shared" / "real-samples" / "ade20k"


def write_raw(root, seed=0):
    ade20k.write_standin(root, train=3, val=2, size=SIZE, seed=seed)
    return root


def test_ade20k_maps_other_0_to_255_and_class_1_to_0(tmp_path):
    base = tmp_path / "ADEChallengeData2016"
    save_jpeg(base / "images" / "validation" / "ADE_val_00000001.jpg", np.zeros((2, 3, 3), np.uint8))
    save_png(base / "annotations" / "validation" / "ADE_val_00000001.png",
                     np.array([[0, 1, 2], [150, 13, 0]], np.uint8))  # fmt: skip
    _, label = data.load_dataset("ade20k", tmp_path, "validation")[0]
    assert label.tolist() == [[255, 0, 1], [149, 12, 255]]


def test_ade20k_values_above_150_are_an_error_not_ignore():
    assert ade20k.ANNOTATION_TO_TRAINID[150] == 149
    assert (ade20k.ANNOTATION_TO_TRAINID[151:] == -1).all()


def test_ade20k_info_has_150_classes_in_objectinfo150_order_and_split_sizes():
    info = data.dataset_info("ade20k")
    assert info.num_classes == 150 and len(info.palette) == 150
    assert info.class_names[:5] == ("wall", "building", "sky", "floor", "tree")
    assert info.class_names[12] == "person" and info.class_names[-1] == "flag"
    assert len(set(info.class_names)) == 150
    assert info.splits == {"training": 20210, "validation": 2000}


def test_ade20k_standin_loads_with_classes_shapes_and_value_range(tmp_path):
    root = write_raw(tmp_path)
    train = data.load_dataset("ade20k", root, "training")
    assert len(train) == 3 and train.data_kind == "standin"
    for image, label in train:
        assert image.shape == (3, *SIZE) and label.shape == SIZE
        values = set(np.unique(label.numpy()))
        assert values <= set(range(150)) | {255} and 255 in values and len(values) > 3


def test_ade20k_standin_writes_jpeg_images_and_l_mode_annotations_with_zeros(tmp_path):
    from PIL import Image

    base = write_raw(tmp_path) / "ADEChallengeData2016"
    assert sorted(p.name for p in (base / "images" / "training").iterdir())[0] == "ADE_train_00000001.jpg"
    annotation = base / "annotations" / "validation" / "ADE_val_00000001.png"
    with Image.open(annotation) as im:
        assert im.mode == "L" and (np.asarray(im) == 0).any()


def test_ade20k_accepts_root_at_the_challenge_folder_and_split_aliases(tmp_path):
    root = write_raw(tmp_path)
    outer = data.load_dataset("ade20k", root, "val")
    inner = data.load_dataset("ade20k", root / "ADEChallengeData2016", "validation")
    assert outer.pairs == inner.pairs and len(outer) == 2
    assert inner.data_kind == "standin"
    assert len(data.load_dataset("ade20k", root, "train")) == 3


def test_ade20k_unknown_split_lists_the_splits(tmp_path):
    with pytest.raises(ValueError, match="training, validation, train, val"):
        data.load_dataset("ade20k", write_raw(tmp_path), "test")


def test_ade20k_image_without_annotation_names_the_missing_file(tmp_path):
    root = write_raw(tmp_path)
    (root / "ADEChallengeData2016" / "annotations" / "training" / "ADE_train_00000002.png").unlink()
    with pytest.raises(common.DatasetLayoutError, match="ADE_train_00000002.png"):
        data.load_dataset("ade20k", root, "training")


def test_ade20k_folder_without_challenge_data_shows_the_layout(tmp_path):
    with pytest.raises(common.DatasetLayoutError, match="ADEChallengeData2016") as err:
        data.load_dataset("ade20k", tmp_path, "validation")
    assert ade20k.INFO.layout in str(err.value)


def test_ade20k_standin_is_deterministic_for_a_seed(tmp_path):
    a, b, c = write_raw(tmp_path / "a"), write_raw(tmp_path / "b"), write_raw(tmp_path / "c", seed=3)
    files = sorted(p.relative_to(a) for p in a.rglob("*.*") if p.suffix in (".jpg", ".png"))
    assert len(files) == 10
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)


def test_ade20k_real_validation_samples_load(tmp_path):
    if not (REAL_SAMPLES / "images").is_dir():
        pytest.skip(f"real ADE20K samples not found at {REAL_SAMPLES}")
    base = tmp_path / "ADEChallengeData2016"
    for kind in ("images", "annotations"):
        shutil.copytree(REAL_SAMPLES / kind, base / kind / "validation")
    val = data.load_dataset("ade20k", tmp_path, "val")
    assert len(val) == 3 and val.data_kind == "real"
    assert [image.name for image, _ in val.pairs] == [f"ADE_val_0000000{i}.jpg" for i in (1, 2, 3)]
    for (_, label_path), (image, label) in zip(val.pairs, val):
        stored = common.read_label(label_path)
        assert image.shape[1:] == label.shape == stored.shape
        assert np.array_equal(label.numpy() == 255, stored == 0)
        assert np.array_equal(label.numpy()[stored > 0], stored[stored > 0].astype(np.int64) - 1)
    assert val[0][0].shape == (3, 512, 683)


def test_cli_standin_ade20k(tmp_path, capsys):
    out = tmp_path / "ade"
    assert main(["standin", "ade20k", "--out", str(out), "--train", "2", "--val", "1", "--size", "48", "64"]) == 0
    assert "stand-in" in capsys.readouterr().out
    assert len(data.load_dataset("ade20k", out, "val")) == 1
