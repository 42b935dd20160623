"""Reproduce tables of the paper: `python -m benchmarks.reproduce 2 [--profile standin]`.

`nox -s reproduce-table2 -- --profile paper --data-root /data --device cuda` runs the same.
Profiles: `standin` (default; generated stand-in data, CPU-sized recipe), `paper` (real data under
--data-root, the paper's recipe, for GPUs), `smoke` (seconds, for tests).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.runner import PROFILES, RunOptions, run_table
from benchmarks.tables import TABLES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="+", help="table numbers (1-9) or 'all'")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="standin")
    parser.add_argument("--data-root", help="paper profile: DIR with one folder per dataset (DIR/voc2012, ...) "
                        "or name=PATH[,name=PATH]")
    parser.add_argument("--results", type=Path, default=RunOptions.results, help="where table<N>.* and runs/ go")
    parser.add_argument("--cache", type=Path, default=RunOptions.cache, help="where stand-in data is generated")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--workers", type=int, default=0, help="data-loader workers")
    parser.add_argument("--iterations", type=int, help="override the profile's training iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="discard cached models and evaluations of these tables")
    parser.add_argument("--no-progress", action="store_true")
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
    opts = RunOptions(profile=args.profile, data_root=args.data_root, results=args.results, cache=args.cache,
                      device=args.device, workers=args.workers, fresh=args.fresh, iterations=args.iterations,
                      seed=args.seed, progress=not args.no_progress)
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
