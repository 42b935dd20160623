"""Pre-flight check: read every image and label of the splits a run will use, once, before it starts.

A corrupt or mismatched file otherwise ends a long run when the data loader first meets it, hours in.
`check_split` reads each (image, label) pair as training and evaluation do (`SegmentationFiles.load`:
decoding, size match, label values the dataset defines), in parallel threads with a progress bar, and
stops with ONE message listing every file that cannot be used.

A split that passed is remembered by a stamp in a cache folder, keyed by the dataset, its root, the split
and every file's size and modification time, so it is read once; any change reads it again. The stamp
is never written inside the dataset root (which may be read-only): it goes to `$REFINENET_CACHE/preflight`,
else `$XDG_CACHE_HOME/refinenet/preflight`, else `~/.cache/refinenet/preflight`, or the folder given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from refinenet import data
from refinenet.atomic import write_text_atomic
from refinenet.data.common import SegmentationFiles

MAX_LISTED = 50  # problems spelled out in the message; the rest are counted


class PreflightError(ValueError):
    """Files of a split cannot be used; the message lists them."""


def default_cache_dir() -> Path:
    if os.environ.get("REFINENET_CACHE"):
        return Path(os.environ["REFINENET_CACHE"]) / "preflight"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "refinenet" / "preflight"


def pair_problem(dataset: SegmentationFiles, index: int) -> str | None:
    """Why item `index` cannot be used (the message names the file), or None. Reads it once, as the
    engine does; kept a plain function so other one-pass readers of a split can share it."""
    try:
        dataset.load(index)
    except (OSError, ValueError) as err:  # unreadable / truncated files, size mismatch, undefined label values
        return str(err)
    return None


def split_fingerprint(dataset: SegmentationFiles) -> str:
    """SHA-256 of the dataset, root, split and every listed file's size and modification time."""
    files = []
    for pair in dataset.pairs:
        for path in pair:
            if path is None:
                continue
            try:
                st = path.stat()
                files.append([str(path), st.st_size, st.st_mtime_ns])
            except OSError:
                files.append([str(path), None, None])  # gone: the read below reports it
    record = {"dataset": dataset.info.name, "root": str(dataset.root), "split": dataset.split, "files": files}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def check_split(dataset: SegmentationFiles, *, cache_dir: Path | None = None, workers: int | None = None,
                progress: bool = True) -> bool:
    """Read every pair of `dataset` once unless a stamp says this exact split already passed.

    Returns True when it read the files now, False when the stamp was found. Raises `PreflightError`
    listing every unusable file.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    fingerprint = split_fingerprint(dataset)
    stamp = cache_dir / f"{dataset.info.name}-{dataset.split}-{fingerprint[:20]}.json"
    if stamp.is_file():
        return False
    workers = workers or min(8, (os.cpu_count() or 1) + 2)  # decoding releases the GIL; I/O overlaps
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = pool.map(lambda i: pair_problem(dataset, i), range(len(dataset)))
        problems = [p for p in tqdm(found, total=len(dataset), disable=not progress, unit="img", leave=False,
                                    desc=f"pre-flight {dataset.info.name} {dataset.split}") if p is not None]
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise PreflightError(
            f"pre-flight check: {len(problems)} of {len(dataset)} items of {dataset.info.name} split "
            f"{dataset.split!r} under {dataset.root} cannot be used:\n{listed}{more}\n"
            "Replace or re-convert these files (or remove them from the split list) and start again; "
            "nothing was trained."
        )
    record = {"dataset": dataset.info.name, "root": str(dataset.root), "split": dataset.split,
              "items": len(dataset), "fingerprint": fingerprint,
              "checked_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    write_text_atomic(stamp, json.dumps(record, indent=1) + "\n")
    return True


def check_splits(dataset: str, root: str | Path, splits, *, cache_dir: Path | None = None,
                 progress: bool = True) -> None:
    """`check_split` for each named split of `dataset` under `root` (None entries and repeats skipped)."""
    for split in dict.fromkeys(s for s in splits if s):
        check_split(data.load_dataset(dataset, root, split), cache_dir=cache_dir, progress=progress)
