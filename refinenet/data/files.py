"""File helpers of the converters (`prepare`) and the stand-in writers.

Every file is written atomically (`refinenet/atomic.py`), so an interrupted run can be re-run: it
skips what it already finished and never meets half a file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from refinenet.atomic import atomic_path, copy_file_atomic, save_png, write_text_atomic
from refinenet.data.common import STANDIN_MARKER, DatasetInfo, DatasetLayoutError, is_standin


def write_id_list(path: Path, ids: Iterable[str]) -> None:
    """One id per line."""
    write_text_atomic(path, "".join(f"{i}\n" for i in ids))


def link_or_copy(source: Path, target: Path, *, symbolic: bool = False) -> None:
    """A hard link (or with `symbolic`, a symlink to the resolved `source`) at `target`, a copy where
    linking fails; skipped where `target` exists (which includes `target` being `source`)."""
    target = Path(target)
    if target.exists():
        return
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            if symbolic:
                tmp.symlink_to(Path(source).resolve())
            else:
                os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def carry_standin_marker(raw: Path, out: Path, info: DatasetInfo) -> None:
    """Copy the stand-in marker from `raw` to `out`, so data converted from a stand-in stays `standin`.

    Refuses to convert real data into a folder that holds a converted stand-in (or the other way
    round): re-runs skip finished files, so the two would silently mix. Call it before writing.
    """
    raw, out = Path(raw), Path(out)
    if is_standin(out) != is_standin(raw) and out.exists() and any(out.iterdir()):
        kinds = ("stand-in", "real") if is_standin(raw) else ("real", "stand-in")
        raise DatasetLayoutError(
            f"{info.name}: {raw} holds {kinds[0]} data but {out} already holds {kinds[1]} data; choose an empty --out"
        )
    if is_standin(raw) and not is_standin(out):
        copy_file_atomic(raw / STANDIN_MARKER, out / STANDIN_MARKER)


def write_converted_pair(
    image_in: Path, label: np.ndarray, image_out: Path, label_out: Path, info: DatasetInfo, *, what: str, palette=None
) -> None:
    """Copy the image `image_in` to `image_out` and save `label` (HxW uint8) as PNG at `label_out`,
    once the two are checked to have the same size; either file already there is kept."""
    with Image.open(image_in) as im:
        width, height = im.size
    if label.shape != (height, width):
        raise ValueError(
            f"{info.name}: {image_in} is {width}x{height} but its {what} is "
            f"{label.shape[1]}x{label.shape[0]} (width x height)"
        )
    if not label_out.exists():
        save_png(label_out, label, palette=palette)
    if not image_out.exists():
        copy_file_atomic(image_in, image_out)


# --- MATLAB files


def matlab_string(value) -> str:
    """A MATLAB char array as loaded by scipy (an empty one gives '')."""
    flat = np.asarray(value).ravel()
    return str(flat[0]) if flat.size else ""


def write_matlab73_header(path: Path) -> None:
    """Stamp a MATLAB v7.3 header into the 512-byte user block of an HDF5 file made by h5py.

    A v7.3 MAT-file is HDF5 whose first 128 bytes are the MAT header: 116 bytes of text, 8 bytes of
    subsystem offset, version 0x0200 and the endian mark 'IM' (MathWorks, "MAT-File Format", v7.3).
    """
    text = b"MATLAB 7.3 MAT-file, Platform: refinenet stand-in, Created on: (synthetic) HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b" " * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as handle:
        handle.write(header)
