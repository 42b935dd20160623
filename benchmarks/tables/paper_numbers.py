"""The paper's Tables 1-9 as tidy data (benchmarks/tables/paper/table1.csv ... table9.csv).

One row per method x dataset x metric (x class for Table 4's per-class IoU); every file has the same
columns, `COLUMNS`:

* `table` (int), `method` (as printed, "(ours)" and the citation stripped), `reference` (the
  citation as printed, e.g. "[6]", empty for RefineNet), `ours` (bool: a RefineNet row);
* `dataset` (refinenet.data's name: voc2012, pascal_context, nyudv2, sunrgbd, cityscapes, ade20k,
  person_part), `split` (the split the number is on, in refinenet.data's spelling), `metric` (miou,
  pixel_acc, mean_acc; iou for Table 4's per-class rows), `class_name` (Table 4 only:
  refinenet.data.voc2012.INFO.class_names), `value` (float, percent as printed; a "-"/"—" cell is
  no row);
* notes: `training_data` (Tables 3, 7: RGB / RGB-D; Table 6: DeepLab-v2's extra COCO data; Table 4:
  RefineNet's VOC+SBD+COCO), `backbone` (resnet50/101/152 where the row says it), `pooling` and
  `msc_eval` (Table 2's "Chained pool." / "Msc Eva" knobs, Table 9's "Msc Eva"; "yes"/"no"),
  `variant` (Table 9: single, 2-cascaded, 4-cascaded, 4-cascaded-2-scale), `notes` (free text).

Table 2 and Table 9 print no method name; their rows are named "RefineNet-Res50/101/152" after
their "Initialization" column. Table 4's `mean` is the 21-class mean including background, whose
IoU the table does not print (so it is not the mean of the 20 per-class rows). Table 6's split is
`val`: the 5105 VOC 2010 val images, which the paper calls its test set (refinenet.data spells it
`val`). Table 7's split is not named in the paper; it is taken as the standard 5050-image test set.

`benchmarks/tables/paper/text.csv` holds the few numbers the paper states in its text rather than in a
table (e.g. Sec. 4.2's dense CRF gain on VOC val), each with the sentence it comes from.

    from benchmarks.tables.paper_numbers import load_paper_table, load_all
    load_paper_table(4).query("method == 'RefineNet-Res152' and metric == 'miou'").value  # 83.4
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PAPER_DIR = Path(__file__).resolve().parent / "paper"
TABLES = tuple(range(1, 10))
COLUMNS = (
    "table", "method", "reference", "ours", "dataset", "split", "metric", "class_name", "value",
    "training_data", "backbone", "pooling", "msc_eval", "variant", "notes",
)  # fmt: skip
DATASETS = ("voc2012", "pascal_context", "nyudv2", "sunrgbd", "cityscapes", "ade20k", "person_part")
METRICS = ("miou", "pixel_acc", "mean_acc", "iou")
_STRING_COLUMNS = tuple(c for c in COLUMNS if c not in ("table", "ours", "value"))
TEXT_COLUMNS = ("key", "section", "dataset", "split", "metric", "value", "quote")


def table_path(n: int) -> Path:
    return PAPER_DIR / f"table{n}.csv"


def load_paper_table(n: int) -> pd.DataFrame:
    """Table `n` (1..9) of the paper, tidy: columns `COLUMNS`, `table` int, `value` float, `ours`
    bool, every other column str ("" where unused)."""
    if n not in TABLES:
        raise ValueError(f"the paper has Tables 1-9; got {n!r}")
    path = table_path(n)
    if not path.is_file():
        raise FileNotFoundError(f"paper Table {n}: {path} is missing (benchmarks/tables/paper/ holds table1..9.csv)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    if tuple(df.columns) != COLUMNS:
        raise ValueError(f"{path}: columns {list(df.columns)} are not {list(COLUMNS)}")
    bad = sorted(set(df["ours"]) - {"true", "false"})
    if bad:
        raise ValueError(f"{path}: column 'ours' holds {bad}, expected true/false")
    df["table"] = df["table"].astype(int)
    df["value"] = df["value"].astype(float)
    df["ours"] = df["ours"].eq("true")
    for column in _STRING_COLUMNS:
        df[column] = df[column].astype(str)
    return df


def load_all() -> pd.DataFrame:
    """Tables 1-9 stacked, same columns and dtypes as `load_paper_table`."""
    return pd.concat([load_paper_table(n) for n in TABLES], ignore_index=True)


def paper_value(paper: pd.DataFrame, row, metric: str, class_name: str = "") -> float | None:
    """The number `paper` (one table, from `load_paper_table`) reports for a table row of
    benchmarks/tables/specs.py (its `paper` selector), or None when the row has none."""
    if not row.paper:
        return None
    match = paper[(paper["dataset"] == row.dataset) & (paper["metric"] == metric)]
    match = match[match["class_name"].fillna("") == class_name]
    for column, value in row.paper.items():
        match = match[match[column].astype(str) == str(value)]
    if len(match) > 1:
        raise ValueError(f"table {row.label}: {len(match)} paper rows match {row.paper} / {metric} {class_name}")
    return float(match["value"].iloc[0]) if len(match) else None


def load_paper_text() -> pd.DataFrame:
    """Numbers the paper states in its text (benchmarks/tables/paper/text.csv), indexed by `key`."""
    path = PAPER_DIR / "text.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    if tuple(df.columns) != TEXT_COLUMNS:
        raise ValueError(f"{path}: columns {list(df.columns)} are not {list(TEXT_COLUMNS)}")
    df["value"] = df["value"].astype(float)
    return df.set_index("key")
