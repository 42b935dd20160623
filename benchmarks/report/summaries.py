"""Sentences about results, derived from the numbers: used by the markdown, the plots and the notebooks.

Nothing here is a fixed verdict: whether a model learned is read off its measured value against the
chance baseline on the same split, stand-in and dirty-tree stamps come from the rows' `data`,
`profile` and `dirty` columns, the test-server remark from the paper's own table data in
benchmarks/tables/paper/, and what the paper's models had that ours lack (MS COCO for VOC) from the table
spec's `remark` (benchmarks/tables/specs.py).
"""

from __future__ import annotations

import pandas as pd

from benchmarks.report import measured
from benchmarks.report.measured import fmt
from benchmarks.tables.paper_numbers import load_paper_table
from benchmarks.tables.specs import PROTOCOL_DOC, TABLES

METRIC_NAMES = {"miou": "mean IoU", "pixel_acc": "pixel accuracy", "mean_acc": "mean accuracy", "iou": "IoU"}
STANDIN = "stand-in data — not comparable with the paper"
# Our choice: a value counts as above chance when it beats the majority-class baseline by more than
# one point and by more than its spread over seeds.
CHANCE_MARGIN = 1.0


def protocol_link(prefix: str = "../") -> str:
    """The pointer to the one table of where our protocol differs from the authors'."""
    return f"Where our protocol differs from the authors': [{PROTOCOL_DOC}]({prefix}{PROTOCOL_DOC})."


def _values(frame: pd.DataFrame, column: str) -> str:
    values = [str(v) for v in dict.fromkeys(frame[column]) if str(v) not in ("", "nan")]
    return ", ".join(values) if values else "unknown"


def provenance(frame: pd.DataFrame) -> str:
    """Which profile, data, seeds, precision, device and code produced `frame`."""
    return (f"profile={_values(frame, 'profile')}, data={_values(frame, 'data')}, {measured.seed_label(frame)}, "
            f"precision {_values(frame, 'precision')}, device {_values(frame, 'device')}, "
            f"code {_values(frame, 'code_version')}")


def dirty_stamp(frame: pd.DataFrame) -> str | None:
    """A warning when any row was measured from a tree with uncommitted changes."""
    dirty = frame[frame["dirty"]]
    if dirty.empty:
        return None
    return (f"FROM A DIRTY TREE: {len(dirty)} of {len(frame)} rows were measured with uncommitted changes "
            f"(code {_values(dirty, 'code_version')}); they cannot be traced to a commit")


def server_remark(number: int, frame: pd.DataFrame) -> str | None:
    """"measured on val; paper: test server" where the paper's numbers come from an evaluation server."""
    paper = load_paper_table(number)
    if not paper["notes"].str.contains("evaluation server").any():
        return None
    return f"measured on {_values(frame, 'split')}; paper: test server"


def stamps(number: int, frame: pd.DataFrame) -> list[str]:
    """Every remark a reader needs before the numbers, most important first."""
    lines = [dirty_stamp(frame), STANDIN if measured.is_standin(frame) else None,
             server_remark(number, frame), TABLES[number].remark]
    return [line for line in lines if line]


def versus_chance(line) -> str:
    """One aggregated measurement against its chance baseline, e.g. "learned: mean IoU 41.3 vs chance 2.1"."""
    name = METRIC_NAMES.get(line["metric"], line["metric"])
    if not line["n"] or pd.isna(line["mean"]):
        return f"{name} not measured"
    if pd.isna(line["chance_value"]):
        return f"{name} {fmt(line['mean'])}"
    gain = line["mean"] - line["chance_value"]
    margin = max(CHANCE_MARGIN, line["std"] if pd.notna(line["std"]) else 0.0)
    verdict = "learned" if gain > margin else "below chance" if gain < -margin else "at chance"
    return f"{verdict}: {name} {fmt(line['mean'])} vs chance {fmt(line['chance_value'])} ({gain:+.1f})"


def row_findings(frame: pd.DataFrame) -> list[str]:
    """One sentence per measured row: each summary metric against chance, and the paper's number."""
    lines = []
    agg = measured.aggregate(measured.summary_rows(frame))
    for (row, dataset), group in agg.groupby(["row", "dataset"], sort=False):
        parts = [versus_chance(line) for _, line in group.iterrows()]
        paper = [f"{METRIC_NAMES.get(m, m)} {fmt(v)}" for m, v in zip(group["metric"], group["paper_value"])
                 if pd.notna(v)]
        lines.append(f"{row} ({dataset}): {'; '.join(parts)}" + (f" — paper: {', '.join(paper)}" if paper else ""))
    return lines


def learned_overview(frame: pd.DataFrame) -> str:
    """How many rows beat chance on their first metric (mean IoU where measured)."""
    agg = measured.aggregate(measured.summary_rows(frame))
    if agg.empty:
        return "No measured rows."
    primary = agg[agg["metric"] == ("miou" if (agg["metric"] == "miou").any() else agg["metric"].iloc[0])]
    if primary["chance_value"].isna().all():
        return "These results carry no chance baseline (the CSV predates the chance_value column)."
    name = METRIC_NAMES.get(primary["metric"].iloc[0], primary["metric"].iloc[0])
    done = primary[primary["n"] > 0]
    verdicts = [versus_chance(line).split(":")[0] for _, line in done.iterrows()]
    missing = len(primary) - len(done)
    return (f"{verdicts.count('learned')} of {len(verdicts)} measured rows learned ({name} above the majority-class "
            f"baseline)" + (f"; {missing} not measured." if missing else "."))


def claim_sentence(claim) -> str:
    """A claims-table line as a sentence, e.g. "deeper backbone: +1.2 (ResNet-101 vs ResNet-50) ..."."""
    delta = claim["measured_delta"]
    measured_text = "not measured" if pd.isna(delta) else f"{delta:+.2f}{_unit(claim)}"
    paper = "" if pd.isna(claim["paper_delta"]) else f"; paper {claim['paper_delta']:+.2f}{_unit(claim)}"
    return (f"{claim['claim']}: {measured_text} ({claim['compared']}, {claim['dataset']}{paper}) — "
            f"**{claim['verdict']}**" + (f": {claim['reason']}" if claim["reason"] else ""))


def _unit(claim) -> str:
    return "" if claim["unit"] == "points" else f" {claim['unit']}"


def seeds_remark(frame: pd.DataFrame) -> str | None:
    """How several seeds are summarised, e.g. "mean ± standard deviation over seeds 0, 1, 2"."""
    seeds = sorted({int(s) for s in frame["seed"].dropna()})
    if len(seeds) < 2:
        return None
    return (f"Measured values: mean ± standard deviation over seeds {', '.join(map(str, seeds))} "
            "(the plots show min-max).")


def stamp_markdown(number: int, frame: pd.DataFrame) -> str:
    """Provenance, how seeds are summarised, and the stamps (dirty tree, stand-in and the table's remark on
    the paper's models in bold), as markdown."""
    lines = [f"Measured with **{provenance(frame)}**.", seeds_remark(frame)]
    for stamp in stamps(number, frame):
        bold = stamp.startswith("FROM A DIRTY TREE") or stamp in (STANDIN, TABLES[number].remark)
        lines.append(f"> **{stamp}**" if bold else f"> {stamp}")
    return "\n\n".join(line for line in lines if line)


def findings_markdown(number: int, frame: pd.DataFrame, claim_lines: pd.DataFrame) -> str:
    """What the numbers say: rows against chance, then this table's claims (`claims.evaluate` lines)."""
    lines = [f"- {learned_overview(frame)}"] + [f"- {text}" for text in row_findings(frame)]
    mine = claim_lines[claim_lines["table"].astype(str) == str(number)]
    if len(mine):
        lines += ["", "Claims of the paper tested on this table (all of them: `results/claims.md`):", ""]
        lines += [f"- {claim_sentence(c)}" for _, c in mine.iterrows()]
    return "\n".join(lines)


def results_view(frame: pd.DataFrame) -> pd.DataFrame:
    """One line per measured summary number, for reading in a notebook: paper, ours (± over seeds),
    chance, and the verdict against chance."""
    agg = measured.aggregate(measured.summary_rows(frame))
    view = agg[["table", "row", "dataset", "metric", "paper_value"]].copy()
    view["measured"] = [measured.with_spread(line) for _, line in agg.iterrows()]
    view["chance"] = agg["chance_value"]
    view["vs chance"] = [versus_chance(line).split(":")[0] if pd.notna(line["chance_value"]) else "no baseline"
                         for _, line in agg.iterrows()]
    return view.assign(profile=agg["profile"], data=agg["data"], seeds=agg["seeds"].replace("", "unknown"),
                       note=agg["note"])
