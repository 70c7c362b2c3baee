"""Options shared by the pipelines that run the tiled engine (fix, upsample-z)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emrepair.distributed.plan import RepairRun


def _usage(message: str) -> Exception:
    from emrepair.errors import UsageError

    return UsageError(message)


def check_positive(**values: int | None) -> None:
    """Raise a one-line UsageError for any given (non-None) value below 1, naming it as an option."""
    for name, value in values.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise _usage(f"--{name.replace('_', '-')} must be a whole number of at least 1, not {value!r}")


@dataclass
class EngineOptions:
    """How sections go through the network: tiles, blending, batching, device and precision.

    Field meanings are those of :class:`emrepair.engine.EngineConfig`.
    """

    tile_size: int | None = None
    overlap: int | None = None
    blend: str = "gaussian"
    batch_size: int = 4
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        check_positive(tile_size=self.tile_size, batch_size=self.batch_size)
        if self.overlap is not None and self.overlap < 0:
            raise _usage(f"--overlap must be 0 or more, not {self.overlap}")

    def engine_config(self, device: str | None = None) -> Any:
        """The :class:`~emrepair.engine.EngineConfig` for these options (``device`` overrides the spec)."""
        from emrepair.engine import EngineConfig

        return EngineConfig(tile_size=self.tile_size, overlap=self.overlap, blend=self.blend,
                            batch_size=self.batch_size, device=device or self.device, precision=self.precision)


@dataclass
class RunOptions(EngineOptions):
    """The options of a blockwise run that fix and upsample-z share: model, repair sources, input, outputs,
    resume and shares (each pipeline adds its own)."""

    model: str = "auto"
    sections: list[int] | None = None
    report_path: str | None = None
    masks_path: str | None = None
    summary_path: str | None = None
    dataset: str | None = None
    level: int | None = None
    overwrite: bool = False
    dry_run: bool = False
    continue_run: bool = False
    part: tuple[int, int] | None = None
    workers: int = 1
    executor: str = "auto"
    skip_unreadable: bool = False  # folder inputs: leave out unreadable section files, with a warning

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(workers=self.workers)
        if self.level is not None and self.level < 0:
            raise _usage(f"--level must be 0 or more, not {self.level}")
    detect_config: Any = None  # emrepair.detection.DetectConfig for a fresh detection run (None: the defaults)
    repair_precipitates: bool = False  # fix: synthesize the regions of staining precipitates a report marks


@dataclass
class FixOptions(RunOptions):
    """Everything ``emrepair fix`` can be told, besides input and output (shared fields from RunOptions)."""

    fold_model: str = "auto"
    region_size: int | None = None


@dataclass(kw_only=True)
class BlockProgress:
    """How far a blockwise run got: blocks in the run, skipped as already done, left to other shares."""

    blocks_total: int = 0
    blocks_skipped: int = 0
    blocks_left: int = 0
    complete: bool = True

    def blocks_dict(self) -> dict[str, Any]:
        """The JSON form used in run reports."""
        return {"total": self.blocks_total, "skipped_as_done": self.blocks_skipped, "left": self.blocks_left}


@dataclass(kw_only=True)
class RunResult(BlockProgress):
    """What fix and upsample-z results share: input, output, model, repair runs, engine plan, device and timing."""

    input: str
    output: str | None
    model: str
    weights_sha256: str | None
    runs: list[RepairRun]
    tiles_per_section: int
    memory_estimate_bytes: int
    device: str
    dry_run: bool
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def repaired_sections(self) -> list[int]:
        """Every (input) section the repair runs replace."""
        return [z for run in self.runs for z in run.sections]
