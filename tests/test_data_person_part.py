"""PASCAL-Person-Part: stand-in PASCAL-Part annotations -> prepare -> load, part folding, real id lists."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from refinenet.data import load_dataset, person_part
from refinenet.data.common import DatasetLayoutError, LabelValueError

REAL_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "person_part"
HEIGHT, WIDTH = 48, 64


CONVERTED = ("person_part", "person_part", 2)  # the `converted` fixture (conftest.py): (raw, out)


def _annotation(path: Path, objects: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray]]]]) -> None:
    """Write an `anno` struct shaped like PASCAL-Part's: objects(k).class/.mask/.parts(j).part_name/.mask."""
    rows = []
    for cls, mask, parts in objects:
        part_array = np.empty((1, len(parts)), dtype=[("part_name", object), ("mask", object)])
        for j, part in enumerate(parts):
            part_array[0, j] = part
        rows.append((cls, np.uint8(1), mask, part_array if parts else np.zeros((0, 0))))
    object_array = np.empty((1, len(rows)), dtype=[(f, object) for f in ("class", "class_ind", "mask", "parts")])
    for k, row in enumerate(rows):
        object_array[0, k] = row
    anno = np.empty((1, 1), dtype=[("imname", object), ("objects", object)])
    anno[0, 0] = (path.stem, object_array)
    savemat(path, {"anno": anno})


def test_person_part_standin_prepares_into_the_released_layout(converted):
    _, out = converted
    for name in ("JPEGImages", "SegmentationPart", "train_id.txt", "val_id.txt"):
        assert (out / name).exists()
    train = load_dataset("person_part", out, "train")
    test = load_dataset("person_part", out, "test")
    assert (len(train), len(test)) == (4, 3)
    assert train.num_classes == 7 and train.data_kind == "standin" and test.data_kind == "standin"
    image, label = test[0]
    assert image.shape == (3, HEIGHT, WIDTH) and label.shape == (HEIGHT, WIDTH)
    seen = set()
    for ds in (train, test):
        for i in range(len(ds)):
            seen |= set(ds[i][1].unique().tolist())
    assert seen == set(range(7))  # every part present somewhere, background included, nothing else


def test_person_part_val_is_an_alias_of_the_released_val_list(converted):
    _, out = converted
    assert person_part.dataset(out, "val").pairs == person_part.dataset(out, "test").pairs
    ids = (out / "val_id.txt").read_text().split()
    assert [p[0].stem for p in person_part.dataset(out, "test").pairs] == ids


def test_person_part_folds_fine_parts_and_ignores_other_classes(tmp_path):
    def box(y0, y1, x0, x1):
        mask = np.zeros((6, 8), dtype=np.uint8)
        mask[y0:y1, x0:x1] = 1
        return mask

    parts = [("hair", box(0, 1, 0, 2)), ("lebrow", box(1, 2, 0, 2)), ("neck", box(2, 3, 0, 2)),
             ("ruarm", box(3, 4, 0, 2)), ("rhand", box(4, 5, 0, 2)), ("luleg", box(5, 6, 0, 2)),
             ("lfoot", box(5, 6, 2, 3))]  # fmt: skip
    _annotation(tmp_path / "a.mat", [
        ("dog", box(0, 6, 5, 8), [("head", box(0, 2, 5, 8))]),  # not a person: stays background
        ("person", box(0, 6, 0, 4), parts),  # person pixels outside parts (column 3) stay background
        ("chair", box(3, 6, 4, 5), []),  # no parts at all
    ])  # fmt: skip
    label = person_part.part_label(tmp_path / "a.mat")
    expected = np.zeros((6, 8), dtype=np.uint8)
    expected[:, 0:2] = np.array([1, 1, 2, 3, 4, 5])[:, None]
    expected[5, 2] = 6
    np.testing.assert_array_equal(label, expected)


def test_person_part_unknown_part_name_is_an_error(tmp_path):
    mask = np.ones((4, 4), dtype=np.uint8)
    _annotation(tmp_path / "b.mat", [("person", mask, [("tail", mask)])])
    with pytest.raises(LabelValueError, match="tail"):
        person_part.part_label(tmp_path / "b.mat")


def test_person_part_reads_a_released_copy_directly(tmp_path):
    root = tmp_path / "pascal_person_part"
    for n, image_id in enumerate(("2008_000003", "2008_000008")):
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        (root / "SegmentationPart").mkdir(exist_ok=True)
        Image.new("RGB", (8, 6), (n, 0, 0)).save(root / "JPEGImages" / f"{image_id}.jpg")
        label = np.full((6, 8), 6, dtype=np.uint8)
        label[0, 0] = 255
        Image.fromarray(label, mode="L").save(root / "SegmentationPart" / f"{image_id}.png")
    (root / "train_id.txt").write_text("2008_000008\n")
    (root / "val_id.txt").write_text("2008_000003\n")
    ds = person_part.dataset(root, "train")
    assert ds.data_kind == "real" and len(ds) == 1
    _, label = ds.load(0)
    assert label[0, 0] == 255 and (label.ravel()[1:] == 6).all()


def test_person_part_prepare_rerun_skips_finished_files(converted):
    raw, out = converted
    files = sorted((out / "JPEGImages").iterdir()) + sorted((out / "SegmentationPart").iterdir())
    before = {f: f.stat().st_mtime_ns for f in files}
    removed = files[-1]
    content = removed.read_bytes()
    removed.unlink()
    person_part.prepare(raw, out)
    assert removed.read_bytes() == content
    assert all(f.stat().st_mtime_ns == t for f, t in before.items() if f != removed)
    assert not list(out.rglob("*.tmp"))


def test_person_part_missing_annotations_are_named_with_the_expected_layout(converted, tmp_path):
    raw, _ = converted
    shutil.copytree(raw, tmp_path / "raw")
    shutil.rmtree(tmp_path / "raw" / "Annotations_Part")
    with pytest.raises(DatasetLayoutError, match="Annotations_Part") as err:
        person_part.prepare(tmp_path / "raw", tmp_path / "out")
    assert "SegmentationPart/<id>.png" in str(err.value)
    with pytest.raises(DatasetLayoutError, match="train_id.txt"):
        person_part.dataset(tmp_path / "raw" / "nowhere", "train")


def test_person_part_split_sizes_match_the_real_lists_and_differ_from_the_paper_by_one():
    if not REAL_SAMPLES.is_dir():
        pytest.skip(f"real sample files not present at {REAL_SAMPLES}")
    train = (REAL_SAMPLES / "train_id.txt").read_text().split()
    test = (REAL_SAMPLES / "val_id.txt").read_text().split()
    assert (len(train), len(test)) == (1716, 1817)
    assert person_part.INFO.splits == {"train": 1717, "test": 1818}  # the paper's numbers
    assert "1716" in person_part.INFO.notes and "1817" in person_part.INFO.notes
    assert not set(train) & set(test)
    assert all(re.fullmatch(r"20\d\d_\d{6}", i) for i in train + test)


def test_person_part_cli_standin_then_prepare_gives_a_standin_dataset(tmp_path):
    from refinenet.cli import main

    size = ["--size", "24", "32"]
    assert main(["standin", "person_part", "--out", str(tmp_path / "raw"), "--train", "2", "--val", "1", *size]) == 0
    assert main(["prepare", "person_part", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]) == 0
    ds = load_dataset("person_part", tmp_path / "out", "test")
    assert len(ds) == 1 and ds.data_kind == "standin" and ds[0][0].shape == (3, 24, 32)
    assert main(["prepare", "person_part", "--raw", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o2")]) == 2
