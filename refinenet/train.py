"""Training: `train(TrainConfig) -> Path` (the final checkpoint), which `refinenet train` runs.

Shape after torchvision's references/segmentation/train.py: `build` makes data, model, optimizer,
schedule and grad scaler; `restore` continues a run from its checkpoint; `train_one_step` is one
optimizer step (Sec. 4 trains end-to-end with SGD, one image per step in the released code,
guosheng/refinenet main/gen_net_opts_model_type1.m); `TrainingLog` reports; `train` loops.
Checkpoints make a resumed run bit-identical to an uninterrupted one; DistributedDataParallel when
started by torchrun. The loss's inputs are in refinenet/loss.py, the sample order in data/sampling.py.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import cached_property, partial
from pathlib import Path

import torch
import torchvision
from torch import nn
from tqdm import tqdm

from refinenet import checkpoint as ckpt_io
from refinenet import data
from refinenet.atomic import remove_stale_temps, torch_save_atomic, write_text_atomic
from refinenet.backbones import Bottleneck
from refinenet.checkpoint import CHECKPOINT_NAME, CheckpointError
from refinenet.config import TrainConfig, resolve
from refinenet.data.class_index import load_class_index
from refinenet.data.common import SegmentationFiles
from refinenet.data.sampling import ClassBalancedEpochs, ResumableSampler, SeededAugmentation
from refinenet.data.transforms import TrainTransform, pad_batch
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
from refinenet.inference import rescale, scaled_size
from refinenet.loss import segmentation_loss, training_scores
from refinenet.model import RefineNet, build_refinenet
from refinenet.preflight import check_splits
from refinenet.recipe import get_recipe, recipe_for
from refinenet.utils import all_gather_object, all_reduce_mean, barrier, init_distributed, launch_rank


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped and the last good checkpoint was kept."""


class TrainingStopped(Exception):
    """A stop signal arrived (SIGTERM: a requeue, preemption, scancel or time limit; SIGUSR2: SLURM's warning
    before the time limit): the run wrote a checkpoint at the end of the step it was in and stopped."""

    def __init__(self, signum: int, iteration: int, checkpoint: Path):
        self.signum, self.iteration, self.checkpoint = signum, iteration, checkpoint
        super().__init__(f"{signal.Signals(signum).name}: training stopped at iteration {iteration}; the checkpoint "
                         f"{checkpoint} is kept and the same command (or --resume) continues from it")


# Signals that end training at the next step boundary, after a checkpoint, rather than mid-step.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


class TrainingDataError(RuntimeError):
    """A training image or label could not be read mid-run (disk error, file changed under the run); the
    run stopped and its last checkpoint was kept. The message names the file."""


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
# Building and restoring a run


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


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, batches, world: int = 1) -> None:
    """Set every batch norm's running statistics to their mean over `batches` of training images (averaged
    over the ranks too), the rest of the model in eval mode. With frozen statistics, a random-init network
    would otherwise normalise with the init's 0 / 1, and statistics of 2-image batches are too noisy."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
        m.train()
    seen = 0
    for images in batches:
        model(images, upsample=False)
        seen += 1
    if seen == 0:
        raise ValueError("batch-norm calibration got no batch: the training split is smaller than one batch")
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        if world > 1:
            m.running_mean.copy_(all_reduce_mean(m.running_mean))
            m.running_var.copy_(all_reduce_mean(m.running_var))
    model.train(was_training)


def training_class_index(cfg: TrainConfig, train_set: SegmentationFiles, is_main: bool) -> list[tuple[int, ...]]:
    """The classes of every training image (class-balanced sampling): scanned once by rank 0 into the
    cache folder (default OUT/cache), then read by every rank."""
    cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out) / "cache"
    if is_main:
        load_class_index(train_set, cache, workers=max(1, cfg.workers), progress=cfg.progress)
    barrier()
    return load_class_index(train_set, cache, progress=False)


def slurm_cpus() -> int | None:
    """The CPUs SLURM granted each task of this job (SLURM_CPUS_PER_TASK, set with --cpus-per-task), or None."""
    value = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


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


def train_transform(run: Run) -> TrainTransform:
    """The run's augmentation: recipe's scale range and flip, the run's clamp, crop placement and padding."""
    cfg, recipe = run.cfg, recipe_for(run.cfg.profile, run.cfg.backbone_weights)
    return TrainTransform(cfg.crop_size, recipe.scale_range, recipe.mean, recipe.std, hflip=recipe.hflip,
                          short_edge=cfg.train_short_edge if cfg.short_edge_clamp else None,
                          class_balanced=cfg.class_balanced, pad=cfg.pad_crops,
                          ignore_index=run.train_set.info.ignore_index)


def build_loader(run: Run) -> torch.utils.data.DataLoader:
    """Augmented batches from where the run stands: the sampler skips what this rank already consumed."""
    cfg, recipe = run.cfg, recipe_for(run.cfg.profile, run.cfg.backbone_weights)
    epochs = None
    if run.image_classes is not None:
        epochs = ClassBalancedEpochs(run.image_classes, run.train_set.info.num_classes, cfg.seed,
                                     recipe.images_per_class, *recipe.epoch_images)
    consumed = run.iteration * cfg.batch_size * cfg.grad_accum
    sampler = ResumableSampler(len(run.train_set), cfg.seed, run.rank, run.world, start=consumed, epochs=epochs)
    return augmented_loader(run, sampler, cfg.seed, cfg.workers)


def augmented_loader(run: Run, sampler: ResumableSampler, seed: int, workers: int) -> torch.utils.data.DataLoader:
    """Padded batches of training augmentations in `sampler`'s order (training and batch-norm calibration)."""
    return torch.utils.data.DataLoader(
        SeededAugmentation(run.train_set, train_transform(run)),
        batch_size=run.cfg.batch_size,
        sampler=sampler,
        collate_fn=partial(pad_batch, ignore_index=run.train_set.info.ignore_index),
        num_workers=workers,
        pin_memory=run.device.type == "cuda",
        drop_last=True,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),  # keeps the loader off the global RNG
    )


def calibration_batches(run: Run):
    """`bn_calibration_batches` augmented batches from a sample stream of their own (seed + 1): the
    training order and the global RNG stay as they would be without calibration."""
    cfg = run.cfg
    sampler = ResumableSampler(len(run.train_set), cfg.seed + 1, run.rank, run.world)
    loader = augmented_loader(run, sampler, cfg.seed + 1, workers=0)
    for _, (images, _labels) in zip(range(cfg.bn_calibration_batches), loader):
        # the size the network sees in training (the input scale applied, as training_scores does)
        images = rescale(images, scaled_size(*images.shape[-2:], cfg.input_scale))
        yield prepare_input(images.to(run.device), run.fast)


def kept_checkpoint(run: Run) -> str:
    """What a stopped run leaves behind, for its error message."""
    if run.last_saved is None:
        return "no checkpoint had been written yet"
    return f"the last good checkpoint {run.checkpoint_path} (iteration {run.last_saved}) is kept"


def data_error_text(err: BaseException) -> str:
    """The message of a data-loading error. One re-raised by a DataLoader worker carries the worker's whole
    traceback; its last line is the original error (which names the file)."""
    text = str(err).strip()
    return re.sub(r"^[\w.]+: ", "", text.splitlines()[-1]) if "Original Traceback" in text else text


def guarded_batches(run: Run, loader):
    """The batches of `loader` (any iterable: the training loader, the batch-norm calibration batches); a file
    that cannot be read ends the run with TrainingDataError naming it."""
    batches = iter(loader)
    while True:
        try:
            yield next(batches)
        except StopIteration:
            return
        except (OSError, ValueError) as err:  # unreadable / changed files, undefined label values
            raise TrainingDataError(f"{data_error_text(err)}; training stopped, {kept_checkpoint(run)}") from err


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


# ---------------------------------------------------------------------------------------------
# One step, logging, validation


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


class TrainingLog:
    """The progress bar and, on rank 0, `log.jsonl`: every `log_every` steps the mean loss since the last
    line, the learning rates, images/s and the estimated time left; validation scores in between."""

    def __init__(self, run: Run):
        self.run = run
        self.path = Path(run.cfg.out) / "log.jsonl" if run.is_main else None
        logged = last_logged_iteration(self.path) if self.path else None
        if self.path:
            self.path.touch()
        self.bar = tqdm(total=run.total, initial=run.iteration, disable=not (run.is_main and run.cfg.progress),
                        unit="it", dynamic_ncols=True)
        # Every session opens with a line saying where it starts and on what CPUs. A session that starts
        # before iterations the log already holds (killed before it reached a checkpoint) says so: those
        # lines were trained again, and the lines after this one replace them.
        session = {"iteration": run.iteration, "session_start": time.time(), "fast_path": run.fast_label,
                   "precision": run.record["precision"], "torch_threads": torch.get_num_threads(),
                   "workers": run.cfg.workers, "slurm_cpus_per_task": slurm_cpus(),
                   "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
        if logged is not None and logged > run.iteration:
            session["restart"] = (f"iterations {run.iteration + 1}-{logged} logged above were not checkpointed "
                                  f"and are trained again from iteration {run.iteration}")
        self.write(session)
        self._new_window()

    def _new_window(self) -> None:
        self.start, self.images, self.loss, self.steps = time.perf_counter(), 0, 0.0, 0

    def step(self, loss: float, lrs: list[float]) -> None:
        run = self.run
        self.loss, self.steps, self.images = self.loss + loss, self.steps + 1, self.images + run.images_per_step
        self.bar.update(1)
        if run.iteration % run.cfg.log_every and run.iteration != run.total:
            return
        speed = self.images / max(time.perf_counter() - self.start, 1e-9)
        record = {
            "iteration": run.iteration,
            "epoch": run.iteration * run.images_per_step / len(run.train_set),
            "loss": self.loss / self.steps,
            "lr": lrs[0],
            "backbone_lr": lrs[1],
            "images_per_s": speed,
            "eta_s": (run.total - run.iteration) * run.images_per_step / max(speed, 1e-9),
            "time": time.time(),
        }
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", img_s=f"{speed:.2f}")
        self.write(record)
        self._new_window()

    def write(self, record: dict) -> None:
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self.bar.close()


def last_logged_iteration(path: Path) -> int | None:
    """The last training iteration `log.jsonl` reports a loss for (None: no such line)."""
    last = None
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if "loss" in record:
                    last = record["iteration"]
    return last


@contextlib.contextmanager
def stop_requests(signals=STOP_SIGNALS):
    """While the training loop runs, each of `signals` asks it to stop at the end of the current step (after a
    checkpoint); the list it yields holds the signals received. Outside the loop the handlers that were there
    before answer (submitit's requeue on SIGUSR2, ...). Signal handlers can only be set in the main thread:
    elsewhere nothing changes."""
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = {s: signal.signal(s, lambda signum, frame: requested.append(signum)) for s in signals}
    try:
        yield requested
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def stop_requested(requested: list[int], world: int) -> int | None:
    """The signal that stops the run at this step boundary, agreed by every process (one may have been
    signalled a step before another: they must checkpoint at the same iteration)."""
    signum = requested[0] if requested else 0
    if world > 1:
        flag = torch.tensor([signum], dtype=torch.float64,
                            device="cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        signum = int(flag.item())
    return signum or None


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
