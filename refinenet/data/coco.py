"""MS COCO 2014 read as PASCAL VOC's 21 classes: the extra training data of the paper's VOC models (Sec. 4.2,
"augmented ... with the training data from the MS COCO dataset"; Table 4's first training stage).

Layout as unpacked from cocodataset.org's train2014.zip, val2014.zip and annotations_trainval2014.zip:

    ROOT/train2014/COCO_train2014_<12 digits>.jpg
    ROOT/val2014/COCO_val2014_<12 digits>.jpg
    ROOT/annotations/instances_{train,val}2014.json

Labels are drawn from the instance annotations with pycocotools, on load (no conversion step):
  * the 20 COCO categories that are VOC classes, matched by COCO category id (`VOC_CATEGORY_IDS`; the file's
    category names are checked against them), get their VOC class id;
  * every other category is background (0): it is simply not drawn;
  * crowd regions (`iscrowd=1`) of the VOC categories are 255 (void, left out of the loss): a crowd's mask
    covers many instances and the background between them;
  * instances are drawn largest first, so a small object in front of a large one stays visible;
  * only images with at least one non-crowd VOC-class instance are listed (the rest teach nothing about VOC).

The paper does not say how its COCO labels were made; this is the usual recipe (e.g. DeepLab's COCO
pre-training for VOC). `train` is COCO train2014, `val` is COCO val2014.
"""

from __future__ import annotations

import contextlib
import io
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from refinenet.atomic import save_jpeg, write_text_atomic
from refinenet.data.common import (
    DatasetInfo,
    DatasetLayoutError,
    SegmentationFiles,
    require_path,
    resolve_split,
    voc_colormap,
    write_standin_marker,
)
from refinenet.data.standin import paint_scene
from refinenet.data.voc2012 import CLASS_NAMES as VOC_CLASS_NAMES

# VOC class id -> (COCO category id, COCO's name for it), in VOC's class order (1..20).
VOC_CATEGORIES = (
    (5, "airplane"), (2, "bicycle"), (16, "bird"), (9, "boat"), (44, "bottle"), (6, "bus"), (3, "car"),
    (17, "cat"), (62, "chair"), (21, "cow"), (67, "dining table"), (18, "dog"), (19, "horse"), (4, "motorcycle"),
    (1, "person"), (64, "potted plant"), (20, "sheep"), (63, "couch"), (7, "train"), (72, "tv"),
)  # fmt: skip
VOC_CATEGORY_IDS = {coco_id: voc_id for voc_id, (coco_id, _) in enumerate(VOC_CATEGORIES, start=1)}

SPLIT_FOLDERS = {"train": "train2014", "val": "val2014"}

LAYOUT = """\
ROOT/
  train2014/COCO_train2014_<12 digits>.jpg
  val2014/COCO_val2014_<12 digits>.jpg
  annotations/instances_train2014.json, instances_val2014.json
(as unpacked from train2014.zip, val2014.zip and annotations_trainval2014.zip; `refinenet download coco`)"""

INFO = DatasetInfo(
    name="coco",
    test_short_edge=(450, 800),  # VOC's: the COCO stage trains VOC's model
    class_names=VOC_CLASS_NAMES,
    palette=voc_colormap(len(VOC_CLASS_NAMES)),
    # COCO 2014 images holding at least one VOC-class instance; the paper gives no count, these are the
    # whole splits' sizes (82783 / 40504) as upper bounds
    splits={"train": 82783, "val": 40504},
    layout=LAYOUT,
    notes=(
        "MS COCO 2014 read as VOC's 21 classes: the 20 VOC categories by COCO category id, every other category "
        "background, crowd regions of VOC categories 255; only images with a VOC-class instance. Training data "
        "for Table 4's COCO stage (paper Sec. 4.2)."
    ),
)


def annotation_file(root: Path, split: str) -> Path:
    return Path(root) / "annotations" / f"instances_{SPLIT_FOLDERS[split]}.json"


@lru_cache(maxsize=4)
def _load_coco(path: str, mtime: float):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
        return COCO(path)


def load_coco(path: Path):
    """The pycocotools COCO index of an instances_*.json, loaded once per process; a bad file names itself."""
    path = require_path(path, INFO, "instance annotations")
    try:
        coco = _load_coco(str(path), path.stat().st_mtime)
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetLayoutError(f"coco: {path} is not a COCO instances file ({err})") from err
    check_categories(coco.cats, path)
    return coco


def check_categories(cats: dict, path: Path) -> None:
    """The file's names for the 20 VOC category ids are COCO's: a file with another numbering is refused."""
    wrong = [(cid, name, cats.get(cid, {}).get("name")) for cid, name in VOC_CATEGORIES
             if cid in cats and cats[cid].get("name") != name]
    if wrong:
        cid, expected, found = wrong[0]
        raise DatasetLayoutError(f"coco: {path} names category id {cid} {found!r}, COCO's is {expected!r}: "
                                 "not COCO's category numbering")


def voc_label(height: int, width: int, annotations: list[dict], decode) -> np.ndarray:
    """HxW uint8 VOC label from COCO instance annotations (see the module doc); `decode(ann)` gives its mask."""
    label = np.zeros((height, width), dtype=np.uint8)
    voc = [a for a in annotations if a["category_id"] in VOC_CATEGORY_IDS]
    objects = sorted((a for a in voc if not a.get("iscrowd", 0)), key=lambda a: -a.get("area", 0))
    for ann in objects:
        label[decode(ann) > 0] = VOC_CATEGORY_IDS[ann["category_id"]]
    for ann in voc:
        if ann.get("iscrowd", 0):
            label[decode(ann) > 0] = INFO.ignore_index
    return label


class CocoFiles(SegmentationFiles):
    """COCO images with labels drawn from their instance annotations (the pairs' label path is the .json)."""

    def __init__(self, pairs, annotations: list[list[dict]], sizes: list[tuple[int, int]], **kwargs):
        super().__init__(pairs, INFO, **kwargs)
        self.annotations, self.sizes = annotations, sizes

    def load_label(self, index: int) -> np.ndarray:
        from pycocotools import mask as mask_utils

        height, width = self.sizes[index]

        def decode(ann):
            segmentation = ann["segmentation"]
            if isinstance(segmentation, list):  # polygons
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
            elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE (crowds)
                rle = mask_utils.frPyObjects(segmentation, height, width)
            else:
                rle = segmentation
            return mask_utils.decode(rle)

        return voc_label(height, width, self.annotations[index], decode).astype(np.int64)


def dataset(root: Path, split: str, transform=None) -> CocoFiles:
    """COCO 2014 `split` (train / val) under `root`, the images holding a VOC class, labelled as VOC."""
    root = Path(root)
    split = resolve_split(split, INFO)
    require_path(root, INFO, "dataset root")
    images = require_path(root / SPLIT_FOLDERS[split], INFO, "images")
    json_path = annotation_file(root, split)
    coco = load_coco(json_path)
    pairs, annotations, sizes = [], [], []
    for image_id in sorted(coco.imgs):
        anns = coco.imgToAnns.get(image_id, [])
        if not any(a["category_id"] in VOC_CATEGORY_IDS and not a.get("iscrowd", 0) for a in anns):
            continue
        info = coco.imgs[image_id]
        pairs.append((images / info["file_name"], json_path))
        annotations.append([a for a in anns if a["category_id"] in VOC_CATEGORY_IDS])
        sizes.append((int(info["height"]), int(info["width"])))
    missing = [str(image) for image, _ in pairs[:1000] if not image.is_file()]
    if missing:
        raise DatasetLayoutError(f"coco: images listed in {json_path} are missing, first {missing[0]}.\n"
                                 f"Expected layout under the dataset root:\n{LAYOUT}")
    return CocoFiles(pairs, annotations, sizes, transform=transform, root=root, split=split)


# --- stand-in: a miniature COCO 2014 in its release layout


OTHER_CATEGORIES = ((27, "backpack"), (28, "umbrella"), (84, "book"))  # non-VOC categories the stand-in uses


def write_standin(out: Path, *, train: int, val: int, size: tuple[int, int], seed: int) -> None:
    """Synthetic COCO 2014 under `out`: JPEGs in train2014/ and val2014/ and instances_*.json whose
    annotations are compressed RLEs of the painted scenes' VOC-class regions (COCO category ids), plus, per
    image, a region of a non-VOC category (background in VOC terms) and in every third image a crowd region
    of a VOC class. Every image holds a VOC class; one extra image per split holds none (it must not be listed)."""
    from pycocotools import mask as mask_utils

    out = Path(out)
    height, width = size
    rng = np.random.default_rng(seed)
    categories = [{"id": cid, "name": name, "supercategory": ""} for cid, name in VOC_CATEGORIES + OTHER_CATEGORIES]
    image_id, ann_id = 0, 0
    for split, count in (("train", train), ("val", val)):
        folder = SPLIT_FOLDERS[split]
        images, annotations = [], []
        for k in range(count + 1):
            image_id += 1
            image, label = paint_scene(rng, height, width, INFO.num_classes, background=0)
            if k == count:  # the one image without a VOC class
                label[:] = 0
                image = np.full_like(image, 128)
            name = f"COCO_{folder}_{image_id:012d}.jpg"
            save_jpeg(out / folder / name, image)
            images.append({"id": image_id, "file_name": name, "height": height, "width": width})
            regions = [(VOC_CATEGORIES[c - 1][0], label == c, 0) for c in np.unique(label) if c != 0]
            if k < count:
                background = label == 0
                other = np.zeros_like(background)
                other[: height // 4, : width // 4] = True
                regions.append((OTHER_CATEGORIES[k % 3][0], other & background, 0))
                if k % 3 == 0 and len(regions) > 1:  # a crowd: the lower half of the first VOC region
                    cid, mask, _ = regions[0]
                    crowd = mask.copy()
                    crowd[: height // 2] = False
                    regions.append((cid, crowd, 1))
            for cid, mask, crowd in regions:
                if not mask.any():
                    continue
                ann_id += 1
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                ys, xs = np.nonzero(mask)
                annotations.append({
                    "id": ann_id, "image_id": image_id, "category_id": int(cid), "iscrowd": int(crowd),
                    "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                    "area": float(mask.sum()),
                    "bbox": [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)],
                })
        content = {"info": {"description": "refinenet stand-in (synthetic), COCO 2014 layout"}, "licenses": [],
                   "images": images, "annotations": annotations, "categories": categories}
        write_text_atomic(annotation_file(out, split), json.dumps(content))
    write_standin_marker(out, INFO.name, seed)
