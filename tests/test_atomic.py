"""Atomic writers: complete files or none, the usual permissions, values and palettes kept."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from refinenet import atomic


def test_save_png_is_atomic_and_keeps_values_and_palette(tmp_path):
    label = np.arange(48, dtype=np.uint8).reshape(6, 8)
    atomic.save_png(tmp_path / "sub" / "l.png", label, palette=[(255, 0, 0), (0, 255, 0)])
    atomic.save_jpeg(tmp_path / "i.jpg", np.zeros((6, 8, 3), np.uint8))
    with Image.open(tmp_path / "sub" / "l.png") as im:
        assert im.mode == "P" and np.array_equal(np.asarray(im), label)
        assert im.getpalette()[:6] == [255, 0, 0, 0, 255, 0]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["i.jpg", "l.png"]  # no temp files


def test_written_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic.save_png(tmp_path / "l.png", np.zeros((4, 4), np.uint8))
        atomic.write_text_atomic(tmp_path / "ids.txt", "a\n")
    finally:
        os.umask(mask)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {"l.png": 0o644, "ids.txt": 0o644}
