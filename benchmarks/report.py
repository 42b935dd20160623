"""Markdown tables and comparison plots from the tidy results CSVs (no training).

`python -m benchmarks.report` re-renders `results/table<N>.md` and `.png` for every CSV present.
Every title says which profile and which data (stand-in or real) produced the numbers.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.tables import PROTOCOL_DOC, TABLES  # noqa: E402
from refinenet.atomic import atomic_path, write_text_atomic  # noqa: E402

# The tidy results schema: one row per measurement (see the README, "Reproducing the tables").
COLUMNS = [
    "table", "row", "dataset", "backbone", "variant", "pooling_blocks", "msc", "crf", "split", "metric",
    "class_name", "paper_value", "measured_value", "chance_value", "seed", "profile", "data", "precision",
    "iterations", "train_seconds", "eval_seconds", "device", "torch", "code_version", "dirty", "model_key",
    "eval_key", "checkpoint", "checkpoint_sha256", "note", "finished_at",
]
METRIC_NAMES = {"miou": "mean IoU", "pixel_acc": "pixel acc.", "mean_acc": "mean acc.", "iou": "IoU"}


def provenance(frame: pd.DataFrame) -> str:
    profiles = ", ".join(sorted(frame["profile"].dropna().astype(str).unique()))
    kinds = ", ".join(sorted(frame["data"].replace("", None).dropna().astype(str).unique())) or "none"
    dirty = ", DIRTY TREE (uncommitted code)" if "dirty" in frame and is_dirty(frame) else ""
    seeds = sorted(int(s) for s in frame["seed"].dropna().unique()) if "seed" in frame else []
    over = f", mean ± std over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else ""
    return f"profile={profiles}, data={kinds}{over}{dirty}"


def is_dirty(frame: pd.DataFrame) -> bool:
    """Whether any row was made from uncommitted code (the column reads back as bool or text)."""
    return bool(frame["dirty"].astype(str).str.lower().eq("true").any())


def _fmt(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.1f}"


def _measured(values: pd.Series) -> str:
    """A measured cell: the value, or over several seeds "mean ± std (n seeds)"."""
    values = values.dropna()
    if len(values) < 2:
        return _fmt(values.iloc[0] if len(values) else None)
    return f"{values.mean():.1f} ± {values.std():.1f} ({len(values)} seeds)"


def _seed_stats(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows of `frame` (one per seed) folded to one per `keys`: paper value, measured mean and std (0 for one seed)."""
    grouped = frame.groupby(keys, sort=False, dropna=False)
    stats = grouped.agg(paper_value=("paper_value", "first"), measured_value=("measured_value", "mean"),
                        spread=("measured_value", "std"))
    return stats.fillna({"spread": 0.0}).reset_index()


def markdown(number: int, frame: pd.DataFrame) -> str:
    table = TABLES[number]
    devices = ", ".join(frame["device"].replace("", None).dropna().astype(str).unique())
    lines = [f"# Table {number}: {table.title}", "", f"Measured with **{provenance(frame)}** "
             f"(device {devices or 'none'}, code {frame['code_version'].iloc[0]}).", ""]
    if "dirty" in frame and is_dirty(frame):
        lines += ["**Dirty tree:** rows marked dirty come from uncommitted code; they are not reproducible from "
                  "the code version they name.", ""]
    if (frame["data"] == "standin").any():
        lines += ["Stand-in data is synthetic: measured numbers show the pipeline at work and are not comparable "
                  "with the paper's.", ""]
    if table.note:
        lines += [table.note, ""]
    if table.remark:
        lines += [f"**{table.remark}**", ""]
    lines += [f"Where our protocol differs from the authors': [{PROTOCOL_DOC}](../{PROTOCOL_DOC}).", ""]
    if "seed" in frame and frame["seed"].nunique() > 1:
        lines += [f"Measured values are mean ± standard deviation over seeds "
                  f"{', '.join(map(str, sorted(frame['seed'].dropna().unique())))}.", ""]
    summary = frame[frame["class_name"].fillna("") == ""]
    metrics = list(dict.fromkeys(summary["metric"]))
    header = ["row", "dataset", "msc", "crf"] + [f"{METRIC_NAMES[m]} {kind}" for m in metrics
                                                 for kind in ("paper", "measured")]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (label, dataset), group in summary.groupby(["row", "dataset"], sort=False):
        first = group.iloc[0]
        cells = [label, dataset, "yes" if first["msc"] else "no", "yes" if first["crf"] else "no"]
        for m in metrics:
            hit = group[group["metric"] == m]
            cells += [_fmt(hit["paper_value"].iloc[0]) if len(hit) else "—",
                      _measured(hit["measured_value"]) if len(hit) else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    per_class = frame[frame["class_name"].fillna("") != ""]
    if len(per_class):
        classes = list(dict.fromkeys(per_class["class_name"]))
        lines += ["", "Per-class IoU (paper / measured):", "",
                  "| row | " + " | ".join(classes) + " |", "|" + "---|" * (len(classes) + 1)]
        for label, group in per_class.groupby("row", sort=False):
            values = group.groupby("class_name", sort=False)[["paper_value", "measured_value"]].mean()
            lines.append(f"| {label} | " + " | ".join(
                f"{_fmt(values.loc[c, 'paper_value'])} / {_fmt(values.loc[c, 'measured_value'])}" for c in classes
            ) + " |")
    timing = frame.drop_duplicates(["row", "dataset"])
    lines += ["", "| row | dataset | iterations | train s | eval s |", "|---|---|---|---|---|"]
    lines += [f"| {r.row} | {r.dataset} | {r.iterations} | {r.train_seconds} | {r.eval_seconds} |"
              for r in timing.itertuples()]
    return "\n".join(lines) + "\n"


def _bars(ax, labels, paper, measured, title, spread=None):
    """Paper beside measured; `spread` (std over seeds) draws error bars on the measured bars."""
    x = np.arange(len(labels))
    ax.bar(x - 0.2, [np.nan if v is None else v for v in paper], 0.4, label="paper", color="#9aa7b8")
    errors = None if spread is None or not any(spread) else list(spread)
    ax.bar(x + 0.2, [np.nan if v is None else v for v in measured], 0.4, label="measured", color="#d0612a",
           yerr=errors, capsize=3 if errors else 0)
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)


def plot(number: int, frame: pd.DataFrame, path: Path) -> None:
    table = TABLES[number]
    # one bar per row and metric: several seeds give the mean, their standard deviation the error bar
    folded = _seed_stats(frame.assign(class_name=frame["class_name"].fillna("")),
                         ["row", "dataset", "metric", "class_name"])
    summary = folded[folded["class_name"] == ""]
    if table.plot == "per_class":
        per_class = folded[folded["class_name"] != ""]
        rows = list(dict.fromkeys(per_class["row"]))
        fig, axes = plt.subplots(len(rows), 1, figsize=(12, 3.2 * len(rows)), squeeze=False)
        for ax, label in zip(axes[:, 0], rows):
            group = per_class[per_class["row"] == label]
            _bars(ax, list(group["class_name"]), list(group["paper_value"]), list(group["measured_value"]),
                  f"{label}: per-class IoU", list(group["spread"]))
    elif table.plot == "ablation":
        datasets = list(dict.fromkeys(summary["dataset"]))
        fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.2), squeeze=False)
        for ax, dataset in zip(axes[0], datasets):
            group = summary[(summary["dataset"] == dataset) & (summary["metric"] == "miou")]
            _bars(ax, list(group["row"]), list(group["paper_value"]), list(group["measured_value"]),
                  f"{dataset}: mean IoU per configuration", list(group["spread"]))
    else:
        labels = [f"{r.row}\n{METRIC_NAMES[r.metric]}" for r in summary.itertuples()]
        fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(labels)), 4))
        _bars(ax, labels, list(summary["paper_value"]), list(summary["measured_value"]), "paper vs measured",
              list(summary["spread"]))
    remark = "\n" + textwrap.fill(table.remark, 110) if table.remark else ""
    fig.suptitle(f"Table {number}: {table.title}\n({provenance(frame)}){remark}", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def render(number: int, frame: pd.DataFrame, results: Path) -> None:
    write_text_atomic(Path(results) / f"table{number}.md", markdown(number, frame))
    plot(number, frame, Path(results) / f"table{number}.png")


def read_results(number: int, results: Path) -> pd.DataFrame:
    path = Path(results) / f"table{number}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `nox -s reproduce-table{number}` first")
    return pd.read_csv(path, keep_default_na=True, dtype={"class_name": str})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    args = parser.parse_args(argv)
    rendered = 0
    for number in TABLES:
        if (args.results / f"table{number}.csv").is_file():
            render(number, read_results(number, args.results), args.results)
            rendered += 1
            print(f"rendered table{number}.md and table{number}.png")
    if rendered == 0:
        print(f"no results/table<N>.csv under {args.results}; run a reproduce-table session first")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
