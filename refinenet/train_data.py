"""The training data of a run: the classes of every image (class-balanced sampling), the augmented, padded
batches from where the run stands (the sampler's order: refinenet/data/sampling.py), the batch-norm calibration
batches and the calibration itself, and the guard that turns an unreadable file mid-run into `TrainingDataError`.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import torch
from torch import nn

from refinenet.config import TrainConfig
from refinenet.data.class_index import load_class_index
from refinenet.data.common import SegmentationFiles
from refinenet.data.sampling import ClassBalancedEpochs, ResumableSampler, SeededAugmentation
from refinenet.data.transforms import TrainTransform, pad_batch
from refinenet.fastpath import prepare_input
from refinenet.inference import rescale, scaled_size
from refinenet.recipe import recipe_for
from refinenet.train_state import Run, kept_checkpoint
from refinenet.utils import all_reduce_mean, barrier


class TrainingDataError(RuntimeError):
    """A training image or label could not be read mid-run (disk error, file changed under the run); the
    run stopped and its last checkpoint was kept. The message names the file."""


def training_class_index(cfg: TrainConfig, train_set: SegmentationFiles, is_main: bool) -> list[tuple[int, ...]]:
    """The classes of every training image (class-balanced sampling): scanned once by rank 0 into the
    cache folder (default OUT/cache), then read by every rank."""
    cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out) / "cache"
    if is_main:
        load_class_index(train_set, cache, workers=max(1, cfg.workers), progress=cfg.progress)
    barrier()
    return load_class_index(train_set, cache, progress=False)


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
