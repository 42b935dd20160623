"""PASCAL VOC 2012 segmentation (paper, Sec. 4.2), with SBD's extra annotations for `train_aug`.

Splits: `train` 1464, `val` 1449, `trainval` 2913, `test` 1456 (images only; the labels are held
by the evaluation server) and `train_aug` 10582 = (VOC train + SBD train + SBD val) - VOC val, the
usual augmented training set [Hariharan et al., ICCV 2011; DeepLab's `train_aug.txt`].

Labels are VOC's palette ("P") PNGs: the stored palette *indices* are the class ids (0 = background,
1..20 the objects) and 255 marks the void band around objects, which every score leaves out.

`train_aug` needs SBD's `.mat` annotations converted first: `prepare_sbd(raw, out)`, i.e.
`refinenet prepare sbd --raw RAW --out OUT`. Without them, `dataset(root, "train_aug")` raises an
error saying so, never an empty or VOC-only list.

The test split loads with labels all 255 (`SegmentationFiles.has_labels` is False), so the engine
can predict it; `Path(ds.pairs[i][0]).stem` is the image id that names its result file
`results/VOC2012/Segmentation/comp6_test_cls/<id>.png` for the evaluation server.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import scipy.io
from tqdm import tqdm

from refinenet.atomic import atomic_path, save_jpeg, save_png
from refinenet.data.common import (
    DatasetInfo,
    DatasetLayoutError,
    LabelValueError,
    SegmentationFiles,
    apply_lut,
    identity_lut,
    listed_files,
    read_label,
    read_split_list,
    require_path,
    require_voc_devkit,
    resolve_split,
    voc_colormap,
    write_standin_marker,
)
from refinenet.data.files import carry_standin_marker, link_or_copy, write_id_list
from refinenet.data.standin import paint_scene

CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


LAYOUT = """\
ROOT/
  VOCdevkit/VOC2012/
    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png              palette PNG: indices 0..20 = class, 255 = void
    ImageSets/Segmentation/{train,val,trainval,test}.txt
    SegmentationClassAug/<id>.png           only for train_aug: plain L PNG, same ids (prepare sbd)
    ImageSets/Segmentation/train_aug.txt    only for train_aug (prepare sbd)
  (a root written by prepare sbd has SegmentationClassAug only: it then serves every split)
  (test: the VOC2012 test download adds test.txt and its JPEGImages; no labels)
To make train_aug: refinenet prepare sbd --raw RAW --out OUT, where RAW holds
  VOCdevkit/VOC2012/ (as above) and benchmark_RELEASE/dataset/{img/*.jpg, cls/*.mat, train.txt, val.txt}
  (SBD, Hariharan et al. 2011); then use OUT as ROOT."""

INFO = DatasetInfo(
    name="voc2012",
    # the authors' test-time short-edge clamp (guosheng/refinenet main/demo_predict_mscale_voc.m,
    # `run_config.input_img_short_edge_min/max`)
    test_short_edge=(450, 800),
    class_names=CLASS_NAMES,
    palette=voc_colormap(len(CLASS_NAMES)),
    splits={"train": 1464, "val": 1449, "trainval": 2913, "test": 1456, "train_aug": 10582},
    layout=LAYOUT,
    notes=(
        "Labels are palette indices (0 background, 1..20 objects), 255 = void band, left out of scores. "
        "train_aug = (VOC train | SBD train | SBD val) - VOC val (10582), SBD .mat labels converted by "
        "`refinenet prepare sbd`; where an image is in both, VOC's own label (with its void band) is kept. "
        "test has no labels: items load with an all-255 label and has_labels is False; predictions go to "
        "results/VOC2012/Segmentation/comp6_test_cls/<id>.png (palette PNG) for the evaluation server. "
        "The paper also trains on MS COCO (Sec. 4.2): refinenet/data/coco.py reads it as these 21 classes."
    ),
    extra={
        "test_results_dir": "results/VOC2012/Segmentation/comp6_test_cls",
        "sbd_dir": "benchmark_RELEASE/dataset",
    },
)

# Stored palette index -> class id is the identity; 255 stays void; anything else is an error.
LABEL_LUT = identity_lut(INFO.num_classes)

VOC_SUBDIR = Path("VOCdevkit") / "VOC2012"
SBD_SUBDIR = Path("benchmark_RELEASE") / "dataset"
SPLIT_DIR = Path("ImageSets") / "Segmentation"
VOC_SPLITS = ("train", "val", "trainval", "test")


def dataset(root: Path, split: str, transform=None) -> SegmentationFiles:
    """The VOC 2012 `split` under `root` (the folder holding `VOCdevkit/`)."""
    root = Path(root)
    split = resolve_split(split, INFO)
    voc, images = require_voc_devkit(root, VOC_SUBDIR, INFO)
    if split == "train_aug":
        ids = _train_aug_ids(voc)
        labels = voc / "SegmentationClassAug"
    else:
        ids = read_split_list(voc / SPLIT_DIR / f"{split}.txt", INFO)
        labels = None if split == "test" else _label_dir(voc)
    return listed_files(INFO, root, split, ids, images, labels, lut=LABEL_LUT, transform=transform)


def _label_dir(voc: Path) -> Path:
    """VOC's SegmentationClass; a root made by `prepare_sbd` has only SegmentationClassAug, whose
    VOC ids hold the same labels (converted to plain PNGs), so that serves as well."""
    for name in ("SegmentationClass", "SegmentationClassAug"):
        if (voc / name).is_dir():
            return voc / name
    return require_path(voc / "SegmentationClass", INFO, "labels")


def _train_aug_ids(voc: Path) -> list[str]:
    needed = [voc / "SegmentationClassAug", voc / SPLIT_DIR / "train_aug.txt"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise DatasetLayoutError(
            "voc2012: split 'train_aug' needs SBD's extra annotations converted; "
            f"missing {', '.join(missing)}.\n"
            "Make them with `refinenet prepare sbd --raw RAW --out OUT` (RAW holding VOCdevkit/VOC2012 and "
            "benchmark_RELEASE/dataset from SBD) and load OUT. Use split 'train' to train on VOC's 1464 "
            f"images only.\nExpected layout under the dataset root:\n{INFO.layout}"
        )
    # DeepLab's list has lines "/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png"; ours just ids.
    return [Path(line.split()[0]).stem for line in read_split_list(needed[1], INFO)]


# --- converter: SBD's .mat annotations -> SegmentationClassAug + train_aug.txt


def prepare_sbd(raw: Path, out: Path) -> None:
    """Convert SBD for `train_aug`: `raw` holds `benchmark_RELEASE/dataset` and `VOCdevkit/VOC2012`.

    Writes `out/VOCdevkit/VOC2012/`:
      SegmentationClassAug/<id>.png  plain L PNGs of class ids for every VOC trainval id (VOC's own
                                     label, void band kept) and every other SBD id (from cls/*.mat)
      JPEGImages/<id>.jpg            hard links to the source JPEGs (copies across file systems)
      ImageSets/Segmentation/        VOC's lists (train, val, trainval, test if present) and
                                     train_aug.txt = (VOC train | SBD train | SBD val) - VOC val
    Re-running skips files already written; every file appears whole (temp file + os.replace).
    `out` may equal `raw`.
    """
    raw, out = Path(raw), Path(out)
    voc = require_path(raw / VOC_SUBDIR, INFO, "VOC2012 folder in --raw")
    sbd = require_path(raw / SBD_SUBDIR, INFO, "SBD folder in --raw")
    for path in (voc / "JPEGImages", voc / "SegmentationClass", sbd / "img", sbd / "cls"):
        require_path(path, INFO)
    voc_lists = {s: read_split_list(voc / SPLIT_DIR / f"{s}.txt", INFO) for s in VOC_SPLITS if s != "test"}
    test_list = voc / SPLIT_DIR / "test.txt"
    if test_list.is_file():
        voc_lists["test"] = read_split_list(test_list, INFO)
    sbd_ids = _sbd_ids(sbd)
    carry_standin_marker(raw, out, INFO)
    train_aug = train_aug_ids(voc_lists["train"], voc_lists["val"], sbd_ids["train"], sbd_ids["val"])

    out_voc = out / VOC_SUBDIR
    voc_labelled = set(voc_lists["trainval"]) | set(voc_lists["train"]) | set(voc_lists["val"])
    sbd_only = sorted((set(sbd_ids["train"]) | set(sbd_ids["val"])) - voc_labelled)
    for i in tqdm(sorted(voc_labelled), desc="VOC labels -> SegmentationClassAug", unit="img"):
        _convert_label(voc / "SegmentationClass" / f"{i}.png", out_voc / "SegmentationClassAug" / f"{i}.png")
    for i in tqdm(sbd_only, desc="SBD cls/*.mat -> SegmentationClassAug", unit="img"):
        _convert_label(sbd / "cls" / f"{i}.mat", out_voc / "SegmentationClassAug" / f"{i}.png")

    all_ids = sorted(voc_labelled | set(sbd_only) | set(voc_lists.get("test", [])))
    for i in tqdm(all_ids, desc="JPEGImages (links)", unit="img"):
        source = voc / "JPEGImages" / f"{i}.jpg"
        if not source.is_file():  # SBD's images are all in VOC2012's JPEGImages; take SBD's copy if not
            source = require_path(sbd / "img" / f"{i}.jpg", INFO, "image")
        link_or_copy(source, out_voc / "JPEGImages" / f"{i}.jpg")

    for split, ids in {**voc_lists, "train_aug": train_aug}.items():
        write_id_list(out_voc / SPLIT_DIR / f"{split}.txt", ids)


def train_aug_ids(
    voc_train: Iterable[str], voc_val: Iterable[str], sbd_train: Iterable[str], sbd_val: Iterable[str]
) -> list[str]:
    """(VOC train | SBD train | SBD val) - VOC val, sorted; no VOC val image may leak into training."""
    ids = (set(voc_train) | set(sbd_train) | set(sbd_val)) - set(voc_val)
    if not ids:
        raise DatasetLayoutError("voc2012: the train_aug list came out empty; check the VOC and SBD split lists")
    return sorted(ids)


def _sbd_ids(sbd: Path) -> dict[str, list[str]]:
    """SBD's train/val ids, located with torchvision's SBDataset (after our own, clearer checks)."""
    from torchvision.datasets import SBDataset

    ids = {}
    for split in ("train", "val"):
        read_split_list(sbd / f"{split}.txt", INFO)
        listed = SBDataset(str(sbd), image_set=split, mode="segmentation")
        ids[split] = [Path(p).stem for p in listed.masks]
    return ids


def read_sbd_segmentation(path: Path) -> np.ndarray:
    """SBD's `GTcls.Segmentation` (HxW class ids 0..20, no void) from one cls/*.mat."""
    try:
        mat = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
        label = np.asarray(mat["GTcls"].Segmentation)
    except (OSError, ValueError, KeyError, AttributeError) as err:
        raise OSError(f"cannot read SBD annotation {path} (expected struct GTcls.Segmentation): {err}") from err
    if label.ndim != 2:
        raise LabelValueError(f"SBD annotation {path}: Segmentation has shape {label.shape}, expected HxW")
    return label


def _convert_label(source: Path, target: Path) -> None:
    """One label as a plain L PNG of class ids; values VOC does not define raise, naming the file."""
    if target.is_file():
        return
    if source.suffix == ".mat":
        label = read_sbd_segmentation(source)
    else:
        label = read_label(require_path(source, INFO, "label"))
    if label.min(initial=0) < 0 or label.max(initial=0) > 255:
        raise LabelValueError(f"label {source} holds values outside [0, 255]")
    label = label.astype(np.uint8)
    apply_lut(label, LABEL_LUT, source)
    save_png(target, label)


# --- stand-in: a miniature VOC 2012 + SBD in their release layouts


def write_standin(out: Path, *, train: int, val: int, size: tuple[int, int], seed: int) -> None:
    """Synthetic VOC 2012 and SBD under `out`, laid out like the releases, so that `dataset(out, ...)`
    reads train/val/trainval/test and `prepare_sbd(out, OUT2)` makes a `train_aug` root.

    VOCdevkit/VOC2012: JPEGImages for every id, palette PNG labels with a void (255) band around
    objects like VOC's, split lists, and a short test list (images only). benchmark_RELEASE/dataset:
    img/*.jpg, cls/*.mat (struct GTcls: Segmentation, Boundaries, CategoriesPresent), train.txt,
    val.txt. SBD overlaps VOC train *and* VOC val (as the real one does), plus images of its own.
    `size` is (height, width).
    """
    out = Path(out)
    height, width = size
    rng = np.random.default_rng(seed)
    n_test, n_sbd_only = max(1, val // 4), max(2, train)
    ids = [f"{2007 + k % 6}_{k:06d}" for k in range(train + val + n_test + n_sbd_only)]
    voc_train, voc_val = ids[:train], ids[train : train + val]
    test, sbd_only = ids[train + val : train + val + n_test], ids[train + val + n_test :]
    sbd_lists = {
        "train": sorted(sbd_only[::2] + voc_train[: (train + 1) // 2]),
        "val": sorted(sbd_only[1::2] + voc_val[: (val + 1) // 2]),
    }
    voc_labelled = set(voc_train) | set(voc_val)
    in_sbd = set(sbd_lists["train"]) | set(sbd_lists["val"])
    voc, sbd = out / VOC_SUBDIR, out / SBD_SUBDIR
    band = max(1, round(min(size) / 150))  # VOC's void band is about 5 px wide on ~400 px images
    for i in ids:
        image, label = paint_scene(rng, height, width, INFO.num_classes, background=0)
        save_jpeg(voc / "JPEGImages" / f"{i}.jpg", image)
        if i in voc_labelled:
            save_png(voc / "SegmentationClass" / f"{i}.png", with_void_band(label, band), palette=INFO.palette)
        if i in in_sbd:
            save_jpeg(sbd / "img" / f"{i}.jpg", image)
            write_sbd_mat(sbd / "cls" / f"{i}.mat", label)
    lists = {"train": voc_train, "val": voc_val, "trainval": voc_train + voc_val, "test": test}
    for split, split_ids in lists.items():
        write_id_list(voc / SPLIT_DIR / f"{split}.txt", split_ids)
    for split, split_ids in sbd_lists.items():
        write_id_list(sbd / f"{split}.txt", split_ids)
    write_standin_marker(out, INFO.name, seed)


def with_void_band(label: np.ndarray, radius: int) -> np.ndarray:
    """`label` with 255 on every pixel within `radius` of a class boundary (VOC's void outline)."""
    from scipy import ndimage

    window = 2 * radius + 1
    near_edge = ndimage.maximum_filter(label, size=window) != ndimage.minimum_filter(label, size=window)
    return np.where(near_edge, np.uint8(255), label).astype(np.uint8)


def write_sbd_mat(path: Path, label: np.ndarray) -> None:
    """An SBD cls/*.mat: struct GTcls with Segmentation (uint8 HxW), Boundaries (20x1 cell of sparse
    edge maps) and CategoriesPresent, as in the release; written atomically."""
    from scipy import ndimage, sparse

    boundaries = np.empty((INFO.num_classes - 1, 1), dtype=object)
    for c in range(1, INFO.num_classes):
        mask = label == c
        boundaries[c - 1, 0] = sparse.csc_matrix(mask & ~ndimage.binary_erosion(mask))
    gt = {
        "Segmentation": label.astype(np.uint8),
        "Boundaries": boundaries,
        "CategoriesPresent": np.unique(label[label > 0]).astype(np.uint8),
    }
    with atomic_path(path) as tmp:
        scipy.io.savemat(tmp, {"GTcls": gt}, appendmat=False, do_compression=True)
