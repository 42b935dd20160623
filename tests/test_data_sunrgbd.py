"""SUN-RGBD: stand-in in the toolbox layout -> prepare -> load, label mapping, real split lists."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from refinenet.data import load_dataset, nyudv2, sunrgbd
from refinenet.data.common import DatasetLayoutError

REAL_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "sunrgbd"
HEIGHT, WIDTH = 48, 64


CONVERTED = ("sunrgbd", "sunrgbd", 1)  # the `converted` fixture (conftest.py): (raw, out)


def test_sunrgbd_standin_prepares_into_loadable_37_class_pairs(converted):
    _, out = converted
    train = load_dataset("sunrgbd", out, "train")
    test = load_dataset("sunrgbd", out, "val")  # alias of test
    assert (len(train), len(test)) == (4, 3)
    assert train.num_classes == 37 and train.data_kind == "standin" and test.data_kind == "standin"
    assert sunrgbd.INFO.class_names == nyudv2.INFO.class_names[:37]
    image, label = test[0]
    assert image.shape == (3, HEIGHT, WIDTH) and label.shape == (HEIGHT, WIDTH)
    for i in range(len(train)):
        assert set(train[i][1].unique().tolist()) <= set(range(37)) | {255}


def test_sunrgbd_matches_list_entries_to_seglabels_by_rgbpath(converted):
    """SUNRGBDMeta is in shuffled order: each list line must get the seglabel of its own image."""
    raw, out = converted
    assert "//image/" in (raw / sunrgbd.SPLIT_LISTS["train"]).read_text()  # as in the real lists
    lines = sunrgbd.read_split_paths(raw / sunrgbd.SPLIT_LISTS["train"])
    rgb_paths = sunrgbd.read_rgb_paths(raw / sunrgbd.META_MAT)
    assert sorted(rgb_paths) != rgb_paths or len(rgb_paths) < 3  # the stand-in really shuffles
    ds = sunrgbd.dataset(out, "train")
    with h5py.File(raw / sunrgbd.SEG_MAT, "r") as mat:
        refs = mat["SUNRGBD2Dseg"]["seglabel"][()].ravel()
        for number, line in enumerate(lines):
            stored = np.asarray(mat[refs[rgb_paths.index(line)]]).T.astype(int)  # W x H on disk
            expected = np.where(stored == 0, 255, stored - 1)  # 0 -> ignore, 1 -> 0, ..., 37 -> 36
            _, label = ds.load(number)
            np.testing.assert_array_equal(label, expected)
            assert (label == 255).any()
        assert ds.pairs[0][0].read_bytes() == (raw / lines[0]).read_bytes()  # JPEG copied, not re-encoded


def test_sunrgbd_prepare_rerun_skips_finished_files(converted):
    raw, out = converted
    files = sorted((out / "images").iterdir()) + sorted((out / "labels").iterdir())
    before = {f: f.stat().st_mtime_ns for f in files}
    removed = out / "labels" / "test_000002.png"
    content = removed.read_bytes()
    removed.unlink()
    sunrgbd.prepare(raw, out)
    assert removed.read_bytes() == content
    assert all(f.stat().st_mtime_ns == t for f, t in before.items() if f != removed)
    assert not list(out.rglob("*.tmp"))


def test_sunrgbd_missing_toolbox_file_is_named_with_the_expected_layout(converted, tmp_path):
    raw, _ = converted
    shutil.copytree(raw, tmp_path / "raw")
    (tmp_path / "raw" / sunrgbd.SEG_MAT).unlink()
    with pytest.raises(DatasetLayoutError, match="SUNRGBD2Dseg.mat") as err:
        sunrgbd.prepare(tmp_path / "raw", tmp_path / "out")
    assert "sunrgbd_training_images.txt" in str(err.value)  # the layout is shown


def test_sunrgbd_missing_image_is_named(converted, tmp_path):
    raw, _ = converted
    shutil.copytree(raw, tmp_path / "raw")
    line = (tmp_path / "raw" / sunrgbd.SPLIT_LISTS["test"]).read_text().split()[0]
    (tmp_path / "raw" / line).unlink()
    with pytest.raises(DatasetLayoutError, match=Path(line).name):
        sunrgbd.prepare(tmp_path / "raw", tmp_path / "out")


def test_sunrgbd_rejects_an_image_whose_size_differs_from_its_label(converted, tmp_path):
    raw, _ = converted
    shutil.copytree(raw, tmp_path / "raw")
    line = (tmp_path / "raw" / sunrgbd.SPLIT_LISTS["train"]).read_text().split()[0]
    Image.new("RGB", (WIDTH + 1, HEIGHT)).save(tmp_path / "raw" / line)
    with pytest.raises(ValueError, match="width x height"):
        sunrgbd.prepare(tmp_path / "raw", tmp_path / "out")


def test_sunrgbd_relative_image_path_joins_metadata_and_lists():
    meta = "/n/fs/sun3d/data/SUNRGBD/kv2/kinect2data/000002_x-resize/image/0000103.jpg"
    assert sunrgbd.relative_image_path(meta) == "SUNRGBD/kv2/kinect2data/000002_x-resize/image/0000103.jpg"
    with pytest.raises(DatasetLayoutError):
        sunrgbd.relative_image_path("/somewhere/else/0000103.jpg")


def test_sunrgbd_split_sizes_and_path_format_match_the_real_lists():
    if not REAL_SAMPLES.is_dir():
        pytest.skip(f"real sample files not present at {REAL_SAMPLES}")
    splits = {s: sunrgbd.read_split_paths(REAL_SAMPLES / name) for s, name in sunrgbd.SPLIT_LISTS.items()}
    assert {s: len(p) for s, p in splits.items()} == sunrgbd.INFO.splits == {"train": 5285, "test": 5050}
    assert not set(splits["train"]) & set(splits["test"])
    raw_lines = (REAL_SAMPLES / sunrgbd.SPLIT_LISTS["test"]).read_text().split()
    # Many real lines hold a doubled slash ("-resize//image/"); the key collapses it.
    assert any("//" in line for line in raw_lines)
    assert splits["test"] == [line.replace("//", "/") for line in raw_lines]
    assert all("/image/" in p and p.endswith(".jpg") for p in splits["train"] + splits["test"])
    # The stand-in writes paths of the same shape.
    assert all(sunrgbd._standin_image_path(n).startswith("SUNRGBD/kv") for n in (1, 2))


def test_sunrgbd_cli_standin_then_prepare_gives_a_standin_dataset(tmp_path):
    from refinenet.cli import main

    size = ["--size", "24", "32"]
    assert main(["standin", "sunrgbd", "--out", str(tmp_path / "raw"), "--train", "2", "--val", "1", *size]) == 0
    assert main(["prepare", "sunrgbd", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]) == 0
    ds = load_dataset("sunrgbd", tmp_path / "out", "test")
    assert len(ds) == 1 and ds.data_kind == "standin" and ds[0][0].shape == (3, 24, 32)
    assert main(["prepare", "sunrgbd", "--raw", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o2")]) == 2
