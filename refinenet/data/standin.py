"""Synthetic scenes for stand-in datasets (written with `refinenet/atomic.py`).

A stand-in copies a dataset's layout with generated pictures so that every command runs without
the real data. The scenes are built to be learnable and to reward high-resolution prediction,
which is what RefineNet's multi-path refinement is about (paper, Sec. 1 and 3): every class has
its own colour *and* texture, objects come in several sizes down to a few pixels, there are 1-3 px
thin strokes, wobbly boundaries, occlusion (later objects paint over earlier ones), a cluttered
background and mild noise.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

# Texture kinds, picked per class from its id.
_STRIPES, _CHECKER, _DOTS = 0, 1, 2


@lru_cache(maxsize=16)
def class_appearance(num_classes: int) -> dict[str, np.ndarray]:
    """Colour and texture parameters per class, fixed by the class id alone (never by a scene's rng).

    Hues are spread by the golden ratio so neighbouring ids look different; texture orientation,
    period and kind also vary with the id, so classes with similar colours still differ in texture.
    """
    ids = np.arange(num_classes)
    angle = (ids * 37) % 180 * np.pi / 180
    wavenumber = 2 * np.pi / (3.0 + (ids * 5) % 9)  # periods of 3..11 px
    hue = (ids * 0.618033988749895) % 1.0
    saturation = 0.45 + 0.5 * ((ids * 7) % 5) / 4
    value = 0.45 + 0.5 * ((ids * 3) % 4) / 3
    colour = _hsv_to_rgb(hue, saturation, value) * 255.0
    return {
        "colour": colour.astype(np.float32),  # num_classes x 3
        # Texture wave vector (x and y components), orientation and frequency per class.
        "kx": (np.cos(angle) * wavenumber).astype(np.float32),
        "ky": (np.sin(angle) * wavenumber).astype(np.float32),
        "kind": (ids % 3).astype(np.int8),
        "contrast": (0.12 + 0.16 * ((ids * 11) % 4) / 3).astype(np.float32),
    }


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    )  # 6 x N x 3
    return table[i, np.arange(len(h))]


def paint_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    num_classes: int,
    background: int | None = 0,
    regions: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic scene: an HxWx3 uint8 image and its HxW uint8 label in [0, num_classes).

    `regions` (default: `background is None`) first tiles the canvas into regions of random classes,
    as in scene parsing, where every pixel has a class; with `background` set too, one region is the
    background (PASCAL-Context: most pixels belong to the 59 classes, the rest is background).
    Without regions, `background` fills everything no object covers (VOC, Person-Part).
    Deterministic for a given rng state.
    """
    if not 1 <= num_classes <= 255:
        raise ValueError(f"num_classes must be in [1, 255], got {num_classes}")
    if regions is None:
        regions = background is None
    if background is not None and not 0 <= background < num_classes:
        raise ValueError(f"background class {background} not in [0, {num_classes})")
    label = _base_layer(rng, height, width, num_classes, background, regions)
    objects = [c for c in range(num_classes) if c != background] or [0]
    short = min(height, width)
    # (count range, radius range as a fraction of the short side): large blobs, medium, small.
    for (lo, hi), (r_lo, r_hi) in [((1, 4), (0.15, 0.32)), ((2, 5), (0.06, 0.14)), ((3, 9), (0.015, 0.05))]:
        for _ in range(int(rng.integers(lo, hi))):
            radius = max(1.5, short * rng.uniform(r_lo, r_hi))
            _paint_blob(rng, label, int(rng.choice(objects)), radius)
    for _ in range(int(rng.integers(2, 6))):
        _paint_stroke(rng, label, int(rng.choice(objects)), width_px=int(rng.integers(1, 4)))
    return _render(rng, label, num_classes, background), label


def _base_layer(
    rng: np.random.Generator, height: int, width: int, num_classes: int, background: int | None, regions: bool
) -> np.ndarray:
    if not regions:
        return np.full((height, width), background, dtype=np.uint8)
    # Voronoi regions with slightly wavy borders.
    seeds = int(rng.integers(3, 8))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ys = ys + 2.0 * np.sin(xs / rng.uniform(4, 12))
    cy = rng.uniform(0, height, seeds)[:, None, None]
    cx = rng.uniform(0, width, seeds)[:, None, None]
    nearest = np.argmin((ys - cy) ** 2 + (xs - cx) ** 2, axis=0)
    classes = rng.integers(0, num_classes, seeds).astype(np.uint8)
    if background is not None:
        classes[0] = background
    return classes[nearest]


def _paint_blob(rng: np.random.Generator, label: np.ndarray, cls: int, radius: float) -> None:
    """A rotated ellipse whose radius wobbles with the angle: fine, irregular boundaries."""
    height, width = label.shape
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    aspect = rng.uniform(0.5, 1.8)
    rot = rng.uniform(0, np.pi)
    wobble, lobes, phase = rng.uniform(0, 0.3), int(rng.integers(2, 9)), rng.uniform(0, 2 * np.pi)
    reach = radius * max(aspect, 1.0) * (1 + wobble) + 1
    y0, y1 = max(0, int(cy - reach)), min(height, int(cy + reach) + 1)
    x0, x1 = max(0, int(cx - reach)), min(width, int(cx + reach) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = ys - cy, xs - cx
    u = dx * np.cos(rot) + dy * np.sin(rot)
    v = (-dx * np.sin(rot) + dy * np.cos(rot)) * aspect
    rho, phi = np.hypot(u, v), np.arctan2(v, u)
    inside = rho <= radius * (1 + wobble * np.sin(lobes * phi + phase))
    label[y0:y1, x0:x1][inside] = cls


def _paint_stroke(rng: np.random.Generator, label: np.ndarray, cls: int, width_px: int) -> None:
    """A thin polyline (1-3 px), like poles, wires or limbs."""
    height, width = label.shape
    points = np.stack([rng.uniform(0, height, 3), rng.uniform(0, width, 3)], axis=1)
    half = width_px / 2.0
    for (ay, ax), (by, bx) in zip(points[:-1], points[1:]):
        y0, y1 = max(0, int(min(ay, by) - half - 1)), min(height, int(max(ay, by) + half + 2))
        x0, x1 = max(0, int(min(ax, bx) - half - 1)), min(width, int(max(ax, bx) + half + 2))
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        sy, sx = by - ay, bx - ax
        t = np.clip(((ys - ay) * sy + (xs - ax) * sx) / max(sy * sy + sx * sx, 1e-6), 0, 1)
        near = np.hypot(ys - (ay + t * sy), xs - (ax + t * sx)) <= half
        label[y0:y1, x0:x1][near] = cls


def _smooth_field(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Random values in about [-1, 1] varying smoothly over `cell`-pixel distances."""
    coarse = rng.uniform(-1, 1, (height // cell + 2, width // cell + 2)).astype(np.float32)
    resized = Image.fromarray(coarse, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.float32)


def _render(rng: np.random.Generator, label: np.ndarray, num_classes: int, background: int | None) -> np.ndarray:
    """Colour each pixel by its class: base colour modulated by the class texture, plus clutter and noise."""
    look = class_appearance(num_classes)
    height, width = label.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    kx, ky, kind = look["kx"][label], look["ky"][label], look["kind"][label]
    su, sv = np.sin(xs * kx + ys * ky), np.sin(ys * kx - xs * ky)
    pattern = np.where(
        kind == _STRIPES, su, np.where(kind == _CHECKER, np.sign(su * sv), np.float32(2) * (su * sv > 0.5) - 1)
    )
    shade = 1.0 + look["contrast"][label] * pattern
    # Clutter: a smooth random brightness field over the whole picture (light and shadow), the
    # same for every class, so it confuses colour but never the class texture.
    shade = shade * (1.0 + 0.12 * _smooth_field(rng, height, width, 24))
    if background is not None:  # the background is cluttered: mottled at a finer scale on top of its texture
        shade = np.where(label == background, shade * (1.0 + 0.18 * _smooth_field(rng, height, width, 6)), shade)
    image = look["colour"][label] * shade[..., None]
    # Sensor-like noise: triangular (sum of two uniforms, sd ~3 grey levels), cheaper than Gaussian.
    image += 7.0 * (rng.random(image.shape, dtype=np.float32) + rng.random(image.shape, dtype=np.float32) - 1)
    return np.clip(image, 0, 255).astype(np.uint8)
