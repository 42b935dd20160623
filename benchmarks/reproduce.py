"""Reproduce tables of the paper: `python -m benchmarks.reproduce 2 [--profile standin]`.

`nox -s reproduce-table2 -- --profile paper --data-root /data --device cuda` runs the same.
Profiles: `standin` (default; generated stand-in data, CPU-sized recipe), `paper` (real data under
--data-root, the paper's recipe, for GPUs), `smoke` (seconds, for tests).
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.runner import RunOptions, run_table
from benchmarks.tables import TABLES
from refinenet.cli_options import add_options, from_args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="+", help="table numbers (1-9) or 'all'")
    add_options(parser, RunOptions)
    args = parser.parse_args(argv)
    numbers = list(TABLES) if args.tables == ["all"] else []
    for item in args.tables if args.tables != ["all"] else []:
        if not item.isdigit() or int(item) not in TABLES:
            parser.error(f"unknown table {item!r}: give numbers 1-9 or 'all'")
        numbers.append(int(item))
    args.numbers = numbers
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    opts = from_args(RunOptions, args)
    for number in args.numbers:
        start = time.perf_counter()
        try:
            frame = run_table(number, opts)
        except (ValueError, FileNotFoundError) as err:
            print(f"error: table {number}: {err}", file=sys.stderr)
            return 2
        minutes = (time.perf_counter() - start) / 60
        print(f"table {number}: {len(frame)} measurements in {minutes:.1f} min -> "
              f"{args.results}/table{number}.csv, .md, .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
