"""PASCAL VOC 2012 + SBD: layout, label mapping, train_aug, the SBD converter, stand-in."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from refinenet import data
from refinenet.data import voc2012
from refinenet.data.common import DatasetLayoutError, LabelValueError

REAL_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples"  # see tests/conftest.py
SIZE = (48, 64)


CONVERTED = ("voc2012", "sbd", 0)  # the `standin` and `prepared` fixtures (conftest.py)


def read_ids(path: Path) -> list[str]:
    return path.read_text().split()


def test_info_has_paper_splits_and_voc_palette():
    info = data.dataset_info("voc2012")
    assert info.num_classes == 21 and info.class_names[0] == "background" and info.class_names[15] == "person"
    assert info.splits == {"train": 1464, "val": 1449, "trainval": 2913, "test": 1456, "train_aug": 10582}
    assert info.palette[:4] == ((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0))
    assert info.palette[15] == (192, 128, 128)  # person, as in the devkit's colour map


@pytest.mark.parametrize("split", ["train", "val", "trainval"])
def test_standin_labelled_splits_load_with_voc_ids_and_void(standin, split):
    ds = data.load_dataset("voc2012", standin, split)
    assert len(ds) == {"train": 4, "val": 3, "trainval": 7}[split]
    assert ds.data_kind == "standin" and ds.num_classes == 21 and ds.has_labels
    image, label = ds[0]
    assert tuple(image.shape) == (3, *SIZE) and tuple(label.shape) == SIZE
    values = set(np.unique(label.numpy()).tolist())
    assert values <= set(range(21)) | {255}
    assert 255 in values and 0 in values  # VOC's void band around objects, and background


def test_palette_png_is_read_as_indices_not_colours(standin):
    ds = data.load_dataset("voc2012", standin, "train")
    image_path, label_path = ds.pairs[0]
    with Image.open(label_path) as im:
        assert im.mode == "P"
        stored = np.asarray(im)
    assert np.array_equal(ds[0][1].numpy(), stored.astype(np.int64))
    assert image_path.stem == label_path.stem  # ids name the files


def test_test_split_has_images_only_and_all_void_labels(standin):
    ds = data.load_dataset("voc2012", standin, "test")
    assert not ds.has_labels
    ids = [image.stem for image, _ in ds.pairs]
    assert ids == read_ids(standin / "VOCdevkit/VOC2012/ImageSets/Segmentation/test.txt")
    image, label = ds[0]
    assert tuple(image.shape) == (3, *SIZE) and bool((label == 255).all())


def test_train_aug_without_sbd_raises_naming_prepare_sbd(standin):
    with pytest.raises(DatasetLayoutError) as err:
        data.load_dataset("voc2012", standin, "train_aug")
    message = str(err.value)
    assert "refinenet prepare sbd" in message
    assert "SegmentationClassAug" in message and "train_aug.txt" in message


def test_train_aug_list_is_voc_train_plus_sbd_minus_voc_val(standin, prepared):
    voc_lists = standin / "VOCdevkit/VOC2012/ImageSets/Segmentation"
    sbd = standin / "benchmark_RELEASE/dataset"
    voc_train, voc_val = set(read_ids(voc_lists / "train.txt")), set(read_ids(voc_lists / "val.txt"))
    sbd_all = set(read_ids(sbd / "train.txt")) | set(read_ids(sbd / "val.txt"))
    # the fixture overlaps both ways, so the set algebra is actually exercised
    assert sbd_all & voc_train and sbd_all & voc_val and sbd_all - voc_train - voc_val
    expected = (voc_train | sbd_all) - voc_val
    listed = read_ids(prepared / "VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt")
    assert listed == sorted(expected)
    ds = data.load_dataset("voc2012", prepared, "train_aug")
    assert [image.stem for image, _ in ds.pairs] == sorted(expected)
    assert ds.data_kind == "standin"


def test_train_aug_ids_function_drops_voc_val():
    assert voc2012.train_aug_ids(["a", "b"], ["c"], ["b", "c", "d"], ["e", "c"]) == ["a", "b", "d", "e"]


def test_prepared_root_loads_every_split_with_sbd_labels_from_mat(standin, prepared):
    for split in ("train", "val", "trainval", "train_aug", "test"):
        ds = data.load_dataset("voc2012", prepared, split)
        image, label = ds[len(ds) - 1]
        assert tuple(image.shape) == (3, *SIZE)
        assert set(np.unique(label.numpy()).tolist()) <= set(range(21)) | {255}
    sbd = standin / "benchmark_RELEASE/dataset"
    voc_labelled = set(read_ids(standin / "VOCdevkit/VOC2012/ImageSets/Segmentation/trainval.txt"))
    sbd_only = sorted(set(read_ids(sbd / "train.txt")) - voc_labelled)
    mat = scipy.io.loadmat(sbd / "cls" / f"{sbd_only[0]}.mat", struct_as_record=False, squeeze_me=True)
    with Image.open(prepared / "VOCdevkit/VOC2012/SegmentationClassAug" / f"{sbd_only[0]}.png") as im:
        assert im.mode == "L"
        assert np.array_equal(np.asarray(im), mat["GTcls"].Segmentation)


def test_voc_label_wins_over_sbd_for_shared_ids(standin, prepared):
    sbd_train = set(read_ids(standin / "benchmark_RELEASE/dataset/train.txt"))
    shared = sorted(sbd_train & set(read_ids(standin / "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt")))
    with Image.open(standin / "VOCdevkit/VOC2012/SegmentationClass" / f"{shared[0]}.png") as im:
        voc_label = np.asarray(im)
    with Image.open(prepared / "VOCdevkit/VOC2012/SegmentationClassAug" / f"{shared[0]}.png") as im:
        assert np.array_equal(np.asarray(im), voc_label)  # with its void band; SBD has none


def test_rerunning_prepare_sbd_skips_finished_files(standin, prepared):
    files = [p for p in prepared.rglob("*.png")] + [p for p in prepared.rglob("*.jpg")]
    before = {p: p.stat().st_mtime_ns for p in files}
    voc2012.prepare_sbd(standin, prepared)
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert not list(prepared.rglob("*.tmp"))


def test_prepare_sbd_takes_images_missing_from_voc_from_sbd(standin, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(standin, raw)
    sbd = raw / "benchmark_RELEASE/dataset"
    only_in_sbd = sorted(set(read_ids(sbd / "val.txt")) - set(read_ids(sbd / "train.txt")))[0]
    (raw / "VOCdevkit/VOC2012/JPEGImages" / f"{only_in_sbd}.jpg").unlink()
    voc2012.prepare_sbd(raw, tmp_path / "out")
    copied = tmp_path / "out/VOCdevkit/VOC2012/JPEGImages" / f"{only_in_sbd}.jpg"
    assert copied.read_bytes() == (sbd / "img" / f"{only_in_sbd}.jpg").read_bytes()


def test_prepare_sbd_without_sbd_names_the_missing_folder(standin, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(standin / "VOCdevkit", raw / "VOCdevkit")
    with pytest.raises(DatasetLayoutError, match="benchmark_RELEASE"):
        data.prepare("sbd", raw, tmp_path / "out")


def test_missing_root_names_the_path_and_shows_layout(tmp_path):
    with pytest.raises(DatasetLayoutError) as err:
        data.load_dataset("voc2012", tmp_path / "nowhere", "val")
    assert str(tmp_path / "nowhere") in str(err.value) and "SegmentationClass" in str(err.value)


def test_missing_split_list_names_the_path(standin, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(standin, root)
    split_list = root / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt"
    split_list.unlink()
    with pytest.raises(DatasetLayoutError, match=str(split_list)):
        data.load_dataset("voc2012", root, "val")


def test_missing_label_file_names_it(standin, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(standin, root)
    first = read_ids(root / "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt")[0]
    missing = root / "VOCdevkit/VOC2012/SegmentationClass" / f"{first}.png"
    missing.unlink()
    with pytest.raises(DatasetLayoutError, match=str(missing)):
        data.load_dataset("voc2012", root, "train")


def test_unknown_split_is_refused(standin):
    with pytest.raises(ValueError, match="train_aug"):
        data.load_dataset("voc2012", standin, "training")


def test_label_values_outside_voc_are_an_error(standin, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(standin, root)
    ds = data.load_dataset("voc2012", root, "train")
    label = np.zeros(SIZE, dtype=np.uint8)
    label[0, 0] = 30
    Image.fromarray(label, mode="L").save(ds.pairs[0][1])
    with pytest.raises(LabelValueError, match=r"\[30\]"):
        ds[0]


def test_real_voc_sample_keeps_palette_indices(tmp_path):
    sample = REAL_SAMPLES / "voc2012"
    if not (sample / "2007_000129.png").is_file():
        pytest.skip(f"real VOC sample not present at {sample} (reference data, see tests/conftest.py)")
    voc = tmp_path / "VOCdevkit/VOC2012"
    for folder, suffix in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png")):
        (voc / folder).mkdir(parents=True)
        shutil.copyfile(sample / f"2007_000129{suffix}", voc / folder / f"2007_000129{suffix}")
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000129\n")
    ds = data.load_dataset("voc2012", tmp_path, "val")
    image, label = ds[0]
    assert tuple(image.shape) == (3, 500, 334) and tuple(label.shape) == (500, 334)
    assert set(np.unique(label.numpy()).tolist()) == {0, 2, 15, 255}
    assert ds.data_kind == "real"


def test_standin_is_deterministic(tmp_path):
    for name in ("a", "b"):
        voc2012.write_standin(tmp_path / name, train=2, val=1, size=SIZE, seed=3)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for rel in files:
        if rel.suffix in (".png", ".jpg", ".txt"):
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert os.path.exists(tmp_path / "a" / "REFINENET_STANDIN.txt")
