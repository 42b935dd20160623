"""Reproduce tables of the paper: `python -m benchmarks.reproduce 2 [--profile standin]`.

`nox -s reproduce-table2 -- --profile paper --data-root /data --device cuda` runs the same.
Profiles: `standin` (default; generated stand-in data, CPU-sized recipe), `paper` (real data under
--data-root, the paper's recipe, for GPUs), `released` (the authors' checkpoints in --weights DIR
evaluated on real data under --data-root, no training), `smoke` (seconds, for tests).
Target `released` (with --profile released; `all` includes it) writes results/released.{csv,md}: each
checkpoint in --weights on its dataset's split, single- and multi-scale, beside the published figures.
`--plan` lists the distinct models the tables need and their estimated cost, training nothing
(benchmarks/tables/plan.py); `--launcher local|slurm` trains them as submitit jobs (benchmarks/tables/launch.py).
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.tables import executors, launch, plan
from benchmarks.tables.released import run_released_summary
from benchmarks.tables.run_options import RunOptions, Session
from benchmarks.tables.runner import run_table
from benchmarks.tables.specs import TABLES
from benchmarks.tables.store import EvaluationDataError
from refinenet.cli_options import add_options, from_args
from refinenet.train_data import TrainingDataError
from refinenet.train_state import NonFiniteLossError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="+", help="table numbers (1-9), 'released' or 'all'")
    add_options(parser, RunOptions)
    add_options(parser.add_argument_group("cost plan"), plan.PlanOptions)
    add_options(parser.add_argument_group("launching the training (inline, local jobs, SLURM jobs)"),
                executors.LaunchOptions)
    args = parser.parse_args(argv)
    targets = []
    for item in args.tables:
        if item == "all":
            targets += list(TABLES) + (["released"] if args.profile == "released" else [])
        elif item == "released":
            if args.profile != "released":
                parser.error("the 'released' summary evaluates the authors' checkpoints: add --profile released")
            targets.append(item)
        elif item.isdigit() and int(item) in TABLES:
            targets.append(int(item))
        else:
            parser.error(f"unknown table {item!r}: give numbers 1-9, 'released' or 'all'")
    args.targets = list(dict.fromkeys(targets))
    return args


# What ends a run with one line, `error: ...`, and exit status 2 instead of a traceback: bad arguments or
# input (ValueError: layouts, labels, checkpoints, pre-flight, dirty tree), missing or unreadable files and
# full disks (OSError), and errors met mid-run, whose messages name the file and what was kept.
RUN_ERRORS = (ValueError, OSError, TrainingDataError, NonFiniteLossError, EvaluationDataError)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except launch.DriverInterrupted as stopped:
        jobs = f"the jobs still running ({stopped}) keep running" if stopped.jobs else "no job is running"
        print(f"interrupted: {jobs}; the same command attaches to them, resubmits what is missing and writes "
              "the tables", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted: finished models and evaluations are kept in the store; the same command resumes "
              "from the last checkpoints", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    opts = from_args(RunOptions, args)
    launch_opts = from_args(executors.LaunchOptions, args)
    tables = [t for t in args.targets if t != "released"]
    try:
        if args.plan:
            plan.run_plan(tables, opts, from_args(plan.PlanOptions, args),
                          launch_opts if launch_opts.launcher == "slurm" else None)
            return 0
        opts = executors.driver_options(opts, launch_opts)
        session = Session.start(opts)
        if launch_opts.launcher != "inline" and opts.profile != "released":
            launch.train_models(tables, session, launch_opts)
    except (ValueError, launch.JobFailedError, executors.SubmissionRefusedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for target in args.targets:
        name = "released checkpoints" if target == "released" else f"table {target}"
        start = time.perf_counter()
        try:
            if target == "released":
                frame = run_released_summary(opts, session)
            else:
                frame = run_table(target, opts, session)
        except RUN_ERRORS as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            return 2
        stem = "released" if target == "released" else f"table{target}"
        minutes = (time.perf_counter() - start) / 60
        print(f"{name}: {len(frame)} measurements in {minutes:.1f} min -> {args.results}/{stem}.csv, .md"
              f"{'' if target == 'released' else ', .png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
