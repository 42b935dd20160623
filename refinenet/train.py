"""Training: `train(TrainConfig) -> Path` (the final checkpoint) and the `refinenet train` command.

Shape after torchvision's references/segmentation/train.py, kept small: build data, model and
optimizer; one loop over iterations (Sec. 4 trains end-to-end with SGD, one image per step in the
released code, official-recipe.md); checkpoints that make a resumed run bit-identical to an
uninterrupted one; DistributedDataParallel when started by torchrun.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from refinenet import checkpoint as ckpt_io
from refinenet import data
from refinenet.atomic import torch_save_atomic, write_text_atomic
from refinenet.checkpoint import CHECKPOINT_NAME, CheckpointError
from refinenet.data.sampling import ResumableSampler, SeededAugmentation
from refinenet.data.transforms import TrainTransform
from refinenet.evaluate import evaluate_dataset, write_metrics
from refinenet.fastpath import (
    AMP_DTYPES,
    AMP_MODES,
    FastPath,
    amp_mode,
    apply_fast_path,
    autocast,
    default_fast_path,
    prepare_input,
)
from refinenet.model import build_refinenet
from refinenet.recipe import LR_SCHEDULES, default_pooling_blocks, get_recipe
from refinenet.utils import all_gather_object, all_reduce_mean, barrier, init_distributed


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped and the last good checkpoint was kept."""


@dataclass
class TrainConfig:
    """Everything one training run needs. `None` = take the value from the profile's recipe."""

    dataset: str
    data_root: str | Path
    out: str | Path
    split: str = "train"
    val_split: str | None = None  # evaluated (single scale) at the end and every `eval_every` iterations
    profile: str = "paper"
    # model knobs (refinenet.model.RefineNetConfig)
    backbone: str = "resnet101"
    variant: str = "4-cascaded"
    pooling_blocks: int | None = None  # None: 4 for VOC / Person-Part, else 2 (paper Sec. 3.2, 4.1, 4.2)
    block_layout: str = "released"
    pool_order: str = "pool_conv"
    backbone_weights: str | None = None  # torchvision enum name, a .pth path, or "none"
    # recipe overrides
    crop_size: int | None = None
    batch_size: int | None = None
    iterations: int | None = None
    epochs: float | None = None  # alternative to iterations: passes over the training split
    lr: float | None = None
    backbone_lr_mult: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    lr_schedule: str | None = None
    lr_drop_at: float | None = None
    input_scale: float | None = None
    freeze_batchnorm: bool | None = None
    amp: str | None = None
    checkpoint_every: int | None = None
    log_every: int | None = None
    eval_every: int | None = None
    # machinery
    channels_last: bool = False
    fast_path: bool = True  # the device's fastest correct setting (refinenet/fastpath.py); False = as given
    grad_accum: int = 1
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    resume: bool = False
    progress: bool = True
    debug_nan_at: int | None = None  # tests: make the loss NaN at this iteration
    stop_after: int | None = None  # tests: stop after this iteration as if killed (after its checkpoint, if any)


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill every `None` from the recipe and check the values; raises ValueError with a clear message."""
    recipe = get_recipe(cfg.profile)
    if cfg.dataset not in data.DATASET_NAMES:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; valid names: {', '.join(data.DATASET_NAMES)}")
    defaults = {
        "pooling_blocks": default_pooling_blocks(cfg.dataset),
        "backbone_weights": recipe.backbone_weights,
        "crop_size": recipe.crop_size_for(cfg.dataset),
        "batch_size": recipe.batch_size,
        "lr": recipe.lr,
        "backbone_lr_mult": recipe.backbone_lr_mult,
        "momentum": recipe.momentum,
        "weight_decay": recipe.weight_decay,
        "lr_schedule": recipe.lr_schedule,
        "lr_drop_at": recipe.lr_drop_at,
        "input_scale": recipe.input_scale,
        "freeze_batchnorm": recipe.freeze_batchnorm,
        "amp": recipe.amp,
        "checkpoint_every": recipe.checkpoint_every,
        "log_every": recipe.log_every,
        "eval_every": recipe.eval_every,
    }
    filled = {k: v for k, v in defaults.items() if getattr(cfg, k) is None}
    if cfg.iterations is None and cfg.epochs is None:
        filled["iterations"] = recipe.iterations
    cfg = replace(cfg, **filled)
    checks = [
        (cfg.crop_size > 0, f"crop size must be positive, got {cfg.crop_size}"),
        (cfg.batch_size > 0, f"batch size must be positive, got {cfg.batch_size}"),
        (cfg.grad_accum > 0, f"--grad-accum must be positive, got {cfg.grad_accum}"),
        (cfg.iterations is None or cfg.iterations > 0, f"iterations must be positive, got {cfg.iterations}"),
        (cfg.epochs is None or cfg.epochs > 0, f"epochs must be positive, got {cfg.epochs}"),
        (cfg.iterations is None or cfg.epochs is None, "give --iterations or --epochs, not both"),
        (cfg.lr > 0, f"learning rate must be positive, got {cfg.lr}"),
        (cfg.lr_schedule in LR_SCHEDULES, f"--lr-schedule must be one of {LR_SCHEDULES}, got {cfg.lr_schedule!r}"),
        (0 < cfg.lr_drop_at <= 1, f"lr_drop_at must be in (0, 1], got {cfg.lr_drop_at}"),
        (cfg.amp in AMP_MODES, f"--amp must be one of {AMP_MODES}, got {cfg.amp!r}"),
        (cfg.input_scale > 0, f"input_scale must be positive, got {cfg.input_scale}"),
        (cfg.checkpoint_every > 0 and cfg.log_every > 0, "--checkpoint-every and --log-every must be positive"),
        (cfg.workers >= 0, f"--workers must be >= 0, got {cfg.workers}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    return cfg


# ---------------------------------------------------------------------------------------------
# Model, loss, learning rate


def forward_scores(model: nn.Module, images: torch.Tensor, input_scale: float = 1.0) -> torch.Tensor:
    """Class scores at the images' size. `input_scale` != 1 feeds the network the rescaled image, as the
    released code does with 1.2 (official-recipe.md, `input_img_scale`)."""
    x = images
    if input_scale != 1.0:
        x = F.interpolate(images, scale_factor=input_scale, mode="bilinear", align_corners=False)
    scores = model(x, upsample=False)
    # "upsampled to match the original image using bilinear interpolation" (Sec. 3.1)
    return F.interpolate(scores, size=images.shape[-2:], mode="bilinear", align_corners=False)


def segmentation_loss(scores: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Pixel-wise cross-entropy, void pixels left out. A batch with no labelled pixel gives 0, not NaN."""
    if not (labels != ignore_index).any():
        return scores.float().sum() * 0.0
    return F.cross_entropy(scores.float(), labels, ignore_index=ignore_index)


def lr_factor(iteration: int, cfg: TrainConfig, total: int) -> float:
    """Multiplier of the base learning rate before optimizer step `iteration` (0-based)."""
    if cfg.lr_schedule == "step":  # released: fixed, then continued at 0.1x (official-recipe.md)
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
# The run


def _weights_finite(model: nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def train(cfg: TrainConfig) -> Path:
    """Train as `cfg` says; returns the path of the final checkpoint (`out/checkpoint.pt`)."""
    amp_given = cfg.amp is not None
    cfg = resolve(cfg)
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT_NAME
    if cfg.resume and not ckpt_path.is_file():
        raise CheckpointError(f"--resume: no checkpoint {CHECKPOINT_NAME} in the run folder {out}")
    if not cfg.resume and ckpt_path.is_file():
        raise CheckpointError(f"{out} already holds a checkpoint; pass --resume to continue it or choose another --out")

    rank, world, device = init_distributed(cfg.device)
    is_main = rank == 0
    if cfg.fast_path:
        # the fastest correct setting for this device unless asked otherwise (--no-fast-path)
        fast = default_fast_path(device)
        amp = cfg.amp if amp_given or fast.amp_dtype is None else amp_mode(fast.amp_dtype)
        cfg = replace(cfg, channels_last=cfg.channels_last or fast.channels_last, amp=amp)
    fast = FastPath(channels_last=cfg.channels_last, amp_dtype=AMP_DTYPES[cfg.amp])
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank

    train_set = data.load_dataset(cfg.dataset, cfg.data_root, cfg.split)
    info = train_set.info
    if not train_set.has_labels:
        raise ValueError(f"split {cfg.split!r} of {cfg.dataset} has no labels; it cannot be trained on")
    per_step = cfg.batch_size * cfg.grad_accum * world
    total = cfg.iterations if cfg.iterations is not None else max(1, math.ceil(cfg.epochs * len(train_set) / per_step))

    model = build_refinenet(
        info.num_classes,
        backbone_weights=cfg.backbone_weights,
        backbone=cfg.backbone,
        variant=cfg.variant,
        pooling_blocks=cfg.pooling_blocks,
        block_layout=cfg.block_layout,
        pool_order=cfg.pool_order,
        freeze_batchnorm=cfg.freeze_batchnorm,
    ).to(device)
    model = apply_fast_path(model, fast)
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, cfg, total))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")

    iteration = 0
    if cfg.resume:
        ckpt = ckpt_io.load_checkpoint(ckpt_path, map_location=device)
        if ckpt["model_config"] != model.config_dict():
            raise CheckpointError(
                f"{ckpt_path} was trained with model {ckpt['model_config']}, but this run asks for "
                f"{model.config_dict()}; resume with the same model options"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        iteration = ckpt["iteration"]
        rngs = ckpt["rng"]  # one state per rank of the run that wrote it
        ckpt_io.set_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])

    ddp_model = model
    if world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    recipe = get_recipe(cfg.profile)
    transform = TrainTransform(cfg.crop_size, recipe.scale_range, recipe.mean, recipe.std, hflip=recipe.hflip)
    consumed = iteration * cfg.batch_size * cfg.grad_accum
    sampler = ResumableSampler(len(train_set), cfg.seed, rank, world, start=consumed)
    loader = torch.utils.data.DataLoader(
        SeededAugmentation(train_set, transform),
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(cfg.seed),  # keeps the loader off the global RNG
    )
    val_set = data.load_dataset(cfg.dataset, cfg.data_root, cfg.val_split) if cfg.val_split else None

    resolved = {
        **{f.name: getattr(cfg, f.name) for f in fields(cfg)},
        "iterations": total,
        "data_kind": train_set.data_kind,
        "train_images": len(train_set),
        "world_size": world,
        "device": str(device),
        "recipe": recipe.to_dict(),
        "model_config": model.config_dict(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    resolved = json.loads(json.dumps(resolved, default=str))
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.json", json.dumps(resolved, indent=2) + "\n")

    def save(finished: bool) -> None:
        rngs = all_gather_object(ckpt_io.rng_state())  # every rank's RNG (dropout differs per rank)
        if not is_main:
            return
        torch_save_atomic(
            {
                "format": ckpt_io.FORMAT,
                "model": model.state_dict(),
                "model_config": model.config_dict(),
                "dataset_info": {"name": info.name, "class_names": list(info.class_names),
                                 "palette": [list(c) for c in info.palette]},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "iteration": iteration,
                "sampler": {"seed": cfg.seed, "consumed_per_rank": iteration * cfg.batch_size * cfg.grad_accum},
                "rng": rngs,
                "train_config": resolved,
                "finished": finished,
            },
            ckpt_path,
        )

    if iteration >= total:
        if is_main:
            print(f"{ckpt_path} is already at iteration {iteration} of {total}; nothing to do")
        return ckpt_path

    log_file = open(out / "log.jsonl", "a") if is_main else None  # noqa: SIM115 (closed below)
    bar = tqdm(total=total, initial=iteration, disable=not (is_main and cfg.progress), unit="it", dynamic_ncols=True)
    ddp_model.train()
    data_iter = iter(loader)
    window_start, window_images, window_loss, window_steps = time.perf_counter(), 0, 0.0, 0
    last_saved = iteration if cfg.resume else None
    try:
        while iteration < total:
            optimizer.zero_grad(set_to_none=True)
            step_loss = torch.zeros((), device=device)
            for micro in range(cfg.grad_accum):
                images, labels = next(data_iter)
                images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                images = prepare_input(images, fast)
                sync = world == 1 or micro == cfg.grad_accum - 1
                with contextlib.nullcontext() if sync else ddp_model.no_sync():
                    with autocast(fast, device):
                        scores = forward_scores(ddp_model, images, cfg.input_scale)
                    loss = segmentation_loss(scores, labels, info.ignore_index)
                    if cfg.debug_nan_at == iteration + 1:
                        loss = loss * float("nan")
                    scaler.scale(loss / cfg.grad_accum).backward()
                step_loss += loss.detach() / cfg.grad_accum
            step_loss = all_reduce_mean(step_loss)  # every rank sees the same value and stops together
            if not torch.isfinite(step_loss):
                kept = "no checkpoint had been written yet"
                if last_saved is not None:
                    kept = f"the last good checkpoint {ckpt_path} (iteration {last_saved}) is kept"
                raise NonFiniteLossError(
                    f"loss is {step_loss.item()} at iteration {iteration + 1}; training stopped, {kept}. "
                    f"Try a lower --lr (now {cfg.lr}) or --amp none."
                )
            lrs = [group["lr"] for group in optimizer.param_groups]  # the rates this step uses
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            iteration += 1
            window_loss += step_loss.item()
            window_steps += 1
            window_images += per_step
            bar.update(1)

            if iteration % cfg.log_every == 0 or iteration == total:
                elapsed = time.perf_counter() - window_start
                speed = window_images / max(elapsed, 1e-9)
                record = {
                    "iteration": iteration,
                    "epoch": iteration * per_step / len(train_set),
                    "loss": window_loss / window_steps,
                    "lr": lrs[0],
                    "backbone_lr": lrs[1],
                    "images_per_s": speed,
                    "eta_s": (total - iteration) * per_step / max(speed, 1e-9),
                    "time": time.time(),
                }
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", img_s=f"{speed:.2f}")
                if log_file:
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                window_start, window_images, window_loss, window_steps = time.perf_counter(), 0, 0.0, 0

            if cfg.eval_every and val_set is not None and iteration % cfg.eval_every == 0 and iteration < total:
                _validate(model, val_set, cfg, device, out, iteration, log_file, is_main)
                ddp_model.train()

            if iteration % cfg.checkpoint_every == 0 or iteration == total:
                if not _weights_finite(model):
                    raise NonFiniteLossError(
                        f"weights became non-finite at iteration {iteration}; training stopped, the last good "
                        f"checkpoint {ckpt_path} (iteration {last_saved}) is kept. Try a lower --lr."
                    )
                save(finished=iteration == total)
                last_saved = iteration
            if cfg.stop_after == iteration:
                return ckpt_path
    finally:
        bar.close()
        if log_file:
            log_file.close()

    if val_set is not None:
        _validate(model, val_set, cfg, device, out, iteration, None, is_main)
    barrier()
    return ckpt_path


def _validate(model, val_set, cfg: TrainConfig, device, out: Path, iteration: int, log_file, is_main: bool) -> None:
    recipe = get_recipe(cfg.profile)
    result = evaluate_dataset(model, val_set, device, mean=recipe.mean, std=recipe.std,
                              input_scale=cfg.input_scale, workers=cfg.workers, progress=False)
    if not is_main or result is None:
        return
    result.update({"iteration": iteration, "checkpoint": str(out / CHECKPOINT_NAME)})
    write_metrics(result, out / "val")
    line = {"iteration": iteration, "val_miou": result["miou"], "val_pixel_acc": result["pixel_acc"]}
    print(f"validation ({cfg.val_split}, iteration {iteration}): mIoU {result['miou']:.4f}")
    target = log_file or open(out / "log.jsonl", "a")  # noqa: SIM115
    target.write(json.dumps(line) + "\n")
    if log_file is None:
        target.close()


