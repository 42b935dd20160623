"""Cityscapes (Cordts et al., CVPR 2016): 19 classes, fine annotations (paper, Sec. 4.4, Table 5).

Layout as unpacked from leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip. The ground truth
stores the 34 *labelIds*; training and scoring use the 19 *trainIds* of the official
cityscapesScripts (`cityscapesscripts/helpers/labels.py`), every other id is void (255).
`refinenet prepare cityscapes` writes the `*_gtFine_labelTrainIds.png` files those scripts would
(`createTrainIdLabelImgs.py`); the loader prefers them and otherwise maps labelIds on the fly.

Test split: its annotations are withheld (the shipped gtFine/test files are placeholders), so
`dataset(root, "test")` lists the images with no label (every pixel 255, `has_labels` False).
Predictions for the evaluation server go back to labelIds with `TRAINID_TO_LABELID`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refinenet.atomic import save_png
from refinenet.data import standin
from refinenet.data.common import (
    IGNORE_INDEX,
    DatasetInfo,
    DatasetLayoutError,
    SegmentationFiles,
    apply_lut,
    identity_lut,
    read_label,
    require_path,
    resolve_split,
    write_standin_marker,
)
from refinenet.data.files import carry_standin_marker, link_or_copy

# (name, labelId, trainId, colour) from cityscapesScripts' labels table; trainId 255 = void.
# License plate (labelId -1) never appears in the labelIds images and is left out.
LABELS = (
    ("unlabeled", 0, 255, (0, 0, 0)),
    ("ego vehicle", 1, 255, (0, 0, 0)),
    ("rectification border", 2, 255, (0, 0, 0)),
    ("out of roi", 3, 255, (0, 0, 0)),
    ("static", 4, 255, (0, 0, 0)),
    ("dynamic", 5, 255, (111, 74, 0)),
    ("ground", 6, 255, (81, 0, 81)),
    ("road", 7, 0, (128, 64, 128)),
    ("sidewalk", 8, 1, (244, 35, 232)),
    ("parking", 9, 255, (250, 170, 160)),
    ("rail track", 10, 255, (230, 150, 140)),
    ("building", 11, 2, (70, 70, 70)),
    ("wall", 12, 3, (102, 102, 156)),
    ("fence", 13, 4, (190, 153, 153)),
    ("guard rail", 14, 255, (180, 165, 180)),
    ("bridge", 15, 255, (150, 100, 100)),
    ("tunnel", 16, 255, (150, 120, 90)),
    ("pole", 17, 5, (153, 153, 153)),
    ("polegroup", 18, 255, (153, 153, 153)),
    ("traffic light", 19, 6, (250, 170, 30)),
    ("traffic sign", 20, 7, (220, 220, 0)),
    ("vegetation", 21, 8, (107, 142, 35)),
    ("terrain", 22, 9, (152, 251, 152)),
    ("sky", 23, 10, (70, 130, 180)),
    ("person", 24, 11, (220, 20, 60)),
    ("rider", 25, 12, (255, 0, 0)),
    ("car", 26, 13, (0, 0, 142)),
    ("truck", 27, 14, (0, 0, 70)),
    ("bus", 28, 15, (0, 60, 100)),
    ("caravan", 29, 255, (0, 0, 90)),
    ("trailer", 30, 255, (0, 0, 110)),
    ("train", 31, 16, (0, 80, 100)),
    ("motorcycle", 32, 17, (0, 0, 230)),
    ("bicycle", 33, 18, (119, 11, 32)),
)
_TRAIN_LABELS = sorted((t, name, lid, colour) for name, lid, t, colour in LABELS if t != IGNORE_INDEX)

# trainId -> labelId, for writing evaluation-server submissions.
TRAINID_TO_LABELID = tuple(lid for _, _, lid, _ in _TRAIN_LABELS)


def _labelid_lut() -> np.ndarray:
    lut = np.full(256, -1, dtype=np.int16)
    for _, label_id, train_id, _ in LABELS:
        lut[label_id] = train_id
    lut[IGNORE_INDEX] = IGNORE_INDEX  # -1 (license plate) stored as uint8
    return lut


LABELID_TO_TRAINID = _labelid_lut()

SPLITS = {"train": 2975, "val": 500, "test": 1525}
IMAGE_SUFFIX = "_leftImg8bit.png"
LABELIDS_SUFFIX = "_gtFine_labelIds.png"
TRAINIDS_SUFFIX = "_gtFine_labelTrainIds.png"

INFO = DatasetInfo(
    name="cityscapes",
    # the authors' test-time short-edge clamp (guosheng/refinenet main/demo_predict_mscale_cityscapes.m,
    # `run_config.input_img_short_edge_min/max`; an older version of that file has 450 / 1100)
    test_short_edge=(600, 1100),
    class_names=tuple(name for _, name, _, _ in _TRAIN_LABELS),
    palette=tuple(colour for _, _, _, colour in _TRAIN_LABELS),
    splits=dict(SPLITS),
    layout=(
        "  leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png\n"
        "  gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png\n"
        "    (or *_gtFine_labelTrainIds.png from `refinenet prepare cityscapes`, used when present)\n"
        "  test labels are withheld: the test split lists images only"
    ),
    notes="34 labelIds -> 19 trainIds (cityscapesScripts labels.py), all other ids void (255).",
    extra={"trainid_to_labelid": TRAINID_TO_LABELID},
)


def trainids_to_labelids(prediction: np.ndarray) -> np.ndarray:
    """A trainId map (e.g. a prediction) as labelIds for the evaluation server; void -> 0 (unlabeled)."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[: len(TRAINID_TO_LABELID)] = TRAINID_TO_LABELID
    return lut[np.asarray(prediction, dtype=np.uint8)]


def _images(root: Path, split: str) -> list[Path]:
    folder = require_path(Path(root) / "leftImg8bit" / split, INFO, "images")
    return sorted(folder.glob(f"*/*{IMAGE_SUFFIX}"))


def _label_path(root: Path, split: str, image: Path, suffix: str) -> Path:
    stem = image.name[: -len(IMAGE_SUFFIX)]
    return Path(root) / "gtFine" / split / image.parent.name / f"{stem}{suffix}"


def dataset(root: Path, split: str, transform=None) -> SegmentationFiles:
    """Cityscapes `split` (train, val or test) under `root`; labels are trainIds (255 = void)."""
    root = require_path(Path(root), INFO, "dataset root")
    split = resolve_split(split, INFO)
    images = _images(root, split)
    if split == "test":
        return SegmentationFiles([(image, None) for image in images], INFO, transform=transform, root=root, split=split)
    require_path(root / "gtFine" / split, INFO, "labels")
    train_ids = [_label_path(root, split, image, TRAINIDS_SUFFIX) for image in images]
    if images and all(path.is_file() for path in train_ids):
        pairs, lut = list(zip(images, train_ids)), identity_lut(INFO.num_classes)
    else:
        label_ids = [_label_path(root, split, image, LABELIDS_SUFFIX) for image in images]
        for path in label_ids:
            require_path(path, INFO, "label of an image in leftImg8bit")
        pairs, lut = list(zip(images, label_ids)), LABELID_TO_TRAINID
    return SegmentationFiles(pairs, INFO, lut=lut, transform=transform, root=root, split=split)


def prepare(raw: Path, out: Path) -> None:
    """Write `*_gtFine_labelTrainIds.png` for train and val into `out`, with links to the rest of `raw`.

    `out` may equal `raw` (the trainIds files are then written next to the labelIds, like
    cityscapesScripts does). Re-runnable: finished files are skipped; every file is written atomically.
    """
    from tqdm import tqdm

    raw, out = require_path(Path(raw), INFO, "raw Cityscapes folder"), Path(out)
    jobs = []
    for split in SPLITS:
        if not (raw / "leftImg8bit" / split).is_dir():
            continue
        jobs += [(split, image) for image in _images(raw, split)]
    if not jobs:
        raise DatasetLayoutError(f"cityscapes: no *{IMAGE_SUFFIX} under {raw / 'leftImg8bit'}\n{INFO.layout}")
    carry_standin_marker(raw, out, INFO)
    for split, image in tqdm(jobs, desc="cityscapes labelIds -> trainIds", unit="image"):
        link_or_copy(image, out / image.relative_to(raw), symbolic=True)
        if split == "test":
            continue
        label_ids = require_path(_label_path(raw, split, image, LABELIDS_SUFFIX), INFO, "label")
        link_or_copy(label_ids, _label_path(out, split, image, LABELIDS_SUFFIX), symbolic=True)
        target = _label_path(out, split, image, TRAINIDS_SUFFIX)
        if not target.is_file():
            train_ids = apply_lut(read_label(label_ids), LABELID_TO_TRAINID, label_ids)
            save_png(target, train_ids.astype(np.uint8))


# --- stand-in: street-like scenes in the raw layout, labelIds including void ids.

_STANDIN_CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt", "lindau"), "test": ("berlin",)}
# Void labelIds the stand-in paints as regions of their own: unlabeled, static, parking, guard rail.
_STANDIN_VOID_IDS = (0, 4, 9, 14)
_EGO_VEHICLE, _RECTIFICATION_BORDER = 1, 2


def _standin_labelids(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    # Scene classes 0..18 are the trainIds, 19.. the void ids above, each with its own look.
    image, scene = standin.paint_scene(rng, height, width, INFO.num_classes + len(_STANDIN_VOID_IDS), background=None)
    to_labelid = np.array(TRAINID_TO_LABELID + _STANDIN_VOID_IDS, dtype=np.uint8)
    label = to_labelid[scene]
    # The car's bonnet at the bottom and a 1 px rectified-image border, as in the real frames.
    bonnet = max(1, height // 12)
    label[-bonnet:] = _EGO_VEHICLE
    image[-bonnet:] = (30, 30, 34)
    label[:, :1] = label[:, -1:] = _RECTIFICATION_BORDER
    image[:, :1] = image[:, -1:] = 0
    return image, label


def write_standin(out: Path, *, train: int, val: int, size: tuple[int, int], seed: int) -> None:
    """Raw layout (labelIds, no trainIds): run `prepare` on it, or load it directly."""
    out, (height, width) = Path(out), size
    rng = np.random.default_rng(seed)
    counts = {"train": train, "val": val, "test": max(1, val // 4)}
    for split, count in counts.items():
        cities = _STANDIN_CITIES[split]
        for index in range(count):
            city = cities[index % len(cities)]
            stem = f"{city}_{index // len(cities):06d}_000019"
            image, label = _standin_labelids(rng, height, width)
            save_png(out / "leftImg8bit" / split / city / f"{stem}{IMAGE_SUFFIX}", image)
            if split != "test":  # the real test annotations are withheld
                save_png(out / "gtFine" / split / city / f"{stem}{LABELIDS_SUFFIX}", label)
    write_standin_marker(out, INFO.name, seed)
