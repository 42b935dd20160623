"""What one run of the tables is: its profile, its options (each a flag of `python -m benchmarks.reproduce`), the
session one command shares across tables, and the rows `--rows` selects. Where each dataset is read from is
data_roots.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.provenance import REPO, Provenance, check_results_folder, read_provenance
from benchmarks.tables import store
from benchmarks.tables.specs import Row, Table
from refinenet.cli_options import option
from refinenet.inference import PAPER_SCALES


@dataclass(frozen=True)
class Profile:
    """How a table run is sized. `standin`/`smoke` generate stand-in data; `paper`/`released` read real data."""

    name: str
    train_profile: str | None  # the engine's recipe (refinenet/recipe.py); None: nothing is trained
    scales: tuple[float, ...]  # multi-scale evaluation
    standin: dict | None  # refinenet standin arguments, None = real data
    checkpoint_every: int | None = None  # None: the recipe's


PROFILES = {
    # released evaluation code: scales 0.4-1.2 averaged (guosheng/refinenet main/demo_predict_mscale_<dataset>.m)
    "paper": Profile("paper", "paper", PAPER_SCALES, None),
    # the authors' released checkpoints, evaluated as the paper's rows say; no training
    "released": Profile("released", None, PAPER_SCALES, None),
    # ours: small enough that every table finishes in minutes on 2 CPU cores
    "standin": Profile("standin", "standin", (0.75, 1.0, 1.25), {"train": 48, "val": 12, "size": (120, 160)}),
    # ours: seconds per row, for the tests
    "smoke": Profile("smoke", "smoke", (0.8, 1.0), {"train": 4, "val": 2, "size": (64, 80)}, checkpoint_every=1000),
}


@dataclass
class RunOptions:
    """How tables are run; every field is an option of `python -m benchmarks.reproduce`."""

    profile: str = option("standin", choices=tuple(sorted(PROFILES)))
    data_root: str | None = option(None, "paper / released profile: DIR with one folder per dataset (DIR/voc2012, "
                                   "...) or name=PATH[,name=PATH]")
    weights: Path | None = option(None, "released profile: DIR holding the authors' refinenet_res{101,152}_<dataset>"
                                        ".mat and/or the conversions refinenet{50,101,152}_{voc,nyu}.pth.tar")
    results: Path = option(REPO / "results", "where table<N>.* and runs/ (the result store) go")
    cache: Path = option(REPO / ".cache", "where stand-in data, pre-flight stamps and checksums go")
    device: str = option("auto", "auto, cpu, cuda, cuda:1, ...")
    workers: int = option(0, "data-loader workers")
    fresh: bool = option(False, "redo the models and evaluations these tables need (other store entries stay)")
    iterations: int | None = option(None, "override the profile's training iterations (e.g. quick looks at real data)")
    seeds: Sequence[int] = option((0,), "training seeds: each model is trained and evaluated once per seed")
    rows: Sequence[str] = option((), "only the rows whose label contains one of these texts")
    allow_dirty: bool = option(False, "write the repository's results/ from a tree with uncommitted changes (every "
                               "row is stamped dirty=true)")
    progress: bool = option(True, "no progress bars")
    coco: bool = option(True, "Table 4's VOC models from ImageNet weights only, without the COCO stage the paper's "
                        "had (Sec. 4.2; the recipe's `coco`): the ablation, and today's models before COCO")


@dataclass
class Session:
    """What one command shares across its tables: the provenance read once at start and the store entries
    `--fresh` already redid (so a model two tables share is retrained once)."""

    opts: RunOptions
    provenance: Provenance
    refreshed: set[Path] = field(default_factory=set)
    identities: dict = field(default_factory=dict)

    @classmethod
    def start(cls, opts: RunOptions) -> Session:
        if opts.profile == "released" and tuple(opts.seeds) != (0,):
            raise ValueError("--seeds does not apply to --profile released (nothing is trained)")
        provenance = read_provenance(opts.device)
        check_results_folder(opts.results, provenance, opts.allow_dirty)
        return cls(opts, provenance)

    @property
    def store_dir(self) -> Path:
        return Path(self.opts.results) / "runs"

    def fresh(self, entry: store.Entry) -> store.Entry:
        """`entry`, emptied first when --fresh asks (once per command)."""
        if self.opts.fresh and entry.folder not in self.refreshed:
            entry.remove()
            self.refreshed.add(entry.folder)
        return entry

    def data_identity(self, dataset: str, root: Path, split: str) -> dict:
        if (dataset, root, split) not in self.identities:
            self.identities[dataset, root, split] = store.data_identity(dataset, root, split)
        return self.identities[dataset, root, split]


def select_rows(table: Table, patterns: Sequence[str]) -> list[Row]:
    if not patterns:
        return list(table.rows)
    unmatched = [p for p in patterns if not any(p in row.label for row in table.rows)]
    if unmatched:
        labels = "; ".join(dict.fromkeys(row.label for row in table.rows))
        raise ValueError(f"--rows {unmatched} match no row of table {table.number} (rows: {labels})")
    return [row for row in table.rows if any(p in row.label for p in patterns)]
