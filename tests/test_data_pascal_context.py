"""PASCAL-Context 60 classes: 459 -> 60 mapping, converter, mmsegmentation's order, stand-in."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from refinenet import data
from refinenet.data import pascal_context as pc
from refinenet.data.common import DatasetLayoutError, LabelValueError

SIZE = (48, 64)
AEROPLANE, TABLE, ACCORDION, UNKNOWN = 2, 397, 1, 431  # ids in the release's labels.txt


CONVERTED = ("pascal_context", "pascal_context", 0)  # the `standin` and `prepared` fixtures (conftest.py)


def read_ids(path: Path) -> list[str]:
    return path.read_text().split()


def test_info_has_60_classes_in_59_labels_order_and_paper_splits():
    info = data.dataset_info("pascal_context")
    assert info.num_classes == 60 and len(set(info.class_names)) == 60
    assert info.class_names[:3] == ("background", "aeroplane", "bicycle")
    assert info.class_names[11] == "table" and info.class_names[21] == "bag" and info.class_names[59] == "wood"
    assert info.splits == {"train": 4998, "val": 5105}
    assert len(info.palette) == 60


def test_raw_ids_map_to_60_classes_and_the_rest_to_background():
    lut = pc.raw_to_train_lut()
    assert lut[AEROPLANE] == 1 and lut[TABLE] == 11
    assert lut[ACCORDION] == 0 and lut[UNKNOWN] == 0 and lut[0] == 0
    assert sorted(lut[i] for _, i in pc.CONTEXT_59) == list(range(1, 60))
    assert np.count_nonzero(lut) == 59


def test_mmseg_alphabetical_order_is_remapped_to_ours():
    lut = pc.mmseg_to_train_lut()
    names = pc.MMSEG_CLASS_NAMES
    assert names[:5] == ("background", "aeroplane", "bag", "bed", "bedclothes")
    assert list(names[1:]) == sorted(names[1:])  # sorted by raw id is alphabetical
    for stored, name in enumerate(names):
        assert pc.CLASS_NAMES[lut[stored]] == name
    assert lut[255] == 255 and lut[60] == -1


def test_standin_prepare_load_matches_the_mat_files(standin, prepared):
    lut = pc.raw_to_train_lut()
    for split, size in (("train", 4), ("val", 3)):
        ds = data.load_dataset("pascal_context", prepared, split)
        assert len(ds) == size and ds.data_kind == "standin" and ds.num_classes == 60
        for index, (image_path, _) in enumerate(ds.pairs):
            image, label = ds[index]
            assert tuple(image.shape) == (3, *SIZE)
            raw = scipy.io.loadmat(standin / "trainval" / f"{image_path.stem}.mat")["LabelMap"]
            assert np.array_equal(label.numpy(), lut[raw])
            assert label.max() < 60 and label.min() >= 0


def test_standin_holds_ids_outside_the_59_that_become_background(standin, prepared):
    kept = {i for _, i in pc.CONTEXT_59}
    raw = scipy.io.loadmat(next((standin / "trainval").glob("*.mat")))["LabelMap"]
    outside = (raw != 0) & ~np.isin(raw, list(kept))
    assert outside.any() and (raw == 0).any()
    ds = data.load_dataset("pascal_context", prepared, "train")
    stem = next((standin / "trainval").glob("*.mat")).stem
    index = [p.stem for p, _ in ds.pairs].index(stem)
    assert (ds[index][1].numpy()[outside] == 0).all()


def test_prepare_reads_a_handmade_release(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    voc = raw / "VOCdevkit/VOC2010"
    label_map = np.array([[0, AEROPLANE, TABLE], [ACCORDION, UNKNOWN, 458]], dtype=np.uint16)
    (raw / "trainval").mkdir(parents=True)
    scipy.io.savemat(raw / "trainval/2008_000002.mat", {"LabelMap": label_map})
    (voc / "JPEGImages").mkdir(parents=True)
    Image.new("RGB", (3, 2)).save(voc / "JPEGImages/2008_000002.jpg")
    (voc / "ImageSets/SegmentationContext").mkdir(parents=True)
    for split in ("train", "val"):
        (voc / f"ImageSets/SegmentationContext/{split}.txt").write_text("2008_000002\n")
    names = {i: name for name, i in pc.CONTEXT_59}
    (raw / "labels.txt").write_text("".join(f"{i}: {names.get(i, f'x{i}')}\n" for i in range(1, 460)))
    pc.prepare(raw, out)
    label = data.load_dataset("pascal_context", out, "val")[0][1].numpy()
    assert label.tolist() == [[0, 1, 11], [0, 0, 59]]
    assert data.load_dataset("pascal_context", out, "val").data_kind == "real"


def test_mmseg_layout_loads_with_remapped_classes(tmp_path):
    voc = tmp_path / "VOCdevkit/VOC2010"
    for folder in ("JPEGImages", "SegmentationClassContext", "ImageSets/SegmentationContext"):
        (voc / folder).mkdir(parents=True)
    stored = np.array([[0, 1, 2], [50, 59, 4]], dtype=np.uint8)  # bg, aeroplane, bag, table, wood, bedclothes
    Image.fromarray(stored, mode="L").save(voc / "SegmentationClassContext/2008_000003.png")
    Image.new("RGB", (3, 2)).save(voc / "JPEGImages/2008_000003.jpg")
    (voc / "ImageSets/SegmentationContext/val.txt").write_text("2008_000003\n")
    label = data.load_dataset("pascal_context", tmp_path, "val")[0][1].numpy()
    names = [[pc.CLASS_NAMES[v] for v in row] for row in label]
    assert names == [["background", "aeroplane", "bag"], ["table", "wood", "bedclothes"]]


def test_rerunning_prepare_skips_finished_files(standin, prepared):
    files = list(prepared.rglob("*.png")) + list(prepared.rglob("*.jpg"))
    before = {p: p.stat().st_mtime_ns for p in files}
    pc.prepare(standin, prepared)
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert not list(prepared.rglob("*.tmp"))


def test_labels_txt_with_other_numbering_is_refused(standin, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(standin, raw)
    lines = (raw / "labels.txt").read_text().splitlines()
    lines[1] = "2: accordion"  # aeroplane's id now names something else
    (raw / "labels.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="labels.txt"):
        pc.prepare(raw, tmp_path / "out")


def test_59_labels_in_another_order_is_refused(standin, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(standin, raw)
    lines = (raw / "59_labels.txt").read_text().splitlines()
    lines[0], lines[1] = "1: bicycle", "2: aeroplane"
    (raw / "59_labels.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="59_labels.txt"):
        pc.prepare(raw, tmp_path / "out")


def test_raw_id_beyond_labels_txt_is_an_error(tmp_path):
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, {"LabelMap": np.array([[1, 460]], dtype=np.uint16)})
    with pytest.raises(LabelValueError, match="460"):
        pc.read_label_map(path)


def test_unconverted_release_raises_naming_prepare(standin):
    with pytest.raises(DatasetLayoutError, match="refinenet prepare pascal_context"):
        data.load_dataset("pascal_context", standin, "train")


def test_missing_root_names_the_path(tmp_path):
    with pytest.raises(DatasetLayoutError, match=str(tmp_path / "nowhere")):
        data.load_dataset("pascal_context", tmp_path / "nowhere", "train")


def test_missing_mat_file_is_named_by_prepare(standin, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(standin, raw)
    first = read_ids(raw / "VOCdevkit/VOC2010/ImageSets/Main/train.txt")[0]
    (raw / "trainval" / f"{first}.mat").unlink()
    with pytest.raises(DatasetLayoutError, match=f"{first}.mat"):
        pc.prepare(raw, tmp_path / "out")


def test_unknown_split_is_refused(prepared):
    with pytest.raises(ValueError, match="val"):
        data.load_dataset("pascal_context", prepared, "test")
