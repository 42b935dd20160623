"""`refinenet standin` and `refinenet prepare`: write stand-in data, convert public releases."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from refinenet import data
from refinenet.data.common import DatasetLayoutError, LabelValueError
from refinenet.data.download import add_command as add_download_command


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_standin(args: argparse.Namespace) -> int:
    if args.dataset not in data.DATASET_NAMES:
        return _fail(f"unknown dataset {args.dataset!r}; valid names: {', '.join(data.DATASET_NAMES)}")
    if args.train < 1 or args.val < 1 or min(args.size) < 8:
        return _fail("--train and --val must be at least 1 and --size at least 8x8")
    data.write_standin(args.dataset, args.out, train=args.train, val=args.val, size=tuple(args.size), seed=args.seed)
    print(f"wrote a synthetic stand-in for {args.dataset} to {args.out}")
    print("it is NOT real data: every result computed from it is labelled data=standin")
    if args.dataset in data.CONVERTERS:
        print(f"it is in the raw layout: run `refinenet prepare {args.dataset} --raw {args.out} --out DIR` next")
    return 0


# Datasets read as shipped whose optional extras have a converter of their own.
_EXTRA_CONVERTERS = {"voc2012": ("sbd", "SBD's extra annotations for the augmented train_aug set")}


def cmd_prepare(args: argparse.Namespace) -> int:
    if args.dataset not in data.CONVERTERS:
        if args.dataset in _EXTRA_CONVERTERS:
            converter, what = _EXTRA_CONVERTERS[args.dataset]
            return _fail(
                f"{args.dataset} is read as shipped; to convert {what}, run "
                f"`refinenet prepare {converter} --raw RAW --out OUT`"
            )
        if args.dataset in data.DATASET_NAMES:
            names = ", ".join(data.CONVERTERS)
            return _fail(f"{args.dataset} is read as shipped, no conversion needed; converters: {names}")
        return _fail(f"unknown converter {args.dataset!r}; converters: {', '.join(data.CONVERTERS)}")
    if not Path(args.raw).exists():
        return _fail(f"--raw {args.raw} does not exist")
    try:
        data.prepare(args.dataset, args.raw, args.out)
    except (DatasetLayoutError, LabelValueError, OSError, ValueError) as err:
        return _fail(str(err))
    print(f"prepared {args.dataset} from {args.raw} into {args.out}")
    return 0


def add_commands(subparsers) -> None:
    standin = subparsers.add_parser(
        "standin", help="write a small synthetic copy of a dataset in its own layout (marked as stand-in)"
    )
    standin.add_argument("dataset", metavar="DATASET", help=", ".join(data.DATASET_NAMES))
    standin.add_argument("--out", required=True, type=Path, help="folder to write (the dataset root)")
    standin.add_argument("--train", type=int, default=40, help="training images (default 40)")
    standin.add_argument("--val", type=int, default=20, help="validation images (default 20)")
    standin.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"), help="image size")
    standin.add_argument("--seed", type=int, default=0)
    standin.set_defaults(func=cmd_standin)

    prepare = subparsers.add_parser("prepare", help="convert a public release into the layout the loaders read")
    prepare.add_argument("dataset", metavar="DATASET", help=", ".join(data.CONVERTERS))
    prepare.add_argument("--raw", required=True, type=Path, help="where the public release was unpacked")
    prepare.add_argument("--out", required=True, type=Path, help="folder to write")
    prepare.set_defaults(func=cmd_prepare)

    add_download_command(subparsers)
