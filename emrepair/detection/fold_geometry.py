"""A fold's centre curve: a parabola over a chord plus a piecewise-linear meander, in chord coordinates."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class FoldCurve:
    """Centre line ``across = c0 + c1 * s + c2 * s**2 (+ meander(s))`` for ``s`` in [s0, s1] along a chord
    from ``origin``.

    ``origin`` is (x, y); ``tangent``/``normal`` are unit (x, y) vectors; all lengths in the pixels of the
    image the curve was fitted in. ``detail``, when set, is (knot positions, offsets) of a piecewise-linear
    meander added to the parabola (a fold that wanders more than a parabola bends).
    """

    origin: np.ndarray
    tangent: np.ndarray
    coeffs: tuple[float, float, float]
    s0: float
    s1: float
    detail: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def normal(self) -> np.ndarray:
        """Unit normal (x, y) of the chord."""
        return np.array([-self.tangent[1], self.tangent[0]])

    def offset(self, s: np.ndarray) -> np.ndarray:
        """Across-chord offset of the centre at positions ``s``."""
        c0, c1, c2 = self.coeffs
        out = c0 + c1 * s + c2 * s * s
        if self.detail is not None:
            out = out + np.interp(s, self.detail[0], self.detail[1])
        return out

    def points(self, s: np.ndarray) -> np.ndarray:
        """(N, 2) image (x, y) points of the centre at positions ``s``."""
        across = self.offset(s)
        return self.origin[None, :] + s[:, None] * self.tangent[None, :] + across[:, None] * self.normal[None, :]

    def scaled(self, factor: float) -> "FoldCurve":
        """The same curve in an image ``factor`` times larger (pixel centres kept aligned)."""
        shift = (factor - 1) / 2  # pixel centre i in the small image sits at i*factor + shift
        c0, c1, c2 = self.coeffs
        detail = None if self.detail is None else (self.detail[0] * factor, self.detail[1] * factor)
        return FoldCurve(self.origin * factor + shift, self.tangent.copy(), (c0 * factor, c1, c2 / factor),
                         self.s0 * factor, self.s1 * factor, detail)

    def segments(self, width: float) -> list[list[float]]:
        """The curve as [[x0, y0, x1, y1], ...]: one segment when nearly straight, else four."""
        c2 = self.coeffs[2]
        bow = abs(c2) * (self.s1 - self.s0) ** 2 / 4
        pieces = 1 if bow < max(1.0, width / 4) else 4
        if self.detail is not None and np.abs(self.detail[1]).max() >= max(1.0, width / 4):
            pieces = 8
        s = np.linspace(self.s0, self.s1, pieces + 1)
        pts = self.points(s)
        return [[round(float(v), 1) for v in (*pts[i], *pts[i + 1])] for i in range(pieces)]

    def band_mask(self, shape: tuple[int, int], width: float) -> np.ndarray:
        """Boolean (H, W) mask of pixels within ``width / 2`` of the centre, between s0 and s1."""
        h, w = shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rel_x, rel_y = xx - np.float32(self.origin[0]), yy - np.float32(self.origin[1])
        along = rel_x * np.float32(self.tangent[0]) + rel_y * np.float32(self.tangent[1])
        across = rel_x * np.float32(self.normal[0]) + rel_y * np.float32(self.normal[1])
        inside = (along >= self.s0 - width / 2) & (along <= self.s1 + width / 2)
        return inside & (np.abs(across - self.offset(along)) < width / 2)


def realign(curve: FoldCurve, shape: tuple[int, int]) -> tuple[FoldCurve, float] | None:
    """Re-express ``curve`` over the chord through its own end points, extended to the image borders.

    Returns the curve (with s0/s1 in the new frame) and the new chord's length inside the image.
    """
    s = np.linspace(curve.s0, curve.s1, 64 if curve.detail is not None else 32)
    pts = curve.points(s)
    direction = pts[-1] - pts[0]
    norm = float(np.linalg.norm(direction))
    if norm < 1e-6:
        return None
    tangent = direction / norm
    chord = chord_through(pts[0], tangent, shape)
    if chord is None:
        return None
    origin, length = chord
    rel = pts - origin[None, :]
    along = rel @ tangent
    across = rel @ np.array([-tangent[1], tangent[0]])
    c2, c1, c0 = np.polyfit(along, across, 2)
    detail = None
    if curve.detail is not None:
        residual = across - (c0 + c1 * along + c2 * along * along)
        order = np.argsort(along)
        detail = (along[order], residual[order])
    return FoldCurve(origin, tangent, (float(c0), float(c1), float(c2)), float(along.min()), float(along.max()),
                     detail), length


def chord_through(point: np.ndarray, tangent: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, float] | None:
    """Where the infinite line through ``point`` along ``tangent`` enters the image, and its length inside."""
    h, w = shape
    lo, hi = -np.inf, np.inf
    for p, t, size in ((point[0], tangent[0], w), (point[1], tangent[1], h)):
        if abs(t) < 1e-9:
            if not 0 <= p <= size - 1:
                return None
            continue
        a, b = (0 - p) / t, (size - 1 - p) / t
        lo, hi = max(lo, min(a, b)), min(hi, max(a, b))
    if hi <= lo:
        return None
    return point + lo * tangent, float(hi - lo)


def draw_band(shape: tuple[int, int], lines: list[list[float]], width: float, scale: tuple[float, float]) -> np.ndarray:
    """Boolean mask of thick ``lines`` ([x0, y0, x1, y1], scaled by (sy, sx)) of ``width`` pixels."""
    canvas = np.zeros(shape, np.uint8)
    sy, sx = scale
    thickness = max(1, int(round(width * (sx + sy) / 2)))
    for x0, y0, x1, y1 in lines:
        p0 = (int(round(x0 * sx)), int(round(y0 * sy)))
        p1 = (int(round(x1 * sx)), int(round(y1 * sy)))
        cv2.line(canvas, p0, p1, 1, thickness=thickness, lineType=cv2.LINE_8)
    return canvas.astype(bool)
