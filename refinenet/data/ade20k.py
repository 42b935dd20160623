"""ADE20K, MIT Scene Parsing Benchmark release (SceneParsing150): 150 classes (paper, Sec. 4.6, Table 7).

Layout as unpacked from ADEChallengeData2016.zip: JPEG images and single-channel PNG annotations
with value 0 for "other objects" (not scored) and 1..150 for the classes in the order of the
devkit's objectInfo150 table. Training uses 0 -> 255 (ignore) and v -> v - 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refinenet.atomic import save_jpeg, save_png
from refinenet.data import standin
from refinenet.data.common import (
    DatasetInfo,
    DatasetLayoutError,
    SegmentationFiles,
    is_standin,
    require_path,
    resolve_split,
    shifted_lut,
    write_standin_marker,
)

FOLDER = "ADEChallengeData2016"
SPLITS = {"training": 20210, "validation": 2000}
SPLIT_ALIASES = {"train": "training", "val": "validation"}

# objectInfo150 order (first name of each entry), train id = row index.
CLASS_NAMES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer",
    "swivel chair", "boat", "bar", "arcade machine", "hovel",
    "bus", "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

# The colours of the scene-parsing toolkit's colour table (color150), as used by common toolkits.
PALETTE = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
    (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7),
    (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
    (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
    (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
    (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
    (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133),
    (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0),
    (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
    (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255),
    (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255),
    (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255),
    (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
    (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
    (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
    (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0),
    (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
    (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
)  # fmt: skip

INFO = DatasetInfo(
    name="ade20k",
    # the authors' test-time short-edge clamp (guosheng/refinenet main/demo_predict_mscale_ade.m,
    # `run_config.input_img_short_edge_min/max`)
    test_short_edge=(450, 800),
    class_names=CLASS_NAMES,
    palette=PALETTE,
    splits=dict(SPLITS),
    layout=(
        f"  {FOLDER}/images/{{training,validation}}/ADE_{{train,val}}_<8 digits>.jpg\n"
        f"  {FOLDER}/annotations/{{training,validation}}/ADE_{{train,val}}_<8 digits>.png\n"
        f"  (root is the folder holding {FOLDER}, or {FOLDER} itself; splits train/val are aliases)"
    ),
    notes="stored 0 ('other objects') -> 255 ignore, 1..150 -> train ids 0..149",
)


# 0 ('other objects') -> 255, 1..150 -> 0..149; 151..255 are not ADE values: an error, not ignore.
ANNOTATION_TO_TRAINID = shifted_lut(INFO.num_classes, stored_ignore=False)


def challenge_folder(root: Path) -> Path:
    """`root/ADEChallengeData2016`, or `root` itself when it already is that folder."""
    root = require_path(Path(root), INFO, "dataset root")
    if (root / FOLDER).is_dir():
        return root / FOLDER
    if root.name == FOLDER or ((root / "images").is_dir() and (root / "annotations").is_dir()):
        return root
    return require_path(root / FOLDER, INFO)


def dataset(root: Path, split: str, transform=None) -> SegmentationFiles:
    """ADE20K `split` (training/validation, or train/val); labels are train ids 0..149, 255 = other."""
    split = resolve_split(split, INFO, SPLIT_ALIASES)
    base = challenge_folder(root)
    images = sorted(require_path(base / "images" / split, INFO, "images").glob("*.jpg"))
    annotations = require_path(base / "annotations" / split, INFO, "annotations")
    pairs = []
    for image in images:
        label = annotations / f"{image.stem}.png"
        if not label.is_file():
            raise DatasetLayoutError(f"ade20k: image {image} has no annotation {label}\n{INFO.layout}")
        pairs.append((image, label))
    # The stand-in marker sits in the folder given to `refinenet standin`, above ADEChallengeData2016.
    marked_root = next((p for p in (Path(root), base, base.parent) if is_standin(p)), Path(root))
    return SegmentationFiles(pairs, INFO, lut=ANNOTATION_TO_TRAINID, transform=transform, root=marked_root, split=split)


# Stand-ins draw from the 24 most frequent classes (ids 1..24, the first rows of objectInfo150) so
# that a few dozen images are enough to learn them; other pixels are left "other" (0).
_STANDIN_CLASSES = 24


def write_standin(out: Path, *, train: int, val: int, size: tuple[int, int], seed: int) -> None:
    out, (height, width) = Path(out), size
    rng = np.random.default_rng(seed)
    base = out / FOLDER
    for split, prefix, count in (("training", "ADE_train", train), ("validation", "ADE_val", val)):
        for index in range(1, count + 1):
            image, scene = standin.paint_scene(rng, height, width, _STANDIN_CLASSES, background=None)
            annotation = scene + 1
            # An unannotated patch, as real scenes have "other" objects: the picture stays as painted.
            ph, pw = max(1, height // 6), max(1, width // 6)
            y, x = int(rng.integers(0, height - ph + 1)), int(rng.integers(0, width - pw + 1))
            annotation[y : y + ph, x : x + pw] = 0
            save_jpeg(base / "images" / split / f"{prefix}_{index:08d}.jpg", image)
            save_png(base / "annotations" / split / f"{prefix}_{index:08d}.png", annotation)
    write_standin_marker(out, INFO.name, seed)
