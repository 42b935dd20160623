"""What `refinenet train`, `evaluate` and `predict` take: one dataclass each, the one block of defaults.

Every field is a command-line option by construction (refinenet/cli_options.py): `lr` is `--lr`,
`fast_path` (default True) is `--no-fast-path`; the help text, and the choices where there are
any, sit beside the field. Adding a field adds the option. Each config has its check here too:
`resolve` fills a TrainConfig's `None`s from the profile's recipe (refinenet/recipe.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from refinenet import data
from refinenet.checkpoint import CheckpointError
from refinenet.cli_options import option, positive_float, positive_int
from refinenet.fastpath import AMP_MODES
from refinenet.inference import TILE_OVERLAP, CRFParams
from refinenet.loss import LOSS_AT
from refinenet.model import BACKBONES, BLOCK_LAYOUTS, NEW_LAYER_INITS, POOL_ORDERS, VARIANTS, RefineNetConfig
from refinenet.recipe import LR_SCHEDULES, RECIPES, default_pooling_blocks, get_recipe

# How `evaluate` writes predictions: palette PNGs, or the VOC / Cityscapes test servers' layouts.
FORMATS = ("palette", "voc-test-server", "cityscapes-test-server")


# Options of more than one command (a dataclass field cannot be shared, so these make one each).
def _dataset():
    return option(help=", ".join(data.DATASET_NAMES), choices=data.DATASET_NAMES, metavar="NAME")


def _data_root():
    return option(help="the dataset root")


def _checkpoint():
    return option(help="ours (refinenet train) or a released .pth.tar")


def _device():
    return option("auto", "auto (cuda if present), cpu, cuda, cuda:1, ...")


def _workers():
    return option(2, "data loader processes")


def _fast_path():
    return option(True, "NCHW fp32, no device-specific fast path (refinenet/fastpath.py)")


def _channels_last():
    return option(None, "memory format; default: the device's choice (refinenet/fastpath.py: channels_last on "
                  "CUDA; on a CPU picked by a short timing per machine, cached, NCHW while batch norm trains)")


def _flip():
    return option(False, "also average the horizontally flipped image")


def _scales():
    return option((1.0,), "test scales, probabilities averaged (Sec. 4); released: 0.4 0.6 0.8 1.0 1.2 or "
                  "0.6 0.8 1.0", type=positive_float)


def _max_size():
    return option(None, "large images: downscale so the longer side is at most N, upsample the probabilities "
                  "back (cheap, coarser)", type=positive_int)


def _short_edge_clamp():
    return option(None, "clamp the image's short edge into --short-edge before the test scales, as the authors' "
                  "test scripts do (default: as the checkpoint was trained; released checkpoints: on)")


def _short_edge():
    return option(None, "MIN MAX of that clamp (default: the dataset's, DatasetInfo.test_short_edge, from the "
                  "authors' demo_predict_mscale_<dataset>.m); giving it turns the clamp on", type=positive_int,
                  nargs=2, metavar=("MIN", "MAX"))


def _eval_input_scale():
    return option(None, "rescale the network input on top of every test scale (default: the checkpoint's training "
                  "value; released checkpoints: 1.2, the authors' feature-net scale)", type=positive_float)


def _tile():
    return option(None, "large images (e.g. Cityscapes 1024x2048): sliding windows of SIZE x SIZE with overlap, "
                  "probabilities averaged; full resolution with bounded memory", type=positive_int)


@dataclass
class TrainConfig:
    """Everything one training run needs. `None` = take the value from the profile's recipe."""

    dataset: str = _dataset()
    data_root: str | Path = _data_root()
    out: str | Path = option(help="run folder: checkpoint.pt, config.json, log.jsonl")
    split: str = option("train", "training split (default train)")
    val_split: str | None = option(None, "evaluate on this split (single scale) at the end and every --eval-every")
    profile: str = option("paper", "paper (real data, GPU), standin (CPU-sized), smoke (seconds); default paper",
                          choices=tuple(RECIPES))
    # model knobs, defaults from refinenet.model.RefineNetConfig
    backbone: str = option(RefineNetConfig.backbone, choices=BACKBONES)
    variant: str = option(RefineNetConfig.variant, choices=tuple(sorted(VARIANTS)))
    pooling_blocks: int | None = option(None, "chained residual pooling blocks (default: 4 for voc2012/person_part, "
                                        "else 2; paper Sec. 3.2, 4.1, 4.2)")
    block_layout: str = option(RefineNetConfig.block_layout, choices=BLOCK_LAYOUTS)
    pool_order: str = option(RefineNetConfig.pool_order, choices=POOL_ORDERS)
    new_layer_init: str | None = option(None, "layers outside the ResNet: gaussian = N(0, 0.01^2) weights and zero "
                                        "biases (released code), pytorch = PyTorch's default; default: the "
                                        "profile's", choices=NEW_LAYER_INITS)
    backbone_weights: str | None = option(None, "IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT, a .pth path, the authors' "
                                          "imagenet-resnet-<depth>-dag.mat (MSRA ResNet, their RGB - 128), or none "
                                          "(default: the profile's)")
    init_from: str | Path | None = option(None, "a checkpoint of ours (same model options and classes) whose "
                                          "weights start this run, every layer (Table 4: the COCO stage's for VOC)")
    # recipe overrides
    crop_size: int | None = option(None)
    batch_size: int | None = option(None)
    iterations: int | None = option(None, "optimizer steps (or give --epochs)")
    epochs: float | None = option(None, "passes over the training split (instead of --iterations)")
    lr: float | None = option(None, "learning rate of the new layers")
    backbone_lr_mult: float | None = option(None, "backbone lr = lr x this")
    momentum: float | None = option(None)
    weight_decay: float | None = option(None)
    lr_schedule: str | None = option(None, "step (released: fixed, then 0.1x after --lr-drop-at of the run), poly, "
                                     "constant", choices=LR_SCHEDULES)
    lr_drop_at: float | None = option(None, "fraction of the iterations at which step drops")
    input_scale: float | None = option(None, "rescale the network input, in training and at test (released code: "
                                       "1.2); stored in the checkpoint")
    short_edge_clamp: bool | None = option(None, "clamp the short edge as the authors do: training images into "
                                           "--train-short-edge, test images (evaluation of this checkpoint) into "
                                           "the dataset's range")
    train_short_edge: Sequence[int] | None = option(None, "MIN MAX of the training clamp (released: 450 1100)",
                                                    type=positive_int, nargs=2, metavar=("MIN", "MAX"))
    class_balanced: bool | None = option(None, "the authors' class-balanced sampling: epochs of images picked "
                                         "until every class is covered, crops centred on a pixel of a drawn class")
    pad_crops: bool | None = option(None, "pad images smaller than the crop (else the crop shrinks to the image's "
                                    "even short edge, as the released code)")
    loss_at: str | None = option(None, "score_map: loss on the 1/4 score map against nearest-shrunk labels "
                                 "(released code); input: scores upsampled to the crop", choices=LOSS_AT)
    freeze_batchnorm: bool | None = option(None, "freeze the batch-norm statistics (released code); default: the "
                                           "profile's")
    bn_calibration_batches: int | None = option(None, "estimate the batch-norm statistics on N training batches "
                                                "before the first step (default: the profile's; 0 = off)")
    zero_init_residual: bool | None = option(None, "start each ResNet block's last batch-norm scale at 0 (random "
                                             "init only; default: the profile's)")
    amp: str | None = option(None, "autocast to bf16 / fp16 (fp16 uses a GradScaler); default none = fp32, the "
                             "paper's (on CUDA with TF32 convolutions, PyTorch's default)", choices=AMP_MODES)
    checkpoint_every: int | None = option(None)
    log_every: int | None = option(None)
    eval_every: int | None = option(None, "also evaluate on --val-split every N iterations")
    # machinery
    channels_last: bool | None = _channels_last()
    fast_path: bool = _fast_path()
    grad_accum: int = option(1, "micro-batches per optimizer step")
    seed: int = option(0)
    device: str = _device()
    workers: int = _workers()
    cache_dir: str | Path | None = option(None, "where the class index of class-balanced sampling is kept "
                                          "(default: OUT/cache); the dataset root is never written to")
    resume: bool = option(False, "continue from OUT/checkpoint.pt")
    progress: bool = option(True, "no progress bar (the JSONL log is still written)")
    preflight: bool = option(True, "skip the pre-flight check that reads every image and label of the splits once "
                             "before training (refinenet/preflight.py; a split that passed is remembered)")


@dataclass
class EvalConfig:
    """One evaluation: a checkpoint scored on a split, its predictions written if asked."""

    checkpoint: str | Path = _checkpoint()
    dataset: str = _dataset()
    data_root: str | Path = _data_root()
    split: str = option("val")
    out: str | Path | None = option(None, "folder for metrics.json and per_class.csv")
    scales: Sequence[float] = _scales()
    flip: bool = _flip()
    crf: bool = option(False, "dense CRF post-processing (Table 4)")
    save_predictions: str | Path | None = option(None, "write the predicted label maps here")
    format: str = option("palette", "palette: <id>.png palette PNGs; voc-test-server: results/VOC2012/Segmentation/"
                         "comp6_test_cls/<id>.png; cityscapes-test-server: <name>_leftImg8bit.png holding labelIds",
                         choices=FORMATS)
    max_size: int | None = _max_size()
    tile: int | None = _tile()
    tile_overlap: float = option(TILE_OVERLAP, "fraction of a tile shared with the next")
    short_edge_clamp: bool | None = _short_edge_clamp()
    short_edge: Sequence[int] | None = _short_edge()
    input_scale: float | None = _eval_input_scale()
    device: str = _device()
    workers: int = _workers()
    progress: bool = option(True, "no progress bar")
    fast_path: bool = _fast_path()
    channels_last: bool | None = _channels_last()
    amp: str = option("none", "autocast the forward passes to bf16 / fp16; default none = fp32", choices=AMP_MODES)
    crf_params: CRFParams = option(default_factory=CRFParams, prefix="crf")


@dataclass
class PredictConfig:
    """Label maps and colour overlays for image files."""

    images: Sequence[str | Path] = option(help="image files", positional=True, metavar="IMAGE")
    checkpoint: str | Path = _checkpoint()
    out: str | Path = option(help="folder for <stem>_labels.png and <stem>_overlay.png")
    scales: Sequence[float] = _scales()
    flip: bool = _flip()
    dataset: str | None = option(None, "palette to use (default: the checkpoint's dataset; needed for released "
                                 "checkpoints)", choices=data.DATASET_NAMES, metavar="NAME")
    max_size: int | None = _max_size()
    tile: int | None = _tile()
    short_edge_clamp: bool | None = _short_edge_clamp()
    short_edge: Sequence[int] | None = _short_edge()
    input_scale: float | None = _eval_input_scale()
    overlay_alpha: float = option(0.5, "weight of the class colours in the overlay")
    device: str = _device()


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill every `None` from the recipe and check the values; raises ValueError with a clear message."""
    recipe = get_recipe(cfg.profile)
    data.dataset_info(cfg.dataset)  # a clear error for an unknown name
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
        "short_edge_clamp": recipe.short_edge_clamp,
        "train_short_edge": recipe.train_short_edge,
        "class_balanced": recipe.class_balanced,
        "pad_crops": recipe.pad_crops,
        "loss_at": recipe.loss_at,
        "freeze_batchnorm": recipe.freeze_batchnorm,
        "new_layer_init": recipe.new_layer_init,
        "bn_calibration_batches": recipe.bn_calibration_batches,
        "zero_init_residual": recipe.zero_init_residual,
        "amp": recipe.amp,
        "checkpoint_every": recipe.checkpoint_every,
        "log_every": recipe.log_every,
        "eval_every": recipe.eval_every,
    }
    filled = {k: v for k, v in defaults.items() if getattr(cfg, k) is None}
    if cfg.iterations is None and cfg.epochs is None:
        filled["iterations"] = recipe.iterations_for(cfg.dataset)
    if cfg.train_short_edge is not None:
        filled["train_short_edge"] = tuple(cfg.train_short_edge)
    if cfg.val_split == "none":
        filled["val_split"] = None
    if isinstance(cfg.backbone_weights, str) and cfg.backbone_weights.lower() == "none":
        filled["backbone_weights"] = "none"  # random initialisation
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
        (cfg.loss_at in LOSS_AT, f"--loss-at must be one of {LOSS_AT}, got {cfg.loss_at!r}"),
        (len(cfg.train_short_edge) == 2 and 0 < cfg.train_short_edge[0] <= cfg.train_short_edge[1],
         f"--train-short-edge takes MIN MAX with 0 < MIN <= MAX, got {list(cfg.train_short_edge)}"),
        (cfg.checkpoint_every > 0 and cfg.log_every > 0, "--checkpoint-every and --log-every must be positive"),
        (cfg.workers >= 0, f"--workers must be >= 0, got {cfg.workers}"),
        (cfg.bn_calibration_batches >= 0, f"--bn-calibration-batches must be >= 0, got {cfg.bn_calibration_batches}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    return cfg


def check_short_edge(short_edge: Sequence[int] | None) -> None:
    if short_edge is not None and (len(short_edge) != 2 or not 0 < short_edge[0] <= short_edge[1]):
        raise ValueError(f"--short-edge takes MIN MAX with 0 < MIN <= MAX, got {list(short_edge)}")


def eval_short_edge(cfg: EvalConfig | PredictConfig, dataset: str | None, checkpoint_clamps: bool):
    """The (min, max) short-edge clamp an evaluation or prediction applies, or None: --no-short-edge-clamp
    wins, then --short-edge, then the checkpoint's setting with the dataset's values (the authors'
    value for every dataset but Cityscapes where the dataset is unknown)."""
    clamp = cfg.short_edge_clamp
    if clamp is None:
        clamp = cfg.short_edge is not None or checkpoint_clamps
    if not clamp:
        return None
    if cfg.short_edge is not None:
        return tuple(cfg.short_edge)
    return data.dataset_info(dataset).test_short_edge if dataset else data.dataset_info("voc2012").test_short_edge


def check_eval_config(cfg: EvalConfig) -> None:
    data.dataset_info(cfg.dataset)  # a clear error for an unknown name
    if not Path(cfg.checkpoint).is_file():
        raise CheckpointError(f"checkpoint {cfg.checkpoint} does not exist")
    if cfg.format not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {cfg.format!r}")
    if cfg.format == "voc-test-server" and cfg.dataset != "voc2012":
        raise ValueError("--format voc-test-server is for --dataset voc2012")
    if cfg.format == "cityscapes-test-server" and cfg.dataset != "cityscapes":
        raise ValueError("--format cityscapes-test-server is for --dataset cityscapes")
    if not cfg.scales or any(s <= 0 for s in cfg.scales):
        raise ValueError(f"--scales must be positive numbers, got {list(cfg.scales)}")
    if cfg.max_size is not None and cfg.max_size < 32:
        raise ValueError(f"--max-size must be at least 32, got {cfg.max_size}")
    if cfg.tile is not None and cfg.tile < 32:
        raise ValueError(f"--tile must be at least 32, got {cfg.tile}")
    if cfg.amp not in AMP_MODES:
        raise ValueError(f"--amp must be one of {AMP_MODES}, got {cfg.amp!r}")
    if not 0 <= cfg.tile_overlap < 1:
        raise ValueError(f"--tile-overlap must be in [0, 1), got {cfg.tile_overlap}")
    check_short_edge(cfg.short_edge)


def check_predict_config(cfg: PredictConfig) -> None:
    if not cfg.images:
        raise ValueError("no images given")
    missing = [str(p) for p in cfg.images if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"image(s) not found: {', '.join(missing)}")
    if cfg.dataset is not None:
        data.dataset_info(cfg.dataset)  # a clear error for an unknown name
    check_short_edge(cfg.short_edge)
    if not Path(cfg.checkpoint).is_file():
        raise CheckpointError(f"checkpoint {cfg.checkpoint} does not exist")
