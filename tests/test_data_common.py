"""Shared data infrastructure: registry, stand-in scenes, atomic writers, and bad input for every dataset."""

from __future__ import annotations

import numpy as np
import pytest

from refinenet import data
from refinenet.atomic import save_png
from refinenet.cli import main
from refinenet.data import common, standin
from refinenet.data.common import DatasetLayoutError, LabelValueError

# Datasets whose bad-input behaviour this file pins down, with the folder that holds a split's images.
SPLIT_FOLDERS = {
    "cityscapes": "leftImg8bit/val",
    "ade20k": "ADEChallengeData2016/images/validation",
}
SIZE = (48, 64)


def write_tiny(name, root):
    data.write_standin(name, root, train=2, val=2, size=SIZE, seed=0)
    return root


# --- registry


def test_registry_lists_all_seven_datasets_of_the_paper_and_coco():
    assert set(data.DATASETS) == {
        "voc2012", "pascal_context", "nyudv2", "sunrgbd", "cityscapes", "ade20k", "person_part", "coco"
    }  # fmt: skip
    assert data.DATASETS["cityscapes"].INFO.name == "cityscapes"


def test_load_dataset_with_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: voc2012.*cityscapes.*ade20k"):
        data.load_dataset("imagenet", "/nowhere", "train")


def test_dataset_info_returns_the_module_info():
    assert data.dataset_info("ade20k").num_classes == 150
    assert data.dataset_info("cityscapes").num_classes == 19


def test_prepare_with_unknown_converter_lists_converters():
    with pytest.raises(ValueError, match="converters: nyudv2.*sbd"):
        data.prepare("ade20k", "/nowhere", "/nowhere")


# --- luts


def test_identity_lut_keeps_classes_and_ignore_and_rejects_the_rest(tmp_path):
    lut = common.identity_lut(3)
    assert common.apply_lut(np.array([[0, 1, 2, 255]], np.uint8), lut, tmp_path).tolist() == [[0, 1, 2, 255]]
    with pytest.raises(LabelValueError, match=r"\[3, 7\]"):
        common.apply_lut(np.array([[0, 3, 7]], np.uint8), lut, tmp_path / "x.png")


def test_label_less_items_load_as_all_ignore(tmp_path):
    save_png(tmp_path / "a.png", np.zeros((4, 5, 3), np.uint8))
    info = data.dataset_info("ade20k")
    ds = common.SegmentationFiles([(tmp_path / "a.png", None)], info, root=tmp_path)
    image, label = ds[0]
    assert not ds.has_labels
    assert image.shape == (3, 4, 5) and label.shape == (4, 5) and (label == 255).all()


# --- stand-in scenes


def test_paint_scene_is_deterministic_for_an_rng_state():
    a = standin.paint_scene(np.random.default_rng(5), 40, 56, 21)
    b = standin.paint_scene(np.random.default_rng(5), 40, 56, 21)
    c = standin.paint_scene(np.random.default_rng(6), 40, 56, 21)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])


def test_paint_scene_shapes_dtypes_and_class_range():
    image, label = standin.paint_scene(np.random.default_rng(0), 60, 80, 21, background=0)
    assert image.shape == (60, 80, 3) and image.dtype == np.uint8
    assert label.shape == (60, 80) and label.dtype == np.uint8
    assert label.max() < 21 and (label == 0).mean() > 0.2  # background fills the rest
    assert len(np.unique(label)) >= 4  # several objects


def test_paint_scene_without_background_gives_every_pixel_a_class_from_many():
    labels = [standin.paint_scene(np.random.default_rng(s), 60, 80, 150, background=None)[1] for s in range(8)]
    assert all(lab.max() < 150 for lab in labels)
    assert len(np.unique(np.concatenate([lab.ravel() for lab in labels]))) > 30


def test_paint_scene_has_small_objects_and_thin_structures():
    image, label = standin.paint_scene(np.random.default_rng(1), 120, 160, 10, background=0)
    # Pixels whose 3x3 neighbourhood holds another class: boundaries and thin strokes make many.
    padded = np.pad(label, 1, mode="edge")
    shifted = [padded[1 + dy : 121 + dy, 1 + dx : 161 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    boundary = np.any([s != label for s in shifted], axis=0)
    assert 0.02 < boundary.mean() < 0.5


def test_paint_scene_classes_differ_in_colour():
    image, label = standin.paint_scene(np.random.default_rng(2), 120, 160, 6, background=0)
    means = {c: image[label == c].mean(0) for c in np.unique(label) if (label == c).sum() > 30}
    colours = list(means.values())
    assert all(np.abs(a - b).max() > 10 for i, a in enumerate(colours) for b in colours[i + 1 :])


# --- CLI


def test_cli_standin_rejects_an_unknown_dataset(capsys):
    assert main(["standin", "imagenet", "--out", "/tmp/x"]) != 0
    assert "valid names" in capsys.readouterr().err


def test_cli_prepare_says_when_a_dataset_needs_no_conversion(capsys, tmp_path):
    assert main(["prepare", "ade20k", "--raw", str(tmp_path), "--out", str(tmp_path / "o")]) != 0
    assert "no conversion needed" in capsys.readouterr().err


def test_cli_prepare_without_raw_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "cityscapes", "--out", "/tmp/x"])
    assert exit_info.value.code != 0 and "--raw" in capsys.readouterr().err


def test_cli_prepare_with_missing_raw_folder_names_it(capsys, tmp_path):
    assert main(["prepare", "cityscapes", "--raw", str(tmp_path / "absent"), "--out", str(tmp_path / "o")]) != 0
    assert "absent" in capsys.readouterr().err


# --- bad input, for every dataset in SPLIT_FOLDERS


@pytest.fixture(params=sorted(SPLIT_FOLDERS))
def tiny(request, tmp_path):
    """(name, root of a tiny stand-in, its val split)."""
    name = request.param
    root = write_tiny(name, tmp_path / name)
    return name, root, data.load_dataset(name, root, "val")


def test_missing_root_names_the_path_and_shows_the_layout(tiny, tmp_path):
    name, _, _ = tiny
    with pytest.raises(DatasetLayoutError) as err:
        data.load_dataset(name, tmp_path / "does-not-exist", "val")
    assert "does-not-exist" in str(err.value)
    assert data.dataset_info(name).layout in str(err.value)


def test_missing_split_folder_names_the_path_and_shows_the_layout(tiny):
    name, root, _ = tiny
    folder = root / SPLIT_FOLDERS[name]
    for path in sorted(folder.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    folder.rmdir()
    with pytest.raises(DatasetLayoutError) as err:
        data.load_dataset(name, root, "val")
    assert str(folder) in str(err.value) and data.dataset_info(name).layout in str(err.value)


@pytest.mark.parametrize(("which", "content"), [("image", b"not an image"), ("label", b"\x89PNG truncated")])
def test_unreadable_file_error_names_the_file(tiny, which, content):
    name, root, ds = tiny
    path = ds.pairs[0][("image", "label").index(which)]
    path.write_bytes(content)
    with pytest.raises(OSError, match=str(path)):
        data.load_dataset(name, root, "val")[0]


def test_label_values_outside_the_range_name_the_file_and_values(tiny):
    name, root, ds = tiny
    label_path = ds.pairs[0][1]
    stored = common.read_label(label_path).copy()
    stored[0, :3] = 200  # defined by none of these datasets
    save_png(label_path, stored)
    with pytest.raises(LabelValueError) as err:
        data.load_dataset(name, root, "val")[0]
    assert str(label_path) in str(err.value) and "200" in str(err.value)


def test_image_label_size_mismatch_names_both_files(tiny):
    name, root, ds = tiny
    image_path, label_path = ds.pairs[0]
    save_png(label_path, common.read_label(label_path)[:-4])
    with pytest.raises(ValueError) as err:
        data.load_dataset(name, root, "val")[0]
    assert str(image_path) in str(err.value) and str(label_path) in str(err.value)


def test_paint_scene_regions_with_background_cover_most_pixels_with_other_classes():
    # PASCAL-Context's stand-in: scene-parsing regions, one of them the background class
    labels = [standin.paint_scene(np.random.default_rng(s), 60, 80, 60, background=0, regions=True)[1]
              for s in range(8)]
    background_share = np.mean([(lab == 0).mean() for lab in labels])
    only_objects = [standin.paint_scene(np.random.default_rng(s), 60, 80, 60, background=0)[1] for s in range(8)]
    assert background_share < np.mean([(lab == 0).mean() for lab in only_objects])
    assert all((lab == 0).any() for lab in labels)
    assert len(np.unique(np.concatenate([lab.ravel() for lab in labels]))) > 25
