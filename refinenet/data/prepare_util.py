"""Small helpers the converters of NYUDv2, SUN-RGBD and Person-Part share.

Every file a converter writes appears complete or not at all (temp file + `os.replace`), so a
converter that is interrupted can be re-run and skips what it already finished.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from refinenet.data.common import STANDIN_MARKER, DatasetInfo, DatasetLayoutError, is_standin


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error it becomes `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def copy_file_atomic(source: Path, target: Path) -> None:
    """Copy bytes unchanged (JPEGs are never re-encoded)."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def write_id_list(path: Path, ids: list[str]) -> None:
    write_text_atomic(path, "".join(f"{i}\n" for i in ids))


def carry_standin_marker(raw: Path, out: Path, info: DatasetInfo) -> None:
    """Copy the stand-in marker from `raw` to `out`, so data converted from a stand-in stays `standin`.

    Refuses to convert real data into a folder that holds a converted stand-in (or the other way
    round): re-runs skip finished files, so the two would silently mix.
    """
    raw, out = Path(raw), Path(out)
    if is_standin(out) != is_standin(raw) and out.exists() and any(out.iterdir()):
        kinds = ("stand-in", "real") if is_standin(raw) else ("real", "stand-in")
        raise DatasetLayoutError(
            f"{info.name}: {raw} holds {kinds[0]} data but {out} already holds {kinds[1]} data; "
            "choose an empty --out"
        )
    if is_standin(raw):
        out.mkdir(parents=True, exist_ok=True)
        copy_file_atomic(raw / STANDIN_MARKER, out / STANDIN_MARKER)


def resolve_split(split: str, info: DatasetInfo, aliases: dict[str, str]) -> str:
    """The canonical split name for `split` (e.g. `val` -> `test` where the paper has no val set)."""
    name = aliases.get(split, split)
    if name not in info.splits:
        valid = sorted(set(info.splits) | set(aliases))
        raise ValueError(f"{info.name}: unknown split {split!r}; valid splits: {', '.join(valid)}")
    return name


def bit_colormap(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL VOC colour map (bits of the class id spread over R, G, B), one colour per train id."""
    colours = []
    for index in range(num_classes):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


def write_matlab73_header(path: Path) -> None:
    """Stamp a MATLAB v7.3 header into the 512-byte user block of an HDF5 file made by h5py.

    A v7.3 MAT-file is HDF5 whose first 128 bytes are the MAT header: 116 bytes of text, 8 bytes of
    subsystem offset, version 0x0200 and the endian mark 'IM' (MathWorks, "MAT-File Format", v7.3).
    """
    text = b"MATLAB 7.3 MAT-file, Platform: refinenet stand-in, Created on: (synthetic) HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b" " * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as handle:
        handle.write(header)
