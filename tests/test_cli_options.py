"""Command-line options derived from the config dataclasses: every field is an option, defaults match."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest

from refinenet.cli import build_parser
from refinenet.cli_options import add_options, from_args, option
from refinenet.config import EvalConfig, PredictConfig, TrainConfig
from refinenet.inference import CRFParams


@dataclasses.dataclass
class Example:
    name: str = option(help="required, no default")
    size: int | None = option(None, "an optional int")
    ratio: float = option(0.5)
    scales: Sequence[float] = option((1.0,))
    where: str | Path | None = option(None)
    fast: bool = option(True, "a --no-fast switch")
    verbose: bool = option(False)
    frozen: bool | None = option(None)
    crf: CRFParams = option(default_factory=CRFParams, prefix="crf")


def parse(argv: list[str]) -> Example:
    parser = argparse.ArgumentParser()
    add_options(parser, Example)
    return from_args(Example, parser.parse_args(argv))


def test_every_field_becomes_an_option_typed_from_its_annotation():
    got = parse(["--name", "x", "--size", "3", "--scales", "0.5", "2", "--where", "a/b", "--no-fast", "--verbose",
                 "--no-frozen", "--crf-iterations", "7", "--crf-bilateral-srgb", "4"])
    assert got == Example(name="x", size=3, scales=(0.5, 2.0), where=Path("a/b"), fast=False, verbose=True,
                          frozen=False, crf=CRFParams(iterations=7, bilateral_srgb=4.0))
    assert parse(["--name", "x"]) == Example(name="x")  # the defaults are the dataclass's


def test_a_field_without_default_is_required():
    with pytest.raises(SystemExit):
        parse([])


@pytest.mark.parametrize(
    "command, cls, required",
    [
        ("train", TrainConfig, ["--dataset", "voc2012", "--data-root", "r", "--out", "o"]),
        ("evaluate", EvalConfig, ["--checkpoint", "c", "--dataset", "voc2012", "--data-root", "r"]),
        ("predict", PredictConfig, ["image.jpg", "--checkpoint", "c", "--out", "o"]),
    ],
)
def test_the_commands_defaults_are_the_config_defaults(command, cls, required):
    args = build_parser().parse_args([command, *required])
    parsed = from_args(cls, args)
    defaults = cls(**{f.name: getattr(parsed, f.name) for f in dataclasses.fields(cls)
                      if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING})
    assert parsed == defaults


def test_train_has_freeze_batchnorm_both_ways_and_no_test_hooks():
    parser = build_parser()
    base = ["train", "--dataset", "voc2012", "--data-root", "r", "--out", "o"]
    assert from_args(TrainConfig, parser.parse_args([*base, "--freeze-batchnorm"])).freeze_batchnorm is True
    assert from_args(TrainConfig, parser.parse_args([*base, "--no-freeze-batchnorm"])).freeze_batchnorm is False
    for hook in ("--debug-nan-at", "--stop-after"):
        with pytest.raises(SystemExit):
            parser.parse_args([*base, hook, "1"])
