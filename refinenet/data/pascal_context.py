"""PASCAL-Context, 60 classes (paper, Sec. 4.2 and Table 6): whole-scene labels for VOC 2010 images.

The release [Mottaghi et al., CVPR 2014] labels every pixel with one of 459 categories: `trainval/
<id>.mat` holds `LabelMap` (uint16, HxW), ids into `labels.txt` ("1: accordion", "2: aeroplane",
..., 1-based; 0 = unlabelled). The 60-class task keeps the 59 categories of `59_labels.txt` and
maps everything else to background (class 0); its splits are VOC 2010's train (4998) and val
(5105) images, the latter being what the paper calls its test set.

Class order (both appear in the wild, so both are read):
- ours = the release's `59_labels.txt` order, as FCN's loader uses it (`pascalcontext_layers.py`,
  shelhamer/fcn.berkeleyvision.org): 0 background, 1 aeroplane, 2 bicycle, ..., 11 table, ...,
  20 tvmonitor, 21 bag, ..., 59 wood. `prepare` writes this order.
- mmsegmentation's `SegmentationClassContext/*.png` (its `tools/.../pascal_context.py` converter,
  via the Detail API): 0 background, 1..59 = the 59 ids sorted by their 459-id, which is
  alphabetical (1 aeroplane, 2 bag, 3 bed, 4 bedclothes, ...); its `PascalContextDataset.CLASSES`
  lists that order (`reduce_zero_label` False). `dataset()` remaps it to ours with a LUT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from tqdm import tqdm

from refinenet.atomic import atomic_path, save_jpeg, save_png, write_text_atomic
from refinenet.data.common import (
    DatasetInfo,
    DatasetLayoutError,
    LabelValueError,
    SegmentationFiles,
    identity_lut,
    listed_files,
    read_split_list,
    require_path,
    require_voc_devkit,
    resolve_split,
    voc_colormap,
    write_standin_marker,
)
from refinenet.data.files import carry_standin_marker, link_or_copy, write_id_list
from refinenet.data.standin import paint_scene

# The 59 classes in 59_labels.txt order, each with its id in the 459-line labels.txt. The ids are
# those of FCN's name lookup and of mmsegmentation's / the Detail API's `_mapping` list.
CONTEXT_59 = (
    ("aeroplane", 2), ("bicycle", 23), ("bird", 25), ("boat", 31), ("bottle", 34), ("bus", 45),
    ("car", 59), ("cat", 65), ("chair", 72), ("cow", 98), ("table", 397), ("dog", 113),
    ("horse", 207), ("motorbike", 258), ("person", 284), ("pottedplant", 308), ("sheep", 347),
    ("sofa", 368), ("train", 416), ("tvmonitor", 427), ("bag", 9), ("bed", 18), ("bench", 22),
    ("book", 33), ("building", 44), ("cabinet", 46), ("ceiling", 68), ("cloth", 80),
    ("computer", 85), ("cup", 104), ("door", 115), ("fence", 144), ("floor", 158), ("flower", 159),
    ("food", 162), ("grass", 187), ("ground", 189), ("keyboard", 220), ("light", 232),
    ("mountain", 259), ("mouse", 260), ("curtain", 105), ("platform", 296), ("sign", 355),
    ("plate", 295), ("road", 324), ("rock", 326), ("shelves", 349), ("sidewalk", 354),
    ("sky", 360), ("snow", 366), ("bedclothes", 19), ("track", 415), ("tree", 420),
    ("truck", 424), ("wall", 440), ("water", 445), ("window", 454), ("wood", 458),
)  # fmt: skip
NUM_RAW_LABELS = 459  # lines of labels.txt

# 59_labels.txt spells three classes differently from labels.txt (FCN's loader maps them back).
LABELS_59_SPELLING = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}

CLASS_NAMES = ("background",) + tuple(name for name, _ in CONTEXT_59)
# mmsegmentation's order: background, then the 59 sorted by 459-id (= alphabetical).
MMSEG_CLASS_NAMES = ("background",) + tuple(name for name, _ in sorted(CONTEXT_59, key=lambda c: c[1]))

LAYOUT = """\
ROOT/VOCdevkit/VOC2010/
  JPEGImages/<id>.jpg
  ImageSets/SegmentationContext/{train,val}.txt
  SegmentationClassContext60/<id>.png   L PNG: 0 background, 1..59 in 59_labels.txt order (prepare)
    or mmsegmentation's SegmentationClassContext/<id>.png (alphabetical order; remapped on load)
Made by `refinenet prepare pascal_context --raw RAW --out ROOT` from the release:
RAW/
  VOCdevkit/VOC2010/JPEGImages/<id>.jpg
  VOCdevkit/VOC2010/ImageSets/SegmentationContext/{train,val}.txt
    or VOCdevkit/VOC2010/ImageSets/Main/{train,val}.txt (VOC 2010's own lists: the same 4998/5105)
  trainval/<id>.mat    LabelMap: uint16 HxW, ids into labels.txt (0 = unlabelled)
  labels.txt           459 lines "N: name"
  59_labels.txt        optional, checked when present: 59 lines "N: name"
  (trainval/, labels.txt and 59_labels.txt may also sit in RAW/VOCdevkit/VOC2010/)"""

INFO = DatasetInfo(
    name="pascal_context",
    # the authors' test-time short-edge clamp (guosheng/refinenet main/demo_predict_mscale_pascalcontext.m,
    # `run_config.input_img_short_edge_min/max`)
    test_short_edge=(450, 800),
    class_names=CLASS_NAMES,
    palette=voc_colormap(len(CLASS_NAMES)),
    splits={"train": 4998, "val": 5105},
    layout=LAYOUT,
    notes=(
        "60 classes: 0 background + the 59 of 59_labels.txt in that file's order (FCN's order); every "
        "other of the 459 raw ids (and 0, unlabelled) is background; no void label. val (5105) is the "
        "paper's test set. mmsegmentation's SegmentationClassContext PNGs use alphabetical order (the 59 "
        "sorted by raw id) and are remapped on load. Palette: the VOC devkit colour map."
    ),
    extra={"raw_ids": tuple(i for _, i in CONTEXT_59), "mmseg_class_names": MMSEG_CLASS_NAMES},
)

VOC_SUBDIR = Path("VOCdevkit") / "VOC2010"
SPLIT_DIR = Path("ImageSets") / "SegmentationContext"
LABEL_DIR = "SegmentationClassContext60"
MMSEG_LABEL_DIR = "SegmentationClassContext"


def raw_to_train_lut() -> np.ndarray:
    """459-id -> 60-class id: the 59 kept classes -> 1..59, everything else (and 0) -> 0."""
    lut = np.zeros(NUM_RAW_LABELS + 1, dtype=np.int64)
    for train_id, (_, raw_id) in enumerate(CONTEXT_59, start=1):
        lut[raw_id] = train_id
    return lut


def mmseg_to_train_lut() -> np.ndarray:
    """mmsegmentation's stored value (alphabetical order) -> our class id; 255 stays void."""
    lut = identity_lut(1)  # 0 -> 0, 255 -> 255, everything else undefined
    ours = {raw_id: train_id for train_id, (_, raw_id) in enumerate(CONTEXT_59, start=1)}
    for stored, raw_id in enumerate(sorted(ours), start=1):
        lut[stored] = ours[raw_id]
    return lut


def dataset(root: Path, split: str, transform=None) -> SegmentationFiles:
    """The PASCAL-Context `split` under `root` (the folder holding `VOCdevkit/`), 60 classes."""
    root = Path(root)
    split = resolve_split(split, INFO)
    voc, images = require_voc_devkit(root, VOC_SUBDIR, INFO)
    if (voc / LABEL_DIR).is_dir():
        labels, lut = voc / LABEL_DIR, identity_lut(INFO.num_classes)
    elif (voc / MMSEG_LABEL_DIR).is_dir():
        labels, lut = voc / MMSEG_LABEL_DIR, mmseg_to_train_lut()
    else:
        raise DatasetLayoutError(
            f"pascal_context: no 60-class labels under {voc}: missing {voc / LABEL_DIR} "
            f"(or mmsegmentation's {voc / MMSEG_LABEL_DIR}). Convert the release's trainval/*.mat with "
            f"`refinenet prepare pascal_context --raw RAW --out OUT` and load OUT.\n"
            f"Expected layout:\n{INFO.layout}"
        )
    ids = read_split_list(voc / SPLIT_DIR / f"{split}.txt", INFO)
    return listed_files(INFO, root, split, ids, images, labels, lut=lut, transform=transform)


# --- converter: trainval/*.mat (459 ids) -> 60-class PNGs


def prepare(raw: Path, out: Path) -> None:
    """Convert the release under `raw` (see LAYOUT) into `out/VOCdevkit/VOC2010/`:
    SegmentationClassContext60/<id>.png (60 classes, our order), JPEGImages/<id>.jpg (hard links,
    copies across file systems) and ImageSets/SegmentationContext/{train,val}.txt. `labels.txt`
    (and `59_labels.txt` if present) are checked against the built-in class table first.
    Re-running skips finished files; every file appears whole (temp file + os.replace).
    """
    raw, out = Path(raw), Path(out)
    voc = require_path(raw / VOC_SUBDIR, INFO, "VOC2010 folder in --raw")
    context = _context_dir(raw)
    check_label_names(context)
    splits = {split: read_split_list(_raw_split_list(voc, split), INFO) for split in INFO.splits}
    carry_standin_marker(raw, out, INFO)
    lut = raw_to_train_lut()
    out_voc = out / VOC_SUBDIR
    all_ids = sorted(set(splits["train"]) | set(splits["val"]))
    for i in tqdm(all_ids, desc="PASCAL-Context trainval/*.mat -> 60-class PNG", unit="img"):
        target = out_voc / LABEL_DIR / f"{i}.png"
        if not target.is_file():
            raw_label = read_label_map(require_path(context / "trainval" / f"{i}.mat", INFO, "annotation"))
            save_png(target, lut[raw_label].astype(np.uint8))
        link_or_copy(require_path(voc / "JPEGImages" / f"{i}.jpg", INFO, "image"), out_voc / "JPEGImages" / f"{i}.jpg")
    for split, ids in splits.items():
        write_id_list(out_voc / SPLIT_DIR / f"{split}.txt", ids)


def _context_dir(raw: Path) -> Path:
    """Where trainval/ and labels.txt are: RAW itself or RAW/VOCdevkit/VOC2010."""
    for folder in (raw, raw / VOC_SUBDIR):
        if (folder / "trainval").is_dir():
            return folder
    return require_path(raw / "trainval", INFO, "PASCAL-Context annotations (trainval.tar.gz)").parent


def _raw_split_list(voc: Path, split: str) -> Path:
    for folder in (SPLIT_DIR, Path("ImageSets") / "Main"):
        if (voc / folder / f"{split}.txt").is_file():
            return voc / folder / f"{split}.txt"
    return require_path(voc / SPLIT_DIR / f"{split}.txt", INFO, "split list (or ImageSets/Main)")


def read_numbered_names(path: Path) -> dict[int, str]:
    """Lines "N: name" -> {N: name}; names compared without spaces or case, as FCN's loader does."""
    names = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        number, sep, name = line.partition(":")
        if not sep or not number.strip().isdigit():
            raise ValueError(f"{path}: expected lines like '2: aeroplane', got {line!r}")
        names[int(number)] = name.strip()
    return names


def _normal(name: str) -> str:
    return name.replace(" ", "").lower()


def check_label_names(context: Path) -> None:
    """labels.txt (and 59_labels.txt if present) must name our classes where we expect them, so a
    different release numbering can never silently scramble the classes."""
    raw_names = read_numbered_names(require_path(context / "labels.txt", INFO, "the 459 label names"))
    if len(raw_names) != NUM_RAW_LABELS:
        raise ValueError(f"{context / 'labels.txt'}: {len(raw_names)} labels, expected {NUM_RAW_LABELS}")
    wrong = [(i, n, raw_names.get(i)) for n, i in CONTEXT_59 if _normal(raw_names.get(i, "")) != n]
    if wrong:
        raise ValueError(f"{context / 'labels.txt'}: (id, expected, found) differ: {wrong[:5]}")
    task_file = context / "59_labels.txt"
    if task_file.is_file():
        task = [_normal(n) for _, n in sorted(read_numbered_names(task_file).items())]
        task = [LABELS_59_SPELLING.get(n, n) for n in task]
        if task != list(CLASS_NAMES[1:]):
            raise ValueError(f"{task_file}: the 59 classes differ from the expected order {CLASS_NAMES[1:]}")


def read_label_map(path: Path) -> np.ndarray:
    """`LabelMap` (HxW ids into labels.txt) from one trainval/*.mat, checked to be in [0, 459]."""
    try:
        label = np.asarray(scipy.io.loadmat(path)["LabelMap"])
    except (OSError, ValueError, KeyError) as err:
        raise OSError(f"cannot read PASCAL-Context annotation {path} (expected variable LabelMap): {err}") from err
    if label.ndim != 2:
        raise LabelValueError(f"{path}: LabelMap has shape {label.shape}, expected HxW")
    if label.min(initial=0) < 0 or label.max(initial=0) > NUM_RAW_LABELS:
        bad = sorted(int(v) for v in np.unique(label[(label < 0) | (label > NUM_RAW_LABELS)]))[:10]
        raise LabelValueError(f"{path}: LabelMap holds ids {bad} outside labels.txt (0..{NUM_RAW_LABELS})")
    return label.astype(np.int64)


# --- stand-in: the release layout, with 60-class scenes written as 459-ids


def write_standin(out: Path, *, train: int, val: int, size: tuple[int, int], seed: int) -> None:
    """Synthetic PASCAL-Context under `out` in the release layout (see LAYOUT, RAW part), so that
    `prepare(out, OUT2)` runs: JPEGs, VOC 2010's ImageSets/Main lists, trainval/*.mat whose
    LabelMap holds 459-ids (the 59 classes by their ids; background as 0 in the left half and a
    raw id outside the 59 in the right half, both of which must become class 0), labels.txt (the
    59 real names at their ids, placeholders elsewhere) and 59_labels.txt with the release's own
    spellings. `size` is (height, width)."""
    out = Path(out)
    height, width = size
    rng = np.random.default_rng(seed)
    voc = out / VOC_SUBDIR
    kept = {raw_id for _, raw_id in CONTEXT_59}
    outside = np.array([i for i in range(1, NUM_RAW_LABELS + 1) if i not in kept])
    to_raw = np.array([0] + [raw_id for _, raw_id in CONTEXT_59], dtype=np.uint16)
    ids = [f"{2008 + k % 3}_{k:06d}" for k in range(train + val)]
    for i in ids:
        # Scene-parsing regions with one of them background: PASCAL-Context labels most pixels with one
        # of its 59 classes. Background-only canvases with a few objects (VOC's scenes) left most of the
        # 59 classes too rare for a stand-in model to learn them (stand-in mean IoU 6.8 vs 20 with regions,
        # RefineNet-50, 160 iterations).
        image, label = paint_scene(rng, height, width, INFO.num_classes, background=0, regions=True)
        label_map = to_raw[label]
        background = label == 0
        background[:, : width // 2] = False
        label_map[background] = rng.choice(outside)
        save_jpeg(voc / "JPEGImages" / f"{i}.jpg", image)
        with atomic_path(out / "trainval" / f"{i}.mat") as tmp:
            scipy.io.savemat(tmp, {"LabelMap": label_map}, appendmat=False, do_compression=True)
    for split, split_ids in (("train", ids[:train]), ("val", ids[train:])):
        write_id_list(voc / "ImageSets" / "Main" / f"{split}.txt", split_ids)
    raw_names = {raw_id: name for name, raw_id in CONTEXT_59}
    write_text_atomic(
        out / "labels.txt",
        "".join(f"{n}: {raw_names.get(n, f'standin-other-{n}')}\n" for n in range(1, NUM_RAW_LABELS + 1)),
    )
    spelled = {v: k for k, v in LABELS_59_SPELLING.items()}
    write_text_atomic(
        out / "59_labels.txt", "".join(f"{k}: {spelled.get(n, n)}\n" for k, n in enumerate(CLASS_NAMES[1:], 1))
    )
    write_standin_marker(out, INFO.name, seed)
