"""NYUDv2 with the 40 classes of Gupta et al. (CVPR 2013): paper Sec. 4.2, Tables 2, 3 and 9.

1449 densely labelled RGB-D indoor images, 795 for training and 654 for testing; RefineNet uses
the RGB images only. The public release is one MATLAB v7.3 file of all images and labels in the
NYU Depth V2 894-class vocabulary, plus two small files that define the 40-class task:
`classMapping40.mat` (894 -> 40) and `splits.mat` (the standard train/test indices), as
distributed by ankurhanda/nyuv2-meta-data. `prepare` turns them into PNG pairs and id lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refinenet.atomic import atomic_path, save_png
from refinenet.data.common import (
    DatasetInfo,
    DatasetLayoutError,
    LabelValueError,
    SegmentationFiles,
    flat_dataset,
    require_path,
    shifted_lut,
    voc_colormap,
    write_standin_marker,
)
from refinenet.data.files import carry_standin_marker, write_id_list, write_matlab73_header
from refinenet.data.standin import paint_scene

RAW_MAT = "nyu_depth_v2_labeled.mat"
CLASS_MAPPING_MAT = "classMapping40.mat"
SPLITS_MAT = "splits.mat"
NUM_RAW_CLASSES = 894  # NYU Depth V2 label vocabulary; 0 = unlabelled

# `className` of classMapping40.mat, in order (spelling as in the file, "refridgerator" included).
CLASS_NAMES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)  # fmt: skip

LAYOUT = """\
<root>/                          written by `refinenet prepare nyudv2 --raw RAW --out <root>`
  images/0001.png ... 1449.png   RGB (640x480), named by the 1-based index in the .mat file
  labels/0001.png ...            uint8 40-class ids: 0 = unlabelled (ignored), 1..40 = className order
  train.txt                      795 ids (splits.mat trainNdxs)
  test.txt                       654 ids (splits.mat testNdxs)
RAW/ (what `prepare` reads, as downloaded)
  nyu_depth_v2_labeled.mat       MATLAB v7.3 (HDF5): images N x 3 x W x H uint8, labels N x W x H (894 ids)
  classMapping40.mat             mapClass 1x894 -> 1..40, className 1x40   (ankurhanda/nyuv2-meta-data)
  splits.mat                     trainNdxs 795x1, testNdxs 654x1, 1-based  (ankurhanda/nyuv2-meta-data)"""

SPLIT_ALIASES = {"val": "test"}

INFO = DatasetInfo(
    name="nyudv2",
    # the authors' test-time short-edge clamp (guosheng/refinenet main/demo_predict_mscale_nyud.m,
    # `run_config.input_img_short_edge_min/max`)
    test_short_edge=(450, 800),
    class_names=CLASS_NAMES,
    palette=voc_colormap(len(CLASS_NAMES) + 1)[1:],  # the VOC colours of the stored ids 1..N (none black)
    splits={"train": 795, "test": 654},
    layout=LAYOUT,
    notes=(
        "40-class labels of Gupta et al. (CVPR 2013) via classMapping40.mat; unlabelled pixels (0) are "
        "ignored (255), classes 1..40 become train ids 0..39. NYUDv2 has no validation set: split 'val' "
        "is an alias of 'test' (654 images), the set the paper reports on. RGB only, depth unused."
    ),
)


def sample_id(index: int) -> str:
    """The file stem of image `index` (1-based, as in splits.mat)."""
    return f"{index:04d}"


# Stored 40-class id -> train id: 0 (unlabelled) -> 255, 1..40 -> 0..39.
LABEL_LUT = shifted_lut(len(CLASS_NAMES))


def dataset(root: Path, split: str, transform=None) -> SegmentationFiles:
    """The prepared NYUDv2 `split` under `root` (see LAYOUT); labels are train ids 0..39, 255 = unlabelled."""
    return flat_dataset(INFO, root, split, SPLIT_ALIASES, image_suffix=".png", lut=LABEL_LUT, transform=transform)


# --- reading the raw release


def read_class_mapping(path: Path) -> tuple[np.ndarray, list[str]]:
    """`classMapping40.mat` -> (table raw id 0..894 -> 40-class id 0..40 with 0 kept as unlabelled, names)."""
    from scipy.io import loadmat

    mat = loadmat(require_path(path, INFO, "894 -> 40 class mapping"), variable_names=["mapClass", "className"])
    if "mapClass" not in mat or "className" not in mat:
        raise DatasetLayoutError(f"{path} lacks mapClass or className")
    map_class = np.asarray(mat["mapClass"]).ravel().astype(np.int64)
    names = [str(np.asarray(n).ravel()[0]) for n in np.asarray(mat["className"]).ravel()]
    if map_class.size != NUM_RAW_CLASSES or map_class.min() < 1 or map_class.max() > len(names):
        raise LabelValueError(f"{path}: mapClass should hold {NUM_RAW_CLASSES} values in 1..{len(names)}")
    table = np.zeros(NUM_RAW_CLASSES + 1, dtype=np.uint8)
    table[1:] = map_class
    return table, names


def read_splits(path: Path) -> dict[str, list[int]]:
    """`splits.mat` -> {"train": 1-based indices, "test": ...}."""
    from scipy.io import loadmat

    mat = loadmat(require_path(path, INFO, "train/test indices"), variable_names=["trainNdxs", "testNdxs"])
    if "trainNdxs" not in mat or "testNdxs" not in mat:
        raise DatasetLayoutError(f"{path} lacks trainNdxs or testNdxs")
    return {split: [int(i) for i in np.asarray(mat[key]).ravel()] for split, key in
            (("train", "trainNdxs"), ("test", "testNdxs"))}  # fmt: skip


def raw_image(images, index: int) -> np.ndarray:
    """Image `index` (1-based) of the HDF5 `images` dataset as HxWx3.

    MATLAB writes arrays column-major, so an H x W x 3 x N array appears in HDF5 as N x 3 x W x H:
    the axes must be reversed (a transpose); reshaping would scramble the pixels.
    """
    return np.ascontiguousarray(np.asarray(images[index - 1]).transpose(2, 1, 0))


def raw_label(labels, index: int) -> np.ndarray:
    """Label `index` (1-based) of the HDF5 `labels` dataset (N x W x H) as HxW 894-class ids."""
    return np.ascontiguousarray(np.asarray(labels[index - 1]).T)


def prepare(raw: Path, out: Path) -> None:
    """Convert the raw release (see LAYOUT) to PNG pairs and id lists; re-runs skip finished files."""
    import h5py
    from tqdm import tqdm

    raw, out = Path(raw), Path(out)
    require_path(raw, INFO, "raw release folder")
    mat_path = require_path(raw / RAW_MAT, INFO, "NYU Depth V2 labelled images")
    to40, names = read_class_mapping(raw / CLASS_MAPPING_MAT)
    if tuple(names) != CLASS_NAMES:
        raise LabelValueError(f"{raw / CLASS_MAPPING_MAT}: className differs from the 40 classes of Gupta et al.")
    splits = read_splits(raw / SPLITS_MAT)
    carry_standin_marker(raw, out, INFO)

    with h5py.File(mat_path, "r") as mat:
        for key in ("images", "labels"):
            if key not in mat:
                raise DatasetLayoutError(f"{mat_path} has no dataset {key!r}\n{LAYOUT}")
        images, labels = mat["images"], mat["labels"]
        count = images.shape[0]
        if images.ndim != 4 or images.shape[1] != 3 or labels.shape != (count, *images.shape[2:]):
            raise DatasetLayoutError(
                f"{mat_path}: expected images N x 3 x W x H and labels N x W x H, got {images.shape} and {labels.shape}"
            )
        wanted = sorted(set(splits["train"]) | set(splits["test"]))
        if wanted[0] < 1 or wanted[-1] > count:
            raise DatasetLayoutError(f"{raw / SPLITS_MAT}: indices outside 1..{count} of {mat_path}")
        for index in tqdm(wanted, desc="nyudv2", unit="img"):
            image_path = out / "images" / f"{sample_id(index)}.png"
            label_path = out / "labels" / f"{sample_id(index)}.png"
            if not image_path.exists():
                save_png(image_path, raw_image(images, index))
            if not label_path.exists():
                label = raw_label(labels, index)
                if label.max(initial=0) > NUM_RAW_CLASSES:
                    raise LabelValueError(f"{mat_path}: label {index} holds ids above {NUM_RAW_CLASSES}")
                save_png(label_path, to40[label])
    for split, indices in splits.items():
        write_id_list(out / f"{split}.txt", [sample_id(i) for i in indices])


# --- stand-in


def standin_class_mapping(rng: np.random.Generator) -> np.ndarray:
    """A made-up mapClass (894 values in 1..40, every class hit), not the real table."""
    return rng.permutation(np.arange(NUM_RAW_CLASSES) % len(CLASS_NAMES) + 1).astype(np.uint8)


def write_standin(out: Path, *, train: int, val: int, size: tuple[int, int], seed: int) -> None:
    """A miniature release in the RAW layout (see LAYOUT): `train` + `val` images, `size` = (H, W).

    Scenes come from `standin.paint_scene` with 40 classes; each painted class c is written as an
    894-class id whose (made-up) mapClass entry is c + 1, and one patch per image is 0 (unlabelled).
    `val` images form the test split.
    """
    import h5py
    from scipy.io import savemat

    if train < 1 or val < 1:
        raise ValueError("nyudv2 stand-in needs at least one train and one test image")
    out = Path(out)
    height, width = size
    rng = np.random.default_rng(seed)
    map_class = standin_class_mapping(rng)
    raw_ids_of = [np.flatnonzero(map_class == c + 1) + 1 for c in range(len(CLASS_NAMES))]
    total = train + val
    images = np.empty((total, 3, width, height), dtype=np.uint8)
    labels = np.empty((total, width, height), dtype=np.uint16)
    for n in range(total):
        image, label40 = paint_scene(rng, height, width, len(CLASS_NAMES), background=None)
        chosen = np.array([rng.choice(ids) for ids in raw_ids_of], dtype=np.uint16)
        raw = chosen[label40]
        y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
        raw[y0 : y0 + max(2, height // 6), x0 : x0 + max(2, width // 6)] = 0
        images[n] = image.transpose(2, 1, 0)  # stored as MATLAB does: N x 3 x W x H
        labels[n] = raw.T

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / RAW_MAT) as tmp:
        with h5py.File(tmp, "w", userblock_size=512) as mat:
            for key, array in (("images", images), ("labels", labels)):
                dset = mat.create_dataset(key, data=array, compression="gzip", track_times=False)
                dset.attrs["MATLAB_class"] = np.bytes_(array.dtype.name)
        write_matlab73_header(tmp)
    names = np.empty((1, len(CLASS_NAMES)), dtype=object)
    names[0, :] = CLASS_NAMES
    with atomic_path(out / CLASS_MAPPING_MAT) as tmp:
        savemat(tmp, appendmat=False, mdict={"mapClass": map_class[None, :], "className": names})
    order = rng.permutation(total) + 1
    with atomic_path(out / SPLITS_MAT) as tmp:
        savemat(tmp, appendmat=False, mdict={
            "trainNdxs": np.sort(order[:train]).astype(np.uint16)[:, None],
            "testNdxs": np.sort(order[train:]).astype(np.uint16)[:, None],
        })  # fmt: skip
    write_standin_marker(out, INFO.name, seed)
