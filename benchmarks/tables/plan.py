"""What a table run will cost before it runs: `python -m benchmarks.reproduce all --profile paper --plan`.

One line per distinct model across the requested tables (tables share models, benchmarks/tables/store.py): its key,
the table rows it serves, iterations, crop and batch, and an estimate of its training time. The plan needs
neither data nor a GPU. Where a dataset is already there (stand-in data generated, or `--data-root` readable),
a model's key is its store folder's name (the data's identity read as a run reads it, file lists only);
elsewhere the key has the data's identity left out, so it will differ from the folder a run creates
(`key_source` says which). Estimates come from `--calibrate` (a few training steps of each distinct architecture at the
recipe's crop, timed on this device, random weights and inputs) or else from the latest training-step
times in results/efficiency.csv measured on the same device type (`nox -s bench`), scaled to the crop and
batch; without either the plan says that no estimate exists. Writes plan.csv in the results folder.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from benchmarks.provenance import REPO
from benchmarks.tables import store
from benchmarks.tables.data_roots import generated_standin_root, pretrain_dataset, real_root
from benchmarks.tables.run_options import PROFILES, RunOptions, select_rows
from benchmarks.tables.specs import TABLES, TRAIN_SPLIT
from benchmarks.tables.trained import pretrain_config, train_config
from refinenet import data
from refinenet.atomic import write_text_atomic
from refinenet.cli_options import option, positive_int
from refinenet.config import TrainConfig, resolve
from refinenet.utils import resolve_device

EFFICIENCY_CSV = REPO / "results" / "efficiency.csv"
COLUMNS = ["model_key", "key_source", "dataset", "backbone", "variant", "pooling_blocks", "seed", "iterations",
           "crop", "batch", "rows", "row_count", "step_seconds", "estimated_hours", "estimate_source", "device_type",
           "profile"]
# efficiency.csv settings that time the exact fp32 step the suite trains with, best first
EXACT_SETTINGS = ("default", "channels_last", "eager-fp32")


@dataclass
class PlanOptions:
    """`--plan` and its estimate; options of `python -m benchmarks.reproduce`."""

    plan: bool = option(False, "print one line per distinct model the tables need (key, rows served, iterations, "
                        "crop, batch, estimated hours) and write plan.csv in --results; needs no data, trains nothing")
    calibrate: bool = option(False, "with --plan: time a few training steps of each distinct architecture on "
                             "--device for the estimate (else results/efficiency.csv's figures for this device type)")
    calibrate_steps: int = option(3, "timed training steps per architecture (after one warm-up step)",
                                  type=positive_int)
    efficiency_csv: Path = option(EFFICIENCY_CSV, "the efficiency figures the plan reads without --calibrate")


@dataclass
class PlannedModel:
    """One distinct model of a run and the table rows it serves."""

    key: str
    cfg: TrainConfig  # resolved (iterations, crop and batch filled from the recipe)
    rows: list[str]
    key_source: str = "store"  # "store": the folder a run uses; else why the data's identity is left out
    first_stage: bool = False  # a first training stage (Table 4's COCO): it serves rows through the next model

    @property
    def architecture(self) -> tuple:
        c = self.cfg
        return (c.dataset, c.backbone, c.variant, c.pooling_blocks, c.crop_size, c.batch_size, c.freeze_batchnorm,
                c.input_scale)


def plan_models(tables: list[int], opts: RunOptions) -> list[PlannedModel]:
    """The distinct models `tables` train under `opts`, each with the rows it serves, in first-use order."""
    if PROFILES[opts.profile].train_profile is None:
        raise ValueError(f"the {opts.profile} profile trains nothing: there is no plan to make")
    models: dict[str, PlannedModel] = {}
    identities: dict[tuple[str, str], tuple[dict, str]] = {}
    for number in tables:
        for row in select_rows(TABLES[number], opts.rows):
            split = TRAIN_SPLIT.get(row.dataset, "train")
            if (row.dataset, split) not in identities:
                identities[row.dataset, split] = planned_identity(row.dataset, split, opts)
            identity, source = identities[row.dataset, split]
            first = pretrain_dataset(row.dataset, opts)
            for seed in opts.seeds:
                init = None
                if first is not None:  # Table 4: the COCO stage is a model of its own, trained first
                    first_split = TRAIN_SPLIT.get(first, "train")
                    if (first, first_split) not in identities:
                        identities[first, first_split] = planned_identity(first, first_split, opts)
                    first_identity, first_source = identities[first, first_split]
                    first_cfg = pretrain_config(row, opts, seed, first, Path("."))
                    init = store.model_entry(Path("."), first_cfg, opts.profile, first_identity)
                    planned = models.setdefault(init.name,
                                                PlannedModel(init.name, resolve(first_cfg), [], first_source, True))
                    planned.rows.append(f"table {number}: {row.label} ({first} stage)")
                cfg = train_config(row, Path("."), opts, seed)
                key = store.model_entry(Path("."), cfg, opts.profile, identity, init).name
                planned = models.setdefault(key, PlannedModel(key, resolve(cfg), [], source))
                planned.rows.append(f"table {number}: {row.label}")
    return list(models.values())


def planned_identity(dataset: str, split: str, opts: RunOptions) -> tuple[dict, str]:
    """The data identity a run would key `dataset`'s models with, if the data is already there (generating
    nothing), else a data-free one; and where the key comes from."""
    profile = PROFILES[opts.profile]
    if profile.standin is not None:
        root = generated_standin_root(dataset, opts)
        missing = f"configuration only: no {profile.name} stand-in data generated yet for {dataset}"
    else:
        try:
            root = real_root(dataset, opts)
        except ValueError:
            root = None
        missing = f"configuration only: no --data-root given for {dataset}"
    if root is None:
        return {"dataset": dataset, "split": split}, missing
    try:
        return store.data_identity(dataset, root, split), "store"
    except (OSError, ValueError) as err:  # a missing or broken layout: the plan still needs no data
        return {"dataset": dataset, "split": split}, f"configuration only: {dataset} at {root} not readable ({err})"


# ---------------------------------------------------------------------------------------------
# Estimates


def calibrate(models: list[PlannedModel], device: str, steps: int = 3) -> dict[tuple, float]:
    """Median seconds per training step of each distinct architecture on `device`: the recipe's crop and batch,
    its frozen or training batch norm, random weights and inputs (timing does not depend on their values)."""
    # Imported here: the plan itself needs no model code, the estimate does.
    from refinenet.loss import segmentation_loss, training_scores
    from refinenet.train import build_model, build_optimizer

    dev = resolve_device(device)
    seconds = {}
    for planned in models:
        arch = planned.architecture
        if arch in seconds:
            continue
        cfg = dataclasses.replace(planned.cfg, backbone_weights="none")
        classes = data.dataset_info(cfg.dataset).num_classes
        model = build_model(cfg, classes, dev, step_fast_path(cfg, dev))
        optimizer = build_optimizer(model, cfg)
        images = torch.randn(cfg.batch_size, 3, cfg.crop_size, cfg.crop_size, device=dev)
        labels = torch.randint(0, classes, (cfg.batch_size, cfg.crop_size, cfg.crop_size), device=dev)
        model.train()
        times = []
        for i in range(steps + 1):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            segmentation_loss(training_scores(model, images, cfg.input_scale, cfg.loss_at), labels).backward()
            optimizer.step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i:  # the first step warms up (allocations, kernel choice)
                times.append(time.perf_counter() - start)
        seconds[arch] = statistics.median(times)
        del model, optimizer
    return seconds


def step_fast_path(cfg: TrainConfig, device: torch.device):
    """The device's default fast path (refinenet/fastpath.py), with the recipe's --amp where it asks for one."""
    from refinenet.fastpath import AMP_DTYPES, FastPath, default_fast_path

    fast = default_fast_path(device)
    amp = AMP_DTYPES.get(cfg.amp) if cfg.amp not in (None, "none") else fast.amp_dtype
    return FastPath(channels_last=fast.channels_last, amp_dtype=amp)


def efficiency_model_name(cfg: TrainConfig) -> str:
    """How results/efficiency.csv names the architecture (benchmarks/efficiency/models.py's MODELS)."""
    name = f"RefineNet-{cfg.backbone.removeprefix('resnet')}"
    return name if cfg.variant == "4-cascaded" else f"{name}-{cfg.variant}"


def efficiency_estimate(cfg: TrainConfig, figures: pd.DataFrame, device_type: str) -> tuple[float | None, str]:
    """(seconds per step, where it comes from) from the latest matching training-step time in efficiency.csv:
    same architecture and device type, an exact fp32 setting, the nearest input size scaled by pixel count and
    the batch scaled linearly. (None, why not) when no row matches."""
    name = efficiency_model_name(cfg)
    rows = figures[(figures["measurement"] == "train_step_time") & (figures["model"] == name)
                   & (figures["device_type"] == device_type) & figures["setting"].isin(EXACT_SETTINGS)]
    if rows.empty:
        return None, f"no estimate: efficiency.csv has no {name} training step on {device_type}; use --calibrate"
    rows = rows[rows["date"] == rows["date"].max()]
    rows = rows.assign(distance=(rows["input_size"] - cfg.crop_size).abs(),
                       rank=rows["setting"].map(EXACT_SETTINGS.index)).sort_values(["distance", "rank"])
    best = rows.iloc[0]
    size, batch = int(best["input_size"]), int(best["batch"])
    seconds = float(best["value"]) * (cfg.crop_size / size) ** 2 * (cfg.batch_size / batch)
    scaled = "" if (size, batch) == (cfg.crop_size, cfg.batch_size) else \
        f", scaled from {size}px batch {batch}"
    return seconds, (f"efficiency.csv: {name} {best['setting']} on {best['device']} ({best['date']}{scaled})")


def estimates(models: list[PlannedModel], opts: RunOptions, plan_opts: PlanOptions) -> list[tuple]:
    """(seconds per step or None, source) of each planned model."""
    device_type = resolve_device(opts.device).type
    if plan_opts.calibrate:
        timed = calibrate(models, opts.device, plan_opts.calibrate_steps)
        return [(timed[m.architecture], f"--calibrate: median of {plan_opts.calibrate_steps} steps on "
                 f"{resolve_device(opts.device)}") for m in models]
    path = Path(plan_opts.efficiency_csv)
    if not path.is_file():
        return [(None, f"no estimate: {path} is missing (`nox -s bench`); use --calibrate")] * len(models)
    figures = pd.read_csv(path, dtype=str)
    for column in ("input_size", "batch", "value"):  # a concatenated file may repeat its header
        figures[column] = pd.to_numeric(figures[column], errors="coerce")
    return [efficiency_estimate(m.cfg, figures, device_type) for m in models]


# ---------------------------------------------------------------------------------------------
# The plan


def plan_frame(models: list[PlannedModel], found: list[tuple], opts: RunOptions) -> pd.DataFrame:
    device_type = resolve_device(opts.device).type
    records = []
    for planned, (step, source) in zip(models, found):
        c = planned.cfg
        records.append({"model_key": planned.key, "key_source": planned.key_source, "dataset": c.dataset,
                        "backbone": c.backbone, "variant": c.variant,
                        "pooling_blocks": c.pooling_blocks, "seed": c.seed, "iterations": c.iterations,
                        "crop": c.crop_size, "batch": c.batch_size, "rows": "; ".join(planned.rows),
                        "row_count": 0 if planned.first_stage else len(planned.rows),
                        "step_seconds": None if step is None else round(step, 4),
                        "estimated_hours": None if step is None else round(step * c.iterations / 3600, 3),
                        "estimate_source": source, "device_type": device_type, "profile": opts.profile})
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def plan_text(frame: pd.DataFrame) -> str:
    lines = []
    for r in frame.itertuples():
        hours = "no estimate" if pd.isna(r.estimated_hours) else f"{r.estimated_hours:.2f} h"
        lines.append(f"{r.model_key}  it={r.iterations} crop={r.crop} batch={r.batch}  {hours}\n"
                     f"    serves {r.rows}")
        if "slurm_request" in frame:
            lines.append(f"    slurm job: {r.slurm_request}")
    known = frame["estimated_hours"].dropna()
    total = f"{known.sum():.1f} h" if len(known) else "no estimate"
    missing = len(frame) - len(known)
    lines.append(f"{len(frame)} distinct models, {int(frame['row_count'].sum())} table rows; estimated training "
                 f"{total} on one {frame['device_type'].iloc[0] if len(frame) else 'device'}"
                 f"{f' ({missing} models without an estimate)' if missing and len(known) else ''}")
    sources = sorted(set(frame["estimate_source"]))
    lines += [f"estimate: {s}" for s in sources[:3]] + ([f"... and {len(sources) - 3} more"] if len(sources) > 3
                                                        else [])
    return "\n".join(lines)


def run_plan(tables: list[int], opts: RunOptions, plan_opts: PlanOptions, slurm=None) -> pd.DataFrame:
    """Print the plan and write <results>/plan.csv; returns it. With `slurm` (executors.LaunchOptions of
    `--launcher slurm`) every model's line and plan.csv's `slurm_request` say what its job asks for."""
    models = plan_models(tables, opts)
    frame = plan_frame(models, estimates(models, opts, plan_opts), opts)
    if slurm is not None:
        from benchmarks.tables.executors import job_request  # only needed for this column (imports submitit)

        frame["slurm_request"] = job_request(slurm, opts.workers)
    print(plan_text(frame))
    path = Path(opts.results) / "plan.csv"
    write_text_atomic(path, frame.to_csv(index=False))
    print(f"-> {path}")
    return frame
