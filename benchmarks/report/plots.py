"""One look for every table's figure: the paper's number beside ours, per row (or per class).

Each panel shows one metric in percent: a grey bar for the paper, an orange bar for our mean over
seeds (min-max over seeds as an error bar), the value written on every bar (a measured 0.0 reads
"0.0"; a missing value is a hatched empty slot reading "n/a"), and the chance baseline (majority
class on the same split) as a dashed line across the row's bars, or a legend line saying the results
carry none. The title says where the numbers come from (profile, data, seeds, dirty tree) and what
they cannot be compared with; the legend sits outside the data.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from benchmarks.report import measured, summaries  # noqa: E402
from benchmarks.tables.specs import TABLES  # noqa: E402
from refinenet.atomic import atomic_path  # noqa: E402

PAPER, MEASURED, MISSING = "#9aa7b8", "#d0612a", "#bbbbbb"
WIDTH = 0.38
NA_HEIGHT = 4.0  # height of the hatched slot marking a missing value


def _bar(ax, x: float, value: float, color: str, *, spread=None, floor=float("nan"), fontsize=7,
         rotate=False) -> None:
    """One bar with its value written above it, and above `floor` (the chance line) where the bar is lower."""
    if pd.isna(value):
        ax.bar(x, NA_HEIGHT, WIDTH, fill=False, hatch="///", edgecolor=MISSING, linewidth=0.6)
        ax.text(x, NA_HEIGHT + 1, "n/a", ha="center", va="bottom", fontsize=fontsize, color="#666666",
                rotation=90 if rotate else 0)
        return
    ax.bar(x, value, WIDTH, color=color)
    top = value
    if spread is not None:
        low, high = spread
        ax.errorbar(x, value, yerr=[[value - low], [high - value]], fmt="none", ecolor="black", capsize=2, lw=0.8)
        top = high
    if pd.notna(floor) and top < floor + 2:  # keep the label off the dashed chance line
        top = floor + 1
    ax.text(x, top + 1, f"{value:.1f}", ha="center", va="bottom", fontsize=fontsize, rotation=90 if rotate else 0)


def panel(ax, lines: pd.DataFrame, labels: list[str], metric: str, title: str, *, dense: bool = False) -> None:
    """Paper and measured bars for each aggregated line (`measured.aggregate`), labelled `labels`."""
    fontsize = 6 if dense else 7
    for x, (_, line) in enumerate(lines.iterrows()):
        _bar(ax, x - WIDTH / 2, line["paper_value"], PAPER, fontsize=fontsize, rotate=dense)
        spread = (line["min"], line["max"]) if line["n"] > 1 else None
        _bar(ax, x + WIDTH / 2, line["mean"], MEASURED, spread=spread, floor=line["chance_value"], fontsize=fontsize,
             rotate=dense)
        if pd.notna(line["chance_value"]):
            ax.hlines(line["chance_value"], x - WIDTH, x + WIDTH, colors="black", linestyles="--", lw=1.0)
    ax.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right", fontsize=7 if dense else 8)
    pad = max(0.6, (3 - len(labels)) / 2 + 0.6)  # room for at least three rows, so one row is not a slab
    ax.set_xlim(-pad, len(labels) - 1 + pad)
    ax.set_ylim(0, 112)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel(f"{summaries.METRIC_NAMES.get(metric, metric)} (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)


def _legend(fig, agg: pd.DataFrame) -> None:
    handles = [Patch(color=PAPER, label="paper"), Patch(color=MEASURED, label="measured (mean over seeds)")]
    if (agg["n"] > 1).any():
        handles.append(Line2D([], [], color="black", marker="|", ls="none", label="min-max over seeds"))
    if agg["chance_value"].notna().any():
        handles.append(Line2D([], [], color="black", ls="--", label="chance (majority class)"))
    else:  # CSVs written before the chance_value column: say so rather than draw nothing silently
        handles.append(Line2D([], [], color="none", label="no chance baseline in these results"))
    if agg[["paper_value", "mean"]].isna().any().any():
        handles.append(Patch(fill=False, hatch="///", edgecolor=MISSING, label="n/a: no value"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)


def title(number: int, frame: pd.DataFrame, width: int = 150) -> str:
    """The figure's title: the table, the provenance, then every stamp (dirty tree, stand-in, protocol),
    each wrapped at `width` characters."""
    lines = [f"Table {number}: {TABLES[number].title}", summaries.provenance(frame)] + summaries.stamps(number, frame)
    return "\n".join(textwrap.fill(line, width) for line in lines)


def figure(number: int, frame: pd.DataFrame):
    """The matplotlib figure of Table `number` from its normalised results (`measured.load_results`)."""
    table = TABLES[number]
    summary = measured.aggregate(measured.summary_rows(frame))
    if table.plot == "per_class":
        per_class = measured.aggregate(measured.per_class_rows(frame))
        rows = list(dict.fromkeys(per_class["row"]))
        # the mean IoU panel a third of the width, the per-class panels the whole width
        mosaic = [["miou", "."]] + [[f"class{i}", f"class{i}"] for i in range(len(rows))]
        named = plt.figure(figsize=(15, 3.4 * (len(rows) + 1)), layout="constrained").subplot_mosaic(
            mosaic, width_ratios=[1, 2])
        fig, axes = named["miou"].figure, [named["miou"]] + [named[f"class{i}"] for i in range(len(rows))]
        miou = summary[summary["metric"] == "miou"]
        panel(axes[0], miou, list(miou["row"]), "miou", "mean IoU per row")
        for ax, label in zip(axes[1:], rows):
            group = per_class[per_class["row"] == label]
            panel(ax, group, list(group["class_name"]), "iou", f"{label}: per-class IoU", dense=True)
        agg = pd.concat([summary, per_class])
    elif table.plot == "ablation":
        datasets = list(dict.fromkeys(summary["dataset"]))
        fig, axes = plt.subplots(1, len(datasets), figsize=(max(9.0, 6.5 * len(datasets)), 5.2), squeeze=False,
                                 layout="constrained")
        for ax, dataset in zip(axes[0], datasets):
            group = summary[(summary["dataset"] == dataset) & (summary["metric"] == "miou")]
            panel(ax, group, list(group["row"]), "miou", f"{dataset}: mean IoU per configuration")
        agg = summary
    else:
        metrics = list(dict.fromkeys(summary["metric"]))
        several = summary["dataset"].nunique() > 1
        fig, axes = plt.subplots(1, len(metrics), figsize=(max(9.0, 4.5 * len(metrics) + 1), 4.8), squeeze=False,
                                 layout="constrained")
        for ax, metric in zip(axes[0], metrics):
            group = summary[summary["metric"] == metric]
            panel(ax, group, [f"{r} ({d})" if several else r for r, d in zip(group["row"], group["dataset"])], metric,
                  summaries.METRIC_NAMES.get(metric, metric))
        agg = summary
    _legend(fig, agg)
    stamp_color = "#b00000" if frame["dirty"].any() else "black"
    fig.suptitle(title(number, frame, width=int(fig.get_figwidth() * 14)), fontsize=9, color=stamp_color)
    return fig


def plot(number: int, frame: pd.DataFrame, path: Path) -> None:
    """Write Table `number`'s figure to `path` (atomically)."""
    fig = figure(number, frame)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
