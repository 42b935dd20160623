"""`refinenet train`, `refinenet evaluate`, `refinenet predict`: their options are the fields of
TrainConfig, EvalConfig and PredictConfig (refinenet/config.py).

Multi-GPU / multi-node: `torchrun --nproc-per-node N -m refinenet train ...` (DistributedDataParallel;
nccl on CUDA, gloo on CPU; only rank 0 writes). User errors print `error: ...` and exit 2, no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from refinenet.checkpoint import CheckpointError
from refinenet.cli_options import add_options, from_args
from refinenet.config import EvalConfig, PredictConfig, TrainConfig
from refinenet.data.common import DatasetLayoutError, LabelValueError
from refinenet.evaluate import evaluate, format_result
from refinenet.predict import predict
from refinenet.train import train
from refinenet.train_data import TrainingDataError
from refinenet.train_state import NonFiniteLossError
from refinenet.train_stop import TrainingStopped

# The exceptions that mean a bad argument or input, reported without a traceback (a file that turns
# unreadable mid-run included: TrainingDataError names it and the checkpoint kept).
USER_ERRORS = (CheckpointError, DatasetLayoutError, LabelValueError, FileNotFoundError, ValueError, TrainingDataError)


def _run(function, *args) -> int:
    try:
        function(*args)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


# ---------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    def run(config):
        path = train(config)
        print(f"checkpoint: {path}")

    try:
        return _run(run, from_args(TrainConfig, args))
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except TrainingStopped as err:  # SIGTERM / SIGUSR2 (a requeue, preemption, time limit): checkpointed
        print(f"stopped: {err}", file=sys.stderr)
        return 128 + err.signum


def cmd_evaluate(args: argparse.Namespace) -> int:
    def run(config):
        result = evaluate(config)
        if result:
            print(format_result(result))
            if config.out is not None and "miou" in result:
                print(f"wrote {Path(config.out) / 'metrics.json'} and per_class.csv")

    return _run(run, from_args(EvalConfig, args))


def cmd_predict(args: argparse.Namespace) -> int:
    def run(config):
        written = predict(config)
        print(f"wrote {len(written)} files to {config.out}")

    return _run(run, from_args(PredictConfig, args))


# ---------------------------------------------------------------------------------------------


def add_commands(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train a RefineNet (profiles: paper / standin / smoke; torchrun for several GPUs)",
        description="Train a RefineNet. Every recipe value defaults from --profile (refinenet/recipe.py) and can "
                    "be overridden. Several GPUs or nodes: torchrun --nproc-per-node N -m refinenet train ...",
    )
    add_options(train, TrainConfig, groups={"backbone": "model", "crop_size": "recipe overrides (defaults from "
                                            "--profile)", "channels_last": "machinery"})
    train.set_defaults(func=cmd_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="score a checkpoint on a split; write metrics and predictions",
        description="Score a checkpoint (ours, or a released .pth.tar) on a split: metrics.json and per_class.csv "
                    "in --out. Splits without labels (VOC / Cityscapes test) get predictions only. For large "
                    "images use --tile SIZE (sliding window, full resolution) or --max-size N (downscaled).",
    )
    add_options(evaluate, EvalConfig, groups={"crf_params": "dense CRF settings (with --crf)"})
    evaluate.set_defaults(func=cmd_evaluate)

    predict = subparsers.add_parser("predict", help="label map and colour overlay for image files")
    add_options(predict, PredictConfig)
    predict.set_defaults(func=cmd_predict)
