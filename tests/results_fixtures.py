"""Small synthetic results CSVs in the agreed schema (benchmarks/report/measured.py COLUMNS) and in the
older one (OLD_COLUMNS), for the report, claims and notebook tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.report import measured
from benchmarks.tables.paper_numbers import load_paper_table, paper_value
from benchmarks.tables.specs import TABLES

VOC_CLASSES = ["background", "aeroplane", "bicycle"]  # a few per-class rows are enough


def synthetic(number: int, value, *, seeds=(0,), profile="paper", data="real", chance=2.0, dirty=False,
              note="", checkpoint="") -> pd.DataFrame:
    """Table `number`'s rows in the new schema; `value(row, metric, seed)` gives each measured number."""
    paper = load_paper_table(number)
    records = []
    models = list(dict.fromkeys(row.model_key for row in TABLES[number].rows))
    for row in TABLES[number].rows:
        for seed in seeds:
            common = {
                "table": number, "row": row.label, "dataset": row.dataset, "backbone": row.backbone,
                "variant": row.variant, "pooling_blocks": row.pooling_blocks if row.pooling_blocks is not None else 2,
                "msc": row.msc, "crf": row.crf, "split": row.split, "seed": "" if profile == "released" else seed,
                "profile": profile, "data": data, "precision": "fp32", "iterations": 100,
                "train_seconds": 10.0 + models.index(row.model_key), "eval_seconds": 1.0,  # one time per model
                "device": "cpu (test)", "torch": "2.x",
                "code_version": "abc1234-dirty" if dirty else "abc1234", "dirty": dirty,
                "model_key": f"{row.model_key}-seed{seed}", "eval_key": f"{row.key}-seed{seed}",
                "checkpoint": checkpoint, "checkpoint_sha256": "", "note": note,
                "finished_at": "2026-01-01T00:00:00+00:00",
            }
            for metric in row.metrics:
                records.append({**common, "metric": metric, "class_name": "",
                                "paper_value": paper_value(paper, row, metric),
                                "measured_value": value(row, metric, seed), "chance_value": chance})
            if row.per_class:
                for name in VOC_CLASSES:
                    records.append({**common, "metric": "iou", "class_name": name,
                                    "paper_value": paper_value(paper, row, "iou", name),
                                    "measured_value": value(row, "iou", seed), "chance_value": 0.0})
    return pd.DataFrame.from_records(records, columns=measured.COLUMNS)


# The columns results CSVs had before the result store added chance_value, seed, precision, dirty, ...
OLD_COLUMNS = [
    "table", "row", "dataset", "backbone", "variant", "pooling_blocks", "msc", "crf", "split", "metric",
    "class_name", "paper_value", "measured_value", "profile", "data", "iterations", "train_seconds",
    "eval_seconds", "device", "code_version", "finished_at",
]


def old_schema(frame: pd.DataFrame) -> pd.DataFrame:
    """The same rows with only the columns CSVs had before the agreed schema."""
    return frame[OLD_COLUMNS]


def write(frame: pd.DataFrame, folder: Path, number: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"table{number}.csv"
    frame.to_csv(path, index=False)
    return path
