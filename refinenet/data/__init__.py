"""The seven benchmarks of the paper behind one interface.

Every dataset module (`refinenet/data/<name>.py`) has `INFO` (a `DatasetInfo`),
`dataset(root, split, transform=None)`, `write_standin(out, *, train, val, size, seed)` and, where
the public release needs converting first, `prepare(raw, out)`. Modules are imported on first use,
so optional dependencies of one dataset (h5py, scipy) never break the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType

from refinenet.data.common import DatasetInfo, SegmentationFiles

# The seven benchmarks of the paper, then MS COCO (read as VOC's 21 classes: training data of Table 4's VOC models).
DATASET_NAMES = ("voc2012", "pascal_context", "nyudv2", "sunrgbd", "cityscapes", "ade20k", "person_part", "coco")

# Converter name -> (module, function). SBD's extra VOC annotations are converted by voc2012.py.
CONVERTERS = {
    "nyudv2": ("nyudv2", "prepare"),
    "pascal_context": ("pascal_context", "prepare"),
    "sbd": ("voc2012", "prepare_sbd"),
    "cityscapes": ("cityscapes", "prepare"),
    "sunrgbd": ("sunrgbd", "prepare"),
    "person_part": ("person_part", "prepare"),
}


class _DatasetModules(Mapping):
    """name -> module, imported when first looked up."""

    def __getitem__(self, name: str) -> ModuleType:
        if name not in DATASET_NAMES:
            raise KeyError(name)
        return importlib.import_module(f"refinenet.data.{name}")

    def __iter__(self) -> Iterator[str]:
        return iter(DATASET_NAMES)

    def __len__(self) -> int:
        return len(DATASET_NAMES)


DATASETS: Mapping[str, ModuleType] = _DatasetModules()


def _module(name: str) -> ModuleType:
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    return DATASETS[name]


def load_dataset(name: str, root: str | Path, split: str, transform=None) -> SegmentationFiles:
    """The `split` of dataset `name` found under `root` (its layout is checked; errors show it)."""
    return _module(name).dataset(Path(root), split, transform=transform)


def dataset_info(name: str) -> DatasetInfo:
    return _module(name).INFO


def write_standin(name: str, out: str | Path, *, train: int, val: int, size: tuple[int, int], seed: int) -> None:
    """A miniature synthetic copy of dataset `name` in its own (raw) layout, marked as stand-in."""
    _module(name).write_standin(Path(out), train=train, val=val, size=tuple(size), seed=seed)


def prepare(name: str, raw: str | Path, out: str | Path) -> None:
    """Run converter `name` (see CONVERTERS) from the public release under `raw` into `out`."""
    if name not in CONVERTERS:
        raise ValueError(f"no converter named {name!r}; converters: {', '.join(CONVERTERS)}")
    module, function = CONVERTERS[name]
    getattr(importlib.import_module(f"refinenet.data.{module}"), function)(Path(raw), Path(out))


__all__ = [
    "CONVERTERS",
    "DATASETS",
    "DATASET_NAMES",
    "DatasetInfo",
    "SegmentationFiles",
    "dataset_info",
    "load_dataset",
    "prepare",
    "write_standin",
]
