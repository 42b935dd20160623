"""Which classes each image of a split contains: the index the authors' class-balanced sampling needs
(guosheng/refinenet main/my_epoch_run_config.m and main/batch_do_data_crop.m read it as
`ds_info.class_idxes_imgs`).

`scan_labels` reads every label of a split once (threads, with a progress bar) and checks each file
as the dataset does, so an undefined label value is an error naming the file; a pre-flight check of
a dataset can reuse it. `load_class_index` keeps the result as JSON in a cache folder, keyed by the
dataset root, the split and its label files (paths, sizes, modification times): a changed split list
or label file builds it again. The dataset root itself is never written to (it may be read-only).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from refinenet.atomic import write_text_atomic
from refinenet.data.common import SegmentationFiles

FORMAT = "refinenet-class-index-v1"


def image_classes(dataset: SegmentationFiles, index: int) -> tuple[int, ...]:
    """The train ids present in item `index`'s label, void left out (none for an unlabelled item)."""
    label = dataset.load_label(index)
    if label is None:
        return ()
    return tuple(int(v) for v in np.unique(label) if v != dataset.info.ignore_index)


def scan_labels(dataset: SegmentationFiles, workers: int = 4, progress: bool = True) -> list[tuple[int, ...]]:
    """`image_classes` of every item, in order, read by `workers` threads (image decoding releases the GIL)."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        found = pool.map(partial(image_classes, dataset), range(len(dataset)))
        return list(tqdm(found, total=len(dataset), desc=f"class index of {dataset.info.name} {dataset.split}",
                         unit="label", disable=not progress))


def index_key(dataset: SegmentationFiles) -> str:
    """A digest of what the index depends on: dataset, root, split and every label file's path, size, mtime."""
    digest = hashlib.sha256()
    root = "" if dataset.root is None else str(Path(dataset.root).resolve())
    digest.update(f"{FORMAT}\n{dataset.info.name}\n{root}\n{dataset.split}\n".encode())
    for _, label in dataset.pairs:
        stat = None if label is None else label.stat()
        digest.update(f"{label}\t{stat and stat.st_size}\t{stat and stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def index_path(dataset: SegmentationFiles, cache_dir: str | Path, key: str | None = None) -> Path:
    key = key or index_key(dataset)
    return Path(cache_dir) / f"class_index-{dataset.info.name}-{dataset.split}-{key[:16]}.json"


def load_class_index(dataset: SegmentationFiles, cache_dir: str | Path, workers: int = 4,
                     progress: bool = True) -> list[tuple[int, ...]]:
    """The classes of every item of `dataset`, from the cache under `cache_dir` or scanned (and cached)."""
    key = index_key(dataset)
    path = index_path(dataset, cache_dir, key)
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except ValueError:  # a damaged cache file is rebuilt
            saved = {}
        if saved.get("key") == key and len(saved.get("classes", ())) == len(dataset):
            return [tuple(c) for c in saved["classes"]]
    classes = scan_labels(dataset, workers, progress)
    record = {"format": FORMAT, "key": key, "dataset": dataset.info.name, "root": str(dataset.root),
              "split": dataset.split, "classes": [list(c) for c in classes]}
    write_text_atomic(path, json.dumps(record) + "\n")
    return classes


def images_per_class(classes: list[tuple[int, ...]], num_classes: int) -> np.ndarray:
    """How many images contain each class."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for present in classes:
        counts[list(present)] += 1
    return counts
