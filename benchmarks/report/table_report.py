"""Markdown tables, plots and the claims scorecard from the tidy results CSVs (no training).

`python -m benchmarks.report` (`nox -s plots`) re-renders `results/table<N>.md` and `.png` for every
CSV present, then `results/claims.csv` and `claims.md` (benchmarks/report/claims.py). Every markdown and
figure says which profile, data, seeds, precision and code produced the numbers, stamps results from
a dirty tree, and shows the chance baseline beside the measured numbers; sentences about results
come from benchmarks/report/summaries.py, derived from the numbers. Figures: benchmarks/report/plots.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmarks.provenance import REPO
from benchmarks.report import claims, measured, plots, summaries
from benchmarks.report.measured import fmt, with_spread
from benchmarks.tables.specs import TABLES
from refinenet.atomic import write_text_atomic

# The tidy results schema the runner writes: one row per measurement (see the README, "Reproducing the
# tables"), defined once in benchmarks/report/measured.py, which also reads CSVs written before the store.
COLUMNS = measured.COLUMNS
METRIC_NAMES = summaries.METRIC_NAMES


def _yes(value) -> str:
    return "yes" if str(value).lower() in ("true", "1", "yes") else "no"


def header(number: int, frame: pd.DataFrame, link_prefix: str = "../") -> list[str]:
    """Title, provenance, the stamps a reader needs first, the protocol link and the table's note."""
    lines = [f"# Table {number}: {TABLES[number].title}", "", summaries.stamp_markdown(number, frame), "",
             summaries.protocol_link(link_prefix), ""]
    return lines + ([TABLES[number].note, ""] if TABLES[number].note else [])


def results_table(frame: pd.DataFrame) -> list[str]:
    """One line per row: for each metric the paper's number, ours (mean ± std over seeds) and chance."""
    summary = measured.aggregate(measured.summary_rows(frame))
    metrics = list(dict.fromkeys(summary["metric"]))
    extra = [c for c in ("note", "checkpoint") if (summary[c] != "").any()]
    head = ["row", "dataset", "msc", "crf"] + [f"{METRIC_NAMES[m]} {kind}" for m in metrics
                                               for kind in ("paper", "measured", "chance")] + extra
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (label, dataset), group in summary.groupby(["row", "dataset"], sort=False):
        first = group.iloc[0]
        cells = [label, dataset, _yes(first["msc"]), _yes(first["crf"])]
        for metric in metrics:
            hit = group[group["metric"] == metric]
            line = hit.iloc[0] if len(hit) else None
            cells += ["—", "—", "—"] if line is None else [fmt(line["paper_value"]), with_spread(line),
                                                           fmt(line["chance_value"])]
        cells += ["; ".join(dict.fromkeys(v for v in group[c] if v)) for c in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def per_class_table(frame: pd.DataFrame) -> list[str]:
    """Per-class IoU, one line per class: the paper's and our value for each row, and chance."""
    per_class = measured.aggregate(measured.per_class_rows(frame))
    if per_class.empty:
        return []
    rows = list(dict.fromkeys(per_class["row"]))
    head = ["class"] + [f"{r} {kind}" for r in rows for kind in ("paper", "measured")] + ["chance"]
    lines = ["## Per-class IoU", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, group in per_class.groupby("class_name", sort=False):
        by_row = group.set_index("row")
        cells = [name]
        for r in rows:
            cells += [fmt(by_row.loc[r, "paper_value"]), with_spread(by_row.loc[r])] if r in by_row.index else \
                ["—", "—"]
        lines.append("| " + " | ".join(cells + [fmt(group["chance_value"].mean())]) + " |")
    return lines + [""]


def timing_table(frame: pd.DataFrame) -> list[str]:
    """One line per trained model with the rows it serves; totals count each model once."""
    times = measured.timing(frame)
    lines = ["## Training and evaluation time", "",
             "| model | seed | rows | iterations | train s | eval s |", "|---|---|---|---|---|---|"]
    lines += [f"| {t.model_key} | {t.seed} | {t.rows} | {fmt(t.iterations, 0)} | {fmt(t.train_seconds)} | "
              f"{fmt(t.eval_seconds)} |" for t in times.itertuples()]
    evaluations = len(frame.drop_duplicates(["row", "dataset", "seed"]))
    lines += ["", f"Total: {len(times)} trained model{'s' if len(times) != 1 else ''}, "
              f"{times['train_seconds'].sum():.1f} s of training (each model counted once); "
              f"{evaluations} evaluation{'s' if evaluations != 1 else ''}, {times['eval_seconds'].sum():.1f} s.", ""]
    return lines


def markdown(number: int, frame: pd.DataFrame, claim_lines: pd.DataFrame | None = None) -> str:
    """results/table<N>.md from the table's results (either schema) and the claims' lines."""
    frame = measured.normalise(frame)
    if claim_lines is None:
        claim_lines = claims.evaluate({number: frame}, None)
    lines = header(number, frame) + ["## Results", ""] + results_table(frame) + [""]
    lines += ["## What the numbers say", "", summaries.findings_markdown(number, frame, claim_lines), ""]
    lines += per_class_table(frame) + timing_table(frame)
    return "\n".join(lines)


def render(number: int, frame: pd.DataFrame, results: Path, claim_lines: pd.DataFrame | None = None) -> None:
    """Write results/table<N>.md and .png (atomically). Without `claim_lines` (a run of one table,
    whose CSV is already written) results/claims.csv and .md are refreshed from every CSV present."""
    frame = measured.normalise(frame)
    if claim_lines is None:
        claim_lines = write_claims(results)
    write_text_atomic(Path(results) / f"table{number}.md", markdown(number, frame, claim_lines))
    plots.plot(number, frame, Path(results) / f"table{number}.png")


def write_claims(results: Path) -> pd.DataFrame:
    """results/claims.csv and claims.md from every results CSV present (atomically)."""
    lines = claims.evaluate_results(results)
    write_text_atomic(Path(results) / "claims.csv", lines.to_csv(index=False))
    write_text_atomic(Path(results) / "claims.md", claims.markdown(lines))
    return lines


plot = plots.plot  # Table N's figure (benchmarks/report/plots.py), where callers of the report expect it


def read_results(number: int, results: Path) -> pd.DataFrame:
    return measured.load_results(Path(results) / f"table{number}.csv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    parser.add_argument("--results", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    numbers = [n for n in TABLES if (args.results / f"table{n}.csv").is_file()]
    if not numbers:
        print(f"no results/table<N>.csv under {args.results}; run a reproduce-table session first")
        return 1
    claim_lines = write_claims(args.results)
    print(f"wrote claims.csv and claims.md ({len(claim_lines)} lines)")
    for number in numbers:
        render(number, read_results(number, args.results), args.results, claim_lines)
        print(f"rendered table{number}.md and table{number}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
