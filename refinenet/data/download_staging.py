"""`refinenet download`'s staging: verified files into DIR/raw/<name>/ (archives unpacked into a temporary folder
and moved in only when whole, other files linked), the links the converter expects, then the converter, and the
dataset folder DIR/<name>/ renamed into place with its download-manifest.json only once everything finished.
Faults raise `DownloadError`, naming the file and its URL. The transfers: refinenet/data/download_transfer.py.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from tqdm import tqdm

from refinenet.atomic import write_text_atomic
from refinenet.data.download_transfer import DownloadError
from refinenet.data.sources import DatasetDownload

MANIFEST = "download-manifest.json"
UNPACKED = ".unpacked"  # stamps of the archives unpacked into a raw folder


def unpack(archive: Path, raw: Path, url: str, progress: bool = True) -> None:
    """Unpack `archive` into a temporary folder beside `raw` (reading every block: a gzip stream or tar member cut
    short and a zip without its central directory or with a bad CRC raise), then move its contents into `raw`;
    stamped so a re-run skips it."""
    stamp = raw / UNPACKED / archive.name
    if stamp.is_file():
        return
    tmp = raw.parent / f".{raw.name}.{archive.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    bar = {"desc": f"unpacking {archive.name}", "unit": "file", "disable": not progress, "leave": False}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp, members=tqdm(z.infolist(), **bar))  # every member's CRC is checked as it is read
        else:
            with tarfile.open(archive) as t:
                t.extractall(tmp, members=tqdm(t, **bar), filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and err.errno == 28:
            raise DownloadError(f"{archive.name} from {url}: the disk filled while unpacking into {tmp}") from err
        archive.unlink(missing_ok=True)  # a truncated or corrupt file must be fetched again
        raise DownloadError(f"{archive.name} from {url}: truncated or corrupt archive ({err}); it was removed, "
                            "rerun to fetch it again") from err
    _merge(tmp, raw)
    shutil.rmtree(tmp, ignore_errors=True)
    write_text_atomic(stamp, f"{archive.name}\n")


def _merge(source: Path, target: Path) -> None:
    """Move every entry of `source` into `target`: folders merged, files replacing files."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        dest = target / entry.name
        if entry.is_dir() and not entry.is_symlink() and dest.is_dir():
            _merge(entry, dest)
        else:
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            os.replace(entry, dest)


def place_file(path: Path, raw: Path, place: str) -> None:
    """A downloaded file that is not unpacked, hard-linked (else copied) into the raw folder."""
    target = raw / place
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, target)


def make_links(entry: DatasetDownload, raw: Path) -> None:
    for where, pattern in entry.links:
        target = raw / where
        if target.exists() or target.is_symlink():
            continue
        found = sorted(p for p in raw.glob(pattern) if UNPACKED not in p.parts)
        if not found:
            raise DownloadError(f"{entry.name}: nothing in {raw} matches {pattern} (needed as {where}); the release's "
                                "layout differs from what refinenet/data/sources.py expects")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(found[0].resolve())


def convert(entry: DatasetDownload, raw: Path, root: Path, manifest: dict) -> Path:
    """Run the converter into a temporary folder (or take the raw folder as it is) and rename it to
    `root/<name>` once the manifest is written into it: nothing unfinished ever has the dataset's name."""
    from refinenet import data
    from refinenet.data.common import DatasetLayoutError, LabelValueError

    final = root / entry.name
    if entry.converter is None:
        staging = raw
    else:
        staging = root / f".{entry.name}.converting"
        try:
            data.prepare(entry.converter, raw, staging)
        except (DatasetLayoutError, LabelValueError, OSError, ValueError) as err:
            raise DownloadError(f"{entry.name}: `refinenet prepare {entry.converter} --raw {raw}` failed: {err}") \
                from err
    write_text_atomic(staging / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    os.replace(staging, final)
    return final
