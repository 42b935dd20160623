"""Command-line options derived from dataclass fields, so every config field is an option by construction.

A field declared with `option(default, help, **argparse_keywords)` becomes `--field-name`, typed from
its annotation: `int | None` takes an int, `str | Path` a Path, `Sequence[float]` one or more floats.
Booleans are switches: `--name` when the default is False, `--no-name` when it is True (its help
describes that switch), and both `--name / --no-name` when the default is None (decided elsewhere,
e.g. by the recipe). A field without a default is a required option (or, with `positional=True`, a
positional argument); a field holding a dataclass contributes that dataclass's fields, prefixed
(`prefix="crf"` gives `--crf-iterations`). `from_args` builds the dataclass back from the parsed options.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def option(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING,
           **argparse_keywords) -> Any:
    """A dataclass field that is also a command-line option: `help` and any argparse keyword (choices,
    metavar, type) are kept in its metadata, as are `positional=True` and, for a nested dataclass, `prefix`."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"help": help, **argparse_keywords})


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def add_options(parser, cls, *, groups: dict[str, str] | None = None, prefix: str = "") -> None:
    """One option per field of dataclass `cls`, in field order. `groups` maps a field name to the title
    of an argument group that starts at that field (for `--help`)."""
    hints = typing.get_type_hints(cls)
    target = parser
    for field in dataclasses.fields(cls):
        if groups and field.name in groups:
            target = parser.add_argument_group(groups[field.name])
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            add_options(target, hint, prefix=f"{prefix}{field.metadata['prefix']}_")
            continue
        target.add_argument(*_flags(field, prefix), **_argparse_keywords(field, hint, prefix))


def from_args(cls, args: argparse.Namespace, *, prefix: str = ""):
    """The `cls` instance that the options of `add_options(parser, cls)` were parsed into."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[field.name]):
            values[field.name] = from_args(hints[field.name], args, prefix=f"{prefix}{field.metadata['prefix']}_")
        else:
            value = getattr(args, prefix + field.name)
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def _flags(field: dataclasses.Field, prefix: str) -> list[str]:
    name = (prefix + field.name).replace("_", "-")
    if field.metadata.get("positional"):
        return [prefix + field.name]
    if field.default is True:
        return [f"--no-{name}"]
    return [f"--{name}"]


def _argparse_keywords(field: dataclasses.Field, hint, prefix: str) -> dict:
    keywords = {k: v for k, v in field.metadata.items() if k not in ("positional", "prefix")}
    has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
    if has_default:
        keywords["dest"] = prefix + field.name
        keywords["default"] = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    elif not field.metadata.get("positional"):
        keywords["required"] = True
    kinds, optional = _without_none(hint)
    if kinds == [bool]:
        keywords["action"] = (argparse.BooleanOptionalAction if optional else
                              "store_false" if field.default is True else "store_true")
        return keywords
    if typing.get_origin(kinds[0]) in (Sequence, list, tuple):
        kinds, _ = _without_none(typing.get_args(kinds[0])[0])
        keywords.setdefault("nargs", "+")  # a field may ask for a fixed count (nargs=2)
    keywords.setdefault("type", Path if Path in kinds else kinds[0])
    return keywords


def _without_none(hint) -> tuple[list, bool]:
    """The types a (union) annotation allows besides None, and whether it allows None."""
    kinds = list(typing.get_args(hint)) if typing.get_origin(hint) in (typing.Union, types.UnionType) else [hint]
    return [k for k in kinds if k is not type(None)], type(None) in kinds
