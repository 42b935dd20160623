"""`refinenet download`'s transfers: each file fetched into DIR/downloads/ through pooch (`pooch.retrieve`: the
published checksum is checked before a file takes its name) with a downloader that keeps an interrupted transfer in
`<file>.part` and continues it with an HTTP Range request; requests does the HTTP. Also the Cityscapes login (and
the MD5s it unlocks) and the SHA-256 the manifest records. Faults raise `DownloadError`, naming the file and its URL.
Unpacking and staging: refinenet/data/download_staging.py; the command: refinenet/data/download.py.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import sys
import time
from pathlib import Path

from tqdm import tqdm

from refinenet.data.sources import Source

CHUNK = 1 << 14  # small enough that a transfer cut short keeps nearly all it received
CITYSCAPES_LOGIN = "https://www.cityscapes-dataset.com/login"
CITYSCAPES_MD5 = "https://www.cityscapes-dataset.com/md5-sum/?packageID={}"


class DownloadError(RuntimeError):
    """A fault while fetching, verifying, unpacking or converting; the message names the file and the URL."""


def human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1000
    return ""


# ---------------------------------------------------------------------------------------------
# Transfers


def part_file(path: Path) -> Path:
    """Where an unfinished transfer of `path` is kept."""
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


def fetch(source: Source, url: str, md5: str | None, root: Path, session, opts) -> Path:
    """`root/downloads/<file>`, fetched (continuing a .part) and checked against `md5` where one is published.
    A file already there is re-checked, not fetched again. `opts`: the command's DownloadOptions (retries, timeout,
    progress)."""
    import pooch
    import requests

    pooch.get_logger().setLevel("WARNING")
    folder = root / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / source.file
    downloader = ResumingDownloader(part_file(path), session, retries=opts.retries, timeout=opts.timeout,
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


def sha256(path: Path) -> str:
    import pooch

    return pooch.file_hash(str(path), alg="sha256")


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
