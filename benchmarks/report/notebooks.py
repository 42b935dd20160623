"""The result notebooks: one per table plus an overview, generated from the table specs.

`python -m benchmarks.report.notebooks --write` (re)writes `notebooks/*.ipynb` from this file;
`--execute` runs them in place with nbclient so they open with their results (`nox -s notebooks`).
Each notebook reads `results/` with pandas and renders it with the same functions as the markdown
(benchmarks/report/measured.py, summaries.py, claims.py): every sentence about results is derived from the
numbers, none is written into a notebook. Open them with `nox -s lab` or `jupyter lab notebooks/`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from benchmarks.report.summaries import protocol_link
from benchmarks.tables.specs import TABLES

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}

SETUP = """\
import sys
from pathlib import Path

import pandas as pd
from IPython.display import Image, Markdown, display

REPO = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
RESULTS = REPO / "results"
sys.path.insert(0, str(REPO))  # benchmarks/ is not an installed package: import it from the repository
from benchmarks.report import claims, measured, summaries

pd.set_option("display.width", 160)
pd.set_option("display.max_colwidth", 80)"""


def table_notebook(number: int) -> nbformat.NotebookNode:
    table = TABLES[number]
    cells = [
        new_markdown_cell(f"# Table {number}: {table.title}\n\n"
                          f"Paper numbers come from `benchmarks/tables/paper/table{number}.csv`; measured numbers from "
                          f"`results/table{number}.csv`, written by `nox -s reproduce-table{number}`. Every text "
                          "below is derived from those numbers (`benchmarks/report/summaries.py`).\n\n"
                          + protocol_link()
                          + (f"\n\n**{table.remark}**" if table.remark else "")),
        new_code_cell(SETUP),
        new_code_cell(f"""\
results = measured.load_results(RESULTS / "table{number}.csv")
display(Markdown(summaries.stamp_markdown({number}, results)))
summaries.results_view(results)"""),
        new_code_cell(f'display(Image(filename=str(RESULTS / "table{number}.png")))'),
    ]
    if table.plot == "per_class":
        cells.append(new_code_cell("""\
per_class = measured.aggregate(measured.per_class_rows(results))
per_class.pivot_table(index="class_name", columns="row", values=["paper_value", "mean", "chance_value"],
                      sort=False)"""))
    cells += [
        new_code_cell(f"""\
claim_lines = claims.evaluate({{{number}: results}}, None)
display(Markdown(summaries.findings_markdown({number}, results, claim_lines)))"""),
        new_code_cell("measured.timing(results)  # one line per trained model; a shared model is counted once"),
    ]
    return new_notebook(cells=cells, metadata=KERNEL)


def overview_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell("# RefineNet reproduction: overview\n\nFirst what the paper claims and what was measured "
                          "(`results/claims.csv`, written by `nox -s plots`), then one line per measured table row: "
                          "the paper's number beside ours and the chance baseline, with the profile and data that "
                          "produced it. The per-table notebooks hold the plots and details; the released checkpoints' "
                          "summary (`nox -s reproduce-released`) and the efficiency benchmark (`nox -s bench`) close "
                          "it, where they have been run.\n\n" + protocol_link()),
        new_code_cell(SETUP),
        new_code_cell("""\
if (RESULTS / "claims.csv").is_file():
    claim_lines = claims.read(RESULTS / "claims.csv")
else:
    print("results/claims.csv not written yet (nox -s plots): computed from the results CSVs now")
    claim_lines = claims.evaluate_results(RESULTS)
display(Markdown(claims.markdown(claim_lines)))"""),
        new_code_cell("""\
paths = sorted(RESULTS.glob("table*.csv"), key=lambda p: int(p.stem.removeprefix("table")))
frames = {int(p.stem.removeprefix("table")): measured.load_results(p) for p in paths}
display(Markdown("\\n".join(f"- Table {n}: {summaries.learned_overview(f)}" for n, f in frames.items())
                 or "No results yet: run `nox -s reproduce-all`."))
pd.concat([summaries.results_view(f) for f in frames.values()]) if frames else pd.DataFrame()"""),
        new_code_cell("""\
missing = [n for n in range(1, 10) if n not in frames]
display(Markdown("Tables without results yet: " + (", ".join(map(str, missing)) if missing else "none") + "."))
for name in ("released.md", "efficiency.md"):  # the released checkpoints' summary, the efficiency benchmark
    if (RESULTS / name).is_file():
        display(Markdown((RESULTS / name).read_text()))"""),
    ]
    return new_notebook(cells=cells, metadata=KERNEL)


def notebook_paths() -> dict[Path, nbformat.NotebookNode]:
    books = {NOTEBOOKS / "overview.ipynb": overview_notebook()}
    books.update({NOTEBOOKS / f"table{n}.ipynb": table_notebook(n) for n in TABLES})
    for path, book in books.items():  # stable cell ids: regenerating an unchanged notebook changes nothing
        for i, cell in enumerate(book.cells):
            cell.id = f"{path.stem}-{i}"
    return books


def execute(path: Path, timeout: int = 300) -> None:
    from nbclient import NotebookClient

    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
                   ).execute()
    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(book, tmp)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report.notebooks", description=__doc__)
    parser.add_argument("--write", action="store_true", help="regenerate the notebooks from this file")
    parser.add_argument("--execute", action="store_true", help="execute the notebooks whose results exist")
    args = parser.parse_args(argv)
    books = notebook_paths()
    if args.write:
        NOTEBOOKS.mkdir(exist_ok=True)
        for path, book in books.items():
            nbformat.write(book, path)
            print(f"wrote {path.relative_to(REPO)}")
    if args.execute:
        for path in books:
            csv = REPO / "results" / f"{path.stem}.csv"
            if path.stem != "overview" and not csv.is_file():
                print(f"skipped {path.name}: {csv.relative_to(REPO)} does not exist yet")
                continue
            execute(path)
            print(f"executed {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
