"""`refinenet download NAME... --root DIR`: fetch a dataset's public release, verify it, unpack and convert it.

    DIR/downloads/<file>        the files as served, kept (a re-run verifies them instead of fetching);
                                <file>.part is an interrupted transfer, continued with an HTTP Range request
    DIR/raw/<name>/             the release unpacked (the converter's --raw)
    DIR/<name>/                 what `--data-root DIR` of the table runners reads; it appears (one rename) only
                                once every file verified and the converter finished, with download-manifest.json

Transfers go through pooch (`pooch.retrieve`: the published checksum is checked before a file takes its name)
with a downloader that continues `.part` files; requests does the HTTP. Files without a published checksum are
checked by unpacking them (tar blocks, zip CRCs) into a temporary folder, renamed into place only when whole, and
their SHA-256 goes into the manifest (and is printed). Sources: refinenet/data/sources.py.

Faults (checksum mismatch, truncated archive, HTTP error, a network still down after the retries, a full disk)
raise `DownloadError`, which names the file and its URL; the command prints it as one `error:` line and exits 2.
A re-run continues: finished downloads, unpacked archives and converted datasets are kept.

The transfers (and Cityscapes' login) are in download_transfer.py, unpacking, linking and converting in
download_staging.py; this module plans, runs them in order for each dataset, and is the command.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from refinenet.cli_options import add_options, from_args, option
from refinenet.data.download_staging import MANIFEST, convert, make_links, place_file, unpack
from refinenet.data.download_transfer import (
    DownloadError,
    cityscapes_md5,
    cityscapes_session,
    fetch,
    human,
    part_file,
    sha256,
)
from refinenet.data.sources import ALIASES, DOWNLOAD_NAMES, DatasetDownload, Source, download_table


@dataclass
class DownloadOptions:
    """`refinenet download`'s options."""

    names: tuple[str, ...] = option(help=f"datasets to fetch: {', '.join(DOWNLOAD_NAMES)}, or all", positional=True,
                                    nargs="+", metavar="NAME")
    root: Path = option(help="where downloads/, raw/ and one folder per dataset go (the --data-root to use)")
    mirror: str | None = option(None, "fetch every file as URL/<file> (the names --dry-run lists) instead of from "
                                "its provider: an institutional mirror, a cluster without internet")
    dry_run: bool = option(False, "list every URL, size, checksum and destination; write nothing")
    retries: int = option(3, "retries of a failed transfer (each continues where the last stopped)")
    timeout: float = option(60.0, "seconds without data before a transfer counts as failed")
    progress: bool = option(True, "no progress bars")


# ---------------------------------------------------------------------------------------------
# Names and the plan


def resolve_names(names) -> list[str]:
    """Download names, `all` expanded and aliases resolved, in order and once each; unknown names raise."""
    chosen = []
    for name in names:
        if name == "all":
            chosen += [n for n in DOWNLOAD_NAMES if n not in ALIASES]
        elif name in DOWNLOAD_NAMES:
            chosen.append(ALIASES.get(name, name))
        else:
            raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DOWNLOAD_NAMES)}, all")
    return list(dict.fromkeys(chosen))


def source_url(source: Source, mirror: str | None) -> str:
    return f"{mirror.rstrip('/')}/{source.file}" if mirror else source.url


def is_ready(root: Path, name: str) -> bool:
    return (root / name / MANIFEST).is_file()


def bytes_needed(root: Path, entries: list[DatasetDownload]) -> int:
    """What the unfinished datasets still need on disk: files not yet downloaded plus their unpacked copies."""
    files: dict[str, int] = {}
    total = 0
    for entry in entries:
        if is_ready(root, entry.name):
            continue
        total += entry.disk
        for source in entry.sources:
            path = root / "downloads" / source.file
            part = part_file(path)
            have = path.stat().st_size if path.is_file() else part.stat().st_size if part.is_file() else 0
            files[source.file] = max(0, source.size - have)
    return total + sum(files.values())


def dry_run_text(root: Path, entries: list[DatasetDownload], mirror: str | None) -> str:
    lines = []
    for entry in entries:
        state = "ready (nothing to do)" if is_ready(root, entry.name) else "to fetch"
        lines.append(f"{entry.name}: {state} -> {root / entry.name}")
        for s in entry.sources:
            check = f"md5 {s.md5} ({s.checksum_source})" if s.md5 else \
                "md5 fetched after login" if s.cityscapes_package else "no published checksum: SHA-256 recorded"
            where = f"unpacked into {root / 'raw' / entry.name}" if s.unpack else \
                f"linked as {root / 'raw' / entry.name / (s.place or s.file)}"
            lines.append(f"  {source_url(s, mirror)}\n    ~{human(s.size)} -> {root / 'downloads' / s.file}, {where}; "
                         f"{check}{f'; {s.note}' if s.note else ''}")
        converter = f"refinenet prepare {entry.converter}" if entry.converter else "read as unpacked"
        lines.append(f"  then: {converter}; ~{human(entry.disk)} besides the downloads")
        lines.append(f"  licence: {entry.licence}")
    lines.append(f"disk needed: ~{human(bytes_needed(root, entries))}; then use --data-root {root}")
    return "\n".join(lines)


def check_disk(root: Path, entries: list[DatasetDownload]) -> None:
    need = bytes_needed(root, entries)
    existing = next(p for p in [root, *root.parents] if p.exists())
    free = shutil.disk_usage(existing).free
    if need > free:
        raise DownloadError(f"not enough disk under {root}: {', '.join(e.name for e in entries)} need ~{human(need)}, "
                            f"{human(free)} free")


# ---------------------------------------------------------------------------------------------
# One dataset


def download_dataset(entry: DatasetDownload, opts: DownloadOptions) -> Path:
    """Fetch, verify, unpack, link and convert one dataset; returns `root/<name>`. Skipped when ready."""
    import requests

    root = Path(opts.root)
    final = root / entry.name
    if is_ready(root, entry.name):
        print(f"{entry.name}: ready in {final} (download-manifest.json); nothing to do")
        return final
    if final.exists():
        raise DownloadError(f"{final} exists but was not made by `refinenet download` (no {MANIFEST}); move it away "
                            "or choose another --root")
    session = requests.Session()
    if any(s.cityscapes_package for s in entry.sources) and not opts.mirror:
        cityscapes_session(session)
    raw = root / "raw" / entry.name
    files = []
    for source in entry.sources:
        url = source_url(source, opts.mirror)
        md5 = source.md5
        if source.cityscapes_package and not opts.mirror:
            md5 = cityscapes_md5(session, source.cityscapes_package)
        path = fetch(source, url, md5, root, session, opts)
        digest = sha256(path)
        print(f"{entry.name}: {source.file} {'md5 ' + md5 + ' verified' if md5 else 'no published checksum'}; "
              f"sha256 {digest}")
        if source.unpack:
            unpack(path, raw, url, opts.progress)
        else:
            place_file(path, raw, source.place or source.file)
        files.append({"file": source.file, "url": url, "bytes": path.stat().st_size,
                      "md5": md5, "md5_source": source.checksum_source if md5 else "none published",
                      "sha256": digest})
    make_links(entry, raw)
    manifest = {"dataset": entry.name, "files": files, "converter": entry.converter, "raw": str(raw),
                "licence": entry.licence, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return convert(entry, raw, root, manifest)


def download(opts: DownloadOptions) -> list[Path]:
    """Everything `refinenet download` does for `opts.names`; raises DownloadError / ValueError."""
    table = download_table()
    entries = [table[name] for name in resolve_names(opts.names)]
    root = Path(opts.root)
    if opts.dry_run:
        print(dry_run_text(root, entries, opts.mirror))
        return []
    check_disk(root, entries)
    return [download_dataset(entry, opts) for entry in entries]


# ---------------------------------------------------------------------------------------------
# The command


def cmd_download(args) -> int:
    opts = from_args(DownloadOptions, args)
    try:
        done = download(opts)
    except (DownloadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk or an unwritable --root outside the steps that name their file
        print(f"error: {getattr(err, 'filename', None) or opts.root}: {err.strerror or err}", file=sys.stderr)
        return 2
    if done:
        print(f"ready: {', '.join(p.name for p in done)}; use --data-root {Path(opts.root).resolve()}")
    return 0


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("download", help="fetch, verify, unpack and convert public datasets "
                                   "(--dry-run lists URLs and sizes)")
    add_options(parser, DownloadOptions)
    parser.set_defaults(func=cmd_download)


__all__ = ["DownloadError", "DownloadOptions", "add_command", "download", "download_dataset"]
