"""Writing files atomically: each file appears complete or not at all.

Every writer goes through `atomic_path` (a temp file beside the target, then `os.replace`), so a run
killed mid-write leaves the previous file intact and a re-run never meets half a file. Files get
the usual permissions (0666 less the umask). Checkpoints, results, converters and stand-in images
all write through here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error it becomes `path`.

    The temporary file exists (empty, mode 0666 less the umask) when the block starts; a writer may
    overwrite it or replace it (e.g. with a link). Where the block raises, it is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual permissions
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files `atomic_path(path)` leaves beside `path` when its process is killed
    mid-write (`.<name>.*.tmp`); returns what was removed. Call it when a run that owns `path` starts again."""
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


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


def torch_save_atomic(obj, path: Path) -> Path:
    """`torch.save` to a temp file, fsync, then rename: a checkpoint is never half written."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    return path


def save_image_atomic(path: Path, image: Image.Image, fmt: str, **options) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **options)


def to_pil(array: np.ndarray, palette: np.ndarray | list | tuple | None = None) -> Image.Image:
    """HxWx3 uint8 -> RGB; HxW uint8 -> L, or P with `palette` (N x 3 RGB); HxW uint16 -> I;16."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 3:
        return Image.fromarray(array.astype(np.uint8), mode="RGB")
    if array.ndim != 2:
        raise ValueError(f"expected HxW or HxWx3 array, got shape {array.shape}")
    if array.dtype == np.uint16:
        return Image.fromarray(array, mode="I;16")
    if array.dtype != np.uint8:
        raise ValueError(f"single-channel images must be uint8 or uint16, got {array.dtype}")
    if palette is None:
        return Image.fromarray(array, mode="L")
    flat = np.zeros((256, 3), dtype=np.uint8)
    colours = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:256]
    flat[: len(colours)] = colours
    image = Image.fromarray(array, mode="P")
    image.putpalette(flat.reshape(-1).tolist())
    return image


def save_png(path: Path, array: np.ndarray, palette=None) -> None:
    """Write `array` as PNG atomically. See `to_pil` for the modes."""
    save_image_atomic(path, to_pil(array, palette), "PNG")


def save_jpeg(path: Path, array: np.ndarray, quality: int = 95) -> None:
    """Write an HxWx3 uint8 array as JPEG atomically."""
    save_image_atomic(path, to_pil(array), "JPEG", quality=quality)
