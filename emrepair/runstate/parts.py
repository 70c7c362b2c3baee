"""``--part i/N``: split a list of blocks into N independent shares for job arrays."""

from __future__ import annotations

from typing import Sequence, TypeVar

from emrepair.errors import UsageError

T = TypeVar("T")


def parse_part(text: str) -> tuple[int, int]:
    """Parse ``"i/N"`` (1 <= i <= N) into ``(i, N)``; raises UsageError when malformed."""
    try:
        left, right = text.split("/")
        index, count = int(left), int(right)
    except ValueError:
        raise UsageError(f"--part must look like i/N (e.g. 3/10), not {text!r}") from None
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--part {text}: need 1 <= i <= N")
    return index, count


def share_of(items: Sequence[T], index: int, count: int) -> list[T]:
    """Share ``index`` (1-based) of ``count``: every count-th item, so each share gets a spread of the volume."""
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"share {index} of {count} does not exist")
    return list(items[index - 1::count])
