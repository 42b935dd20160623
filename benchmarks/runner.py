"""Run one table of the paper: train each model it needs, evaluate each row, write tidy results.

Everything is cached under `results/runs/table<N>/` (one folder per trained model and per
evaluated row), so an interrupted run resumes and a finished row is not recomputed (`fresh=True`
redoes it). Outputs: `results/table<N>.csv` (one row per measurement), `.md` and `.png`.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from benchmarks import report
from benchmarks.paper_tables import load_paper_table, paper_value
from benchmarks.tables import TABLES, TEST_SERVER, TRAIN_SPLIT, Row, Table
from refinenet import data
from refinenet.atomic import write_text_atomic
from refinenet.cli_options import option
from refinenet.config import EvalConfig, TrainConfig, resolve
from refinenet.data.common import is_standin
from refinenet.evaluate import evaluate, json_safe
from refinenet.inference import PAPER_SCALES
from refinenet.recipe import default_pooling_blocks
from refinenet.train import train
from refinenet.utils import code_version, resolve_device

REPO = Path(__file__).resolve().parents[1]

# Datasets whose public release (and so their stand-in) needs `refinenet prepare` before loading.
PREPARE = {"voc2012": "sbd", "nyudv2": "nyudv2", "sunrgbd": "sunrgbd", "pascal_context": "pascal_context",
           "person_part": "person_part"}


@dataclass(frozen=True)
class Profile:
    """How a table run is sized. `standin`/`smoke` generate stand-in data; `paper` reads real data."""

    name: str
    train_profile: str  # the engine's recipe (refinenet/recipe.py)
    scales: tuple[float, ...]  # multi-scale evaluation
    standin: dict | None  # refinenet standin arguments, None = real data
    checkpoint_every: int | None = None  # None: the recipe's


PROFILES = {
    # released evaluation code: scales 0.4-1.2 averaged (guosheng/refinenet main/demo_predict_mscale_<dataset>.m)
    "paper": Profile("paper", "paper", PAPER_SCALES, None),
    # ours: small enough that every table finishes in minutes on 2 CPU cores
    "standin": Profile("standin", "standin", (0.75, 1.0, 1.25), {"train": 48, "val": 12, "size": (120, 160)}),
    # ours: seconds per row, for the tests
    "smoke": Profile("smoke", "smoke", (0.8, 1.0), {"train": 4, "val": 2, "size": (64, 80)}, checkpoint_every=1000),
}


@dataclass
class RunOptions:
    """How tables are run; every field is an option of `python -m benchmarks.reproduce`."""

    profile: str = option("standin", choices=tuple(sorted(PROFILES)))
    data_root: str | None = option(None, "paper profile: DIR with one folder per dataset (DIR/voc2012, ...) or "
                                   "name=PATH[,name=PATH]")
    results: Path = option(REPO / "results", "where table<N>.* and runs/ go")
    cache: Path = option(REPO / ".cache", "where stand-in data is generated")
    device: str = option("auto", "auto, cpu, cuda, cuda:1, ...")
    workers: int = option(0, "data-loader workers")
    fresh: bool = option(False, "discard cached models and evaluations of these tables")
    iterations: int | None = option(None, "override the profile's training iterations (e.g. quick looks at real data)")
    seed: int = option(0)
    progress: bool = option(True, "no progress bars")


def device_name(device: str) -> str:
    dev = resolve_device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def dataset_root(dataset: str, opts: RunOptions) -> Path:
    """Where `dataset` is read from: generated stand-in data, or the user's real copy."""
    profile = PROFILES[opts.profile]
    if profile.standin is None:
        return real_root(dataset, opts.data_root)
    base = Path(opts.cache) / f"standin-{profile.name}" / dataset
    done = base / "ready.json"
    if done.is_file():
        return Path(json.loads(done.read_text())["root"])
    raw = base / "raw"
    data.write_standin(dataset, raw, seed=opts.seed, **profile.standin)
    root = raw
    if dataset in PREPARE:
        root = base / "prepared"
        data.prepare(PREPARE[dataset], raw, root)
    write_text_atomic(done, json.dumps({"root": str(root)}))
    return root


def real_root(dataset: str, data_root: str | None) -> Path:
    if not data_root:
        raise ValueError("the paper profile reads real data: give --data-root DIR (one folder per dataset, "
                         f"e.g. DIR/{dataset}) or --data-root {dataset}=PATH")
    if "=" in data_root:
        roots = dict(item.split("=", 1) for item in data_root.split(","))
        if dataset not in roots:
            raise ValueError(f"--data-root names no folder for {dataset} (got {sorted(roots)})")
        return Path(roots[dataset])
    return Path(data_root) / dataset


def train_model(table: Table, row: Row, root: Path, opts: RunOptions) -> tuple[Path, dict]:
    """Train (or resume, or reuse) the model `row` needs; returns its checkpoint and timing."""
    out = Path(opts.results) / "runs" / f"table{table.number}" / row.model_key
    done = out / "done.json"
    if done.is_file():
        return out / "checkpoint.pt", json.loads(done.read_text())
    cfg = TrainConfig(
        dataset=row.dataset, data_root=root, out=out, split=TRAIN_SPLIT.get(row.dataset, "train"),
        profile=PROFILES[opts.profile].train_profile, backbone=row.backbone, variant=row.variant,
        pooling_blocks=row.pooling_blocks, iterations=opts.iterations, seed=opts.seed, device=opts.device,
        workers=opts.workers, resume=(out / "checkpoint.pt").is_file(), progress=opts.progress,
        checkpoint_every=PROFILES[opts.profile].checkpoint_every,
    )
    start = time.perf_counter()
    checkpoint = train(cfg)
    # the runner always trains for a number of iterations (never --epochs), so the recipe says how many
    timing = {"train_seconds": round(time.perf_counter() - start, 1), "iterations": resolve(cfg).iterations}
    write_text_atomic(done, json.dumps(timing))
    return checkpoint, timing


def evaluate_row(table: Table, row: Row, checkpoint: Path, root: Path, opts: RunOptions) -> tuple[dict, float]:
    out = Path(opts.results) / "runs" / f"table{table.number}" / row.key
    cached = out / "result.json"
    if cached.is_file():
        saved = json.loads(cached.read_text())
        return saved["result"], saved["eval_seconds"]
    scales = PROFILES[opts.profile].scales if row.msc else (1.0,)
    start = time.perf_counter()
    result = evaluate(EvalConfig(checkpoint=checkpoint, dataset=row.dataset, data_root=root, split=row.split,
                                 out=out, scales=scales, crf=row.crf, device=opts.device, workers=opts.workers,
                                 progress=opts.progress))
    seconds = round(time.perf_counter() - start, 1)
    if row.dataset in TEST_SERVER:
        # Tables 4 and 5 are test-server results: write the submission files beside the val scores.
        split, fmt = TEST_SERVER[row.dataset]
        evaluate(EvalConfig(checkpoint=checkpoint, dataset=row.dataset, data_root=root, split=split,
                            save_predictions=out / "test-server", format=fmt, scales=scales, crf=row.crf,
                            device=opts.device, workers=opts.workers, progress=opts.progress))
        result["test_server_files"] = str(out / "test-server")
    write_text_atomic(cached, json.dumps({"result": json_safe(result), "eval_seconds": seconds}, indent=1))
    return result, seconds


def run_table(number: int, opts: RunOptions) -> pd.DataFrame:
    """Run Table `number` and write results/table<N>.{csv,md,png}; returns the tidy results."""
    table = TABLES[number]
    if opts.fresh:
        shutil.rmtree(Path(opts.results) / "runs" / f"table{number}", ignore_errors=True)
    paper = load_paper_table(number)
    by_model: dict[str, list[Row]] = defaultdict(list)
    for row in table.rows:
        by_model[row.model_key].append(row)
    records = []
    version, device = code_version(), device_name(opts.device)
    for rows in by_model.values():
        root = dataset_root(rows[0].dataset, opts)
        checkpoint, timing = train_model(table, rows[0], root, opts)
        for row in rows:
            result, eval_seconds = evaluate_row(table, row, checkpoint, root, opts)
            common = {
                "table": number, "row": row.label, "dataset": row.dataset, "backbone": row.backbone,
                "variant": row.variant,
                "pooling_blocks": default_pooling_blocks(row.dataset) if row.pooling_blocks is None
                else row.pooling_blocks,
                "msc": row.msc, "crf": row.crf, "split": row.split, "profile": opts.profile,
                "data": "standin" if is_standin(root) else "real", "iterations": timing["iterations"],
                "train_seconds": timing["train_seconds"], "eval_seconds": eval_seconds,
                "device": device, "code_version": version,
                "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            }
            for metric in row.metrics:
                records.append({**common, "metric": metric, "class_name": "",
                                "paper_value": paper_value(paper, row, metric),
                                "measured_value": _percent(result.get(metric))})
            if row.per_class:
                for name, iou in result["per_class_iou"].items():
                    records.append({**common, "metric": "iou", "class_name": name,
                                    "paper_value": paper_value(paper, row, "iou", name),
                                    "measured_value": _percent(iou)})
    frame = pd.DataFrame.from_records(records, columns=report.COLUMNS)
    results = Path(opts.results)
    write_text_atomic(results / f"table{number}.csv", frame.to_csv(index=False))
    report.render(number, frame, results)
    return frame


def _percent(value) -> float | None:
    return None if value is None or value != value else round(100.0 * float(value), 2)
