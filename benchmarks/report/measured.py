"""The measured results as the report reads them: table CSVs of either schema, seeds, time per model.

`load_results` reads a `results/table<N>.csv`. The agreed schema (`COLUMNS`) records, beside each
number, the chance baseline, the seed, the precision, whether the tree was dirty, the trained
model's key, a note and the released checkpoint. CSVs written before that schema lack some of
these columns; a missing column is treated as absent: no chance baseline, seed unknown, `dirty`
derived from a code version ending in "-dirty", `model_key` derived from the model's columns. Text
columns read back empty (e.g. `data` of a row the released profile has no weights for) become "".

`aggregate` turns one row per seed into one line per measured quantity (mean, standard deviation,
min, max over seeds); `timing` gives one line per trained model, so a model that serves several
rows (e.g. single- and multi-scale evaluation) is counted once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = [
    "table", "row", "dataset", "backbone", "variant", "pooling_blocks", "msc", "crf", "split", "metric",
    "class_name", "paper_value", "measured_value", "chance_value", "seed", "profile", "data", "precision",
    "iterations", "train_seconds", "eval_seconds", "device", "torch", "code_version", "dirty", "model_key",
    "eval_key", "checkpoint", "checkpoint_sha256", "note", "finished_at",
]  # fmt: skip
TEXT_COLUMNS = ("row", "dataset", "metric", "class_name", "split", "profile", "data", "note", "checkpoint", "precision",
                "model_key", "device", "code_version")
# one measured quantity: the same row, metric and class under the same profile and data
KEYS = ["table", "row", "dataset", "metric", "class_name", "profile", "data"]
STANDIN_PROFILES = ("standin", "smoke")


def load_results(path: Path) -> pd.DataFrame:
    """`results/table<N>.csv` in the current or an older schema, normalised by `normalise`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `nox -s reproduce-{path.stem}` first")
    frame = pd.read_csv(path, dtype={"class_name": str, "note": str, "checkpoint": str, "model_key": str})
    missing = [c for c in ("row", "dataset", "metric", "measured_value", "profile", "data") if c not in frame]
    if missing:
        raise ValueError(f"{path}: columns {missing} are missing; expected the results schema {COLUMNS}")
    return normalise(frame)


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column of `COLUMNS` present: absent ones empty (NaN / ""), `dirty` a bool, `model_key`
    filled from the model's columns where the CSV has none."""
    frame = frame.copy()
    for column in COLUMNS:
        if column not in frame:
            frame[column] = float("nan")
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), "").astype(str)
    frame["dirty"] = [_dirty(flag, version) for flag, version in zip(frame["dirty"], frame["code_version"])]
    derived = (frame["dataset"].astype(str) + "-" + frame["backbone"].astype(str) + "-"
               + frame["variant"].astype(str) + "-pool" + frame["pooling_blocks"].astype(str))
    frame["model_key"] = frame["model_key"].where(frame["model_key"] != "", derived)
    for column in ("paper_value", "measured_value", "chance_value", "seed"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _dirty(flag, code_version: str) -> bool:
    if isinstance(flag, (bool, np.bool_)):  # the result store's CSVs read back as a bool column
        return bool(flag)
    if isinstance(flag, str) and flag.strip():
        return flag.strip().lower() in ("true", "1", "yes")
    return str(code_version).endswith("-dirty")


def summary_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["class_name"] == ""]


def per_class_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["class_name"] != ""]


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """One line per measured quantity (`KEYS`), in the CSV's order: `paper_value`, `chance_value`,
    `mean`, `std` (0 with one seed), `min`, `max` over seeds, `n` (measurements), `seeds` (the seed
    values, "" where unknown), and the row's msc / crf / split / note / checkpoint."""
    lines = []
    for key, group in frame.groupby(KEYS, sort=False):
        values = group["measured_value"].dropna()
        seeds = sorted({int(s) for s in group["seed"].dropna()})
        first = group.iloc[0]
        lines.append({
            **dict(zip(KEYS, key)), "msc": first["msc"], "crf": first["crf"], "split": first["split"],
            "paper_value": first["paper_value"], "chance_value": group["chance_value"].mean(),
            "mean": values.mean() if len(values) else float("nan"),
            "std": values.std(ddof=1) if len(values) > 1 else (0.0 if len(values) else float("nan")),
            "min": values.min() if len(values) else float("nan"),
            "max": values.max() if len(values) else float("nan"),
            "n": len(values), "seeds": ", ".join(map(str, seeds)),
            "note": "; ".join(dict.fromkeys(n for n in group["note"] if n)),
            "checkpoint": ", ".join(dict.fromkeys(c for c in group["checkpoint"] if c)),
        })
    return pd.DataFrame(lines, columns=[*KEYS, "msc", "crf", "split", "paper_value", "chance_value", "mean", "std",
                                        "min", "max", "n", "seeds", "note", "checkpoint"])


def fmt(value, digits: int = 1) -> str:
    """A number as a table cell: "—" where there is none."""
    return "—" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def with_spread(line) -> str:
    """A measured cell: "41.2 ± 1.3 (3 seeds)" over several seeds, "41.2" for one, "—" for none."""
    if not line["n"] or pd.isna(line["mean"]):
        return "—"
    if line["n"] == 1:
        return fmt(line["mean"])
    return f"{line['mean']:.1f} ± {line['std']:.1f} ({line['n']} seeds)"


def seed_label(frame: pd.DataFrame) -> str:
    """Which seeds produced `frame`: "seed 0", "seeds 0, 1, 2", "released checkpoints", "seed unknown"."""
    seeds = sorted({int(s) for s in frame["seed"].dropna()})
    if seeds:
        return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
    if set(frame["profile"]) == {"released"}:
        return "released checkpoints"
    return "seed unknown"


def is_standin(frame: pd.DataFrame) -> bool:
    """True where any row comes from stand-in data or a stand-in profile."""
    return bool((frame["data"] == "standin").any() or frame["profile"].isin(STANDIN_PROFILES).any())


def timing(frame: pd.DataFrame) -> pd.DataFrame:
    """One line per trained model (`model_key`, and seed): the rows it serves, its iterations and
    training time (once), and the summed time of its evaluations."""
    lines = []
    seeds = frame["seed"].fillna(-1)
    for (key, seed), group in frame.groupby([frame["model_key"], seeds], sort=False):
        evaluations = group.drop_duplicates(["row", "dataset"])
        lines.append({
            "model_key": key, "seed": "" if seed == -1 else int(seed),
            "rows": "; ".join(evaluations["row"].astype(str)),
            "iterations": group["iterations"].iloc[0], "train_seconds": group["train_seconds"].max(),
            "eval_seconds": evaluations["eval_seconds"].sum(),
        })
    return pd.DataFrame(lines, columns=["model_key", "seed", "rows", "iterations", "train_seconds", "eval_seconds"])
