"""PASCAL-Person-Part (Chen et al., CVPR 2014; Xia et al.): paper Sec. 4.1, Tables 1 and 2.

Person images of PASCAL VOC 2010 whose people are segmented into six parts: head, torso, upper
arms, lower arms, upper legs and lower legs; everything else is background. The released copy
(e.g. as used by hlzhu09/Hierarchical-Human-Parsing, `dataset/Pascal/`) is read as it is:
`JPEGImages/`, `SegmentationPart/` PNGs with values 0..6 and the id lists `train_id.txt` and
`val_id.txt`. `prepare` makes that layout from the original PASCAL-Part annotations
(`Annotations_Part/*.mat`, http://roozbehm.info/pascal-parts/) by folding the fine person parts
into the six.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refinenet.atomic import atomic_path, save_jpeg
from refinenet.data.common import (
    DatasetInfo,
    DatasetLayoutError,
    LabelValueError,
    SegmentationFiles,
    listed_files,
    read_split_list,
    require_path,
    resolve_split,
    voc_colormap,
    write_standin_marker,
)
from refinenet.data.files import (
    carry_standin_marker,
    matlab_string,
    write_converted_pair,
    write_id_list,
)
from refinenet.data.standin import paint_scene

CLASS_NAMES = ("background", "head", "torso", "upper arm", "lower arm", "upper leg", "lower leg")
SPLIT_LISTS = {"train": "train_id.txt", "test": "val_id.txt"}  # the released "val" list is the paper's test set
SPLIT_ALIASES = {"val": "test"}

# PASCAL-Part person part names (the `part2ind.m` of its release) -> Person-Part class. Face parts
# and hair fold into the head, the neck into the torso, hands into the lower arms and feet into
# the lower legs.
PART_TO_CLASS = {
    "head": 1, "hair": 1, "leye": 1, "reye": 1, "lear": 1, "rear": 1,
    "lebrow": 1, "rebrow": 1, "nose": 1, "mouth": 1,
    "torso": 2, "neck": 2,
    "luarm": 3, "ruarm": 3,
    "llarm": 4, "rlarm": 4, "lhand": 4, "rhand": 4,
    "luleg": 5, "ruleg": 5,
    "llleg": 6, "rlleg": 6, "lfoot": 6, "rfoot": 6,
}  # fmt: skip

LAYOUT = """\
<root>/                        the released Person-Part layout (or `refinenet prepare person_part --out <root>`)
  JPEGImages/<id>.jpg          PASCAL VOC 2010 images
  SegmentationPart/<id>.png    single-channel or palette PNG, 0 background, 1 head, 2 torso, 3 upper arm,
                               4 lower arm, 5 upper leg, 6 lower leg (255, if present, is ignored)
  train_id.txt                 1716 ids, e.g. 2008_000008
  val_id.txt                   1817 ids (the test set)
RAW/ (what `prepare` reads)
  JPEGImages/<id>.jpg          VOC 2010 trainval images
  Annotations_Part/<id>.mat    PASCAL-Part annotations: anno.objects(k).class / .mask / .parts(j).part_name, .mask
  train_id.txt, val_id.txt     the Person-Part id lists"""

INFO = DatasetInfo(
    name="person_part",
    # the authors' test-time short-edge clamp (guosheng/refinenet main/demo_predict_mscale_person_parts.m,
    # `run_config.input_img_short_edge_min/max`)
    test_short_edge=(450, 800),
    class_names=CLASS_NAMES,
    palette=voc_colormap(len(CLASS_NAMES)),
    splits={"train": 1717, "test": 1818},
    layout=LAYOUT,
    notes=(
        "The paper (Sec. 4.1) states 1717 training and 1818 test images; the public id lists hold 1716 "
        "(train_id.txt) and 1817 (val_id.txt), one fewer each, so runs use 1716/1817. The released test "
        "list is named val_id.txt: split 'test' reads it and 'val' is an alias. Part folding from "
        "PASCAL-Part: head+hair+eyes+ears+eyebrows+nose+mouth -> head, torso+neck -> torso, upper arms, "
        "lower arms+hands, upper legs, lower legs+feet; person pixels outside every part stay background, "
        "parts of non-person objects are not used."
    ),
)


def dataset(root: Path, split: str, transform=None) -> SegmentationFiles:
    root = Path(root)
    split = resolve_split(split, INFO, SPLIT_ALIASES)
    require_path(root, INFO, "dataset root")
    ids = read_split_list(root / SPLIT_LISTS[split], INFO)
    return listed_files(INFO, root, split, ids, root / "JPEGImages", root / "SegmentationPart", transform=transform)


# --- converting PASCAL-Part annotations


def _struct_elements(value) -> list:
    """The elements of a MATLAB struct array as loaded by scipy (empty arrays give none)."""
    array = np.asarray(value)
    return [] if array.size == 0 or array.dtype.names is None else list(array.ravel())


def part_label(annotation_path: Path) -> np.ndarray:
    """One `Annotations_Part/<id>.mat` -> HxW uint8 Person-Part label (0..6).

    Objects are painted in file order, so where people overlap the later one wins.
    """
    from scipy.io import loadmat

    mat = loadmat(annotation_path, variable_names=["anno"])
    if "anno" not in mat:
        raise DatasetLayoutError(f"{annotation_path} has no struct 'anno'\n{LAYOUT}")
    anno = np.asarray(mat["anno"]).ravel()[0]
    objects = _struct_elements(anno["objects"])
    if not objects:
        raise DatasetLayoutError(f"{annotation_path}: anno.objects is empty")
    label = np.zeros(np.asarray(objects[0]["mask"]).shape, dtype=np.uint8)
    for obj in objects:
        if matlab_string(obj["class"]) != "person":
            continue
        for part in _struct_elements(obj["parts"]):
            name = matlab_string(part["part_name"])
            if name not in PART_TO_CLASS:
                raise LabelValueError(f"{annotation_path}: unknown person part {name!r}")
            mask = np.asarray(part["mask"])
            if mask.shape != label.shape:
                raise LabelValueError(f"{annotation_path}: part {name!r} mask is {mask.shape}, not {label.shape}")
            label[mask > 0] = PART_TO_CLASS[name]
    return label


def prepare(raw: Path, out: Path) -> None:
    """PASCAL-Part annotations + VOC images + id lists (see LAYOUT) -> the released Person-Part layout."""
    from tqdm import tqdm

    raw, out = Path(raw), Path(out)
    require_path(raw, INFO, "raw release folder")
    splits = {split: read_split_list(raw / name, INFO) for split, name in SPLIT_LISTS.items()}
    require_path(raw / "Annotations_Part", INFO, "PASCAL-Part annotations")
    require_path(raw / "JPEGImages", INFO, "VOC 2010 images")
    carry_standin_marker(raw, out, INFO)
    ids = list(dict.fromkeys(splits["train"] + splits["test"]))
    for image_id in tqdm(ids, desc="person_part", unit="img"):
        image_out = out / "JPEGImages" / f"{image_id}.jpg"
        label_out = out / "SegmentationPart" / f"{image_id}.png"
        if image_out.exists() and label_out.exists():
            continue
        image_in = require_path(raw / "JPEGImages" / f"{image_id}.jpg", INFO, "image")
        label = part_label(require_path(raw / "Annotations_Part" / f"{image_id}.mat", INFO, "part annotation"))
        write_converted_pair(image_in, label, image_out, label_out, INFO, what="annotation", palette=INFO.palette)
    for split, name in SPLIT_LISTS.items():
        write_id_list(out / name, splits[split])


# --- stand-in

_PARTS_OF_CLASS = {c: [p for p, k in PART_TO_CLASS.items() if k == c] for c in range(1, len(CLASS_NAMES))}


def _struct_array(rows: list[tuple], fields: tuple[str, ...]) -> np.ndarray:
    """A 1xN struct array for scipy.io.savemat (an empty one for no rows)."""
    array = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        array[0, i] = row
    return array


def _standin_annotation(rng: np.random.Generator, label: np.ndarray, image_id: str) -> np.ndarray:
    """An `anno` struct that `part_label` folds back into `label`.

    Each Person-Part class is split into vertical bands of its fine PASCAL-Part names (e.g. head ->
    head, hair, leye, ...), so the folding is exercised. A dog with a "head" part and a part-less
    chair sit on background pixels: their parts must not show up.
    """
    height, width = label.shape
    band = np.arange(width)[None, :].repeat(height, 0)
    parts = []
    for cls, names in _PARTS_OF_CLASS.items():
        region = label == cls
        for j, name in enumerate(names):
            mask = region & (band * len(names) // width == j)
            if mask.any():
                parts.append((name, mask.astype(np.uint8)))
    part_fields = ("part_name", "mask")
    person = ("person", np.uint8(15), (label > 0).astype(np.uint8), _struct_array(parts, part_fields))
    background = label == 0
    y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
    box = np.zeros_like(background)
    box[y0 : y0 + height // 3, x0 : x0 + width // 3] = True
    dog_mask = (background & box).astype(np.uint8)
    dog = ("dog", np.uint8(12), dog_mask, _struct_array([("head", dog_mask)], part_fields))
    chair = ("chair", np.uint8(9), (background & ~box).astype(np.uint8), np.zeros((0, 0)))
    objects = _struct_array([dog, person, chair], ("class", "class_ind", "mask", "parts"))
    return _struct_array([(image_id, objects)], ("imname", "objects"))


def write_standin(out: Path, *, train: int, val: int, size: tuple[int, int], seed: int) -> None:
    """A miniature release in the RAW layout (see LAYOUT): `train` + `val` images, `size` = (H, W).

    Scenes come from `standin.paint_scene` with the 7 classes (0 = background) and are written as
    PASCAL-Part annotations. `val` images form the test list (val_id.txt).
    """
    from scipy.io import savemat

    if train < 1 or val < 1:
        raise ValueError("person_part stand-in needs at least one train and one test image")
    out = Path(out)
    height, width = size
    rng = np.random.default_rng(seed)
    ids = [f"2008_{n:06d}" for n in range(1, train + val + 1)]
    for image_id in ids:
        image, label = paint_scene(rng, height, width, len(CLASS_NAMES), background=0)
        save_jpeg(out / "JPEGImages" / f"{image_id}.jpg", image)
        anno = _standin_annotation(rng, label, image_id)
        with atomic_path(out / "Annotations_Part" / f"{image_id}.mat") as tmp:
            savemat(tmp, appendmat=False, mdict={"anno": anno}, do_compression=True)
    order = rng.permutation(len(ids))
    write_id_list(out / SPLIT_LISTS["train"], sorted(ids[i] for i in order[:train]))
    write_id_list(out / SPLIT_LISTS["test"], sorted(ids[i] for i in order[train:]))
    write_standin_marker(out, INFO.name, seed)
