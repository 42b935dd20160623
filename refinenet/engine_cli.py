"""`refinenet train`, `refinenet evaluate`, `refinenet predict`.

Multi-GPU / multi-node: `torchrun --nproc-per-node N -m refinenet train ...` (DistributedDataParallel;
nccl on CUDA, gloo on CPU; only rank 0 writes). User errors print `error: ...` and exit 2, no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from refinenet.data import DATASET_NAMES
from refinenet.fastpath import AMP_MODES
from refinenet.model import BACKBONES, VARIANTS
from refinenet.recipe import LR_SCHEDULES, RECIPES

FORMATS = ("palette", "voc-test-server", "cityscapes-test-server")


def _user_errors():
    """The exceptions that mean a bad argument or input, reported without a traceback."""
    from refinenet.checkpoint import CheckpointError
    from refinenet.data.common import DatasetLayoutError, LabelValueError

    return (CheckpointError, DatasetLayoutError, LabelValueError, FileNotFoundError, ValueError)


def _run(function, *args) -> int:
    try:
        function(*args)
    except _user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _backbone_weights(value: str) -> str:
    return "none" if value.lower() == "none" else value


# ---------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from refinenet.train import NonFiniteLossError, TrainConfig, train

    cfg = TrainConfig(
        dataset=args.dataset, data_root=args.data_root, out=args.out, split=args.split,
        val_split=None if args.val_split in (None, "none") else args.val_split, profile=args.profile,
        backbone=args.backbone, variant=args.variant, pooling_blocks=args.pooling_blocks,
        block_layout=args.block_layout, pool_order=args.pool_order, backbone_weights=args.backbone_weights,
        crop_size=args.crop_size, batch_size=args.batch_size, iterations=args.iterations, epochs=args.epochs,
        lr=args.lr, backbone_lr_mult=args.backbone_lr_mult, momentum=args.momentum,
        weight_decay=args.weight_decay, lr_schedule=args.lr_schedule, lr_drop_at=args.lr_drop_at,
        input_scale=args.input_scale, amp=args.amp, checkpoint_every=args.checkpoint_every,
        log_every=args.log_every, eval_every=args.eval_every, channels_last=args.channels_last,
        fast_path=not args.no_fast_path,
        grad_accum=args.grad_accum, seed=args.seed, device=args.device, workers=args.workers, resume=args.resume,
        progress=not args.no_progress,
    )

    def run(config):
        path = train(config)
        print(f"checkpoint: {path}")

    try:
        return _run(run, cfg)
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    from refinenet.evaluate import EvalConfig, evaluate, format_result
    from refinenet.inference import CRFParams

    crf_params = CRFParams(
        iterations=args.crf_iterations, gaussian_sxy=args.crf_gaussian_sxy, gaussian_compat=args.crf_gaussian_compat,
        bilateral_sxy=args.crf_bilateral_sxy, bilateral_srgb=args.crf_bilateral_srgb,
        bilateral_compat=args.crf_bilateral_compat,
    )
    cfg = EvalConfig(
        checkpoint=args.checkpoint, dataset=args.dataset, data_root=args.data_root, split=args.split, out=args.out,
        scales=tuple(args.scales), flip=args.flip, crf=args.crf, crf_params=crf_params,
        save_predictions=args.save_predictions, format=args.format, max_size=args.max_size, tile=args.tile,
        tile_overlap=args.tile_overlap, input_scale=args.input_scale, device=args.device, workers=args.workers,
        progress=not args.no_progress, fast_path=not args.no_fast_path,
    )

    def run(config):
        result = evaluate(config)
        if result:
            print(format_result(result))
            if config.out is not None and "miou" in result:
                print(f"wrote {Path(config.out) / 'metrics.json'} and per_class.csv")

    return _run(run, cfg)


def cmd_predict(args: argparse.Namespace) -> int:
    from refinenet.predict import PredictConfig, predict

    cfg = PredictConfig(
        images=args.images, checkpoint=args.checkpoint, out=args.out, scales=tuple(args.scales), flip=args.flip,
        dataset=args.dataset, max_size=args.max_size, tile=args.tile, device=args.device,
    )

    def run(config):
        written = predict(config)
        print(f"wrote {len(written)} files to {config.out}")

    return _run(run, cfg)


# ---------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _add_inference_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scales", type=_positive_float, nargs="+", default=[1.0],
                   help="test scales, probabilities averaged (Sec. 4); released: 0.4 0.6 0.8 1.0 1.2 or 0.6 0.8 1.0")
    p.add_argument("--flip", action="store_true", help="also average the horizontally flipped image")
    p.add_argument("--max-size", type=_positive_int, default=None,
                   help="large images: downscale so the longer side is at most N, upsample the probabilities back "
                        "(cheap, coarser)")
    p.add_argument("--tile", type=_positive_int, default=None,
                   help="large images (e.g. Cityscapes 1024x2048): sliding windows of SIZE x SIZE with overlap, "
                        "probabilities averaged; full resolution with bounded memory")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:1, ...")


def add_commands(subparsers) -> None:
    # train ------------------------------------------------------------------------------------
    t = subparsers.add_parser(
        "train", help="train a RefineNet (profiles: paper / standin / smoke; torchrun for several GPUs)",
        description="Train a RefineNet. Every recipe value defaults from --profile (refinenet/recipe.py) and can "
                    "be overridden. Several GPUs or nodes: torchrun --nproc-per-node N -m refinenet train ...",
    )
    t.add_argument("--dataset", required=True, choices=DATASET_NAMES, metavar="NAME", help=", ".join(DATASET_NAMES))
    t.add_argument("--data-root", required=True, type=Path, help="the dataset root")
    t.add_argument("--split", default="train", help="training split (default train)")
    t.add_argument("--val-split", default=None, help="evaluate on this split at the end (and every --eval-every)")
    t.add_argument("--out", required=True, type=Path, help="run folder: checkpoint.pt, config.json, log.jsonl")
    t.add_argument("--profile", default="paper", choices=list(RECIPES),
                   help="paper (real data, GPU), standin (CPU-sized), smoke (seconds); default paper")
    m = t.add_argument_group("model")
    m.add_argument("--backbone", default="resnet101", choices=BACKBONES)
    m.add_argument("--variant", default="4-cascaded", choices=sorted(VARIANTS))
    m.add_argument("--pooling-blocks", type=int, default=None,
                   help="chained residual pooling blocks (default: 4 for voc2012/person_part, else 2)")
    m.add_argument("--block-layout", default="released", choices=("released", "paper"))
    m.add_argument("--pool-order", default="pool_conv", choices=("pool_conv", "conv_pool"))
    m.add_argument("--backbone-weights", type=_backbone_weights, default=None,
                   help="IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT, a .pth path, or none (default: the profile's)")
    r = t.add_argument_group("recipe overrides (defaults from --profile)")
    r.add_argument("--crop-size", type=int, default=None)
    r.add_argument("--batch-size", type=int, default=None)
    length = r.add_mutually_exclusive_group()
    length.add_argument("--iterations", type=int, default=None)
    length.add_argument("--epochs", type=float, default=None, help="passes over the training split")
    r.add_argument("--lr", type=float, default=None, help="learning rate of the new layers")
    r.add_argument("--backbone-lr-mult", type=float, default=None, help="backbone lr = lr x this")
    r.add_argument("--momentum", type=float, default=None)
    r.add_argument("--weight-decay", type=float, default=None)
    r.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=None,
                   help="step (released: fixed, then 0.1x after --lr-drop-at of the run), poly, constant")
    r.add_argument("--lr-drop-at", type=float, default=None, help="fraction of the iterations at which step drops")
    r.add_argument("--input-scale", type=float, default=None, help="rescale the network input (released code: 1.2)")
    e = t.add_argument_group("machinery")
    e.add_argument("--amp", choices=AMP_MODES, default=None, help="mixed precision (fp16 uses a GradScaler)")
    e.add_argument("--channels-last", action="store_true")
    e.add_argument("--no-fast-path", action="store_true",
                   help="do not apply the device's default fast path (refinenet/fastpath.py: memory format, autocast)")
    e.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto")
    e.add_argument("--workers", type=int, default=2, help="data loader processes")
    e.add_argument("--checkpoint-every", type=int, default=None)
    e.add_argument("--log-every", type=int, default=None)
    e.add_argument("--eval-every", type=int, default=None)
    e.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    e.add_argument("--no-progress", action="store_true", help="no progress bar (the JSONL log is still written)")
    t.set_defaults(func=cmd_train)

    # evaluate ---------------------------------------------------------------------------------
    v = subparsers.add_parser(
        "evaluate", help="score a checkpoint on a split; write metrics and predictions",
        description="Score a checkpoint (ours, or a released .pth.tar) on a split: metrics.json and per_class.csv "
                    "in --out. Splits without labels (VOC / Cityscapes test) get predictions only. For large "
                    "images use --tile SIZE (sliding window, full resolution) or --max-size N (downscaled).",
    )
    v.add_argument("--checkpoint", required=True, type=Path)
    v.add_argument("--dataset", required=True, choices=DATASET_NAMES, metavar="NAME", help=", ".join(DATASET_NAMES))
    v.add_argument("--data-root", required=True, type=Path)
    v.add_argument("--split", default="val")
    v.add_argument("--out", type=Path, default=None, help="folder for metrics.json and per_class.csv")
    _add_inference_options(v)
    v.add_argument("--tile-overlap", type=float, default=1 / 3, help="fraction of a tile shared with the next")
    v.add_argument("--input-scale", type=float, default=None, help="default: the checkpoint's training value")
    v.add_argument("--crf", action="store_true", help="dense CRF post-processing (Table 4)")
    v.add_argument("--crf-iterations", type=int, default=5)
    v.add_argument("--crf-gaussian-sxy", type=float, default=3.0)
    v.add_argument("--crf-gaussian-compat", type=float, default=3.0)
    v.add_argument("--crf-bilateral-sxy", type=float, default=80.0)
    v.add_argument("--crf-bilateral-srgb", type=float, default=13.0)
    v.add_argument("--crf-bilateral-compat", type=float, default=10.0)
    v.add_argument("--save-predictions", type=Path, default=None, help="write the predicted label maps here")
    v.add_argument("--format", choices=FORMATS, default="palette",
                   help="palette: <id>.png palette PNGs; voc-test-server: results/VOC2012/Segmentation/"
                        "comp6_test_cls/<id>.png; cityscapes-test-server: <name>_leftImg8bit.png holding labelIds")
    v.add_argument("--workers", type=int, default=2)
    v.add_argument("--no-progress", action="store_true")
    v.add_argument("--no-fast-path", action="store_true",
                   help="do not apply the device's default fast path (refinenet/fastpath.py: memory format, autocast)")
    v.set_defaults(func=cmd_evaluate)

    # predict ----------------------------------------------------------------------------------
    p = subparsers.add_parser("predict", help="label map and colour overlay for image files")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--dataset", default=None, choices=DATASET_NAMES, metavar="NAME",
                   help="palette to use (default: the checkpoint's dataset; needed for released checkpoints)")
    _add_inference_options(p)
    p.set_defaults(func=cmd_predict)
