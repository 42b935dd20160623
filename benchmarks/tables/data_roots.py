"""Where a run reads each dataset from: stand-in data generated once per profile (and prepared as the real
release would be), or the user's real copy under --data-root; every split a table reads checked once before
any work (refinenet/preflight.py), Table 4's first-stage dataset (MS COCO) included.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.tables.run_options import PROFILES, RunOptions
from benchmarks.tables.specs import MEASURED_SPLIT, PRETRAIN, TEST_SERVER, TRAIN_SPLIT, Row
from refinenet import data
from refinenet.atomic import write_text_atomic
from refinenet.preflight import check_splits
from refinenet.recipe import get_recipe

# Datasets whose public release (and so their stand-in) needs `refinenet prepare` before loading.
PREPARE = {"voc2012": "sbd", "nyudv2": "nyudv2", "sunrgbd": "sunrgbd", "pascal_context": "pascal_context",
           "person_part": "person_part"}
STANDIN_SEED = 0  # the stand-in data is the same whatever the training seed


def dataset_root(dataset: str, opts: RunOptions) -> Path:
    """Where `dataset` is read from: generated stand-in data, or the user's real copy."""
    profile = PROFILES[opts.profile]
    if profile.standin is None:
        return real_root(dataset, opts)
    generated = generated_standin_root(dataset, opts)
    if generated is not None:
        return generated
    base = standin_folder(dataset, opts)
    done = base / "ready.json"
    raw = base / "raw"
    data.write_standin(dataset, raw, seed=STANDIN_SEED, **profile.standin)
    root = raw
    if dataset in PREPARE:
        root = base / "prepared"
        data.prepare(PREPARE[dataset], raw, root)
    write_text_atomic(done, json.dumps({"root": str(root)}))
    return root


def standin_folder(dataset: str, opts: RunOptions) -> Path:
    return Path(opts.cache) / f"standin-{PROFILES[opts.profile].name}" / dataset


def generated_standin_root(dataset: str, opts: RunOptions) -> Path | None:
    """Where the profile's stand-in copy of `dataset` was generated, or None if it was not yet."""
    done = standin_folder(dataset, opts) / "ready.json"
    return Path(json.loads(done.read_text())["root"]) if done.is_file() else None


def real_root(dataset: str, opts: RunOptions) -> Path:
    if not opts.data_root:
        raise ValueError(f"the {opts.profile} profile reads real data: give --data-root DIR (one folder per dataset, "
                         f"e.g. DIR/{dataset}) or --data-root {dataset}=PATH")
    if "=" in opts.data_root:
        roots = dict(item.split("=", 1) for item in opts.data_root.split(","))
        if dataset not in roots:
            raise ValueError(f"--data-root names no folder for {dataset} (got {sorted(roots)})")
        return Path(roots[dataset])
    return Path(opts.data_root) / dataset


def pretrain_dataset(dataset: str, opts: RunOptions) -> str | None:
    """The dataset of the first training stage of `dataset`'s models (Table 4: coco), or None: none in the
    tables (PRETRAIN), the profile trains nothing, or the recipe's `coco` / `--no-coco` turn it off."""
    profile = PROFILES[opts.profile]
    if dataset not in PRETRAIN or profile.train_profile is None:
        return None
    return PRETRAIN[dataset] if opts.coco and get_recipe(profile.train_profile).coco else None


def check_data(rows: list[Row], opts: RunOptions, training: bool) -> dict[str, Path]:
    """Each dataset's root, every split the rows read checked once before any work (refinenet/preflight.py); with
    `training`, also the first stage's dataset (Table 4's COCO) and its training split."""
    roots = {}
    if training:
        for dataset in dict.fromkeys(filter(None, (pretrain_dataset(row.dataset, opts) for row in rows))):
            roots[dataset] = dataset_root(dataset, opts)
            check_splits(dataset, roots[dataset], [TRAIN_SPLIT.get(dataset, "train")],
                         cache_dir=Path(opts.cache) / "preflight", progress=opts.progress)
    for dataset in dict.fromkeys(row.dataset for row in rows):
        roots[dataset] = dataset_root(dataset, opts)
        splits = [TRAIN_SPLIT.get(dataset, "train") if training else None, MEASURED_SPLIT[dataset],
                  TEST_SERVER[dataset][0] if dataset in TEST_SERVER else None]
        check_splits(dataset, roots[dataset], splits, cache_dir=Path(opts.cache) / "preflight", progress=opts.progress)
    return roots
