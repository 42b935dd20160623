"""Run one table of the paper: train each model it needs, evaluate each row, write tidy results.

Models and evaluations live in the result store (benchmarks/store.py, `results/runs/`), keyed by what makes
their numbers, so an interrupted run resumes, a finished row is not recomputed, tables share models, and a
change of profile, iterations, seed, data or evaluation setting makes a new entry (`fresh=True` redoes the
entries a run needs). `--profile released` trains nothing: it evaluates the authors' released checkpoints
for the rows they cover (benchmarks/released.py). Before any work every split a table reads is checked
once (refinenet/preflight.py). Outputs: `results/table<N>.csv` (one row per measurement, columns
`report.COLUMNS`), `.md` and `.png`; `results/released.csv` / `.md` for the released checkpoints' summary.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from benchmarks import released, report, store
from benchmarks.paper_tables import load_paper_table, paper_value
from benchmarks.provenance import (
    DirtyTreeError,
    Provenance,
    check_results_folder,
    precision,
    read_provenance,
    writes_repository_results,
)
from benchmarks.tables import MEASURED_SPLIT, PRETRAIN, TABLES, TEST_SERVER, TRAIN_SPLIT, Row, Table
from refinenet import data
from refinenet.atomic import write_text_atomic
from refinenet.checkpoint import CHECKPOINT_NAME
from refinenet.cli_options import option
from refinenet.config import EvalConfig, TrainConfig
from refinenet.inference import PAPER_SCALES
from refinenet.metrics import chance_scores
from refinenet.preflight import check_splits
from refinenet.recipe import default_pooling_blocks, get_recipe
from refinenet.utils import launch_rank

REPO = Path(__file__).resolve().parents[1]
__all__ = ["PROFILES", "RunOptions", "Session", "paper_value", "run_released_summary", "run_table"]

# Datasets whose public release (and so their stand-in) needs `refinenet prepare` before loading.
PREPARE = {"voc2012": "sbd", "nyudv2": "nyudv2", "sunrgbd": "sunrgbd", "pascal_context": "pascal_context",
           "person_part": "person_part"}
STANDIN_SEED = 0  # the stand-in data is the same whatever the training seed


@dataclass(frozen=True)
class Profile:
    """How a table run is sized. `standin`/`smoke` generate stand-in data; `paper`/`released` read real data."""

    name: str
    train_profile: str | None  # the engine's recipe (refinenet/recipe.py); None: nothing is trained
    scales: tuple[float, ...]  # multi-scale evaluation
    standin: dict | None  # refinenet standin arguments, None = real data
    checkpoint_every: int | None = None  # None: the recipe's


PROFILES = {
    # released evaluation code: scales 0.4-1.2 averaged (guosheng/refinenet main/demo_predict_mscale_<dataset>.m)
    "paper": Profile("paper", "paper", PAPER_SCALES, None),
    # the authors' released checkpoints, evaluated as the paper's rows say; no training
    "released": Profile("released", None, PAPER_SCALES, None),
    # ours: small enough that every table finishes in minutes on 2 CPU cores
    "standin": Profile("standin", "standin", (0.75, 1.0, 1.25), {"train": 48, "val": 12, "size": (120, 160)}),
    # ours: seconds per row, for the tests
    "smoke": Profile("smoke", "smoke", (0.8, 1.0), {"train": 4, "val": 2, "size": (64, 80)}, checkpoint_every=1000),
}


@dataclass
class RunOptions:
    """How tables are run; every field is an option of `python -m benchmarks.reproduce`."""

    profile: str = option("standin", choices=tuple(sorted(PROFILES)))
    data_root: str | None = option(None, "paper / released profile: DIR with one folder per dataset (DIR/voc2012, "
                                   "...) or name=PATH[,name=PATH]")
    weights: Path | None = option(None, "released profile: DIR holding the authors' refinenet_res{101,152}_<dataset>"
                                        ".mat and/or the conversions refinenet{50,101,152}_{voc,nyu}.pth.tar")
    results: Path = option(REPO / "results", "where table<N>.* and runs/ (the result store) go")
    cache: Path = option(REPO / ".cache", "where stand-in data, pre-flight stamps and checksums go")
    device: str = option("auto", "auto, cpu, cuda, cuda:1, ...")
    workers: int = option(0, "data-loader workers")
    fresh: bool = option(False, "redo the models and evaluations these tables need (other store entries stay)")
    iterations: int | None = option(None, "override the profile's training iterations (e.g. quick looks at real data)")
    seeds: Sequence[int] = option((0,), "training seeds: each model is trained and evaluated once per seed")
    rows: Sequence[str] = option((), "only the rows whose label contains one of these texts")
    allow_dirty: bool = option(False, "write the repository's results/ from a tree with uncommitted changes (every "
                               "row is stamped dirty=true)")
    progress: bool = option(True, "no progress bars")
    coco: bool = option(True, "Table 4's VOC models from ImageNet weights only, without the COCO stage the paper's "
                        "had (Sec. 4.2; the recipe's `coco`): the ablation, and today's models before COCO")


@dataclass
class Session:
    """What one command shares across its tables: the provenance read once at start and the store entries
    `--fresh` already redid (so a model two tables share is retrained once)."""

    opts: RunOptions
    provenance: Provenance
    refreshed: set[Path] = field(default_factory=set)
    identities: dict = field(default_factory=dict)

    @classmethod
    def start(cls, opts: RunOptions) -> Session:
        if opts.profile == "released" and tuple(opts.seeds) != (0,):
            raise ValueError("--seeds does not apply to --profile released (nothing is trained)")
        provenance = read_provenance(opts.device)
        check_results_folder(opts.results, provenance, opts.allow_dirty)
        return cls(opts, provenance)

    @property
    def store_dir(self) -> Path:
        return Path(self.opts.results) / "runs"

    def fresh(self, entry: store.Entry) -> store.Entry:
        """`entry`, emptied first when --fresh asks (once per command)."""
        if self.opts.fresh and entry.folder not in self.refreshed:
            entry.remove()
            self.refreshed.add(entry.folder)
        return entry

    def data_identity(self, dataset: str, root: Path, split: str) -> dict:
        if (dataset, root, split) not in self.identities:
            self.identities[dataset, root, split] = store.data_identity(dataset, root, split)
        return self.identities[dataset, root, split]


# ---------------------------------------------------------------------------------------------
# Data


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


def select_rows(table: Table, patterns: Sequence[str]) -> list[Row]:
    if not patterns:
        return list(table.rows)
    unmatched = [p for p in patterns if not any(p in row.label for row in table.rows)]
    if unmatched:
        labels = "; ".join(dict.fromkeys(row.label for row in table.rows))
        raise ValueError(f"--rows {unmatched} match no row of table {table.number} (rows: {labels})")
    return [row for row in table.rows if any(p in row.label for p in patterns)]


# ---------------------------------------------------------------------------------------------
# Result rows


def measurements(row: Row, paper: pd.DataFrame, result: dict | None) -> list[dict]:
    """The row's metrics (and per-class IoU): paper, measured and majority-class values, in percent."""
    chance = chance_scores(result["class_pixels"]) if result and result.get("class_pixels") else None
    found = []
    for metric in row.metrics:
        found.append({"metric": metric, "class_name": "", "paper_value": paper_value(paper, row, metric),
                      "measured_value": _percent(result.get(metric)) if result else None,
                      "chance_value": _percent(chance[metric]) if chance else None})
    if row.per_class:
        for i, name in enumerate(data.dataset_info(row.dataset).class_names):
            found.append({"metric": "iou", "class_name": name, "paper_value": paper_value(paper, row, "iou", name),
                          "measured_value": _percent(result["per_class_iou"].get(name)) if result else None,
                          "chance_value": _percent(chance["iou"][i]) if chance else None})
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


def _percent(value) -> float | None:
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


# ---------------------------------------------------------------------------------------------
# Trained models (profiles paper / standin / smoke)


def eval_config(row: Row, checkpoint: Path, root: Path, opts: RunOptions) -> EvalConfig:
    scales = PROFILES[opts.profile].scales if row.msc else (1.0,)
    return EvalConfig(checkpoint=checkpoint, dataset=row.dataset, data_root=root, split=row.split, scales=scales,
                      crf=row.crf, device=opts.device, workers=opts.workers, progress=opts.progress)


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


# ---------------------------------------------------------------------------------------------
# Released checkpoints (profile released)


def released_rows(number: int, rows: list[Row], paper: pd.DataFrame, session: Session) -> list[dict]:
    opts, stamp = session.opts, session.provenance.stamp()
    covered = [row for row in rows if row.weights]
    describe = {row.key: f"table {number} '{row.label}' ({row.dataset})" for row in covered}
    chosen = released.require_weights(opts.weights, {describe[row.key]: row.weights for row in covered})
    roots = check_data(covered, opts, training=False)
    progress = TableProgress(number, len({chosen[d][0] for d in chosen}), len(rows), opts.progress)
    records, seen = [], []
    try:
        for row in rows:
            if not row.weights:
                records += row_records(number, row, paper, None, {"note": "no released weights"}, session)
                progress.row_done()
                continue
            name, path = chosen[describe[row.key]]
            if name not in seen:
                seen.append(name)
                progress.next_model()
            sha = released.file_sha256(path, Path(opts.cache) / "sha256.json")
            checkpoint, found = released.checkpoint_for(name, path, Path(opts.cache))
            ev_cfg = eval_config(row, checkpoint, roots[row.dataset], opts)
            test_server = TEST_SERVER.get(row.dataset)
            ev = session.fresh(store.eval_entry(
                session.store_dir, {"released": name, "sha256": sha}, ev_cfg,
                session.data_identity(row.dataset, roots[row.dataset], row.split), test_server))
            evaluation = store.evaluated(ev, ev_cfg, test_server, stamp)
            columns = {"data": ev.key["data"]["kind"],
                       "precision": precision(None, evaluation["result"].get("precision")),
                       "model_key": f"{name}@{sha[:16]}", "eval_key": ev.name, "checkpoint": name,
                       "checkpoint_sha256": sha, "note": released.released_note(row, name, found)}
            records += row_records(number, row, paper, evaluation, columns, session)
            progress.row_done()
    finally:
        progress.close()
    return records


def run_released_summary(opts: RunOptions, session: Session | None = None) -> pd.DataFrame:
    """Each released checkpoint in --weights on its dataset's measured split, single- and multi-scale, beside
    the paper's and the converters' figures: results/released.csv and .md."""
    session = session or Session.start(opts)
    stamp, records = session.provenance.stamp(), []
    for name, path in released.present_weights(opts.weights).items():
        dataset = released.RELEASED_FILES[name][0]
        split = MEASURED_SPLIT[dataset]
        root = real_root(dataset, opts)
        check_splits(dataset, root, [split], cache_dir=Path(opts.cache) / "preflight", progress=opts.progress)
        sha = released.file_sha256(path, Path(opts.cache) / "sha256.json")
        checkpoint, found = released.checkpoint_for(name, path, Path(opts.cache))
        for msc in (False, True):
            cfg = EvalConfig(checkpoint=checkpoint, dataset=dataset, data_root=root, split=split,
                             scales=PAPER_SCALES if msc else (1.0,), device=opts.device, workers=opts.workers,
                             progress=opts.progress)
            ev = session.fresh(store.eval_entry(session.store_dir, {"released": name, "sha256": sha}, cfg,
                                                session.data_identity(dataset, root, split), None))
            evaluation = store.evaluated(ev, cfg, None, stamp)
            result = evaluation["result"]
            chance = chance_scores(result["class_pixels"]) if result.get("class_pixels") else {}
            columns = {"checkpoint_sha256": sha, "dataset": dataset, "profile": "released",
                       "data": ev.key["data"]["kind"], "precision": precision(None, result.get("precision")),
                       "eval_seconds": evaluation["eval_seconds"], "device": evaluation["device"],
                       "torch": evaluation["torch"], "code_version": session.provenance.code_version,
                       "dirty": bool(session.provenance.dirty or evaluation.get("dirty")), "eval_key": ev.name,
                       "finished_at": evaluation["finished_at"]}
            records += released.summary_records(
                name, split, msc, {m: _percent(result.get(m)) for m in released.SUMMARY_METRICS},
                {m: _percent(chance.get(m)) for m in released.SUMMARY_METRICS}, columns, found)
    frame = pd.DataFrame.from_records(records, columns=released.SUMMARY_COLUMNS)
    results = check_before_writing("released", frame, session)
    write_text_atomic(results / "released.csv", frame.to_csv(index=False))
    write_text_atomic(results / "released.md", released.summary_markdown(frame))
    return frame


# ---------------------------------------------------------------------------------------------
# A table


def check_before_writing(name: str, frame: pd.DataFrame, session: Session) -> Path:
    """The results folder, unless rows made from uncommitted code would land in the repository's results/."""
    results = Path(session.opts.results)
    if frame["dirty"].any() and not session.opts.allow_dirty and writes_repository_results(results):
        raise DirtyTreeError(f"{name}: some rows reuse models or evaluations made from uncommitted code (their store "
                             "entries say dirty=true); rerun with --fresh, or pass --allow-dirty")
    return results


def run_table(number: int, opts: RunOptions, session: Session | None = None) -> pd.DataFrame:
    """Run Table `number` and write results/table<N>.{csv,md,png}; returns the tidy results."""
    session = session or Session.start(opts)
    rows = select_rows(TABLES[number], opts.rows)
    paper = load_paper_table(number)
    if opts.profile == "released":
        records = released_rows(number, rows, paper, session)
    else:
        records = trained_rows(number, rows, paper, session)
    frame = pd.DataFrame.from_records(records, columns=report.COLUMNS)
    results = check_before_writing(f"table {number}", frame, session)
    write_text_atomic(results / f"table{number}.csv", frame.to_csv(index=False))
    report.render(number, frame, results)
    return frame
