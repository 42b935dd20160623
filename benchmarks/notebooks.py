"""The result notebooks: one per table plus an overview, generated from the table specs.

`python -m benchmarks.notebooks --write` (re)writes `notebooks/*.ipynb` from this file;
`--execute` runs them in place with nbclient so they open with their results (`nox -s notebooks`).
Each notebook reads `results/table<N>.csv` with pandas; nothing is computed in them but views.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from benchmarks.tables import PROTOCOL_DOC, TABLES

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"

SETUP = """\
from pathlib import Path
import pandas as pd
from IPython.display import Image, Markdown, display

RESULTS = Path.cwd().parent / "results" if Path.cwd().name == "notebooks" else Path("results")
pd.set_option("display.width", 160)"""

WHY = {
    "standin": "These rows were measured on **stand-in data**: synthetic images in each dataset's real layout, "
    "trained from random initialisation (no ImageNet weights can be downloaded here) with a CPU-sized recipe. "
    "They show that the whole pipeline runs and learns; they are **not** comparable with the paper's numbers.",
    "real": "These rows were measured on the real dataset.",
}
TEST_SERVER_NOTE = ("The paper's numbers are test-server results; we score on val and write the test-server "
                    "submission files (see `results/runs/table{n}/*/test-server/`).")


def table_notebook(number: int) -> nbformat.NotebookNode:
    table = TABLES[number]
    cells = [
        new_markdown_cell(f"# Table {number}: {table.title}\n\n"
                          f"Paper numbers come from `benchmarks/paper/table{number}.csv`; "
                          f"measured numbers from `results/table{number}.csv`, written by "
                          f"`nox -s reproduce-table{number}`. Every row says its profile and data. "
                          f"Where our protocol differs from the authors': [{PROTOCOL_DOC}](../{PROTOCOL_DOC})."
                          + (f"\n\n**{table.remark}**" if table.remark else "")),
        new_code_cell(SETUP),
        new_code_cell(f"""\
results = pd.read_csv(RESULTS / "table{number}.csv", dtype={{"class_name": str}})
summary = results[results["class_name"].isna()]
print("profile:", sorted(results["profile"].unique()), " data:", sorted(results["data"].unique()),
      " device:", sorted(results["device"].unique()))
summary[["row", "dataset", "msc", "crf", "split", "metric", "paper_value", "measured_value",
         "iterations", "train_seconds", "eval_seconds"]]"""),
        new_code_cell(f'display(Image(filename=str(RESULTS / "table{number}.png")))'),
    ]
    if table.plot == "per_class":
        cells.append(new_code_cell("""\
per_class = results[results["class_name"].notna()]
per_class.pivot_table(index="class_name", columns="row", values=["paper_value", "measured_value"], sort=False)"""))
    cells.append(new_code_cell(f"""\
kinds = set(results["data"])
text = []
if "standin" in kinds:
    text.append({WHY["standin"]!r})
if "real" in kinds:
    text.append({WHY["real"]!r})
{"text.append(" + repr(TEST_SERVER_NOTE.format(n=number)) + ")" if table.note else ""}
gaps = summary.dropna(subset=["paper_value", "measured_value"])
for r in gaps.itertuples():
    text.append(f"- {{r.row}} ({{r.dataset}}, {{r.metric}}): paper {{r.paper_value:.1f}}, measured "
                f"{{r.measured_value:.1f}} ({{r.measured_value - r.paper_value:+.1f}}).")
display(Markdown("\\n\\n".join(text)))"""))
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def overview_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell("# RefineNet reproduction: overview\n\nOne line per measured table row: the paper's "
                          "number beside ours, with the profile and data that produced it. Open the per-table "
                          "notebooks for plots and details. The efficiency benchmark (`nox -s bench`) is "
                          "summarised in `results/efficiency.md`. Every setting where our protocol differs "
                          f"from the authors' is listed in [{PROTOCOL_DOC}](../{PROTOCOL_DOC})."),
        new_code_cell(SETUP),
        new_code_cell("""\
frames = [pd.read_csv(p, dtype={"class_name": str}) for p in sorted(RESULTS.glob("table*.csv"))]
if frames:
    allres = pd.concat(frames)
    view = allres[allres["class_name"].isna()][["table", "row", "dataset", "metric", "paper_value",
                                                 "measured_value", "profile", "data"]]
else:
    view = pd.DataFrame()
    print("no results yet: run `nox -s reproduce-all`")
view"""),
        new_code_cell("""\
missing = [n for n in range(1, 10) if not (RESULTS / f"table{n}.csv").is_file()]
display(Markdown("Tables without results yet: " + (", ".join(map(str, missing)) if missing else "none") + "."))
eff = RESULTS / "efficiency.md"
if eff.is_file():
    display(Markdown(eff.read_text()))"""),
    ]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def notebook_paths() -> dict[Path, nbformat.NotebookNode]:
    books = {NOTEBOOKS / "overview.ipynb": overview_notebook()}
    books.update({NOTEBOOKS / f"table{n}.ipynb": table_notebook(n) for n in TABLES})
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
    parser = argparse.ArgumentParser(description=__doc__)
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
