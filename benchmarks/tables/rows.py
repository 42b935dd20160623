"""A table row's evaluation settings and its CSV rows (one per measurement, columns table_report.COLUMNS):
the paper's, the measured and the majority-class values with the run's provenance; the progress bar over a
table's rows; the check before a table is written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm import tqdm

from benchmarks.provenance import DirtyTreeError, writes_repository_results
from benchmarks.tables.paper_numbers import paper_value
from benchmarks.tables.run_options import PROFILES, RunOptions, Session
from benchmarks.tables.specs import Row
from refinenet import data
from refinenet.config import EvalConfig
from refinenet.metrics import chance_scores
from refinenet.recipe import default_pooling_blocks


def eval_config(row: Row, checkpoint: Path, root: Path, opts: RunOptions) -> EvalConfig:
    scales = PROFILES[opts.profile].scales if row.msc else (1.0,)
    return EvalConfig(checkpoint=checkpoint, dataset=row.dataset, data_root=root, split=row.split, scales=scales,
                      crf=row.crf, device=opts.device, workers=opts.workers, progress=opts.progress)


def measurements(row: Row, paper: pd.DataFrame, result: dict | None) -> list[dict]:
    """The row's metrics (and per-class IoU): paper, measured and majority-class values, in percent."""
    chance = chance_scores(result["class_pixels"]) if result and result.get("class_pixels") else None
    found = []
    for metric in row.metrics:
        found.append({"metric": metric, "class_name": "", "paper_value": paper_value(paper, row, metric),
                      "measured_value": percent(result.get(metric)) if result else None,
                      "chance_value": percent(chance[metric]) if chance else None})
    if row.per_class:
        for i, name in enumerate(data.dataset_info(row.dataset).class_names):
            found.append({"metric": "iou", "class_name": name, "paper_value": paper_value(paper, row, "iou", name),
                          "measured_value": percent(result["per_class_iou"].get(name)) if result else None,
                          "chance_value": percent(chance["iou"][i]) if chance else None})
    return found


def row_records(number: int, row: Row, paper: pd.DataFrame, evaluation: dict | None, columns: dict,
                session: Session, model_dirty: bool = False) -> list[dict]:
    """The CSV rows of one table row: what it runs, its measurements, and `columns` (seed, keys, note, ...).
    `dirty` is true when this run's tree, the evaluation's or the model's was."""
    evaluation = evaluation or {}
    what = {"table": number, "row": row.label, "dataset": row.dataset, "backbone": row.backbone,
            "variant": row.variant, "msc": row.msc, "crf": row.crf, "split": row.split,
            "pooling_blocks": default_pooling_blocks(row.dataset) if row.pooling_blocks is None else row.pooling_blocks}
    run = {"eval_seconds": evaluation.get("eval_seconds"), "device": evaluation.get("device", ""),
           "torch": evaluation.get("torch", ""), "code_version": session.provenance.code_version,
           "finished_at": evaluation.get("finished_at", ""),
           "dirty": bool(session.provenance.dirty or evaluation.get("dirty") or model_dirty),
           "profile": session.opts.profile}
    return [{**what, **m, **run, **columns} for m in measurements(row, paper, evaluation.get("result"))]


def percent(value) -> float | None:
    return None if value is None or value != value else round(100.0 * float(value), 2)


class TableProgress:
    """An outer bar, "table 2: model 3/8, row 5/12", above the training and evaluation bars."""

    def __init__(self, number: int, models: int, rows: int, enabled: bool):
        self.number, self.models, self.model, self.rows, self.rows_done = number, models, 0, rows, 0
        self.bar = tqdm(total=rows, disable=not enabled, position=0, leave=True, dynamic_ncols=True,
                        bar_format="{desc} {bar:10} {elapsed}")

    def next_model(self) -> None:
        self.model += 1
        self.show()

    @property
    def text(self) -> str:
        row = min(self.rows_done + 1, self.rows)
        return f"table {self.number}: model {self.model}/{self.models}, row {row}/{self.rows}"

    def show(self) -> None:
        self.bar.set_description_str(self.text)

    def row_done(self) -> None:
        self.rows_done += 1
        self.bar.update(1)
        self.show()

    def close(self) -> None:
        self.bar.close()


def check_before_writing(name: str, frame: pd.DataFrame, session: Session) -> Path:
    """The results folder, unless rows made from uncommitted code would land in the repository's results/."""
    results = Path(session.opts.results)
    if frame["dirty"].any() and not session.opts.allow_dirty and writes_repository_results(results):
        raise DirtyTreeError(f"{name}: some rows reuse models or evaluations made from uncommitted code (their store "
                             "entries say dirty=true); rerun with --fresh, or pass --allow-dirty")
    return results
