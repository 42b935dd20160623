"""Run one table of the paper: train each model it needs, evaluate each row, write tidy results.

Models and evaluations live in the result store (store.py, `results/runs/`), keyed by what makes their
numbers, so an interrupted run resumes, a finished row is not recomputed, tables share models, and a change of
profile, iterations, seed, data or evaluation setting makes a new entry (`fresh=True` redoes the entries a run
needs). Trained rows: trained.py; `--profile released` trains nothing and evaluates the authors' released
models for the rows they cover (released.py). Before any work every split a table reads is checked once
(refinenet/preflight.py, through session.check_data). Outputs: `results/table<N>.csv` (one row per
measurement, columns `table_report.COLUMNS`), `.md` and `.png`; `results/released.csv` / `.md` for the released
models' summary (released.run_released_summary).
"""

from __future__ import annotations

import pandas as pd

from benchmarks.report import table_report
from benchmarks.tables.paper_numbers import load_paper_table
from benchmarks.tables.released import released_rows
from benchmarks.tables.rows import check_before_writing
from benchmarks.tables.run_options import RunOptions, Session, select_rows
from benchmarks.tables.specs import TABLES
from benchmarks.tables.trained import trained_rows
from refinenet.atomic import write_text_atomic


def run_table(number: int, opts: RunOptions, session: Session | None = None) -> pd.DataFrame:
    """Run Table `number` and write results/table<N>.{csv,md,png}; returns the tidy results."""
    session = session or Session.start(opts)
    rows = select_rows(TABLES[number], opts.rows)
    paper = load_paper_table(number)
    if opts.profile == "released":
        records = released_rows(number, rows, paper, session)
    else:
        records = trained_rows(number, rows, paper, session)
    frame = pd.DataFrame.from_records(records, columns=table_report.COLUMNS)
    results = check_before_writing(f"table {number}", frame, session)
    write_text_atomic(results / f"table{number}.csv", frame.to_csv(index=False))
    table_report.render(number, frame, results)
    return frame
