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
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from refinenet.atomic import write_text_atomic
from refinenet.cli_options import add_options, from_args, option
from refinenet.data.sources import ALIASES, DOWNLOAD_NAMES, DatasetDownload, Source, download_table

MANIFEST = "download-manifest.json"
UNPACKED = ".unpacked"  # stamps of the archives unpacked into a raw folder
CHUNK = 1 << 14  # small enough that a transfer cut short keeps nearly all it received
CITYSCAPES_LOGIN = "https://www.cityscapes-dataset.com/login"
CITYSCAPES_MD5 = "https://www.cityscapes-dataset.com/md5-sum/?packageID={}"


class DownloadError(RuntimeError):
    """A fault while fetching, verifying, unpacking or converting; the message names the file and the URL."""


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


def human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1000
    return ""


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
            have = path.stat().st_size if path.is_file() else _part(path).stat().st_size if _part(path).is_file() \
                else 0
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
# Transfers


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


class ResumingDownloader:
    """A pooch downloader that keeps an interrupted transfer in `<file>.part` and continues it with an HTTP
    Range request (retried `retries` times, each continuing), showing a progress bar."""

    def __init__(self, part: Path, session, *, retries: int, timeout: float, progress: bool, label: str):
        self.part, self.session, self.retries, self.timeout = part, session, retries, timeout
        self.progress, self.label = progress, label

    def __call__(self, url: str, output_file, pooch_obj=None, check_only: bool = False):
        import requests

        for attempt in range(self.retries + 1):
            try:
                self._transfer(url)
                break
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
                if attempt == self.retries:
                    raise NetworkDownError(f"the network failed {self.retries + 1} times ({type(err).__name__}); "
                                           f"{human(self._have())} kept in {self.part}: rerun to continue") from err
                time.sleep(min(0.5 * 2**attempt, 10))
        os.replace(self.part, output_file)

    def _have(self) -> int:
        return self.part.stat().st_size if self.part.is_file() else 0

    def _transfer(self, url: str) -> None:
        have = self._have()
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            if response.status_code == 416 and have:  # the .part already holds the whole file
                return
            response.raise_for_status()
            if have and response.status_code != 206:  # the server ignores Range: start again
                have = 0
            remaining = int(response.headers.get("Content-Length", 0) or 0)
            free = shutil.disk_usage(self.part.parent).free
            if remaining > free:
                raise OSError(28, f"the disk is full: {human(remaining)} to fetch, {human(free)} free")
            with open(self.part, "ab" if have else "wb") as out, \
                    tqdm(total=have + remaining or None, initial=have, unit="B", unit_scale=True, desc=self.label,
                         disable=not self.progress, leave=False) as bar:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))


class NetworkDownError(OSError):
    """The transfer kept failing after the retries; the partial file is kept for the next run."""


def fetch(source: Source, url: str, md5: str | None, root: Path, session, opts: DownloadOptions) -> Path:
    """`root/downloads/<file>`, fetched (continuing a .part) and checked against `md5` where one is published.
    A file already there is re-checked, not fetched again."""
    import pooch
    import requests

    pooch.get_logger().setLevel("WARNING")
    folder = root / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / source.file
    downloader = ResumingDownloader(_part(path), session, retries=opts.retries, timeout=opts.timeout,
                                    progress=opts.progress, label=source.file)
    try:
        pooch.retrieve(url, known_hash=f"md5:{md5}" if md5 else None, fname=source.file, path=folder,
                       downloader=downloader)
    except requests.HTTPError as err:
        raise DownloadError(f"{source.file} from {url}: HTTP {err.response.status_code} "
                            f"({err.response.reason})") from err
    except NetworkDownError as err:
        raise DownloadError(f"{source.file} from {url}: {err}") from err
    except ValueError as err:  # pooch: the checksum does not match (the file was deleted)
        raise DownloadError(f"{source.file} from {url}: checksum mismatch, expected md5 {md5} "
                            f"({source.checksum_source}); the file was removed, rerun to fetch it again") from err
    except OSError as err:
        raise DownloadError(f"{source.file} from {url}: {err.strerror or err}") from err
    return path


# ---------------------------------------------------------------------------------------------
# Unpacking and converting


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


# ---------------------------------------------------------------------------------------------
# Cityscapes' login (as cityscapesScripts' downloader takes it)


def cityscapes_credentials() -> dict:
    """CITYSCAPES_USERNAME / CITYSCAPES_PASSWORD, else the file cityscapesScripts' `csDownload` stores
    (appdirs' user data folder of `cityscapesscripts`, credentials.json), else a prompt on a terminal."""
    user, password = os.environ.get("CITYSCAPES_USERNAME"), os.environ.get("CITYSCAPES_PASSWORD")
    if user and password:
        return {"username": user, "password": password}
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    stored = data_home / "cityscapesscripts" / "credentials.json"
    if stored.is_file():
        return json.loads(stored.read_text())
    if sys.stdin.isatty():
        return {"username": input("Cityscapes username or email address: "),
                "password": getpass.getpass("Cityscapes password: ")}
    raise DownloadError("cityscapes needs an account (www.cityscapes-dataset.com/register): set CITYSCAPES_USERNAME "
                        f"and CITYSCAPES_PASSWORD, store them with cityscapesScripts' `csDownload` ({stored}), "
                        "or run on a terminal to be asked")


def cityscapes_session(session):
    credentials = {**cityscapes_credentials(), "submit": "Login"}
    try:
        session.get(CITYSCAPES_LOGIN, allow_redirects=False, timeout=60).raise_for_status()
        response = session.post(CITYSCAPES_LOGIN, data=credentials, allow_redirects=False, timeout=60)
        response.raise_for_status()
    except OSError as err:
        raise DownloadError(f"cityscapes: the login at {CITYSCAPES_LOGIN} failed: {err}") from err
    if response.status_code != 302:  # the site redirects after a good login
        raise DownloadError(f"cityscapes: the login at {CITYSCAPES_LOGIN} was refused: check the credentials")
    return session


def cityscapes_md5(session, package: int) -> str:
    url = CITYSCAPES_MD5.format(package)
    try:
        response = session.get(url, allow_redirects=False, timeout=60)
        response.raise_for_status()
    except OSError as err:
        raise DownloadError(f"cityscapes package {package}: its MD5 at {url} could not be read: {err}") from err
    return response.text.split()[0]


# ---------------------------------------------------------------------------------------------
# One dataset


def sha256(path: Path) -> str:
    import pooch

    return pooch.file_hash(str(path), alg="sha256")


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
