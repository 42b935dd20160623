"""What every dataset module shares: its description, a dataset over (image, label) file pairs,
the stand-in marker, and errors that name the file and say what was expected.

A dataset module (`voc2012.py`, `cityscapes.py`, ...) holds one `DatasetInfo`, finds its
(image, label) file pairs in the dataset's public layout, and hands them to `SegmentationFiles`
together with a lookup table that maps the stored label values to train ids (255 = ignore).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IGNORE_INDEX = 255

# A file of this name at a dataset root marks it as generated stand-in data (`refinenet standin`);
# every result computed from such a root is labelled `data=standin`.
STANDIN_MARKER = "REFINENET_STANDIN.txt"


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about one benchmark, written once (class names and palette live here only)."""

    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]  # one RGB colour per train id
    splits: dict[str, int]  # split name -> number of images the paper uses
    layout: str  # the expected folder layout, shown in errors
    ignore_index: int = IGNORE_INDEX
    # (min, max) of the image's short edge at test time in the authors' pipeline: a smaller or larger
    # image is resized (aspect kept) into that range before the test scales apply. None: no clamp.
    test_short_edge: tuple[int, int] | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class DatasetLayoutError(FileNotFoundError):
    """A dataset root, split list or file that should exist does not."""


class LabelValueError(ValueError):
    """A label file holds values the dataset does not define."""


def require_path(path: Path, info: DatasetInfo, what: str = "") -> Path:
    """Return `path` if it exists, else raise an error naming it and showing the expected layout."""
    path = Path(path)
    if not path.exists():
        kind = f" ({what})" if what else ""
        raise DatasetLayoutError(
            f"{info.name}: missing {path}{kind}.\nExpected layout under the dataset root:\n{info.layout}"
        )
    return path


def require_voc_devkit(root: Path, year_dir: Path, info: DatasetInfo) -> tuple[Path, Path]:
    """(the devkit's year folder, its JPEGImages) under a dataset root in the VOC devkit layout, each checked."""
    require_path(root, info, "dataset root")
    voc = require_path(root / year_dir, info, f"{Path(year_dir).name} folder")
    return voc, require_path(voc / "JPEGImages", info, "images")


def read_split_list(path: Path, info: DatasetInfo) -> list[str]:
    """Ids listed one per line (blank lines skipped); an empty list is an error, never silently used."""
    require_path(path, info, "split list")
    ids = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not ids:
        raise DatasetLayoutError(f"{info.name}: split list {path} is empty")
    return ids


def is_standin(root: Path) -> bool:
    return (Path(root) / STANDIN_MARKER).is_file()


def write_standin_marker(root: Path, dataset: str, seed: int) -> None:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / STANDIN_MARKER).write_text(
        f"Synthetic stand-in for {dataset} written by `refinenet standin` (seed {seed}).\n"
        "Not real data: every result computed from it is labelled data=standin.\n"
    )


def voc_colormap(n: int) -> tuple[tuple[int, int, int], ...]:
    """The VOC devkit's colour map (`VOClabelcolormap.m`), n colours: the bits of the class id are
    spread over the high bits of R, G and B. Used by every dataset without a palette of its own."""
    colours = []
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


def identity_lut(num_classes: int) -> np.ndarray:
    """Stored value v -> v for v < num_classes, 255 stays ignore, everything else undefined (-1 = error)."""
    lut = np.full(256, -1, dtype=np.int16)
    lut[:num_classes] = np.arange(num_classes)
    lut[IGNORE_INDEX] = IGNORE_INDEX
    return lut


def shifted_lut(num_classes: int, *, stored_ignore: bool = True) -> np.ndarray:
    """Stored 0 (unlabelled) -> 255 (ignore), v -> v - 1 for 1 <= v <= num_classes, everything else
    undefined (-1 = error). A stored 255 stays ignore unless `stored_ignore` is False (then it is an
    error too, for formats that never store it)."""
    lut = np.full(256, -1, dtype=np.int16)
    lut[0] = IGNORE_INDEX
    lut[1 : num_classes + 1] = np.arange(num_classes)
    if stored_ignore:
        lut[IGNORE_INDEX] = IGNORE_INDEX
    return lut


def resolve_split(split: str, info: DatasetInfo, aliases: dict[str, str] | None = None) -> str:
    """The canonical name of `split` (e.g. `val` -> `test` where the paper has no val set)."""
    aliases = aliases or {}
    name = aliases.get(split, split)
    if name not in info.splits:
        valid = ", ".join(dict.fromkeys([*info.splits, *aliases]))
        raise ValueError(f"{info.name}: unknown split {split!r}; valid splits: {valid}")
    return name


def require_files(pairs: Sequence[tuple[Path, Path | None]], info: DatasetInfo, split: str) -> None:
    """Every listed image and label exists, else one error naming the first missing file."""
    missing = [p for pair in pairs for p in pair if p is not None and not Path(p).is_file()]
    if missing:
        raise DatasetLayoutError(
            f"{info.name}: {len(missing)} file(s) listed by split {split!r} are missing, "
            f"first {missing[0]}.\n"
            f"Expected layout under the dataset root:\n{info.layout}"
        )


def listed_files(
    info: DatasetInfo,
    root: Path,
    split: str,
    ids: Sequence[str],
    images: Path,
    labels: Path | None,
    *,
    image_suffix: str = ".jpg",
    label_suffix: str = ".png",
    lut: np.ndarray | None = None,
    transform: Callable | None = None,
) -> SegmentationFiles:
    """The pairs `images/<id><image_suffix>`, `labels/<id><label_suffix>` of the listed ids (no
    labels where `labels` is None), every file checked to exist."""
    pairs = [(images / f"{i}{image_suffix}", None if labels is None else labels / f"{i}{label_suffix}") for i in ids]
    require_files(pairs, info, split)
    return SegmentationFiles(pairs, info, lut, transform, root=root, split=split)


def flat_dataset(
    info: DatasetInfo,
    root: Path,
    split: str,
    aliases: dict[str, str] | None = None,
    *,
    image_suffix: str = ".jpg",
    lut: np.ndarray | None = None,
    transform: Callable | None = None,
) -> SegmentationFiles:
    """A root in the flat layout our NYUDv2 and SUN-RGBD converters write: `<split>.txt` (one id a
    line), `images/<id><image_suffix>` and `labels/<id>.png`."""
    root = Path(root)
    split = resolve_split(split, info, aliases)
    require_path(root, info, "dataset root")
    ids = read_split_list(root / f"{split}.txt", info)
    images, labels = root / "images", root / "labels"
    return listed_files(info, root, split, ids, images, labels, image_suffix=image_suffix, lut=lut, transform=transform)


def read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))  # a writable copy: torch.from_numpy warns on read-only arrays
    except (OSError, ValueError) as err:
        raise OSError(f"cannot read image {path}: {err}") from err


def read_label(path: Path) -> np.ndarray:
    """Stored label values as an HxW uint8 array (palette PNGs give their indices, not colours)."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "I", "I;16"):
                raise ValueError(f"expected a single-channel or palette PNG, got mode {im.mode}")
            arr = np.asarray(im)
    except (OSError, ValueError) as err:
        raise OSError(f"cannot read label {path}: {err}") from err
    if arr.max(initial=0) > 255 or arr.min(initial=0) < 0:
        bad = sorted(int(v) for v in np.unique(arr[(arr > 255) | (arr < 0)]))[:10]
        raise LabelValueError(f"label {path} holds values outside [0, 255]: {bad}")
    return arr.astype(np.uint8)


def apply_lut(label: np.ndarray, lut: np.ndarray, path: Path) -> np.ndarray:
    """Map stored values to train ids; values the LUT leaves undefined (-1) are an error naming the file."""
    mapped = lut[label]
    if (mapped < 0).any():
        bad = sorted(int(v) for v in np.unique(label[mapped < 0]))
        raise LabelValueError(f"label {path} holds values {bad} that this dataset does not define")
    return mapped.astype(np.int64)


class SegmentationFiles(torch.utils.data.Dataset):
    """(image, label) pairs read from files.

    A pair's label path may be None (e.g. Cityscapes test, whose labels are withheld): its label is
    then all `ignore_index`, so the item still loads and the engine can predict it, while any
    score computed on it is empty. `has_labels` tells whether every item has a real label.

    Items are `(image, label)`: `tv_tensors.Image` uint8 3xHxW and `tv_tensors.Mask` int64 HxW with
    values in [0, num_classes) or 255, or whatever `transform(image, label)` makes of them.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Path | None]],
        info: DatasetInfo,
        lut: np.ndarray | None = None,
        transform: Callable | None = None,
        root: Path | None = None,
        split: str = "",
    ):
        if not pairs:
            raise DatasetLayoutError(f"{info.name}: no images found for split {split!r} under {root}")
        self.pairs = [(Path(i), None if lab is None else Path(lab)) for i, lab in pairs]
        self.info = info
        self.lut = identity_lut(info.num_classes) if lut is None else lut
        self.transform = transform
        self.root = Path(root) if root is not None else None
        self.split = split

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def has_labels(self) -> bool:
        return all(label is not None for _, label in self.pairs)

    @property
    def is_standin(self) -> bool:
        return self.root is not None and is_standin(self.root)

    @property
    def data_kind(self) -> str:
        """`standin` or `real`, written into every result row."""
        return "standin" if self.is_standin else "real"

    def __len__(self) -> int:
        return len(self.pairs)

    def load_label(self, index: int) -> np.ndarray | None:
        """Train-id label HxW int64 of item `index` (its values checked), or None where it has no label."""
        label_path = self.pairs[index][1]
        return None if label_path is None else apply_lut(read_label(label_path), self.lut, label_path)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image HxWx3 uint8 and train-id label HxW int64, checked."""
        image_path, label_path = self.pairs[index]
        image = read_image(image_path)
        if label_path is None:
            return image, np.full(image.shape[:2], self.info.ignore_index, dtype=np.int64)
        label = self.load_label(index)
        if image.shape[:2] != label.shape:
            raise ValueError(
                f"image {image_path} is {image.shape[1]}x{image.shape[0]} but label {label_path} is "
                f"{label.shape[1]}x{label.shape[0]} (width x height)"
            )
        return image, label

    def __getitem__(self, index: int):
        image, label = self.load(index)
        from torchvision import tv_tensors  # imported on first item: reading class facts needs no torchvision

        image = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous())
        label = tv_tensors.Mask(torch.from_numpy(label))
        if self.transform is not None:
            return self.transform(image, label)
        return image, label
