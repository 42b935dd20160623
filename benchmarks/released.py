"""The authors' released checkpoints in the table runs (`--profile released`) and in their own summary.

`refinenet{50,101,152}_{voc,nyu}.pth.tar` are PyTorch conversions of the authors' released RefineNet models
(refinenet/released.py loads them). A table row names the checkpoint that covers it (`Row.released` in
benchmarks/tables.py); `--profile released --weights DIR` evaluates each covered row with the row's
protocol (multi-scale, CRF) and lists every other row as "no released weights", its measured value empty.
Where a checkpoint's configuration differs from the row's, `released_note` says how.

`results/released.csv` / `.md` (`summary_records`, `summary_markdown`): each given checkpoint on its
dataset's measured split, single- and multi-scale, beside the paper's figure for that setting and the
figure its converters published (benchmarks/paper/released_published.csv).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from benchmarks.paper_tables import PAPER_DIR, load_paper_table, paper_value
from benchmarks.tables import TABLES, Row
from refinenet.atomic import write_text_atomic
from refinenet.recipe import default_pooling_blocks

# The published names: dataset and backbone of each.
RELEASED_FILES = {f"refinenet{depth}_{short}.pth.tar": (dataset, f"resnet{depth}")
                  for short, dataset in (("voc", "voc2012"), ("nyu", "nyudv2")) for depth in (50, 101, 152)}
# Every converted checkpoint has 4 chained residual pooling stages per block (mflow_conv_g*_pool.0.{1..4});
# the released training code's default is 2, as the NYUDv2 rows of Table 2 trained.
RELEASED_POOLING_BLOCKS = 4
WHERE_TO_GET = (
    "These files are PyTorch conversions of the authors' released RefineNet models: a dict whose 'model' entry "
    "is the state dict in the published layout (refinenet/released.py reads it; README, 'Using the model'). "
    "The authors' MatConvNet originals are linked from the README of github.com/guosheng/refinenet; "
    "DrSleep/refinenet-pytorch publishes a conversion of the VOC ResNet-101 model. This suite cannot download "
    "them: put the files you have in the --weights folder under these names, or run only the rows they cover "
    "(--rows)."
)
SUMMARY_COLUMNS = [
    "checkpoint", "checkpoint_sha256", "dataset", "split", "msc", "metric", "measured_value", "chance_value",
    "paper_value", "paper_source", "published_value", "published_source", "note", "profile", "data", "precision",
    "eval_seconds", "device", "torch", "code_version", "dirty", "eval_key", "finished_at",
]
SUMMARY_METRICS = ("miou", "pixel_acc", "mean_acc")


def released_note(row: Row) -> str:
    """How the released checkpoint differs from the model the row trained ("" when it does not)."""
    pooling = default_pooling_blocks(row.dataset) if row.pooling_blocks is None else row.pooling_blocks
    if pooling != RELEASED_POOLING_BLOCKS:
        return f"released checkpoint has {RELEASED_POOLING_BLOCKS} pooling blocks; the row trained {pooling}"
    return ""


def require_weights(weights: Path | None, needed: dict[str, list[str]]) -> dict[str, Path]:
    """The path of each needed checkpoint (name -> the rows that need it) in the `weights` folder; one
    error naming every missing file and where such files come from."""
    if not needed:
        return {}
    if weights is None:
        raise FileNotFoundError(f"the released profile evaluates the authors' checkpoints: give --weights DIR, "
                                f"a folder holding {', '.join(sorted(needed))}. {WHERE_TO_GET}")
    missing = {name: rows for name, rows in needed.items() if not (Path(weights) / name).is_file()}
    if missing:
        lines = "\n".join(f"  - {name} (rows: {'; '.join(rows)})" for name, rows in sorted(missing.items()))
        raise FileNotFoundError(f"--weights {weights} lacks:\n{lines}\n{WHERE_TO_GET}")
    return {name: Path(weights) / name for name in needed}


def present_weights(weights: Path | None) -> dict[str, Path]:
    """The released checkpoints found in the `weights` folder (an error when there are none)."""
    found = {name: Path(weights) / name for name in RELEASED_FILES if weights and (Path(weights) / name).is_file()}
    if not found:
        raise FileNotFoundError(f"--weights {weights} holds none of {', '.join(RELEASED_FILES)}. {WHERE_TO_GET}")
    return found


def file_sha256(path: Path, cache: Path) -> str:
    """SHA-256 of a file, computed once per (path, size, modification time): remembered in `cache`."""
    path = Path(path).resolve()
    st = path.stat()
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    stamp = [st.st_size, st.st_mtime_ns]
    if known.get(str(path), {}).get("stamp") == stamp:
        return known[str(path)]["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    known[str(path)] = {"stamp": stamp, "sha256": digest.hexdigest()}
    write_text_atomic(cache, json.dumps(known, indent=1))
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The summary: each checkpoint on its dataset's split, beside the paper and the converters' figures


def paper_figure(name: str, split: str, msc: bool, metric: str) -> tuple[float | None, str, str]:
    """(value, source, note) of the paper's number for checkpoint `name` evaluated as given: from the first
    table row it covers with the same split and scales and no CRF."""
    for number, table in TABLES.items():
        for row in table.rows:
            if row.released == name and row.msc == msc and not row.crf and row.split == split and row.paper:
                value = paper_value(load_paper_table(number), row, metric)
                if value is not None:
                    return value, f"Table {number}, {row.label}", released_note(row)
    return None, "", ""


def published_figures() -> pd.DataFrame:
    return pd.read_csv(PAPER_DIR / "released_published.csv", dtype={"msc": str})


def published_figure(published: pd.DataFrame, name: str, split: str, msc: bool, metric: str):
    hit = published[(published["checkpoint"] == name) & (published["split"] == split)
                    & (published["msc"] == ("yes" if msc else "no")) & (published["metric"] == metric)]
    return (float(hit["value"].iloc[0]), hit["source"].iloc[0]) if len(hit) else (None, "")


def summary_records(name: str, split: str, msc: bool, measured: dict, chance: dict, columns: dict) -> list[dict]:
    """One record per metric of checkpoint `name` on `split`: measured and chance values (percent), the
    paper's and the converters' figures; `columns` holds the provenance columns."""
    published = published_figures()
    records = []
    for metric in SUMMARY_METRICS:
        paper, source, note = paper_figure(name, split, msc, metric)
        value, published_source = published_figure(published, name, split, msc, metric)
        records.append({"checkpoint": name, "split": split, "msc": msc, "metric": metric,
                        "measured_value": measured.get(metric), "chance_value": chance.get(metric),
                        "paper_value": paper, "paper_source": source, "published_value": value,
                        "published_source": published_source, "note": note, **columns})
    return records


def _cell(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.1f}"


def summary_markdown(frame: pd.DataFrame) -> str:
    dirty = frame["dirty"].astype(str).str.lower().eq("true").any()
    lines = ["# The authors' released checkpoints", "",
             f"Measured with profile=released, data={', '.join(sorted(frame['data'].astype(str).unique()))} "
             f"(device {', '.join(frame['device'].astype(str).unique())}, code {frame['code_version'].iloc[0]}).", ""]
    if dirty:
        lines += ["**Dirty tree:** these numbers come from uncommitted code.", ""]
    if (frame["data"] == "standin").any():
        lines += ["Stand-in data is synthetic: these numbers only show the pipeline at work.", ""]
    lines += ["| checkpoint | split | scales | metric | measured | chance | paper | published | note |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in frame.itertuples():
        paper = f"{_cell(r.paper_value)} ({r.paper_source})" if r.paper_source else "—"
        published = f"{_cell(r.published_value)} ({r.published_source})" if r.published_source else "—"
        lines.append(f"| {r.checkpoint} | {r.split} | {'multi' if r.msc else 'single'} | {r.metric} | "
                     f"{_cell(r.measured_value)} | {_cell(r.chance_value)} | {paper} | {published} | {r.note or ''} |")
    return "\n".join(lines) + "\n"
