"""The callback types the library takes, declared once for every layer.

``ProgressCallback(done, total)`` counts finished items (sections, tiles, blocks); ``WarnCallback(line)`` hands
the caller one line to show the user (the CLI prints it on stderr; the library never prints);
``TrainProgressCallback(step, total, info)`` follows a step trainer's run, ``info`` holding the running-mean
losses and the latest validation PSNRs; ``TimedProgressCallback(step, losses)`` a timed trainer's (sff, reslice
planes), every 20 steps, with the moving averages of its losses.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]
WarnCallback = Callable[[str], None]
TrainProgressCallback = Callable[[int, int, dict[str, float]], None]
TimedProgressCallback = Callable[[int, dict[str, float]], None]
