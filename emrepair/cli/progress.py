"""Plain progress lines for runs without a terminal (Slurm, nohup, a pipe): steady, greppable, never redrawn."""

from __future__ import annotations

import math
import time
from typing import Callable

from emrepair.callbacks import WarnCallback


def format_duration(seconds: float) -> str:
    """``3725`` -> ``'1:02:05'``; ``'?'`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_rate(per_second: float) -> str:
    """Items per second with sensible digits, or per minute / hour when slow."""
    if per_second <= 0 or not math.isfinite(per_second):
        return "-"
    if per_second >= 10:
        return f"{per_second:.0f}/s"
    if per_second >= 0.1:
        return f"{per_second:.2f}/s"
    if per_second * 60 >= 0.1:
        return f"{per_second * 60:.2f}/min"
    return f"{per_second * 3600:.2f}/h"


class PlainProgress:
    """A ``progress(done, total, extra="")`` callback that emits one line per 5 % of the work or per 30 s.

    Each line reads ``detect: 40/200 (20%), 3.10/s, elapsed 0:00:13, ETA 0:00:52`` (plus ``extra``, e.g. the
    training loss). The last unit of work always gets a line; with ``every_percent=None`` (the tiles of one
    section) only the 30 s lines are printed. A count that starts again (done below the last
    one, e.g. the tiles of the next section) restarts the rate and the 5 % steps.
    """

    def __init__(self, description: str, emit: WarnCallback, every_percent: float | None = 5.0,
                 every_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.description = description
        self.emit = emit
        self.every_percent = every_percent
        self.every_seconds = every_seconds
        self.clock = clock
        self._start = clock()
        self._last_time = self._start
        self._last_done = -1
        self._last_step = 0
        self._count_start_done = 0
        self._count_start_time = self._start

    def __call__(self, done: int, total: int, extra: str = "") -> None:
        """Record progress; print a line when the next 5 % step is reached or 30 s have passed."""
        now = self.clock()
        if done < self._last_done or (done == 0 and self._last_done < 0):  # a (new) count starts: time from here
            self._count_start_done, self._count_start_time, self._last_step = 0, now, 0
        if done == self._last_done:
            return
        self._last_done = done
        finished = bool(total) and done >= total and self.every_percent is not None
        step = int(100 * done / total // self.every_percent) if total and self.every_percent else 0
        if finished or step > self._last_step or now - self._last_time >= self.every_seconds:
            self._last_step, self._last_time = step, now
            self.emit(self.line(done, total, now, extra))

    def line(self, done: int, total: int, now: float, extra: str = "") -> str:
        """The text of one progress line."""
        elapsed = now - self._count_start_time
        counted = done - self._count_start_done
        rate = counted / elapsed if elapsed > 0 else float("nan")
        text = f"{self.description}: {done}/{total}" if total else f"{self.description}: {done}"
        if total:
            text += f" ({100 * done / total:.0f}%)"
        text += f", {format_rate(rate)}, elapsed {format_duration(now - self._start)}"
        if total and done < total:
            text += f", ETA {format_duration((total - done) / rate if rate > 0 else float('nan'))}"
        return text + (f", {extra}" if extra else "")
