"""The authors' released models in the table runs (`--profile released`) and in their own summary.

Two kinds of file serve a row (`Row.weights` in benchmarks/tables/specs.py, the authors' own first):
* `refinenet_res{101,152}_<dataset>.mat`, the authors' MatConvNet models, 14 in all (refinenet/convert.py
  converts each once, cached by its SHA-256, and checks the conversion against the file's own graph);
* `refinenet{50,101,152}_{voc,nyu}.pth.tar`, the PyTorch conversions once hosted on CloudStor (refinenet/released.py).
`--profile released --weights DIR` evaluates each covered row with the row's protocol (multi-scale, CRF) and
lists every other row as "no released weights", its measured value empty. Where a model's configuration
differs from the row's, `released_note` says how.

`released_rows` evaluates a table's rows; `run_released_summary` writes
`results/released.csv` / `.md` (`summary_records`, `summary_markdown`): each given checkpoint on its
dataset's measured split, single- and multi-scale, beside the paper's figure for that setting and the
figure its converters published (benchmarks/tables/paper/released_published.csv).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmarks.provenance import precision
from benchmarks.tables import store
from benchmarks.tables.data_roots import check_data, real_root
from benchmarks.tables.paper_numbers import PAPER_DIR, load_paper_table, paper_value
from benchmarks.tables.rows import TableProgress, check_before_writing, eval_config, percent, row_records
from benchmarks.tables.run_options import RunOptions, Session
from benchmarks.tables.specs import AUTHORS_DATASET_NAMES, MEASURED_SPLIT, TABLES, TEST_SERVER, Row, authors_model
from refinenet.atomic import write_text_atomic
from refinenet.config import EvalConfig
from refinenet.convert import file_sha256 as sha256_of
from refinenet.inference import PAPER_SCALES
from refinenet.metrics import chance_scores
from refinenet.preflight import check_splits
from refinenet.recipe import default_pooling_blocks

# The published names: dataset and backbone of each; the authors' MatConvNet models first.
AUTHORS_FILES = {authors_model(dataset, f"resnet{depth}"): (dataset, f"resnet{depth}")
                 for dataset in AUTHORS_DATASET_NAMES for depth in (101, 152)}
CONVERSION_FILES = {f"refinenet{depth}_{short}.pth.tar": (dataset, f"resnet{depth}")
                    for short, dataset in (("voc", "voc2012"), ("nyu", "nyudv2")) for depth in (50, 101, 152)}
RELEASED_FILES = {**AUTHORS_FILES, **CONVERSION_FILES}
# Every converted checkpoint has 4 chained residual pooling stages per block (mflow_conv_g*_pool.0.{1..4});
# the released training code's default is 2, as the NYUDv2 rows of Table 2 trained.
RELEASED_POOLING_BLOCKS = 4
WHERE_TO_GET = (
    "The authors' MatConvNet models (refinenet_res{101,152}_<dataset>.mat) are in the Google Drive and Baidu Pan "
    "folders linked from the README of github.com/guosheng/refinenet ('Trained models'); they are not "
    "redistributable, so this suite cannot ship or download them. The PyTorch conversions "
    "(refinenet{50,101,152}_{voc,nyu}.pth.tar) were hosted on CloudStor, which is gone. Put the files you have in "
    "the --weights folder under these names, or run only the rows they cover (--rows)."
)
SUMMARY_COLUMNS = [
    "checkpoint", "checkpoint_sha256", "dataset", "split", "msc", "metric", "measured_value", "chance_value",
    "paper_value", "paper_source", "published_value", "published_source", "note", "profile", "data", "precision",
    "eval_seconds", "device", "torch", "code_version", "dirty", "eval_key", "finished_at",
]
SUMMARY_METRICS = ("miou", "pixel_acc", "mean_acc")


def released_note(row: Row, name: str | None = None, found: dict | None = None) -> str:
    """How the released model `name` differs from the model the row trained ("" when it does not); `found`:
    what the conversion of an authors' MatConvNet model found in it (refinenet/convert.py)."""
    pooling = default_pooling_blocks(row.dataset) if row.pooling_blocks is None else row.pooling_blocks
    name = name or row.released
    if name not in AUTHORS_FILES:
        if pooling != RELEASED_POOLING_BLOCKS:
            return f"released checkpoint has {RELEASED_POOLING_BLOCKS} pooling blocks; the row trained {pooling}"
        return ""
    notes = []
    if found and found.get("pool_order") == "conv_pool":
        notes.append("improved residual pooling (conv before pool; guosheng/refinenet README), not Fig. 3(d)")
    if found and found.get("pooling_blocks") != pooling:
        notes.append(f"the authors' model has {found.get('pooling_blocks')} pooling blocks; the row trained {pooling}")
    if row.dataset == "voc2012":
        notes.append("the VOC model was updated after the paper (guosheng/refinenet README, 13 Feb 2018)")
    return "; ".join(notes)


def require_weights(weights: Path | None, needed: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, Path]]:
    """For each row (its description -> the files that serve it, preferred first), the first file present in
    the `weights` folder; one error naming, per row, the files that would serve it and where they come from."""
    if not needed:
        return {}
    if weights is None:
        names = sorted({name for files in needed.values() for name in files})
        raise FileNotFoundError(f"the released profile evaluates the authors' models: give --weights DIR, a folder "
                                f"holding {', '.join(names)}. {WHERE_TO_GET}")
    chosen, missing = {}, {}
    for row, files in needed.items():
        present = [name for name in files if (Path(weights) / name).is_file()]
        if present:
            chosen[row] = (present[0], Path(weights) / present[0])
        else:
            missing[row] = files
    if missing:
        lines = "\n".join(f"  - {row}: {' or '.join(files)}" for row, files in missing.items())
        raise FileNotFoundError(f"--weights {weights} lacks the files for:\n{lines}\n{WHERE_TO_GET}")
    return chosen


def present_weights(weights: Path | None) -> dict[str, Path]:
    """The released models found in the `weights` folder (an error when there are none)."""
    found = {name: Path(weights) / name for name in RELEASED_FILES if weights and (Path(weights) / name).is_file()}
    if not found:
        raise FileNotFoundError(f"--weights {weights} holds none of {', '.join(RELEASED_FILES)}. {WHERE_TO_GET}")
    return found


def checkpoint_for(name: str, path: Path, cache: Path, sha256: str) -> tuple[Path, dict | None]:
    """What `refinenet evaluate` reads for released file `name` (whose SHA-256 is `sha256`): the file itself, or
    for an authors' MatConvNet model its conversion (made once, cached under `cache`), with what it found."""
    if name not in AUTHORS_FILES:
        return path, None
    from refinenet.convert import cached_conversion, conversion_info

    converted = cached_conversion(path, Path(cache) / "converted", AUTHORS_FILES[name][0], sha256)
    return converted, conversion_info(converted)["found"]


def file_sha256(path: Path, cache: Path) -> str:
    """SHA-256 of a file, computed once per (path, size, modification time): remembered in `cache`."""
    path = Path(path).resolve()
    st = path.stat()
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    stamp = [st.st_size, st.st_mtime_ns]
    if known.get(str(path), {}).get("stamp") == stamp:
        return known[str(path)]["sha256"]
    digest = sha256_of(path)
    known[str(path)] = {"stamp": stamp, "sha256": digest}
    write_text_atomic(cache, json.dumps(known, indent=1))
    return digest


# ---------------------------------------------------------------------------------------------
# The summary: each checkpoint on its dataset's split, beside the paper and the converters' figures


def paper_figure(name: str, split: str, msc: bool, metric: str, found: dict | None = None
                 ) -> tuple[float | None, str, str]:
    """(value, source, note) of the paper's number for checkpoint `name` evaluated as given: from the first
    table row it covers with the same split and scales and no CRF."""
    for number, table in TABLES.items():
        for row in table.rows:
            if name in row.weights and row.msc == msc and not row.crf and row.split == split and row.paper:
                value = paper_value(load_paper_table(number), row, metric)
                if value is not None:
                    return value, f"Table {number}, {row.label}", released_note(row, name, found)
    return None, "", ""


def published_figures() -> pd.DataFrame:
    return pd.read_csv(PAPER_DIR / "released_published.csv", dtype={"msc": str})


def published_figure(published: pd.DataFrame, name: str, split: str, msc: bool, metric: str):
    hit = published[(published["checkpoint"] == name) & (published["split"] == split)
                    & (published["msc"] == ("yes" if msc else "no")) & (published["metric"] == metric)]
    return (float(hit["value"].iloc[0]), hit["source"].iloc[0]) if len(hit) else (None, "")


def summary_records(name: str, split: str, msc: bool, measured: dict, chance: dict, columns: dict,
                    found: dict | None = None) -> list[dict]:
    """One record per metric of checkpoint `name` on `split`: measured and chance values (percent), the
    paper's and the converters' figures; `columns` holds the provenance columns."""
    published = published_figures()
    records = []
    for metric in SUMMARY_METRICS:
        paper, source, note = paper_figure(name, split, msc, metric, found)
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


# ---------------------------------------------------------------------------------------------
# Evaluating them: a table's rows (profile released) and the summary


def released_rows(number: int, rows: list[Row], paper: pd.DataFrame, session: Session) -> list[dict]:
    opts, stamp = session.opts, session.provenance.stamp()
    covered = [row for row in rows if row.weights]
    describe = {row.key: f"table {number} '{row.label}' ({row.dataset})" for row in covered}
    chosen = require_weights(opts.weights, {describe[row.key]: row.weights for row in covered})
    roots = check_data(covered, opts, training=False)
    progress = TableProgress(number, len({chosen[d][0] for d in chosen}), len(rows), opts.progress)
    records, seen = [], []
    try:
        for row in rows:
            if not row.weights:
                records += row_records(number, row, paper, None, {"note": "no released weights"}, session)
                progress.row_done()
                continue
            name, path = chosen[describe[row.key]]
            if name not in seen:
                seen.append(name)
                progress.next_model()
            sha = file_sha256(path, Path(opts.cache) / "sha256.json")
            checkpoint, found = checkpoint_for(name, path, Path(opts.cache), sha)
            ev_cfg = eval_config(row, checkpoint, roots[row.dataset], opts)
            test_server = TEST_SERVER.get(row.dataset)
            ev = session.fresh(store.eval_entry(
                session.store_dir, {"released": name, "sha256": sha}, ev_cfg,
                session.data_identity(row.dataset, roots[row.dataset], row.split), test_server))
            evaluation = store.evaluated(ev, ev_cfg, test_server, stamp)
            columns = {"data": ev.key["data"]["kind"],
                       "precision": precision(None, evaluation["result"].get("precision")),
                       "model_key": f"{name}@{sha[:16]}", "eval_key": ev.name, "checkpoint": name,
                       "checkpoint_sha256": sha, "note": released_note(row, name, found)}
            records += row_records(number, row, paper, evaluation, columns, session)
            progress.row_done()
    finally:
        progress.close()
    return records


def run_released_summary(opts: RunOptions, session: Session | None = None) -> pd.DataFrame:
    """Each released checkpoint in --weights on its dataset's measured split, single- and multi-scale, beside
    the paper's and the converters' figures: results/csv and .md."""
    session = session or Session.start(opts)
    stamp, records = session.provenance.stamp(), []
    for name, path in present_weights(opts.weights).items():
        dataset = RELEASED_FILES[name][0]
        split = MEASURED_SPLIT[dataset]
        root = real_root(dataset, opts)
        check_splits(dataset, root, [split], cache_dir=Path(opts.cache) / "preflight", progress=opts.progress)
        sha = file_sha256(path, Path(opts.cache) / "sha256.json")
        checkpoint, found = checkpoint_for(name, path, Path(opts.cache), sha)
        for msc in (False, True):
            cfg = EvalConfig(checkpoint=checkpoint, dataset=dataset, data_root=root, split=split,
                             scales=PAPER_SCALES if msc else (1.0,), device=opts.device, workers=opts.workers,
                             progress=opts.progress)
            ev = session.fresh(store.eval_entry(session.store_dir, {"released": name, "sha256": sha}, cfg,
                                                session.data_identity(dataset, root, split), None))
            evaluation = store.evaluated(ev, cfg, None, stamp)
            result = evaluation["result"]
            chance = chance_scores(result["class_pixels"]) if result.get("class_pixels") else {}
            columns = {"checkpoint_sha256": sha, "dataset": dataset, "profile": "released",
                       "data": ev.key["data"]["kind"], "precision": precision(None, result.get("precision")),
                       "eval_seconds": evaluation["eval_seconds"], "device": evaluation["device"],
                       "torch": evaluation["torch"], "code_version": session.provenance.code_version,
                       "dirty": bool(session.provenance.dirty or evaluation.get("dirty")), "eval_key": ev.name,
                       "finished_at": evaluation["finished_at"]}
            records += summary_records(
                name, split, msc, {m: percent(result.get(m)) for m in SUMMARY_METRICS},
                {m: percent(chance.get(m)) for m in SUMMARY_METRICS}, columns, found)
    frame = pd.DataFrame.from_records(records, columns=SUMMARY_COLUMNS)
    results = check_before_writing("released", frame, session)
    write_text_atomic(results / "released.csv", frame.to_csv(index=False))
    write_text_atomic(results / "released.md", summary_markdown(frame))
    return frame
