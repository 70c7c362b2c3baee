"""A PNG of the training curves (loss per step, validation PSNR vs linear), drawn with OpenCV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PANEL_W, PANEL_H, MARGIN = 520, 300, 48
WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (170, 170, 170)
BLUE, RED, GREEN = (200, 80, 20), (40, 40, 210), (40, 150, 40)   # BGR


def _panel(title: str, series: list[tuple[list[float], list[float], tuple[int, int, int], str]]) -> np.ndarray:
    """One plot: several (x, y, colour, label) series on shared axes, with min/max labels."""
    import cv2

    img = np.full((PANEL_H, PANEL_W, 3), 255, np.uint8)
    cv2.putText(img, title, (MARGIN, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.55, BLACK, 1, cv2.LINE_AA)
    x0, y0, x1, y1 = MARGIN, 36, PANEL_W - 16, PANEL_H - MARGIN
    cv2.rectangle(img, (x0, y0), (x1, y1), GREY, 1)
    points = [(x, y) for xs, ys, _, _ in series for x, y in zip(xs, ys) if np.isfinite(y)]
    if not points:
        cv2.putText(img, "no data yet", (x0 + 10, (y0 + y1) // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, GREY, 1)
        return img
    xmin, xmax = min(p[0] for p in points), max(p[0] for p in points)
    ymin, ymax = min(p[1] for p in points), max(p[1] for p in points)
    xspan, yspan = max(xmax - xmin, 1e-9), max(ymax - ymin, 1e-9)
    for label, value, y in ((f"{ymax:.4g}", ymax, y0 + 10), (f"{ymin:.4g}", ymin, y1)):
        cv2.putText(img, label, (2, y), cv2.FONT_HERSHEY_SIMPLEX, 0.35, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, f"step {xmin:g}", (x0, y1 + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.35, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, f"{xmax:g}", (x1 - 40, y1 + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.35, BLACK, 1, cv2.LINE_AA)
    for n, (xs, ys, colour, label) in enumerate(series):
        pts = np.array([[x0 + (x - xmin) / xspan * (x1 - x0), y1 - (y - ymin) / yspan * (y1 - y0)]
                        for x, y in zip(xs, ys) if np.isfinite(y)], np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, colour, 1, cv2.LINE_AA)
        for p in pts if len(pts) <= 50 else []:
            cv2.circle(img, tuple(int(v) for v in p), 2, colour, -1)
        cv2.putText(img, label, (x0 + 8 + 150 * n, y1 + 36), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return img


def smooth(values: list[float], window: int = 25) -> list[float]:
    """Running mean over ``window`` values (same length as the input)."""
    if not values:
        return []
    arr = np.asarray(values, dtype=np.float64)
    cums = np.cumsum(np.insert(arr, 0, 0.0))
    starts = np.maximum(np.arange(1, len(arr) + 1) - window, 0)
    return list((cums[1:] - cums[starts]) / (np.arange(1, len(arr) + 1) - starts))


def write_curves(path: str | Path, loss_steps: list[int], losses: list[float], val_steps: list[int],
                 val_psnr: list[float], linear_psnr: list[float]) -> Path:
    """Write the loss panel above the validation PSNR panel as one PNG at ``path``."""
    import cv2

    top = _panel("training loss (running mean)", [(list(map(float, loss_steps)), smooth(losses), BLUE, "loss")])
    bottom = _panel("validation PSNR (dB)", [
        (list(map(float, val_steps)), list(val_psnr), RED, "model"),
        (list(map(float, val_steps)), list(linear_psnr), GREEN, "linear"),
    ])
    path = Path(path)
    if not cv2.imwrite(str(path), np.vstack([top, bottom])):
        from emrepair.errors import OutputError

        raise OutputError(f"cannot write {path}")
    return path
