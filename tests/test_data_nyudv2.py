"""NYUDv2: stand-in in the raw release layout -> prepare -> load, label mapping, real meta files."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.io import loadmat, savemat
from scipy.io.matlab import matfile_version

from refinenet.data import load_dataset, nyudv2
from refinenet.data.common import DatasetLayoutError

REAL_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "nyudv2"
HEIGHT, WIDTH = 48, 64


CONVERTED = ("nyudv2", "nyudv2", 0)  # the `converted` fixture (conftest.py): (raw, out)


def _index_of(path: Path) -> int:
    return int(path.stem)


def test_nyudv2_standin_prepares_into_loadable_40_class_pairs(converted):
    _, out = converted
    train = load_dataset("nyudv2", out, "train")
    test = load_dataset("nyudv2", out, "test")
    assert (len(train), len(test)) == (4, 3)
    assert train.num_classes == 40 and train.data_kind == "standin" and test.data_kind == "standin"
    image, label = train[0]
    assert image.shape == (3, HEIGHT, WIDTH) and str(image.dtype) == "torch.uint8"
    assert label.shape == (HEIGHT, WIDTH) and str(label.dtype) == "torch.int64"
    for i in range(len(train)):
        values = set(train[i][1].unique().tolist())
        assert values <= set(range(40)) | {255}


def test_nyudv2_maps_unlabelled_to_ignore_and_894_ids_through_mapClass(converted):
    raw, out = converted
    map_class = loadmat(raw / nyudv2.CLASS_MAPPING_MAT)["mapClass"].ravel().astype(int)
    ds = nyudv2.dataset(out, "train")
    with h5py.File(raw / nyudv2.RAW_MAT, "r") as mat:
        for i, (_, label_path) in enumerate(ds.pairs):
            raw_ids = mat["labels"][_index_of(label_path) - 1].T.astype(int)
            expected = np.where(raw_ids == 0, 255, map_class[np.maximum(raw_ids, 1) - 1] - 1)
            _, label = ds.load(i)
            np.testing.assert_array_equal(label, expected)
            assert (label == 255).any() and (raw_ids > 40).any()  # unlabelled patch; ids beyond 1..40


def test_nyudv2_transposes_hdf5_images_not_reshapes(converted, tmp_path):
    """Build the .mat by hand the way MATLAB lays it out: element [n, c, x, y] is pixel (y, x), channel c."""
    raw, _ = converted
    own_raw = tmp_path / "raw"
    shutil.copytree(raw, own_raw)
    height, width = 5, 7  # not square: a reshape would give a different picture, or fail
    n, c, x, y = np.meshgrid(np.arange(7), np.arange(3), np.arange(width), np.arange(height), indexing="ij")
    images = (n * 30 + c * 7 + x * 3 + y * 11).astype(np.uint8)  # N x 3 x W x H
    labels = np.zeros((7, width, height), dtype=np.uint16)  # N x W x H
    labels[:, 2, 1] = 5  # pixel (row 1, column 2) has 894-id 5
    (own_raw / nyudv2.RAW_MAT).unlink()
    with h5py.File(own_raw / nyudv2.RAW_MAT, "w") as mat:
        mat["images"], mat["labels"] = images, labels
    nyudv2.prepare(own_raw, tmp_path / "out")
    ds = nyudv2.dataset(tmp_path / "out", "test")
    map_class = loadmat(own_raw / nyudv2.CLASS_MAPPING_MAT)["mapClass"].ravel()
    image, label = ds.load(0)
    index = _index_of(ds.pairs[0][0]) - 1
    assert image.shape == (height, width, 3)
    for row in range(height):
        for col in range(width):
            for channel in range(3):
                assert image[row, col, channel] == index * 30 + channel * 7 + col * 3 + row * 11
    assert label[1, 2] == map_class[5 - 1] - 1
    assert (label[label != label[1, 2]] == 255).all()


def test_nyudv2_prepare_rerun_skips_finished_files(converted):
    raw, out = converted
    files = sorted((out / "images").iterdir()) + sorted((out / "labels").iterdir())
    before = {f: f.stat().st_mtime_ns for f in files}
    removed = out / "labels" / files[-1].name
    content = removed.read_bytes()
    removed.unlink()
    nyudv2.prepare(raw, out)
    assert removed.read_bytes() == content  # redone identically
    assert all(f.stat().st_mtime_ns == t for f, t in before.items() if f != removed)
    assert not list(out.rglob("*.tmp"))


def test_nyudv2_val_is_an_alias_of_test(converted):
    _, out = converted
    assert nyudv2.dataset(out, "val").pairs == nyudv2.dataset(out, "test").pairs
    with pytest.raises(ValueError, match="valid splits"):
        nyudv2.dataset(out, "trainval")


def test_nyudv2_standin_mat_is_matlab_v73_hdf5(converted):
    raw, _ = converted
    assert matfile_version(raw / nyudv2.RAW_MAT) == (2, 0)
    with h5py.File(raw / nyudv2.RAW_MAT, "r") as mat:
        assert mat["images"].shape == (7, 3, WIDTH, HEIGHT) and mat["images"].dtype == np.uint8
        assert mat["labels"].shape == (7, WIDTH, HEIGHT) and mat["labels"].dtype == np.uint16
    splits = loadmat(raw / nyudv2.SPLITS_MAT)
    ids = np.concatenate([splits["trainNdxs"].ravel(), splits["testNdxs"].ravel()])
    assert sorted(ids) == list(range(1, 8))  # 1-based, disjoint


def test_nyudv2_missing_raw_file_is_named_with_the_expected_layout(converted, tmp_path):
    raw, _ = converted
    shutil.copytree(raw, tmp_path / "raw")
    (tmp_path / "raw" / nyudv2.SPLITS_MAT).unlink()
    with pytest.raises(DatasetLayoutError, match="splits.mat") as err:
        nyudv2.prepare(tmp_path / "raw", tmp_path / "out")
    assert "trainNdxs" in str(err.value) and "nyu_depth_v2_labeled.mat" in str(err.value)


def test_nyudv2_missing_prepared_file_is_named(converted, tmp_path):
    _, out = converted
    shutil.copytree(out, tmp_path / "out")
    (tmp_path / "out" / "test.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="test.txt"):
        load_dataset("nyudv2", tmp_path / "out", "test")
    first_train_id = (tmp_path / "out" / "train.txt").read_text().split()[0]
    label = tmp_path / "out" / "labels" / f"{first_train_id}.png"
    label.unlink()
    with pytest.raises(DatasetLayoutError, match=f"labels/{first_train_id}.png"):
        nyudv2.dataset(tmp_path / "out", "train")


def test_nyudv2_rejects_a_mapping_that_is_not_the_40_classes(converted, tmp_path):
    raw, _ = converted
    shutil.copytree(raw, tmp_path / "raw")
    mapping = loadmat(tmp_path / "raw" / nyudv2.CLASS_MAPPING_MAT)
    savemat(tmp_path / "raw" / nyudv2.CLASS_MAPPING_MAT, {"mapClass": mapping["mapClass"][:, :13],
                                                          "className": mapping["className"]})  # fmt: skip
    with pytest.raises(ValueError, match="mapClass"):
        nyudv2.prepare(tmp_path / "raw", tmp_path / "out")


def test_nyudv2_class_names_and_split_sizes_match_the_real_meta_files():
    if not REAL_SAMPLES.is_dir():
        pytest.skip(f"real sample files not present at {REAL_SAMPLES}")
    table, names = nyudv2.read_class_mapping(REAL_SAMPLES / "classMapping40.mat")
    assert len(table) == 895 and table[0] == 0 and set(table[1:]) == set(range(1, 41))
    assert tuple(names) == nyudv2.CLASS_NAMES == nyudv2.INFO.class_names
    splits = nyudv2.read_splits(REAL_SAMPLES / "splits.mat")
    assert {k: len(v) for k, v in splits.items()} == nyudv2.INFO.splits == {"train": 795, "test": 654}
    assert sorted(splits["train"] + splits["test"]) == list(range(1, 1450))


def test_nyudv2_cli_standin_then_prepare_gives_a_standin_dataset(tmp_path):
    from refinenet.cli import main

    size = ["--size", "24", "32"]
    assert main(["standin", "nyudv2", "--out", str(tmp_path / "raw"), "--train", "2", "--val", "1", *size]) == 0
    assert main(["prepare", "nyudv2", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]) == 0
    ds = load_dataset("nyudv2", tmp_path / "out", "test")
    assert len(ds) == 1 and ds.data_kind == "standin" and ds[0][0].shape == (3, 24, 32)
    assert main(["prepare", "nyudv2", "--raw", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o2")]) == 2
