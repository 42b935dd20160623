"""A training run's state and its checkpoint: `Run` (what refinenet/train.py's `build` makes and every step
advances); `save_checkpoint` writes it to the run folder's checkpoint.pt at a step boundary and `restore` reads it
back, which makes a resumed run bit-identical to an uninterrupted one; `check_run_folder` guards the folder and
`kept_checkpoint` says what a stopped run leaves. The checkpoint file's format and loading: refinenet/checkpoint.py.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from refinenet import checkpoint as ckpt_io
from refinenet.atomic import torch_save_atomic
from refinenet.checkpoint import CHECKPOINT_NAME, CheckpointError
from refinenet.config import TrainConfig
from refinenet.data.common import SegmentationFiles
from refinenet.fastpath import FastPath, precision_name
from refinenet.model import RefineNet
from refinenet.recipe import recipe_for
from refinenet.utils import all_gather_object


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped and the last good checkpoint was kept."""


@dataclass
class Run:
    """One training run: what `build` makes, `restore` fills from a checkpoint and every step advances."""

    cfg: TrainConfig  # resolved, with the device's fast path applied
    rank: int
    world: int
    device: torch.device
    fast: FastPath
    fast_label: str  # how the fast path was chosen (refinenet/fastpath.py), for config.json and the log
    train_set: SegmentationFiles
    val_set: SegmentationFiles | None
    model: RefineNet
    ddp_model: nn.Module  # DistributedDataParallel around `model` under torchrun, else `model`
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    total: int  # optimizer steps of the whole run
    image_classes: list[tuple[int, ...]] | None = None  # per training image, for class-balanced sampling
    iteration: int = 0  # optimizer steps done
    last_saved: int | None = None  # the iteration of the checkpoint on disk

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def images_per_step(self) -> int:
        return self.cfg.batch_size * self.cfg.grad_accum * self.world

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.cfg.out) / CHECKPOINT_NAME

    @cached_property
    def record(self) -> dict:
        """The resolved configuration and where it ran: config.json, and every checkpoint's `train_config`."""
        record = {
            **{f.name: getattr(self.cfg, f.name) for f in fields(self.cfg)},
            "iterations": self.total,
            "data_kind": self.train_set.data_kind,
            "train_images": len(self.train_set),
            "world_size": self.world,
            "device": str(self.device),
            "fast_path": self.fast_label,
            "precision": precision_name(self.fast.amp_dtype, self.device),
            "recipe": recipe_for(self.cfg.profile, self.cfg.backbone_weights).to_dict(),
            "model_config": self.model.config_dict(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        }
        return json.loads(json.dumps(record, default=str))


def check_run_folder(cfg: TrainConfig) -> None:
    """A new run never overwrites a checkpoint; `--resume` needs one."""
    out = Path(cfg.out)
    if cfg.resume and not (out / CHECKPOINT_NAME).is_file():
        raise CheckpointError(f"--resume: no checkpoint {CHECKPOINT_NAME} in the run folder {out}")
    if not cfg.resume and (out / CHECKPOINT_NAME).is_file():
        raise CheckpointError(f"{out} already holds a checkpoint; pass --resume to continue it or choose another --out")


def restore(run: Run) -> None:
    """Continue from the run folder's checkpoint: weights, optimizer, schedule, scaler, iteration, RNGs."""
    path = run.checkpoint_path
    ckpt = ckpt_io.load_checkpoint(path, map_location=run.device)
    # a key the checkpoint lacks (written before that knob existed) takes this run's value
    if {**run.model.config_dict(), **ckpt["model_config"]} != run.model.config_dict():
        raise CheckpointError(
            f"{path} was trained with model {ckpt['model_config']}, but this run asks for "
            f"{run.model.config_dict()}; resume with the same model options"
        )
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    run.iteration = run.last_saved = ckpt["iteration"]
    rngs = ckpt["rng"]  # one state per rank of the run that wrote it
    ckpt_io.set_rng_state(rngs[run.rank] if run.rank < len(rngs) else rngs[0])


def save_checkpoint(run: Run) -> None:
    """Every rank checks its weights and hands in its RNG state (dropout differs per rank); rank 0 writes."""
    if not all(torch.isfinite(p).all() for p in run.model.parameters()):
        raise NonFiniteLossError(
            f"weights became non-finite at iteration {run.iteration}; training stopped, the last good "
            f"checkpoint {run.checkpoint_path} (iteration {run.last_saved}) is kept. Try a lower --lr."
        )
    rngs = all_gather_object(ckpt_io.rng_state())
    if run.is_main:
        cfg, info = run.cfg, run.train_set.info
        torch_save_atomic(
            {
                "format": ckpt_io.FORMAT,
                "model": run.model.state_dict(),
                "model_config": run.model.config_dict(),
                "dataset_info": {"name": info.name, "class_names": list(info.class_names),
                                 "palette": [list(c) for c in info.palette]},
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "scaler": run.scaler.state_dict(),
                "iteration": run.iteration,
                "sampler": {"seed": cfg.seed, "consumed_per_rank": run.iteration * cfg.batch_size * cfg.grad_accum},
                "rng": rngs,
                "train_config": run.record,
                "finished": run.iteration == run.total,
            },
            run.checkpoint_path,
        )
    run.last_saved = run.iteration


def kept_checkpoint(run: Run) -> str:
    """What a stopped run leaves behind, for its error message."""
    if run.last_saved is None:
        return "no checkpoint had been written yet"
    return f"the last good checkpoint {run.checkpoint_path} (iteration {run.last_saved}) is kept"
