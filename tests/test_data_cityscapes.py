"""Cityscapes: official labelIds -> trainIds, layout, prepare, stand-in, test split without labels."""

from __future__ import annotations

import numpy as np
import pytest

from refinenet import data
from refinenet.atomic import save_png
from refinenet.cli import main
from refinenet.data import cityscapes, common

SIZE = (48, 64)


def write_raw(root, seed=0, train=3, val=2):
    cityscapes.write_standin(root, train=train, val=val, size=SIZE, seed=seed)
    return root


def write_one_label(root, split, label_ids):
    """A dataset with one image whose gtFine labelIds are `label_ids`."""
    stem = root / "gtFine" / split / "ulm" / "ulm_000000_000019"
    save_png(root / "leftImg8bit" / split / "ulm" / "ulm_000000_000019_leftImg8bit.png",
                     np.zeros((*label_ids.shape, 3), np.uint8))  # fmt: skip
    save_png(stem.with_name(stem.name + "_gtFine_labelIds.png"), label_ids)


def test_cityscapes_maps_road_labelid_7_to_trainid_0_void_0_to_255_and_car_26_to_13(tmp_path):
    write_one_label(tmp_path, "val", np.array([[7, 0, 26, 33], [1, 8, 23, 24]], np.uint8))
    _, label = data.load_dataset("cityscapes", tmp_path, "val")[0]
    assert label.tolist() == [[0, 255, 13, 18], [255, 1, 10, 11]]


def test_cityscapes_lut_sends_all_15_void_labelids_to_255():
    void_ids = [lid for _, lid, tid, _ in cityscapes.LABELS if tid == 255]
    assert len(void_ids) == 15 and (cityscapes.LABELID_TO_TRAINID[void_ids] == 255).all()
    assert (cityscapes.LABELID_TO_TRAINID[34:255] == -1).all()  # not Cityscapes values: an error


def test_cityscapes_info_has_19_classes_official_palette_and_split_sizes():
    info = data.dataset_info("cityscapes")
    assert info.num_classes == 19 and len(info.palette) == 19
    assert info.class_names[:3] == ("road", "sidewalk", "building") and info.class_names[-1] == "bicycle"
    assert info.palette[0] == (128, 64, 128) and info.palette[13] == (0, 0, 142)
    assert info.splits == {"train": 2975, "val": 500, "test": 1525}


def test_trainid_to_labelid_inverts_the_mapping_for_submissions():
    assert cityscapes.TRAINID_TO_LABELID[0] == 7 and cityscapes.TRAINID_TO_LABELID[13] == 26
    for train_id, label_id in enumerate(cityscapes.TRAINID_TO_LABELID):
        assert cityscapes.LABELID_TO_TRAINID[label_id] == train_id
    assert cityscapes.trainids_to_labelids(np.array([[0, 13, 255]])).tolist() == [[7, 26, 0]]


def test_cityscapes_standin_loads_with_classes_shapes_and_value_range(tmp_path):
    root = write_raw(tmp_path)
    train = data.load_dataset("cityscapes", root, "train")
    assert len(train) == 3 and train.data_kind == "standin" and train.num_classes == 19
    for image, label in train:
        assert image.shape == (3, *SIZE) and label.shape == SIZE
        values = set(np.unique(label.numpy()))
        assert values <= set(range(19)) | {255} and 255 in values and len(values) > 4
    cities = {image.parent.name for image, _ in train.pairs}
    assert cities == {"aachen", "bochum"}


def test_cityscapes_standin_labelids_include_void_ids(tmp_path):
    root = write_raw(tmp_path)
    stored = np.concatenate([common.read_label(p).ravel() for p in root.rglob("*_gtFine_labelIds.png")])
    assert {0, 1, 2, 7}.issubset(set(np.unique(stored)))


def test_cityscapes_standin_is_deterministic_for_a_seed(tmp_path):
    a, b, c = write_raw(tmp_path / "a"), write_raw(tmp_path / "b"), write_raw(tmp_path / "c", seed=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)


def test_cityscapes_prepare_writes_trainids_that_the_loader_prefers(tmp_path):
    raw = write_raw(tmp_path / "raw")
    cityscapes.prepare(raw, tmp_path / "out")
    written = sorted((tmp_path / "out" / "gtFine").rglob("*_gtFine_labelTrainIds.png"))
    assert len(written) == 5
    prepared = data.load_dataset("cityscapes", tmp_path / "out", "val")
    assert prepared.pairs[0][1].name.endswith("_labelTrainIds.png")
    assert prepared.data_kind == "standin"  # the marker travels with converted stand-in data
    from_raw = data.load_dataset("cityscapes", raw, "val")
    for (image_a, label_a), (image_b, label_b) in zip(prepared, from_raw):
        assert np.array_equal(image_a, image_b) and np.array_equal(label_a, label_b)


def test_cityscapes_prepare_is_rerunnable_and_skips_finished_files(tmp_path):
    raw = write_raw(tmp_path / "raw")
    cityscapes.prepare(raw, tmp_path / "out")
    target = next((tmp_path / "out" / "gtFine").rglob("*_gtFine_labelTrainIds.png"))
    stamp = target.stat().st_mtime_ns
    cityscapes.prepare(raw, tmp_path / "out")
    assert target.stat().st_mtime_ns == stamp
    assert not list((tmp_path / "out").rglob("*.tmp*"))


def test_cityscapes_prepare_in_place_writes_next_to_labelids(tmp_path):
    raw = write_raw(tmp_path)
    cityscapes.prepare(raw, raw)
    assert len(list(raw.rglob("*_gtFine_labelTrainIds.png"))) == 5
    assert data.load_dataset("cityscapes", raw, "train").pairs[0][1].name.endswith("_labelTrainIds.png")


def test_cityscapes_prepare_names_a_label_with_undefined_values(tmp_path):
    write_one_label(tmp_path, "train", np.array([[7, 77]], np.uint8))
    with pytest.raises(common.LabelValueError, match="ulm_000000_000019_gtFine_labelIds.png.*77"):
        cityscapes.prepare(tmp_path, tmp_path / "out")


def test_cityscapes_test_split_lists_images_without_labels(tmp_path):
    test = data.load_dataset("cityscapes", write_raw(tmp_path), "test")
    assert len(test) >= 1 and not test.has_labels and test.pairs[0][1] is None
    image, label = test[0]
    assert image.shape == (3, *SIZE) and (label == 255).all()


def test_cityscapes_unknown_split_lists_the_splits(tmp_path):
    with pytest.raises(ValueError, match="train, val, test"):
        data.load_dataset("cityscapes", write_raw(tmp_path), "trainval")


def test_cityscapes_image_without_label_names_the_missing_file(tmp_path):
    root = write_raw(tmp_path)
    label = next((root / "gtFine" / "train").rglob("*_labelIds.png"))
    label.unlink()
    with pytest.raises(common.DatasetLayoutError, match=label.name):
        data.load_dataset("cityscapes", root, "train")


def test_cli_standin_then_prepare_cityscapes(tmp_path, capsys):
    size = ["--size", "48", "64"]
    assert main(["standin", "cityscapes", "--out", str(tmp_path / "raw"), "--train", "2", "--val", "2", *size]) == 0
    assert "refinenet prepare cityscapes" in capsys.readouterr().out
    assert main(["prepare", "cityscapes", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]) == 0
    assert len(data.load_dataset("cityscapes", tmp_path / "out", "train")) == 2
