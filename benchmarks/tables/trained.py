"""Trained models (profiles paper / standin / smoke): the distinct models a table's rows need, each trained once
per seed (after its first stage where the table has one: Table 4's MS COCO), resumed when interrupted; then
every row it serves evaluated. Models and evaluations live in the result store (store.py).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmarks.provenance import precision
from benchmarks.tables import store
from benchmarks.tables.data_roots import check_data, pretrain_dataset
from benchmarks.tables.rows import TableProgress, eval_config, row_records
from benchmarks.tables.run_options import PROFILES, RunOptions, Session
from benchmarks.tables.specs import TEST_SERVER, TRAIN_SPLIT, Row
from refinenet.checkpoint import CHECKPOINT_NAME
from refinenet.config import EvalConfig, TrainConfig
from refinenet.recipe import default_pooling_blocks, get_recipe
from refinenet.utils import launch_rank


def train_config(row: Row, root: Path, opts: RunOptions, seed: int) -> TrainConfig:
    profile = PROFILES[opts.profile]
    return TrainConfig(dataset=row.dataset, data_root=root, out="", split=TRAIN_SPLIT.get(row.dataset, "train"),
                       profile=profile.train_profile, backbone=row.backbone, variant=row.variant,
                       pooling_blocks=row.pooling_blocks, iterations=opts.iterations, seed=seed, device=opts.device,
                       workers=opts.workers, progress=opts.progress, checkpoint_every=profile.checkpoint_every)


@dataclass
class ModelWork:
    """One distinct model of a run: its training configuration, its store entry and the table rows it serves
    ((table number, row) pairs; rows of several tables when they share the model)."""

    cfg: TrainConfig
    entry: store.Entry
    root: Path
    rows: list[tuple[int, Row]] = field(default_factory=list)
    init: ModelWork | None = None  # the first stage, trained before this model and starting it (Table 4: COCO)


def pretrain_config(row: Row, opts: RunOptions, seed: int, dataset: str, root: Path) -> TrainConfig:
    """The first stage of `row`'s model: the same model options on `dataset` (Table 4: COCO as VOC's classes) for
    the recipe's `coco_iterations` (--iterations applies to every stage)."""
    cfg = train_config(row, root, opts, seed)
    pooling = default_pooling_blocks(row.dataset) if row.pooling_blocks is None else row.pooling_blocks
    iterations = opts.iterations or get_recipe(PROFILES[opts.profile].train_profile).coco_iterations
    return dataclasses.replace(cfg, dataset=dataset, split=TRAIN_SPLIT.get(dataset, "train"), pooling_blocks=pooling,
                               iterations=iterations)


def stage_works(row: Row, session: Session, roots: dict[str, Path], seed: int) -> tuple[TrainConfig, ModelWork | None]:
    """`row`'s model configuration and the work of its first stage (None without one); the configuration starts
    from the first stage's checkpoint."""
    opts = session.opts
    cfg = train_config(row, roots[row.dataset], opts, seed)
    first = pretrain_dataset(row.dataset, opts)
    if first is None:
        return cfg, None
    root = roots[first]
    first_cfg = pretrain_config(row, opts, seed, first, root)
    entry = store.model_entry(session.store_dir, first_cfg, opts.profile,
                              session.data_identity(first, root, first_cfg.split))
    init = ModelWork(first_cfg, entry, root)
    return dataclasses.replace(cfg, init_from=entry.folder / CHECKPOINT_NAME), init


def trained_stages(work: ModelWork, stamp: dict, fresh=None) -> dict:
    """Train `work`'s first stage (if any) and then its model, each resuming or skipped when done; returns the
    model's done.json record. `fresh(entry)` empties an entry first where --fresh asks. A model finished from an
    earlier first stage than the one trained now is trained again (its key names the first stage, not its run)."""
    fresh = fresh or (lambda entry: entry)
    if work.init is not None:
        first = fresh(work.init.entry)
        retrained = not store.is_trained(first)
        store.trained_model(first, work.init.cfg, stamp)
        if retrained and work.entry.folder.exists():
            work.entry.remove()
    return store.trained_model(fresh(work.entry), work.cfg, stamp)


def table_models(number: int, rows: list[Row], session: Session, roots: dict[str, Path]) -> list[ModelWork]:
    """The models Table `number`'s `rows` need, one per distinct model and seed, in training order."""
    opts = session.opts
    by_model: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_model[row.model_key].append(row)
    works = []
    for seed in opts.seeds:
        for group in by_model.values():
            root = roots[group[0].dataset]
            cfg, init = stage_works(group[0], session, roots, seed)
            model = store.model_entry(session.store_dir, cfg, opts.profile,
                                      session.data_identity(group[0].dataset, root, cfg.split),
                                      init.entry if init else None)
            works.append(ModelWork(cfg, model, root, [(number, row) for row in group], init))
    return works


def row_evaluation(work: ModelWork, row: Row, done: dict, opts: RunOptions, store_dir: Path,
                   identity=store.data_identity) -> tuple[store.Entry, EvalConfig, tuple | None]:
    """(store entry, configuration, test-server split and format) of evaluating `row` on `work`'s trained model
    (`done`: its done.json record)."""
    ev_cfg = eval_config(row, work.entry.folder / CHECKPOINT_NAME, work.root, opts)
    test_server = TEST_SERVER.get(row.dataset)
    ev = store.eval_entry(store_dir, {"model": work.entry.name, "trained_at": done["finished_at"]}, ev_cfg,
                          identity(row.dataset, work.root, row.split), test_server)
    return ev, ev_cfg, test_server


def train_and_evaluate(work: ModelWork, opts: RunOptions, stamp: dict) -> dict:
    """Train `work`'s model (resuming an interrupted run) and evaluate every row it serves; what a launcher's job
    runs. Returns the model's done.json record."""
    done = trained_stages(work, stamp)
    if launch_rank() == 0:  # under DDP the first process evaluates
        for _, row in work.rows:
            ev, ev_cfg, test_server = row_evaluation(work, row, done, opts, work.entry.folder.parents[1])
            store.evaluated(ev, ev_cfg, test_server, stamp)
    return done


def trained_rows(number: int, rows: list[Row], paper: pd.DataFrame, session: Session) -> list[dict]:
    opts, stamp = session.opts, session.provenance.stamp()
    roots = check_data(rows, opts, training=True)
    works = table_models(number, rows, session, roots)
    progress = TableProgress(number, len(works), len(rows) * len(opts.seeds), opts.progress)
    records = []
    try:
        for work in works:
            progress.next_model()
            done = trained_stages(work, stamp, session.fresh)
            model = work.entry
            for _, row in work.rows:
                ev, ev_cfg, test_server = row_evaluation(work, row, done, opts, session.store_dir,
                                                         session.data_identity)
                ev = session.fresh(ev)
                evaluation = store.evaluated(ev, ev_cfg, test_server, stamp)
                columns = {"seed": work.cfg.seed, "data": ev.key["data"]["kind"],
                           "precision": precision(done.get("precision"), evaluation["result"].get("precision")),
                           "iterations": done["iterations"], "train_seconds": done["train_seconds"],
                           "model_key": model.name, "eval_key": ev.name, "checkpoint": "",
                           "checkpoint_sha256": "", "note": ""}
                records += row_records(number, row, paper, evaluation, columns, session, done.get("dirty", False))
                progress.row_done()
    finally:
        progress.close()
    return records
