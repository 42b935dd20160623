"""What the paper claims, and whether our measurements hold it: results/claims.csv and claims.md.

Each claim the suite can test is data (`CLAIMS`): the rows it compares, by the table spec's row
labels (benchmarks/tables/specs.py), and the direction the paper claims. The paper's delta is computed
from benchmarks/tables/paper/ (tables, or text.csv where only the text states it); the measured delta from
results/table<N>.csv and results/efficiency.csv. `evaluate` computes every verdict; nothing is
written by hand. `python -m benchmarks.report` (`nox -s plots`) writes the files.

Verdict rules (also printed in results/claims.md):

- `not measured`: a compared row, its results CSV or the efficiency measurement is missing.
- `not testable with this profile`: the rows come from the standin or smoke profile or from stand-in
  data (synthetic scenes, random initialisation), while the claim is about real data. The measured
  delta is still shown.
- Paper or released profile on real data: `held` if the measured delta has the claimed sign and its
  size exceeds the seed spread; `within seed spread` if its size is at most the spread; `not held`
  otherwise. With one seed (or a released checkpoint) there is no spread: the sign alone decides,
  and the line says seeds=1.
- The seed spread is the standard deviation over seeds of the per-seed delta (seeds measured in both
  rows); for rows without common seeds, sqrt(s1² + s2²) of the two rows' standard deviations.
- State of the art ("RefineNet beats every other method in the table"): our measured value minus the
  best other method's paper value in the same table and metric, under the rules above.
- MS COCO (Table 4): the paper's VOC models were trained on MS COCO first (Sec. 4.2). Lines on VOC are
  kept apart by the `coco` column: `with` (our models from a COCO stage, store keys `-from-coco`),
  `without` (`--no-coco`: ImageNet weights only; the reason says so), `released` (the authors'
  checkpoints); empty for the other datasets.
- Efficiency (training memory against a dilated ResNet): the measurement is of the architecture
  (activations counted on the meta device), so it is testable on any data: `held` if RefineNet's
  training activations are below the dilated network's at every input size counted, else `not held`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.report import measured, summaries
from benchmarks.tables.paper_numbers import load_paper_table, load_paper_text, paper_value
from benchmarks.tables.specs import TABLES

COLUMNS = ["claim", "table", "dataset", "compared", "metric", "unit", "paper_delta", "measured_delta", "spread",
           "seeds", "profile", "data", "coco", "code", "verdict", "reason"]
VERDICTS = ("held", "not held", "within seed spread", "not testable with this profile", "not measured")
STANDIN_REASON = "stand-in data: synthetic scenes and random initialisation; the claim is about real data"
COCO_DATASETS = ("voc2012",)  # whose paper models were trained on MS COCO first (Sec. 4.2)
WITHOUT_COCO = "these models lack the MS COCO stage that the paper's VOC models had (Sec. 4.2)"


def coco_stage(dataset: str, profile: str, model_key: str) -> str:
    """`with` / `without` an MS COCO stage for a VOC result row (`released` for the authors' checkpoints), else ""."""
    if dataset not in COCO_DATASETS:
        return ""
    if profile == "released":
        return "released"
    return "with" if "-from-coco" in str(model_key) else "without"


@dataclass(frozen=True)
class Better:
    """On `dataset`, Table `table`'s row `better` scores above its row `worse` (row labels of the spec)."""

    claim: str
    table: int
    dataset: str
    worse: str
    better: str
    metric: str = "miou"
    paper_text: str = ""  # key of benchmarks/tables/paper/text.csv where only the paper's text states the delta


@dataclass(frozen=True)
class BeatsOthers:
    """RefineNet's `row` beats every other method in the paper's Table `table` on `metric`."""

    table: int
    row: str
    metric: str = "miou"


@dataclass(frozen=True)
class LessMemory:
    """RefineNet needs less training activation memory than `other` (models of results/efficiency.csv)."""

    claim: str
    other: str
    ours: str = "RefineNet-101"
    measurement: str = "train_saved_activation_bytes"
    setting: str = "any"  # counted on the meta device


def _on_both(claim: str, worse: str, better: str) -> tuple[Better, ...]:
    return tuple(Better(claim, 2, dataset, worse, better) for dataset in ("nyudv2", "person_part"))


CLAIMS = (
    *_on_both("chained residual pooling helps", "ResNet-50, pool no, msc no", "ResNet-50, pool yes, msc no"),
    *_on_both("deeper backbone helps", "ResNet-50, pool yes, msc no", "ResNet-101, pool yes, msc no"),
    *_on_both("deeper backbone helps", "ResNet-101, pool yes, msc yes", "ResNet-152, pool yes, msc yes"),
    *_on_both("multi-scale evaluation helps", "ResNet-50, pool yes, msc no", "ResNet-50, pool yes, msc yes"),
    *_on_both("multi-scale evaluation helps", "ResNet-101, pool yes, msc no", "ResNet-101, pool yes, msc yes"),
    Better("2-cascaded beats single", 9, "nyudv2", "single", "2-cascaded"),
    Better("4-cascaded beats 2-cascaded", 9, "nyudv2", "2-cascaded", "4-cascaded"),
    Better("2-scale input is best", 9, "nyudv2", "4-cascaded", "4-cascaded-2-scale"),
    # Sec. 4.2: the dense CRF "yields a marginal improvement of 0.1% on the validation set"
    Better("dense CRF adds a little on VOC val", 4, "voc2012", "RefineNet-Res152 without CRF", "RefineNet-Res152",
           paper_text="crf_gain"),
    # Sec. 2 and Fig. 2: dilated convolutions are "computationally expensive to train and quickly reach memory limits"
    LessMemory("less training memory than a dilated ResNet-101 at the same output resolution (1/4)",
               "Dilated-ResNet-101-OS4"),
    LessMemory("less training memory than a dilated ResNet-101 at output stride 8", "Dilated-ResNet-101-OS8"),
    BeatsOthers(1, "RefineNet-Res101"),
    *(BeatsOthers(3, "RefineNet-Res152", m) for m in ("pixel_acc", "mean_acc", "miou")),
    BeatsOthers(4, "RefineNet-Res152"),
    BeatsOthers(5, "RefineNet-Res101"),
    BeatsOthers(6, "RefineNet-Res152"),
    *(BeatsOthers(7, "RefineNet-Res152", m) for m in ("pixel_acc", "mean_acc", "miou")),
    BeatsOthers(8, "RefineNet-Res152"),
)


def verdict(delta: float, spread: float, seeds: int, profile: str, data: str, sign: int = 1) -> tuple[str, str]:
    """(verdict, reason) for a measured `delta` whose claimed sign is `sign` (see the module docstring)."""
    if delta is None or pd.isna(delta):
        return "not measured", "no measured value"
    if data == "standin":
        return "not testable with this profile", STANDIN_REASON
    if profile in measured.STANDIN_PROFILES:
        reason = f"the {profile} profile's reduced recipe; the claim is about the paper's"
        return "not testable with this profile", reason
    if seeds <= 1 or pd.isna(spread):
        held = sign * delta > 0
        return ("held" if held else "not held"), f"seeds={seeds}: sign only, no seed spread"
    if abs(delta) <= spread:
        return "within seed spread", f"|delta| {abs(delta):.2f} <= spread {spread:.2f} over {seeds} seeds"
    return ("held" if sign * delta > 0 else "not held"), f"spread {spread:.2f} over {seeds} seeds"


def _per_seed(frame: pd.DataFrame, row: str, dataset: str, metric: str) -> pd.Series:
    """Measured values of one row by seed (by position where the seed is unknown)."""
    hit = frame[(frame["row"] == row) & (frame["dataset"] == dataset) & (frame["metric"] == metric)
                & (frame["class_name"] == "")].dropna(subset=["measured_value"])
    index = [int(s) if pd.notna(s) else f"#{i}" for i, s in enumerate(hit["seed"])]
    return pd.Series(hit["measured_value"].to_numpy(), index=index, dtype=float)


def _spread(a: pd.Series, b: pd.Series) -> float:
    common = a.index.intersection(b.index)
    if len(common) > 1:
        return float((b[common] - a[common]).std(ddof=1))
    if len(a) > 1 and len(b) > 1:
        return math.sqrt(a.var(ddof=1) + b.var(ddof=1))
    return float("nan")


def _line(claim: str, table, dataset: str, compared: str, metric: str, **values) -> dict:
    base = {"claim": claim, "table": str(table), "dataset": dataset, "compared": compared, "metric": metric,
            "unit": "points", "paper_delta": float("nan"), "measured_delta": float("nan"), "spread": float("nan"),
            "seeds": 0, "profile": "", "data": "", "coco": "", "code": "", "verdict": "not measured", "reason": ""}
    return {**base, **values}


def _groups(frame: pd.DataFrame | None, dataset: str) -> list[tuple[str, str, pd.DataFrame]]:
    """The dataset's measured rows by (profile, data, with or without MS COCO): one claim line each. Rows
    without a measured value (e.g. "no released weights", whose `data` is empty) make no group of their own."""
    if frame is None:
        return []
    rows = frame[(frame["dataset"] == dataset) & frame["measured_value"].notna()]
    rows = rows.assign(coco=[coco_stage(dataset, p, k) for p, k in zip(rows["profile"], rows["model_key"])])
    return [(p, d, g) for (p, d, _), g in rows.groupby(["profile", "data", "coco"], sort=False)]


def _where(profile: str, data: str, group: pd.DataFrame) -> dict:
    return {"profile": profile, "data": data, "coco": group["coco"].iloc[0], "code": _code(group)}


def _coco_reason(reason: str, where: dict) -> str:
    return f"{reason}; {WITHOUT_COCO}" if where["coco"] == "without" else reason


def _absent(frame: pd.DataFrame | None, table: int, dataset: str, labels: list[str]) -> str:
    """Why `labels` have no measured value: not in the CSV, or there without a number (with its note)."""
    reasons = []
    for label in labels:
        hit = pd.DataFrame() if frame is None else frame[(frame["row"] == label) & (frame["dataset"] == dataset)]
        notes = "; ".join(dict.fromkeys(n for n in hit.get("note", []) if n))
        reasons.append(f"row {label} not in results/table{table}.csv" if hit.empty else
                       f"row {label} not measured" + (f" ({notes})" if notes else ""))
    return "; ".join(reasons)


def _nothing_measured(frame: pd.DataFrame | None, table: int, dataset: str, labels: list[str]) -> str:
    if frame is None or (frame["dataset"] != dataset).all():
        return f"results/table{table}.csv has no {dataset} rows"
    return _absent(frame, table, dataset, labels)


def _code(frame: pd.DataFrame) -> str:
    return ", ".join(dict.fromkeys(frame["code_version"].astype(str)))


def _better(c: Better, frame: pd.DataFrame | None) -> list[dict]:
    spec = {row.label: row for row in TABLES[c.table].rows if row.dataset == c.dataset}
    if c.paper_text:
        paper_delta = float(load_paper_text().loc[c.paper_text, "value"])
    else:
        paper = load_paper_table(c.table)
        paper_delta = paper_value(paper, spec[c.better], c.metric) - paper_value(paper, spec[c.worse], c.metric)
    compared = f"{c.better} vs {c.worse}"
    common = {"paper_delta": paper_delta}
    lines = []
    for profile, data, group in _groups(frame, c.dataset):
        a, b = (_per_seed(group, label, c.dataset, c.metric) for label in (c.worse, c.better))
        missing = [label for label, values in ((c.worse, a), (c.better, b)) if values.empty]
        where = _where(profile, data, group)
        if missing:
            lines.append(_line(c.claim, c.table, c.dataset, compared, c.metric, **common, **where,
                               reason=_absent(frame, c.table, c.dataset, missing)))
            continue
        delta, spread, seeds = b.mean() - a.mean(), _spread(a, b), min(len(a), len(b))
        result, reason = verdict(delta, spread, seeds, profile, data)
        lines.append(_line(c.claim, c.table, c.dataset, compared, c.metric, **common, **where, measured_delta=delta,
                           spread=spread, seeds=seeds, verdict=result, reason=_coco_reason(reason, where)))
    return lines or [_line(c.claim, c.table, c.dataset, compared, c.metric, **common,
                           reason=_nothing_measured(frame, c.table, c.dataset, [c.worse, c.better]))]


def _beats_others(c: BeatsOthers, frame: pd.DataFrame | None) -> list[dict]:
    paper = load_paper_table(c.table)
    ours = next(row for row in TABLES[c.table].rows if row.label == c.row)  # one dataset per table
    others = paper[~paper["ours"] & (paper["dataset"] == ours.dataset) & (paper["metric"] == c.metric)
                   & (paper["class_name"] == "")]
    best = others.loc[others["value"].idxmax()]
    claim = f"RefineNet beats every other method in Table {c.table}"
    compared = f"{c.row} vs {best['method']} {best['reference']} (best other, paper {best['value']:.1f})"
    common = {"paper_delta": paper_value(paper, ours, c.metric) - best["value"]}
    lines = []
    for profile, data, group in _groups(frame, ours.dataset):
        values = _per_seed(group, c.row, ours.dataset, c.metric)
        where = _where(profile, data, group)
        if values.empty:
            lines.append(_line(claim, c.table, ours.dataset, compared, c.metric, **common, **where,
                               reason=_absent(frame, c.table, ours.dataset, [c.row])))
            continue
        spread = values.std(ddof=1) if len(values) > 1 else float("nan")
        delta = values.mean() - best["value"]
        result, reason = verdict(delta, spread, len(values), profile, data)
        if best["split"] != ours.split and data != "standin":
            reason += f"; measured on {ours.split}, the others on {best['split']}"
        lines.append(_line(claim, c.table, ours.dataset, compared, c.metric, **common, **where, measured_delta=delta,
                           spread=spread, seeds=len(values), verdict=result, reason=_coco_reason(reason, where)))
    return lines or [_line(claim, c.table, ours.dataset, compared, c.metric, **common,
                           reason=_nothing_measured(frame, c.table, ours.dataset, [c.row]))]


def _less_memory(c: LessMemory, efficiency: pd.DataFrame | None) -> dict:
    compared = f"{c.ours} / {c.other}, training activations"
    line = _line(c.claim, "efficiency", "any (shapes only)", compared, c.measurement, unit="x (ratio)",
                 profile="efficiency benchmark", data="any")
    if efficiency is None:
        return {**line, "reason": "results/efficiency.csv not written (nox -s bench)"}
    sel = efficiency[(efficiency["measurement"] == c.measurement) & (efficiency["setting"] == c.setting)]
    # square sizes only (the file also holds "375x500" evaluation-helper rows)
    sel = sel.assign(input_size=pd.to_numeric(sel["input_size"], errors="coerce")).dropna(subset=["input_size"])
    sel = sel.assign(input_size=sel["input_size"].astype(int), value=sel["value"].astype(float))
    by_size = {model: g.groupby("input_size")["value"].min() for model, g in sel.groupby("model")}
    if c.ours not in by_size or c.other not in by_size:
        return {**line, "reason": f"{c.ours} or {c.other} not in results/efficiency.csv"}
    ratios = (by_size[c.ours] / by_size[c.other]).dropna()
    if ratios.empty:
        return {**line, "reason": f"{c.ours} and {c.other} share no input size in results/efficiency.csv"}
    size = 512 if 512 in ratios.index else int(ratios.index.max())
    held = bool((ratios < 1).all())
    span = f"{ratios.min():.2f}" if f"{ratios.min():.2f}" == f"{ratios.max():.2f}" else \
        f"{ratios.min():.2f}-{ratios.max():.2f}"
    reason = (f"ratio {ratios[size]:.2f} at {size}x{size}; {span} over the sizes "
              f"{', '.join(str(int(s)) for s in ratios.index)}")
    return {**line, "measured_delta": float(ratios[size]), "code": _code(sel),
            "verdict": "held" if held else "not held", "reason": reason}


def evaluate(frames: dict[int, pd.DataFrame], efficiency: pd.DataFrame | None) -> pd.DataFrame:
    """Every claim's lines, from normalised table results (`measured.load_results`) and efficiency.csv."""
    lines = []
    for claim in CLAIMS:
        if isinstance(claim, Better):
            lines += _better(claim, frames.get(claim.table))
        elif isinstance(claim, BeatsOthers):
            lines += _beats_others(claim, frames.get(claim.table))
        else:
            lines.append(_less_memory(claim, efficiency))
    frame = pd.DataFrame(lines, columns=COLUMNS)
    return frame.round({"paper_delta": 3, "measured_delta": 3, "spread": 3})


def evaluate_results(results: Path) -> pd.DataFrame:
    """`evaluate` on a results folder: every table<N>.csv present, and efficiency.csv if present."""
    results = Path(results)
    frames = {n: measured.load_results(results / f"table{n}.csv") for n in TABLES
              if (results / f"table{n}.csv").is_file()}
    eff_path = results / "efficiency.csv"
    efficiency = pd.read_csv(eff_path) if eff_path.is_file() else None
    return evaluate(frames, efficiency)


def read(path: Path) -> pd.DataFrame:
    """results/claims.csv, typed as `evaluate` returns it."""
    frame = pd.read_csv(path, dtype={"table": str})
    if "coco" not in frame:  # written before the column existed: no line said whether MS COCO was used
        frame.insert(list(frame.columns).index("code") if "code" in frame else len(frame.columns), "coco", "")
    missing = [c for c in COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"{path}: columns {missing} are missing; regenerate it with `nox -s plots`")
    text = [c for c in COLUMNS if c not in ("paper_delta", "measured_delta", "spread", "seeds")]
    frame[text] = frame[text].astype(object).where(frame[text].notna(), "").astype(str)
    frame["seeds"] = frame["seeds"].fillna(0).astype(int)
    return frame[COLUMNS]


def rules_markdown() -> str:
    """The verdict rules, as the module docstring states them."""
    return __doc__.split("Verdict rules (also printed in results/claims.md):", 1)[1].strip()


def markdown(claims: pd.DataFrame) -> str:
    """results/claims.md: the verdict counts, then one line per claim, then the rules."""
    counts = claims["verdict"].value_counts()
    tally = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
    dirty = sorted({c for codes in claims["code"] for c in str(codes).split(", ") if c.endswith("-dirty")})
    lines = ["# What the paper claims, and what was measured", ""]
    if dirty:
        lines += [f"> **FROM A DIRTY TREE**: lines measured with uncommitted changes (code {', '.join(dirty)}).", ""]
    lines += [f"{len(claims)} claim lines: {tally}. Deltas are in percentage points of the metric (for efficiency:"
              " a ratio, below 1 = RefineNet needs less). Regenerated from the results CSVs by `nox -s plots`.",
              "", summaries.protocol_link(), "",
              "| claim | table | dataset | compared | metric | paper Δ | measured Δ | spread | seeds | profile | data"
              " | MS COCO | verdict | reason |", "|" + "---|" * 14]
    for _, c in claims.iterrows():
        cells = [c["claim"], c["table"], c["dataset"], c["compared"], c["metric"], _delta(c["paper_delta"]),
                 _delta(c["measured_delta"], c["unit"]), measured.fmt(c["spread"], 2), str(c["seeds"] or "—"),
                 c["profile"] or "—", c["data"] or "—", c["coco"] or "—", f"**{c['verdict']}**", c["reason"]]
        lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
    lines += ["", "## Verdict rules", "", rules_markdown(), ""]
    return "\n".join(lines)


def _delta(value, unit: str = "points") -> str:
    if value is None or pd.isna(value):
        return "—"
    return f"{value:.2f}x" if unit != "points" else f"{value:+.2f}"
