"""Plan a repair: group defective sections into runs and find each run's nearest good neighbours."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emrepair.errors import UsageError


@dataclass(frozen=True)
class RepairRun:
    """A maximal run of consecutive defective sections ``first..last`` (inclusive).

    ``left`` and ``right`` are the nearest good sections on each side (None at a stack end).
    ``kinds`` maps each z in the run to its defect kind; ``folds`` maps a folded z to its band geometry as the
    detection report gives it (``{"lines": [[x0, y0, x1, y1], ...], "width_px": w}``, and ``"band"``, the band mask
    detection segmented, ``detection.band_codec``, when the report has it), for fold-aware repair, and
    a partly lost z (kind ``partial``, or a fold with lost regions too) to its lost region (``{"region": {...}}``,
    see ``sections.targets_of``), for region repair.
    """

    first: int
    last: int
    left: int | None
    right: int | None
    kinds: dict[int, str] = field(default_factory=dict)
    folds: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def sections(self) -> list[int]:
        """The z indices of the run, in order."""
        return list(range(self.first, self.last + 1))

    @property
    def one_sided(self) -> bool:
        """True when the run touches the start or end of the stack and has only one good neighbour."""
        return self.left is None or self.right is None

    def positions(self) -> list[float]:
        """Interpolation position t of each section: j/(k+1) between the two neighbours."""
        k = self.last - self.first + 1
        return [(j + 1) / (k + 1) for j in range(k)]

    def to_dict(self) -> dict[str, Any]:
        """JSON form used in dry-run plans and fix reports."""
        return {"sections": self.sections, "left": self.left, "right": self.right,
                "t": [round(t, 6) for t in self.positions()],
                "kinds": [self.kinds.get(z, "missing") for z in self.sections],
                **({"folds": {str(z): _shown(g) for z, g in self.folds.items()}} if self.folds else {})}


def plan_runs(defects: dict[int, str], depth: int,
              folds: dict[int, dict[str, Any]] | None = None) -> list[RepairRun]:
    """Group defective sections (z -> kind) of a stack of ``depth`` sections into repair runs.

    ``folds`` (z -> band geometry and lost region) is attached to the runs holding those sections.

    Raises UsageError when a section index is out of range or when no good section is left to repair from.
    """
    bad = sorted(defects)
    for z in bad:
        if not 0 <= z < depth:
            raise UsageError(f"section {z} is outside the volume (it has {depth} sections, 0..{depth - 1})")
    if bad and len(bad) == depth:
        raise UsageError("every section is marked defective; there is no good section to repair from")
    runs: list[RepairRun] = []
    start = 0
    while start < len(bad):
        end = start
        while end + 1 < len(bad) and bad[end + 1] == bad[end] + 1:
            end += 1
        first, last = bad[start], bad[end]
        left = first - 1 if first > 0 else None
        right = last + 1 if last < depth - 1 else None
        span = range(first, last + 1)
        runs.append(RepairRun(first, last, left, right, {z: defects[z] for z in span},
                              {z: (folds or {})[z] for z in span if z in (folds or {})}))
        start = end + 1
    return runs


def run_to_dict(run: RepairRun) -> dict[str, Any]:
    """Compact JSON form of a run for the run record of a blockwise run."""
    return {"first": run.first, "last": run.last, "left": run.left, "right": run.right,
            "kinds": {str(z): k for z, k in run.kinds.items()},
            "folds": {str(z): g for z, g in run.folds.items()}}


def run_from_dict(data: dict[str, Any]) -> RepairRun:
    """Inverse of ``run_to_dict``."""
    return RepairRun(int(data["first"]), int(data["last"]), data["left"], data["right"],
                     {int(z): k for z, k in data["kinds"].items()},
                     {int(z): g for z, g in data.get("folds", {}).items()})


MAX_SECTIONS = 1_000_000  # more than any stack has; a longer list is a typo, refused before it takes memory


def parse_sections(text: str) -> list[int]:
    """Parse a section list such as ``"5,9-11"`` into ``[5, 9, 10, 11]``.

    Raises UsageError on malformed input.
    """
    result: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo_text, hi_text = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo, hi = int(lo_text), int(hi_text)
                if lo > hi or lo < 0:
                    raise ValueError
                if hi - lo + 1 + len(result) > MAX_SECTIONS:
                    raise UsageError(f"--sections {text!r} names more than {MAX_SECTIONS:,} sections; "
                                     f"give the sections to repair, not a range beyond the stack")
                result.update(range(lo, hi + 1))
            else:
                value = int(part)
                if value < 0:
                    raise ValueError
                result.add(value)
        except ValueError:
            raise UsageError(f"cannot parse --sections {text!r}: use indices and ranges like 5,9-11") from None
    if not result:
        raise UsageError("--sections is empty")
    return sorted(result)


def _shown(geometry: dict[str, Any]) -> dict[str, Any]:
    """A section's geometry as reports and provenance show it: the band mask (kilobytes of PNG) as its presence."""
    if "band" not in geometry:
        return geometry
    return {**{k: v for k, v in geometry.items() if k != "band"}, "band_mask": True}
