"""Training: `train(TrainConfig) -> Path` (the final checkpoint), which `refinenet train` runs.

Shape after torchvision's references/segmentation/train.py: `build` makes data, model, optimizer,
schedule and grad scaler; `restore` continues a run from its checkpoint; `train_one_step` is one
optimizer step (Sec. 4 trains end-to-end with SGD, one image per step in the released code,
guosheng/refinenet main/gen_net_opts_model_type1.m); `TrainingLog` reports; `train` loops.
Checkpoints make a resumed run bit-identical to an uninterrupted one; DistributedDataParallel when
started by torchrun. The loss's inputs are in refinenet/loss.py, the sample order in data/sampling.py.

This module is the loop and what builds it; the loop uses, and they never import it back: the run's state and
its checkpoint (`Run`, `save_checkpoint`, `restore`) in train_state.py, the training batches in train_data.py,
`TrainingLog` in train_log.py and the stop signals in train_stop.py.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torchvision
from torch import nn

from refinenet import checkpoint as ckpt_io
from refinenet import data
from refinenet.atomic import remove_stale_temps, write_text_atomic
from refinenet.backbones import Bottleneck
from refinenet.checkpoint import CHECKPOINT_NAME, CheckpointError
from refinenet.config import TrainConfig, resolve
from refinenet.evaluate import evaluate_dataset, write_metrics
from refinenet.fastpath import (
    AMP_DTYPES,
    FastPath,
    apply_fast_path,
    autocast,
    choose_fast_path,
    precision_name,
    prepare_input,
)
from refinenet.loss import segmentation_loss, training_scores
from refinenet.model import RefineNet, build_refinenet
from refinenet.preflight import check_splits
from refinenet.recipe import get_recipe, recipe_for
from refinenet.train_data import (
    build_loader,
    calibrate_batchnorm,
    calibration_batches,
    guarded_batches,
    training_class_index,
)
from refinenet.train_log import TrainingLog
from refinenet.train_state import NonFiniteLossError, Run, check_run_folder, kept_checkpoint, restore, save_checkpoint
from refinenet.train_stop import TrainingStopped, stop_requested, stop_requests
from refinenet.utils import all_gather_object, all_reduce_mean, barrier, init_distributed, launch_rank, slurm_cpus

# ---------------------------------------------------------------------------------------------
# Learning rate


def lr_factor(iteration: int, cfg: TrainConfig, total: int) -> float:
    """Multiplier of the base learning rate before optimizer step `iteration` (0-based)."""
    # released: fixed, then continued at 0.1x (main/demo_refinenet_train_reduce_learning_rate.m)
    if cfg.lr_schedule == "step":
        return 1.0 if iteration < round(cfg.lr_drop_at * total) else get_recipe(cfg.profile).lr_drop_factor
    if cfg.lr_schedule == "poly":
        return (1.0 - iteration / total) ** get_recipe(cfg.profile).poly_power
    return 1.0


def build_optimizer(model, cfg: TrainConfig) -> torch.optim.SGD:
    groups = model.parameter_groups()
    # released: 5e-4 for the new layers, 0.1x for the pretrained ResNet; weight decay on all.
    return torch.optim.SGD(
        [
            {"params": groups["refine"], "lr": cfg.lr, "name": "refine"},
            {"params": groups["backbone"], "lr": cfg.lr * cfg.backbone_lr_mult, "name": "backbone"},
        ],
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )


# ---------------------------------------------------------------------------------------------
# Building a run


def run_fast_path(cfg: TrainConfig, device: torch.device, rank: int) -> tuple[FastPath, str]:
    """(fast path, label) of the run (refinenet/fastpath.py): fp32 unless --amp; the layout from
    --channels-last / --no-channels-last, else the device's choice, made on rank 0 for every process.
    A resumed run keeps the layout it started with (config.json): bit-exact resume needs it."""
    if cfg.channels_last is None and cfg.resume:
        started = _config_json(cfg).get("channels_last")
        if isinstance(started, bool):
            fast = FastPath(channels_last=started, amp_dtype=AMP_DTYPES[cfg.amp])
            return fast, f"{fast.name} (the layout the run started with)"
    choice = None
    if rank == 0:
        choice = choose_fast_path(device, step="train", batchnorm_trains=not cfg.freeze_batchnorm,
                                  channels_last=cfg.channels_last, amp=cfg.amp, enabled=cfg.fast_path)
    return all_gather_object(choice)[0]


def _config_json(cfg: TrainConfig) -> dict:
    try:
        return json.loads((Path(cfg.out) / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def build_model(cfg: TrainConfig, num_classes: int, device: torch.device, fast: FastPath) -> RefineNet:
    model = build_refinenet(
        num_classes,
        backbone_weights=cfg.backbone_weights,
        backbone=cfg.backbone,
        variant=cfg.variant,
        pooling_blocks=cfg.pooling_blocks,
        block_layout=cfg.block_layout,
        pool_order=cfg.pool_order,
        freeze_batchnorm=cfg.freeze_batchnorm,
        new_layer_init=cfg.new_layer_init,
    ).to(device)
    if cfg.zero_init_residual and cfg.backbone_weights in (None, "none"):
        zero_init_residual(model)
    return apply_fast_path(model, fast)


def zero_init_residual(model: nn.Module) -> None:
    """Zero the scale of every ResNet bottleneck's last batch norm: each residual block starts as the
    identity, which keeps a deep random-init network's activations and gradients tame (Goyal et al. 2017)."""
    for module in model.modules():
        if isinstance(module, (torchvision.models.resnet.Bottleneck, Bottleneck)):
            nn.init.zeros_(module.bn3.weight)


def fit_cpu_grant(cfg: TrainConfig, device: torch.device) -> TrainConfig:
    """Inside a SLURM job, use the CPUs it was granted, no more: torch starts one thread per core of the node
    otherwise, which on a 1-CPU grant ran about 20x slower than on 2 (issue 22). A CPU run computes on all of
    them; a GPU process keeps one for itself and at most the rest for data-loader workers."""
    cpus = slurm_cpus()
    if cpus is None:
        return cfg
    if device.type == "cpu":
        torch.set_num_threads(cpus)
        return cfg
    workers = min(cfg.workers, cpus - 1)
    torch.set_num_threads(max(1, cpus - workers))
    return replace(cfg, workers=workers)


def build(cfg: TrainConfig) -> Run:
    """Join the torchrun processes (if any) and build data, model, optimizer, schedule and grad scaler."""
    rank, world, device = init_distributed(cfg.device)
    cfg = fit_cpu_grant(cfg, device)
    fast, fast_label = run_fast_path(cfg, device, rank)
    cfg = replace(cfg, channels_last=fast.channels_last)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank

    train_set = data.load_dataset(cfg.dataset, cfg.data_root, cfg.split)
    if not train_set.has_labels:
        raise ValueError(f"split {cfg.split!r} of {cfg.dataset} has no labels; it cannot be trained on")
    per_step = cfg.batch_size * cfg.grad_accum * world
    total = cfg.iterations if cfg.iterations is not None else max(1, math.ceil(cfg.epochs * len(train_set) / per_step))

    model = build_model(cfg, train_set.info.num_classes, device, fast)
    if cfg.init_from and not cfg.resume:
        load_initial_weights(model, cfg.init_from, device)
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, cfg, total))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    ddp_model = model
    if world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    val_set = data.load_dataset(cfg.dataset, cfg.data_root, cfg.val_split) if cfg.val_split else None
    classes = training_class_index(cfg, train_set, rank == 0) if cfg.class_balanced else None
    return Run(cfg, rank, world, device, fast, fast_label, train_set, val_set, model, ddp_model, optimizer, scheduler,
               scaler, total, classes)


def load_initial_weights(model: RefineNet, path: str | Path, device: torch.device) -> None:
    """Start from the weights of another run of ours, every layer (Table 4: the VOC stage from the COCO stage's
    model, paper Sec. 4.2); its model options and classes must be this run's."""
    ckpt = ckpt_io.load_checkpoint(path, map_location=device)
    if {**model.config_dict(), **ckpt["model_config"]} != model.config_dict():
        raise CheckpointError(f"--init-from {path} was trained with model {ckpt['model_config']}, but this run builds "
                              f"{model.config_dict()}; start from a checkpoint of the same model and classes")
    model.load_state_dict(ckpt["model"])


# ---------------------------------------------------------------------------------------------
# One step, validation


def train_one_step(run: Run, batches) -> tuple[float, list[float]]:
    """One optimizer step over `grad_accum` micro-batches from `batches`. Returns the loss (the mean over
    every process) and the learning rates the step used; a NaN or infinite loss stops the run before
    the weights change."""
    cfg, optimizer = run.cfg, run.optimizer
    optimizer.zero_grad(set_to_none=True)
    step_loss = torch.zeros((), device=run.device)
    for micro in range(cfg.grad_accum):
        images, labels = next(batches)
        images, labels = images.to(run.device, non_blocking=True), labels.to(run.device, non_blocking=True)
        images = prepare_input(images, run.fast)
        sync = run.world == 1 or micro == cfg.grad_accum - 1  # DDP all-reduces gradients on the last one only
        with contextlib.nullcontext() if sync else run.ddp_model.no_sync():
            with autocast(run.fast, run.device):
                scores = training_scores(run.ddp_model, images, cfg.input_scale, cfg.loss_at)
            loss = segmentation_loss(scores, labels, run.train_set.info.ignore_index)  # labels shrunk to the scores
            run.scaler.scale(loss / cfg.grad_accum).backward()
        step_loss += loss.detach() / cfg.grad_accum
    step_loss = all_reduce_mean(step_loss)  # every rank sees the same value and stops together
    if not torch.isfinite(step_loss):
        raise NonFiniteLossError(
            f"loss is {step_loss.item()} at iteration {run.iteration + 1}; training stopped, {kept_checkpoint(run)}. "
            f"Try a lower --lr (now {cfg.lr}) or --amp none."
        )
    lrs = [group["lr"] for group in optimizer.param_groups]  # the rates this step uses
    run.scaler.step(optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.iteration += 1
    return step_loss.item(), lrs


def validate(run: Run, log: TrainingLog) -> None:
    """Single-scale scores on the validation split: `out/val/metrics.json` and a line in the log."""
    cfg, recipe = run.cfg, recipe_for(run.cfg.profile, run.cfg.backbone_weights)
    short_edge = run.val_set.info.test_short_edge if cfg.short_edge_clamp else None
    result = evaluate_dataset(run.model, run.val_set, run.device, mean=recipe.mean, std=recipe.std,
                              short_edge=short_edge, input_scale=cfg.input_scale, workers=cfg.workers,
                              progress=False)
    if not run.is_main or result is None:
        return
    result.update({"iteration": run.iteration, "checkpoint": str(run.checkpoint_path),
                   "fast_path": f"{FastPath(run.fast.channels_last).name} (the training model's layout)",
                   "precision": precision_name(None, run.device)})
    write_metrics(result, Path(cfg.out) / "val")
    print(f"validation ({cfg.val_split}, iteration {run.iteration}): mIoU {result['miou']:.4f}")
    log.write({"iteration": run.iteration, "val_miou": result["miou"], "val_pixel_acc": result["pixel_acc"]})


# ---------------------------------------------------------------------------------------------
# The run


def train(cfg: TrainConfig, *, on_iteration: Callable[[int], None] | None = None) -> Path:
    """Train as `cfg` says; returns the path of the final checkpoint (`out/checkpoint.pt`).

    `on_iteration(iteration)`, if given, is called after every optimizer step and its checkpoint.
    """
    cfg = resolve(cfg)
    check_run_folder(cfg)
    if launch_rank() == 0:
        remove_stale_temps(Path(cfg.out) / CHECKPOINT_NAME)  # left by a process killed while writing
        if cfg.preflight:  # every file of the splits read once: one error listing the bad ones, not one hours in
            check_splits(cfg.dataset, cfg.data_root, [cfg.split, cfg.val_split], progress=cfg.progress)
    run = build(cfg)
    if cfg.resume:
        restore(run)
    if run.is_main:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(cfg.out) / "config.json", json.dumps(run.record, indent=2) + "\n")
        print(f"fast path: {run.fast_label}; precision {run.record['precision']}")
    if run.iteration >= run.total:
        if run.is_main:
            print(f"{run.checkpoint_path} is already at iteration {run.iteration} of {run.total}; nothing to do")
        return run.checkpoint_path

    if run.iteration == 0 and run.cfg.bn_calibration_batches:
        calibrate_batchnorm(run.model, guarded_batches(run, calibration_batches(run)), run.world)
    batches = guarded_batches(run, build_loader(run))
    log = TrainingLog(run)
    run.ddp_model.train()
    try:
        with stop_requests() as requested:
            while run.iteration < run.total:
                log.step(*train_one_step(run, batches))
                if run.cfg.eval_every and run.val_set is not None and run.iteration % run.cfg.eval_every == 0 \
                        and run.iteration < run.total:
                    validate(run, log)
                    run.ddp_model.train()
                signum = stop_requested(requested, run.world)
                if run.iteration % run.cfg.checkpoint_every == 0 or run.iteration == run.total or signum:
                    save_checkpoint(run)
                if on_iteration is not None:
                    on_iteration(run.iteration)
                if signum:
                    log.write({"iteration": run.iteration, "stopped_by": signal.Signals(signum).name})
                    raise TrainingStopped(signum, run.iteration, run.checkpoint_path)
    finally:
        log.close()
    if run.val_set is not None:
        validate(run, log)
    barrier()
    return run.checkpoint_path
